"""The manifest: the contract between a build and the packages it made, as typed records.

A build writes :meth:`Manifest.to_json` into ``<package>/_hatch_neuron/manifest.json``; the runtime and
``hatch-neuron inspect`` read it back with :meth:`Manifest.from_json`, which first checks the structure they
rely on (:func:`manifest_problem`) and raises :class:`ManifestProblem` naming what is wrong. Fields a
manifest lacks take the values older builds of the same format meant, so every format-1 manifest keeps
loading (``tests/manifests/`` holds the reference ones). Torch-free: the build side reads it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
_HEX = frozenset("0123456789abcdef")


class ManifestProblem(ValueError):
    """The manifest's structure is not the one its format says (the message says where and what)."""


# --- checking the structure ----------------------------------------------------------------------------


def file_name_problem(name: object) -> str | None:
    """Why ``name`` is not a plain file name of the artifact folder (the build writes only those), or None."""
    if not isinstance(name, str) or not name:
        return f"file {name!r} is not a file name"
    if name in (".", "..") or any(c in name for c in "/\\:\0") or os.path.isabs(name):
        return f"file {name!r} is not a plain file name inside the artifact folder"
    return None


def _file_entry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return f"an artifact entry is {type(entry).__name__}, not an object"
    for key in ("file", "sha256", "size"):
        if key not in entry:
            named = f" (file {entry['file']!r})" if "file" in entry else ""
            return f"an artifact entry has no {key!r}{named}"
    problem = file_name_problem(entry["file"])
    if problem:
        return problem
    digest, size = entry["sha256"], entry["size"]
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        return f"file {entry['file']!r}: sha256 {digest!r} is not 64 lower-case hex digits"
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"file {entry['file']!r}: size {size!r} is not a whole number >= 0"
    return None


def _artifact_problem(entry: object) -> str | None:
    problem = _file_entry_problem(entry)
    if problem:
        return problem
    assert isinstance(entry, dict)
    aliased = entry.get("aliased_outputs", [])
    if not isinstance(aliased, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in aliased
    ):
        return f"file {entry['file']!r}: 'aliased_outputs' is not a list of output indices"
    companions = entry.get("companions", {})
    if not isinstance(companions, dict):
        return f"file {entry['file']!r}: 'companions' is not an object"
    return next(filter(None, map(_file_entry_problem, companions.values())), None)


def _names_problem(value: object) -> bool:
    return not isinstance(value, list) or not all(isinstance(t, str) for t in value)


def _build_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with the build-wide fields (``targets``, ``built_with``, ``replicas``, ...), or None."""
    if "targets" in manifest and _names_problem(manifest["targets"]):
        return f"'targets' is {manifest['targets']!r}, not a list of target names"
    if not isinstance(manifest.get("built_with", {}), dict):
        return "'built_with' is not an object"
    replicas = manifest.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        return f"'replicas' is {replicas!r}, not a whole number >= 1"
    warmup = manifest.get("warmup", 0)
    if warmup != "auto" and (not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0):
        return f"'warmup' is {warmup!r}, not a whole number >= 0 or 'auto'"
    placement = manifest.get("placement", "round-robin")
    if not isinstance(placement, str) and not (
        isinstance(placement, dict)
        and all(isinstance(placement.get(k), int) and placement[k] >= 0 for k in ("start", "count"))
    ):
        return f"'placement' is {placement!r}, not a string or {{start, count}}"
    return None


def _model_problem(name: str, model: object) -> str | None:
    if not isinstance(model, dict):
        return f"model {name!r} is {type(model).__name__}, not an object"
    artifacts = model.get("artifacts")
    if not isinstance(artifacts, dict):
        return f"model {name!r} has no 'artifacts' object"
    own = model.get("targets", [])
    if _names_problem(own):
        return f"model {name!r}: 'targets' is {own!r}, not a list of target names"
    for target, entries in artifacts.items():
        if not isinstance(entries, list):
            return f"model {name!r}, target {target!r}: artifacts are not a list"
        problem = next(filter(None, map(_artifact_problem, entries)), None)
        if problem:
            return f"model {name!r}, target {target!r}: {problem}"
    return None


def manifest_problem(manifest: object) -> str | None:
    """What is wrong with the structure of a (format 1) manifest that the runtime and ``inspect`` rely on,
    or None: ``models`` (each with ``artifacts``: target -> list of entries with ``file``, ``sha256``,
    ``size`` and optional ``companions``), ``targets``, ``built_with``, ``replicas``, ``warmup``,
    ``placement``."""
    if not isinstance(manifest, dict):
        return f"the manifest is a JSON {type(manifest).__name__}, not an object"
    problem = _build_problem(manifest)
    if problem:
        return problem
    models = manifest.get("models")
    if not isinstance(models, dict):
        if models is None:
            return "no 'models' object"
        return f"'models' is {type(models).__name__}, not an object"
    return next((p for name, model in models.items() if (p := _model_problem(name, model))), None)


# --- the records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of the artifact folder, as the build wrote it."""

    file: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        return cls(data["file"], data["sha256"], data["size"])


