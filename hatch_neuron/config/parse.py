"""Turn the raw ``[tool.neuron]`` table into the typed settings of ``model.py``, strictly.

Every problem raises :class:`ConfigError` with the key path (``tool.neuron.models.enc.inputs[0].dtype``),
what was found, what is allowed, and a 'did you mean' hint for unknown keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from .errors import ConfigError, Problems, close_match, closest
from .model import EnvOverride, NeuronSettings, env_override
from .models_file import ModelsFile, declared_models, read_models_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
ROOT = "tool.neuron"


def toml_key(field_name: str) -> str:
    return field_name.replace("_", "-")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return "an array" if origin is list else "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and build the typed value."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return convert(options[0], value, path)
        tables = [o for o in options if dataclasses.is_dataclass(o)]
        if isinstance(value, dict) and tables:
            return convert(tables[0], value, path)
        others = [o for o in options if not dataclasses.is_dataclass(o)]
        for other in others[1:]:  # e.g. int | Literal["auto"]: the first that takes the value
            with contextlib.suppress(ConfigError):
                return convert(other, value, path)
        try:
            return convert(others[0], value, path)
        except ConfigError as exc:
            if len(others) > 1:
                kinds = " or ".join(_type_name(o) for o in [*others, *tables])
                raise ConfigError(path, f"expected {kinds}, got {_describe(value)}") from None
            if not tables:
                raise
            raise ConfigError(path, f"{exc.message}, or {_type_name(tables[0])}", exc.hint) from None
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or not isinstance(value, str):
            hint = closest(str(value), allowed) if isinstance(value, str) else None
            raise ConfigError(path, f"{_describe(value)} is not allowed; allowed: {', '.join(allowed)}", hint)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(path, f"expected an array, got {_describe(value)}")
        (item,) = typing.get_args(tp)
        problems = Problems()
        items = [
            problems.check(lambda v=v, i=i: convert(item, v, f"{path}[{i}]")) for i, v in enumerate(value)
        ]
        problems.raise_any()
        return items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table, got {_describe(value)}")
        _, item = typing.get_args(tp)
        problems = Problems()
        table = {
            k: problems.check(lambda k=k, v=v: convert(item, v, f"{path}.{k}")) for k, v in value.items()
        }
        problems.raise_any()
        return table
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path)
    if tp is object:  # any TOML/YAML value; the field's own check says which are allowed
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ConfigError(path, f"expected a finite number, got {value}")
        return float(value)
    if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
        raise ConfigError(path, f"expected {_type_name(tp)}, got {_describe(value)}")
    return value


def _convert_value(f: dataclasses.Field, tp: Any, raw: Any, path: str) -> Any:
    """One field's value: its table keys checked, converted to ``tp``, and its own check run."""
    key_check = f.metadata.get("key_check")
    for name in raw if key_check and isinstance(raw, dict) else ():
        problem = key_check(name)
        if problem:
            raise ConfigError(f"{path}.{name}", problem)
    value = convert(tp, raw, path)
    check = f.metadata.get("check")
    problem = check(value) if check and value is not None else None
    if problem:
        raise ConfigError(path, problem)
    return value


