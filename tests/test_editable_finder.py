"""The runtime side of editable installs: the finder and the artifact folder outside the package (fast;
real editable installs are in test_frontends.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_json

from hatch_neuron.runtime import editable
from hatch_neuron.runtime.manifest import _FOLDERS, artifact_folder, read_manifest, use_artifact_folder
from hatch_neuron.runtime.schema import Manifest

SCRIPT = """
    import json, sys
    from hatch_neuron.runtime.editable import GeneratedModuleFinder, install

    install("srcpkg.generated", {generated!r})
    install("srcpkg.generated", {generated!r})  # twice: still one finder
    import srcpkg, srcpkg.generated
    print(json.dumps({{
        "package": srcpkg.__file__,
        "generated": srcpkg.generated.__file__,
        "value": srcpkg.generated.VALUE,
        "finders": sum(isinstance(f, GeneratedModuleFinder) for f in sys.meta_path),
        "other": __import__("importlib.util").util.find_spec("srcpkg.other") is None,
    }}))
"""


def test_finder_serves_the_generated_module_next_to_a_source_package(tmp_path: Path) -> None:
    (tmp_path / "src" / "srcpkg").mkdir(parents=True)
    (tmp_path / "src" / "srcpkg" / "__init__.py").write_text("")
    generated = tmp_path / "site" / "generated.py"
    generated.parent.mkdir()
    generated.write_text("VALUE = 42\n")
    report = run_json(SCRIPT.format(generated=str(generated)), tmp_path / "src")
    assert report == {
        "package": str(tmp_path / "src" / "srcpkg" / "__init__.py"),
        "generated": str(generated),
        "value": 42,
        "finders": 1,
        "other": True,  # the finder answers for its modules only
    }


def test_finder_is_standard_library_only() -> None:
    source = Path(editable.__file__).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all(line.split()[1].split(".")[0] in {"__future__", "sys", "importlib"} for line in imports)


def test_artifact_folder_outside_the_package(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "models": {}}))
    try:
        use_artifact_folder("no_such_package_here", tmp_path)
        assert artifact_folder("no_such_package_here") == tmp_path
        assert read_manifest("no_such_package_here") == Manifest(format=1, models={})
    finally:
        _FOLDERS.pop("no_such_package_here", None)
        read_manifest.cache_clear()
