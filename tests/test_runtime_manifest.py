"""The runtime trusts nothing a manifest says: paths stay inside the artifact folder, sizes are compared
before reading, and every malformed manifest or missing file is one clear error (fast, in-process)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import hatch_neuron.runtime as runtime
from hatch_neuron.runtime import manifest as manifest_module
from hatch_neuron.runtime import model as model_module
from hatch_neuron.runtime import stamps
from hatch_neuron.runtime.manifest import (
    _FOLDERS,
    ArtifactIntegrityError,
    ManifestError,
    read_artifact,
    read_manifest,
    use_artifact_folder,
)

_names = itertools.count()


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x * 2,)  # compiled artifacts return a flat tuple


def scripted() -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Double()), buffer)
    return buffer.getvalue()


def entry(file: str, data: bytes) -> dict[str, Any]:
    return {
        "bucket": {},
        "file": file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "verified": True,
    }


def manifest_for(artifacts: dict[str, list[dict[str, Any]]], targets: list[str] | None = None) -> dict:
    return {
        "format": 1,
        "package": "unused",
        "targets": targets or ["cpu"],
        "models": {
            "m": {
                "factory": "nets:make",
                "inputs": [{"shape": [2, 3], "dtype": "float32"}],
                "outputs": {"tree": "T", "specs": [{"shape": [2, 3], "dtype": "float32"}]},
                "artifacts": artifacts,
            }
        },
    }


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A made-up package whose artifact folder is ``tmp_path/art`` (and a cleaned-up runtime after)."""
    monkeypatch.delenv("HATCH_NEURON_TARGET", raising=False)
    monkeypatch.delenv("HATCH_NEURON_REPLICAS", raising=False)
    name = f"rt_manifest_pkg_{next(_names)}"
    folder = tmp_path / "art"
    folder.mkdir()
    use_artifact_folder(name, folder)
    yield name, folder
    _FOLDERS.pop(name, None)
    model_module._selections.pop(name, None)
    read_manifest.cache_clear()


def write(folder: Path, manifest: object) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    read_manifest.cache_clear()
    return path


def valid(folder: Path) -> tuple[dict[str, Any], bytes]:
    data = scripted()
    (folder / "m.cpu.pt").write_bytes(data)
    manifest = manifest_for({"cpu": [entry("m.cpu.pt", data)]})
    write(folder, manifest)
    return manifest, data


