"""Plan stage: what to compile (models x targets) and where the results go, from validated settings."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, ModelSettings, NeuronSettings
from ..config.neuron_options import NeuronOptionSettings

#: A bucket: (dimension, size) pairs, one per bucketed dimension; () for a model without buckets.
Bucket = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CompileJob:
    """One artifact: a model compiled for a target at one bucket."""

    model: str
    target: str
    bucket: Bucket = ()

    @property
    def stem(self) -> str:
        """The artifact's file name without the target's suffix."""
        sizes = "".join(f".d{dim}-{size}" for dim, size in self.bucket)
        return f"{self.model}.{self.target}{sizes}"


def bucket_label(bucket: Iterable[tuple[int, int] | list[int]]) -> str:
    """How logs name a bucket: ``dim0=8 dim1=128`` ("" with no buckets)."""
    return " ".join(f"dim{dim}={size}" for dim, size in bucket)


def job_label(model: str, target: str, bucket: Iterable[tuple[int, int] | list[int]]) -> str:
    """How logs name one artifact: ``encoder [cpu dim0=8]``."""
    where = " ".join(filter(None, (target, bucket_label(bucket))))
    return f"{model} [{where}]"


#: The factory that builds a checkpoint model in its workers (``hatch_neuron.compile.checkpoint``).
CHECKPOINT_LOADER = "hatch_neuron.compile.checkpoint:load_checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    """A model declared by a Hugging Face checkpoint, resolved: where its files are, its task and the
    names of its inputs (in call order)."""

    folder: str
    task: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class ModelPlan:
    """One model: its settings, the values it takes from the project's (its own where it sets them), and
    its compile jobs."""

    name: str
    settings: ModelSettings
    jobs: tuple[CompileJob, ...]
    targets: tuple[str, ...] = ()
    compiler_args: tuple[str, ...] = ()
    check: str = "error"
    timeout: float = 3600.0
    #: The typed ``neuron-options``, the model's keys over the project's.
    neuron_options: NeuronOptionSettings = dataclasses.field(default_factory=NeuronOptionSettings)
    checkpoint: Checkpoint | None = None
    #: The YAML models file that declares the model (None: pyproject.toml).
    declared_in: Path | None = None

    @property
    def factory(self) -> str:
        """What the model's workers call to build it."""
        return CHECKPOINT_LOADER if self.checkpoint else str(self.settings.factory)

    @property
    def factory_args(self) -> dict[str, Any]:
        """The keyword arguments of :attr:`factory`."""
        if self.checkpoint is None:
            return dict(self.settings.factory_args)
        folder, task, inputs = self.checkpoint.folder, self.checkpoint.task, list(self.checkpoint.inputs)
        return {"folder": folder, "task": task, "inputs": inputs, "options": dict(self.settings.factory_args)}

    def buckets(self) -> list[Bucket]:
        """Every combination of the bucketed dimensions' sizes (one ``()`` when nothing is bucketed)."""
        axes = self.settings.bucket_axes()
        return [tuple(zip(axes, sizes, strict=True)) for sizes in itertools.product(*axes.values())]

    def input_specs(self, bucket: Bucket = ()) -> list[dict[str, Any]]:
        """The declared inputs as plain data, with the default bounds filled in."""
        specs = []
        for index, spec in enumerate(self.settings.inputs):
            low, high = spec.bounds()
            shape = list(spec.shape)
            bucketed = self.settings.bucketed_dims(index)
            for dim, size in bucket:
                if dim in bucketed:
                    shape[dim] = size
            specs.append({"shape": shape, "dtype": spec.dtype, "low": low, "high": high})
            if spec.name is not None:
                specs[-1]["name"] = spec.name
            if bucketed:
                specs[-1]["bucketed"] = bucketed
        return specs


@dataclass(frozen=True)
class BuildPlan:
    settings: NeuronSettings
    package: str
    #: Folders put on ``sys.path`` when factories are imported (the project root, and ``src/`` if present).
    import_paths: tuple[Path, ...]
    models: tuple[ModelPlan, ...]

    @property
    def jobs(self) -> list[CompileJob]:
        return [job for model in self.models for job in model.jobs]

    @property
    def targets(self) -> list[str]:
        """Every target some model is compiled for: the project's order first, then the models' own."""
        listed = [*self.settings.targets, *(t for model in self.models for t in model.targets)]
        return [t for t in dict.fromkeys(listed) if any(t in model.targets for model in self.models)]


#: Above these a build warns: every bucket combination is one compile (minutes to an hour on Neuron),
#: and every example input is made in memory several times (trace, checks, verification).
MANY_ARTIFACTS = 64
LARGE_INPUT_BYTES = 1 << 30

_ITEM_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


