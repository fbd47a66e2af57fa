"""The remote compile cache: a machine with an empty local cache, with and without it (see bench/README.md).

An S3 server (moto) on loopback; machine A builds example_project and uploads, then machines B (remote
cache on) and C (off), each with an empty local cache, build it in rounds. Needs ``s3fs``, ``moto[server]``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import harness as h

SETTINGS = dict(targets=(["cpu"], ["cpu", "inductor"]), rounds=(2, 3))
BUCKET = "bench-cache"
CREDENTIALS = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")


def start_server() -> tuple[Any, str]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {k.lower(): v for k, v in CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(Bucket=BUCKET)
    return server, endpoint


def bench_target(work: Path, target: str, endpoint: str, rounds: int) -> dict[str, Any]:
    project = h.copy_example(work / target / "example_project")
    remote = dict(CREDENTIALS, AWS_ENDPOINT_URL=endpoint, HATCH_NEURON_REMOTE_CACHE=f"s3://{BUCKET}/{target}")

    def machine(name: str, **env: str) -> tuple[float, str]:
        """One build with a new, empty local cache: (seconds, the build's summary)."""
        cache = work / f"cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        env.update(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(cache), HATCH_NEURON_TARGETS=target)
        seconds, log, _ = h.pip_wheel(project, work / "out", h.clean_env(**env), "example_models")
        return seconds, h.summary(log)

    a_s, a = machine("a", **remote)
    got = h.alternate(["b", "c"], rounds, lambda kind: machine(kind, **(remote if kind == "b" else {})))
    b_s, c_s = (h.median(s for s, _ in got[kind]) for kind in ("b", "c"))
    return dict(a_s=a_s, a=a, b_s=b_s, b=got["b"][-1][1], c_s=c_s, c=got["c"][-1][1])


@h.bench("remote", "Portable targets (the S3 server: moto on loopback)", SETTINGS, "the cpu target only")
def main(_args: argparse.Namespace, meta: dict[str, Any], work: Path, results: dict[str, Any]) -> None:
    server, endpoint = start_server()
    try:
        for target in meta["settings"]["targets"]:
            results[target] = bench_target(work, target, endpoint, meta["settings"]["rounds"])
    finally:
        server.stop()
    print("\n== a machine with an empty local cache: with the remote cache vs compiling, seconds ==")
    rows = [
        [t, *(f"{r[k]:.1f}" for k in ("a_s", "b_s", "c_s")), f"{r['c_s'] / r['b_s']:.1f}x", r["b"]]
        for t, r in results.items()
    ]
    print(h.table(["target", "A (uploads)", "B: remote", "C: compiles", "C / B", "B's build"], rows))


if __name__ == "__main__":
    main()
