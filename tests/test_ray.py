"""``executor = "ray"`` (issue 18): compile jobs as tasks on a real Ray cluster started by the tests on this
machine (``ray start --head``, 2 CPUs, its own temporary and cache folders), results into the build's
cache and then into the same wheel as a local build. Also: a task whose Ray worker is killed mid-job (retried
once), a job that fails on every node, a wrong address (a clear error in bounded time, or the local
fallback). The path rewriting and the entry import are checked in-process."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, install, make_project, pip_wheel, run, run_json, single_wheel

from hatch_neuron.cache import LocalCache
from hatch_neuron.compile.contracts import BuildContext, JobRequest, ModelRequest, WorkerRequest
from hatch_neuron.compile.ray_executor import ClusterUnavailable, import_entries, node_request, probe
from hatch_neuron.compile.runner import CompileError
from hatch_neuron.config import ConfigError, settings_from_table

RAY = Path(sys.executable).parent / "ray"

NETS = """
    import os, pathlib, signal, torch

    def make(width=6):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(width, 4), torch.nn.Tanh()).eval()

    def _on_ray_node():
        return b"ray::" in pathlib.Path(f"/proc/{os.getppid()}/cmdline").read_bytes()

    def make_killed_once(marker):
        # the first time on a node, kill the Ray worker running this job (mid-job: the model is loading)
        if _on_ray_node() and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getppid(), signal.SIGKILL)
        return make()

    def make_failing_on_nodes():
        if _on_ray_node():
            raise RuntimeError("this node has no such compiler")
        return make()
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]

    [tool.neuron.models.mlp]
    factory = "demo_pkg.nets:make"
    inputs = [{ shape = [1, 6] }]
    batch-buckets = [1, 4]

    [tool.neuron.models.wide]
    factory = "demo_pkg.nets:make"
    factory-args = { width = 12 }
    inputs = [{ shape = [2, 12] }]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A one-node Ray cluster with 2 CPUs on loopback; its address."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's sockets live under it
    env = clean_env(HATCH_NEURON_CACHE_DIR=str(temp / "node-cache"))
    start = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2"]
    start += ["--temp-dir", str(temp), "--include-dashboard=false", "--disable-usage-stats"]
    run(start, env=env, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def ray_env(address: str, **extra: str) -> dict[str, str]:
    return clean_env(HATCH_NEURON_EXECUTOR="ray", HATCH_NEURON_RAY_ADDRESS=address, **extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_log(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.strip() for line in (result.stdout + result.stderr).splitlines() if "hatch-neuron:" in line]


def test_ray_build_is_the_local_build(cluster: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, TOML)
    fixed = {"SOURCE_DATE_EPOCH": "1700000000"}
    local = pip_wheel(project, tmp_path / "local", env=clean_env(**fixed))
    on_ray = pip_wheel(project, tmp_path / "ray", env=ray_env(cluster, **fixed))
    log = build_log(on_ray)
    assert sum("compiled on ray node" in line for line in log) == 3, log
    assert any("ray: 3 job(s) in 3 task(s) on 1 node(s) in" in line for line in log), log
    assert any("0 artifact(s) compiled, 3 from the cache" in line for line in log), log
    assert "compiled on ray node" not in local.stdout + local.stderr
    wheel = single_wheel(tmp_path / "ray")
    assert sha256(wheel) == sha256(single_wheel(tmp_path / "local"))
    site = install(wheel, tmp_path / "site")
    report = run_json(
        """
        import json, torch
        from demo_pkg import nets
        from demo_pkg.compiled import mlp, wide
        x, y = torch.rand(3, 6), torch.rand(2, 12)
        with torch.no_grad():
            print(json.dumps([(mlp(x) - nets.make()(x)).abs().max().item(),
                              (wide(y) - nets.make(12)(y)).abs().max().item()]))
        """,
        site,
    )
    assert max(report) < 1e-5  # type: ignore[arg-type]


def test_killed_task_is_retried_once(cluster: str, tmp_path: Path) -> None:
    marker = tmp_path / "killed-once"
    toml = f"""
        [tool.neuron]
        targets = ["cpu"]

        [tool.neuron.models.mlp]
        factory = "demo_pkg.nets:make_killed_once"
        factory-args = {{ marker = "{marker}" }}
        inputs = [{{ shape = [1, 6] }}]
    """
    result = pip_wheel(make_project(tmp_path / "proj", NETS, toml), tmp_path / "dist", env=ray_env(cluster))
    log = build_log(result)
    assert marker.exists()
    assert any(
        "failed on the Ray cluster (the task died" in line and "retrying once" in line for line in log
    ), log
    assert any("mlp [cpu]: compiled on ray node" in line for line in log), log
    single_wheel(tmp_path / "dist")


def test_job_failing_on_every_node_fails_the_build(cluster: str, tmp_path: Path) -> None:
    toml = TOML.replace(
        '"demo_pkg.nets:make"\n    inputs = [{ shape = [1, 6] }]',
        '"demo_pkg.nets:make_failing_on_nodes"\n    inputs = [{ shape = [1, 6] }]',
    )
    assert "make_failing_on_nodes" in toml
    project = make_project(tmp_path / "proj", NETS, toml)
    result = pip_wheel(project, tmp_path / "dist", env=ray_env(cluster), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "failed twice on the Ray cluster" in output and "this node has no such compiler" in output, output
    assert not list((tmp_path / "dist").glob("*.whl"))


def test_unreachable_cluster_is_a_clear_error_or_the_local_fallback(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, TOML)
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    failed = pip_wheel(project, tmp_path / "dist", env=ray_env(address), check=False)
    assert time.monotonic() - start < 120  # bounded (ray.init alone would wait for minutes)
    assert failed.returncode != 0
    assert f"the Ray cluster at {address} cannot be reached" in failed.stdout + failed.stderr
    assert not list((tmp_path / "dist").glob("*.whl"))
    env = ray_env(address, HATCH_NEURON_EXECUTOR_FALLBACK="local")
    log = build_log(pip_wheel(project, tmp_path / "dist", env=env))
    assert any("warning:" in line and "compiling on this machine" in line for line in log), log
    assert any("3 artifact(s) compiled" in line for line in log), log


# -- in-process ----------------------------------------------------------------------------------------


def test_settings_and_address_checks() -> None:
    model = {"m": {"factory": "p:f", "inputs": [{"shape": [1]}]}}
    with pytest.raises(ConfigError, match="executor"):
        settings_from_table({"executor": "slurm", "models": model}, {}, Path("."))
    with pytest.raises(ConfigError, match="ray-connect-timeout"):
        settings_from_table({"ray-connect-timeout": 0, "models": model}, {}, Path("."))
    settings = settings_from_table({"models": model}, {"HATCH_NEURON_EXECUTOR": "ray"}, Path("."))
    assert settings.executor == "ray" and settings.executor_fallback == "error"
    with pytest.raises(ClusterUnavailable, match="is not host:port"):
        probe("headnode", 1)


def test_node_request_moves_the_project_and_the_worker_folders() -> None:
    root = "/home/me/proj"
    request = WorkerRequest(
        ModelRequest("m", "pkg.nets:make", None, None, {}, [], False, {"folder": f"{root}/models/x", "n": 3}),
        "compile",
        "off",
        [JobRequest("cpu", "m.cpu", (), [], "/out/m.cpu.pt", "/work/m.cpu")],
        BuildContext({"torch": "2.13.0"}, True, None, "/home/me/.cache/hatch-neuron", 1),
        "/",
        [f"{root}/src", "/opt/elsewhere", f"{root}-other"],
    )
    moved = node_request(request, root, "/node/wd", "/node/tmp", "/node/cache")
    assert moved.sys_path == ["/node/wd/src", "/opt/elsewhere", f"{root}-other"]
    assert moved.model.factory_args == {"folder": "/node/wd/models/x", "n": 3}
    assert moved.jobs[0].path == "/node/tmp/out/m.cpu.pt" and moved.jobs[0].workdir == "/node/tmp/work/m.cpu"
    assert moved.build.cache_dir == "/node/cache" and moved.build.track_reads is False
    assert (
        dataclasses.replace(
            moved,
            model=request.model,
            jobs=request.jobs,
            build=request.build,
            tmp="/",
            sys_path=request.sys_path,
        )
        == request
    )


def test_import_entries_checks_every_file(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    data = b"artifact bytes"
    key = "ab" * 32
    meta = {
        "key": key,
        "files": {"artifact": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
        "facts": {"verified": True},
        "stored": 1.0,
    }
    bad = {key: {"entry.json": json.dumps(meta).encode(), "artifact": b"tampered"}}
    with pytest.raises(CompileError, match="does not match its sha256"):
        import_entries(cache, bad, "10.0.0.7")
    assert not (cache.entry_dir(key) / "entry.json").exists()
    import_entries(cache, {key: {"entry.json": json.dumps(meta).encode(), "artifact": data}}, "10.0.0.7")
    stored = json.loads((cache.entry_dir(key) / "entry.json").read_text())
    assert stored["facts"] == {"verified": True} and (cache.entry_dir(key) / "artifact").read_bytes() == data
