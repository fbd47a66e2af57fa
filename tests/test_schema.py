"""The editor schema (``hatch-neuron schema``): generated from the settings model, shipped current, accepts
every example of the README and rejects the bad-config corpus of ``test_config.py`` (the errors about one
value: what involves several values is the build's to check)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_config import ERROR_CASES, minimal

from hatch_neuron.cli import main
from hatch_neuron.config.parse import tomllib
from hatch_neuron.config.schema import SCHEMA_FILES, models_file_schema, neuron_schema, update

# a test extra: the xla lane's environment (which collects every file) does not have it
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

#: Errors of the corpus that the schema does not catch, and why: the build's checks of several values
#: together, and what JSON Schema cannot tell apart.
BUILD_ONLY = {
    "type-shape-integral-float": "JSON has one number type: 2.0 is an integer to a JSON Schema",
    "package-keyword": "a keyword inside a dotted name is more than a pattern says readably",
    "model-names-case": "two names that collide once case-folded: several keys together",
    **{
        case: "the bounds against the dtype and each other"
        for case in (
            "bounds-int-equal",
            "bounds-int-reversed",
            "bounds-int-low-above-default-high",
            "bounds-float-reversed",
            "bounds-int64-float-low",
            "bounds-uint8-float-high",
            "bounds-bool-both",
            "bounds-bool-low",
            "bounds-float-one-side",
        )
    },
    **{
        case: "typed neuron options against compiler-args and each other, merged over two tables"
        for case in (
            "neuron-option-contradicts-compiler-args",
            "model-neuron-option-contradicts-its-compiler-args",
            "neuron-option-contradicts-short-flag",
            "neuron-auto-cast-type-without-cast",
            "neuron-merged-options-checked-together",
        )
    },
}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


NEURON = _validator(neuron_schema())
MODELS_FILE = _validator(models_file_schema())


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_shipped_schemas_are_current() -> None:
    assert update(check=True), "run: python -m hatch_neuron.config.schema"
    assert json.loads(SCHEMA_FILES["pyproject"].read_text()) == neuron_schema()


def test_schema_command_prints_them() -> None:
    for argv, expected in (
        (["schema"], neuron_schema()),
        (["schema", "--models-file"], models_file_schema()),
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
        assert json.loads(out.getvalue()) == expected


def test_every_readme_example_is_valid() -> None:
    tables = []
    for block in _blocks("toml"):
        neuron = tomllib.loads(block).get("tool", {}).get("neuron")
        if (
            neuron
        ):  # the blocks without [tool.neuron] (or with an empty one: "as above") have nothing to check
            tables.append(neuron)
    assert len(tables) >= 4
    for table in tables:
        errors = [e.message for e in NEURON.iter_errors(table)]
        assert not errors, (table, errors)
    files = [doc for doc in map(yaml.safe_load, _blocks("yaml")) if "models" in doc]  # not the CI example
    assert files and all(not list(MODELS_FILE.iter_errors(f)) for f in files)
    example = tomllib.loads((ROOT / "example_project" / "pyproject.toml").read_text())["tool"]["neuron"]
    assert not list(NEURON.iter_errors(example))


@pytest.mark.parametrize(("table", "path", "fragments", "hint"), ERROR_CASES)
def test_the_bad_config_corpus_is_rejected(
    table: Any, path: str, fragments: list[str], hint: str | None, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.id
    errors = list(NEURON.iter_errors(table))
    if case in BUILD_ONLY:
        assert not errors, f"{case} is listed as the build's to check, but the schema rejects it too"
    else:
        assert errors, f"the schema accepts {case}: {table}"


def test_a_valid_table_passes_and_a_typo_does_not() -> None:
    assert not list(NEURON.iter_errors(minimal()))
    typo = minimal()
    typo["models"]["enc"]["factory-arg"] = {}
    assert any("factory-arg" in e.message for e in NEURON.iter_errors(typo))
