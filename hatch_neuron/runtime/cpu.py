"""Running ``cpu`` artifacts (TorchScript): anywhere torch runs."""

from __future__ import annotations

import warnings
from typing import IO, Any

import torch

from .base import TargetLoader
from .schema import ArtifactEntry, Manifest


class CpuLoader(TargetLoader):
    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        module = torch.jit.load(source, map_location="cpu")
        if not artifact.details.get("optimize_for_inference"):  # set by the build (compile/cpu.py)
            return module
        try:
            return torch.jit.optimize_for_inference(module)
        except Exception as error:  # the build ran these passes (compile/cpu.py); this torch may differ
            warnings.warn(
                f"{artifact.file}: torch.jit.optimize_for_inference failed ({error}); it runs unoptimized",
                RuntimeWarning,
                stacklevel=4,
            )
            if not isinstance(source, str):
                source.seek(0)
            return torch.jit.load(source, map_location="cpu")  # the passes may have left it half-done
