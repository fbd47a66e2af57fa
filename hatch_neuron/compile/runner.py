"""Build-process side of compiling: worker processes, each with a timeout, several at once.

A worker (``python -m hatch_neuron.compile.worker``) handles one model: all of it (*prepare*: pre-flight
checks, then each job from the cache or compiled) or one compile job that the scheduler hands to a second
worker so the model finishes sooner. Its output goes to a file, not a pipe (a process the
factory left behind may hold a pipe open; only its tail is read back), and it runs in its own session so
that killing it also ends whatever the factory started; a per-worker token in its environment finds what
left that session (:func:`end_marked_processes`).
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
import uuid
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import NeuronSettings
from ..plan import BuildPlan, CompileJob, ModelPlan, job_label
from ..targets import REGISTRY, options_type
from .contracts import BuildContext, JobRequest, ModelRequest, WorkerRequest, WorkerResult
from .forkserver import ForkedProcess, ForkServer, ServerGone


class CompileError(RuntimeError):
    """Compiling a model failed; the message names the model and the cause."""


def target_options(target: str, settings: NeuronSettings, model: ModelPlan | None = None) -> Any:
    """What ``target`` reads of the settings (for ``model``'s jobs, or for pre-flight without one)."""
    return options_type(target).from_settings(settings, model)


def job_request(model: ModelPlan, job: CompileJob, out_dir: Path, work_root: Path) -> JobRequest:
    return JobRequest(
        job.target,
        job.stem,
        job.bucket,
        model.input_specs(job.bucket),
        str(out_dir / (job.stem + REGISTRY[job.target].suffix)),
        str(work_root / job.stem),
    )


def model_request(plan: BuildPlan, model: ModelPlan) -> ModelRequest:
    """The part of a worker request that describes the model (also what its direct cache key hashes)."""
    return ModelRequest(
        model.name,
        model.factory,
        model.settings.rtol,
        model.settings.atol,
        {target: target_options(target, plan.settings, model) for target in model.targets},
        model.input_specs(),
        model.settings.dynamic_batch or model.settings.batch_buckets is not None,
        model.factory_args,
    )


#: The folder this hatch_neuron is imported from: the worker must run the same one.
HATCH_NEURON_HOME = Path(__file__).resolve().parents[2]

#: Starts the worker module with :data:`HATCH_NEURON_HOME` on ``sys.path``. Added after start-up, not
#: through ``PYTHONPATH``: pip's isolated build environments set up ``sys.path`` in a ``sitecustomize`` that
#: refuses to run when its folders are on the path already, and the child inherits that set-up. The module
#: is imported by its name, not run as ``__main__``: the classes it traces are named in the TorchScript
#: graph, and so in the artifact key, which must not depend on how the worker started.
BOOTSTRAP = (
    "import sys; home = sys.argv.pop(1); "
    "sys.path.insert(0, home) if home not in sys.path else None; "
    "from hatch_neuron.compile.worker import main; sys.exit(main(sys.argv[1:]))"
)


def worker_command(request_file: Path, result_file: Path) -> list[str]:
    """The command line of a fresh worker interpreter for the request at ``request_file``."""
    return [sys.executable, "-c", BOOTSTRAP, str(HATCH_NEURON_HOME), str(request_file), str(result_file)]


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
        return job_label(self.model.name, self.jobs[0].target, self.jobs[0].bucket)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


#: How much of the end of a worker's log is read back for an error message: a factory may print gigabytes.
LOG_TAIL_BYTES = 64 * 1024


def read_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of the file at ``path``, decoded (invalid bytes replaced), without the
    partial first line when the file was longer; empty when the file is missing."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - limit))
            data = file.read(limit)
    except FileNotFoundError:
        return ""
    if size > limit and b"\n" in data:
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", errors="replace")


#: Prefix of the environment variable that marks a worker and everything it starts (the rest of its name is
#: the worker's token; its value is the build process's pid, for whoever wonders where it comes from).
WORKER_TOKEN_PREFIX = "HATCH_NEURON_WORKER_"


def end_marked_processes(variable: str, *, rounds: int = 50) -> list[int]:
    """SIGKILL every process whose environment holds ``variable``; return their pids.

    Why this, on top of killing the worker's process group: a factory may start helpers in a new session
    (``subprocess.Popen(..., start_new_session=True)``, a daemon's double fork and ``setsid``), which
    leaves the worker's group and, once the worker exits, its parentage (they are reparented to init), so
    neither ``killpg`` nor walking the process tree finds them. Every process inherits its parent's
    environment unless it is started with a new one, so a variable that only this worker's environment
    has (its name holds a fresh token) marks the worker and its descendants, however they detached, and
    nothing else: workers running at the same time have other tokens, and a worker started by a
    build inside a factory adds its own token to the ones it inherited. Alternatives not taken: a child
    subreaper (``PR_SET_CHILD_SUBREAPER``) would have to be the build process, which is the frontend's
    process and not ours to change, and still needs a scan; cgroups need privileges.

    The scan reads ``/proc/<pid>/environ`` (the environment a process started with); it repeats until a
    round finds nothing new, so that children forked while their parent was being killed are found too.
    Not found: a descendant started with a cleared environment, or one that cannot be read (another user,
    not dumpable), which this process may not be able to kill anyway. Where ``/proc`` is missing (not
    Linux) this finds nothing, and the process group is all that is ended. Each pid is opened as a pidfd
    before its environment is read where the platform has them, so a pid reused in between is never
    signalled.
    """
    needle = variable.encode() + b"="
    signalled: list[int] = []
    for _ in range(rounds):
        found = [pid for pid in _marked(needle) if pid != os.getpid()]
        fresh = [pid for pid in found if pid not in signalled]
        if not found:
            break
        for pid in fresh:
            _kill_if_marked(pid, needle)
            signalled.append(pid)
        if not fresh:  # only processes being killed are left: give them a moment to become zombies
            time.sleep(0.01)
    return signalled


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return any(item.startswith(needle) for item in file.read().split(b"\0"))
    except OSError:  # gone, a kernel thread, or not ours to read
        return False


def _marked(needle: bytes) -> list[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [int(name) for name in names if name.isdigit() and _environ_has(int(name), needle)]


def _kill_if_marked(pid: int, needle: bytes) -> None:
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open is None or send is None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        return
    try:
        fd = pidfd_open(pid)
    except OSError:  # gone already (or pidfds not supported by this kernel)
        with contextlib.suppress(OSError):
            if _environ_has(pid, needle):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        if _environ_has(pid, needle):  # still the process that was found, and now pinned by the pidfd
            with contextlib.suppress(OSError):
                send(fd, signal.SIGKILL)
    finally:
        os.close(fd)


class Worker:
    """A running worker process for one task.

    It writes its artifacts into a folder of its own; :meth:`result` moves them into ``out_dir``. So a
    worker stopped half-way, or a second worker that compiled the same job, never touches a file that
    another worker's result describes.
    """

    def __init__(
        self,
        task: WorkerTask,
        out_dir: Path,
        context: BuildContext,
        server: ForkServer | None = None,
    ) -> None:
        self.task = task
        self.out_dir = out_dir
        self._tmp = tempfile.TemporaryDirectory(prefix=f"hatch-neuron-{task.model.name}-")
        tmp = Path(self._tmp.name)
        self.result_file = tmp / "result.json"
        self.log_file = tmp / "output.log"
        self._own_out = tmp / "out"
        self._own_out.mkdir()
        request = WorkerRequest(
            model_request(task.plan, task.model),
            task.mode,
            task.check,
            [job_request(task.model, job, self._own_out, tmp / "work") for job in task.jobs],
            context,
            str(tmp),
            [str(p) for p in task.plan.import_paths],
        )
        (tmp / "request.json").write_text(json.dumps(request.to_json()))
        self.started = time.monotonic()
        self.deadline = self.started + task.model.timeout
        self.token_variable = WORKER_TOKEN_PREFIX + uuid.uuid4().hex
        self.log_file.touch()
        self.process: subprocess.Popen[bytes] | ForkedProcess
        if server is not None:
            try:
                self.process = server.start(
                    tmp / "request.json", self.result_file, self.log_file, tmp, self.token_variable
                )
                return
            except ServerGone:
                pass  # a fresh interpreter then
        env = {**os.environ, self.token_variable: str(os.getpid())}
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                worker_command(tmp / "request.json", self.result_file),
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def done(self) -> bool:
        return self.process.poll() is not None or time.monotonic() > self.deadline

    def kill(self) -> None:
        """End the worker and everything it started (its process group and every process carrying its
        token), and remove its folder."""
        self._end_group()
        self._tmp.cleanup()

    def result(self, known: Container[str] = ()) -> WorkerResult:
        """The worker's result record, its artifacts moved into ``out_dir``; :class:`CompileError` when it
        failed, died or timed out. Artifacts whose stem is in ``known`` (another worker delivered them)
        are left out of the record and not moved."""
        timed_out = self.process.poll() is None
        self._end_group()
        output = read_tail(self.log_file)
        name, timeout = self.task.model.name, self.task.model.timeout
        try:
            if timed_out:
                raise CompileError(
                    f"model {name!r}: {self.task.label} took longer than {timeout:g} s and was stopped "
                    f"(raise timeout in [tool.neuron] or [tool.neuron.models.{name}], or "
                    "HATCH_NEURON_TIMEOUT, if the compile is just slow). "
                    f"Last output:\n{_tail(output)}"
                )
            if not self.result_file.exists():
                raise CompileError(
                    f"model {name!r}: the compile process died (exit code {self.process.returncode}) "
                    "before reporting a result; the factory or the compiler crashed. "
                    f"Last output:\n{_tail(output)}"
                )
            result = WorkerResult.from_json(json.loads(self.result_file.read_text()))
            if not result.ok:
                detail = f"\n{result.traceback}" if result.traceback else ""
                raise CompileError(f"model {name!r}: {result.error}{detail}")
            self._deliver(result, known)
        finally:
            self._tmp.cleanup()
        return result

    def _deliver(self, result: WorkerResult, known: Container[str]) -> None:
        for stem in [s for s in result.artifacts if s in known]:
            del result.artifacts[stem]
        for record in result.artifacts.values():
            for part in record.entry.files():
                shutil.move(self._own_out / part.file, self.out_dir / part.file)

    def _end_group(self) -> None:
        """End whatever the worker left running, in its session or out of it (also after a normal exit)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        end_marked_processes(self.token_variable)


def run_one(task: WorkerTask, out_dir: Path, context: BuildContext) -> WorkerResult:
    """Run one task to completion (Ctrl-C or an error here kills the worker)."""
    worker = Worker(task, out_dir, context)
    try:
        while not worker.done():
            time.sleep(0.02)
    except BaseException:
        worker.kill()
        raise
    return worker.result()
