"""What every bench script shares: the environment, commands, builds, child interpreters, timing, tables."""

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

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
CONSTRAINTS = ROOT / "scripts" / "constraints.txt"
CPU = "The portable `cpu` target (TorchScript)"  # what the cpu-only benches measure, for the header
#: A model's line in the build log, and the build's summary line.
COMPILE_LINE = re.compile(
    r"hatch-neuron: (?P<model>\S+) \[(?P<target>[^\]]+)\]: compiled in (?P<seconds>[\d.]+) s, "
    r"(?P<size>[\d.]+ \w+), (?P<check>.+?)\s*$"
)
SUMMARY_LINE = re.compile(
    r"hatch-neuron: (?P<counts>(?P<compiled>\d+) artifact\(s\) compiled, (?P<cached>\d+) from the cache.*?), "
    r"in [\d.]+ s \(jobs = (?P<jobs>\d+)"
)
median = statistics.median
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without hatch-neuron overrides, torch pinned for pip, the compile cache off, and
    bytecode written: with ``PYTHONDONTWRITEBYTECODE`` every timed import would compile hatch-neuron's
    runtime from source (12-20 ms), which an installed package does not (pip writes its ``.pyc``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCH_NEURON_", "TORCH_NEURONX_"))}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PIP_CONSTRAINT=str(CONSTRAINTS), PIP_BUILD_CONSTRAINT=str(CONSTRAINTS), PIP_NO_INPUT="1")
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", HATCH_NEURON_CACHE="off")
    return {**env, **extra}


def run(cmd: list[Any], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise SystemExit(f"command failed ({result.returncode}): {cmd}\n{tail}")
    return result


def pip_wheel(project: Path, out: Path, env: dict[str, str], package: str) -> tuple[float, str, Path]:
    """``pip wheel --no-build-isolation --no-deps`` into a fresh ``out``: (seconds, log, the wheel)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = run([*PIP_WHEEL, "-w", out, project], env)
    seconds = time.perf_counter() - start
    wheels = sorted(out.glob(f"{package}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {package} wheel in {out}, got {sorted(out.iterdir())}")
    return seconds, result.stdout + result.stderr, wheels[0]


def summary(log: str) -> str:
    """The build's summary: artifacts compiled and taken from the cache."""
    found = [m["counts"] for m in map(SUMMARY_LINE.search, log.splitlines()) if m]
    return found[-1] if found else "hook did not run"


def install(wheel: Path, target: Path) -> Path:
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel], clean_env())
    return target


def copy_example(dest: Path) -> Path:
    return shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "build", "dist"))


def write_project(root: Path, package: str, nets: str, neuron_toml: str) -> Path:
    """A flat Hatchling project using the hook: ``<package>/nets.py`` holds ``nets``."""
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
    (root / "pyproject.toml").write_text(textwrap.dedent(header) + textwrap.dedent(neuron_toml))
    return root


def child(script: str, mode: str, payload: dict[str, Any], site: Path, cwd: Path, **env: str) -> Any:
    """Run ``script --child mode`` in a fresh interpreter importing from ``site``; return its last line's
    JSON (lines before it, e.g. a profile, are printed)."""
    cmd = [sys.executable, Path(script).resolve(), "--child", mode, "--payload", json.dumps(payload)]
    lines = run(cmd, clean_env(PYTHONPATH=str(site), **env), cwd).stdout.strip().splitlines()
    print("\n".join(lines[:-1]), end="\n" if lines[:-1] else "")
    return json.loads(lines[-1])


def check_site(module: Any, payload: dict[str, Any]) -> None:
    assert Path(module.__file__).is_relative_to(payload["site"]), module.__file__


def make_inputs(specs: list[dict[str, Any]], generator: Any) -> tuple[Any, ...]:
    """Tensors for ``[tool.neuron]`` input specs: floats in [0, 1), integers in [low, high)."""
    import torch

    def one(shape: list[int], dtype: Any, low: int = 0, high: int = 2, **_: Any) -> Any:
        if dtype.is_floating_point:
            return torch.rand(shape, generator=generator, dtype=dtype)
        return torch.randint(int(low), int(high), shape, generator=generator, dtype=dtype)

    return tuple(one(**{**s, "dtype": getattr(torch, s.get("dtype", "float32"))}) for s in specs)


def close(got: Any, want: Any, rtol: float = 1e-3, atol: float = 1e-4) -> float | None:
    """None when ``got`` matches ``want`` (tensor or dict of tensors), else the largest absolute error."""
    import torch

    pairs = [(got[k], want[k]) for k in want] if isinstance(want, dict) else [(got, want)]
    if all(g.shape == w.shape and torch.allclose(g, w, rtol=rtol, atol=atol) for g, w in pairs):
        return None
    return max(float((g - w).abs().max()) if g.shape == w.shape else float("inf") for g, w in pairs)


