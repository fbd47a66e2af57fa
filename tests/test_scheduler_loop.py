"""The scheduler's worker loop, in-process with stand-in workers (no model is compiled)."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest

from hatch_neuron.compile import scheduler as scheduler_module
from hatch_neuron.compile.pool import WorkerPool
from hatch_neuron.compile.scheduler import threads_per_worker


class FinishedWorker:
    def __init__(self, task: SimpleNamespace) -> None:
        self.task = task
        self.killed = False

    def done(self) -> bool:
        return True

    def kill(self) -> None:
        self.killed = True


def test_worker_stopped_by_another_that_finished_with_it_is_not_handled_twice() -> None:
    """Two workers finish in the same poll and the first one's handling stops the second (a failed check
    stops other models' second workers): the second is neither removed again nor reported."""
    handled: list[str] = []

    class Pool(WorkerPool):
        def finished(self, worker, running):
            handled.append(worker.task.name)
            for other in list(running):
                other.kill()
                running.remove(other)

        def steal(self, running):
            return None

    pool = Pool(2, FinishedWorker)
    tasks = [SimpleNamespace(name=n, check="error", model=SimpleNamespace(name=n, jobs=())) for n in "ab"]
    pool.run(deque(tasks))
    assert handled == ["a"]


def test_workers_share_the_cpus_of_the_jobs_that_can_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One compile job gets every CPU (as an ad-hoc script would); more jobs than ``jobs`` split them."""
    monkeypatch.setattr(scheduler_module, "usable_cpus", lambda: 8)
    tasks = [SimpleNamespace(jobs=("a",)), SimpleNamespace(jobs=("b", "c", "d"))]
    assert threads_per_worker(4, tasks[:1]) == 8
    assert threads_per_worker(4, tasks[1:]) == 2  # 3 jobs at once: 8 // 3
    assert threads_per_worker(2, tasks) == 4
    assert threads_per_worker(4, [SimpleNamespace(jobs=())]) == 8  # checks only
