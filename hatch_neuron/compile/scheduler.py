"""Compile every model of a plan: cache lookups first, then worker processes, ``jobs`` of them at once.

Per model: a *direct* cache hit (the files its factory read last time are unchanged) copies its artifacts
without running anything. Otherwise one *prepare* worker per model runs the pre-flight checks, computes
each job's artifact key from the traced model and goes through the jobs (a model at one bucket for one
target), taking each from the cache or compiling it. Workers start in the plan's order, ``jobs`` at a time
(a worker costs a Python start and a torch import, so models come first); when a slot is free and no
model is waiting, it takes the last job not yet taken of the running model with the most jobs left. A
per-key lock (in the cache, or a private one when the cache is off) settles who compiles a job that two
workers reach; the other takes it from the cache. A failing worker fails the build with its own error
once the others are stopped. Results are assembled in the plan's order, whatever order workers finish in.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import platform
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import __version__
from ..cache import CorruptEntry, LocalCache
from ..cache.commands import default_cache_dir, format_size
from ..cache.keys import direct_key, installed_distributions
from ..cache.remote import RemoteSettings
from ..cache.store import fault_message, sha256_file
from ..config import NeuronSettings
from ..plan import BuildPlan, ModelPlan, job_label
from ..runtime.schema import OutputsEntry
from . import get_target
from .contracts import ArtifactRecord, BucketOutputs, BuildContext, ModelResult, Origin, WorkerResult
from .findings import check_failure
from .forkserver import ForkServer, factory_imports
from .output_dims import OutputDimsError, output_dims
from .runner import HATCH_NEURON_HOME, CompileError, Worker, WorkerTask, model_request, target_options


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cache_for(plan: BuildPlan, root: Path) -> LocalCache | None:
    settings = plan.settings
    if settings.cache == "off":
        return None
    folder = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
    return LocalCache(folder if folder.is_absolute() else root / folder)


def remote_settings(settings: NeuronSettings) -> RemoteSettings | None:
    """The remote cache's settings for the workers, or None when it is not used (also with the cache off:
    off compiles everything)."""
    if not settings.remote_cache or settings.remote_cache_mode == "off" or settings.cache == "off":
        return None
    return RemoteSettings(
        settings.remote_cache,
        settings.remote_cache_mode,
        settings.remote_cache_endpoint_url,
        settings.remote_cache_timeout,
    )


#: An artifact's origin -> (its counter, the word the build log uses).
_SOURCES = {
    Origin.COMPILED: ("compiled", "compiled"),
    Origin.LOCAL_CACHE: ("cached", "cached"),
    Origin.REMOTE_CACHE: ("remote", "downloaded"),
}


#: Part of every direct key: raised when a record's result changes shape (2: ``aliased_outputs``; 3: typed
#: records, :class:`~.contracts.ModelResult`), so that older records are not used.
DIRECT_RECORD_FORMAT = 3


def torch_version() -> str:
    """The build environment's torch, from its metadata (a warm, cached build does not import torch)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        raise CompileError(
            "torch is not installed in the build environment: the build hooks ask for it in isolated builds "
            "(HATCH_NEURON_TORCH or the project's own torch requirement says which); with "
            "--no-build-isolation, install torch first"
        ) from None


def build_versions() -> dict[str, str]:
    """What every artifact of this build is built with: hatch-neuron and torch."""
    return {"hatch-neuron": __version__, "torch": torch_version()}


def _label(model: str, record: ArtifactRecord) -> str:
    return job_label(model, record.target, record.entry.bucket.items())


