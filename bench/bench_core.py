"""Benchmark the core costs of hatch-neuron on the portable ``cpu`` target (TorchScript), side by side.

1. build:    ``pip wheel --no-build-isolation --no-deps`` of example_project with ``HATCH_NEURON_TARGETS=cpu``
             versus the same project with the hook line removed; plus the per-model compile times the build
             printed.
2. load:     in fresh interpreters, ``import example_models.compiled`` (the loader loads all four models at
             import) versus ``torch.jit.load`` of the four artifact files directly.
3. per-call: the loader's CompiledModel versus the ScriptModule it wraps (called under torch.no_grad() and
             under torch.inference_mode(); the one matching the loader's grad mode is the baseline) versus
             eager PyTorch, interleaved round-robin, medians, one torch thread.

Run: ``.venv/bin/python bench/bench_core.py [--quick] [--json PATH] [--profile]``. These numbers say nothing
about Neuron devices.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
CONSTRAINTS = ROOT / "scripts" / "constraints.txt"
HOOK_LINE = "[tool.hatch.build.hooks.neuron]"
PACKAGE = "example_models"
MODELS = ("scale_add", "conv", "classifier", "encoder")
VARIANTS = ("loader", "raw_no_grad", "raw_inference", "eager")
COMPILE_LINE = re.compile(
    r"hatch-neuron: (?P<model>\S+) \[(?P<target>[^\]]+)\]: compiled in (?P<seconds>[\d.]+) s, "
    r"(?P<size>[\d.]+ \w+), (?P<check>.+?)\s*$"
)

#: Repeat counts: (quick, full).
SETTINGS = {
    "build_repeats": (1, 3),
    "load_repeats": (3, 9),
    "call_rounds": (7, 31),
    "call_batch_s": (0.01, 0.04),
}


# --------------------------------------------------------------------------------------------- helpers


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without hatch-neuron overrides, torch pinned for pip (as tests/conftest.py does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCH_NEURON_", "TORCH_NEURONX_"))}
    env.pop("PYTHONPATH", None)
    env.update(PIP_CONSTRAINT=str(CONSTRAINTS), PIP_BUILD_CONSTRAINT=str(CONSTRAINTS))
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.update(HATCH_NEURON_CACHE="off")  # builds measure compiling unless a script turns the cache on
    env.update(extra)
    return env


def run(cmd: list[Any], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        raise SystemExit(
            f"command failed ({result.returncode}): {cmd}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def run_child(mode: str, payload: dict[str, Any], site: Path, cwd: Path) -> dict[str, Any]:
    """Run this script as ``--child mode`` in a fresh interpreter importing from ``site``; return its JSON."""
    env = clean_env(PYTHONPATH=str(site))
    cmd = [sys.executable, Path(__file__).resolve(), "--child", mode, "--payload", json.dumps(payload)]
    out = run(cmd, env=env, cwd=cwd).stdout
    lines = out.strip().splitlines()
    for line in lines[:-1]:  # anything the child printed before its JSON (e.g. a profile)
        print(line)
    return json.loads(lines[-1])


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[c if isinstance(c, str) else f"{c}" for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])

    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])])


def git_state() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev}{' (+ uncommitted changes)' if dirty else ''}"


# ----------------------------------------------------------------------------------------------- build


def copy_project(dest: Path, *, hook: bool) -> Path:
    shutil.copytree(
        EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info")
    )
    if not hook:
        pyproject = dest / "pyproject.toml"
        lines = pyproject.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.strip() != HOOK_LINE]
        if len(kept) != len(lines) - 1:
            raise SystemExit(f"expected exactly one {HOOK_LINE!r} line in {EXAMPLE / 'pyproject.toml'}")
        pyproject.write_text("".join(kept))
    return dest


def pip_wheel(
    project: Path, out: Path, env: dict[str, str] | None = None, package: str = PACKAGE
) -> tuple[float, str, Path]:
    """``pip wheel --no-build-isolation --no-deps`` of ``project`` into a new ``out``: (seconds, output, the
    one ``package`` wheel). ``env`` defaults to ``clean_env(HATCH_NEURON_TARGETS="cpu")``."""
    out.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-v",
        "--no-build-isolation",
        "--no-deps",
        "-w",
        out,
        project,
    ]
    start = time.perf_counter()
    result = run(cmd, env=clean_env(HATCH_NEURON_TARGETS="cpu") if env is None else env)
    seconds = time.perf_counter() - start
    wheels = sorted(out.glob(f"{package}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {package} wheel in {out}, got {sorted(out.iterdir())}")
    return seconds, result.stdout + result.stderr, wheels[0]


def write_project(root: Path, package: str, nets: str, neuron_toml: str) -> Path:
    """A Hatchling project using the hook, written as tests/conftest.py's ``make_project`` writes one
    (flat layout): ``<package>/nets.py`` holds ``nets``; ``neuron_toml`` is the ``[tool.neuron]`` part."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "nets.py").write_text(nets)
    header = f"""\
        [build-system]
        requires = ["hatchling", "hatch-neuron"]
        build-backend = "hatchling.build"

        [project]
        name = "{package}"
        version = "0.1.0"

        [tool.hatch.build.targets.wheel]
        packages = ["{package}"]

        [tool.hatch.build.hooks.neuron]

        """
    (root / "pyproject.toml").write_text(textwrap.dedent(header) + neuron_toml)
    return root


