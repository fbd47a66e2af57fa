"""Hatchling adapter: a thin layer over :mod:`hatch_neuron.package.pipeline`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from . import build_requires, pipeline


class NeuronBuildHook(BuildHookInterface):
    """Compiles ``[tool.neuron]`` models into wheels (standard and editable); sdists get sources only."""

    PLUGIN_NAME = "neuron"

    def dependencies(self) -> list[str]:
        """torch, for wheels (see :mod:`.build_requires`); an sdist needs none."""
        if self.target_name != "wheel":
            return []
        return [build_requires.torch_requirement(Path(self.root) / "pyproject.toml")]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        editable = version == "editable"
        result, self._staging = pipeline.build_staged(
            Path(self.root),
            self.metadata.name,
            lambda line: self.app.display_info(f"hatch-neuron: {line}"),
            editable=editable,
        )
        if editable:
            # once set, Hatchling's editable wheels take this map instead of the project's force-include
            included = build_data["force_include_editable"]
            if not included:
                included.update(self.build_config.get_force_include())
        else:
            included = build_data["force_include"]
        included.update({source: target for target, source in result.files.items()})
        build_data["dependencies"].extend(result.requirements)
        if result.platform_specific:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        staging = getattr(self, "_staging", None)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