class ModelBuild:
    """What is known about one model while its workers run."""

    def __init__(self, model: ModelPlan) -> None:
        self.model = model
        self.stems = [job.stem for job in model.jobs]
        self.artifacts: dict[str, ArtifactRecord] = {}
        self.keys: dict[str, str] = {}
        self.outputs: dict[str, BucketOutputs] = {}  # stem of the bucket they were computed at -> outputs
        self.findings: list[dict[str, str]] = []
        self.warnings: list[str] = []
        self.reads: dict[str, str] = {}
        self.trees: set[str] = set()
        self.stolen: set[str] = set()  # jobs handed to a second worker
        self.prepared = False  # the model's prepare worker has finished

    def add(self, result: WorkerResult) -> None:
        self.artifacts.update(result.artifacts)
        self.keys.update(result.keys)
        self.reads.update(result.reads or {})
        if result.outputs is not None:
            self.outputs[result.outputs.stem] = result.outputs
            self.trees.add(repr(result.outputs.tree))
        self.findings += result.findings
        for record in result.artifacts.values():
            self.warnings += record.warnings

    def assemble(self) -> ModelResult:
        """The model's result: outputs (with the dims that follow buckets) and artifacts in job order."""
        name, settings = self.model.name, self.model.settings
        if len(self.trees) > 1:
            raise CompileError(f"model {name!r}: the output structure changes with the bucket: {self.trees}")
        result = ModelResult(
            OutputsEntry(None), {job.stem: self.artifacts[job.stem] for job in self.model.jobs}, [], []
        )
        first = next(iter(result.by_target().values()))
        try:
            dims = output_dims(
                settings.bucket_axes(),
                [({int(d): n for d, n in r.entry.bucket.items()}, r.entry.output_shapes) for r in first],
                settings.output_dims,
                settings.dynamic_batch,
            )
        except OutputDimsError as exc:
            raise CompileError(f"model {name!r}: {exc}") from None
        outputs = self.outputs[next(stem for stem in self.stems if stem in self.outputs)]
        return dataclasses.replace(
            result,
            outputs=OutputsEntry(outputs.tree, outputs.specs, dims),
            findings=self.findings,
            warnings=self.warnings,
        )


