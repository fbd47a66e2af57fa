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
ENV_START, ENV_END = "<!-- variables:start -->", "<!-- variables:end -->"
#: Variables that are no setting's: (variable, when, effect).
OTHER_VARIABLES = (
    (
        "`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`, ...",
        "build, `cache --remote`",
        "AWS's own: credentials, region and endpoint of the remote cache",
    ),
    (
        "`HATCH_NEURON_TRACEBACK`",
        "build",
        "set: a build error under Hatchling shows hatch-neuron's traceback too",
    ),
    (
        "`HATCH_NEURON_TORCH`",
        "build",
        "the torch requirement the build hook adds to wheel builds (e.g. `torch==2.9.1`)",
    ),
    ("`HATCH_NEURON_TARGET`", "run", "force the target a package loads"),
    (
        "`HATCH_NEURON_VERIFY`",
        "run",
        "`always`: hash every artifact on every load; `stamp` (default): not again while the file is "
        "unchanged",
    ),
    (
        "`HATCH_NEURON_STAMPS`",
        "run",
        "folder of the verification stamps (default `$XDG_CACHE_HOME/hatch-neuron/verified`)",
    ),
    (
        "`PJRT_DEVICE`",
        "build, run",
        "torch-xla's: the device `xla` artifacts are built, verified and run on (`CPU` here)",
    ),
    (
        "`HATCH_NEURON_CI_CACHE`",
        "tests",
        "where the xla lane keeps its environment (default `~/.cache/hatch-neuron-ci`)",
    ),
    ("`HATCH_NEURON_SKIP_XLA_LANE`", "tests", "`1`: `scripts/test.sh` skips the xla lane and says so"),
    (
        "`NEURON_RT_VISIBLE_CORES`, `NEURON_RT_NUM_CORES`",
        "run",
        "Neuron's own: the cores this process sees (placement is checked against them)",
    ),
)
SECTIONS = (
    ("[tool.neuron]", model.NeuronSettings),
    ("[tool.neuron.models.<name>]", model.ModelSettings),
    ("inputs = [{ ... }] (each entry)", model.InputSpec),
    ("placement = { ... }", model.CorePlacement),
    ("neuron-options = { ... } (top level and per model)", model.NeuronOptionSettings),
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
        default = f.default_factory()  # type: ignore[misc]
        return "`{}` (none set)" if dataclasses.is_dataclass(default) else f"`{json.dumps(default)}`"
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


def render_variables() -> str:
    """The environment variables table: the settings' own (:class:`~.model.EnvOverride`), then the rest."""
    hints = typing.get_type_hints(model.NeuronSettings)
    lines = [
        ENV_START,
        "<!-- generated from hatch_neuron/config/model.py and docs.py; do not edit by hand -->",
        "",
        "| variable | when | effect |",
        "| --- | --- | --- |",
    ]
    for f in dataclasses.fields(model.NeuronSettings):
        override = model.env_override(f)
        if override is not None:
            value = override.value or override.expects or type_text(hints[f.name]).removesuffix(" (optional)")
            where = "build" if override.when == "build" else "run (where the package loads)"
            where += f", {override.also}" if override.also else ""
            lines.append(f"| `{override.variable}` | {where} | {value}, replacing `{toml_key(f.name)}` |")
    lines += [f"| {variable} | {when} | {effect} |" for variable, when, effect in OTHER_VARIABLES]
    lines.append(ENV_END)
    return "\n".join(lines)


def _replace(text: str, start: str, end: str, generated: str) -> str:
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return head + generated + tail


def update(readme: Path, check: bool) -> bool:
    """Rewrite the generated parts of ``readme``; return whether they were already current."""
    text = readme.read_text()
    new = _replace(_replace(text, START, END, render()), ENV_START, ENV_END, render_variables())
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
