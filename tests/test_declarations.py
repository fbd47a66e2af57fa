"""Declaring models (issue 17) without building: YAML models files and their errors (file:line:column, key
path), ``factory-args``, checkpoint declarations (folders, hub ids in a local Hugging Face cache, tasks),
and what goes into an sdist. The real builds of checkpoint models are in ``test_checkpoints.py``."""

from __future__ import annotations

import json
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from conftest import run

from hatch_neuron.compile import checkpoint
from hatch_neuron.compile.runner import model_request
from hatch_neuron.config import ConfigError, load_settings
from hatch_neuron.plan import make_plan

TOML_HEAD = """\
[project]
name = "pkg"
version = "0.1.0"

[tool.neuron]
"""
ENC = """
[tool.neuron.models.enc]
factory = "pkg.nets:make_enc"
inputs = [{ shape = [1, 4] }]
"""


def project(tmp_path: Path, neuron: str = "", yaml: str | None = None, models: str = ENC) -> Path:
    (tmp_path / "pkg").mkdir(parents=True, exist_ok=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    head = TOML_HEAD + ('models-file = "neuron-models.yaml"\n' if yaml is not None else "")
    (tmp_path / "pyproject.toml").write_text(head + neuron + models)
    if yaml is not None:
        (tmp_path / "neuron-models.yaml").write_text(textwrap.dedent(yaml))
    return tmp_path / "pyproject.toml"


def error(pyproject: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(pyproject)
    return info.value


CONV = """\
models:
  conv:
    factory: pkg.nets:make_conv
    inputs:
      - shape: [1, 3, 8, 8]
"""


def test_yaml_models_merge_with_the_toml_ones(tmp_path: Path) -> None:
    yaml = CONV + "    check: off\n    factory-args: {width: 3, names: [a, b], nested: {on: yes}}\n"
    settings = load_settings(project(tmp_path, yaml=yaml))
    assert list(settings.models) == ["enc", "conv"]
    conv = settings.models["conv"]
    # YAML 1.2 booleans: on/off/yes/no stay strings
    assert conv.check == "off" and conv.factory_args == {
        "width": 3,
        "names": ["a", "b"],
        "nested": {"on": "yes"},
    }
    assert conv.inputs[0].shape == [1, 3, 8, 8]


def test_a_typo_in_a_yaml_file_names_file_line_column_and_key_path(tmp_path: Path) -> None:
    yaml = CONV.replace("    inputs:", "    factory-arg: {width: 3}\n    inputs:")
    found = str(error(project(tmp_path, yaml=yaml)))
    assert found.startswith("neuron-models.yaml:4:5: models.conv.factory-arg: unknown key; allowed: ")
    assert found.endswith("(did you mean 'factory-args'?)")


def test_every_problem_of_a_yaml_file_at_its_own_line(tmp_path: Path) -> None:
    yaml = CONV + "        dtype: flaot32\n    rtol: tight\n"
    lines = str(error(project(tmp_path, yaml=yaml))).splitlines()
    assert lines[0].startswith("neuron-models.yaml:6:9: models.conv.inputs[0].dtype: string 'flaot32' is not")
    assert lines[1] == "neuron-models.yaml:7:5: models.conv.rtol: expected a number, got string 'tight'"


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        (
            CONV.replace("models:\n  conv:", "models:\n  enc:"),
            "neuron-models.yaml:2:3: models.enc: model 'enc' is also declared in pyproject.toml "
            "[tool.neuron.models.enc] (declare each model once)",
        ),
        (
            CONV + "    factory: pkg.nets:other\n",
            "neuron-models.yaml:6:5: models.conv.factory: key given twice in one mapping (keep one)",
        ),
        (
            "model:\n  conv: {}\n",
            "neuron-models.yaml:1:1: model: unknown key; allowed: models (did you mean 'models'?)",
        ),
        (
            "models: []\n",
            "neuron-models.yaml:1:1: models: expected a table of models (name: {factory: ..., inputs: ",
        ),
        (
            "models:\n  conv: [\n",
            "neuron-models.yaml:3:1: (file): invalid YAML: expected the node content, but found ",
        ),
        (
            "models: !!python/object/apply:os.system [echo pwned]\n",
            "neuron-models.yaml:1:9: (file): invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        (
            CONV + "    factory-args: {when: 2024-01-02, none: null}\n",
            "neuron-models.yaml:6:5: models.conv.factory-args: when: a date is not a string, number, "
            "boolean, array or table",
        ),
    ],
    ids=[
        "defined-twice",
        "duplicate-key",
        "top-key",
        "not-a-table",
        "syntax",
        "unsafe-tag",
        "factory-arg-type",
    ],
)
def test_yaml_errors(tmp_path: Path, yaml: str, expected: str) -> None:
    assert str(error(project(tmp_path, yaml=yaml))).startswith(expected)


def test_a_missing_models_file_is_an_error_of_pyproject(tmp_path: Path) -> None:
    pyproject = project(tmp_path, neuron='models-file = ["neuron-models.yaml", "more.yaml"]\n', yaml=CONV)
    pyproject.write_text(pyproject.read_text().replace('models-file = "neuron-models.yaml"\n', ""))
    found = error(pyproject)
    assert (found.file, found.path) == (str(pyproject), "tool.neuron.models-file")
    assert found.message == f"'more.yaml': no such file in {tmp_path}"