def _convert_dataclass(cls: type[T], raw: Any, path: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a table, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {toml_key(f.name): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    problems = Problems()
    misspelt = set()  # the keys an unknown key looks like: their absence is that typo, reported once
    for key in raw:
        if key not in fields:
            message = f"unknown key; allowed: {', '.join(sorted(fields))}"
            problems.errors.append(ConfigError(f"{path}.{key}", message, closest(key, fields)))
            misspelt.add(close_match(key, fields))
    values = {}
    for key, f in fields.items():
        here = f"{path}.{key}"
        if key not in raw:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and key not in misspelt:
                problems.errors.append(
                    ConfigError(here, f"missing required key (expected {_type_name(hints[f.name])})")
                )
            continue
        values[f.name] = problems.check(
            lambda f=f, key=key, here=here: _convert_value(f, hints[f.name], raw[key], here)
        )
    problems.raise_any()  # validate() below needs every value
    result = cls(**values)
    validate = getattr(result, "validate", None)
    if validate:
        validate(path)
    return result


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp


def _env_text(tp: Any, text: str, override: EnvOverride) -> Any:
    """The TOML value a variable's text stands for (by the field's type), for :func:`convert` to check."""
    variable, tp = override.variable, _without_none(tp)
    if typing.get_origin(tp) is list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        (item_type,) = typing.get_args(tp)
        allowed = typing.get_args(item_type) if typing.get_origin(item_type) is Literal else ()
        for item in items:
            if allowed and item not in allowed:
                message = f"unknown {override.item} {item!r}; allowed: {', '.join(allowed)}"
                raise ConfigError(variable, message, closest(item, allowed))
        if not items or len(set(items)) != len(items):
            raise ConfigError(variable, f"expected distinct comma-separated {override.item}s, got {text!r}")
        return items
    if tp in (int, float):
        try:
            return int(text) if tp is int else float(text)
        except ValueError:
            raise ConfigError(variable, f"expected {override.expects}, got {text!r}") from None
    return text


def _env_overrides(settings: NeuronSettings, environ: Mapping[str, str]) -> NeuronSettings:
    """Apply the settings' build variables (:class:`EnvOverride` in their metadata): each value converted and
    checked as its TOML value would be, then the settings validated again; errors name the variable."""
    hints = typing.get_type_hints(NeuronSettings)
    changes: dict[str, Any] = {}
    variables: dict[str, str] = {}  # key path -> the variable that set it
    for f in dataclasses.fields(NeuronSettings):
        override = env_override(f)
        if override is None or override.when != "build" or override.variable not in environ:
            continue
        text = environ[override.variable].strip()
        if not text and not override.empty_unsets:
            continue
        if text:
            value = _env_text(hints[f.name], text, override)
            changes[f.name] = _convert_value(f, hints[f.name], value, override.variable)
        else:
            changes[f.name] = None
        variables[f"{ROOT}.{toml_key(f.name)}"] = override.variable
    if not changes:
        return settings
    per_model = {
        f.name: None
        for f in dataclasses.fields(NeuronSettings)
        if f.name in changes and env_override(f).models_too
    }
    if per_model:
        changes["models"] = {n: dataclasses.replace(m, **per_model) for n, m in settings.models.items()}
    result = dataclasses.replace(settings, **changes)
    try:
        result.validate(ROOT)
    except ConfigError as exc:
        if exc.path in variables:
            raise ConfigError(variables[exc.path], exc.message, exc.hint) from None
        raise
    return result


def models_files(table: dict[str, Any], base: Path) -> list[ModelsFile]:
    """The YAML files ``models-file`` names (relative to ``base``), read; [] when it names none (or is not
    a string or a list of strings, which the conversion reports)."""
    names = table.get("models-file")
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return []
    if len(set(names)) != len(names):
        raise ConfigError(f"{ROOT}.models-file", f"a file is listed twice: {names}")
    missing = next((name for name in names if not (base / name).is_file()), None)
    if missing is not None:
        raise ConfigError(f"{ROOT}.models-file", f"{missing!r}: no such file in {base}")
    return [read_models_file(base / name, name) for name in names]


def _merge_models(table: dict[str, Any], files: list[ModelsFile]) -> dict[str, Any]:
    """``table`` with the models of ``files`` added to its own; a name declared twice is an error."""
    if not files:
        return table
    models = dict(table.get("models", {})) if isinstance(table.get("models", {}), dict) else {}
    where = {name: f"pyproject.toml [{ROOT}.models.{name}]" for name in models}
    for file in files:
        for name, model in file.models.items():
            if name in where:
                raise file.error(
                    f"models.{name}",
                    f"model {name!r} is also declared in {where[name]}",
                    "declare each model once",
                )
            models[name] = model
            line = file.position(f"models.{name}")
            where[name] = f"{file.name}" + (f":{line[0]}" if line else "")
    return {**table, "models": models}


def _located(exc: ConfigError, files: list[ModelsFile]) -> ConfigError:
    """``exc`` with each problem of a model from a YAML file reported at that file's line and key path."""
    declared = declared_models(files)
    problems = []
    for problem in exc.problems:
        rest = problem.path.removeprefix(f"{ROOT}.models.")
        name = re.split(r"[.\[]", rest, maxsplit=1)[0]
        if problem.path.startswith(f"{ROOT}.models.") and name in declared:
            problem = declared[name].error(f"models.{rest}", problem.message, problem.hint)
        problems.append(problem)
    return ConfigError.combined(problems)


def settings_from_table(
    table: Any, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> NeuronSettings:
    """Validate a ``[tool.neuron]`` table (already read from TOML) and the models files it names
    (relative to ``base``, default the current folder), then apply environment overrides."""
    if not isinstance(table, dict):
        raise ConfigError(ROOT, f"expected a table, got {_describe(table)}")
    files = models_files(table, base or Path.cwd())
    try:
        settings = _convert_dataclass(NeuronSettings, _merge_models(table, files), ROOT)
    except ConfigError as exc:
        raise _located(exc, files) from None
    return _env_overrides(settings, os.environ if environ is None else environ)


def read_pyproject(pyproject: Path) -> dict[str, Any]:
    try:
        with pyproject.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:  # duplicate keys and tables land here too
        raise ConfigError("(file)", f"invalid TOML: {exc}", file=str(pyproject)) from None


def _tool_table(data: dict[str, Any], pyproject: Path) -> dict[str, Any]:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError("tool", f"expected a table, got {_describe(tool)}", file=str(pyproject))
    return tool


def has_neuron_table(pyproject: Path) -> bool:
    return "neuron" in _tool_table(read_pyproject(pyproject), pyproject)


def load_settings(pyproject: Path, environ: Mapping[str, str] | None = None) -> NeuronSettings:
    """Read and validate ``[tool.neuron]`` of ``pyproject``; errors name the file and the key path."""
    table = _tool_table(read_pyproject(pyproject), pyproject).get("neuron")
    if table is None:
        raise ConfigError(
            ROOT, "missing table; declare your models under [tool.neuron.models.<name>]", file=str(pyproject)
        )
    try:
        return settings_from_table(table, environ, pyproject.parent)
    except ConfigError as exc:
        raise exc.in_file(str(pyproject)) from None


def declaration_files(root: Path) -> list[Path]:
    """The files besides the sources that a wheel build of the project at ``root`` reads for
    ``[tool.neuron]``: its YAML models files and the files of its own checkpoint folders (what an sdist
    must hold). [] for a project without ``[tool.neuron]`` or whose declarations do not parse."""
    try:
        table = _tool_table(read_pyproject(root / "pyproject.toml"), root / "pyproject.toml").get("neuron")
        if not isinstance(table, dict):
            return []
        files = models_files(table, root)
    except (OSError, ConfigError):
        return []
    declared = [*(table.get("models", {}) if isinstance(table.get("models"), dict) else {}).values()]
    declared += [model for file in files for model in file.models.values()]
    found = [file.path for file in files]
    for model in declared:
        source = model.get("transformers") if isinstance(model, dict) else None
        folder = root / source if isinstance(source, str) and source else None
        if folder is not None and folder.is_dir() and folder.resolve().is_relative_to(root.resolve()):
            found += sorted(p for p in folder.rglob("*") if p.is_file())
    return found