def bench_build(work: Path, repeats: int) -> tuple[dict[str, Any], Path]:
    projects = {
        "hook": copy_project(work / "src-hook" / "example_project", hook=True),
        "plain": copy_project(work / "src-plain" / "example_project", hook=False),
    }
    times: dict[str, list[float]] = {"hook": [], "plain": []}
    compiles: list[dict[str, dict[str, Any]]] = []
    wheels: dict[str, Path] = {}
    for index in range(repeats):
        order = ("hook", "plain") if index % 2 == 0 else ("plain", "hook")
        for kind in order:
            seconds, log, wheel = pip_wheel(projects[kind], work / f"wheels-{kind}-{index}")
            times[kind].append(seconds)
            wheels[kind] = wheel
            found = {m["model"]: m.groupdict() for m in map(COMPILE_LINE.search, log.splitlines()) if m}
            if kind == "hook":
                if set(found) != set(MODELS):
                    raise SystemExit(f"hook build printed compile lines for {sorted(found)}:\n{log[-3000:]}")
                compiles.append(found)
            elif found:
                raise SystemExit(f"the build without the hook still compiled: {sorted(found)}")
    hook_s, plain_s = median(times["hook"]), median(times["plain"])
    per_model = {
        name: {
            "seconds": median([float(c[name]["seconds"]) for c in compiles]),
            "size": compiles[-1][name]["size"],
            "target": compiles[-1][name]["target"],
            "check": compiles[-1][name]["check"],
        }
        for name in MODELS
    }
    result = {
        "repeats": repeats,
        "hook_s": times["hook"],
        "plain_s": times["plain"],
        "hook_median_s": hook_s,
        "plain_median_s": plain_s,
        "ratio": hook_s / plain_s,
        "extra_s": hook_s - plain_s,
        "compile_sum_s": sum(m["seconds"] for m in per_model.values()),
        "models": per_model,
        "wheel_bytes": {kind: wheel.stat().st_size for kind, wheel in wheels.items()},
    }
    return result, wheels["hook"]


def print_build(build: dict[str, Any], torch_import_s: float | None) -> None:
    print(f"\n== 1. build: pip wheel --no-build-isolation --no-deps (median of {build['repeats']}) ==")
    rows = [
        [
            "with hook (HATCH_NEURON_TARGETS=cpu)",
            f"{build['hook_median_s']:.2f}",
            build["wheel_bytes"]["hook"],
        ],
        ["hook line removed", f"{build['plain_median_s']:.2f}", build["wheel_bytes"]["plain"]],
    ]
    print(table(["build", "seconds", "wheel bytes"], rows))
    print(f"ratio hook/plain: {build['ratio']:.1f}x   extra: {build['extra_s']:.2f} s")
    print("\nper-model compile times as printed by the build (0.1 s resolution):")
    rows = [
        [n, m["target"], f"{m['seconds']:.1f}", m["size"], m["check"]] for n, m in build["models"].items()
    ]
    print(table(["model", "target", "compile s", "artifact", "check"], rows))
    rest = build["extra_s"] - build["compile_sum_s"]
    print(
        f"sum of printed compile times: {build['compile_sum_s']:.1f} s; the other {rest:.1f} s of the extra "
        "time is outside what the build reports (one worker process per model, each importing torch"
        + (f"; 'import torch' alone takes {torch_import_s:.2f} s here)" if torch_import_s else ")")
    )


