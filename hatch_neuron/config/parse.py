"""Turn the raw ``[tool.neuron]`` table into the typed settings of ``model.py``, strictly.

Every problem raises :class:`ConfigError` with the key path (``tool.neuron.models.enc.inputs[0].dtype``),
what was found, what is allowed, and a 'did you mean' hint for unknown keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from .errors import ConfigError, closest
from .model import TARGETS, NeuronSettings

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
        return [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table, got {_describe(value)}")
        _, item = typing.get_args(tp)
        return {k: convert(item, v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ConfigError(path, f"expected a finite number, got {value}")
        return float(value)
    if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
        raise ConfigError(path, f"expected {_type_name(tp)}, got {_describe(value)}")
    return value


def _convert_dataclass(cls: type[T], raw: Any, path: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a table, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {toml_key(f.name): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in fields:
            raise ConfigError(
                f"{path}.{key}",
                f"unknown key; allowed: {', '.join(sorted(fields))}",
                closest(key, fields),
            )
    values = {}
    for key, f in fields.items():
        here = f"{path}.{key}"
        if key not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(here, f"missing required key (expected {_type_name(hints[f.name])})")
            continue
        key_check = f.metadata.get("key_check")
        for name in raw[key] if key_check and isinstance(raw[key], dict) else ():
            problem = key_check(name)
            if problem:
                raise ConfigError(f"{here}.{name}", problem)
        value = convert(hints[f.name], raw[key], here)
        check = f.metadata.get("check")
        problem = check(value) if check and value is not None else None
        if problem:
            raise ConfigError(here, problem)
        values[f.name] = value
    result = cls(**values)
    validate = getattr(result, "validate", None)
    if validate:
        validate(path)
    return result


def _env_overrides(settings: NeuronSettings, environ: Mapping[str, str]) -> NeuronSettings:
    """Apply the HATCH_NEURON_* build variables; their errors name the variable, not the file."""
    changes: dict[str, Any] = {}
    targets_env = environ.get("HATCH_NEURON_TARGETS", "").strip()
    if targets_env:
        targets = [t.strip() for t in targets_env.split(",") if t.strip()]
        for t in targets:
            if t not in TARGETS:
                raise ConfigError(
                    "HATCH_NEURON_TARGETS",
                    f"unknown target {t!r}; allowed: {', '.join(TARGETS)}",
                    closest(t, TARGETS),
                )
        if not targets or len(set(targets)) != len(targets):
            raise ConfigError(
                "HATCH_NEURON_TARGETS", f"expected distinct comma-separated targets, got {targets_env!r}"
            )
        changes["targets"] = targets
    timeout_env = environ.get("HATCH_NEURON_TIMEOUT", "").strip()
    if timeout_env:
        try:
            timeout = float(timeout_env)
        except ValueError:
            timeout = math.nan
        if not timeout > 0 or not math.isfinite(timeout):
            raise ConfigError(
                "HATCH_NEURON_TIMEOUT", f"expected a positive number of seconds, got {timeout_env!r}"
            )
        changes["timeout"] = timeout
    jobs_env = environ.get("HATCH_NEURON_JOBS", "").strip()
    if jobs_env:
        if not jobs_env.isdigit() or int(jobs_env) < 1:
            raise ConfigError("HATCH_NEURON_JOBS", f"expected a whole number >= 1, got {jobs_env!r}")
        changes["jobs"] = int(jobs_env)
    workers_env = environ.get("HATCH_NEURON_WORKERS", "").strip()
    if workers_env:
        if workers_env not in ("preloaded", "fresh"):
            raise ConfigError("HATCH_NEURON_WORKERS", f"expected preloaded or fresh, got {workers_env!r}")
        changes["workers"] = workers_env
    cache_env = environ.get("HATCH_NEURON_CACHE", "").strip()
    if cache_env:
        if cache_env not in ("on", "off", "verify"):
            raise ConfigError("HATCH_NEURON_CACHE", f"expected on, off or verify, got {cache_env!r}")
        changes["cache"] = cache_env
    if environ.get("HATCH_NEURON_CACHE_DIR", "").strip():
        changes["cache_dir"] = environ["HATCH_NEURON_CACHE_DIR"].strip()
    if "HATCH_NEURON_REMOTE_CACHE" in environ:
        remote = environ["HATCH_NEURON_REMOTE_CACHE"].strip()
        if remote and "://" not in remote:
            raise ConfigError(
                "HATCH_NEURON_REMOTE_CACHE", f"expected a URL such as s3://bucket/prefix, got {remote!r}"
            )
        changes["remote_cache"] = remote or None
    mode_env = environ.get("HATCH_NEURON_REMOTE_CACHE_MODE", "").strip()
    if mode_env:
        if mode_env not in ("read-write", "read-only", "off"):
            raise ConfigError(
                "HATCH_NEURON_REMOTE_CACHE_MODE", f"expected read-write, read-only or off, got {mode_env!r}"
            )
        changes["remote_cache_mode"] = mode_env
    # the build-wide variables replace the models' own values too (HATCH_NEURON_TARGETS=cpu: all of it)
    per_model = {key: None for key in ("targets", "timeout") if key in changes}
    if per_model:
        changes["models"] = {n: dataclasses.replace(m, **per_model) for n, m in settings.models.items()}
    return dataclasses.replace(settings, **changes) if changes else settings


def settings_from_table(table: Any, environ: Mapping[str, str] | None = None) -> NeuronSettings:
    """Validate a ``[tool.neuron]`` table (already read from TOML), then apply environment overrides."""
    if not isinstance(table, dict):
        raise ConfigError(ROOT, f"expected a table, got {_describe(table)}")
    settings = _convert_dataclass(NeuronSettings, table, ROOT)
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
        return settings_from_table(table, environ)
    except ConfigError as exc:
        raise exc.in_file(str(pyproject)) from None
