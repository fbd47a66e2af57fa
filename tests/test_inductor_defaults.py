"""The ``inductor`` target's inference defaults (pure pieces, no compile): freezing for graphs with
convolutions, weights left unpacked under freezing, and which oneDNN kernels this CPU runs."""

from __future__ import annotations

import pytest
import torch

from hatch_neuron.compile.inductor import InductorTarget, has_convolution, inference_configs
from hatch_neuron.compile.options import InductorOptions
from hatch_neuron.runtime import inductor as runtime_inductor


@pytest.mark.parametrize(
    ("configs", "convolutions", "added"),
    [
        ({}, True, {"freezing": True, "cpp.weight_prepack": False}),
        ({}, False, {}),
        ({"freezing": True}, False, {"cpp.weight_prepack": False}),
        ({"freezing": False}, True, {}),
        ({"freezing": True, "cpp.weight_prepack": True}, True, {}),
        ({"cpp.weight_prepack": True}, True, {"freezing": True}),
    ],
)
def test_the_projects_settings_win(configs: dict, convolutions: bool, added: dict) -> None:
    assert inference_configs(configs, convolutions) == added


def test_convolutions_are_found_in_the_exported_graph() -> None:
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    with torch.no_grad():
        assert has_convolution(torch.export.export(conv, (torch.rand(1, 3, 8, 8),), strict=False))
        assert not has_convolution(torch.export.export(mlp, (torch.rand(2, 8),), strict=False))


def test_the_defaults_are_part_of_the_cache_key() -> None:
    key = InductorTarget().key_options(InductorOptions())
    assert "freezing on for convolutions" in key["inference-defaults"]


@pytest.mark.parametrize(
    ("flags", "cap", "isa"),
    [
        ({"avx2", "fma", "avx512f"}, None, "avx512"),
        ({"avx2", "fma", "avx512f"}, "AVX2", "avx2"),
        ({"avx2", "fma", "avx512f"}, "AVX512_CORE_VNNI", "avx512"),
        ({"avx2", "fma"}, None, "avx2"),
        ({"avx2", "fma"}, "AVX", "older"),
        ({"sse4_1"}, None, "older"),
    ],
)
def test_onednn_vector_isa(monkeypatch: pytest.MonkeyPatch, flags: set, cap: str | None, isa: str) -> None:
    monkeypatch.setattr(runtime_inductor, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert runtime_inductor.onednn_vector_isa() == isa
