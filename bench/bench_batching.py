"""Benchmark batch buckets, dynamic batching and replicas on the portable ``cpu`` target, side by side.

A purpose-built project is written and built (``pip wheel --no-build-isolation --no-deps``, ``targets =
["cpu"]``) in a temporary folder and installed with ``pip install --no-deps --target DIR``; every
measurement runs in a fresh interpreter with ``PYTHONPATH=DIR``. Its models are one MLP
(Linear(256, 1024)-ReLU-Linear(1024, 256), about 200 us per call at batch 8 on one thread here):

- ``mlp``: declared at ``[8, 256]`` with ``dynamic-batch = true``, so its only batch bucket is 8;
- ``mlp_buckets``: the same network with ``batch-buckets = [1, 8]`` and ``dynamic-batch = true``.

a. call overhead:  ``compiled.mlp(x)`` (CompiledModel) versus the module it wraps (``mlp.load()``) called
                   under ``torch.no_grad()`` (as the loader does), batch 8, one torch thread.
b. dynamic batch:  ``compiled.mlp`` at batch 8 and 64 versus the ideal, ``ceil(b / 8)`` calls of the raw
                   module at batch 8 (no split, pad or concatenation), one torch thread.
c. replicas:       ``compiled.mlp`` at batch 64 with ``HATCH_NEURON_REPLICAS=2`` versus ``=1``, with
                   ``torch.set_num_threads(1)`` and with torch's default thread count; one fresh interpreter
                   per setting (torch's thread count is per OS thread once a thread has used it), the
                   settings' interpreters run round-robin.
d. odd batches:    ``mlp`` versus ``mlp_buckets`` at batch sizes that are not multiples of 8.

Everything is measured round-robin (rotating the order each round), a batch of calls per sample; tables
show medians. Run: ``.venv/bin/python bench/bench_batching.py [--quick] [--json PATH] [--profile]``.
These numbers say nothing about Neuron devices.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_core import clean_env, install, median, parse_args, pip_wheel, run, run_meta, table, write_project

PACKAGE = "batchbench"
WIDTH, HIDDEN = 256, 1024  # ~200 us per call at batch 8 on one thread of this machine's CPU (AMD EPYC)
BUCKET = 8  # mlp's only batch bucket
DYNAMIC_BATCHES = (8, 64)
REPLICA_BATCH = 64
ODD_BATCHES = (1, 3, 9, 17, 65)
REPLICAS_NOTE = (
    "a replica's worker thread ran with more OpenMP threads than torch.get_num_threads() says: the\n  "
    "runtime's pool initializer (hatch_neuron/runtime/model.py) should have applied torch's thread count."
)
OVERHEAD_GOAL = 1.05  # loader/raw at most this, for a call of ~100 us or more
DYNAMIC_GOAL = 0.9  # dynamic/ideal throughput at least this

#: Repeat counts: (quick, full).
SETTINGS = {
    "call_rounds": (7, 41),
    "call_batch_s": (0.02, 0.05),
    "replica_rounds": (2, 5),  # interpreters per setting, run round-robin
    "replica_samples": (3, 7),  # interleaved samples per interpreter
    "replica_batch_s": (0.05, 0.1),
}

NETS = f"""
    import torch


    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(
                torch.nn.Linear({WIDTH}, {HIDDEN}), torch.nn.ReLU(), torch.nn.Linear({HIDDEN}, {WIDTH})
            )

        def forward(self, x):
            return self.net(x)


    def make_mlp():
        return MLP().eval()
"""

NEURON_TOML = f"""
    [tool.neuron]
    targets = ["cpu"]

    [tool.neuron.models.mlp]
    factory = "{PACKAGE}.nets:make_mlp"
    inputs = [{{ shape = [{BUCKET}, {WIDTH}] }}]
    dynamic-batch = true

    [tool.neuron.models.mlp_buckets]
    factory = "{PACKAGE}.nets:make_mlp"
    inputs = [{{ shape = [1, {WIDTH}] }}]
    batch-buckets = [1, {BUCKET}]
    dynamic-batch = true
