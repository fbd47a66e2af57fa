"""Compile stage: one module per target behind :class:`CompileTarget`; models run in a child process.

Importing this package does not import torch or any target (the build process only needs
:data:`TARGET_INFO` on a warm build); :func:`get_target` imports the one asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .info import TARGET_INFO, TargetInfo
from .options import TargetOptions

if TYPE_CHECKING:
    from .base import CompileTarget


def get_target(name: str) -> CompileTarget:
    module, _, cls = TARGET_INFO[name].implementation.partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)()


def __getattr__(name: str) -> Any:
    if name in ("CompileTarget", "Compiled", "TargetUnavailable"):
        return getattr(importlib.import_module(".base", __name__), name)
    raise AttributeError(name)


__all__ = [
    "TARGET_INFO",
    "CompileTarget",
    "Compiled",
    "TargetInfo",
    "TargetOptions",
    "TargetUnavailable",
    "get_target",
]
