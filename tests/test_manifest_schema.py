"""The manifest records: reference manifests of format 1 keep reading, records round-trip through JSON,
and the pipeline assembles a manifest in-process (fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hatch_neuron import runtime
from hatch_neuron.compile.contracts import ArtifactRecord, ModelResult, Origin
from hatch_neuron.config import settings_from_table
from hatch_neuron.package.pipeline import build_manifest, wheel_files
from hatch_neuron.plan import make_plan
from hatch_neuron.runtime import model as model_module
from hatch_neuron.runtime.manifest import _FOLDERS, ManifestError, read_manifest, use_artifact_folder
from hatch_neuron.runtime.schema import ArtifactEntry, Manifest, ManifestProblem, OutputsEntry

REFERENCES = sorted((Path(__file__).parent / "manifests").glob("format-*/*.json"))
#: Reference manifests written before a field existed: they read with the field's default.
OLDER = {"example-before-warmup.json": {"warmup": 2}}


def test_there_is_a_reference_per_format() -> None:
    assert {path.parent.name for path in REFERENCES} == {f"format-{runtime.manifest.FORMAT_VERSION}"}


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reference_manifests_round_trip(path: Path) -> None:
    data = json.loads(path.read_text())
    manifest = Manifest.from_json(data)
    if path.name in OLDER:
        assert all(getattr(manifest, k) == v for k, v in OLDER[path.name].items())
        assert Manifest.from_json(manifest.to_json()) == manifest
    else:
        assert manifest.to_json() == data  # every field written is a field read, and nothing is lost


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_runtime_reads_every_reference(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each model of each reference manifest becomes a CompiledModel here (lazily: the artifacts are not
    in the repository), on the target this machine selects."""
    monkeypatch.delenv("HATCH_NEURON_TARGET", raising=False)
    package = f"reference_{path.stem.replace('-', '_')}"
    (tmp_path / "manifest.json").write_bytes(path.read_bytes())
    use_artifact_folder(package, tmp_path)
    try:
        manifest = read_manifest(package)
        for name in manifest.models:
            compiled = runtime.CompiledModel(package, name, lazy=True)
            assert compiled.target in manifest.targets and not compiled.loaded
    finally:
        _FOLDERS.pop(package, None)
        model_module._selections.clear()
        read_manifest.cache_clear()


def entry(**extra: Any) -> dict[str, Any]:
    return {"file": "m.cpu.pt", "sha256": "0" * 64, "size": 3, **extra}


def test_artifact_entry_keeps_the_targets_facts() -> None:
    data = entry(
        bucket={"0": 4}, verified=True, format="aoti", device="cpu", isa="x", aliased_outputs=[1],
        companions={".hlo.pb": {"file": "m.hlo.pb", "sha256": "1" * 64, "size": 5}},
        input_shapes=[[4, 3]], output_shapes=[[4, 2]],
    )  # fmt: skip
    artifact = ArtifactEntry.from_json(data)
    assert artifact.details == {"device": "cpu", "isa": "x"} and artifact.aliased_outputs == (1,)
    assert [f.file for f in artifact.files()] == ["m.cpu.pt", "m.hlo.pb"]
    assert artifact.to_json() == data


def test_structure_problems_name_the_place() -> None:
    with pytest.raises(ManifestProblem, match="model 'm', target 'cpu': an artifact entry has no 'sha256'"):
        Manifest.from_json({"models": {"m": {"artifacts": {"cpu": [{"file": "a.pt"}]}}}})
    with pytest.raises(ManifestProblem, match=r"model 'm': the entry is malformed \(missing key 'shape'\)"):
        Manifest.from_json({"models": {"m": {"artifacts": {}, "inputs": [{"dtype": "float32"}]}}})


def test_a_malformed_model_entry_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": 1, "targets": ["cpu"], "models": {"m": {"artifacts": {}, "outputs": {}}}})
    )
    use_artifact_folder("schema_malformed_pkg", tmp_path)
    try:
        with pytest.raises(
            ManifestError, match=r"model 'm': the entry is malformed \(missing key 'tree'\); the"
        ):
            read_manifest("schema_malformed_pkg")
    finally:
        _FOLDERS.pop("schema_malformed_pkg", None)
        read_manifest.cache_clear()


def compile_result(file: str, **facts: Any) -> ModelResult:
    """A scheduler's result for a model with one artifact, taken from the cache."""
    artifact = ArtifactEntry.from_json(
        {
            **entry(file=file), "bucket": {}, "input_shapes": [[2, 3]], "output_shapes": [[2, 3]],
            "format": "torchscript", "verified": True, **facts,
        }
    )  # fmt: skip
    record = ArtifactRecord(artifact, "cpu", Origin.LOCAL_CACHE, 1.5, ["a warning"], {"tool": "1.0"})
    outputs = OutputsEntry("T", [{"shape": [2, 3], "dtype": "float32"}])
    return ModelResult(outputs, {"m.cpu": record}, [], [])


def test_the_pipeline_assembles_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    table = {
        "package": "pkg",
        "targets": ["cpu"],
        "replicas": 2,
        "models": {"m": {"factory": "pkg.nets:make", "inputs": [{"shape": [2, 3]}]}},
    }
    plan = make_plan(settings_from_table(table, {}), tmp_path)
    results = {"m": compile_result("m.cpu.pt", frozen=True)}
    manifest = build_manifest(plan, results)
    assert manifest.package == "pkg" and manifest.replicas == 2 and manifest.targets == ["cpu"]
    assert manifest.built_with["tool"] == "1.0" and "torch" in manifest.built_with
    (artifact,) = manifest.models["m"].artifacts["cpu"]
    # build-only fields (timings, where it came from, the toolchain, now in built_with) stay out
    assert artifact.details == {"frozen": True}
    assert "seconds" not in artifact.to_json() and "cached" not in artifact.to_json()
    assert manifest.models["m"].inputs[0].to_json() == {
        "shape": [2, 3], "dtype": "float32", "low": None, "high": None,
    }  # fmt: skip
    assert Manifest.from_json(manifest.to_json()) == manifest
    staging = tmp_path / "staging"
    files = wheel_files(plan, manifest, staging, staging / "compiled.py", editable=False)
    assert files == {
        "pkg/_hatch_neuron/manifest.json": str(staging / "_hatch_neuron" / "manifest.json"),
        "pkg/_hatch_neuron/m.cpu.pt": str(staging / "_hatch_neuron" / "m.cpu.pt"),
        "pkg/compiled.py": str(staging / "compiled.py"),
    }
