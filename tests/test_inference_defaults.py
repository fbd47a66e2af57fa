"""Inference defaults, in process (no wheel): the ``inductor`` target's freezing for graphs with
convolutions, weights left unpacked under freezing, which oneDNN kernels this CPU runs; the ``cpu``
target's ``optimize_for_inference`` at load for convolutions of enough FLOPs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from hatch_neuron.compile.cpu import CpuTarget
from hatch_neuron.compile.inductor import InductorTarget, has_convolution, inference_configs
from hatch_neuron.compile.options import InductorOptions, NoOptions
from hatch_neuron.runtime import inductor as runtime_inductor
from hatch_neuron.runtime.cpu import CpuLoader
from hatch_neuron.runtime.schema import ArtifactEntry, Manifest


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


class AutocastConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.conv(x)
        return y.float()


def test_convolutions_in_sub_graphs_are_found() -> None:
    with torch.no_grad():
        exported = torch.export.export(AutocastConv().eval(), (torch.rand(1, 3, 8, 8),), strict=False)
    assert has_convolution(exported)


def test_the_defaults_are_part_of_the_cache_key() -> None:
    key = InductorTarget().key_options(InductorOptions())
    assert "freezing on for convolutions" in key["inference-defaults"]


AVX512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}


@pytest.mark.parametrize(
    ("flags", "cap", "isa"),
    [
        (AVX512, None, "avx512"),
        (AVX512, "AVX2", "avx2"),
        (AVX512, " avx2_vnni ", "avx2"),
        (AVX512, "AVX512_CORE_VNNI", "avx512"),
        (AVX512, "NOT_AN_ISA", "avx512"),  # oneDNN ignores what it does not know
        ({"avx2", "fma", "avx512f"}, None, "avx2"),  # Knights Landing: oneDNN runs its AVX2 kernels
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


def conv_net(channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.BatchNorm2d(channels), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()


@pytest.mark.parametrize(("channels", "optimized"), [(2, False), (64, True)])
def test_cpu_artifacts_of_large_convolutions_are_optimized_at_load(channels: int, optimized: bool) -> None:
    """The build counts the convolutions' FLOPs (batch 4: 2 channels 0.4 MFLOPs; 64 channels 14 MFLOPs)
    and marks the artifact; the loader then optimizes it for this CPU, with eager's outputs."""
    model, example = conv_net(channels), (torch.rand(4, 3, 32, 32),)
    with torch.no_grad():
        compiled = CpuTarget().compile(model, example, Path("."), NoOptions())
        assert compiled.details.get("optimize_for_inference", False) is optimized
        saved = io.BytesIO()
        torch.jit.save(compiled.module, saved)
        saved.seek(0)
        entry = ArtifactEntry("m.pt", "", 0, details=compiled.details)
        loaded = CpuLoader().load(saved, Manifest(), entry, None)
        kinds = {node.kind() for node in loaded.graph.nodes()}
        assert ("prim::mkldnn_convolution" in kinds) is optimized, kinds
        assert torch.allclose(loaded(*example), model(*example), atol=1e-5)


class CountingCnn(torch.nn.Module):
    """A convolution of enough FLOPs and a buffer that every call changes in place."""

    def __init__(self) -> None:
        super().__init__()
        self.net = conv_net(64)
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return self.net(x) + self.calls


def test_the_builds_probes_run_copies_not_the_model() -> None:
    """Counting FLOPs and trying the passes run on copies: the model's (and the artifact's) state is what
    tracing left, not what two more calls would make it."""
    model = CountingCnn().eval()
    with torch.no_grad():
        compiled = CpuTarget().compile(model, (torch.rand(4, 3, 32, 32),), Path("."), NoOptions())
    assert "optimize_for_inference" in compiled.details
    assert model.calls.item() == 1  # the trace's own call


def test_verification_can_fall_back_to_the_plain_module() -> None:
    target = CpuTarget()
    plain = target.without_load_optimization({"frozen": True, "optimize_for_inference": True})
    assert plain == {"frozen": True, "optimize_for_inference": False}
    assert target.without_load_optimization({"frozen": True}) is None
    assert InductorTarget().without_load_optimization({"device": "cpu"}) is None


def test_graphs_without_convolutions_count_nothing() -> None:
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    with torch.no_grad():
        compiled = CpuTarget().compile(mlp, (torch.rand(2, 8),), Path("."), NoOptions())
    assert compiled.details == {"frozen": True}


def test_graphs_the_passes_break_load_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where optimize_for_inference fails (it breaks Swin's graph: tests/test_corpus.py), the build marks
    the artifact ``False`` and a loader whose torch fails it anyway warns and runs the module as saved."""

    def broken(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
        raise RuntimeError("aten::equal() Expected a value of type 'Tensor'")

    model, example = conv_net(64), (torch.rand(4, 3, 32, 32),)
    monkeypatch.setattr(torch.jit, "optimize_for_inference", broken)
    with torch.no_grad():
        compiled = CpuTarget().compile(model, example, Path("."), NoOptions())
        assert compiled.details == {"frozen": True, "optimize_for_inference": False}
        saved = io.BytesIO()
        torch.jit.save(compiled.module, saved)
        saved.seek(0)
        entry = ArtifactEntry("m.pt", "", 0, details={"optimize_for_inference": True})
        with pytest.warns(RuntimeWarning, match="m.pt: torch.jit.optimize_for_inference failed"):
            loaded = CpuLoader().load(saved, Manifest(), entry, None)
        assert torch.allclose(loaded(*example), model(*example), atol=1e-5)
