"""Batch buckets, dynamic batching and replicas on the portable ``cpu`` target, side by side.

One MLP, Linear(256, 1024)-ReLU-Linear(1024, 256), as ``mlp`` (``[8, 256]``, ``dynamic-batch``: one bucket)
and ``mlp_buckets`` (``batch-buckets = [1, 8]``, ``dynamic-batch``), built and installed in a temporary
folder, measured in fresh interpreters: a. call overhead, b. dynamic batching against ``ceil(b / 8)`` raw
calls, c. ``HATCH_NEURON_REPLICAS=2`` versus 1, d. odd batch sizes (see bench/README.md).
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import harness as h

PACKAGE = "batchbench"
WIDTH, HIDDEN = 256, 1024  # ~200 us per call at batch 8 on one thread of a 2-CPU AMD EPYC VM
BUCKET = 8  # mlp's only batch bucket
DYNAMIC_BATCHES = (8, 64)
REPLICA_BATCH = 64
ODD_BATCHES = (1, 3, 9, 17, 65)
OVERHEAD_GOAL = 1.05  # loader/raw at most this, for a call of ~100 us or more
DYNAMIC_GOAL = 0.9  # dynamic/ideal throughput at least this
#: (quick, full); replica_rounds: interpreters per setting, replica_samples: samples in each
SETTINGS = dict(call_rounds=(7, 41), call_batch_s=(0.02, 0.05), replica_rounds=(2, 5))
SETTINGS.update(replica_samples=(3, 7), replica_batch_s=(0.05, 0.1))
NETS = f"""\
import torch


def make_mlp():
    torch.manual_seed(0)
    layers = [torch.nn.Linear({WIDTH}, {HIDDEN}), torch.nn.ReLU(), torch.nn.Linear({HIDDEN}, {WIDTH})]
    return torch.nn.Sequential(*layers).eval()
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


