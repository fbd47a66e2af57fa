"""Hatchling adapter: a thin layer over :mod:`hatch_neuron.package.pipeline`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from . import pipeline


class NeuronBuildHook(BuildHookInterface):
    """Compiles ``[tool.neuron]`` models into wheels (standard and editable); sdists get sources only."""

    PLUGIN_NAME = "neuron"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if version == "editable":
            self.app.display_warning(
                "hatch-neuron: editable installs do not expose compiled models yet (the source tree shadows "
                "them); install the wheel to use <package>.compiled"
            )
        result, self._staging = pipeline.build_staged(
            Path(self.root), self.metadata.name, lambda line: self.app.display_info(f"hatch-neuron: {line}")
        )
        build_data["force_include"].update({source: target for target, source in result.files.items()})
        build_data["dependencies"].extend(result.requirements)
        if result.platform_specific:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        staging = getattr(self, "_staging", None)
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
