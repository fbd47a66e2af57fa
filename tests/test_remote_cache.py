"""The remote compile cache against a real S3-compatible server: moto's server mode on loopback, started
by these tests. Each "machine" is a build with its own local cache folder; they share the bucket."""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, make_project, pip_wheel, run, single_wheel

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from hatch_neuron.cache.remote import RemoteCache, RemoteSettings  # noqa: E402
from hatch_neuron.cache.store import LocalCache  # noqa: E402

pytestmark = pytest.mark.slow

BUCKET = "neuron-cache"
NETS = """
    import torch

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
"""
NEURON_TOML = """
    [tool.neuron]
    targets = ["cpu"]
    remote-cache = "s3://{bucket}/team"
    remote-cache-endpoint-url = "{endpoint}"
    remote-cache-timeout = 5

    [tool.neuron.models.lin]
    factory = "demo_pkg.nets:make"
    inputs = [{{ shape = [1, 8], dtype = "float32" }}]
    batch-buckets = [1, 4]
"""
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh moto S3 server on loopback with an empty bucket."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    import boto3
    import requests

    requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is per process, not per server
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def remote(endpoint: str) -> RemoteCache:
    return RemoteCache(RemoteSettings(f"s3://{BUCKET}/team", endpoint_url=endpoint))


def build(project: Path, out: Path, cache: Path, **extra: str) -> str:
    """One machine's build: its own local cache folder, cache on; returns the build's output."""
    env = clean_env(
        **{"HATCH_NEURON_CACHE": "on", "HATCH_NEURON_CACHE_DIR": str(cache), **CREDENTIALS, **extra}
    )
    result = pip_wheel(project, out, env=env)
    return result.stdout + result.stderr


def summary(output: str) -> str:
    [line] = [line for line in output.splitlines() if "artifact(s) compiled" in line]
    return line.split("hatch-neuron: ", 1)[1].split(", in ")[0]


def artifacts(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if name.endswith(".pt")
        }


@pytest.fixture
def project(tmp_path: Path, endpoint: str) -> Path:
    return make_project(tmp_path / "proj", NETS, NEURON_TOML.format(bucket=BUCKET, endpoint=endpoint))


def test_machine_b_downloads_what_machine_a_compiled(project: Path, endpoint: str, tmp_path: Path) -> None:
    a = build(project, tmp_path / "a", tmp_path / "cache-a")
    assert summary(a) == "2 artifact(s) compiled, 0 from the cache, 0 from the remote cache"
    entries = list(remote(endpoint).entries())
    assert len(entries) == 2 and all("lin" in e.description for e in entries)
    record = remote(endpoint).record(entries[0].key)
    assert record is not None and {"key_inputs", "builder", "stored", "files"} <= set(record)
    assert record["key_inputs"]["target"] == "cpu" and "torch" in record["key_inputs"]["versions"]

    b = build(project, tmp_path / "b", tmp_path / "cache-b")  # an empty local cache
    assert summary(b) == "0 artifact(s) compiled, 0 from the cache, 2 from the remote cache"
    assert "lin [cpu dim0=1]: downloaded" in b
    assert artifacts(single_wheel(tmp_path / "a")) == artifacts(single_wheel(tmp_path / "b"))
    # and B's local cache now has them: a third build there takes them locally
    again = build(project, tmp_path / "b2", tmp_path / "cache-b", HATCH_NEURON_CACHE="verify")
    assert summary(again) == "0 artifact(s) compiled, 2 from the cache, 0 from the remote cache"


def test_read_only_uploads_nothing(project: Path, endpoint: str, tmp_path: Path) -> None:
    output = build(project, tmp_path / "a", tmp_path / "cache-a", HATCH_NEURON_REMOTE_CACHE_MODE="read-only")
    assert summary(output).startswith("2 artifact(s) compiled")
    assert list(remote(endpoint).entries()) == []


def test_corrupted_remote_object_is_rejected(project: Path, endpoint: str, tmp_path: Path) -> None:
    build(project, tmp_path / "a", tmp_path / "cache-a")
    cache = remote(endpoint)
    for entry in cache.entries():
        record = cache.record(entry.key)
        assert record is not None
        path = f"{cache._dir(entry.key)}/{record['upload']}/artifact"
        cache.fs.pipe_file(path, cache.fs.cat_file(path)[:-10] + b"0123456789")  # same size, other bytes
    output = build(project, tmp_path / "b", tmp_path / "cache-b")
    assert output.count("does not match its recorded sha256 and size") == 2
    assert summary(output) == "2 artifact(s) compiled, 0 from the cache, 0 from the remote cache"
    local_b = LocalCache(tmp_path / "cache-b")  # B stored its own compiles, and uploaded them again
    assert all((local_b.entry_dir(e.key) / "artifact").exists() for e in cache.entries())