def time_calls(fn: Callable[[], Any], n: int, warm: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds per call over ``n`` calls, garbage collection off; with ``warm``, one untimed
    call first (the first call after gc.collect() runs on cold caches)."""
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


def alternate(kinds: list[Any], repeats: int, measure: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    """``repeats`` results of ``measure(kind)`` for each kind, round-robin with a rotating order."""
    got: dict[Any, list[Any]] = {kind: [] for kind in kinds}
    for index in range(repeats):
        for kind in kinds[index % len(kinds) :] + kinds[: index % len(kinds)]:
            got[kind].append(measure(kind))
    return got


def interleave(funcs: dict[str, Callable[[], Any]], rounds: int, batch_s: float) -> dict[str, Any]:
    """``rounds`` samples (us/call) of each function, round-robin with a rotating order. A sample is a
    batch of calls taking ~``batch_s`` (sized per function; one call for slower ones, not warmed). Also
    the medians and each function's CPU seconds per wall second."""
    for fn in funcs.values():  # warm-up: TorchScript's profiling executor optimises over the first calls
        start, calls = time.perf_counter(), 0
        while calls < 20 and (calls < 3 or time.perf_counter() - start < 1.0):
            fn()
            calls += 1
    per_call = {name: min(time_calls(fn, 1)[0] for _ in range(3)) for name, fn in funcs.items()}
    counts = {name: max(1, round(batch_s / seconds)) for name, seconds in per_call.items()}
    got = alternate(
        list(funcs), rounds, lambda n: time_calls(funcs[n], counts[n], warm=per_call[n] < batch_s)
    )
    samples = {name: [wall * 1e6 for wall, _ in values] for name, values in got.items()}
    cpu = {name: sum(c for _, c in values) / sum(w for w, _ in values) for name, values in got.items()}
    return {
        "median_us": {name: median(values) for name, values in samples.items()},
        "cpu_per_wall": cpu,
        "calls_per_sample": counts,
        "samples_us": samples,
    }


def profile_lines(fn: Callable[[], Any], calls: int, title: str) -> list[str]:
    """A cProfile of ``calls`` calls of ``fn``, by tottime."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    lines = [line for line in out.getvalue().splitlines()[4:] if line.strip()]
    return [f"\n-- cProfile, {calls} calls of {title} (by tottime; cProfile inflates Python code) --", *lines]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "(nothing measured)"
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)

    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])])


def goal(ratio: float, limit: float, at_most: bool = True) -> str:
    """``ratio`` against its goal: ``1.23x (goal <= 2x: MET)``."""
    met = ratio <= limit if at_most else ratio >= limit
    return f"{ratio:.2f}x (goal {'<=' if at_most else '>='} {limit}x: {'MET' if met else 'NOT MET'})"


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last 10 s in which some runnable task waited for a CPU, in %."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return float(dict(item.split("=") for item in first.split()[1:])["avg10"])


def git_state() -> str:
    def git(*words: str) -> str:
        return subprocess.run(["git", "-C", ROOT, *words], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)" if dirty else "")


#: The ``--profile`` option of the scripts that time calls.
PROFILE = {"action": "store_true", "help": "also print a cProfile of the loader's calls"}


def bench(title: str, what: str, choices: dict, quick: str, modes: dict | None = None, **options: Any) -> Any:
    """Make ``run(args, meta, work, results)`` a bench script's main. Its options: ``--quick`` (``quick``
    is its help), ``--json PATH`` and ``options`` (``xla_python={...}``: ``--xla-python``). As a child
    (``--child MODE --payload JSON``) it prints the mode's result as JSON; else the header, ``run`` with
    a temporary folder and the results to fill, the footer, the JSON; ``run``'s value is the exit status."""

    def decorate(run: Callable[..., int | None]) -> Callable[[], None]:
        def main() -> None:
            doc = sys.modules[run.__module__].__doc__ or ""
            parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
            parser.add_argument("--quick", action="store_true", help=quick)
            parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
            hidden = {"help": argparse.SUPPRESS}
            for name, kwargs in {**options, "child": hidden, "payload": hidden}.items():
                parser.add_argument("--" + name.replace("_", "-"), **kwargs)
            args = parser.parse_args()
            if args.child:
                print(json.dumps((modes or {})[args.child](json.loads(args.payload))))
                return
            meta, results = start(title, args.quick, choices, what), {}
            with tempfile.TemporaryDirectory(prefix=f"hatch-neuron-bench-{title}-") as tmp:
                status = run(args, meta, Path(tmp), results)
            finish(meta, results, args.json)
            raise SystemExit(status or 0)

        return main

    return decorate


def finish(meta: dict[str, Any], results: dict[str, Any], path: Path | None) -> None:
    """Print the run's time and load at the end; write ``meta`` and ``results`` to ``path`` as JSON."""
    meta.update(total_s=time.perf_counter() - meta.pop("started"), loadavg_end=os.getloadavg()[0])
    print(
        f"\ntotal benchmark time: {meta['total_s']:.0f} s; load average at end {meta['loadavg_end']:.2f} "
        f"(1 min), CPU pressure {cpu_pressure()}% (anything else running shares these CPUs)"
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, **results}, indent=2, default=str))
        print(f"wrote {path}")


def start(title: str, quick: bool, choices: dict[str, tuple[Any, Any]], what: str) -> dict[str, Any]:
    """Print the run's header and return its metadata; ``settings`` are ``choices``' (quick, full) picks."""
    import torch

    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_default_threads": torch.get_num_threads(),
        "git": git_state(),
        "mode": "quick" if quick else "full",
        "settings": {key: value[0 if quick else 1] for key, value in choices.items()},
        "loadavg_start": os.getloadavg()[0],
        "cpu_pressure_start": cpu_pressure(),
        "started": time.perf_counter(),
    }
    print(f"hatch-neuron {title} benchmark ({meta['mode']})   repo {meta['git']}")
    print(f"{what} on the host CPU, NOT Neuron numbers.")
    print(
        f"torch {meta['torch']} (default threads {meta['torch_default_threads']}), Python {meta['python']}, "
        f"{meta['machine']}; CPUs usable: {meta['cpus_usable']}; load average {meta['loadavg_start']:.2f} "
        f"(1 min), CPU pressure (PSI some avg10) {meta['cpu_pressure_start']}%"
    )
    return meta