#: The fields of an artifact entry that :class:`ArtifactEntry` names; the others are the target's facts.
_ARTIFACT_FIELDS = (
    "file", "sha256", "size", "bucket", "input_shapes", "output_shapes", "format", "verified",
    "aliased_outputs", "companions",
)  # fmt: skip


@dataclass(frozen=True)
class ArtifactEntry(FileEntry):
    """One compiled artifact of a model for one target at one bucket."""

    #: Bucketed dim (as a string) -> its size here; empty without buckets.
    bucket: dict[str, int] = field(default_factory=dict)
    input_shapes: list[list[int]] = field(default_factory=list)
    output_shapes: list[list[int]] = field(default_factory=list)
    #: How it loads (the registry's ``artifact_format`` of its target).
    format: str | None = None
    #: Compared with eager at build time (False where the build host cannot run it).
    verified: bool = False
    #: Flat indices of outputs that are (views of) the artifact's own state: copied on every call.
    aliased_outputs: tuple[int, ...] = ()
    #: Files beside it (suffix -> file), not loaded by the runtime.
    companions: dict[str, FileEntry] = field(default_factory=dict)
    #: What its target recorded (``frozen``, ``device``, ``isa``, ``compiler_args``, ``dynamic_batch``...).
    details: dict[str, Any] = field(default_factory=dict)

    def files(self) -> list[FileEntry]:
        """Its own file, then its companions'."""
        return [self, *self.companions.values()]

    def to_json(self) -> dict[str, Any]:
        data = {
            **super().to_json(),
            "bucket": dict(self.bucket),
            "input_shapes": self.input_shapes,
            "output_shapes": self.output_shapes,
            "verified": self.verified,
            **({"format": self.format} if self.format is not None else {}),
            **({"aliased_outputs": list(self.aliased_outputs)} if self.aliased_outputs else {}),
            **self.details,
        }
        if self.companions:
            data["companions"] = {suffix: c.to_json() for suffix, c in self.companions.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactEntry:
        return cls(
            data["file"],
            data["sha256"],
            data["size"],
            bucket=dict(data.get("bucket", {})),
            input_shapes=data.get("input_shapes", []),
            output_shapes=data.get("output_shapes", []),
            format=data.get("format"),
            verified=data.get("verified", False),
            aliased_outputs=tuple(data.get("aliased_outputs") or ()),
            companions={s: FileEntry.from_json(c) for s, c in data.get("companions", {}).items()},
            details={k: v for k, v in data.items() if k not in _ARTIFACT_FIELDS},
        )


@dataclass(frozen=True)
class InputEntry:
    """One declared input: its compiled shape (the first bucket's), dtype and example-value bounds."""

    shape: list[int]
    dtype: str
    low: float | None = None
    high: float | None = None
    #: The dims of this input that follow the buckets.
    bucketed: list[int] = field(default_factory=list)
    #: The keyword the compiled model also takes this input as (None: positional only).
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"shape": self.shape, "dtype": self.dtype, "low": self.low, "high": self.high}
        if self.bucketed:
            data["bucketed"] = self.bucketed
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputEntry:
        return cls(
            data["shape"],
            data["dtype"],
            data.get("low"),
            data.get("high"),
            data.get("bucketed", []),
            data.get("name"),
        )


@dataclass(frozen=True)
class OutputsEntry:
    """What the eager model returned: its structure (``runtime.pytree``), the flat outputs' specs, and
    which of their dims follow the buckets (None: none do)."""

    tree: Any
    specs: list[dict[str, Any]] = field(default_factory=list)
    dims: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tree": self.tree, "specs": self.specs, "dims": self.dims}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputsEntry:
        return cls(data["tree"], data.get("specs", []), data.get("dims"))


