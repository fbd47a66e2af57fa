"""Running ``neuron`` artifacts: TorchScript modules holding Neuron graphs, loaded through torch-neuronx
onto a NeuronCore (``/dev/neuron*``)."""

from __future__ import annotations

import functools
import glob
import importlib
import importlib.metadata
import importlib.util
import warnings
from typing import IO, Any

import torch

from .base import TargetLoader
from .neuron_compat import architecture_problem, compiler_problem, host_family, release_problem
from .schema import ArtifactEntry, Manifest


def neuron_device_present() -> bool:
    return bool(glob.glob("/dev/neuron*"))


class NeuronLoader(TargetLoader):
    def unusable_reason(self, manifest: Manifest) -> str | None:
        if importlib.util.find_spec("torch_neuronx") is None:
            return "torch_neuronx is not importable"
        if not neuron_device_present():
            return "no Neuron device (/dev/neuron*)"
        return None

    def install_hint(self, manifest: Manifest) -> str:
        version = manifest.built_with.get("torch-neuronx")
        spec = f"torch-neuronx=={version}" if version else "torch-neuronx"
        return (
            f"install {spec} (the version this package was built with) from the Neuron repository "
            "(pip install --extra-index-url https://pip.repos.neuron.amazonaws.com ...) on an Inf2/Trn1 "
            f"instance, or use a wheel built with a portable target (HATCH_NEURON_TARGETS=cpu at build time)"
        )

    def attempt_anyway(self) -> bool:
        # torch_neuronx without a visible device: its runtime reports its own error
        return importlib.util.find_spec("torch_neuronx") is not None

    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        try:
            torch_neuronx = importlib.import_module("torch_neuronx")  # registers the neuron:: ops
        except ImportError as exc:
            raise ImportError(
                f"loading a neuron artifact needs torch_neuronx: {self.install_hint(manifest)}"
            ) from exc
        _check_compatible(manifest, artifact, torch_neuronx)
        separated = (artifact.details.get("neuron_options") or {}).get("inline-weights") is False
        if core is None:
            if separated:
                warnings.warn(
                    f"{artifact.file}: its weights are kept outside the NEFF (inline-weights = false) and, "
                    "with round-robin placement, stay in host memory: every call pays for moving them. "
                    "Pin the model with placement = { start = ..., count = ... }",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return torch.jit.load(source)  # Neuron places it on the next core, round-robin
        with _cores_context(torch_neuronx)(start_nc=core, nc_count=1):
            module = torch.jit.load(source)
            if separated:
                # weights kept outside the NEFF do not follow it onto the core by themselves; inside the
                # context, which puts back the default core that move_trace_to_device changes
                torch_neuronx.move_trace_to_device(module, core)
        return module


def _cores_context(torch_neuronx: Any) -> Any:
    """``neuron_cores_context``: a top-level name since Neuron SDK 2.25, ``torch_neuronx.experimental``'s
    (the Beta placement API) up to 2.24."""
    if hasattr(torch_neuronx, "neuron_cores_context"):
        return torch_neuronx.neuron_cores_context
    return importlib.import_module("torch_neuronx.experimental").neuron_cores_context


def _check_compatible(manifest: Manifest, artifact: ArtifactEntry, torch_neuronx: Any) -> None:
    """Refuse, before ``torch.jit.load``, what the Neuron runtime would refuse less clearly; warn where it
    may work."""
    problems = (
        release_problem(
            manifest.built_with.get("torch-neuronx"), getattr(torch_neuronx, "__version__", None)
        ),
        compiler_problem(manifest.built_with.get("neuronx-cc"), _installed("neuronx-cc")),
        architecture_problem(artifact.details.get("neuron_target"), host_family()),
    )
    for level, message in filter(None, problems):
        if level == "error":
            raise RuntimeError(f"cannot load {artifact.file!r}: {message}")
        warnings.warn(f"{artifact.file}: {message}", RuntimeWarning, stacklevel=4)


@functools.cache
def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
