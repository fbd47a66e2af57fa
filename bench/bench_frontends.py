"""What build isolation costs, frontend by frontend, side by side (see bench/README.md).

example_project (``cpu``) built into a wheel by each frontend with an empty compile cache (cold) and a
filled one (warm), against ``pip wheel --no-build-isolation`` in this ``.venv``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import harness as h

PIP = "python -m pip wheel --no-deps -w {out} ."
#: name -> (command, extra environment, in --quick)
FRONTENDS = {
    "pip wheel --no-build-isolation": (f"{PIP} --no-build-isolation", {}, True),
    "pip wheel": (PIP, {}, True),
    "pip wheel, hook disabled": (PIP, {"HATCH_BUILD_NO_HOOKS": "true"}, True),
    "python -m build --wheel": ("python -m build --wheel -o {out} .", {}, False),
    "uv build --wheel": ("uv build --wheel -o {out} .", {}, True),
    "hatch build -t wheel": ("hatch --no-interactive build -t wheel {out}", {}, False),
}


def frontend_env(work: Path) -> dict[str, str]:
    """hatch-neuron from a wheel of this checkout; torch pinned (pip: constraints.txt; uv: exact version)."""
    links = work / "links"
    h.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", links, h.ROOT], h.clean_env())
    (work / "torch.txt").write_text(f"torch=={importlib.metadata.version('torch')}\n")
    finds = [str(links), *os.environ.get("PIP_FIND_LINKS", "").split()]
    env = h.clean_env(HATCH_NEURON_TARGETS="cpu", HATCH_NEURON_CACHE="on", HATCH_DATA_DIR=str(work / "hatch"))
    env.update(PIP_FIND_LINKS=" ".join(finds), UV_FIND_LINKS=",".join(finds))
    return {**env, "UV_BUILD_CONSTRAINT": str(work / "torch.txt"), "UV_CONSTRAINT": str(work / "torch.txt")}


def build(name: str, work: Path, env: dict[str, str]) -> dict[str, float]:
    """The cold and warm build of a fresh copy of example_project with its own cache."""
    template, extra, _ = FRONTENDS[name]
    slug = name.replace(" ", "_").replace(",", "")
    project, out = h.copy_example(work / slug / "example_project"), work / slug / "out"
    env = {**env, **extra, "HATCH_NEURON_CACHE_DIR": str(work / slug / "cache")}
    tool, *words = template.split()
    times = {}
    for kind in ("cold_s", "warm_s"):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        h.run([Path(sys.executable).parent / tool, *(w.format(out=out) for w in words)], env, cwd=project)
        times[kind] = time.perf_counter() - start
        assert len(list(out.glob("example_models-*.whl"))) == 1, f"{name}: expected one wheel in {out}"
    return times


@h.bench("frontends", "The portable `cpu` target", {}, "pip and uv only (about 4 minutes)")
def main(args: argparse.Namespace, _meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    env = frontend_env(work)
    for name in (n for n, (_, _, quick) in FRONTENDS.items() if quick or not args.quick):
        r = results[name] = build(name, work, env)
        print(f"  {name}: cold {r['cold_s']:.1f} s, warm {r['warm_s']:.1f} s")
    base = results["pip wheel --no-build-isolation"]["warm_s"]
    print("\n== wheel build of example_project (cpu), seconds; warm = compile cache filled ==")
    rows = [
        [n, f"{r['cold_s']:.1f}", f"{r['warm_s']:.1f}", f"{r['warm_s'] / base:.1f}x"]
        for n, r in results.items()
    ]
    print(h.table(["frontend", "cold", "warm", "warm / warm no-isolation"], rows))


if __name__ == "__main__":
    main()