@dataclass(frozen=True)
class ModelEntry:
    """One compiled model: how it was declared, what it returns, and its artifacts per target."""

    factory: str
    inputs: list[InputEntry]
    outputs: OutputsEntry
    artifacts: dict[str, list[ArtifactEntry]]
    rtol: float | None = None
    atol: float | None = None
    #: Bucketed dim (as a string) -> its sizes.
    buckets: dict[str, list[int]] = field(default_factory=dict)
    dynamic_batch: bool = False
    pad_value: float = 0.0
    #: The model's own targets, in preference order (the package's when empty).
    targets: list[str] = field(default_factory=list)
    compiler_args: list[str] = field(default_factory=list)
    check: str = "error"
    timeout: float | None = None
    #: The Hugging Face checkpoint the model was declared by (as the project names it), and its task.
    transformers: str | None = None
    task: str | None = None

    def to_json(self) -> dict[str, Any]:
        checkpoint = {"transformers": self.transformers, "task": self.task} if self.transformers else {}
        return {
            **checkpoint,
            "factory": self.factory,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": self.outputs.to_json(),
            "rtol": self.rtol,
            "atol": self.atol,
            "buckets": self.buckets,
            "dynamic_batch": self.dynamic_batch,
            "pad_value": self.pad_value,
            "targets": self.targets,
            "compiler_args": self.compiler_args,
            "check": self.check,
            "timeout": self.timeout,
            "artifacts": {t: [a.to_json() for a in entries] for t, entries in self.artifacts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelEntry:
        return cls(
            factory=data.get("factory", ""),
            inputs=[InputEntry.from_json(spec) for spec in data.get("inputs", [])],
            outputs=OutputsEntry.from_json(data["outputs"]) if "outputs" in data else OutputsEntry(None),
            artifacts={t: [ArtifactEntry.from_json(a) for a in e] for t, e in data["artifacts"].items()},
            rtol=data.get("rtol"),
            atol=data.get("atol"),
            buckets=data.get("buckets", {}),
            dynamic_batch=data.get("dynamic_batch", False),
            pad_value=data.get("pad_value", 0.0),
            targets=data.get("targets", []),
            compiler_args=data.get("compiler_args", []),
            check=data.get("check", "error"),
            timeout=data.get("timeout"),
            transformers=data.get("transformers"),
            task=data.get("task"),
        )


@dataclass(frozen=True)
class Manifest:
    """A built package's compiled models and the build-wide settings its runtime applies."""

    models: dict[str, ModelEntry] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    #: The importable package that holds the models (None in a manifest that lacks it).
    package: str | None = None
    module: str = "compiled"
    load: str = "import"
    #: The build's targets, in preference order (None in a manifest that lacks them).
    targets: list[str] | None = None
    compiler_args: list[str] = field(default_factory=list)
    neuron_target: str | None = None
    #: ``round-robin``, or ``{"start": N, "count": M}``.
    placement: str | dict[str, int] = "round-robin"
    replicas: int = 1
    #: Warm-up calls per artifact at load, or ``auto`` (2 for packages built before the setting existed).
    warmup: int | str = 2
    #: Versions the artifacts were made with (hatch-neuron, torch, python, the targets' toolchains).
    built_with: dict[str, str | None] = field(default_factory=dict)

    def artifacts(self) -> Iterator[ArtifactEntry]:
        """Every artifact entry, model by model, target by target."""
        for model in self.models.values():
            for entries in model.artifacts.values():
                yield from entries

    def first_artifact(self, target: str) -> ArtifactEntry | None:
        """One artifact of ``target`` (facts such as the device are the same for all of them)."""
        return next((a for m in self.models.values() for a in m.artifacts.get(target, [])), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "package": self.package,
            "module": self.module,
            "load": self.load,
            "targets": self.targets,
            "compiler_args": self.compiler_args,
            "neuron_target": self.neuron_target,
            "placement": self.placement,
            "replicas": self.replicas,
            "warmup": self.warmup,
            "built_with": self.built_with,
            "models": {name: model.to_json() for name, model in self.models.items()},
        }

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        """The manifest ``data`` (decoded JSON) describes; :class:`ManifestProblem` when its structure is
        not a format-1 manifest's."""
        problem = manifest_problem(data)
        if problem:
            raise ManifestProblem(problem)
        assert isinstance(data, dict)
        return cls(
            models={name: _model_from_json(name, model) for name, model in data["models"].items()},
            format=data.get("format", FORMAT_VERSION),
            package=data.get("package"),
            module=data.get("module", "compiled"),
            load=data.get("load", "import"),
            targets=data.get("targets"),
            compiler_args=data.get("compiler_args", []),
            neuron_target=data.get("neuron_target"),
            placement=data.get("placement", "round-robin"),
            replicas=data.get("replicas", 1),
            warmup=data.get("warmup", 2),
            built_with=data.get("built_with", {}),
        )


def _model_from_json(name: str, data: dict[str, Any]) -> ModelEntry:
    try:
        return ModelEntry.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ManifestProblem(f"model {name!r}: the entry is malformed ({problem})") from None
