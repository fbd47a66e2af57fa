"""The loader that packages built with hatch-neuron import. It needs torch and the standard library only.

``load("mypkg", "encoder")`` returns the compiled model as a callable; the generated module
``mypkg.compiled`` is a list of such calls. Names are imported on first use, so that the build side can
read :mod:`hatch_neuron.runtime.manifest` without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import CompiledModel

_EXPORTS = {
    "ArtifactIntegrityError": ".manifest",
    "ManifestError": ".manifest",
    "read_manifest": ".manifest",
    "CompiledModel": ".model",
    "selection": ".model",
    "Selection": ".targets",
}

__all__ = [*_EXPORTS, "load"]


def load(package: str, model: str, *, lazy: bool = False) -> CompiledModel:
    """The compiled ``model`` of ``package``; ``lazy=True`` defers loading the artifact to the first call."""
    from .model import CompiledModel

    return CompiledModel(package, model, lazy=lazy)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