def load_models(payload: dict[str, Any]) -> tuple[Any, Any]:
    import batchbench.compiled as compiled
    import torch
    from batchbench import nets

    h.check_site(compiled, payload)
    assert compiled.mlp.target == "cpu", compiled.mlp.target
    eager, generator = nets.make_mlp(), torch.Generator().manual_seed(0)
    for model in (compiled.mlp, compiled.mlp_buckets):  # sanity: we time the right thing
        for batch in sorted({*DYNAMIC_BATCHES, *ODD_BATCHES}):
            x = torch.rand(batch, WIDTH, generator=generator)
            with torch.no_grad():
                assert h.close(model(x), eager(x)) is None, (model, batch)
    return compiled, generator


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    """Tables a, b and d: one process, one torch thread, HATCH_NEURON_REPLICAS=1."""
    import torch

    torch.set_num_threads(1)
    compiled, generator = load_models(payload)
    mlp, buckets = compiled.mlp, compiled.mlp_buckets
    assert mlp.replicas == 1 and buckets.replicas == 1, (mlp.replicas, buckets.replicas)
    raw = mlp.load()
    inputs = {b: torch.rand(b, WIDTH, generator=generator) for b in sorted({*DYNAMIC_BATCHES, *ODD_BATCHES})}
    with torch.no_grad():  # the raw module takes the compiled shape only
        assert h.close(raw(inputs[BUCKET])[0], mlp(inputs[BUCKET])) is None

    def ideal(parts: list[Any]) -> Any:  # ceil(b / 8) raw calls on the input already cut into chunks
        def call() -> None:
            with torch.no_grad():
                for part in parts:
                    raw(part)

        return call

    funcs = {f"loader_{b}": lambda x=inputs[b]: mlp(x) for b in DYNAMIC_BATCHES}
    funcs.update({f"ideal_{b}": ideal(list(inputs[b].split(BUCKET))) for b in DYNAMIC_BATCHES})
    odd = {f"mlp_{b}": lambda x=inputs[b]: mlp(x) for b in ODD_BATCHES}
    odd.update({f"mlp_buckets_{b}": lambda x=inputs[b]: buckets(x) for b in ODD_BATCHES})
    medians = h.interleave(funcs, payload["rounds"], payload["batch_s"])["median_us"]
    medians.update(h.interleave(odd, max(3, payload["rounds"] // 3), payload["batch_s"])["median_us"])
    profile = []
    for b in DYNAMIC_BATCHES if payload["profile"] else ():
        profile += h.profile_lines(lambda x=inputs[b]: mlp(x), 3000 if b == BUCKET else 400, f"mlp at {b}")

    def runs(model: Any, b: int) -> list[int]:  # the bucket of each artifact call
        return [model.policy.bucket({0: end - begin})[0] for begin, end in model.policy.pieces({0: b}, 1)]

    runs_of = {
        name: {b: runs(m, b) for b in ODD_BATCHES} for name, m in (("mlp", mlp), ("mlp_buckets", buckets))
    }
    return dict(threads=torch.get_num_threads(), median_us=medians, runs=runs_of, profile=profile)


def omp_max_threads() -> int | None:
    """``omp_get_max_threads()`` of the OpenMP runtime torch loaded, on the calling thread (None: none).
    torch applies its thread count to a new thread lazily, on its first ``torch.get_num_threads()`` or
    parallel op; until then the thread has OpenMP's default, which its matrix multiplications use."""
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
    """Table c, one setting: HATCH_NEURON_REPLICAS from the environment, threads from the payload."""
    import torch

    if payload["threads"] == 1:
        torch.set_num_threads(1)  # before any model call, so the replicas' worker threads start with it
    compiled, generator = load_models(payload)
    mlp = compiled.mlp
    assert mlp.replicas == int(os.environ["HATCH_NEURON_REPLICAS"]), mlp.replicas
    x = torch.rand(REPLICA_BATCH, WIDTH, generator=generator)
    wall, cpu = time.perf_counter(), time.process_time()
    samples = h.interleave({"loader": lambda: mlp(x)}, payload["samples"], payload["batch_s"])["samples_us"]
    cpu_per_wall = (time.process_time() - cpu) / (time.perf_counter() - wall)
    workers = None
    if mlp._pool is not None:  # per worker thread: the OpenMP team size it ran with, then torch's count
        barrier = threading.Barrier(mlp.replicas - 1)  # the calling thread runs one replica's chunks

        def probe(_: int) -> tuple[int | None, int]:
            used = omp_max_threads()  # read first: torch.get_num_threads() sets it on this thread
            barrier.wait(timeout=10)  # one probe per worker thread
            return used, torch.get_num_threads()

        workers = list(mlp._pool.map(probe, range(mlp.replicas - 1)))
    threads = torch.get_num_threads()
    return dict(threads=threads, workers=workers, cpu_per_wall=cpu_per_wall, samples_us=samples["loader"])


def bench_replicas(site: Path, cwd: Path, settings: dict[str, Any]) -> dict[tuple[int, int], Any]:
    """Per (threads, replicas), threads 0 meaning torch's default: the children's results."""

    def measure(setting: tuple[int, int]) -> dict[str, Any]:
        payload = dict(site=str(site), threads=setting[0], samples=settings["replica_samples"])
        payload["batch_s"] = settings["replica_batch_s"]
        return h.child(__file__, "replicas", payload, site, cwd, HATCH_NEURON_REPLICAS=str(setting[1]))

    return h.alternate([(1, 1), (1, 2), (0, 1), (0, 2)], settings["replica_rounds"], measure)


def report(calls: dict[str, Any], replicas: dict[tuple[int, int], Any], rounds: int, pressure: Any) -> None:
    us = calls["median_us"]
    print(f"\n== a. loader call overhead: mlp at batch {BUCKET}, one torch thread, median of {rounds} ==")
    loader, raw = us[f"loader_{BUCKET}"], us[f"ideal_{BUCKET}"]
    rows = [["compiled.mlp(x) (CompiledModel)", f"{loader:.1f}"], ["mlp.load() under no_grad", f"{raw:.1f}"]]
    print(h.table(["call", "us/call"], rows))
    print(f"loader/raw: {h.goal(loader / raw, OVERHEAD_GOAL)}   overhead: {loader - raw:+.1f} us")

    print(f"\n== b. dynamic batching: compiled.mlp (bucket {BUCKET}) versus ceil(b/{BUCKET}) raw calls ==")
    rows = []
    for b in DYNAMIC_BATCHES:
        dynamic, ideal = us[f"loader_{b}"], us[f"ideal_{b}"]
        rows.append([b, math.ceil(b / BUCKET), f"{dynamic:.1f}", f"{b / dynamic * 1e6:,.0f}", f"{ideal:.1f}"])
        rows[-1] += [f"{b / ideal * 1e6:,.0f}", h.goal(ideal / dynamic, DYNAMIC_GOAL, at_most=False)]
    headers = ["batch", "raw calls", "dynamic us", "dynamic samples/s", "ideal us", "ideal samples/s"]
    print(h.table([*headers, "dynamic/ideal throughput"], rows))

    print(f"\n== c. replicas: compiled.mlp at batch {REPLICA_BATCH}, HATCH_NEURON_REPLICAS=2 versus 1 ==")
    rows, oversubscribed = [], False
    for threads in (1, 0):
        row, us_r = ["set_num_threads(1)" if threads else f"default ({replicas[(0, 1)][0]['threads']})"], []
        for children in (replicas[(threads, 1)], replicas[(threads, 2)]):
            us_r.append(h.median(v for child in children for v in child["samples_us"]))
            cpu = h.median(child["cpu_per_wall"] for child in children)
            row += [f"{us_r[-1]:.1f}", f"{REPLICA_BATCH / us_r[-1] * 1e6:,.0f}", f"{cpu:.2f}"]
        workers = replicas[(threads, 2)][0]["workers"] or []
        oversubscribed |= any(omp and omp > tor for omp, tor in workers)
        rows.append([*row, f"{us_r[0] / us_r[1]:.2f}", " ".join(f"{o}/{t}" for o, t in workers) or "-"])
    headers = ["torch threads", "r=1 us", "r=1 samples/s", "r=1 cpu/wall", "r=2 us", "r=2 samples/s"]
    print(h.table([*headers, "r=2 cpu/wall", "r2/r1 throughput", "r=2 workers omp/torch"], rows))
    print(
        "cpu/wall: CPU seconds per wall second (2.0: both CPUs busy); omp/torch: per replica worker thread,"
    )
    print("  the OpenMP team size it ran the model with / torch.get_num_threads() on that thread afterwards")
    if oversubscribed:
        print("NOTE: a replica's worker thread ran with more OpenMP threads than torch's setting")
    if pressure and pressure > 5:
        print(f"NOTE: CPU pressure {pressure:.0f}%: other processes wanted these CPUs (replicas need them)")

    print(f"\n== d. odd batch sizes: mlp (bucket {BUCKET}) versus mlp_buckets (buckets [1, {BUCKET}]) ==")
    rows = []
    for b in ODD_BATCHES:
        mlp, buckets = us[f"mlp_{b}"], us[f"mlp_buckets_{b}"]
        runs = ["+".join(map(str, calls["runs"][name][str(b)])) for name in ("mlp", "mlp_buckets")]
        rows.append([b, runs[0], f"{mlp:.1f}", runs[1], f"{buckets:.1f}", f"{mlp / buckets:.2f}"])
    headers = ["batch", "mlp buckets run", "mlp us", "mlp_buckets buckets run", "mlp_buckets us"]
    print(h.table([*headers, "mlp/mlp_buckets"], rows))
    print("".join(f"{line}\n" for line in calls["profile"]), end="")


MODES = {"calls": child_calls, "replicas": child_replicas}


@h.bench("batching", h.CPU, SETTINGS, "fewer repeats (under a minute)", MODES, profile=h.PROFILE)
def main(args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    settings = meta["settings"]
    project = h.write_project(work / "project", PACKAGE, NETS, NEURON_TOML)
    build_s, _, wheel = h.pip_wheel(project, work / "dist", h.clean_env(), PACKAGE)
    site = h.install(wheel, work / "site")
    print(f"built and installed {wheel.name} (pip wheel: {build_s:.1f} s)")
    payload = dict(site=str(site), rounds=settings["call_rounds"], batch_s=settings["call_batch_s"])
    payload["profile"] = args.profile
    calls = h.child(__file__, "calls", payload, site, work, HATCH_NEURON_REPLICAS="1")
    meta["cpu_pressure_replicas"] = h.cpu_pressure()
    replicas = bench_replicas(site, work, settings)
    report(calls, replicas, settings["call_rounds"], meta["cpu_pressure_replicas"])
    results.update(calls=calls, replicas={str(k): v for k, v in replicas.items()})


if __name__ == "__main__":
    main()