# ------------------------------------------------------------------------------------------------ load


def install(wheel: Path, target: Path) -> Path:
    run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
        env=clean_env(),
    )
    return target


def bench_load(site: Path, cwd: Path, repeats: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"loader": [], "jit": []}
    torch_import: list[float] = []
    for index in range(repeats):
        order = ("loader", "jit") if index % 2 == 0 else ("jit", "loader")
        for kind in order:
            got = run_child(f"load-{kind}", {"site": str(site)}, site, cwd)
            samples[kind].append(got["seconds"])
            torch_import.append(got["torch_import_s"])
    loader, jit = median(samples["loader"]), median(samples["jit"])
    return {
        "repeats": repeats,
        "loader_s": samples["loader"],
        "jit_s": samples["jit"],
        "loader_median_s": loader,
        "jit_median_s": jit,
        "ratio": loader / jit,
        "extra_ms": (loader - jit) * 1e3,
        "torch_import_median_s": median(torch_import),
    }


def print_load(load: dict[str, Any]) -> None:
    print(
        f"\n== 2. load: fresh interpreter per sample, torch already imported (median of {load['repeats']}) =="
    )
    rows = [
        ["import example_models.compiled (4 models)", f"{load['loader_median_s'] * 1e3:.1f}"],
        ["torch.jit.load of the same artifact files", f"{load['jit_median_s'] * 1e3:.1f}"],
    ]
    print(table(["what", "ms"], rows))
    print(f"ratio loader/jit.load: {load['ratio']:.2f}x   extra: {load['extra_ms']:.1f} ms")
    print(
        f"(for scale: 'import torch' itself took {load['torch_import_median_s'] * 1e3:.0f} ms, not included)"
    )


def child_load(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    import torch

    torch_import_s = time.perf_counter() - start
    if kind == "loader":
        start = time.perf_counter()
        import example_models.compiled as compiled

        seconds = time.perf_counter() - start
        assert Path(compiled.__file__).is_relative_to(payload["site"]), compiled.__file__
        assert all(getattr(compiled, name).loaded for name in MODELS)
    else:
        files = sorted((Path(payload["site"]) / PACKAGE / "_hatch_neuron").glob("*.pt"))
        start = time.perf_counter()
        for f in files:
            torch.jit.load(str(f), map_location="cpu")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "torch_import_s": torch_import_s}


# -------------------------------------------------------------------------------------------- per call


def input_specs() -> dict[str, list[dict[str, Any]]]:
    """Each model's declared inputs, as written in example_project/pyproject.toml."""
    config = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["neuron"]["models"]
    return {name: config[name]["inputs"] for name in MODELS}


def make_inputs(specs: list[dict[str, Any]], generator: Any) -> tuple[Any, ...]:
    import torch

    tensors = []
    for spec in specs:
        dtype = getattr(torch, spec.get("dtype", "float32"))
        if dtype.is_floating_point:
            tensors.append(torch.rand(spec["shape"], generator=generator, dtype=dtype))
        else:
            low, high = int(spec.get("low", 0)), int(spec.get("high", 2))
            tensors.append(torch.randint(low, high, spec["shape"], generator=generator, dtype=dtype))
    return tuple(tensors)


