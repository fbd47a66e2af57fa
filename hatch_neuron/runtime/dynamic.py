"""``hatch_neuron.dynamic_batch``: the seed's ``torch_neuronx.dynamic_batch`` for modules made by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .batching import ShapePolicy
from .pytree import flatten, unflatten


class DynamicBatch(torch.nn.Module):
    """A traced module that takes any batch size: split along dim 0 into chunks of the traced batch size,
    the last one zero-padded; outputs concatenated along dim 0 and trimmed. ``ValueError`` when a non-0
    dimension differs from the traced shape or when the inputs' dim-0 sizes differ."""

    def __init__(self, module: Any, shapes: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.module = module
        batch = shapes[0][0]
        if any(shape[0] != batch for shape in shapes):
            raise ValueError(f"dynamic batching needs one batch size for every input, traced with {shapes}")
        self.policy = ShapePolicy("dynamic_batch", shapes, None, {0: [batch]}, dynamic_batch=True)

    def forward(self, *args: torch.Tensor) -> Any:
        sizes = self.policy.check(args)
        results, tree = [], None
        for start, stop in self.policy.pieces(sizes):
            chunk = [arg[start:stop] for arg in args]
            leaves, tree = flatten(
                self.module(*self.policy.pad(chunk, self.policy.bucket({0: stop - start})))
            )
            results.append([leaf[: stop - start] for leaf in leaves])
        return unflatten([torch.cat(parts) for parts in zip(*results, strict=True)], tree)


def traced_shapes(module: Any) -> list[list[int]] | None:
    """The input shapes a ``torch.jit.trace`` recorded, where the graph still has them."""
    graph = getattr(module, "graph", None)
    if graph is None:
        return None
    inputs = [i for i in graph.inputs() if isinstance(i.type(), torch._C.TensorType)]
    sizes = [i.type().sizes() for i in inputs]
    return None if not sizes or any(s is None for s in sizes) else [list(s) for s in sizes]


def dynamic_batch(
    module: Any, example_inputs: Sequence[torch.Tensor] | torch.Tensor | None = None
) -> DynamicBatch:
    """Return ``module`` able to take variable batch sizes, as ``torch_neuronx.dynamic_batch`` does.

    The traced shapes come from the module's graph (``torch.jit.trace`` records them); pass the
    ``example_inputs`` it was traced with where the graph no longer has them (after ``torch.jit.load``).
    Unlike ``torch_neuronx.dynamic_batch`` this returns a new module and leaves ``module`` unchanged.
    """
    if example_inputs is not None:
        tensors = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
        shapes = [list(t.shape) for t in tensors]
    else:
        shapes = traced_shapes(module)
        if shapes is None:
            raise ValueError(
                "dynamic_batch: the module's graph does not record its traced input shapes (it was loaded "
                "or scripted); pass example_inputs=(...) as traced"
            )
    return DynamicBatch(module, shapes)