def threads_per_worker(jobs: int, queue: Iterable[WorkerTask]) -> int:
    """Intra-op threads for each worker: the usable CPUs shared by the workers that can run at once,
    which are fewer than ``jobs`` when there are fewer compile jobs (one model's build gets every CPU,
    as an ad-hoc script would)."""
    at_once = min(jobs, sum(len(task.jobs) for task in queue))
    return max(1, usable_cpus() // max(1, at_once))


class Scheduler:
    def __init__(self, plan: BuildPlan, root: Path, out_dir: Path, log: Callable[[str], None]) -> None:
        self.plan, self.root, self.out_dir, self.log = plan, root, out_dir, log
        settings = plan.settings
        self.cache = cache_for(plan, root)
        if self.cache is not None:
            try:
                self.cache.probe()
            except OSError as exc:
                self._cache_fault(exc)
        self.jobs = settings.jobs or usable_cpus()
        self.context = BuildContext(build_versions(), settings.cache == "on", remote_settings(settings))
        self.counts = {"compiled": 0, "cached": 0, "remote": 0}
        self.server: ForkServer | None = None
        #: Model -> findings, for the models whose checks failed the build (``check = "error"``).
        self.check_failures: dict[str, list[dict[str, str]]] = {}

    # -- direct cache ------------------------------------------------------------------------------------

    @functools.cached_property
    def _environment(self) -> dict[str, Any]:
        """What the direct keys of this build share: versions and where modules are imported from."""
        return {
            **build_versions(),
            "python": platform.python_version(),
            "distributions": installed_distributions(),
            # where factories and toolchains are imported from (a module found elsewhere is another one)
            "pythonpath": os.environ.get("PYTHONPATH", ""),
        }

    def _direct_key(self, model: ModelPlan) -> str:
        request = {
            **model_request(self.plan, model).to_json(),
            # a worker's time limit changes no artifact
            "settings": {k: v for k, v in asdict(model.settings).items() if k != "timeout"},
            "stems": [job.stem for job in model.jobs],
            "check": model.check,
            "record": DIRECT_RECORD_FORMAT,
        }
        return direct_key(request, self._environment)

    def _relative(self, path: str) -> str:
        try:
            return "./" + Path(path).relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path

    def _absolute(self, path: str) -> Path:
        return self.root / path[2:] if path.startswith("./") else Path(path)

    def _direct_hit(self, model: ModelPlan) -> ModelResult | None:
        assert self.cache is not None
        for record in self.cache.direct_records(self._direct_key(model)):
            try:
                unchanged = all(sha256_file(self._absolute(p)) == h for p, h in record["files"].items())
            except OSError:
                unchanged = False
            if not unchanged:
                continue
            result = ModelResult.from_json(record["result"])
            if self._fetch_recorded(record["keys"], result):
                return result
            if self.cache is None:  # the cache failed while reading
                return None
            # the record's artifacts are gone or are not the bytes it describes: it cannot be trusted
            try:
                self.cache.drop_direct_record(self._direct_key(model), record)
            except OSError as exc:
                self._cache_fault(exc)
            return None
        return None

    def _fetch_recorded(self, keys: dict[str, str], result: ModelResult) -> bool:
        """Copy a direct record's artifacts into the output folder; True when every one is there with the
        sha256 and size the record's manifest entries say (the bytes that go into the wheel)."""
        assert self.cache is not None
        for stem, key in keys.items():
            entry = result.artifacts[stem].entry
            described = {"artifact": entry, **{f"companion{s}": c for s, c in entry.companions.items()}}
            dest = {name: self.out_dir / part.file for name, part in described.items()}
            try:
                meta = self.cache.fetch(key, dest)
            except CorruptEntry as exc:
                self.log(f"warning: {exc}")
                return False
            except OSError as exc:
                self._cache_fault(exc)
                return False
            if meta is None or any(
                (meta["files"].get(name, {}).get("sha256"), meta["files"].get(name, {}).get("size"))
                != (part.sha256, part.size)
                for name, part in described.items()
            ):
                for file in dest.values():
                    file.unlink(missing_ok=True)
                return False
        return True

    def _cache_fault(self, exc: BaseException | str) -> None:
        """Report a failing cache folder once and build on without it."""
        if self.cache is not None:
            self.log("warning: " + (exc if isinstance(exc, str) else fault_message(self.cache.root, exc)))
            self.cache = None

    def _record_direct(self, build: ModelBuild, assembled: ModelResult) -> None:
        assert self.cache is not None
        record = {
            "files": {self._relative(p): h for p, h in build.reads.items()},
            "keys": build.keys,
            "result": assembled.to_json(),
            "created": time.time(),
        }
        try:
            self.cache.add_direct_record(self._direct_key(build.model), record)
        except OSError as exc:
            self._cache_fault(exc)

    # -- running -----------------------------------------------------------------------------------------

    def _report(self, build: ModelBuild, stems: list[str]) -> None:
        for stem in stems:
            record = build.artifacts[stem]
            count, how = _SOURCES[record.origin]
            self.counts[count] += 1
            check = "verified against eager" if record.entry.verified else "not verified (no device here)"
            self.log(
                f"{_label(build.model.name, record)}: {how} in {record.seconds:.1f} s, "
                f"{format_size(record.entry.size)}, {check}"
            )

    def _steal(self, builds: dict[str, ModelBuild], running: list[Worker]) -> WorkerTask | None:
        """A job for an idle slot: the last job not yet taken of the running model with the most left.
        Its prepare worker goes through the jobs from the first; the per-key lock settles who compiles a
        job both reach."""
        if self.check_failures:
            return None  # the build fails: compile nothing more
        best, best_left = None, 0
        for worker in running:
            build = builds[worker.task.model.name]
            if worker.task.mode != "prepare":
                continue
            left = [j for j in build.model.jobs[1:] if j.stem not in build.stolen]
            if len(left) > best_left:
                best, best_left = (build, left[-1]), len(left)
        if best is None:
            return None
        build, job = best
        build.stolen.add(job.stem)
        return WorkerTask(self.plan, build.model, "compile", (job,))

    def _start(self, task: WorkerTask, cache_dir: Path) -> Worker:
        context = dataclasses.replace(self.context, cache_dir=str(cache_dir))
        return Worker(task, self.out_dir, context, self.server)

    def run(self) -> dict[str, ModelResult]:
        """Every model's assembled result, in the plan's order."""
        start = time.perf_counter()
        results: dict[str, ModelResult] = {}
        builds: dict[str, ModelBuild] = {}
        queue: deque[WorkerTask] = deque()
        for model in self.plan.models:
            if self.cache is not None and self.plan.settings.cache == "on":
                hit = self._direct_hit(model)
                if hit is not None:
                    for record in hit.artifacts.values():
                        self.counts["cached"] += 1
                        self.log(f"{_label(model.name, record)}: cached (files unchanged)")
                    results[model.name] = hit
                    continue
            builds[model.name] = ModelBuild(model)
            queue.append(WorkerTask(self.plan, model, "prepare", model.jobs, check=model.check))
        self.context = dataclasses.replace(self.context, threads=threads_per_worker(self.jobs, queue))
        if queue:  # something to build: a missing toolchain fails here, before any model is imported
            for target in dict.fromkeys(job.target for task in queue for job in task.jobs):
                get_target(target).preflight(target_options(self.plan.settings))
        # with the cache off, workers still coordinate (locks, sharing a job's result) through a private one
        with tempfile.TemporaryDirectory(prefix="hatch-neuron-jobs-") as private:
            cache_dir = self.cache.root if self.cache is not None else Path(private)
            if queue and self.plan.settings.workers == "preloaded":
                self.server = ForkServer(HATCH_NEURON_HOME)
                factories = [task.model.settings.factory for task in queue]
                self.server.preload(factory_imports(factories, list(self.plan.import_paths)))
            try:
                self._run_workers(queue, builds, results, cache_dir)
            finally:
                if self.server is not None:
                    self.server.close()
                    self.server = None
        if self.check_failures:
            failures = {
                m.name: self.check_failures[m.name] for m in self.plan.models if m.name in self.check_failures
            }
            raise CompileError(check_failure(failures))
        self.log(
            f"{self.counts['compiled']} artifact(s) compiled, {self.counts['cached']} from the cache, "
            + (f"{self.counts['remote']} from the remote cache, " if self.context.remote else "")
            + "in "
            f"{time.perf_counter() - start:.1f} s (jobs = {self.jobs}"
            + (f", cache {self.cache.root}" if self.cache else ", cache off")
            + ")"
        )
        return {model.name: results[model.name] for model in self.plan.models}

    def _run_workers(
        self,
        queue: deque[WorkerTask],
        builds: dict[str, ModelBuild],
        results: dict[str, ModelResult],
        cache_dir: Path,
    ) -> None:
        running: list[Worker] = []
        try:
            while queue or running:
                while len(running) < self.jobs:
                    task = queue.popleft() if queue else self._steal(builds, running)
                    if task is None:
                        break
                    if self.check_failures:  # the build fails: the other models only get their checks
                        if task.check != "error":
                            continue  # their findings could not fail the build: nothing to report
                        task = dataclasses.replace(task, jobs=())
                    running.append(self._start(task, cache_dir))
                finished = [w for w in running if w.done()]
                if not finished:
                    time.sleep(0.02)
                    continue
                for worker in finished:
                    if worker in running:  # not already stopped by an earlier one's _finished
                        running.remove(worker)
                        self._finished(worker, builds, results, running)
        except BaseException:
            for worker in running:
                worker.kill()
            raise

    def _finished(
        self,
        worker: Worker,
        builds: dict[str, ModelBuild],
        results: dict[str, ModelResult],
        running: list[Worker],
    ) -> None:
        build = builds[worker.task.model.name]
        before = set(build.artifacts)
        result = worker.result(known=before)
        if self.server is not None:
            self.server.preload(result.imported)
        build.add(result)
        for event in result.events:
            self.log(f"warning: {event}")
        if result.cache_fault:
            self._cache_fault(result.cache_fault)
        self._report(build, [s for s in build.stems if s in build.artifacts and s not in before])
        if result.check_failed:
            self.check_failures[build.model.name] = result.findings
            for other in [w for w in running if w.task.mode == "compile"]:
                other.kill()  # another model's second worker: its artifact would not be used
                running.remove(other)
        if worker.task.mode == "prepare":
            build.prepared = True
            for other in [w for w in running if w.task.model is build.model]:
                other.kill()  # the prepare worker has every artifact: a second worker would only repeat one
                running.remove(other)
        if self.check_failures:
            return  # nothing is assembled: the build fails once every model's checks have run
        if build.prepared and not any(w.task.model is build.model for w in running):
            results[build.model.name] = build.assemble()
            if self.cache is not None and self.plan.settings.cache == "on":
                self._record_direct(build, results[build.model.name])
