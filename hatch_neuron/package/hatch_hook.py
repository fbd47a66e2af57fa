"""Hatchling adapter: a thin layer over :mod:`hatch_neuron.package.pipeline`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from . import build_requires, pipeline
from .stored import add_stored, split_stored

#: Set (to anything) to see hatch-neuron's traceback for a build error, as Hatchling's ``-v`` does.
TRACEBACK_ENV = "HATCH_NEURON_TRACEBACK"
#: The options of ``[tool.hatch.build.hooks.neuron]`` that Hatchling itself reads for every hook; the
#: hook has none of its own (its settings live in ``[tool.neuron]``), so any other key is an error.
HATCHLING_HOOK_OPTIONS = frozenset(
    {"dependencies", "require-runtime-dependencies", "require-runtime-features", "enable-by-default"}
)


def hook_table_problem(config: dict[str, Any]) -> str | None:
    """Why the hook's own table is wrong (a key that would be silently ignored), or None."""
    unknown = sorted(set(config) - HATCHLING_HOOK_OPTIONS)
    if not unknown:
        return None
    return (
        f"[tool.hatch.build.hooks.neuron] has {', '.join(map(repr, unknown))}, which hatch-neuron does not "
        "read: its settings live in [tool.neuron] (for example [tool.neuron] jobs = 2); this table takes "
        f"only Hatchling's own hook options ({', '.join(sorted(HATCHLING_HOOK_OPTIONS))})"
    )


class NeuronBuildHook(BuildHookInterface):
    """Compiles ``[tool.neuron]`` models into wheels (standard and editable); sdists get sources only."""

    PLUGIN_NAME = "neuron"

    def dependencies(self) -> list[str]:
        """torch, for wheels (see :mod:`.build_requires`); an sdist needs none."""
        if self.target_name != "wheel":
            return []
        return [build_requires.torch_requirement(Path(self.root) / "pyproject.toml")]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        problem = hook_table_problem(self.config)
        if problem:
            self.app.abort(f"hatch-neuron: error: {Path(self.root) / 'pyproject.toml'}: {problem}")
        if self.target_name != "wheel":
            return
        editable = version == "editable"
        try:
            result, self._staging = pipeline.build_staged(
                Path(self.root),
                self.metadata.name,
                lambda line: self.app.display_info(f"hatch-neuron: {line}"),
                editable=editable,
            )
        except Exception as exc:
            if not pipeline.is_build_error(exc) or self.app.verbosity > 0 or os.environ.get(TRACEBACK_ENV):
                raise
            # the message says what is wrong; our traceback would only bury it
            self.app.abort(f"hatch-neuron: error: {exc}\n(traceback: {TRACEBACK_ENV}=1 or -v)")
        if editable:
            # once set, Hatchling's editable wheels take this map instead of the project's force-include
            included = build_data["force_include_editable"]
            if not included:
                included.update(self.build_config.get_force_include())
            files = result.files
        else:
            included = build_data["force_include"]
            self._stored, files = split_stored(result.files)
        included.update({source: target for target, source in files.items()})
        build_data["dependencies"].extend(result.requirements)
        if result.platform_specific:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        staging = getattr(self, "_staging", None)
        if getattr(self, "_stored", None):
            add_stored(artifact_path, self._stored)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
