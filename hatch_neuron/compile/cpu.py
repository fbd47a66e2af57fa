"""Target ``cpu``: TorchScript via ``torch.jit.trace`` + ``torch.jit.freeze``. Runs anywhere torch does.

It reproduces what Neuron imposes (one traced graph, fixed shapes and dtypes, enforced by the runtime) so
that a model that works here behaves the same way once compiled for Neuron.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..targets import REGISTRY
from .base import Compiled, CompileTarget
from .options import NoOptions


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
        return Compiled(traced, {"frozen": frozen})
