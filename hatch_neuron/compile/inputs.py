"""Deterministic example inputs made from the declared specs."""

from __future__ import annotations

from typing import Any

import torch

#: Seeds of the two input sets: the first is traced on, the second only checks the result.
TRACE_SEED = 0
CHECK_SEED = 1


def make_inputs(specs: list[dict[str, Any]], seed: int) -> tuple[torch.Tensor, ...]:
    """One tensor per spec. Integers are drawn from ``[low, high)``; floats from ``[low, high)`` when
    both are given, else from a standard normal (signs vary, so sign-dependent branches show up)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in specs:
        shape, dtype = spec["shape"], getattr(torch, spec["dtype"])
        low, high = spec.get("low"), spec.get("high")
        if dtype == torch.bool:
            tensor = torch.randint(0, 2, shape, generator=generator).bool()
        elif not dtype.is_floating_point:
            tensor = torch.randint(int(low), int(high), shape, generator=generator, dtype=dtype)
        elif low is not None and high is not None:
            tensor = (torch.rand(shape, generator=generator) * (high - low) + low).to(dtype)
        else:
            tensor = torch.randn(shape, generator=generator).to(dtype)
        tensors.append(tensor)
    return tuple(tensors)
