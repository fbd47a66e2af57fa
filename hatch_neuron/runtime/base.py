"""The runtime half of a target: whether it can run here, and how its artifacts load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import IO, Any

import torch

from .schema import ArtifactEntry, Manifest


class TargetLoader(ABC):
    """Loads one target's artifacts; one subclass per target, named in :mod:`hatch_neuron.targets`."""

    def unusable_reason(self, manifest: Manifest) -> str | None:
        """None when the target's artifacts of ``manifest`` can run here, otherwise why not."""
        return None

    def install_hint(self, manifest: Manifest) -> str | None:
        """What to install to run the target here, added to the error when no target is usable."""
        return None

    def attempt_anyway(self) -> bool:
        """Whether a package built for this target alone is loaded although :meth:`unusable_reason` says
        no (so the target's own runtime reports its error)."""
        return False

    @abstractmethod
    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        """One artifact (its path, or a stream of its bytes; ``artifact``: its manifest entry) as a
        callable taking and returning CPU tensors (on NeuronCore ``core`` when given)."""


class OnDevice:
    """Runs a module whose artifact lives on another device: moves the inputs there and the outputs back
    to the device of the first input, so a compiled model takes and returns CPU tensors on every target
    (and tensors already on that device stay there)."""

    def __init__(self, module: Any, device: str | torch.device) -> None:
        self.module = module
        self.device = torch.device(device)

    def __call__(self, *inputs: torch.Tensor) -> Any:
        home = inputs[0].device if inputs else torch.device("cpu")
        outputs = self.module(*(t.to(self.device) for t in inputs))
        if isinstance(outputs, torch.Tensor):
            return outputs.to(home)
        return type(outputs)(t.to(home) for t in outputs)
