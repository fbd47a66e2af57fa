"""Compile fan-out: a cold build of slow-compiling jobs on 1 machine, N shard machines, a Ray cluster.

A project with one model at ``jobs`` batch buckets on the ``inductor`` target (each job a real
AOTInductor compile: seconds of C++ compiling, mostly on one core). Each "machine" is a
``hatch-neuron compile`` process with its own empty compile cache and one compile slot
(``HATCH_NEURON_JOBS=1``, as a host where the compiler is the bottleneck); the N shards run at once. The
Ray row runs ``hatch-neuron compile`` with ``executor = "ray"`` on a local cluster with 2 worker CPUs, its
node cache empty; its time includes the build host's own pass (tracing, checking each returned artifact
against eager). All "machines" here share this host's CPUs, so the speed-up cannot pass the CPU count:
both ideals are printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness as h

SETTINGS = dict(jobs=(4, 8), shards=([2], [2, 4]))
NETS = """\
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, 16),
    ).eval()
"""
TOML = """
[tool.neuron]
targets = ["inductor"]
cache = "on"

[tool.neuron.models.mlp]
factory = "fanout_pkg.nets:make"
inputs = [{{ shape = [1, 64] }}]
batch-buckets = {buckets}
"""
COMPILE = [sys.executable, "-m", "hatch_neuron", "compile"]


def machines(project: Path, work: Path, name: str, shards: int, **env: str) -> float:
    """Wall seconds for ``shards`` compile processes at once, each with an empty cache of its own."""
    start = time.perf_counter()
    running = []
    for k in range(1, shards + 1):
        cache = work / f"cache-{name}-{k}"
        extra = dict(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(cache), HATCH_NEURON_JOBS="1", **env)
        shard = ["--shard", f"{k}/{shards}"] if shards > 1 else []
        command = [*COMPILE, str(project), *shard]
        running.append(
            subprocess.Popen(
                command, env=h.clean_env(**extra), stdout=subprocess.PIPE, text=True, stderr=subprocess.STDOUT
            )
        )
    for process in running:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{name}: hatch-neuron compile failed:\n{output[-4000:]}")
        print(f"  {name}: {h.summary(output)}")
        for line in output.splitlines():
            if "on ray node" in line or "ray: " in line or " s (jobs = " in line:
                print(f"    {line.strip()}")
    return time.perf_counter() - start


def ray_cluster(work: Path) -> tuple[str, dict[str, str]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    temp = Path(os.path.join("/tmp", f"ray-bench-{os.getpid()}"))
    env = h.clean_env(HATCH_NEURON_CACHE_DIR=str(work / "node-cache"))
    ray = Path(sys.executable).parent / "ray"
    h.run(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            port,
            "--num-cpus",
            "2",
            "--temp-dir",
            temp,
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env,
    )
    return f"127.0.0.1:{port}", env


@h.bench("fanout", "the inductor target (real AOTInductor compiles)", SETTINGS, "4 jobs, 2 shards only")
def main(_args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    jobs = meta["settings"]["jobs"]
    buckets = list(range(1, jobs + 1))
    project = h.write_project(work / "proj", "fanout_pkg", NETS, TOML.format(buckets=buckets))
    cpus = meta["cpus_usable"]
    rows: list[list[Any]] = []
    one = machines(project, work, "1 machine", 1)
    results["1 machine"] = one
    rows.append(["1 machine", f"{one:.1f}", "1.00x", "1x", "1x"])
    for shards in meta["settings"]["shards"]:
        seconds = machines(project, work, f"{shards} shards", shards)
        results[f"{shards} shards"] = seconds
        rows.append(
            [
                f"{shards} shard machines",
                f"{seconds:.1f}",
                f"{one / seconds:.2f}x",
                f"{shards}x",
                f"{min(shards, cpus)}x",
            ]
        )
    address, ray_env = ray_cluster(work)
    try:
        seconds = machines(
            project, work, "ray", 1, HATCH_NEURON_EXECUTOR="ray", HATCH_NEURON_RAY_ADDRESS=address
        )
    finally:
        subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "stop", "--force"], env=ray_env, capture_output=True
        )
    results["ray (2 workers)"] = seconds
    rows.append(
        ["ray executor, 2 workers", f"{seconds:.1f}", f"{one / seconds:.2f}x", "2x", f"{min(2, cpus)}x"]
    )
    print(f"\n== cold build of {jobs} inductor jobs: wall seconds and speed-up over 1 machine ==")
    print(h.table(["how", "seconds", "speed-up", "ideal", f"ideal on {cpus} CPUs"], rows))


if __name__ == "__main__":
    main()
