"""Compare compiled outputs with eager outputs, with tolerances chosen per dtype."""

from __future__ import annotations

import torch

#: (rtol, atol) by output dtype when the model sets none; integers and bools must match exactly.
DEFAULT_TOLERANCE = {
    torch.float64: (1e-4, 1e-6),
    torch.float32: (1e-3, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (1e-2, 1e-2),
}


class MismatchError(AssertionError):
    """Compiled output differs from eager output beyond the tolerance. ``fact`` is what differs, without
    the advice to the model's author (a cached artifact that differs is the cache's fault, not theirs)."""

    def __init__(self, fact: str, advice: str = "") -> None:
        self.fact = fact
        super().__init__(f"{fact}. {advice}" if advice else fact)


def compare(
    name: str,
    eager: list[torch.Tensor],
    compiled: list[torch.Tensor],
    rtol: float | None,
    atol: float | None,
    label: str,
) -> None:
    """Raise :class:`MismatchError` naming the output and the max abs/rel error when they differ."""
    if len(eager) != len(compiled):
        raise MismatchError(f"{name} ({label}): compiled returns {len(compiled)} tensors, eager {len(eager)}")
    for index, (want, got) in enumerate(zip(eager, compiled, strict=True)):
        got = got.cpu()
        if want.shape != got.shape or want.dtype != got.dtype:
            raise MismatchError(
                f"{name} ({label}): output {index} is {got.dtype}{list(got.shape)}, "
                f"eager gives {want.dtype}{list(want.shape)}"
            )
        default_rtol, default_atol = DEFAULT_TOLERANCE.get(want.dtype, (0.0, 0.0))
        r = default_rtol if rtol is None else rtol
        a = default_atol if atol is None else atol
        if torch.allclose(got, want, rtol=r, atol=a, equal_nan=True):
            continue
        diff = (got.double() - want.double()).abs()
        rel = diff / want.double().abs().clamp_min(1e-12)
        raise MismatchError(
            f"{name} ({label}): output {index} differs from eager beyond rtol={r}, atol={a}: "
            f"max abs error {diff.max().item():.3g}, max rel error {rel.max().item():.3g}",
            "If the model has data-dependent control flow, tracing froze one branch; "
            "otherwise loosen rtol/atol",
        )
