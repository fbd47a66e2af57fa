"""Target ``cpu``: TorchScript via ``torch.jit.trace`` + ``torch.jit.freeze``. Runs anywhere torch does.

A frozen graph whose convolutions do at least :data:`OPTIMIZE_FROM_FLOPS` per call is marked
``optimize_for_inference`` in its manifest entry: the loader runs ``torch.jit.optimize_for_inference`` on
it, on the host that runs it (its oneDNN weights are laid out for that CPU's kernels, and TorchScript
cannot save them in the artifact anyway). Measured here, one thread, frozen -> optimized: ResNet-18
(3.6 GFLOPs a call at batch 1) 1.06x faster at batch 1 and 1.25x at batch 8; the example CNN 0.89x at
batch 1 (5.6 MFLOPs), 1.71x at batch 2, 2.26x at batch 8; a 1-channel 3x3 convolution 0.29x (the oneDNN
conversions around it cost more than it does). The FLOPs are counted, not timed, so the wheel stays
byte-reproducible.

It reproduces what Neuron imposes (one traced graph, fixed shapes and dtypes, enforced by the runtime) so
that a model that works here behaves the same way once compiled for Neuron.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from ..targets import REGISTRY
from .base import Compiled, CompileTarget
from .options import NoOptions

#: Convolution FLOPs a call from which the loader runs ``torch.jit.optimize_for_inference`` (see above).
OPTIMIZE_FROM_FLOPS = 8_000_000


class CpuTarget(CompileTarget):
    info = REGISTRY["cpu"]
    compiles_the_trace = True

    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: NoOptions,
    ) -> Compiled:
        traced = module
        if not isinstance(module, torch.jit.ScriptModule):
            traced = torch.jit.trace(module, example_inputs, check_trace=False)
        try:
            traced = torch.jit.freeze(traced.eval())
            frozen = True
        except (RuntimeError, AttributeError):  # freeze does not apply to every traced graph
            frozen = False
        details: dict[str, Any] = {"frozen": frozen}
        if frozen and has_convolution(traced.graph):
            details.update(load_time_optimization(traced, example_inputs))
        return Compiled(traced, details)

    def key_options(self, options: NoOptions) -> dict[str, Any]:
        return {"optimize_for_inference": f"convolutions of {OPTIMIZE_FROM_FLOPS} FLOPs a call or more"}

    def without_load_optimization(self, details: dict[str, Any]) -> dict[str, Any] | None:
        if not details.get("optimize_for_inference"):
            return None
        return {**details, "optimize_for_inference": False}


def has_convolution(graph: torch.Graph) -> bool:
    return any(node.kind().startswith(("aten::_convolution", "aten::conv")) for node in graph.nodes())


def load_time_optimization(traced: torch.jit.ScriptModule, example_inputs: tuple[torch.Tensor, ...]) -> dict:
    """``{"optimize_for_inference": ...}`` where the convolutions do :data:`OPTIMIZE_FROM_FLOPS` or more
    (``True`` where a copy runs after the passes with the same outputs, rtol 1e-4 and atol 1e-5: they
    break some graphs, Swin's with "aten::equal() Expected a value of type 'Tensor'"); ``{}`` below that
    or where the FLOPs cannot be counted (a dispatch mode under TorchScript fails on Swin's graph too).
    Only copies run: ``traced`` shares its state with the model, which a call may change in place."""
    from torch.utils.flop_counter import FlopCounterMode

    saved = io.BytesIO()
    torch.jit.save(traced, saved)

    def copy() -> torch.jit.ScriptModule:
        saved.seek(0)
        return torch.jit.load(saved)

    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            want = pytree.tree_leaves(copy()(*example_inputs))
    except Exception:
        return {}
    counts = counter.get_flop_counts().get("Global", {})
    if sum(n for op, n in counts.items() if "conv" in str(op)) < OPTIMIZE_FROM_FLOPS:
        return {}
    try:
        with torch.no_grad():
            got = pytree.tree_leaves(torch.jit.optimize_for_inference(copy())(*example_inputs))
    except Exception:  # any failure of the passes: the artifact loads unoptimized
        return {"optimize_for_inference": False}
    same = len(got) == len(want) and all(
        torch.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(got, want, strict=True)
    )
    return {"optimize_for_inference": same}