def no_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every file but manifests that the runtime opens, and fail if it reads one of them."""
    opened: dict[int, str] = {}
    artifacts: list[str] = []
    real_open, real_fdopen = os.open, os.fdopen

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, *args, **kwargs)
        opened[fd] = str(path)
        artifacts.extend([] if str(path).endswith("manifest.json") else [str(path)])
        return fd

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        if not opened[fd].endswith("manifest.json"):
            raise AssertionError(f"{opened[fd]} was opened for reading")
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(manifest_module.os, "open", spy)
    monkeypatch.setattr(manifest_module.os, "fdopen", fdopen)
    return artifacts


def test_a_valid_package_loads_and_runs(package: tuple[str, Path]) -> None:
    name, folder = package
    valid(folder)
    model = runtime.CompiledModel(name, "m")
    assert torch.equal(model(torch.ones(2, 3)), torch.full((2, 3), 2.0))
    assert runtime.ManifestError is ManifestError


@pytest.mark.parametrize("bad", ["../outside.pt", "/etc/passwd", "/dev/zero", "sub/m.cpu.pt", "..", ""])
def test_paths_outside_the_folder_are_refused_unread(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    name, folder = package
    (folder.parent / "outside.pt").write_bytes(b"x" * 10)
    write(folder, manifest_for({"cpu": [{**entry(bad, b"x" * 10)}]}))
    opened = no_reads(monkeypatch)
    with pytest.raises(ManifestError) as caught:
        read_manifest(name)
    message = str(caught.value)
    assert name in message and "manifest.json" in message and repr(bad) in message
    assert "not a plain file name" in message or "not a file name" in message
    with pytest.raises(ManifestError) as caught:  # read_artifact refuses it too, whoever calls it
        read_artifact(name, bad, "0" * 64, 10)
    assert name in str(caught.value) and repr(bad) in str(caught.value)
    assert opened == []


def test_dev_zero_fails_fast(package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    name, folder = package
    valid(folder)
    (folder / "zero.pt").symlink_to("/dev/zero")
    write(folder, manifest_for({"cpu": [{**entry("zero.pt", b""), "size": 1 << 40}]}))
    opened = no_reads(monkeypatch)
    with pytest.raises(ManifestError) as caught:
        read_artifact(name, "zero.pt", "0" * 64, 1 << 40)  # a TiB: reading would never end
    message = str(caught.value)
    assert name in message and "zero.pt" in message and "outside the artifact folder" in message
    assert "/dev/zero" not in opened


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(package: tuple[str, Path]) -> None:
    name, folder = package
    os.mkfifo(folder / "fifo.pt")
    with pytest.raises(ManifestError) as caught:
        read_artifact(name, "fifo.pt", "0" * 64, 10)
    assert name in str(caught.value) and "fifo.pt" in str(caught.value)
    assert "not a regular file" in str(caught.value)


def test_symlink_out_of_the_folder_is_refused(package: tuple[str, Path]) -> None:
    name, folder = package
    data = scripted()
    (folder.parent / "elsewhere.pt").write_bytes(data)  # even with the right bytes
    (folder / "m.cpu.pt").symlink_to(folder.parent / "elsewhere.pt")
    write(folder, manifest_for({"cpu": [entry("m.cpu.pt", data)]}))
    with pytest.raises(ManifestError) as caught:
        runtime.CompiledModel(name, "m")
    message = str(caught.value)
    assert name in message and "m.cpu.pt" in message and "outside the artifact folder" in message


def test_symlink_inside_the_folder_is_fine(package: tuple[str, Path]) -> None:
    name, folder = package
    data = scripted()
    (folder / "real.pt").write_bytes(data)
    (folder / "m.cpu.pt").symlink_to("real.pt")
    write(folder, manifest_for({"cpu": [entry("m.cpu.pt", data)]}))
    assert read_artifact(name, "m.cpu.pt", hashlib.sha256(data).hexdigest(), len(data)) == data


def test_size_mismatch_is_refused_before_reading(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, folder = package
    _, data = valid(folder)
    with (folder / "m.cpu.pt").open("ab") as grown:
        grown.truncate(1 << 40)  # a sparse TiB: costs nothing unless read
    opened = no_reads(monkeypatch)
    with pytest.raises(ArtifactIntegrityError) as caught:
        runtime.CompiledModel(name, "m")
    assert opened == [str((folder / "m.cpu.pt").resolve())]  # opened to compare its size, never read
    message = str(caught.value)
    assert name in message and "m.cpu.pt" in message
    assert f"{1 << 40} bytes, the manifest recorded {len(data)}" in message
    assert "modified or truncated" in message


def test_truncated_and_tampered_artifacts_are_refused(package: tuple[str, Path]) -> None:
    name, folder = package
    _, data = valid(folder)
    digest = hashlib.sha256(data).hexdigest()
    (folder / "m.cpu.pt").write_bytes(data[:-10])
    with pytest.raises(ArtifactIntegrityError, match="modified or truncated") as caught:
        read_artifact(name, "m.cpu.pt", digest, len(data))
    assert name in str(caught.value) and "m.cpu.pt" in str(caught.value)
    (folder / "m.cpu.pt").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(ArtifactIntegrityError, match=f"the manifest recorded {digest}") as caught:
        read_artifact(name, "m.cpu.pt", digest, len(data))
    assert name in str(caught.value) and "m.cpu.pt" in str(caught.value)


def test_deleted_artifact(package: tuple[str, Path]) -> None:
    name, folder = package
    valid(folder)
    model = runtime.CompiledModel(name, "m", lazy=True)
    (folder / "m.cpu.pt").unlink()
    with pytest.raises(ManifestError) as caught:
        model.load()
    message = str(caught.value)
    assert name in message and str(folder / "m.cpu.pt") in message and "no such file" in message
    assert str(folder / "manifest.json") in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"format": 1, "models": {"m": {"artifa', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"format": 1, "targets": ["cpu"]}', "no 'models' object"),
        ('{"format": 1, "models": []}', "'models' is list"),
        ('{"format": 1, "models": {"m": {}}}', "model 'm' has no 'artifacts' object"),
        ('{"format": 1, "targets": "cpu", "models": {}}', "'targets' is 'cpu'"),
        ('{"format": 1, "models": {"m": {"artifacts": {"cpu": [{"file": "a.pt"}]}}}}', "has no 'sha256'"),
        ('{"format": 1, "models": {"m": {"artifacts": {"cpu": [{"sha256": "x"}]}}}}', "has no 'file'"),
        (
            '{"format": 1, "models": {"m": {"artifacts": {"cpu": [{"file": "a.pt", "sha256": "%s", '
            '"size": "12"}]}}}}' % ("0" * 64),
            "size '12' is not a whole number",
        ),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
)
def test_malformed_manifests(package: tuple[str, Path], text: str | bytes, expected: str) -> None:
    name, folder = package
    path = folder / "manifest.json"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    read_manifest.cache_clear()
    with pytest.raises(ManifestError) as caught:
        runtime.CompiledModel(name, "m")
    message = str(caught.value)
    assert expected in message and name in message and str(folder / "manifest.json") in message
    assert "\n" not in message


def test_manifest_without_targets(package: tuple[str, Path]) -> None:
    name, folder = package
    manifest, _ = valid(folder)
    del manifest["targets"]
    write(folder, manifest)
    with pytest.raises(ManifestError, match="no 'targets' list") as caught:
        runtime.CompiledModel(name, "m")
    assert name in str(caught.value) and "manifest.json" in str(caught.value)


def test_malformed_model_entry(package: tuple[str, Path]) -> None:
    name, folder = package
    manifest, _ = valid(folder)
    manifest["models"]["m"]["inputs"][0]["dtype"] = "nn"
    write(folder, manifest)
    with pytest.raises(ManifestError, match="dtype 'nn' is not a torch dtype") as caught:
        runtime.CompiledModel(name, "m")
    assert name in str(caught.value) and "model 'm'" in str(caught.value)


def test_no_artifacts_for_the_selected_target(package: tuple[str, Path]) -> None:
    name, folder = package
    data = scripted()
    (folder / "m.inductor.pt2").write_bytes(data)
    write(folder, manifest_for({"inductor": [entry("m.inductor.pt2", data)]}, targets=["cpu"]))
    with pytest.raises(ManifestError) as caught:
        runtime.CompiledModel(name, "m")
    message = str(caught.value)
    assert name in message and str(folder / "manifest.json") in message
    assert "model 'm' has no artifacts for target 'cpu'" in message and "it has: inductor" in message


def test_oversized_manifest_is_refused(package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    name, folder = package
    valid(folder)
    monkeypatch.setattr(manifest_module, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(ManifestError, match="larger than 100 bytes") as caught:
        read_manifest(name)
    assert name in str(caught.value)


def test_a_traversable_that_is_not_a_folder(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packages imported from a zip: the artifact folder is a zipfile.Path; read in blocks up to size + 1."""
    name, folder = package
    data = scripted()
    manifest = manifest_for({"cpu": [entry("m.cpu.pt", data)]})
    archive = folder.parent / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/_hatch_neuron/manifest.json", json.dumps(manifest))
        zf.writestr("pkg/_hatch_neuron/m.cpu.pt", data + b"tail")
    root = zipfile.Path(archive, "pkg/_hatch_neuron/")
    monkeypatch.setattr(manifest_module, "artifact_folder", lambda package: root)
    read_manifest.cache_clear()
    assert read_manifest(name).models["m"].artifacts["cpu"][0].size == len(data)
    with pytest.raises(ArtifactIntegrityError, match=f"{len(data) + 1} bytes read, {len(data)} recorded"):
        read_artifact(name, "m.cpu.pt", hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(ManifestError, match="no such file"):
        read_artifact(name, "gone.pt", "0" * 64, 1)
    with pytest.raises(ManifestError, match="not a plain file name"):
        read_artifact(name, "../pkg/_hatch_neuron/m.cpu.pt", "0" * 64, 1)


@pytest.mark.parametrize("hasher", ["thread", "helper process"])
def test_streamed_load_checks_the_hash_after_the_loader_read_the_file(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, hasher: str
) -> None:
    """The loader reads the file from its path while a thread (or, for large files, a helper process)
    hashes it: a tampered file of the right size is refused (the integrity error, not the loader's own),
    and a good one loads with no copy of its bytes kept."""
    name, folder = package
    helped: list[object] = []
    if hasher == "helper process":
        monkeypatch.setattr(manifest_module, "HELPER_MIN_SIZE", 0)
        real = manifest_module._helper_result
        monkeypatch.setattr(manifest_module, "_helper_result", lambda h: helped.append(real(h)) or helped[-1])
    _, data = valid(folder)
    assert torch.equal(runtime.CompiledModel(name, "m")(torch.ones(2, 3)), torch.full((2, 3), 2.0))
    (folder / "m.cpu.pt").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # not a zip any more
    with pytest.raises(ArtifactIntegrityError, match="modified or truncated") as caught:
        runtime.CompiledModel(name, "m")
    assert name in str(caught.value) and "m.cpu.pt" in str(caught.value)
    if hasher == "helper process":  # both loads were hashed by the helper, which read the whole file
        assert [count for count, _ in helped] == [len(data), len(data)], helped


def test_file_replaced_while_it_loads_is_refused(package: tuple[str, Path]) -> None:
    name, folder = package
    _, data = valid(folder)
    digest = hashlib.sha256(data).hexdigest()
    opened = manifest_module.open_artifact(name, "m.cpu.pt", digest, len(data))
    with pytest.raises(ArtifactIntegrityError, match="replaced or changed while it loaded"), opened as source:
        assert source == str((folder / "m.cpu.pt").resolve())
        replacement = folder / "new.pt"
        replacement.write_bytes(data)
        replacement.replace(folder / "m.cpu.pt")


def test_warm_up_runs_each_module_at_load(package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``warmup`` calls per module at load, on zeros of the compiled shapes (``auto``: 2 below 64 MiB,
    none above); HATCH_NEURON_WARMUP overrides."""
    name, folder = package
    manifest, _ = valid(folder)
    calls: list[list[int]] = []
    real = model_module.CompiledModel._warm_up

    def spy(self: Any, modules: dict, count: dict) -> None:
        calls.append(sorted(count.values()))
        real(self, modules, count)

    monkeypatch.setattr(model_module.CompiledModel, "_warm_up", spy)
    runtime.CompiledModel(name, "m")
    write(folder, {**manifest, "warmup": 5})
    runtime.CompiledModel(name, "m")
    write(folder, {**manifest, "warmup": "auto"})
    runtime.CompiledModel(name, "m")
    monkeypatch.setattr(model_module, "AUTO_WARMUP_MAX_SIZE", 10)  # the artifact is a "large" one now
    runtime.CompiledModel(name, "m")
    monkeypatch.setenv("HATCH_NEURON_WARMUP", "3")
    runtime.CompiledModel(name, "m")
    monkeypatch.setenv("HATCH_NEURON_WARMUP", "0")
    runtime.CompiledModel(name, "m")
    assert calls == [[2], [5], [2], [0], [3], [0]]
    monkeypatch.setenv("HATCH_NEURON_WARMUP", "x")
    with pytest.raises(ValueError, match="HATCH_NEURON_WARMUP='x'"):
        runtime.CompiledModel(name, "m")


def test_verified_file_is_not_hashed_again_until_it_changes(
    package: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After a load whose hash matched, a stamp (the file's device, inode, size, mtime, ctime) lets the
    next load skip the hash; a changed file is hashed again and refused; HATCH_NEURON_VERIFY=always
    hashes every load."""
    name, folder = package
    monkeypatch.setenv("HATCH_NEURON_STAMPS", str(tmp_path / "stamps"))
    monkeypatch.setattr(stamps, "SETTLED_NS", 0)  # the file was just written
    _, data = valid(folder)
    runtime.CompiledModel(name, "m")
    assert len(list((tmp_path / "stamps").rglob("*.json"))) == 1
    hashed: list[str] = []
    real = manifest_module.hash_stream
    monkeypatch.setattr(manifest_module, "hash_stream", lambda *a: hashed.append("x") or real(*a))
    runtime.CompiledModel(name, "m")
    assert hashed == []
    monkeypatch.setenv("HATCH_NEURON_VERIFY", "always")
    runtime.CompiledModel(name, "m")
    assert hashed == ["x"]
    monkeypatch.delenv("HATCH_NEURON_VERIFY")
    time.sleep(0.05)  # past the file clock's tick
    (folder / "m.cpu.pt").write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # same size, same inode
    with pytest.raises(ArtifactIntegrityError, match="modified or truncated"):
        runtime.CompiledModel(name, "m")
    assert hashed == ["x", "x"]


class NeedsPositive(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.linalg.cholesky(x),)  # zeros are not positive definite: raises


def test_failed_warm_up_warns_and_the_model_still_loads(package: tuple[str, Path]) -> None:
    name, folder = package
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(NeedsPositive()), buffer)
    data = buffer.getvalue()
    (folder / "m.cpu.pt").write_bytes(data)
    manifest = manifest_for({"cpu": [entry("m.cpu.pt", data)]})
    manifest["models"]["m"]["inputs"] = [{"shape": [2, 2], "dtype": "float32"}]
    write(folder, manifest)
    with pytest.warns(RuntimeWarning, match=f"{name}.m: the warm-up call on zeros failed"):
        model = runtime.CompiledModel(name, "m")
    assert torch.allclose(model(torch.eye(2) * 4), torch.eye(2) * 2)
