"""The loader that packages built with hatch-neuron import. It needs torch and the standard library only.

``load("mypkg", "encoder")`` returns the compiled model as a callable; the generated module
``mypkg.compiled`` is a list of such calls.
"""

from __future__ import annotations

from .manifest import ArtifactIntegrityError, read_manifest
from .model import CompiledModel, selection
from .targets import Selection

__all__ = ["ArtifactIntegrityError", "CompiledModel", "Selection", "load", "read_manifest", "selection"]


def load(package: str, model: str, *, lazy: bool = False) -> CompiledModel:
    """The compiled ``model`` of ``package``; ``lazy=True`` defers loading the artifact to the first call."""
    return CompiledModel(package, model, lazy=lazy)
