"""Benchmark the remote compile cache: a machine with an empty local cache, with and without the remote.

An S3-compatible server (moto's server mode) runs on loopback. Machine A builds a copy of example_project
with its own local cache and the remote cache (read-write), compiling and uploading. Then, side by side,
for each round: machine B (a new, empty local cache) builds with the remote cache (it downloads), and
machine C (a new, empty local cache) builds without it (it compiles). All builds are ``pip wheel
--no-build-isolation --no-deps`` for one target (``HATCH_NEURON_TARGETS``).

Run: ``.venv/bin/python bench/bench_remote.py [--quick] [--json PATH]``; ``--quick`` measures the ``cpu``
target only, the full run adds ``inductor`` (AOTInductor compiles for a minute: where a shared cache
pays). Needs ``s3fs`` and ``moto[server]`` (the ``test`` extra). The server is on this machine, so
downloads cost no network time: on a real bucket add the transfer of the artifacts' size. These are
numbers for the portable targets on the host CPU, not Neuron numbers.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from bench_cache import counts
from bench_core import EXAMPLE, clean_env, median, parse_args, pip_wheel, run_meta, table

SETTINGS = {"targets": (["cpu"], ["cpu", "inductor"]), "rounds": (2, 3)}
BUCKET = "bench-cache"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_server() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def machine(project: Path, work: Path, name: str, **env: str) -> tuple[float, str]:
    """One build with a fresh local cache folder: (seconds, the build's summary line)."""
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    environ = clean_env(**{"HATCH_NEURON_CACHE": "on", "HATCH_NEURON_CACHE_DIR": str(cache), **env})
    seconds, output, _ = pip_wheel(project, work / f"out-{name}", environ)
    shutil.rmtree(work / f"out-{name}")
    return seconds, counts(output)


def bench_target(work: Path, target: str, endpoint: str, rounds: int) -> dict[str, Any]:
    project = shutil.copytree(EXAMPLE, work / target / "example_project")
    remote = {
        **CREDENTIALS,
        "HATCH_NEURON_TARGETS": target,
        "HATCH_NEURON_REMOTE_CACHE": f"s3://{BUCKET}/{target}",
        "AWS_ENDPOINT_URL": endpoint,
    }
    a_s, a = machine(project, work, f"{target}-a", **remote)
    with_remote, without = [], []
    for i in range(rounds):
        with_remote.append(machine(project, work, f"{target}-b{i}", **remote))
        without.append(machine(project, work, f"{target}-c{i}", HATCH_NEURON_TARGETS=target))
    return {
        "a_s": a_s,
        "a": a,
        "b_s": median([s for s, _ in with_remote]),
        "b": with_remote[-1][1],
        "c_s": median([s for s, _ in without]),
        "c": without[-1][1],
    }


def main() -> None:
    args = parse_args(__doc__, quick_help="the cpu target only (about 2 minutes)")
    meta = run_meta(args.quick, SETTINGS)
    settings = meta["settings"]
    print(f"hatch-neuron remote cache benchmark ({meta['mode']})   repo {meta['git']}")
    print(f"torch {meta['torch']}, Python {meta['python']}, {meta['machine']}, CPUs: {meta['cpu_count']}")
    print("Portable targets on the host CPU, NOT Neuron numbers; the S3 server (moto) is on loopback.")
    server, endpoint = start_server()
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    client.create_bucket(Bucket=BUCKET)
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="hatch-neuron-bench-remote-") as tmp:
            for target in settings["targets"]:
                results[target] = bench_target(Path(tmp), target, endpoint, settings["rounds"])
                print(
                    f"  {target}: A {results[target]['a_s']:.1f} s, B {results[target]['b_s']:.1f} s, "
                    f"C {results[target]['c_s']:.1f} s"
                )
    finally:
        server.stop()
    print("\n== a machine with an empty local cache: with the remote cache vs compiling, seconds ==")
    rows = [
        [t, f"{r['a_s']:.1f}", f"{r['b_s']:.1f}", f"{r['c_s']:.1f}", f"{r['c_s'] / r['b_s']:.1f}x", r["b"]]
        for t, r in results.items()
    ]
    print(table(["target", "A (uploads)", "B: remote", "C: compiles", "C / B", "B's build"], rows))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