def child_calls(payload: dict[str, Any]) -> dict[str, Any]:
    import gc

    import torch

    torch.set_num_threads(1)
    import example_models.compiled as compiled
    from example_models import nets

    assert Path(compiled.__file__).is_relative_to(payload["site"]), compiled.__file__
    generator = torch.Generator().manual_seed(0)
    funcs: dict[str, dict[str, Any]] = {}
    inputs: dict[str, tuple[Any, ...]] = {}
    for name in MODELS:
        loader = getattr(compiled, name)
        inputs[name] = make_inputs(payload["specs"][name], generator)
        module = loader.module_for(*inputs[name])  # the artifact of the bucket these inputs run on
        eager_model = getattr(nets, f"make_{name}")()

        def raw_no_grad(*args: Any, _module: Any = module) -> Any:
            with torch.no_grad():
                return _module(*args)

        def raw_inference(*args: Any, _module: Any = module) -> Any:
            with torch.inference_mode():
                return _module(*args)

        def eager(*args: Any, _model: Any = eager_model) -> Any:
            with torch.inference_mode():
                return _model(*args)

        funcs[name] = {
            "loader": loader,
            "raw_no_grad": raw_no_grad,
            "raw_inference": raw_inference,
            "eager": eager,
        }

    # Sanity: the loader's output matches eager (so we time the right thing), then warm every variant up
    # (TorchScript's profiling executor optimises the graph over the first calls). Which grad mode the loader
    # runs the module in shows in its outputs: inference tensors come only from inference_mode.
    loader_modes = set()
    for name in MODELS:
        got, want = funcs[name]["loader"](*inputs[name]), funcs[name]["eager"](*inputs[name])
        got, want = (got, want) if isinstance(got, dict) else ({"out": got}, {"out": want})
        loader_modes.update("inference_mode" if t.is_inference() else "no_grad" for t in got.values())
        for key in want:
            assert torch.allclose(got[key], want[key], rtol=1e-3, atol=1e-4), (name, key)
        for fn in funcs[name].values():
            for _ in range(20):
                fn(*inputs[name])

    def batch(fn: Any, args: tuple[Any, ...], n: int) -> float:
        gc.collect()
        gc.disable()
        try:
            fn(*args)  # untimed: the first call after gc.collect() runs on cold caches
            start = time.perf_counter()
            for _ in range(n):
                fn(*args)
            return time.perf_counter() - start
        finally:
            gc.enable()

    # The same number of calls per batch for every variant of a model, so that the slowest variant's batch
    # takes about batch_s (per-call estimates: the best of 3 batches of 20 calls).
    counts: dict[str, int] = {}
    for name in MODELS:
        slowest = max(min(batch(fn, inputs[name], 20) / 20 for _ in range(3)) for fn in funcs[name].values())
        counts[name] = max(20, round(payload["batch_s"] / slowest))

    samples = {name: {v: [] for v in VARIANTS} for name in MODELS}
    for round_index in range(payload["rounds"]):
        for name in MODELS:
            shift = round_index % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                n = counts[name]
                samples[name][variant].append(batch(funcs[name][variant], inputs[name], n) / n * 1e6)

    profile = []
    if payload.get("profile"):
        import cProfile
        import io
        import pstats

        for name in MODELS:
            profiler = cProfile.Profile()
            fn, args = funcs[name]["loader"], inputs[name]
            profiler.enable()
            for _ in range(2000):
                fn(*args)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
            profile.append(
                f"\n-- cProfile, 2000 loader calls of {name} (by tottime; cProfile inflates Python code) --"
            )
            profile += [line for line in out.getvalue().splitlines()[4:] if line.strip()]

    assert len(loader_modes) == 1, loader_modes
    return {
        "loader_mode": loader_modes.pop(),
        "profile": "\n".join(profile),
        "threads": torch.get_num_threads(),
        "counts": counts,
        "samples_us": samples,
        "shapes": {name: [list(t.shape) for t in inputs[name]] for name in MODELS},
    }


def bench_calls(site: Path, cwd: Path, rounds: int, batch_s: float, profile: bool) -> dict[str, Any]:
    payload = {
        "site": str(site),
        "specs": input_specs(),
        "rounds": rounds,
        "batch_s": batch_s,
        "profile": profile,
    }
    got = run_child("calls", payload, site, cwd)
    mode = got["loader_mode"]
    baseline = "raw_inference" if mode == "inference_mode" else "raw_no_grad"
    models = {}
    for name in MODELS:
        med = {v: median(got["samples_us"][name][v]) for v in VARIANTS}
        models[name] = {
            "shapes": got["shapes"][name],
            "median_us": med,
            "min_us": {v: min(got["samples_us"][name][v]) for v in VARIANTS},
            "loader_over_raw": med["loader"] / med[baseline],
            "overhead_us": med["loader"] - med[baseline],
            "loader_over_eager": med["loader"] / med["eager"],
            "no_grad_over_inference": med["raw_no_grad"] / med["raw_inference"],
            "calls_per_batch": got["counts"][name],
            "samples_us": got["samples_us"][name],
        }
    return {
        "rounds": rounds,
        "batch_s": batch_s,
        "threads": got["threads"],
        "loader_mode": mode,
        "baseline": baseline,
        "profile": got["profile"],
        "models": models,
    }