@pytest.mark.parametrize(
    ("keys", "path", "message"),
    [
        (
            'factory-args = { "not a name" = 1 }',
            "factory-args",
            "'not a name' is not a Python keyword-argument name",
        ),
        ("factory-args = { when = 1979-05-27 }", "factory-args", "when: a date is not a string, number"),
        (
            "sequence-length = 64",
            "sequence-length",
            "is for transformers checkpoints; this model has a factory",
        ),
        (
            'transformers = "models/x"',
            "transformers",
            "a model with a factory takes no transformers checkpoint",
        ),
        (
            'inputs = [{ shape = [1], name = "x" }, { shape = [1] }]',
            "inputs[1].name",
            "name every input or none",
        ),
        (
            'inputs = [{ shape = [1], name = "x" }, { shape = [1], name = "x" }]',
            "inputs",
            "an input name is used twice",
        ),
    ],
)
def test_model_declaration_errors(tmp_path: Path, keys: str, path: str, message: str) -> None:
    models = ENC.replace("inputs = [{ shape = [1, 4] }]\n", "") + keys + "\n"
    if "inputs" not in keys:
        models += "inputs = [{ shape = [1, 4] }]\n"
    found = error(project(tmp_path, models=models))
    assert found.path == f"tool.neuron.models.enc.{path}" and message in found.message, str(found)


def test_factory_args_reach_the_worker_and_the_direct_key(tmp_path: Path) -> None:
    """The factory's keyword arguments are in the worker request, which the direct cache key hashes."""
    requests = []
    for width in (3, 4):
        models = ENC + f"factory-args = {{ width = {width}, scale = 0.5 }}\n"
        settings = load_settings(project(tmp_path, models=models))
        plan = make_plan(settings, tmp_path)
        requests.append(model_request(plan, plan.models[0]).to_json())
    assert [r["factory_args"] for r in requests] == [{"width": 3, "scale": 0.5}, {"width": 4, "scale": 0.5}]


# -- checkpoints --------------------------------------------------------------------------------------


def _checkpoint(folder: Path, architecture: str | None) -> Path:
    folder.mkdir(parents=True)
    config = {"model_type": "bert"} | ({"architectures": [architecture]} if architecture else {})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("architecture", "task"),
    [
        ("BertForMaskedLM", "fill-mask"),
        ("BertForSequenceClassification", "text-classification"),
        ("BertForTokenClassification", "token-classification"),
        ("BertForQuestionAnswering", "question-answering"),
        ("ViTForImageClassification", "image-classification"),
        ("BertModel", "feature-extraction"),
        (None, "feature-extraction"),
    ],
)
def test_task_auto_comes_from_the_architecture(tmp_path: Path, architecture: str | None, task: str) -> None:
    folder = _checkpoint(tmp_path / "ck", architecture)
    assert checkpoint.checkpoint_task(folder, "auto") == task
    assert checkpoint.checkpoint_task(folder, "fill-mask") == "fill-mask"


def _hub_cache(tmp_path: Path, repo: str) -> Path:
    """A local Hugging Face hub cache holding ``repo`` (the layout huggingface_hub writes)."""
    cache = tmp_path / "hub"
    base = cache / f"models--{repo.replace('/', '--')}"
    snapshot = _checkpoint(base / "snapshots" / ("0" * 40), "BertForMaskedLM")
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_a_hub_id_is_read_from_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _hub_cache(tmp_path, "acme/tiny-bert")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    found = checkpoint.checkpoint_folder(
        "acme/tiny-bert", tmp_path / "project", "tool.neuron.models.m.transformers"
    )
    assert found.resolve() == snapshot.resolve()


def test_a_hub_id_not_in_the_cache_is_never_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError) as info:
        checkpoint.checkpoint_folder("acme/absent", tmp_path, "tool.neuron.models.m.transformers")
    assert info.value.path == "tool.neuron.models.m.transformers"
    assert (
        "'acme/absent' is not a folder of the project nor in the local Hugging Face cache"
        in info.value.message
    )
    assert "HF_HUB_OFFLINE defaults to 1 here" in info.value.message
    assert "set HF_HUB_OFFLINE=0 to let the build download it" in info.value.message


def test_a_folder_without_config_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "models" / "x").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"has no config\.json; it is not a Hugging Face checkpoint folder"):
        checkpoint.checkpoint_folder("models/x", tmp_path, "p")


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(checkpoint.CheckpointError, match=r"pip install 'hatch-neuron\[transformers\]'"):
        checkpoint.describe("/nowhere", "fill-mask", 1, None)


def test_sdists_hold_the_models_files_and_checkpoint_folders(tmp_path: Path) -> None:
    """setuptools' sdist (through the ``setuptools.file_finders`` hook); Hatchling's hold every file."""
    pyproject = project(tmp_path / "proj", yaml=CONV + "  hf:\n    transformers: checkpoints/tiny\n")
    root = pyproject.parent
    _checkpoint(root / "checkpoints" / "tiny", "BertForMaskedLM")
    text = pyproject.read_text()
    pyproject.write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        + text
        + '\n[tool.setuptools]\npackages = ["pkg"]\n'
    )
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path / "dist", root])
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"neuron-models.yaml", "checkpoints/tiny/config.json", "pyproject.toml"} <= names