"""


# ----------------------------------------------------------------------------------------------- build


def make_project(root: Path) -> Path:
    return write_project(root, PACKAGE, textwrap.dedent(NETS).lstrip(), textwrap.dedent(NEURON_TOML))


def build_wheel(project: Path, out: Path) -> tuple[float, Path]:
    seconds, _, wheel = pip_wheel(project, out, clean_env(), PACKAGE)
    return seconds, wheel


# ------------------------------------------------------------------------------------------ child side


def run_child(mode: str, payload: dict[str, Any], site: Path, cwd: Path, **env: str) -> dict[str, Any]:
    """Run this script as ``--child mode`` in a fresh interpreter importing from ``site``; return its JSON."""
    cmd = [sys.executable, Path(__file__).resolve(), "--child", mode, "--payload", json.dumps(payload)]
    out = run(cmd, env=clean_env(PYTHONPATH=str(site), **env), cwd=cwd).stdout
    lines = out.strip().splitlines()
    for line in lines[:-1]:  # anything the child printed before its JSON (e.g. a profile)
        print(line)
    return json.loads(lines[-1])


def time_calls(fn: Callable[[], Any], n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls, garbage collection off (one untimed call first)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n
    finally:
        gc.enable()


def interleave(funcs: dict[str, Callable[[], Any]], rounds: int, batch_s: float) -> dict[str, list[float]]:
    """Per-call microseconds of each function: ``rounds`` samples each, round-robin, rotating the order;
    every sample is a batch of the same number of calls, sized so the slowest function's takes ~batch_s."""
    for fn in funcs.values():  # warm-up: TorchScript's profiling executor optimises over the first calls
        for _ in range(20):
            fn()
    slowest = max(min(time_calls(fn, 5) for _ in range(3)) for fn in funcs.values())
    n = max(5, round(batch_s / slowest))
    names = list(funcs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_calls(funcs[name], n) * 1e6)
    return samples


def load_models(payload: dict[str, Any]) -> tuple[Any, Any]:
    import batchbench.compiled as compiled
    import torch
    from batchbench import nets

    assert Path(compiled.__file__).is_relative_to(payload["site"]), compiled.__file__
    assert compiled.mlp.target == "cpu", compiled.mlp.target
    eager = nets.make_mlp()
    generator = torch.Generator().manual_seed(0)
    for model in (compiled.mlp, compiled.mlp_buckets):  # sanity: we time the right thing
        for batch in sorted({*DYNAMIC_BATCHES, *ODD_BATCHES}):
            x = torch.rand(batch, WIDTH, generator=generator)
            with torch.no_grad():
                want = eager(x)
            got = model(x)
            assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-3, atol=1e-4), (model, batch)
    return compiled, generator


