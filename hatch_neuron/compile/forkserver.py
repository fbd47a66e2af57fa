"""Preloaded worker processes: one server process imports torch (and, as the build goes on, the libraries
the models' workers imported from the Python installation), and every worker is forked from it.

Why: a worker started from a new interpreter spends ~2.6 s importing torch and, for a Hugging Face model,
~4.5 s more in transformers, before it runs a line of the model's code; a build of 16 small models paid
that 16 times. A forked worker starts with those modules imported, and nothing else: the server never
imports a project's own modules (only modules whose files are in the Python installation, the ones the
direct cache key covers by version, see :class:`~hatch_neuron.cache.deps.ReadTracker`), never calls a
factory and never runs a torch operation, so each worker starts from the same clean state and no state of
one model's code reaches another's. Modules that start runtimes at import (:data:`NOT_PRELOADED`) are
left to the workers.

Isolation is the same as for a fresh worker: each forked worker calls ``setsid`` (its own session and
process group, ended with ``killpg``), writes to its own log, and sets its token variable before running
anything, so processes it starts by ``exec`` carry it (:func:`~hatch_neuron.compile.runner.
end_marked_processes`). A process it forks without ``exec`` and that leaves its session carries only the
server's token: such processes are ended when the server is closed, at the end of the build.

The server speaks JSON lines: on its stdin ``{"start": {...}}`` and ``{"preload": [names]}``, on its
stdout ``{"started": id, "pid": pid}`` and ``{"exited": pid, "status": code}``. A server that dies or
cannot start makes the build go on with fresh workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

#: Top-level packages never imported by the server: they start runtimes or threads at import time, which a
#: forked process does not inherit in a usable state.
NOT_PRELOADED = frozenset({"torch_xla", "torch_neuronx", "neuronxcc", "libneuronxla", "jax", "tensorflow"})

#: Seconds the server may take to import torch and the worker module before fresh workers are used.
START_TIMEOUT = 120.0


class ServerGone(RuntimeError):
    """The fork server died or never started."""


class ForkedProcess:
    """A worker forked by the server, with the part of :class:`subprocess.Popen`'s interface the build
    uses (``pid``, ``returncode``, ``poll``, ``wait``)."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_status(self.pid)
        return self.returncode

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.returncode is None:  # the server could not report it (it died): the pid is not ours now
            self.returncode = -signal.SIGKILL
        return self.returncode


class ForkServer:
    """The build side of the server: start it, fork workers from it, tell it what to preload, close it."""

    def __init__(self, home: Path) -> None:
        from .runner import WORKER_TOKEN_PREFIX  # runner imports this module

        self.token_variable = WORKER_TOKEN_PREFIX + uuid.uuid4().hex
        env = {**os.environ, self.token_variable: str(os.getpid())}
        self._folder = tempfile.TemporaryDirectory(prefix="hatch-neuron-fork-server-")
        self.log_file = Path(self._folder.name) / "output.log"
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER_BOOTSTRAP, str(home)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
                start_new_session=True,
            )
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._lock = threading.Lock()
        self._alive = True
        self._ready = threading.Event()
        self._next_id = 0
        self.preloaded: set[str] = set()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if "exited" in message:
                with self._lock:
                    self._exits[message["exited"]] = message["status"]
            elif "ready" in message:
                self._ready.set()
            else:
                self._replies.put(message)
        self._alive = False
        self._ready.set()
        self._replies.put({})

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            self._alive = False
            raise ServerGone(str(exc)) from None

    def start(self, request: Path, result: Path, log: Path, cwd: Path, token_variable: str) -> ForkedProcess:
        """Fork a worker running ``worker.main([request, result])`` in ``cwd``, output to ``log``."""
        if not self._ready.wait(START_TIMEOUT) or not self._alive:
            self._give_up()
            raise ServerGone("the fork server did not start")
        self._next_id += 1
        start = {
            "id": self._next_id,
            "argv": [str(request), str(result)],
            "log": str(log),
            "cwd": str(cwd),
            "env": {token_variable: str(os.getpid())},
        }
        self._send({"start": start})
        try:
            reply = self._replies.get(timeout=START_TIMEOUT)
        except queue.Empty:
            reply = {}
        if reply.get("started") != self._next_id:
            self._give_up()
            raise ServerGone("the fork server stopped answering")
        return ForkedProcess(self, reply["pid"])

    def _give_up(self) -> None:
        """Use the server no more (fresh workers from now on); end it, so that it forks nothing later."""
        self._alive = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def preload(self, modules: list[str]) -> None:
        """Have the server import ``modules`` (best effort: one that fails to import is skipped)."""
        fresh = sorted(set(modules) - self.preloaded)
        if fresh and self._alive:
            self.preloaded.update(fresh)
            with contextlib.suppress(ServerGone):
                self._send({"preload": fresh})

    def exit_status(self, pid: int) -> int | None:
        with self._lock:
            if pid in self._exits:
                return self._exits[pid]
        if not self._alive and not _exists(pid):
            return -signal.SIGKILL  # its parent is gone, so is it, and nobody can say how it ended
        return None

    def close(self) -> None:
        """Stop the server and end whatever its workers left behind."""
        from .runner import end_marked_processes

        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        end_marked_processes(self.token_variable)
        self._folder.cleanup()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def installation_modules(before: set[str]) -> list[str]:
    """Modules imported since ``before`` whose files are in the Python installation (not a project's)."""
    from ..cache.deps import installation_prefixes

    prefixes = installation_prefixes()
    found = []
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if not file or name.partition(".")[0] in NOT_PRELOADED or name == "__main__":
            continue
        if os.path.realpath(file).startswith(prefixes):
            found.append(name)
    return sorted(found)


