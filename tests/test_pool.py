"""The worker pool with stand-in workers (no process is started, nothing is compiled): which tasks run
when, work stealing, an artifact delivered twice taken once, a failure stopping the others."""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from pathlib import Path
from typing import ClassVar

import pytest

from hatch_neuron.compile.contracts import ArtifactRecord, BucketOutputs, Origin, WorkerResult
from hatch_neuron.compile.pool import WorkerPool
from hatch_neuron.compile.runner import CompileError, WorkerTask
from hatch_neuron.config import settings_from_table
from hatch_neuron.plan import BuildPlan, make_plan
from hatch_neuron.runtime.schema import ArtifactEntry


@pytest.fixture
def plan(tmp_path: Path) -> BuildPlan:
    """Model ``m`` with three batch buckets (three jobs), model ``n`` with one."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    model = {"factory": "pkg.nets:make", "inputs": [{"shape": [1, 3]}]}
    table = {
        "package": "pkg",
        "targets": ["cpu"],
        "models": {"m": {**model, "batch-buckets": [1, 2, 4]}, "n": model},
    }
    return make_plan(settings_from_table(table, {}), tmp_path)


class StandIn:
    """A worker that finishes after ``polls`` polls with every job of its task compiled (or raises)."""

    log: ClassVar[list[str]] = []

    def __init__(self, task: WorkerTask, polls: int, error: str | None = None) -> None:
        self.task, self.polls, self.error, self.killed = task, polls, error, False
        StandIn.log.append(f"start {self.label}")

    @property
    def label(self) -> str:
        return f"{self.task.mode} {','.join(job.stem for job in self.task.jobs) or self.task.model.name}"

    def done(self) -> bool:
        self.polls -= 1
        return self.polls <= 0

    def kill(self) -> None:
        self.killed = True
        StandIn.log.append(f"kill {self.label}")

    def result(self, known: Container[str] = ()) -> WorkerResult:
        if self.error:
            raise CompileError(self.error)
        records = {}
        for job in self.task.jobs:
            if job.stem not in known:
                bucket = {str(d): n for d, n in job.bucket}
                shapes = [[dict(job.bucket).get(0, 1), 2]]
                entry = ArtifactEntry(job.stem + ".pt", "0" * 64, 1, bucket=bucket, output_shapes=shapes)
                records[job.stem] = ArtifactRecord(entry, job.target, Origin.COMPILED, 0.1, [self.task.mode])
        first = self.task.jobs[0].stem if self.task.jobs else ""
        outputs = BucketOutputs(first, "T", [{"shape": [1, 2], "dtype": "float32"}]) if first else None
        return WorkerResult(artifacts=records, outputs=outputs)


def prepare_tasks(plan: BuildPlan) -> deque[WorkerTask]:
    return deque(WorkerTask(plan, model, "prepare", model.jobs) for model in plan.models)


def test_models_first_then_stealing_the_last_job_of_the_longest(plan: BuildPlan) -> None:
    StandIn.log = []
    polls = {("prepare", "m"): 6, ("prepare", "n"): 1, ("compile", "m"): 1}
    delivered: list[str] = []

    def start(task: WorkerTask) -> StandIn:
        return StandIn(task, polls[task.mode, task.model.name])

    pool = WorkerPool(2, start, lambda build, result, stems: delivered.extend(stems))
    pool.run(prepare_tasks(plan))
    assert StandIn.log[:3] == [
        "start prepare m.cpu.d0-1,m.cpu.d0-2,m.cpu.d0-4",
        "start prepare n.cpu",
        "start compile m.cpu.d0-4",  # n finished: its slot takes m's last job
    ]
    assert "start compile m.cpu.d0-2" in StandIn.log  # and then the next one from the end
    # every artifact is delivered once, by whoever finished it first; the prepare worker's copies of the
    # stolen jobs are dropped
    assert sorted(delivered) == ["m.cpu.d0-1", "m.cpu.d0-2", "m.cpu.d0-4", "n.cpu"]
    m = pool.results["m"]
    assert list(m.artifacts) == ["m.cpu.d0-1", "m.cpu.d0-2", "m.cpu.d0-4"]  # the plan's order
    assert m.artifacts["m.cpu.d0-4"].warnings == ["compile"] and m.warnings.count("prepare") == 1
    assert m.outputs.dims == [[0, -1]]  # the output's dim 0 follows the batch buckets


def test_the_prepare_worker_stops_second_workers_of_its_model(plan: BuildPlan) -> None:
    StandIn.log = []
    polls = {("prepare", "m"): 3, ("prepare", "n"): 1, ("compile", "m"): 50}
    pool = WorkerPool(2, lambda task: StandIn(task, polls[task.mode, task.model.name]))
    pool.run(prepare_tasks(plan))
    assert "kill compile m.cpu.d0-4" in StandIn.log  # it had every artifact first
    assert list(pool.results["m"].artifacts) == ["m.cpu.d0-1", "m.cpu.d0-2", "m.cpu.d0-4"]


def test_a_failure_stops_the_others_and_fails_the_build(plan: BuildPlan) -> None:
    StandIn.log = []
    started: list[StandIn] = []

    def start(task: WorkerTask) -> StandIn:
        failing = task.model.name == "n"
        started.append(StandIn(task, 1 if failing else 100, "model 'n': boom" if failing else None))
        return started[-1]

    with pytest.raises(CompileError, match="model 'n': boom"):
        WorkerPool(2, start).run(prepare_tasks(plan))
    assert [w.killed for w in started] == [True, False]  # m's worker is stopped; n's had ended
