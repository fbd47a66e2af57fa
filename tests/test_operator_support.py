"""The operator-support check counts only the ops without an XLA lowering that input data flows into.

torch-xla runs an op it cannot lower on the CPU. On parameters alone (weight norm on a conv weight, as in
Wav2Vec2) that happens once and the result enters the HLO like a weight, so ``torch_neuronx.trace`` folds it
into constants: no finding. On data from the inputs it cuts the graph: a finding naming the op and the line.
In the xla lane only (``scripts/test_xla.sh``: torch-xla 2.9.0 on its CPU device), in-process.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from hatch_neuron.compile.checks import operator_support
from hatch_neuron.compile.worker import FlatOutputs
from hatch_neuron.runtime.xla import xla_problem

pytestmark = [
    pytest.mark.xla,
    pytest.mark.skipif(
        xla_problem() is not None, reason=f"runs in the xla lane (scripts/test_xla.sh): {xla_problem()}"
    ),
]


def spec(*shape: int) -> dict:
    return {"shape": list(shape), "dtype": "float32", "low": None, "high": None}


def check(model: torch.nn.Module, *specs: dict) -> list:
    torch.manual_seed(0)
    model.eval()
    return [f for f in operator_support("m", model, FlatOutputs(model), list(specs)) if f.kind != "skipped"]


def fallback_count(op: str) -> int:
    """How often torch-xla ran ``op`` on the CPU during the last check (it clears the counters first)."""
    import torch_xla.debug.metrics as metrics

    return metrics.counter_value(op) or 0


def line_of(cls: type, marker: str) -> int:
    lines, first = inspect.getsourcelines(cls)
    return first + next(i for i, line in enumerate(lines) if marker in line)


class WeightNormConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        conv = torch.nn.Conv1d(2, 4, 3)
        self.conv = torch.nn.utils.parametrizations.weight_norm(conv, dim=2)  # dim 2: the fused kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x * 2 + 1)


class WeightNormLinear(torch.nn.Module):
    # (not torch.nn.utils.weight_norm, the deprecated hook API: its modules cannot be deep-copied)
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(4, 3))  # dim 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


class MedianOfInput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = torch.median(self.lin(x), dim=-1).values  # input-dependent median
        return self.lin(middle[:, None] * torch.ones(4))


class MedianOfBoth(torch.nn.Module):
    """The same op on a parameter and on the input: the finding points at the input's line."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.median(self.w * 2, dim=-1).values  # parameter-only median
        return torch.median(x + scale[:, None], dim=-1).values  # input-dependent median


@pytest.mark.parametrize("model", [WeightNormConv, WeightNormLinear])
def test_parameter_only_fallback_is_not_a_finding(model: type) -> None:
    shape = (1, 2, 8) if model is WeightNormConv else (2, 4)
    assert check(model(), spec(*shape)) == []
    assert fallback_count("aten::_weight_norm_interface") > 0  # torch-xla did run it on the CPU


def test_input_dependent_fallback_is_a_finding_at_the_users_line() -> None:
    findings = check(MedianOfInput(), spec(2, 4))
    assert [f.kind for f in findings] == ["operator-support"], findings
    assert findings[0].message.startswith("aten::median"), findings[0].message
    want = f'{__file__}", line {line_of(MedianOfInput, "input-dependent median")}, in forward'
    assert want in findings[0].where, findings[0].where


def test_op_on_parameters_and_on_input_is_reported_at_the_input_line() -> None:
    findings = check(MedianOfBoth(), spec(2, 4))
    assert len(findings) == 1 and findings[0].message.startswith("aten::median"), findings
    assert f"line {line_of(MedianOfBoth, 'input-dependent median')}," in findings[0].where, findings[0].where


def test_wav2vec2_positional_conv_weight_norm_is_not_a_finding() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    findings = check(transformers.Wav2Vec2Model(config), spec(1, 1600))
    assert fallback_count("aten::_weight_norm_interface") > 0  # the case of the issue: it does fall back
    assert findings == [], findings


def _corpus_nets() -> object:
    """tests/projects/corpus's nets.py, loaded on its own (it imports transformers in its factories)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "projects" / "corpus" / "corpus_models" / "nets.py"
    spec = importlib.util.spec_from_file_location("_corpus_nets", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_has_no_operator_support_findings() -> None:
    """Every architecture of the corpus (transformers' own classes; tests/test_corpus.py builds them)
    lowers through torch-xla with no op that input data flows into left on the CPU."""
    nets = _corpus_nets()
    found = {}
    for name, specs in nets.INPUTS.items():  # type: ignore[attr-defined]
        torch.manual_seed(0)
        model = getattr(nets, f"make_{name}")()
        full = [{"low": None, "high": None, **s} for s in specs]
        findings = operator_support(name, model, FlatOutputs(model), full)
        found[name] = [f"{f.message} ({f.where})" for f in findings if f.kind != "skipped"]
    assert not any(found.values()), {n: f for n, f in found.items() if f}
