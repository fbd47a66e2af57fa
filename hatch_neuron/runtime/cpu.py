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
        return torch.jit.load(source, map_location="cpu")
