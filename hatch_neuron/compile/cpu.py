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
        if frozen and convolution_flops(traced, example_inputs) >= OPTIMIZE_FROM_FLOPS:
            details["optimize_for_inference"] = optimizes_cleanly(traced, example_inputs)
        return Compiled(traced, details)

    def key_options(self, options: NoOptions) -> dict[str, Any]:
        return {"optimize_for_inference": f"convolutions of {OPTIMIZE_FROM_FLOPS} FLOPs a call or more"}


def optimizes_cleanly(traced: torch.jit.ScriptModule, example_inputs: tuple[torch.Tensor, ...]) -> bool:
    """Whether a copy of ``traced`` runs after ``optimize_for_inference`` with the same outputs (rtol 1e-4,
    atol 1e-5): its passes break some graphs (Swin's: "aten::equal() Expected a value of type 'Tensor'"),
    which then load as they are."""
    saved = io.BytesIO()
    torch.jit.save(traced, saved)
    saved.seek(0)
    try:
        with torch.no_grad():
            got = pytree.tree_leaves(torch.jit.optimize_for_inference(torch.jit.load(saved))(*example_inputs))
            want = pytree.tree_leaves(traced(*example_inputs))
    except Exception:  # any failure of the passes: the artifact loads unoptimized
        return False
    return len(got) == len(want) and all(
        torch.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(got, want, strict=True)
    )


def convolution_flops(traced: torch.jit.ScriptModule, example_inputs: tuple[torch.Tensor, ...]) -> int:
    """The FLOPs of the convolutions in one call (counted on the example inputs, only where the frozen
    graph has a convolution at all; 0 where counting fails)."""
    if not any(node.kind().startswith(("aten::_convolution", "aten::conv")) for node in traced.graph.nodes()):
        return 0
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            traced(*example_inputs)
    except Exception:  # a dispatch mode under TorchScript fails on some graphs (Swin's aten::equal)
        return 0
    return sum(n for op, n in counter.get_flop_counts()["Global"].items() if "conv" in str(op))
