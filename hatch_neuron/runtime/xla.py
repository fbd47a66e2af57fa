"""Running ``xla`` artifacts (StableHLO programs) through torch-xla on the configured PJRT device.

torch-xla picks the device from ``PJRT_DEVICE`` (``CPU``, ``CUDA``, ``TPU``, ``NEURON``); without it, a TPU
or Neuron device when present, else the CPU (with a warning from torch-xla).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import tempfile
import zipfile
from typing import IO, Any

import torch

from .base import OnDevice, TargetLoader
from .schema import ArtifactEntry, Manifest


def xla_problem() -> str | None:
    """None when torch-xla can run here, otherwise why not (without importing it: that takes seconds)."""
    if importlib.util.find_spec("torch_xla") is None:
        return "torch_xla is not importable (pip install 'hatch-neuron[xla]')"
    xla_version = importlib.metadata.version("torch-xla")
    if xla_version.split(".")[:2] != torch.__version__.split(".")[:2]:
        return (
            f"torch-xla {xla_version} needs the torch of the same release, this is torch {torch.__version__}"
        )
    return None


def load_stablehlo(source: str | IO[bytes]) -> tuple[Any, Any]:
    """The program in a ``.stablehlo.zip`` artifact with its weights already on the XLA device, and that
    device."""
    torch_xla = importlib.import_module("torch_xla")
    stablehlo = importlib.import_module("torch_xla.stablehlo")
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-xla-") as folder:
        zipfile.ZipFile(source).extractall(folder)
        program = stablehlo.StableHLOGraphModule.load(folder)
    device = torch_xla.device()
    # The loaded bundle keeps weights as numpy arrays and copies them to the device on every call; move
    # them there once (the bundle is torch_xla's own dataclass, its fields are plain attributes).
    bundle = program._bundle
    bundle.state_dict = {name: torch.from_numpy(v).to(device) for name, v in bundle.state_dict.items()}
    bundle.additional_constants = [torch.from_numpy(v).to(device) for v in bundle.additional_constants]
    return program, device


class XlaLoader(TargetLoader):
    def unusable_reason(self, manifest: Manifest) -> str | None:
        return xla_problem()

    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        return OnDevice(*load_stablehlo(source))
