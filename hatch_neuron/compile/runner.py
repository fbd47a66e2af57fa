"""Build-process side of compiling: worker processes, each with a timeout, several at once.

A worker (``python -m hatch_neuron.compile.worker``) handles one model: all of it (*prepare*: pre-flight
checks, then each job from the cache or compiled) or one compile job that the scheduler hands to a second
worker so the model finishes sooner. Its output goes to a file, not a pipe (a process the
factory left behind may hold a pipe open), and it runs in its own session so that killing it also ends
whatever the factory started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Container
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import NeuronSettings
from ..plan import BuildPlan, CompileJob, ModelPlan
from .info import TARGET_INFO
from .options import TargetOptions


class CompileError(RuntimeError):
    """Compiling a model failed; the message names the model and the cause."""


def target_options(settings: NeuronSettings, model: ModelPlan | None = None) -> TargetOptions:
    """What the targets read of the settings (for ``model``'s jobs, or for pre-flight without one)."""
    return TargetOptions(
        settings.compiler_args,
        settings.neuron_target,
        dynamic_batch=model is not None and model.settings.dynamic_batch and len(model.buckets()) == 1,
        inductor_device=settings.inductor_device,
    )


def job_request(model: ModelPlan, job: CompileJob, out_dir: Path, work_root: Path) -> dict[str, Any]:
    return {
        "target": job.target,
        "stem": job.stem,
        "bucket": [list(pair) for pair in job.bucket],
        "inputs": model.input_specs(job.bucket),
        "path": str(out_dir / (job.stem + TARGET_INFO[job.target].suffix)),
        "workdir": str(work_root / job.stem),
    }


def model_request(plan: BuildPlan, model: ModelPlan) -> dict[str, Any]:
    """The part of a worker request that describes the model (also what its direct cache key hashes)."""
    return {
        "model": model.name,
        "factory": model.settings.factory,
        "rtol": model.settings.rtol,
        "atol": model.settings.atol,
        "options": asdict(target_options(plan.settings, model)),
        "inputs": model.input_specs(),
        "batched": model.settings.dynamic_batch or model.settings.batch_buckets is not None,
    }


#: The folder this hatch_neuron is imported from: the worker must run the same one.
HATCH_NEURON_HOME = Path(__file__).resolve().parents[2]

#: Starts the worker module with :data:`HATCH_NEURON_HOME` on ``sys.path``. Added after start-up, not
#: through ``PYTHONPATH``: pip's isolated build environments set up ``sys.path`` in a ``sitecustomize`` that
#: refuses to run when its folders are on the path already, and the child inherits that set-up.
BOOTSTRAP = (
    "import runpy, sys; home = sys.argv.pop(1); "
    "sys.path.insert(0, home) if home not in sys.path else None; "
    "runpy.run_module('hatch_neuron.compile.worker', run_name='__main__', alter_sys=True)"
)


@dataclass
class WorkerTask:
    """One worker process to run: ``mode`` prepare (checks, then every job) or compile (``jobs``)."""

    plan: BuildPlan
    model: ModelPlan
    mode: str
    jobs: tuple[CompileJob, ...]
    check: str = "off"

    @property
    def label(self) -> str:
        if self.mode == "prepare":
            return f"{self.model.name} [checks]"
        job = self.jobs[0]
        bucket = " ".join(f"dim{d}={n}" for d, n in job.bucket)
        return f"{self.model.name} [{job.target}{' ' + bucket if bucket else ''}]"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Worker:
    """A running worker process for one task.

    It writes its artifacts into a folder of its own; :meth:`result` moves them into ``out_dir``. So a
    worker stopped half-way, or a second worker that compiled the same job, never touches a file that
    another worker's result describes.
    """

    def __init__(self, task: WorkerTask, out_dir: Path, request_extra: dict[str, Any]) -> None:
        self.task = task
        self.out_dir = out_dir
        settings = task.plan.settings
        self._tmp = tempfile.TemporaryDirectory(prefix=f"hatch-neuron-{task.model.name}-")
        tmp = Path(self._tmp.name)
        self.result_file = tmp / "result.json"
        self.log_file = tmp / "output.log"
        self._own_out = tmp / "out"
        self._own_out.mkdir()
        request = {
            **model_request(task.plan, task.model),
            **request_extra,
            "mode": task.mode,
            "check": task.check,
            "tmp": str(tmp),
            "sys_path": [str(p) for p in task.plan.import_paths],
            "jobs": [job_request(task.model, job, self._own_out, tmp / "work") for job in task.jobs],
        }
        (tmp / "request.json").write_text(json.dumps(request))
        command = [sys.executable, "-c", BOOTSTRAP, str(HATCH_NEURON_HOME), str(tmp / "request.json")]
        self.started = time.monotonic()
        self.deadline = self.started + settings.timeout
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [*command, str(self.result_file)],
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def done(self) -> bool:
        return self.process.poll() is not None or time.monotonic() > self.deadline

    def kill(self) -> None:
        """End the worker and everything it started (its process group), and remove its folder."""
        self._end_group()
        self._tmp.cleanup()

    def result(self, known: Container[str] = ()) -> dict[str, Any]:
        """The worker's result record, its artifacts moved into ``out_dir``; :class:`CompileError` when it
        failed, died or timed out. Artifacts whose stem is in ``known`` (another worker delivered them)
        are left out of the record and not moved."""
        timed_out = self.process.poll() is None
        self._end_group()
        output = self.log_file.read_text(errors="replace")
        name, timeout = self.task.model.name, self.task.plan.settings.timeout
        try:
            if timed_out:
                raise CompileError(
                    f"model {name!r}: {self.task.label} took longer than {timeout:g} s and was stopped "
                    "(raise tool.neuron.timeout or HATCH_NEURON_TIMEOUT if the compile is just slow). "
                    f"Last output:\n{_tail(output)}"
                )
            if not self.result_file.exists():
                raise CompileError(
                    f"model {name!r}: the compile process died (exit code {self.process.returncode}) "
                    "before reporting a result; the factory or the compiler crashed. "
                    f"Last output:\n{_tail(output)}"
                )
            result = json.loads(self.result_file.read_text())
            if not result["ok"]:
                detail = f"\n{result['traceback']}" if "traceback" in result else ""
                raise CompileError(f"model {name!r}: {result['error']}{detail}")
            self._deliver(result, known)
        finally:
            self._tmp.cleanup()
        result["seconds"] = time.monotonic() - self.started
        return result

    def _deliver(self, result: dict[str, Any], known: Container[str]) -> None:
        artifacts = result.get("artifacts", {})
        for stem in [s for s in artifacts if s in known]:
            del artifacts[stem]
        for entry in artifacts.values():
            for name in [entry["file"], *(c["file"] for c in entry.get("companions", {}).values())]:
                shutil.move(self._own_out / name, self.out_dir / name)

    def _end_group(self) -> None:
        """End whatever the worker left running in its session (also after a normal exit)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def run_one(task: WorkerTask, out_dir: Path, request_extra: dict[str, Any]) -> dict[str, Any]:
    """Run one task to completion (Ctrl-C or an error here kills the worker)."""
    worker = Worker(task, out_dir, request_extra)
    try:
        while not worker.done():
            time.sleep(0.02)
    except BaseException:
        worker.kill()
        raise
    return worker.result()
