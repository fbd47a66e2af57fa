"""Running ``cpu`` artifacts (TorchScript): anywhere torch runs."""

from __future__ import annotations

from typing import IO, Any

import torch

from .base import TargetLoader
from .schema import ArtifactEntry, Manifest


class CpuLoader(TargetLoader):
    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        module = torch.jit.load(source, map_location="cpu")
        if artifact.details.get("optimize_for_inference"):  # the build found a convolution (compile/cpu.py)
            module = torch.jit.optimize_for_inference(module)
        return module
