"""The compile cache and parallel compiles, side by side (see bench/README.md).

1. ``pip wheel`` of example_project, one target: cold (empty cache), warm, warm after a comment was edited,
   and with the hook disabled. 2. The cold build with ``HATCH_NEURON_JOBS=1`` versus ``2``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import harness as h

#: (quick, full)
SETTINGS = dict(targets=(["cpu"], ["cpu", "inductor"]), warm_repeats=(3, 5))


def build(project: Path, out: Path, **env: str) -> tuple[float, str]:
    seconds, log, _ = h.pip_wheel(project, out, h.clean_env(**env), "example_models")
    return seconds, h.summary(log)


def bench_target(work: Path, target: str, repeats: int) -> dict[str, Any]:
    project, out = h.copy_example(work / target / "example_project"), work / "out"
    env = dict(HATCH_NEURON_TARGETS=target, HATCH_NEURON_CACHE_DIR=str(work / target / "cache"))
    env["HATCH_NEURON_CACHE"] = "on"
    cold, cold_log = build(project, out, **env)
    warm = [build(project, out, **env) for _ in range(repeats)]
    nets = project / "example_models" / "nets.py"
    nets.write_text(nets.read_text() + "\n# edited: a comment only\n")
    edited, edited_log = build(project, out, **env)
    plain = [build(project, out, HATCH_BUILD_NO_HOOKS="true")[0] for _ in range(repeats)]
    jobs = {n: build(project, out, HATCH_NEURON_TARGETS=target, HATCH_NEURON_JOBS=n) for n in ("1", "2")}
    result = dict(cold_s=cold, cold=cold_log, edited_s=edited, edited=edited_log, jobs=jobs)
    result.update(warm_s=h.median(s for s, _ in warm), warm=warm[-1][1], no_hook_s=h.median(plain))
    return result


@h.bench(
    "cache", "Portable targets (cpu: TorchScript, inductor: AOTInductor)", SETTINGS, "the cpu target only"
)
def main(_args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    for target in meta["settings"]["targets"]:
        results[target] = bench_target(work, target, meta["settings"]["warm_repeats"])

    print("\n== 1. cold vs warm build of example_project (pip wheel --no-build-isolation), seconds ==")
    rows = []
    for target, r in results.items():
        rows.append([target, f"{r['cold_s']:.1f}", f"{r['warm_s']:.2f}", f"{r['edited_s']:.1f}"])
        rows[-1] += [f"{r['no_hook_s']:.2f}", f"{r['cold_s'] / r['warm_s']:.1f}x"]
        rows[-1].append(f"{r['warm_s'] / r['no_hook_s']:.2f}x")
    headers = ["target", "cold", "warm", "warm, comment edited", "hook disabled", "cold/warm"]
    print(h.table([*headers, "warm/no hook"], rows))
    for target, r in results.items():
        print(f"{target}: cold: {r['cold']}; warm (median, direct hits): {r['warm']}; edited: {r['edited']}")
        if target == "inductor":
            print(f"goal: inductor cold/warm: {h.goal(r['cold_s'] / r['warm_s'], 10, at_most=False)}")
        print(f"goal: {target} warm/hook disabled: {h.goal(r['warm_s'] / r['no_hook_s'], 1.5)}")

    print("\n== 2. parallel compiles: cold build (cache off), HATCH_NEURON_JOBS=1 vs 2, seconds ==")
    jobs = {target: r["jobs"] for target, r in results.items()}
    rows = [[t, f"{j['1'][0]:.1f}", f"{j['2'][0]:.1f}", j["2"][1]] for t, j in jobs.items()]
    print(h.table(["target", "jobs=1", "jobs=2", "artifacts"], rows))
    for target, j in jobs.items():
        print(f"goal: {target} jobs=1 / jobs=2: {h.goal(j['1'][0] / j['2'][0], 1.6, at_most=False)}")


if __name__ == "__main__":
    main()
