"""What the build process and a worker process tell each other, as typed records with a JSON form.

The scheduler sends a :class:`WorkerRequest` (one model, its jobs, where the build's cache is); the worker
answers with a :class:`WorkerResult` (each job's :class:`ArtifactRecord`, the artifact keys, what the
checks found); the scheduler assembles a :class:`ModelResult` per model, which the pipeline turns into the
model's manifest entry and a direct cache record keeps for the next build. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from ..cache.remote import RemoteSettings
from ..runtime.schema import ArtifactEntry, OutputsEntry
from ..targets import options_type

#: A job's bucket: (dim, size) pairs.
Bucket = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class JobRequest:
    """One job of a worker: the model at one bucket for one target, written to ``path``."""

    target: str
    stem: str
    bucket: Bucket
    #: The input specs at this bucket (``ModelPlan.input_specs``).
    inputs: list[dict[str, Any]]
    path: str
    workdir: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bucket": [list(pair) for pair in self.bucket]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRequest:
        return cls(**{**data, "bucket": tuple((int(d), int(n)) for d, n in data["bucket"])})


@dataclass(frozen=True)
class ModelRequest:
    """What describes the model to a worker (and what its direct cache key hashes)."""

    model: str
    factory: str
    rtol: float | None
    atol: float | None
    #: Target -> its options (:mod:`.options`), for each of the model's targets.
    options: dict[str, Any]
    #: The declared input specs (at the first bucket).
    inputs: list[dict[str, Any]]
    #: Batched along dim 0 (dynamic batching or batch buckets): the checks look for batch-mixing.
    batched: bool
    #: The factory's keyword arguments.
    factory_args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRequest:
        options = {target: options_type(target)(**values) for target, values in data["options"].items()}
        return cls(**{**data, "options": options})


@dataclass(frozen=True)
class BuildContext:
    """What every worker of a build shares."""

    #: hatch-neuron's and torch's versions: part of every artifact key.
    versions: dict[str, str]
    #: Record the files the factory reads (for the direct cache).
    track_reads: bool = False
    remote: RemoteSettings | None = None
    #: The cache folder (or the build's private one when the cache is off).
    cache_dir: str | None = None
    #: Intra-op threads for the worker's torch (None: torch's default).
    threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildContext:
        remote = RemoteSettings(**data["remote"]) if data.get("remote") else None
        return cls(**{**data, "remote": remote})


@dataclass(frozen=True)
class WorkerRequest:
    """One worker's task: ``prepare`` (checks, then every job) or ``compile`` (the given jobs)."""

    model: ModelRequest
    mode: str
    #: ``off``, ``warn`` or ``error``: whether and how the pre-flight checks run (prepare only).
    check: str
    jobs: list[JobRequest]
    build: BuildContext
    #: The worker's own folder (not a model input: its reads are not tracked).
    tmp: str
    #: Folders put first on ``sys.path`` before the factory is imported.
    sys_path: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "model": self.model.to_json(),
            "jobs": [job.to_json() for job in self.jobs],
            "build": self.build.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerRequest:
        return cls(
            model=ModelRequest.from_json(data["model"]),
            mode=data["mode"],
            check=data["check"],
            jobs=[JobRequest.from_json(job) for job in data["jobs"]],
            build=BuildContext.from_json(data["build"]),
            tmp=data["tmp"],
            sys_path=data["sys_path"],
        )


class Origin(str, Enum):
    """Where a build got an artifact from."""

    COMPILED = "compiled"
    LOCAL_CACHE = "local cache"
    REMOTE_CACHE = "remote cache"


@dataclass(frozen=True)
class ArtifactRecord:
    """One job's artifact as the build knows it: its manifest entry and what only this build knows."""

    entry: ArtifactEntry
    target: str
    origin: Origin
    seconds: float
    #: The tracer's and the target's warnings (compiled artifacts only).
    warnings: list[str] = field(default_factory=list)
    #: Versions of the tools beyond torch that made it (they go into the manifest's ``built_with``).
    toolchain: dict[str, str | None] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """What the cache keeps of it beside the files: the entry's facts that hold for any build (not its
        file names, hashes or this bucket's shapes), and the toolchain."""
        own = ("file", "sha256", "size", "bucket", "input_shapes", "companions")
        return {
            **{k: v for k, v in self.entry.to_json().items() if k not in own},
            "toolchain": self.toolchain,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry.to_json(),
            "target": self.target,
            "origin": self.origin.value,
            "seconds": self.seconds,
            "warnings": self.warnings,
            "toolchain": self.toolchain,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactRecord:
        return cls(
            ArtifactEntry.from_json(data["entry"]),
            data["target"],
            Origin(data["origin"]),
            data["seconds"],
            data["warnings"],
            data["toolchain"],
        )


@dataclass(frozen=True)
class BucketOutputs:
    """The eager model's outputs at one bucket: their structure and flat specs."""

    stem: str
    tree: Any
    specs: list[dict[str, Any]]


@dataclass
class WorkerResult:
    """What a worker reports (``ok`` False: ``error``, and ``traceback`` for a bug of ours)."""

    ok: bool = True
    error: str | None = None
    traceback: str | None = None
    #: The pre-flight checks' findings (prepare only).
    findings: list[dict[str, str]] = field(default_factory=list)
    #: The checks found problems and ``check = "error"``: nothing was compiled.
    check_failed: bool = False
    #: Job stem -> its artifact.
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    #: Job stem -> its artifact key.
    keys: dict[str, str] = field(default_factory=dict)
    #: Cache problems met and got over (logged as warnings).
    events: list[str] = field(default_factory=list)
    outputs: BucketOutputs | None = None
    #: Why the cache folder failed, when it did (the build goes on without it).
    cache_fault: str | None = None
    #: The files the factory read: path -> sha256 (``track_reads``).
    reads: dict[str, str] | None = None
    #: Modules the model imported from the installation (for the fork server to preload).
    imported: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "artifacts": {stem: record.to_json() for stem, record in self.artifacts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerResult:
        outputs = BucketOutputs(**data["outputs"]) if data.get("outputs") else None
        artifacts = {stem: ArtifactRecord.from_json(r) for stem, r in data.get("artifacts", {}).items()}
        return cls(**{**data, "outputs": outputs, "artifacts": artifacts})


@dataclass(frozen=True)
class ModelResult:
    """A model's compile result: its outputs and its artifacts in the plan's order of its jobs."""

    outputs: OutputsEntry
    #: Job stem -> its artifact.
    artifacts: dict[str, ArtifactRecord]
    findings: list[dict[str, str]]
    warnings: list[str]

    def by_target(self) -> dict[str, list[ArtifactRecord]]:
        """Target -> its artifacts, in job (bucket) order."""
        grouped: dict[str, list[ArtifactRecord]] = {}
        for record in self.artifacts.values():
            grouped.setdefault(record.target, []).append(record)
        return grouped

    def to_json(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs.to_json(),
            "artifacts": {stem: record.to_json() for stem, record in self.artifacts.items()},
            "findings": self.findings,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelResult:
        return cls(
            OutputsEntry.from_json(data["outputs"]),
            {stem: ArtifactRecord.from_json(record) for stem, record in data["artifacts"].items()},
            data["findings"],
            data["warnings"],
        )
