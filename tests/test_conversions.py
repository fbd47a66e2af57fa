"""The conversion check runs the other input sets only when a converted value can depend on input data
(fast, in-process)."""

from __future__ import annotations

import pytest
import torch

from hatch_neuron.compile import conversions
from hatch_neuron.compile.checks import run_checks
from hatch_neuron.compile.worker import FlatOutputs

SPECS = [{"shape": [2, 8], "dtype": "float32"}]


def shape_only(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] > 4:  # a tensor under tracing, converted: fixed by the declared shape
        return x * 2
    return x


class ParameterBranch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if self.scale.sum() > 0 else x  # parameters are fixed too


def large_values(x: torch.Tensor) -> torch.Tensor:
    if x.abs().max() > 100:  # only the "large" set gets here
        return x * 0
    return x + 1


def count_nonzero_branch(x: torch.Tensor) -> torch.Tensor:
    if torch.nonzero(x > 0).shape[0] > 15:  # a shape, but of a tensor whose shape depends on the data
        return x * 0
    return x + 1


def _runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    trace_only = conversions._trace_only
    monkeypatch.setattr(conversions, "_trace_only", lambda *a: calls.append(1) or trace_only(*a))
    return calls


@pytest.mark.parametrize("model", [shape_only, ParameterBranch()], ids=["shape", "parameter"])
def test_values_fixed_by_shapes_and_parameters_need_one_run(monkeypatch: pytest.MonkeyPatch, model) -> None:
    calls = _runs(monkeypatch)
    _, sites = conversions.data_dependent_sites(FlatOutputs(model), SPECS, static_shapes=True)
    assert sites == [] and len(calls) == 1
    conversions.data_dependent_sites(FlatOutputs(model), SPECS)  # shapes not known to be static: every set
    assert len(calls) == 1 + 1 + len(conversions.FILLS)


def test_a_value_read_from_the_data_runs_every_set(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _runs(monkeypatch)
    _, sites = conversions.data_dependent_sites(FlatOutputs(large_values), SPECS, static_shapes=True)
    assert len(calls) == 1 + len(conversions.FILLS) and [s.kind for s in sites] == ["boolean"]


def test_a_shape_that_depends_on_the_data_is_not_taken_as_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _runs(monkeypatch)
    wrapper = FlatOutputs(count_nonzero_branch)
    findings = run_checks("m", count_nonzero_branch, wrapper, SPECS, batched=False)
    kinds = {f["kind"] for f in findings}  # torch.export fails on the branch: shapes not known to be static
    assert {"control-flow", "skipped"} <= kinds and len(calls) == 1 + len(conversions.FILLS)
