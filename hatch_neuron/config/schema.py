"""A JSON Schema of ``[tool.neuron]`` (and of YAML models files), generated from the settings model: each
dataclass an object with its fields' docstrings as descriptions, unknown keys refused, types, allowed
values and defaults from the annotations, and the one-value checks that a schema can say (patterns,
minimums) from ``field(metadata={"schema": ...})``. Checks across values (a bucket that no input has, a
typed neuron option that a compiler flag contradicts) stay the build's.

``python -m hatch_neuron.config.schema`` rewrites the shipped files (``neuron.schema.json``,
``neuron-models.schema.json`` beside this module); a test keeps them equal to the model.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from . import model
from .docs import field_docs

SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
HERE = Path(__file__).parent
#: The shipped schema files: ``[tool.neuron]``, and a YAML models file.
SCHEMA_FILES = {"pyproject": HERE / "neuron.schema.json", "models-file": HERE / "neuron-models.schema.json"}
#: Rules of a whole table, beyond its fields' own.
TABLE_RULES: dict[type, dict[str, Any]] = {
    # a factory (with inputs) or a checkpoint
    model.ModelSettings: {
        "oneOf": [{"required": ["factory", "inputs"]}, {"required": ["transformers"]}],
    },
    # at least one model, here or in a models file
    model.NeuronSettings: {
        "anyOf": [
            {"required": ["models"], "properties": {"models": {"minProperties": 1}}},
            {"required": ["models-file"]},
        ]
    },
    model.InputSpec: {"required": ["shape"]},
}


def _key(name: str) -> str:
    return name.replace("_", "-")


def _definition(cls: type) -> str:
    return cls.__name__


def type_schema(tp: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema of a value annotated ``tp`` (dataclasses become references into ``definitions``)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [type_schema(a, definitions) for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is list:
        return {"type": "array", "items": type_schema(typing.get_args(tp)[0], definitions)}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(typing.get_args(tp)[1], definitions)}
    if dataclasses.is_dataclass(tp):
        name = _definition(tp)  # type: ignore[arg-type]
        if name not in definitions:
            definitions[name] = {}  # a placeholder while its fields are made
            definitions[name] = table_schema(tp, definitions)  # type: ignore[arg-type]
        return {"$ref": f"#/definitions/{name}"}
    if tp is object:
        return {}
    return {
        str: {"type": "string"},
        int: {"type": "integer"},
        float: {"type": "number"},
        bool: {"type": "boolean"},
    }[tp]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return None if dataclasses.is_dataclass(value) else value
    return None


def table_schema(cls: type, definitions: dict[str, Any]) -> dict[str, Any]:
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        prop = {"description": docs.get(f.name, ""), **type_schema(hints[f.name], definitions)}
        prop.update(f.metadata.get("schema", {}))
        default = _default(f)
        if default is not None:
            prop["default"] = default
        properties[_key(f.name)] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            required.append(_key(f.name))
    schema: dict[str, Any] = {
        "type": "object",
        "description": (cls.__doc__ or "").strip(),
        "properties": properties,
        "additionalProperties": False,
    }
    if required and cls not in TABLE_RULES:
        schema["required"] = required
    return schema | TABLE_RULES.get(cls, {})


def neuron_schema() -> dict[str, Any]:
    """The schema of ``[tool.neuron]``."""
    definitions: dict[str, Any] = {}
    root = table_schema(model.NeuronSettings, definitions)
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": "https://github.com/hatch-neuron/hatch-neuron/neuron.schema.json",
        "title": "[tool.neuron] of hatch-neuron",
        **root,
        "definitions": dict(sorted(definitions.items())),
    }


def models_file_schema() -> dict[str, Any]:
    """The schema of a YAML models file (``models-file``): ``models:`` as in ``[tool.neuron.models]``."""
    full = neuron_schema()
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": "https://github.com/hatch-neuron/hatch-neuron/neuron-models.schema.json",
        "title": "hatch-neuron models file (models-file)",
        "type": "object",
        "properties": {"models": full["properties"]["models"]},
        "required": ["models"],
        "additionalProperties": False,
        "definitions": full["definitions"],
    }


def schema_text(kind: str = "pyproject") -> str:
    schema = neuron_schema() if kind == "pyproject" else models_file_schema()
    return json.dumps(schema, indent=2) + "\n"


def update(check: bool = False) -> bool:
    """Rewrite the shipped schema files (or with ``check``, only say whether they are current)."""
    current = True
    for kind, path in SCHEMA_FILES.items():
        text = schema_text(kind)
        if not path.is_file() or path.read_text() != text:
            current = False
            if not check:
                path.write_text(text)
    return current


if __name__ == "__main__":
    sys.exit(0 if update(check="--check" in sys.argv) else 1)