def plan_warnings(plan: BuildPlan) -> list[str]:
    """What in the plan is legal but probably a mistake: too many artifacts per model, huge inputs."""
    warnings = []
    for model in plan.models:
        if len(model.jobs) > MANY_ARTIFACTS:
            warnings.append(
                f"{model.name}: {len(model.jobs)} artifacts to compile ({len(model.buckets())} bucket "
                f"combinations x {len(model.targets)} target(s)); each is a separate compile. Fewer "
                "bucket sizes, or buckets on fewer dimensions, cut this"
            )
        for index, spec in enumerate(model.settings.inputs):
            size = _ITEM_BYTES.get(spec.dtype, 1) * math.prod(spec.shape)
            if size > LARGE_INPUT_BYTES:
                warnings.append(
                    f"{model.name}: inputs[{index}] {spec.shape} {spec.dtype} is {size / (1 << 30):.1f} GiB; "
                    "the build makes several example inputs of that size in memory"
                )
    return warnings


def import_paths(root: Path) -> tuple[Path, ...]:
    return tuple(p for p in (root / "src", root) if p.is_dir())


def infer_package(root: Path, project_name: str | None) -> str:
    """The import package of a project: its normalized name if such a package exists, else the only one."""
    candidates = []
    for base in import_paths(root):
        candidates += sorted(p.parent.name for p in base.glob("*/__init__.py"))
    if project_name:
        guess = project_name.replace("-", "_").replace(".", "_").lower()
        if guess in candidates:
            return guess
    candidates = [c for c in dict.fromkeys(candidates) if c not in ("tests", "test", "docs", "bench")]
    if len(candidates) == 1:
        return candidates[0]
    raise ConfigError(
        "tool.neuron.package",
        "cannot infer the import package that receives the artifacts "
        f"(found: {', '.join(candidates) or 'none'})",
        'set package = "mypkg" in [tool.neuron]',
    )


def check_own_package(package: str, root: Path) -> None:
    """``package`` must be a package of the project at ``root`` (never one installed elsewhere, whose files
    the wheel would overwrite on install)."""
    bases = import_paths(root)
    if any(base.joinpath(*package.split(".")).is_dir() for base in bases):
        return
    folders = " or ".join(str(base.joinpath(*package.split("."))) for base in bases) or str(root)
    raise ConfigError(
        "tool.neuron.package",
        f"{package!r} is not a package of this project (no folder {folders})",
        "name one of the project's own packages; the artifacts and the generated module are written into "
        "it, and installing the wheel would overwrite another distribution's files",
    )


def make_plan(
    settings: NeuronSettings,
    root: Path,
    project_name: str | None = None,
    checkpoints: dict[str, Checkpoint] | None = None,
    declared_in: dict[str, Path] | None = None,
) -> BuildPlan:
    """The plan of ``settings`` (whose checkpoint models' inputs are resolved: ``checkpoints``);
    ``declared_in``: the YAML file of each model declared in one."""
    if settings.package:
        check_own_package(settings.package, root)
    package = settings.package or infer_package(root, project_name)
    models = []
    for name, model in settings.models.items():
        plan = ModelPlan(
            name,
            model,
            (),
            tuple(model.targets or settings.targets),
            tuple(settings.compiler_args if model.compiler_args is None else model.compiler_args),
            model.check or settings.check,
            model.timeout or settings.timeout,
            settings.neuron_options.merged(model.neuron_options),
            (checkpoints or {}).get(name),
            (declared_in or {}).get(name),
        )
        jobs = tuple(CompileJob(name, t, bucket) for t in plan.targets for bucket in plan.buckets())
        models.append(dataclasses.replace(plan, jobs=jobs))
    return BuildPlan(settings, package, import_paths(root), tuple(models))


def job_cost(model: ModelPlan, job: CompileJob) -> int:
    """What the plan knows of a job's compile cost: the elements of its inputs at its bucket (a compile's
    time grows with the shapes it compiles for; the plan knows nothing of the model's size)."""
    return sum(math.prod(spec["shape"]) for spec in model.input_specs(job.bucket))


def shard_jobs(plan: BuildPlan, index: int, count: int) -> set[CompileJob]:
    """The jobs of shard ``index`` (from 1) of ``count``: every job in exactly one shard, the same on every
    machine with the same sources. The jobs are dealt out in turn, the largest inputs (:func:`job_cost`)
    first and ties by the artifact's name, so shards differ by at most one job and each model's largest
    buckets land on different shards. (By count rather than by the cost itself: input size says which
    compile of a model is longer, not how much longer, and it says nothing across models.)"""
    jobs = sorted(
        ((model, job) for model in plan.models for job in model.jobs),
        key=lambda pair: (-job_cost(*pair), pair[1].stem),
    )
    return {job for turn, (_, job) in enumerate(jobs) if turn % count == index - 1}


def restrict(plan: BuildPlan, jobs: set[CompileJob]) -> BuildPlan:
    """``plan`` with only ``jobs`` (and the models that have some)."""
    models = [dataclasses.replace(m, jobs=tuple(j for j in m.jobs if j in jobs)) for m in plan.models]
    return dataclasses.replace(plan, models=tuple(m for m in models if m.jobs))
