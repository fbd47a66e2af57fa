"""Flatten model outputs to a tuple of tensors and back.

Compiled artifacts always return a flat tuple (Neuron and TorchScript both handle that); the manifest
keeps the structure so the loader hands callers what the eager model returned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch

Tree = Any  # "T" | {"tuple": [Tree]} | {"list": [Tree]} | {"dict": [[key, Tree]]}


def flatten(value: Any) -> tuple[list[torch.Tensor], Tree]:
    """Return the tensors of ``value`` in order, and its structure as JSON-ready data."""
    if isinstance(value, torch.Tensor):
        return [value], "T"
    if isinstance(value, (tuple, list)):
        leaves: list[torch.Tensor] = []
        trees = []
        for item in value:
            sub_leaves, sub_tree = flatten(item)
            leaves += sub_leaves
            trees.append(sub_tree)
        return leaves, {type(value).__name__ if type(value) in (tuple, list) else "tuple": trees}
    if isinstance(value, dict):
        leaves, pairs = [], []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"output dict keys must be strings, got {key!r}")
            sub_leaves, sub_tree = flatten(item)
            leaves += sub_leaves
            pairs.append([key, sub_tree])
        return leaves, {"dict": pairs}
    raise TypeError(
        f"model outputs must be tensors, or tuples/lists/dicts of tensors; got {type(value).__name__}"
    )


def builder(tree: Tree) -> Callable[[Sequence[torch.Tensor]], Any]:
    """A function that rebuilds the structure ``tree`` from its leaves, made once per model so that each
    call only indexes and packs (the inverse of :func:`flatten`)."""
    position = itertools.count()

    def make(node: Tree) -> Callable[[Sequence[torch.Tensor]], Any]:
        if node == "T":
            index = next(position)
            return lambda leaves: leaves[index]
        ((kind, items),) = node.items()
        if kind == "dict":
            pairs = [(key, make(sub)) for key, sub in items]
            return lambda leaves: {key: part(leaves) for key, part in pairs}
        parts = [make(sub) for sub in items]
        if kind == "tuple":
            return lambda leaves: tuple(part(leaves) for part in parts)
        return lambda leaves: [part(leaves) for part in parts]

    return make(tree)


def unflatten(leaves: Sequence[torch.Tensor], tree: Tree) -> Any:
    """Rebuild the structure ``tree`` from ``leaves``."""
    return builder(tree)(leaves)