def print_calls(calls: dict[str, Any]) -> None:
    print(
        f"\n== 3. per call: median us/call over {calls['rounds']} interleaved rounds, "
        f"torch.set_num_threads({calls['threads']}) =="
    )
    rows = []
    for name, m in calls["models"].items():
        med = m["median_us"]
        rows.append(
            [
                name,
                "x".join("[" + ",".join(map(str, s)) + "]" for s in m["shapes"]),
                f"{med['loader']:.1f}",
                f"{med['raw_no_grad']:.1f}",
                f"{med['raw_inference']:.1f}",
                f"{med['eager']:.1f}",
                f"{m['loader_over_raw']:.2f}",
                f"{m['overhead_us']:+.1f}",
                f"{m['loader_over_eager']:.2f}",
                f"{m['no_grad_over_inference']:.2f}",
            ]
        )
    headers = ["model", "inputs", "loader", "raw no_grad", "raw inf_mode", "eager", "loader/raw"]
    print(table([*headers, "overhead us", "loader/eager", "no_grad/inf_mode"], rows))
    baseline = calls["baseline"].replace("raw_inference", "raw inf_mode").replace("_", " ")
    print(
        "loader = example_models.compiled.<model>(...) (CompiledModel: input checks, grad mode, output "
        f"structure);\n  it runs the module under {calls['loader_mode']} (detected from its outputs), so "
        f"loader/raw and overhead use '{baseline}'.\n"
        "raw = the ScriptModule from <model>.load(), called under torch.no_grad() / torch.inference_mode();\n"
        "eager = nets.make_<model>() under torch.inference_mode()."
    )
    if calls["profile"]:
        print(calls["profile"])


# ------------------------------------------------------------------------------------------------ main


def run_meta(quick: bool, choices: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """What a benchmark run's numbers depend on: versions, machine, repository state, and the settings
    picked from ``choices`` (each a (quick, full) pair)."""
    import torch

    settings = {key: value[0 if quick else 1] for key, value in choices.items()}

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_default_threads": torch.get_num_threads(),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
        "git": git_state(),
        "mode": "quick" if quick else "full",
        "settings": settings,
        "target": "cpu",
    }


def parse_args(
    doc: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    quick_help: str = "fewer repeats (under a minute)",
) -> argparse.Namespace:
    """The options every bench script takes (``--child``/``--payload`` are for its own subprocesses);
    ``extra`` adds a script's own options to the same parser."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the loader's calls")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args(__doc__)

    if args.child:
        payload = json.loads(args.payload)
        result = child_calls(payload) if args.child == "calls" else child_load(args.child[5:], payload)
        print(json.dumps(result))
        return

    meta = run_meta(args.quick, SETTINGS)
    settings = meta["settings"]
    print(f"hatch-neuron core benchmark ({meta['mode']})   repo {meta['git']}")
    print(f"torch {meta['torch']}, Python {meta['python']}, {meta['machine']}")
    meta["loadavg_start"] = list(os.getloadavg())
    print(
        f"CPUs: {meta['cpu_count']} (usable by this process: {meta['cpus_usable']}); "
        f"load average at start: {meta['loadavg_start'][0]:.2f} (1 min)"
    )
    print(
        "These are numbers for the portable `cpu` target (TorchScript on the host CPU), NOT Neuron numbers."
    )

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-") as tmp:
        work = Path(tmp)
        build, wheel = bench_build(work, settings["build_repeats"])
        site = install(wheel, work / "site")
        load = bench_load(site, work, settings["load_repeats"])
        print_build(build, load["torch_import_median_s"])
        print_load(load)
        calls = bench_calls(site, work, settings["call_rounds"], settings["call_batch_s"], args.profile)
        print_calls(calls)
    meta["total_s"] = time.perf_counter() - started
    meta["loadavg_end"] = list(os.getloadavg())
    print(
        f"\ntotal benchmark time: {meta['total_s']:.0f} s; load average at end: {meta['loadavg_end'][0]:.2f} "
        "(1 min; anything else running shares these CPUs)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"meta": meta, "build": build, "load": load, "calls": calls}, indent=2)
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