def profile_lines(fn: Callable[[], Any], calls: int, title: str) -> list[str]:
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    lines = [line for line in out.getvalue().splitlines()[4:] if line.strip()]
    return [f"\n-- cProfile, {calls} calls of {title} (by tottime; cProfile inflates Python code) --", *lines]


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    """Tables a, b and d: one process, one torch thread, HATCH_NEURON_REPLICAS=1."""
    import torch

    torch.set_num_threads(1)
    compiled, generator = load_models(payload)
    mlp, buckets = compiled.mlp, compiled.mlp_buckets
    assert mlp.replicas == 1 and buckets.replicas == 1, (mlp.replicas, buckets.replicas)
    raw = mlp.load()
    inputs = {b: torch.rand(b, WIDTH, generator=generator) for b in sorted({*DYNAMIC_BATCHES, *ODD_BATCHES})}
    # the ideal: ceil(b / 8) raw calls on inputs already cut into chunks of 8 (padding not counted)
    chunks = {b: list(inputs[b].split(BUCKET)) for b in DYNAMIC_BATCHES}

    def raw_calls(parts: list[Any]) -> Callable[[], Any]:
        def call() -> None:
            with torch.no_grad():
                for part in parts:
                    raw(part)

        return call

    with torch.no_grad():  # the raw module takes the compiled shape only
        assert torch.allclose(raw(inputs[BUCKET])[0], mlp(inputs[BUCKET]))
    funcs: dict[str, Callable[[], Any]] = {}
    for b in DYNAMIC_BATCHES:
        funcs[f"loader_{b}"] = lambda x=inputs[b]: mlp(x)
        funcs[f"ideal_{b}"] = raw_calls(chunks[b])
    a_b = interleave(funcs, payload["rounds"], payload["batch_s"])

    odd: dict[str, Callable[[], Any]] = {}
    for b in ODD_BATCHES:
        odd[f"mlp_{b}"] = lambda x=inputs[b]: mlp(x)
        odd[f"mlp_buckets_{b}"] = lambda x=inputs[b]: buckets(x)
    d = interleave(odd, max(3, payload["rounds"] // 3), payload["batch_s"])

    profile: list[str] = []
    if payload["profile"]:
        for b in DYNAMIC_BATCHES:
            calls = 3000 if b == BUCKET else 400
            profile += profile_lines(lambda x=inputs[b]: mlp(x), calls, f"compiled.mlp at batch {b}")

    def artifact_calls(model: Any, b: int) -> list[int]:
        sizes = {0: b}
        return [model.policy.bucket({0: stop - start})[0] for start, stop in model.policy.pieces(sizes, 1)]

    return {
        "threads": torch.get_num_threads(),
        "samples_us": {**a_b, **d},
        "artifact_calls": {
            name: {b: artifact_calls(model, b) for b in ODD_BATCHES}
            for name, model in (("mlp", mlp), ("mlp_buckets", buckets))
        },
        "profile": "\n".join(profile),
    }


def omp_max_threads() -> int | None:
    """``omp_get_max_threads()`` of the OpenMP runtime torch loaded, on the calling thread (None: none).

    torch applies its thread count to a thread's OpenMP settings lazily, on that thread's first
    ``torch.get_num_threads()`` or parallel op; until then a new thread has OpenMP's default (one thread per
    CPU), which is what its matrix multiplications use.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return int(ctypes.CDLL(path).omp_get_max_threads())
        except (OSError, AttributeError):
            continue
    return None


def child_replicas(payload: dict[str, Any]) -> dict[str, Any]:
    """Table c: one setting (HATCH_NEURON_REPLICAS from the environment, thread count from the payload)."""
    import torch

    if payload["threads"] == 1:
        torch.set_num_threads(1)  # before any model call, so the replicas' worker threads start with it
    compiled, generator = load_models(payload)
    mlp = compiled.mlp
    assert mlp.replicas == int(os.environ["HATCH_NEURON_REPLICAS"]), mlp.replicas
    x = torch.rand(REPLICA_BATCH, WIDTH, generator=generator)
    wall, cpu = time.perf_counter(), time.process_time()
    samples = interleave({"loader": lambda: mlp(x)}, payload["samples"], payload["batch_s"])
    cpu_per_wall = (time.process_time() - cpu) / (time.perf_counter() - wall)
    worker_threads = None
    if mlp._pool is not None:  # the OpenMP team size each worker thread ran with, then what torch says
        workers = mlp.replicas - 1  # the calling thread runs one replica's chunks itself
        barrier = threading.Barrier(workers)

        def probe(_: int) -> tuple[int | None, int]:
            used = omp_max_threads()  # read first: torch.get_num_threads() sets it on this thread
            barrier.wait(timeout=10)  # one probe per worker thread
            return used, torch.get_num_threads()

        worker_threads = list(mlp._pool.map(probe, range(workers)))
    return {
        "threads": torch.get_num_threads(),
        "worker_threads": worker_threads,
        "cpu_per_wall": cpu_per_wall,
        "samples_us": samples,
    }


# ----------------------------------------------------------------------------------------- parent side


def bench_calls(site: Path, cwd: Path, rounds: int, batch_s: float, profile: bool) -> dict[str, Any]:
    payload = {"site": str(site), "rounds": rounds, "batch_s": batch_s, "profile": profile}
    got = run_child("calls", payload, site, cwd, HATCH_NEURON_REPLICAS="1")
    med = {name: median(values) for name, values in got["samples_us"].items()}
    overhead = {
        "loader_us": med[f"loader_{BUCKET}"],
        "raw_us": med[f"ideal_{BUCKET}"],
        "ratio": med[f"loader_{BUCKET}"] / med[f"ideal_{BUCKET}"],
        "overhead_us": med[f"loader_{BUCKET}"] - med[f"ideal_{BUCKET}"],
    }
    overhead["met"] = overhead["ratio"] <= OVERHEAD_GOAL
    dynamic = {}
    for b in DYNAMIC_BATCHES:
        loader_us, ideal_us = med[f"loader_{b}"], med[f"ideal_{b}"]
        dynamic[b] = {
            "raw_calls": math.ceil(b / BUCKET),
            "loader_us": loader_us,
            "ideal_us": ideal_us,
            "loader_samples_s": b / loader_us * 1e6,
            "ideal_samples_s": b / ideal_us * 1e6,
            "ratio": ideal_us / loader_us,
            "met": ideal_us / loader_us >= DYNAMIC_GOAL,
        }
    odd = {
        b: {
            "mlp_us": med[f"mlp_{b}"],
            "mlp_buckets_us": med[f"mlp_buckets_{b}"],
            "mlp_calls": got["artifact_calls"]["mlp"][str(b)],
            "mlp_buckets_calls": got["artifact_calls"]["mlp_buckets"][str(b)],
        }
        for b in ODD_BATCHES
    }
    return {
        "rounds": rounds,
        "batch_s": batch_s,
        "threads": got["threads"],
        "overhead": overhead,
        "dynamic": dynamic,
        "odd": odd,
        "profile": got["profile"],
        "samples_us": got["samples_us"],
    }


def bench_replicas(site: Path, cwd: Path, rounds: int, samples: int, batch_s: float) -> dict[str, Any]:
    pressure = cpu_pressure()
    settings = [(threads, replicas) for threads in (1, 0) for replicas in (1, 2)]  # threads 0: torch default
    got: dict[tuple[int, int], list[dict[str, Any]]] = {s: [] for s in settings}
    for index in range(rounds):
        shift = index % len(settings)
        for threads, replicas in settings[shift:] + settings[:shift]:
            payload = {"site": str(site), "threads": threads, "samples": samples, "batch_s": batch_s}
            child = run_child("replicas", payload, site, cwd, HATCH_NEURON_REPLICAS=str(replicas))
            got[(threads, replicas)].append(child)
    rows = {}
    for threads in (1, 0):
        per = {}
        for replicas in (1, 2):
            children = got[(threads, replicas)]
            values = [v for child in children for v in child["samples_us"]["loader"]]
            us = median(values)
            per[replicas] = {
                "us": us,
                "samples_s": REPLICA_BATCH / us * 1e6,
                "torch_threads": children[0]["threads"],
                "worker_threads": children[0]["worker_threads"],
                "cpu_per_wall": median([child["cpu_per_wall"] for child in children]),
                "samples_us": values,
            }
        rows["1" if threads == 1 else "default"] = {**per, "ratio": per[1]["us"] / per[2]["us"]}
    return {
        "rounds": rounds,
        "samples_per_interpreter": samples,
        "batch_s": batch_s,
        "pressure_start": pressure,
        "settings": rows,
    }


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last 10 s in which some runnable task waited for a CPU, in %."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=") for item in first.split()[1:])
    return float(fields["avg10"])


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def print_overhead(calls: dict[str, Any]) -> None:
    o = calls["overhead"]
    print(
        f"\n== a. loader call overhead: mlp at batch {BUCKET} ([{BUCKET}, {WIDTH}]), "
        f"torch.set_num_threads({calls['threads']}), median of {calls['rounds']} interleaved rounds =="
    )
    rows = [
        ["compiled.mlp(x)  (CompiledModel)", f"{o['loader_us']:.1f}"],
        ["raw module (mlp.load()) under torch.no_grad()", f"{o['raw_us']:.1f}"],
    ]
    print(table(["call", "us/call"], rows))
    print(
        f"ratio loader/raw: {o['ratio']:.3f}   overhead: {o['overhead_us']:+.1f} us   "
        f"goal: loader/raw <= {OVERHEAD_GOAL:.2f} (within 5% for a call of ~100 us or more): "
        f"{verdict(o['met'])}"
    )


def print_dynamic(calls: dict[str, Any]) -> None:
    print(
        f"\n== b. dynamic batching throughput: compiled.mlp (one bucket, {BUCKET}) versus the ideal of "
        f"ceil(b/{BUCKET}) raw calls at batch {BUCKET}, one torch thread =="
    )
    rows = [
        [
            str(b),
            str(d["raw_calls"]),
            f"{d['loader_us']:.1f}",
            f"{d['loader_samples_s']:,.0f}",
            f"{d['ideal_us']:.1f}",
            f"{d['ideal_samples_s']:,.0f}",
            f"{d['ratio']:.3f}",
            verdict(d["met"]),
        ]
        for b, d in calls["dynamic"].items()
    ]
    headers = ["batch", "raw calls", "dynamic us", "dynamic samples/s", "ideal us", "ideal samples/s"]
    print(table([*headers, "dynamic/ideal", f"goal >= {DYNAMIC_GOAL}"], rows))
    print(
        "ideal = the raw module called in a loop on the input already cut into chunks of "
        f"{BUCKET} (no split, padding, trim or torch.cat); dynamic/ideal is the throughput ratio."
    )


def print_replicas(rep: dict[str, Any]) -> None:
    print(
        f"\n== c. replicas: compiled.mlp at batch {REPLICA_BATCH}, HATCH_NEURON_REPLICAS=2 versus 1 "
        f"(median over {rep['rounds']} interpreters x {rep['samples_per_interpreter']} samples each), "
        f"{os.cpu_count()} CPUs =="
    )
    rows = []
    for name, row in rep["settings"].items():
        label = "set_num_threads(1)" if name == "1" else f"default ({row[1]['torch_threads']})"
        workers = row[2]["worker_threads"]
        rows.append(
            [
                label,
                f"{row[1]['us']:.1f}",
                f"{row[1]['samples_s']:,.0f}",
                f"{row[1]['cpu_per_wall']:.2f}",
                f"{row[2]['us']:.1f}",
                f"{row[2]['samples_s']:,.0f}",
                f"{row[2]['cpu_per_wall']:.2f}",
                f"{row['ratio']:.2f}",
                " ".join(f"{omp}/{tor}" for omp, tor in workers) if workers else "-",
            ]
        )
    headers = ["torch threads", "r=1 us", "r=1 samples/s", "r=1 cpu/wall", "r=2 us", "r=2 samples/s"]
    print(table([*headers, "r=2 cpu/wall", "r2/r1 throughput", "r=2 workers omp/torch"], rows))
    print(
        "cpu/wall: CPU seconds the interpreter used per wall second while measuring (2.0 = both CPUs busy).\n"
        f"r=2 workers omp/torch: per worker thread of the replicas (each runs its {BUCKET}-row chunks), the "
        "OpenMP team size it ran\n  the model with (omp_get_max_threads()) / torch.get_num_threads() asked "
        "afterwards on the same thread."
    )
    oversubscribed = [
        name
        for name, row in rep["settings"].items()
        if row[2]["worker_threads"] and any(omp and omp > tor for omp, tor in row[2]["worker_threads"])
    ]
    if oversubscribed:
        print(
            "NOTE: the replicas' worker threads ran with more OpenMP threads than torch's setting "
            f"(rows: {', '.join(oversubscribed)}): {REPLICAS_NOTE}"
        )
    if rep["pressure_start"] and rep["pressure_start"] > 5:
        print(
            f"NOTE: CPU pressure was {rep['pressure_start']:.0f}% before this table (other processes wanted "
            "these CPUs); replicas need a second free CPU, so compare these numbers on a quiet machine."
        )


def print_odd(calls: dict[str, Any]) -> None:
    print(
        f"\n== d. odd batch sizes: mlp (batch bucket {BUCKET}) versus mlp_buckets "
        f"(batch-buckets = [1, {BUCKET}]), both dynamic-batch, one torch thread =="
    )
    rows = []
    for b, d in calls["odd"].items():
        rows.append(
            [
                str(b),
                "+".join(map(str, d["mlp_calls"])),
                f"{d['mlp_us']:.1f}",
                "+".join(map(str, d["mlp_buckets_calls"])),
                f"{d['mlp_buckets_us']:.1f}",
                f"{d['mlp_us'] / d['mlp_buckets_us']:.2f}",
            ]
        )
    headers = ["batch", "mlp buckets run", "mlp us", "mlp_buckets buckets run", "mlp_buckets us"]
    print(table([*headers, "mlp/mlp_buckets"], rows))


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    args = parse_args(__doc__)

    if args.child:
        payload = json.loads(args.payload)
        result = child_calls(payload) if args.child == "calls" else child_replicas(payload)
        print(json.dumps(result))
        return

    meta = run_meta(args.quick, SETTINGS)
    settings = meta["settings"]
    print(f"hatch-neuron batching benchmark ({meta['mode']})   repo {meta['git']}")
    print(
        "These are numbers for the portable `cpu` target (TorchScript on the host CPU), NOT Neuron numbers."
    )
    print(
        f"torch {meta['torch']} (default threads: {meta['torch_default_threads']}), "
        f"Python {meta['python']}, {meta['machine']}"
    )
    meta["loadavg_start"] = list(os.getloadavg())
    meta["cpu_pressure_start"] = cpu_pressure()
    print(
        f"CPUs: {meta['cpu_count']} (usable by this process: {meta['cpus_usable']}); "
        f"load average at start: {meta['loadavg_start'][0]:.2f} (1 min); "
        f"CPU pressure (PSI some avg10): {meta['cpu_pressure_start']}%"
    )
    print(
        f"model: Linear({WIDTH}, {HIDDEN})-ReLU-Linear({HIDDEN}, {WIDTH}); mlp: inputs [{BUCKET}, {WIDTH}], "
        f"dynamic-batch; mlp_buckets: batch-buckets [1, {BUCKET}], dynamic-batch"
    )

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-batching-") as tmp:
        work = Path(tmp)
        build_s, wheel = build_wheel(make_project(work / "project"), work / "dist")
        site = install(wheel, work / "site")
        print(f"built and installed {wheel.name} in {build_s:.1f} s (pip wheel) + install")
        calls = bench_calls(site, work, settings["call_rounds"], settings["call_batch_s"], args.profile)
        print_overhead(calls)
        print_dynamic(calls)
        replicas = bench_replicas(
            site, work, settings["replica_rounds"], settings["replica_samples"], settings["replica_batch_s"]
        )
        print_replicas(replicas)
        print_odd(calls)
        if calls["profile"]:
            print(calls["profile"])
    meta["build_s"] = build_s
    meta["total_s"] = time.perf_counter() - started
    meta["loadavg_end"] = list(os.getloadavg())
    meta["cpu_pressure_end"] = cpu_pressure()
    print(
        f"\ntotal benchmark time: {meta['total_s']:.0f} s; load average at end: {meta['loadavg_end'][0]:.2f} "
        f"(1 min), CPU pressure {meta['cpu_pressure_end']}% (anything else running shares these CPUs)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"meta": meta, "calls": calls, "replicas": replicas}
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
