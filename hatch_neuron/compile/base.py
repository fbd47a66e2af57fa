"""The small interface every compile target implements."""

from __future__ import annotations

import importlib.util
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..targets import TargetInfo
from .reproducible import save_torchscript


class TargetUnavailable(RuntimeError):
    """The build host lacks what a target needs; the message says what to install."""


class CannotCompile(RuntimeError):
    """A target cannot compile this model (for ``inductor``: ``torch.export`` fails on it); the message
    says why and where, so it is reported without hatch-neuron's traceback."""


def user_frame(exc: BaseException) -> str | None:
    """``File "...", line N`` of the innermost frame of ``exc``'s traceback outside torch and hatch-neuron:
    the model's own line that a failure came from."""
    skip = (str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1]))
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
    return f'File "{frames[-1].filename}", line {frames[-1].lineno}' if frames else None


@dataclass
class Compiled:
    """What a target produced: the module to save and facts for the manifest."""

    module: Any
    details: dict[str, Any] = field(default_factory=dict)
    #: Files that go into the wheel beside the artifact, named ``<artifact stem><suffix>`` (suffix -> file
    #: in the workdir); the runtime does not load them.
    companions: dict[str, Path] = field(default_factory=dict)


class CompileTarget(ABC):
    #: Its line in the registry (:mod:`hatch_neuron.targets`): name, file suffixes, format.
    info: ClassVar[TargetInfo]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def suffix(self) -> str:
        return self.info.suffix

    #: The module the target's toolchain provides, checked by the default :meth:`preflight`.
    requires_module: ClassVar[str | None] = None
    #: What to install when ``requires_module`` is missing.
    install_hint: ClassVar[str] = ""
    #: Whether :meth:`compile` is given the model already traced by ``torch.jit.trace`` at the example
    #: inputs (the worker traces once for the checks, the cache key and such a target) instead of the module.
    compiles_the_trace: ClassVar[bool] = False
    #: Whether what :meth:`compile` writes holds the path of its ``workdir``: then the worker gives it a
    #: folder named after the artifact key at a fixed place (:func:`.reproducible.keyed_workdir`).
    output_holds_workdir: ClassVar[bool] = False

    def preflight(self, options: Any) -> None:
        """Raise :class:`TargetUnavailable` when this host cannot compile for the target. Runs in the
        build process before any model is imported, so a missing toolchain fails fast."""
        if self.requires_module and importlib.util.find_spec(self.requires_module) is None:
            raise TargetUnavailable(self.install_hint)

    def environment(self, options: Any) -> dict[str, str]:
        """Environment variables the worker sets (where not already set) before anything imports the
        target's toolchain."""
        return {}

    @abstractmethod
    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: Any,
    ) -> Compiled:
        """Trace/compile ``module`` (which returns a flat tuple of tensors) on ``example_inputs``."""

    def save(self, compiled: Compiled, path: Path) -> None:
        """Write the artifact to ``path``, byte-identical for the same model and toolchain."""
        save_torchscript(compiled.module, path)

    def key_options(self, options: Any) -> dict[str, Any]:
        """The options that change this target's artifact (part of its cache key; the rest is not, so
        changing neuronx-cc flags does not rebuild ``cpu`` artifacts)."""
        return {}

    def without_load_optimization(self, details: dict[str, Any]) -> dict[str, Any] | None:
        """The artifact's facts with the optimization its loader applies turned off, or None where it
        applies none: the build verifies again with them when the optimized artifact does not match."""
        return None

    def can_verify(self) -> bool:
        """Whether the artifact can run on this host, so the build can compare it with eager."""
        return True

    def toolchain(self) -> dict[str, str | None]:
        """Versions of the tools beyond torch that made the artifact."""
        return {}
