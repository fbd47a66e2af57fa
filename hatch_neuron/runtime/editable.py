"""Editable installs: make ``<package>.<module>`` importable when the package itself comes from the sources.

An editable install puts the project's source folder on ``sys.path``, and a regular package is one folder:
a generated module installed into site-packages under the same package name would never be found. So the
editable wheel holds the generated module and its artifacts in a folder of their own,
``_hatch_neuron_editable_<package>/``, whose ``__init__`` (imported by a one-line ``.pth`` file at start-up)
calls :func:`install`: a finder on ``sys.meta_path`` that answers for the generated module's name only.
That module then points the loader at its artifact folder (``manifest.use_artifact_folder``).

Standard library only, and cheap: it runs in every interpreter start-up of the environment.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec


class GeneratedModuleFinder:
    """Finds the generated modules of editable installs (module name -> file), and nothing else."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        file = self.modules.get(fullname)
        if file is None:
            return None
        from importlib.util import spec_from_file_location

        return spec_from_file_location(fullname, file)


def install(module: str, file: str) -> None:
    """Serve ``module`` (``mypkg.compiled``) from ``file``, ahead of the source tree."""
    finder = next((f for f in sys.meta_path if isinstance(f, GeneratedModuleFinder)), None)
    if finder is None:
        finder = GeneratedModuleFinder()
        sys.meta_path.insert(0, finder)
    finder.modules[module] = file
