"""Compile every model of a plan: direct cache hits first (:mod:`.direct`: the files a model's factory read
last time are unchanged, its artifacts are copied without running anything), then one *prepare* worker
per other model in a pool (:mod:`.pool`: ``jobs`` at a time, then work stealing). A prepare worker runs
the pre-flight checks, computes each job's artifact key from the traced model and goes through the jobs
(a model at one bucket for one target), taking each from the cache or compiling it. Results are
returned in the plan's order, whatever order workers finish in.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import __version__
from ..cache import LocalCache
from ..cache.commands import default_cache_dir, format_size
from ..cache.remote import RemoteSettings
from ..cache.store import fault_message
from ..config import NeuronSettings
from ..plan import BuildPlan, job_label
from . import get_target
from .checkpoint import CHECKPOINT_IMPORTS
from .contracts import ArtifactRecord, BuildContext, ModelResult, Origin, WorkerResult
from .direct import DirectCache
from .findings import check_failure
from .forkserver import ForkServer, factory_imports
from .pool import ModelBuild, WorkerPool
from .ray_executor import run_on_cluster
from .runner import HATCH_NEURON_HOME, CompileError, Worker, WorkerTask, target_options


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cache_folder(settings: NeuronSettings, root: Path) -> Path | None:
    """The compile cache's folder (None with the cache off)."""
    if settings.cache == "off":
        return None
    folder = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
    return folder if folder.is_absolute() else root / folder


def cache_for(plan: BuildPlan, root: Path) -> LocalCache | None:
    folder = cache_folder(plan.settings, root)
    return None if folder is None else LocalCache(folder)


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


def threads_per_worker(jobs: int, queue: Iterable[WorkerTask]) -> int:
    """Intra-op threads for each worker: the usable CPUs shared by the workers that can run at once,
    which are fewer than ``jobs`` when there are fewer compile jobs (one model's build gets every CPU,
    as an ad-hoc script would)."""
    at_once = min(jobs, sum(len(task.jobs) for task in queue))
    return max(1, usable_cpus() // max(1, at_once))


class Scheduler:
    """One build's compiles: direct cache hits first, then the other models' workers in a pool."""

    def __init__(self, plan: BuildPlan, root: Path, out_dir: Path, log: Callable[[str], None]) -> None:
        self.plan, self.root, self.out_dir, self.log = plan, root, out_dir, log
        settings = plan.settings
        self.jobs = settings.jobs or usable_cpus()
        self.context = BuildContext(build_versions(), settings.cache == "on", remote_settings(settings))
        self.counts = {"compiled": 0, "cached": 0, "remote": 0}
        self.server: ForkServer | None = None
        self.direct: DirectCache | None = None
        self.cache = cache_for(plan, root)
        if self.cache is not None:
            try:
                self.cache.probe()
            except OSError as exc:
                self._cache_fault(exc)
        if self.cache is not None and settings.cache == "on":
            versions = self.context.versions
            self.direct = DirectCache(plan, root, out_dir, self.cache, versions, log, self._cache_fault)

    def _cache_fault(self, exc: BaseException | str) -> None:
        """Report a failing cache folder once and build on without it."""
        if self.cache is not None:
            self.log("warning: " + (exc if isinstance(exc, str) else fault_message(self.cache.root, exc)))
            self.cache = None
        if self.direct is not None:
            self.direct.cache = None

    def _report(self, build: ModelBuild, result: WorkerResult, stems: list[str]) -> None:
        """Log what a finished worker delivered (each artifact once) and the cache problems it met."""
        if self.server is not None:
            self.server.preload(result.imported)
        for event in result.events:
            self.log(f"warning: {event}")
        if result.cache_fault:
            self._cache_fault(result.cache_fault)
        for stem in stems:
            record = build.artifacts[stem]
            count, how = _SOURCES[record.origin]
            self.counts[count] += 1
            check = "verified against eager" if record.entry.verified else "not verified (no device here)"
            self.log(
                f"{_label(build.model.name, record)}: {how} in {record.seconds:.1f} s, "
                f"{format_size(record.entry.size)}, {check}"
            )

    def _direct_hits(self) -> dict[str, ModelResult]:
        hits = {}
        for model in self.plan.models:
            hit = self.direct.hit(model) if self.direct is not None else None
            if hit is not None:
                for record in hit.artifacts.values():
                    self.counts["cached"] += 1
                    self.log(f"{_label(model.name, record)}: cached (files unchanged)")
                hits[model.name] = hit
        return hits

    def run(self) -> dict[str, ModelResult]:
        """Every model's assembled result, in the plan's order."""
        start = time.perf_counter()
        results = self._direct_hits()
        queue = deque(
            WorkerTask(self.plan, model, "prepare", model.jobs, check=model.check)
            for model in self.plan.models
            if model.name not in results
        )
        self.context = dataclasses.replace(self.context, threads=threads_per_worker(self.jobs, queue))
        if queue:  # something to build: a missing toolchain fails here, before any model is imported
            for target in dict.fromkeys(job.target for task in queue for job in task.jobs):
                get_target(target).preflight(target_options(target, self.plan.settings))
        pool = self._run_pool(queue)
        if pool.check_failures:
            failures = {
                m.name: pool.check_failures[m.name] for m in self.plan.models if m.name in pool.check_failures
            }
            raise CompileError(check_failure(failures))
        results.update(pool.results)
        self.log(
            f"{self.counts['compiled']} artifact(s) compiled, {self.counts['cached']} from the cache, "
            + (f"{self.counts['remote']} from the remote cache, " if self.context.remote else "")
            + "in "
            f"{time.perf_counter() - start:.1f} s (jobs = {self.jobs}"
            + (f", cache {self.cache.root}" if self.cache else ", cache off")
            + ")"
        )
        return {model.name: results[model.name] for model in self.plan.models}

    def _run_pool(self, queue: deque[WorkerTask]) -> WorkerPool:
        # with the cache off, workers still coordinate (locks, sharing a job's result) through a private one
        with tempfile.TemporaryDirectory(prefix="hatch-neuron-jobs-") as private:
            cache_dir = self.cache.root if self.cache is not None else Path(private)
            context = dataclasses.replace(self.context, cache_dir=str(cache_dir))

            def start(task: WorkerTask) -> Worker:
                return Worker(task, self.out_dir, context, self.server)

            def assembled(build: ModelBuild, result: ModelResult) -> None:
                if self.direct is not None:
                    self.direct.record(build, result)

            pool = WorkerPool(self.jobs, start, self._report, assembled)
            if queue and self.plan.settings.executor == "ray":
                models = [task.model for task in queue]
                run_on_cluster(self.plan, models, self.root, cache_dir, context, self.log)
            if queue and self.plan.settings.workers == "preloaded":
                self.server = ForkServer(HATCH_NEURON_HOME)
                factories = [task.model.settings.factory for task in queue if task.model.checkpoint is None]
                hints = factory_imports(factories, list(self.plan.import_paths))
                if any(task.model.checkpoint for task in queue):
                    hints += CHECKPOINT_IMPORTS
                self.server.preload(hints)
            try:
                pool.run(queue)
            finally:
                if self.server is not None:
                    self.server.close()
                    self.server = None
        return pool
