"""Which target the runtime picks, on manifests made up for the purpose (fast; the real wheels behind these
rules are built in test_inductor_target, test_neuron_target and test_xla_target)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch

import hatch_neuron.runtime.inductor as inductor
import hatch_neuron.runtime.targets as targets
from hatch_neuron.runtime.schema import Manifest


def manifest(names: list[str], **facts: Any) -> Manifest:
    artifact = {"file": "m.pt", "sha256": "0" * 64, "size": 1, **facts}
    return Manifest.from_json(
        {
            "targets": names,
            "built_with": {"torch": torch.__version__},
            "models": {"m": {"artifacts": {name: [dict(artifact)] for name in names}}},
        }
    )


def test_first_usable_target_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(targets.OVERRIDE_ENV, raising=False)
    monkeypatch.setattr(inductor, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    picked = targets.select_target("pkg", manifest(["neuron", "inductor", "cpu"]))
    assert picked.target == "inductor" and list(picked.skipped) == ["neuron"]


def test_override_forces_a_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(targets.OVERRIDE_ENV, "cpu")
    picked = targets.select_target("pkg", manifest(["inductor", "cpu"]))
    assert picked.target == "cpu" and picked.forced
    monkeypatch.setenv(targets.OVERRIDE_ENV, "xla")
    with pytest.raises(LookupError, match="has no 'xla' artifacts; it was built for: inductor, cpu"):
        targets.select_target("pkg", manifest(["inductor", "cpu"]))


def test_inductor_needs_the_isa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inductor, "cpu_flags", lambda: frozenset({"sse2"}))
    reason = targets.unusable_reason("inductor", manifest(["inductor"]))
    assert reason is not None and "this CPU lacks avx2, fma" in reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_cuda_inductor_needs_a_gpu() -> None:
    reason = targets.unusable_reason("inductor", manifest(["inductor"], device="cuda", cuda_capability="9.0"))
    assert reason == "built for CUDA, and torch.cuda.is_available() is False here"


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla is installed here")
def test_xla_needs_torch_xla(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(targets.OVERRIDE_ENV, raising=False)
    picked = targets.select_target("pkg", manifest(["xla", "cpu"]))
    assert picked.target == "cpu"
    assert picked.skipped == {"xla": "torch_xla is not importable (pip install 'hatch-neuron[xla]')"}
