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


def slice_write(x: torch.Tensor) -> torch.Tensor:
    y = torch.zeros(2, 8)
    y[:] = x  # traced as slice + copy_: a read of y does not lead back to x in the graph
    return x * (y.abs() > 100).sum().item()


def untraced_alias(x: torch.Tensor) -> torch.Tensor:
    return x * (x.data.abs() > 100).sum().item()  # x.data enters the graph as a constant


class BufferAssigned(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", torch.zeros(2, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.data = x.clone()  # not traced at all
        return x * (self.seen.abs() > 100).sum().item()


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


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        (large_values, "boolean"),
        (slice_write, "number (.item())"),
        (untraced_alias, "number (.item())"),
        (BufferAssigned(), "number (.item())"),
    ],
    ids=["direct", "slice-write", "data-alias", "buffer-assigned"],
)
def test_a_value_read_from_the_data_runs_every_set(monkeypatch: pytest.MonkeyPatch, model, kind: str) -> None:
    calls = _runs(monkeypatch)
    _, sites = conversions.data_dependent_sites(FlatOutputs(model), SPECS, static_shapes=True)
    assert len(calls) == 1 + len(conversions.FILLS) and [s.kind for s in sites] == [kind]


def test_a_shape_that_depends_on_the_data_is_not_taken_as_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _runs(monkeypatch)
    wrapper = FlatOutputs(count_nonzero_branch)
    findings = run_checks("m", count_nonzero_branch, wrapper, SPECS, batched=False)
    kinds = {f["kind"] for f in findings}  # torch.export fails on the branch: shapes not known to be static
    assert {"control-flow", "skipped"} <= kinds and len(calls) == 1 + len(conversions.FILLS)