def test_remote_down_compiles_locally_with_a_warning(project: Path, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    pyproject = (project / "pyproject.toml").read_text()
    assert "remote-cache-endpoint-url" in pyproject  # dropped: the standard AWS variable says where
    project.joinpath("pyproject.toml").write_text(
        "\n".join(line for line in pyproject.splitlines() if "endpoint-url" not in line) + "\n"
    )
    start = time.monotonic()
    output = build(project, tmp_path / "b", tmp_path / "cache-b", AWS_ENDPOINT_URL=closed)
    assert "not usable" in output and "compiling locally" in output
    assert summary(output) == "2 artifact(s) compiled, 0 from the cache, 0 from the remote cache"
    assert time.monotonic() - start < 120
    single_wheel(tmp_path / "b")


def test_concurrent_uploads_of_one_key(endpoint: str, tmp_path: Path) -> None:
    """Uploads of the same key from many machines at once (different bytes, as from different
    compilers): every reader afterwards gets one complete, consistent entry."""
    key = "ab" * 32
    locals_ = []
    for i in range(6):
        local = LocalCache(tmp_path / f"machine-{i}")
        artifact = tmp_path / f"artifact-{i}"
        artifact.write_bytes(f"artifact bytes from machine {i}".encode() * 1000)
        local.store(key, {"artifact": artifact}, {"facts": {}, "description": f"machine {i}"})
        locals_.append(local)
    errors: list[BaseException] = []

    def upload(local: LocalCache) -> None:
        try:
            remote(endpoint).upload(key, local.entry_dir(key), {"machine": str(local.root)})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(local,)) for local in locals_]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reader = LocalCache(tmp_path / "reader")
    assert remote(endpoint).download(key, reader)
    data = (reader.entry_dir(key) / "artifact").read_bytes()
    record = remote(endpoint).record(key)
    assert record is not None
    assert data == f"artifact bytes from {record['description']}".encode() * 1000


def test_cache_command_on_the_remote(project: Path, endpoint: str, tmp_path: Path) -> None:
    build(project, tmp_path / "a", tmp_path / "cache-a")
    env = clean_env(**CREDENTIALS)
    base = [sys.executable, "-m", "hatch_neuron.cli", "cache", "--remote", f"s3://{BUCKET}/team"]
    base += ["--endpoint-url", endpoint]
    assert "artifacts: 2" in run([*base, "info"], env=env).stdout
    listed = run([*base, "list"], env=env).stdout.splitlines()
    assert len(listed) == 2 and all("lin" in line for line in listed)
    assert "removed 2 entries" in run([*base, "clear"], env=env).stdout
    assert "artifacts: 0" in run([*base, "info"], env=env).stdout


def test_an_interrupted_upload_is_invisible(endpoint: str, tmp_path: Path) -> None:
    """Files without their record (an upload killed before its last PUT) are no entry at all."""
    cache, key = remote(endpoint), "cd" * 32
    cache.fs.pipe_file(f"{cache._dir(key)}/{'0' * 32}/artifact", b"half of an upload")
    assert cache.record(key) is None
    assert cache.download(key, LocalCache(tmp_path / "reader")) is False
    assert list(cache.entries()) == []


def test_a_remote_that_never_answers_does_not_hang_the_build(project: Path, tmp_path: Path) -> None:
    """A server that accepts connections and then says nothing: each worker waits one timeout (2 s
    here), reports it, and compiles locally."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    silent = f"http://127.0.0.1:{listener.getsockname()[1]}"
    text = (project / "pyproject.toml").read_text()
    text = "\n".join(line for line in text.splitlines() if "endpoint-url" not in line)
    (project / "pyproject.toml").write_text(
        text.replace("remote-cache-timeout = 5", "remote-cache-timeout = 2") + "\n"
    )
    try:
        start = time.monotonic()
        output = build(project, tmp_path / "a", tmp_path / "cache-a", AWS_ENDPOINT_URL=silent)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert accepted, "the build never reached the silent server"
    assert "not usable" in output and "Timeout" in output, output[-3000:]
    assert summary(output) == "2 artifact(s) compiled, 0 from the cache, 0 from the remote cache"
    assert elapsed < 60, elapsed
