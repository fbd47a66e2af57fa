"""Read a built package's manifest and its artifacts, checking each artifact's sha256."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Folder, inside the package that receives the artifacts, holding manifest.json and the artifacts.
ARTIFACT_DIR = "_hatch_neuron"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class ArtifactIntegrityError(RuntimeError):
    """An artifact's bytes do not match the sha256 recorded at build time (tampered or truncated)."""


#: Artifact folders outside their package: package -> folder (editable installs, see ``runtime.editable``).
_FOLDERS: dict[str, Path] = {}


def use_artifact_folder(package: str, folder: str | Path) -> None:
    """Read ``package``'s manifest and artifacts from ``folder`` instead of ``<package>/_hatch_neuron``."""
    _FOLDERS[package] = Path(folder)
    read_manifest.cache_clear()


def artifact_folder(package: str) -> Traversable:
    """Where ``package``'s manifest and artifacts are."""
    folder = _FOLDERS.get(package)
    return folder if folder is not None else resources.files(package).joinpath(ARTIFACT_DIR)


@cache
def read_manifest(package: str) -> dict[str, Any]:
    """The manifest of ``package`` (an importable package built with hatch-neuron)."""
    try:
        text = artifact_folder(package).joinpath(MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LookupError(
            f"package {package!r} has no {ARTIFACT_DIR}/{MANIFEST}: it was not built with hatch-neuron, "
            "or the build did not run the hook (is [tool.hatch.build.hooks.neuron] declared?)"
        ) from None
    manifest = json.loads(text)
    if manifest.get("format") != FORMAT_VERSION:
        raise RuntimeError(
            f"package {package!r}: manifest format {manifest.get('format')!r} is not supported by this "
            f"hatch-neuron runtime (supports {FORMAT_VERSION}); install the hatch-neuron the package asks for"
        )
    return manifest


def read_artifact(package: str, file: str, sha256: str) -> bytes:
    """The bytes of one artifact, refused unless they hash to ``sha256``."""
    data = artifact_folder(package).joinpath(file).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"{package}/{ARTIFACT_DIR}/{file}: sha256 is {actual}, the manifest recorded {sha256} "
            f"({len(data)} bytes read); the file was modified or truncated after the build. Reinstall the "
            "package; the artifact was not loaded"
        )
    return data
