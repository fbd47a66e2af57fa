"""The torch that compiles the models: what the build hooks add to a wheel build's requirements.

hatch-neuron itself does not depend on torch: an sdist needs none, and a torch pulled in by hatch-neuron
would be installed first and then replaced by the one the project asks for. The adapters ask for torch
when a wheel (standard or editable) is built: Hatchling through the build hook's ``dependencies()``,
setuptools through the requirement report of ``setuptools.build_meta`` (see ``setuptools_hook``).

Which torch: ``HATCH_NEURON_TORCH`` (a requirement such as ``torch==2.9.1``) when set, else the project's
own torch requirement from ``[project] dependencies``, else ``torch``. The wheel's ``Requires-Dist`` then
pins the release line of the torch that was installed, so that the package runs with the torch it was
compiled with; pinning the build to the user's torch (this variable, or pip/uv build constraints) is how
a package and the environment it goes into agree. An environment that already satisfies the requirement
(``--no-build-isolation``) installs nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..config import ConfigError
from ..config.parse import read_pyproject

TORCH_ENV = "HATCH_NEURON_TORCH"


def torch_requirement(pyproject: Path, environ: dict[str, str] | None = None) -> str:
    """The torch requirement of a wheel build of the project whose ``pyproject.toml`` is given."""
    override = (os.environ if environ is None else environ).get(TORCH_ENV, "").strip()
    if override:
        try:
            requirement = Requirement(override)
        except InvalidRequirement as exc:
            raise ConfigError(
                TORCH_ENV, f"{override!r} is not a requirement: {exc}", "say torch==2.9.1"
            ) from None
        if canonicalize_name(requirement.name) != "torch":
            raise ConfigError(TORCH_ENV, f"{override!r} is not a torch requirement", "say torch==2.9.1")
        return override
    project = read_pyproject(pyproject).get("project", {})
    for dependency in project.get("dependencies", []) if isinstance(project, dict) else []:
        try:
            requirement = Requirement(dependency)
        except InvalidRequirement:
            continue  # the backend reports it
        if canonicalize_name(requirement.name) == "torch" and (
            requirement.marker is None or requirement.marker.evaluate()
        ):
            requirement.marker = None
            return str(requirement)
    return "torch"


def is_satisfied(requirement: str) -> bool:
    """Whether this environment's torch meets ``requirement``."""
    try:
        installed = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return Requirement(requirement).specifier.contains(installed, prereleases=True)
