"""Compile stage: one module per target behind :class:`CompileTarget`; models run in a child process."""

from .base import Compiled, CompileTarget, TargetOptions, TargetUnavailable
from .cpu import CpuTarget
from .inductor import InductorTarget
from .neuron import NeuronTarget
from .xla import XlaTarget

TARGETS: dict[str, type[CompileTarget]] = {
    t.name: t for t in (NeuronTarget, XlaTarget, InductorTarget, CpuTarget)
}


def get_target(name: str) -> CompileTarget:
    return TARGETS[name]()


__all__ = ["TARGETS", "CompileTarget", "Compiled", "TargetOptions", "TargetUnavailable", "get_target"]
