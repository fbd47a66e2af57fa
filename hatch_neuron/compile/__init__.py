"""Compile stage: one module per target behind :class:`CompileTarget`; models run in a child process.

Importing this package does not import torch or any target (the build process only needs the registry,
:mod:`hatch_neuron.targets`, on a warm build); :func:`get_target` imports the one asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..targets import compiler

if TYPE_CHECKING:
    from .base import CompileTarget


def get_target(name: str) -> CompileTarget:
    """The compile half of target ``name`` (:class:`~hatch_neuron.targets.UnknownTarget` if none)."""
    target: CompileTarget = compiler(name)
    return target


def __getattr__(name: str) -> Any:
    if name in ("CompileTarget", "Compiled", "TargetUnavailable"):
        return getattr(importlib.import_module(".base", __name__), name)
    raise AttributeError(name)


__all__ = ["CompileTarget", "Compiled", "TargetUnavailable", "get_target"]
