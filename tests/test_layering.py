"""The stages' import layering and the target registry's two halves, read from the source (fast)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import hatch_neuron
from hatch_neuron.config.model import TARGETS
from hatch_neuron.targets import REGISTRY, TARGET_NAMES, UnknownTarget, options_type, target_info

PACKAGE = Path(hatch_neuron.__file__).parent

#: What each part of the package may import of the package (besides itself). The flow is config -> plan
#: -> compile -> package; runtime is what built packages import, so it stands alone; the target registry
#: is the bottom everything reads the target names from.
ALLOWED = {
    "targets": set(),
    "runtime": {"targets"},
    "config": {"targets"},
    "cache": set(),
    "plan": {"config", "targets"},
    "compile": {"", "config", "plan", "cache", "runtime", "targets"},
    "package": {"", "config", "plan", "compile", "cache", "runtime", "targets"},
}


def part_of(module: str) -> str:
    """``hatch_neuron.compile.worker`` -> ``compile``; the package's own ``__init__`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path: Path) -> set[str]:
    """The package modules ``path`` imports (absolute names, relative imports resolved)."""
    module = "hatch_neuron." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
    return {name for name in found if name == "hatch_neuron" or name.startswith("hatch_neuron.")}


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_stage_imports_only_what_it_may(part: str) -> None:
    files = [PACKAGE / "targets.py"] if part == "targets" else sorted((PACKAGE / part).rglob("*.py"))
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if part_of(name) != part and part_of(name) not in ALLOWED[part]
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_relative_imports() -> None:
    found = imported_modules(PACKAGE / "compile" / "worker.py")
    assert {"hatch_neuron.runtime.targets", "hatch_neuron.compile.base", "hatch_neuron.cache"} <= found


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_every_target_has_both_halves(name: str) -> None:
    info = REGISTRY[name]
    compile_module, _, compile_class = info.compiler.partition(":")
    compiler = getattr(importlib.import_module(f"hatch_neuron.compile.{compile_module}"), compile_class)
    assert compiler.info is info
    runtime_module, _, runtime_class = info.loader.partition(":")
    loader = getattr(importlib.import_module(f"hatch_neuron.runtime.{runtime_module}"), runtime_class)
    from hatch_neuron.runtime.base import TargetLoader

    assert issubclass(loader, TargetLoader)
    assert callable(options_type(name).from_settings)  # torch-free: the build process computes them


def test_names_come_from_the_registry() -> None:
    assert TARGETS == TARGET_NAMES
    with pytest.raises(UnknownTarget, match="unknown target 'gpu'; this hatch-neuron knows neuron, xla"):
        target_info("gpu")


def test_an_unknown_target_is_refused_at_load() -> None:
    from hatch_neuron.runtime.schema import ArtifactEntry, Manifest
    from hatch_neuron.runtime.targets import load_artifact, unusable_reason

    assert (
        unusable_reason("gpu", {})
        == "this hatch-neuron runtime does not know target 'gpu'; upgrade hatch-neuron"
    )
    with pytest.raises(RuntimeError, match="cannot load a 'gpu' artifact: unknown target 'gpu'"):
        load_artifact("gpu", "x.pt", Manifest(), ArtifactEntry("x.pt", "0" * 64, 1))
    with pytest.raises(RuntimeError, match="its format is 'aoti', target 'cpu' artifacts are 'torchscript'"):
        load_artifact("cpu", "x.pt", Manifest(), ArtifactEntry("x.pt", "0" * 64, 1, format="aoti"))
