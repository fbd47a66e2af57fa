"""Artifact hashes found once per build are not computed again (fast, in-process)."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from hatch_neuron.cache import store
from hatch_neuron.package.stored import add_stored


def test_a_copied_artifact_is_not_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, dest = tmp_path / "entry.pt", tmp_path / "staged.pt"
    source.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert store._place_checked(source, dest, digest)
    hashed: list[Path] = []
    monkeypatch.setattr(store, "sha256_file", lambda path: hashed.append(path) or "x")
    assert store.artifact_sha256(dest) == digest and hashed == []  # hashed while it was copied
    dest.write_bytes(b"other bytes")  # rewritten: another identity, hashed again
    os.utime(dest, ns=(1, 1))
    assert store.artifact_sha256(dest) == "x" and hashed == [dest]


def test_the_record_uses_the_known_hash(tmp_path: Path) -> None:
    artifact = tmp_path / "m.cpu.pt"
    artifact.write_bytes(b"\x00\x01" * 5000)
    digest = store.artifact_sha256(artifact)
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo-1.0.dist-info/RECORD", "demo/__init__.py,,\ndemo-1.0.dist-info/RECORD,,\n")
    add_stored(wheel, {"demo/_hatch_neuron/m.cpu.pt": str(artifact)})
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read("demo-1.0.dist-info/RECORD").decode()
        assert archive.read("demo/_hatch_neuron/m.cpu.pt") == artifact.read_bytes()
    expected = base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
    assert f"demo/_hatch_neuron/m.cpu.pt,sha256={expected},{artifact.stat().st_size}" in record


def test_entries_are_linked_not_copied_where_the_file_system_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GB artifact is not written again into the cache nor out of it: one file, two names; where links
    fail (another file system), a checked copy."""
    cache = store.LocalCache(tmp_path / "cache")
    staged = tmp_path / "m.cpu.pt"
    staged.write_bytes(b"weights" * 1000)
    cache.store("k" * 64, {"artifact": staged}, {"facts": {}})
    entry = cache.entry_dir("k" * 64) / "artifact"
    assert entry.samefile(staged)
    fetched = tmp_path / "fetched.pt"
    assert cache.fetch("k" * 64, {"artifact": fetched}) is not None and fetched.samefile(entry)

    def no_links(*_: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(store.os, "link", no_links)
    copied = tmp_path / "copied.pt"
    assert cache.fetch("k" * 64, {"artifact": copied}) is not None
    assert not copied.samefile(entry) and copied.read_bytes() == staged.read_bytes()
    entry.write_bytes(b"corrupted")  # a bad entry is still found, linked or copied
    with pytest.raises(store.CorruptEntry):
        cache.fetch("k" * 64, {"artifact": tmp_path / "again.pt"})
