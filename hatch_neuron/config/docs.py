"""Render the ``[tool.neuron]`` reference from the settings model (its field docstrings).

``python -m hatch_neuron.config.docs README.md`` rewrites the part of README.md between the markers;
``--check`` only says whether it is current (the tests run that).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from . import model
from .parse import toml_key

START, END = "<!-- settings:start -->", "<!-- settings:end -->"
SECTIONS = (
    ("[tool.neuron]", model.NeuronSettings),
    ("[tool.neuron.models.<name>]", model.ModelSettings),
    ("inputs = [{ ... }] (each entry)", model.InputSpec),
    ("placement = { ... }", model.CorePlacement),
)


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass, by field name."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        text = " \\| ".join(type_text(a) for a in args if a is not type(None))
        return text + " (optional)" if type(None) in args else text
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in typing.get_args(tp))
    if origin is list:
        return f"array of {type_text(typing.get_args(tp)[0])}"
    if origin is dict:
        return "tables"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[tp]


def default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return "—" if f.default is None else f"`{json.dumps(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{json.dumps(f.default_factory())}`"  # type: ignore[misc]
    return "required"


def render() -> str:
    lines = [START, "<!-- generated from hatch_neuron/config/model.py; do not edit by hand -->", ""]
    for title, cls in SECTIONS:
        hints, docs = typing.get_type_hints(cls), field_docs(cls)
        lines += [
            f"#### `{title}`",
            "",
            cls.__doc__.strip().splitlines()[0],
            "",
            "| key | type | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for f in dataclasses.fields(cls):
            text = " ".join(docs[f.name].split()).replace("|", "\\|")
            lines.append(
                f"| `{toml_key(f.name)}` | {type_text(hints[f.name])} | {default_text(f)} | {text} |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update(readme: Path, check: bool) -> bool:
    """Rewrite the generated part of ``readme``; return whether it was already current."""
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    new = head + render() + tail
    if not check and new != text:
        readme.write_text(new)
    return new == text


if __name__ == "__main__":
    args = sys.argv[1:]
    check = "--check" in args
    paths = [a for a in args if a != "--check"] or ["README.md"]
    current = update(Path(paths[0]), check)
    if check and not current:
        print(
            f"{paths[0]}: the [tool.neuron] reference is out of date; run python -m hatch_neuron.config.docs"
        )
    sys.exit(0 if current or not check else 1)