def factory_imports(factories: list[str], import_paths: list[Path], limit: int = 64) -> list[str]:
    """What the server can import before any worker runs: the modules (``name``, or ``name:attribute`` for
    ``from name import attribute``, which also loads lazily exported submodules such as transformers')
    that the factories' modules import, read from their source without running it, following the
    project's own modules (up to ``limit`` files), and kept only when they come from the Python
    installation. A module the scan misses is learned from the first worker that imports it."""
    from importlib.machinery import PathFinder

    from ..cache.deps import installation_prefixes

    search = [str(p) for p in import_paths]
    prefixes = installation_prefixes()
    hints: dict[str, None] = {}
    todo = [factory.partition(":")[0] for factory in factories]
    seen: set[str] = set()
    while todo and len(seen) < limit:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = _project_source(name, search)
        if source is None:
            continue
        for imported, attributes in _imports(source, name):
            top = imported.partition(".")[0]
            if top in NOT_PRELOADED:
                continue
            if _project_source(top, search) is not None:  # the project's: read it too (and `from . import x`)
                todo += [imported, *(f"{imported}.{a}" for a in attributes)]
                continue
            spec = PathFinder.find_spec(top, [*search, *sys.path])
            origin = spec.origin if spec is not None else None
            if origin and os.path.realpath(origin).startswith(prefixes):
                hints[imported] = None
                hints.update({f"{imported}:{a}": None for a in attributes})
    return list(hints)


def _project_source(name: str, search: list[str]) -> Path | None:
    """The file of module ``name`` under the project's import folders, found without importing it."""
    parts = name.split(".")
    for base in search:
        stem = Path(base, *parts)
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _imports(source: Path, module: str) -> list[tuple[str, list[str]]]:
    import ast

    try:
        tree = ast.parse(source.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if base:
                found.append((base, [a.name for a in node.names if a.name != "*"]))
    return found


# -- the server's side -------------------------------------------------------------------------------------

SERVER_BOOTSTRAP = (
    "import sys; home = sys.argv.pop(1); "
    "sys.path.insert(0, home) if home not in sys.path else None; "
    "from hatch_neuron.compile.forkserver import serve; serve()"
)


def serve() -> None:
    from . import worker

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    commands = os.dup(0)
    os.dup2(2, 1)  # what the server prints goes to its log
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    replies.write('{"ready": true}\n')
    selector = selectors.DefaultSelector()
    selector.register(commands, selectors.EVENT_READ)
    children: set[int] = set()
    pending = b""  # read unbuffered: a line left in a file object's buffer would wait for the next select
    while True:
        for pid, status in _reaped(children):
            replies.write(json.dumps({"exited": pid, "status": status}) + "\n")
        if b"\n" not in pending:
            if not selector.select(timeout=0.02):
                continue
            chunk = os.read(commands, 1 << 16)
            if not chunk:
                return
            pending += chunk
            continue
        line, _, pending = pending.partition(b"\n")
        message = json.loads(line)
        if "preload" in message:
            _preload(message["preload"])
            continue
        start = message["start"]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(start, worker.main, [replies.fileno(), commands])
        children.add(pid)
        replies.write(json.dumps({"started": start["id"], "pid": pid}) + "\n")


def _reaped(children: set[int]) -> list[tuple[int, int]]:
    done = []
    for pid in list(children):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            children.discard(pid)
            done.append((pid, os.waitstatus_to_exitcode(status)))
    return done


def _preload(modules: list[str]) -> None:
    import importlib

    for hint in modules:
        name, _, attribute = hint.partition(":")
        with contextlib.suppress(BaseException):
            module = importlib.import_module(name)
            if attribute:
                getattr(module, attribute)


def _run_child(start: dict[str, Any], main: Any, private_fds: list[int]) -> None:
    code = 1
    try:
        os.setsid()
        for fd in private_fds:
            os.close(fd)
        log = os.open(start["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(start["cwd"])
        os.environ.update(start["env"])
        code = main(start["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)
