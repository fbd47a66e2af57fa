"""``save_torchscript``: the same module gives the same bytes, wherever torch's own archive is written."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from hatch_neuron.compile import reproducible
from hatch_neuron.compile.reproducible import save_torchscript


def traced() -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    return torch.jit.trace(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()), torch.rand(2, 8))


def test_same_bytes_in_memory_or_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = traced()
    save_torchscript(module, tmp_path / "a.pt")
    monkeypatch.setattr(reproducible, "RAM_FOLDER", tmp_path / "missing")  # no tmpfs: beside the file
    # the same module (a second trace in one process gets other mangled type names, so other code)
    save_torchscript(module, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no raw file left behind
    with zipfile.ZipFile(tmp_path / "a.pt") as archive:
        names = archive.namelist()
        assert all(n.startswith("archive/") for n in names)
        assert not any(n.endswith(".debug_pkl") for n in names)
        assert names[-1] == "archive/.data/serialization_id"
        for info in archive.infolist():  # data 64-byte aligned, as torch's writer does
            extra = len(info.extra)
            assert (info.header_offset + 30 + len(info.filename.encode()) + extra) % 64 == 0
    x = torch.rand(3, 8)
    assert torch.equal(torch.jit.load(str(tmp_path / "a.pt"))(x), module(x))


def test_another_module_gets_another_id(tmp_path: Path) -> None:
    save_torchscript(traced(), tmp_path / "a.pt")
    other = torch.jit.trace(torch.nn.Linear(8, 4), torch.rand(2, 8))
    save_torchscript(other, tmp_path / "b.pt")
    ids = [zipfile.ZipFile(tmp_path / n).read("archive/.data/serialization_id") for n in ("a.pt", "b.pt")]
    assert ids[0] != ids[1] and all(len(i) == 40 for i in ids)


def test_a_second_trace_in_one_process_gives_the_same_bytes(tmp_path: Path) -> None:
    # TorchScript numbers a class's later compiled types per process (___torch_mangle_N): renumbered
    first, second = traced(), traced()
    assert first._c._type().qualified_name() != second._c._type().qualified_name()
    save_torchscript(torch.jit.freeze(first.eval()), tmp_path / "a.pt")
    save_torchscript(torch.jit.freeze(second.eval()), tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    x = torch.rand(3, 8)
    assert torch.equal(torch.jit.load(str(tmp_path / "b.pt"))(x), second(x))


def test_keyed_workdir_is_fixed_locked_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reproducible, "KEYED_ROOT", tmp_path / "keyed")
    key = "ab" * 32
    with reproducible.keyed_workdir(key, tmp_path / "fallback") as (folder, fixed):
        assert fixed and folder == tmp_path / "keyed" / key[:32] and not any(folder.iterdir())
        (folder / "stale").write_text("x")
    assert not folder.exists()
    (tmp_path / "keyed" / key[:32]).mkdir()
    (tmp_path / "keyed" / key[:32] / "left by a killed build").write_text("x")
    with reproducible.keyed_workdir(key, tmp_path / "fallback") as (folder, fixed):
        assert fixed and not any(folder.iterdir())  # emptied before use
    monkeypatch.setattr(reproducible, "KEYED_ROOT", tmp_path / "file")
    (tmp_path / "file").write_text("not a folder")
    with reproducible.keyed_workdir(key, tmp_path / "fallback") as (folder, fixed):
        assert (folder, fixed) == (tmp_path / "fallback", False)
