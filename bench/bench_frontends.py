"""Benchmark what build isolation costs, frontend by frontend, side by side in one run.

A wheel of example_project (``HATCH_NEURON_TARGETS=cpu``) is built by each frontend, twice: with an empty
compile cache (cold) and again with the cache filled (warm: nothing compiles, so what is left is the
frontend, its build environment and torch going into it). The baseline is ``pip wheel
--no-build-isolation`` in this repository's ``.venv``; the last column is each warm build over the warm
baseline. ``pip wheel, hook disabled`` (``HATCH_BUILD_NO_HOOKS=true``: the hook neither asks for torch nor
compiles) shows what an isolated build costs without torch.

Run: ``.venv/bin/python bench/bench_frontends.py [--quick] [--json PATH]``; ``--quick`` measures pip
(isolated and not) and uv only. Isolated builds take hatch-neuron from a wheel of this checkout and torch
from pip's find-links folders (this machine's CPU wheel), pinned like the tests pin it. These are numbers
for the portable ``cpu`` target on the host CPU, not Neuron numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_core import EXAMPLE, ROOT, clean_env, run, run_meta, table
from bench_core import parse_args as parse_common

BIN = Path(sys.executable).parent

#: name -> (command template, extra environment, in --quick)
FRONTENDS: dict[str, tuple[str, dict[str, str], bool]] = {
    "pip wheel --no-build-isolation": (
        "python -m pip wheel --no-deps --no-build-isolation -w {out} {project}",
        {},
        True,
    ),
    "pip wheel": ("python -m pip wheel --no-deps -w {out} {project}", {}, True),
    "pip wheel, hook disabled": (
        "python -m pip wheel --no-deps -w {out} {project}",
        {"HATCH_BUILD_NO_HOOKS": "true"},
        True,
    ),
    "python -m build --wheel": ("python -m build --wheel -o {out} {project}", {}, False),
    "uv build --wheel": ("uv build --wheel -o {out} {project}", {}, True),
    "hatch build -t wheel": ("hatch --no-interactive build -t wheel {out}", {}, False),
}


def frontend_env(work: Path) -> dict[str, str]:
    """As tests/test_frontends.py: hatch-neuron from a wheel of this checkout, torch pinned."""
    links = work / "links"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", links, ROOT], env=clean_env())
    constraints = work / "torch.txt"
    constraints.write_text(f"torch=={importlib.metadata.version('torch')}\n")
    local = os.environ.get("PIP_FIND_LINKS", "").split()
    return clean_env(
        HATCH_NEURON_TARGETS="cpu",
        HATCH_NEURON_CACHE="on",
        PIP_FIND_LINKS=" ".join([str(links), *local]),
        UV_FIND_LINKS=",".join([str(links), *local]),
        UV_BUILD_CONSTRAINT=str(constraints),
        UV_CONSTRAINT=str(constraints),
        HATCH_DATA_DIR=str(work / "hatch-data"),
    )


def build(template: str, project: Path, out: Path, env: dict[str, str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    tool, *words = template.split()
    cmd = [BIN / tool, *(w.format(project=project, out=out) for w in words)]
    start = time.perf_counter()
    run(cmd, env=env, cwd=project)
    seconds = time.perf_counter() - start
    if len(list(out.glob("example_models-*.whl"))) != 1:
        raise SystemExit(f"{template}: expected one wheel in {out}")
    return seconds


def bench_frontend(work: Path, name: str, env: dict[str, str]) -> dict[str, float]:
    template, extra, _ = FRONTENDS[name]
    slug = name.replace(" ", "_").replace(",", "")
    project = shutil.copytree(EXAMPLE, work / slug / "example_project")
    env = {**env, **extra, "HATCH_NEURON_CACHE_DIR": str(work / slug / "cache")}
    cold = build(template, project, work / slug / "out", env)
    warm = build(template, project, work / slug / "out", env)
    return {"cold_s": cold, "warm_s": warm}


def main() -> None:
    args = parse_common(__doc__, quick_help="pip and uv only (about 3 minutes)")
    meta = run_meta(args.quick, {})
    print(f"hatch-neuron frontend benchmark ({meta['mode']})   repo {meta['git']}")
    print(f"torch {meta['torch']}, Python {meta['python']}, {meta['machine']}, CPUs: {meta['cpu_count']}")
    print("Portable `cpu` target on the host CPU, NOT Neuron numbers.")
    names = [n for n, (_, _, quick) in FRONTENDS.items() if quick or not args.quick]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-frontends-") as tmp:
        work = Path(tmp)
        env = frontend_env(work)
        for name in names:
            results[name] = bench_frontend(work, name, env)
            print(f"  {name}: cold {results[name]['cold_s']:.1f} s, warm {results[name]['warm_s']:.1f} s")
    base = results["pip wheel --no-build-isolation"]["warm_s"]
    print("\n== wheel build of example_project (cpu), seconds; warm = compile cache filled ==")
    rows = [
        [name, f"{r['cold_s']:.1f}", f"{r['warm_s']:.1f}", f"{r['warm_s'] / base:.1f}x"]
        for name, r in results.items()
    ]
    print(table(["frontend", "cold", "warm", "warm / warm no-isolation"], rows))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
