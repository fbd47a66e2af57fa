"""Benchmark the compile cache and parallel compiles, side by side in one run.

1. cold vs warm: ``pip wheel --no-build-isolation --no-deps`` of a copy of example_project for one target
   (``HATCH_NEURON_TARGETS``), with an empty cache (cold), again with nothing changed (warm: the factories
   do not run), again after a comment was edited in the models' file (warm, keyed by the traced
   computation: the factories run, nothing compiles), and the same project with the hook disabled
   (``HATCH_BUILD_NO_HOOKS=true``). Goals: warm >= 10x faster than cold for ``inductor``; warm within 1.5x of
   the hook-disabled build for every target.
2. jobs: the cold build with ``HATCH_NEURON_JOBS=1`` versus ``2`` (cache off). Goal: >= 1.6x on 2 CPUs.

Run: ``.venv/bin/python bench/bench_cache.py [--quick] [--json PATH]``; ``--quick`` measures the ``cpu``
target only, the full run adds ``inductor`` (AOTInductor, about 10 minutes on 2 CPUs). These are numbers
for the portable targets on the host CPU, not Neuron numbers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench_core import EXAMPLE, clean_env, median, parse_args, pip_wheel, run_meta, table

#: (quick, full)
SETTINGS = {
    "targets": (["cpu"], ["cpu", "inductor"]),
    "warm_repeats": (3, 5),
    "jobs_targets": (["cpu"], ["cpu", "inductor"]),
}


def build(project: Path, out: Path, **env: str) -> tuple[float, str]:
    shutil.rmtree(out, ignore_errors=True)
    seconds, output, _ = pip_wheel(project, out, clean_env(**env))
    return seconds, output


def counts(output: str) -> str:
    """The build's summary: how many artifacts were compiled and how many came from the cache."""
    for line in output.splitlines():
        if "artifact(s) compiled" in line:
            return line.split("hatch-neuron: ", 1)[1].split(", in ")[0]
    return "hook did not run"


def bench_target(work: Path, target: str, repeats: int) -> dict[str, Any]:
    project = shutil.copytree(EXAMPLE, work / target / "example_project")
    cache = work / target / "cache"
    env = {"HATCH_NEURON_TARGETS": target, "HATCH_NEURON_CACHE_DIR": str(cache), "HATCH_NEURON_CACHE": "on"}
    cold, cold_out = build(project, work / "out", **env)
    warm = [build(project, work / "out", **env) for _ in range(repeats)]
    nets = project / "example_models" / "nets.py"
    nets.write_text(nets.read_text().replace("# a comment", "") + "\n# edited: a comment only\n")
    edited, edited_out = build(project, work / "out", **env)
    plain = [build(project, work / "out", HATCH_BUILD_NO_HOOKS="true")[0] for _ in range(repeats)]
    return {
        "cold_s": cold,
        "cold": counts(cold_out),
        "warm_s": median([s for s, _ in warm]),
        "warm": counts(warm[-1][1]),
        "edited_s": edited,
        "edited": counts(edited_out),
        "no_hook_s": median(plain),
    }


def bench_jobs(work: Path, target: str) -> dict[str, Any]:
    project = shutil.copytree(EXAMPLE, work / f"jobs-{target}" / "example_project")
    times = {}
    for jobs in ("1", "2"):
        env = {"HATCH_NEURON_TARGETS": target, "HATCH_NEURON_CACHE": "off", "HATCH_NEURON_JOBS": jobs}
        times[jobs], output = build(project, work / "out", **env)
        times[f"{jobs}_counts"] = counts(output)
    return times


def main() -> None:
    args = parse_args(__doc__, quick_help="the cpu target only (about 2 minutes)")
    meta = run_meta(args.quick, SETTINGS)
    settings = meta["settings"]
    print(f"hatch-neuron cache benchmark ({meta['mode']})   repo {meta['git']}")
    print("Portable targets on the host CPU (cpu: TorchScript, inductor: AOTInductor), NOT Neuron numbers.")
    print(f"torch {meta['torch']}, Python {meta['python']}, CPUs usable: {meta['cpus_usable']}")
    results: dict[str, Any] = {"meta": meta, "targets": {}, "jobs": {}}
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-cache-") as tmp:
        work = Path(tmp)
        for target in settings["targets"]:
            results["targets"][target] = bench_target(work, target, settings["warm_repeats"])
        for target in settings["jobs_targets"]:
            results["jobs"][target] = bench_jobs(work, target)

    print("\n== 1. cold vs warm build of example_project (pip wheel --no-build-isolation), seconds ==")
    rows = []
    for target, r in results["targets"].items():
        rows.append(
            [
                target,
                f"{r['cold_s']:.1f}",
                f"{r['warm_s']:.2f}",
                f"{r['edited_s']:.1f}",
                f"{r['no_hook_s']:.2f}",
                f"{r['cold_s'] / r['warm_s']:.1f}x",
                f"{r['warm_s'] / r['no_hook_s']:.2f}x",
            ]
        )
    headers = ["target", "cold", "warm", "warm, comment edited", "hook disabled", "cold/warm", "warm/no hook"]
    print(table(headers, rows))
    for target, r in results["targets"].items():
        print(f"{target}: cold: {r['cold']}; warm: {r['warm']}; comment edited: {r['edited']}")
    print("warm: median of repeated builds with nothing changed (direct hits: factories not run)")
    for target, r in results["targets"].items():
        if target == "inductor":
            met = "MET" if r["cold_s"] / r["warm_s"] >= 10 else "NOT MET"
            print(f"goal: inductor warm >= 10x faster than cold: {met}")
        met = "MET" if r["warm_s"] / r["no_hook_s"] <= 1.5 else "NOT MET"
        print(f"goal: {target} warm within 1.5x of the hook-disabled build: {met}")

    print("\n== 2. parallel compiles: cold build (cache off), HATCH_NEURON_JOBS=1 vs 2, seconds ==")
    rows = [
        [target, f"{r['1']:.1f}", f"{r['2']:.1f}", f"{r['1'] / r['2']:.2f}x", r["2_counts"]]
        for target, r in results["jobs"].items()
    ]
    print(table(["target", "jobs=1", "jobs=2", "speed-up", "artifacts"], rows))
    for target, r in results["jobs"].items():
        met = "MET" if r["1"] / r["2"] >= 1.6 else "NOT MET"
        print(f"goal: {target} jobs=2 >= 1.6x faster than jobs=1: {met}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
