"""YAML model files (``models-file = "neuron-models.yaml"``): ``models:`` in the schema of
``[tool.neuron.models]``, read with PyYAML's safe loader, every key's line and column kept for errors.

Two YAML 1.1 habits are turned off because they change what a key means without a word: ``on``/``off``/
``yes``/``no`` are strings here, not booleans (``check: off`` means the ``check`` value ``"off"``; YAML
1.2 reads only ``true``/``false`` as booleans), and a key given twice in one mapping is an error (PyYAML
would keep the last one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, closest


class _Loader(yaml.SafeLoader):
    """The safe loader, with YAML 1.2's booleans (true/false only)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

#: The keys a models file may have at its top level.
TOP_KEYS = ("models",)


@dataclass(frozen=True)
class ModelsFile:
    """One YAML models file: its models' tables, and where each key path (``models.enc.inputs[0]``) is."""

    #: As the project names it (``models-file``), for errors.
    name: str
    path: Path
    models: dict[str, Any]
    positions: dict[str, tuple[int, int]]

    def position(self, path: str) -> tuple[int, int] | None:
        """Where ``path``, or the nearest key above it, is in the file."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return None

    def error(self, path: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(path, message, hint, self.name, position=self.position(path))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: str, positions: dict[str, tuple[int, int]], name: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            here = f"{path}.{key}" if path else str(key)
            if key in seen:
                raise ConfigError(
                    here, "key given twice in one mapping", "keep one", name, position=_mark(key_node)
                )
            seen.add(key)
            positions[here] = _mark(key_node)
            _walk(value_node, here, positions, name)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            positions[f"{path}[{index}]"] = _mark(item)
            _walk(item, f"{path}[{index}]", positions, name)


def read_models_file(path: Path, name: str) -> ModelsFile:
    """Read and check the outline of a models file (a ``models:`` table of tables); the models' own keys
    are checked with the pyproject ones."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("(file)", f"cannot read the models file: {exc}", file=name) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        positions: dict[str, tuple[int, int]] = {}
        if node is not None:
            _walk(node, "", positions, name)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else None
        raise ConfigError(
            "(file)", f"invalid YAML: {exc.problem or exc}", file=name, position=where
        ) from None
    except yaml.YAMLError as exc:  # a tag the safe loader refuses to build, say
        raise ConfigError("(file)", f"invalid YAML: {exc}", file=name) from None
    finally:
        loader.dispose()
    found = ModelsFile(name, path, {}, positions)
    if not isinstance(data, dict):
        raise found.error("(file)", "expected a mapping with a 'models' key", "models:\n  encoder: {...}")
    for key in data:
        if key not in TOP_KEYS:
            raise found.error(
                str(key), f"unknown key; allowed: {', '.join(TOP_KEYS)}", closest(str(key), TOP_KEYS)
            )
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise found.error("models", "expected a table of models (name: {factory: ..., inputs: [...]})")
    return ModelsFile(name, path, models, positions)


def declared_models(files: list[ModelsFile]) -> dict[str, ModelsFile]:
    """Model name -> the file that declares it."""
    return {model: file for file in files for model in file.models}
