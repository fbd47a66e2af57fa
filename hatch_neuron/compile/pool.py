"""The worker pool of one build: worker tasks run ``slots`` at a time, models first, then work stealing.

A worker costs a Python start and a torch import, so each model gets one *prepare* worker first, in the
plan's order; when a slot is free and no model is waiting, it takes the last job not yet taken of the
running model with the most jobs left (a *compile* worker). A per-key lock in the cache settles who
compiles a job that two workers reach; the other takes it from the cache, and an artifact already
delivered is not taken twice. A worker's failure stops the others and fails the build with its error.
Workers come from a factory, so the pool runs real processes in a build and stand-ins in tests.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Container
from typing import Protocol

from ..plan import ModelPlan
from ..runtime.schema import OutputsEntry
from .contracts import ArtifactRecord, BucketOutputs, ModelResult, WorkerResult
from .output_dims import OutputDimsError, output_dims
from .runner import CompileError, WorkerTask


class RunningWorker(Protocol):
    task: WorkerTask

    def done(self) -> bool: ...

    def kill(self) -> None: ...

    def result(self, known: Container[str] = ()) -> WorkerResult: ...


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
        artifacts = {job.stem: self.artifacts[job.stem] for job in self.model.jobs}
        first = [r for r in artifacts.values() if r.target == self.model.jobs[0].target]
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
        return ModelResult(
            OutputsEntry(outputs.tree, outputs.specs, dims), artifacts, self.findings, self.warnings
        )


#: Called with each finished worker's model, result and the stems it delivered first.
OnResult = Callable[[ModelBuild, WorkerResult, list[str]], None]
#: Called with each model once its result is assembled.
OnAssembled = Callable[[ModelBuild, ModelResult], None]


class WorkerPool:
    def __init__(
        self,
        slots: int,
        start: Callable[[WorkerTask], RunningWorker],
        on_result: OnResult = lambda build, result, stems: None,
        on_assembled: OnAssembled = lambda build, result: None,
    ) -> None:
        self.slots, self.start, self.on_result, self.on_assembled = slots, start, on_result, on_assembled
        self.builds: dict[str, ModelBuild] = {}
        #: Model -> its assembled result.
        self.results: dict[str, ModelResult] = {}
        #: Model -> findings, for the models whose checks failed the build (``check = "error"``).
        self.check_failures: dict[str, list[dict[str, str]]] = {}

    def run(self, queue: deque[WorkerTask]) -> None:
        """Run ``queue`` (one prepare task per model) and the jobs stolen meanwhile, until every model is
        assembled or a worker fails (every other worker is stopped, and the error raised)."""
        for task in queue:
            self.builds.setdefault(task.model.name, ModelBuild(task.model))
        running: list[RunningWorker] = []
        try:
            while queue or running:
                while len(running) < self.slots:
                    task = queue.popleft() if queue else self.steal(running)
                    if task is None:
                        break
                    if self.check_failures:  # the build fails: the other models only get their checks
                        if task.check != "error":
                            continue  # their findings could not fail the build: nothing to report
                        task = dataclasses.replace(task, jobs=())
                    running.append(self.start(task))
                finished = [w for w in running if w.done()]
                if not finished:
                    time.sleep(0.02)
                    continue
                for worker in finished:
                    if worker in running:  # not already stopped by an earlier one's handling
                        running.remove(worker)
                        self.finished(worker, running)
        except BaseException:
            for worker in running:
                worker.kill()
            raise

    def steal(self, running: list[RunningWorker]) -> WorkerTask | None:
        """A job for an idle slot: the last job not yet taken of the running model with the most left.
        Its prepare worker goes through the jobs from the first; the per-key lock settles who compiles a
        job both reach."""
        if self.check_failures:
            return None  # the build fails: compile nothing more
        best, best_left = None, 0
        for worker in running:
            if worker.task.mode != "prepare":
                continue
            build = self.builds[worker.task.model.name]
            left = [j for j in build.model.jobs[1:] if j.stem not in build.stolen]
            if len(left) > best_left:
                best, best_left = (worker.task, build, left[-1]), len(left)
        if best is None:
            return None
        task, build, job = best
        build.stolen.add(job.stem)
        return WorkerTask(task.plan, build.model, "compile", (job,))

    def finished(self, worker: RunningWorker, running: list[RunningWorker]) -> None:
        build = self.builds[worker.task.model.name]
        before = set(build.artifacts)
        result = worker.result(known=before)
        build.add(result)
        self.on_result(build, result, [s for s in build.stems if s in build.artifacts and s not in before])
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
            self.results[build.model.name] = build.assemble()
            self.on_assembled(build, self.results[build.model.name])
