"""``executor = "ray"``: a build's compile jobs as tasks on a Ray cluster, results into the build's cache.

A model's jobs (the model at one bucket for one target each) are dealt into as many Ray tasks as the
cluster has CPUs, at most one per job. On its node a task runs the same worker as a local build (a fresh
interpreter, ``mode = "compile"``) with the node's own compile cache (``HATCH_NEURON_CACHE_DIR`` of the
node, else its user cache folder) and the build's remote cache, and
returns those cache entries' files. The build process checks each file against the sha256 in the entry and
stores the entry in its own cache; the local workers then take every artifact from there like any cached
one (sha256 again, loaded and compared with eager) before it enters the wheel. So a wheel built on a
cluster is the same as one built here, and the cluster is only ever a faster way to fill the cache.

A task that fails, or whose Ray worker or node dies, is retried once on another node where the cluster has
one; a second failure fails the build with the node's error. The cluster is probed with a plain TCP
connection first, because ``ray.init`` on a wrong address waits for minutes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import LocalCache
from ..cache.store import ENTRY
from ..config import NeuronSettings
from ..plan import BuildPlan, CompileJob, ModelPlan, job_label
from .contracts import BuildContext, Origin, WorkerRequest, WorkerResult
from .runner import HATCH_NEURON_HOME, CompileError, job_request, model_request, read_tail, worker_command

RAY_MISSING = "executor = 'ray' needs ray in the build environment: pip install 'hatch-neuron[ray]'"
#: Not uploaded with the project (``ray-sources = "ship"``): what a build never reads.
SHIP_EXCLUDES = [".git", ".venv", "venv", ".tox", ".nox", "build", "dist", "__pycache__", "*.whl", ".*_cache"]
#: The words of the build log for where a node got an artifact.
_HOW = {Origin.COMPILED: "compiled", Origin.LOCAL_CACHE: "from its cache", Origin.REMOTE_CACHE: "downloaded"}


class ClusterUnavailable(CompileError):
    """The Ray cluster cannot be reached (or ray is missing): ``executor-fallback`` decides what follows."""


@dataclass
class NodeOutcome:
    """What one task sends back from its node."""

    node_id: str
    host: str
    ok: bool
    error: str = ""
    result: dict[str, Any] | None = None
    #: Artifact key -> the cache entry's files (``entry.json`` included) by name.
    entries: dict[str, dict[str, bytes]] = field(default_factory=dict)
    seconds: float = 0.0


def cluster_address(settings: NeuronSettings) -> str:
    address = settings.ray_address or os.environ.get("RAY_ADDRESS", "").strip()
    if not address:
        raise ClusterUnavailable(
            "executor = 'ray' needs the cluster's address: set ray-address in [tool.neuron] or RAY_ADDRESS "
            "(host:port of the head node, as 'ray start --head' prints)"
        )
    return address


def probe(address: str, timeout: float) -> None:
    """Raise :class:`ClusterUnavailable` unless ``host:port`` accepts a TCP connection within ``timeout``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"ray-address {address!r} is not host:port (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnavailable(
            f"the Ray cluster at {address} cannot be reached within {timeout:g} s ({exc}); start it with "
            "'ray start --head', or check ray-address / RAY_ADDRESS and the network"
        ) from None


def runtime_env(settings: NeuronSettings, root: Path) -> dict[str, Any]:
    """The tasks' Ray runtime environment: this hatch-neuron always, the project too when shipped."""
    env: dict[str, Any] = {"py_modules": [str(HATCH_NEURON_HOME / "hatch_neuron")]}
    if settings.ray_sources == "ship":
        env.update(working_dir=str(root), excludes=SHIP_EXCLUDES)
    return env


def connect(settings: NeuronSettings, root: Path) -> Any:
    """``ray``, connected to the build's cluster; :class:`ClusterUnavailable` within the connect timeout."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(RAY_MISSING) from None
    address, timeout = cluster_address(settings), settings.ray_connect_timeout
    probe(address, timeout)
    # the project's own .gitignore must not drop checkpoints or generated sources from the upload
    os.environ.setdefault("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "1")
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(
                address=address,
                runtime_env=runtime_env(settings, root),
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=False,
            )
        except BaseException as exc:  # reported below, in the build's thread
            failure.append(exc)

    thread = threading.Thread(target=init, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or failure:
        why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else f"no answer in {timeout:g} s"
        raise ClusterUnavailable(f"could not connect to the Ray cluster at {address}: {why}")
    return ray


def node_request(
    request: WorkerRequest, driver_root: str, node_root: str, tmp: str, cache: str
) -> WorkerRequest:
    """The build's request as it runs on a node: the node's folders for the worker, its artifacts and its
    cache, and the project's paths (import folders, checkpoint folders) moved from ``driver_root`` to
    ``node_root``."""

    def moved(value: Any) -> Any:
        if isinstance(value, str) and (value == driver_root or value.startswith(driver_root + os.sep)):
            return node_root + value[len(driver_root) :]
        return value

    jobs = [
        dataclasses.replace(
            job,
            path=os.path.join(tmp, "out", os.path.basename(job.path)),
            workdir=os.path.join(tmp, "work", job.stem),
        )
        for job in request.jobs
    ]
    model = dataclasses.replace(
        request.model, factory_args={k: moved(v) for k, v in request.model.factory_args.items()}
    )
    build = dataclasses.replace(request.build, cache_dir=cache, track_reads=False)
    sys_path = [moved(p) for p in request.sys_path]
    return dataclasses.replace(request, model=model, jobs=jobs, build=build, tmp=tmp, sys_path=sys_path)


def _die_with_parent() -> None:
    """Make the worker end with the Ray worker that started it (a killed task leaves no compile behind)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def compile_on_node(
    request_json: dict[str, Any], driver_root: str, shipped: bool, timeout: float
) -> NodeOutcome:
    """The Ray task: run one worker on this node and return its result and its cache entries' files."""
    import ray

    from ..cache.commands import default_cache_dir
    from .scheduler import build_versions

    context = ray.get_runtime_context()
    outcome = NodeOutcome(context.get_node_id(), ray.util.get_node_ip_address(), ok=False)
    start = time.perf_counter()
    versions = build_versions()
    wanted = request_json["build"]["versions"]
    if versions != wanted:
        outcome.error = (
            f"this node builds with {versions}, the build with {wanted}: install the same versions"
        )
        return outcome
    cache = default_cache_dir()
    with tempfile.TemporaryDirectory(prefix="hatch-neuron-ray-") as tmp:
        root = os.getcwd() if shipped else driver_root
        request = node_request(WorkerRequest.from_json(request_json), driver_root, root, tmp, str(cache))
        for folder in ("out", "work"):
            os.makedirs(os.path.join(tmp, folder))
        request_file, result_file, log_file = (
            Path(tmp, name) for name in ("request.json", "result.json", "log")
        )
        request_file.write_text(json.dumps(request.to_json()))
        try:
            with log_file.open("w") as log:
                process = subprocess.run(
                    worker_command(request_file, result_file),
                    cwd=tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    preexec_fn=_die_with_parent,
                )
        except subprocess.TimeoutExpired:
            outcome.error = f"took longer than {timeout:g} s and was stopped:\n{read_tail(log_file)[-4000:]}"
            return outcome
        if not result_file.exists():
            outcome.error = (
                f"the worker died (exit code {process.returncode}):\n{read_tail(log_file)[-4000:]}"
            )
            return outcome
        result = WorkerResult.from_json(json.loads(result_file.read_text()))
        if not result.ok:
            outcome.error = result.error + (f"\n{result.traceback}" if result.traceback else "")
            return outcome
        local = LocalCache(cache)
        for key in result.keys.values():
            folder = local.entry_dir(key)
            if not (folder / ENTRY).exists():
                outcome.error = f"the node's cache ({cache}) holds no entry {key[:16]} after compiling it"
                return outcome
            outcome.entries[key] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        outcome.ok, outcome.result = True, result.to_json()
    outcome.seconds = time.perf_counter() - start
    return outcome


def import_entries(cache: LocalCache, entries: dict[str, dict[str, bytes]], host: str) -> None:
    """Store entries that a node sent into ``cache``, each file checked against the entry's sha256."""
    for key, files in entries.items():
        meta = json.loads(files[ENTRY])
        if meta.get("key") != key or not isinstance(meta.get("files"), dict):
            raise CompileError(f"the cache entry {key[:16]} sent by node {host} belongs to another key")
        with tempfile.TemporaryDirectory(prefix="hatch-neuron-ray-") as tmp:
            paths = {}
            for name, facts in meta["files"].items():
                data = files.get(name)
                if data is None or hashlib.sha256(data).hexdigest() != facts.get("sha256"):
                    raise CompileError(
                        f"the cache entry {key[:16]} sent by node {host}: {name} is missing or does not "
                        "match its sha256"
                    )
                paths[name] = Path(tmp, name)
                paths[name].write_bytes(data)
            body = {k: v for k, v in meta.items() if k not in ("key", "files", "stored")}
            cache.store(key, paths, body)


@dataclass
class _Submitted:
    model: ModelPlan
    jobs: tuple[CompileJob, ...]
    request: dict[str, Any]
    attempt: int = 0

    @property
    def label(self) -> str:
        first = job_label(self.model.name, self.jobs[0].target, self.jobs[0].bucket)
        return first if len(self.jobs) == 1 else f"{first} and {len(self.jobs) - 1} more"


def job_groups(model: ModelPlan, slots: int) -> list[tuple[CompileJob, ...]]:
    """``model``'s jobs dealt into at most ``slots`` tasks: each task starts an interpreter, imports torch
    and loads the model once (seconds), so a model gets no more tasks than the cluster runs at once."""
    count = max(1, min(len(model.jobs), slots))
    return [tuple(model.jobs[i::count]) for i in range(count)]


class ClusterBuild:
    """One build's jobs on the cluster: submitted at once, collected as they finish, retried once."""

    def __init__(self, ray: Any, settings: NeuronSettings, root: Path, log: Callable[[str], None]) -> None:
        self.ray, self.settings, self.root, self.log = ray, settings, root, log
        self.task = ray.remote(max_retries=0, num_cpus=1)(compile_on_node)
        self.pending: dict[Any, _Submitted] = {}
        self.hosts: set[str] = set()

    def submit(self, item: _Submitted, avoid: str | None = None) -> None:
        options: dict[str, Any] = {}
        if avoid is not None:
            others = [n["NodeID"] for n in self.ray.nodes() if n.get("Alive") and n["NodeID"] != avoid]
            if others:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(others[0], soft=True)
        elif item.attempt:
            options["scheduling_strategy"] = "SPREAD"
        shipped = self.settings.ray_sources == "ship"
        ref = self.task.options(**options).remote(item.request, str(self.root), shipped, item.model.timeout)
        self.pending[ref] = item

    def collect(self, cache: LocalCache) -> None:
        """Wait for every task; a cluster that finishes none for twice the longest timeout (plus a minute)
        has lost its nodes or its resources, and fails the build instead of hanging it."""
        patience = max(i.model.timeout for i in self.pending.values()) * 2 + 60
        deadline = time.monotonic() + patience
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=5.0)
            if not ready:
                if time.monotonic() > deadline:
                    raise CompileError(
                        f"the Ray cluster finished none of {len(self.pending)} task(s) in {patience:g} s "
                        "(no node with a free CPU, or the nodes are gone: see 'ray status')"
                    )
                continue
            deadline = time.monotonic() + patience
            item = self.pending.pop(ready[0])
            self._finished(item, ready[0], cache)

    def _finished(self, item: _Submitted, ref: Any, cache: LocalCache) -> None:
        label = item.label
        try:
            outcome: NodeOutcome = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            outcome = NodeOutcome(
                "", "?", ok=False, error=f"the task died: {str(exc).strip().splitlines()[0]}"
            )
        if outcome.ok and outcome.result is not None:
            import_entries(cache, outcome.entries, outcome.host)
            self.hosts.add(outcome.host)
            records = WorkerResult.from_json(outcome.result).artifacts.values()
            for record in records:
                name = job_label(item.model.name, record.target, record.entry.bucket.items())
                how = f"{_HOW[record.origin]} on ray node {outcome.host}"
                self.log(f"{name}: {how} ({len(records)} in one task, {outcome.seconds:.1f} s)")
            return
        where = f"ray node {outcome.host}" if outcome.node_id else "the Ray cluster"
        if item.attempt == 0:
            first_line = outcome.error.strip().splitlines()[0] if outcome.error.strip() else "?"
            self.log(f"warning: {label}: failed on {where} ({first_line}); retrying once on another node")
            self.submit(dataclasses.replace(item, attempt=1), avoid=outcome.node_id or None)
            return
        raise CompileError(
            f"model {item.model.name!r}: {label} failed twice on the Ray cluster; {where}: {outcome.error}"
        )


def run_on_cluster(
    plan: BuildPlan,
    models: list[ModelPlan],
    root: Path,
    cache_dir: Path,
    context: BuildContext,
    log: Callable[[str], None],
) -> bool:
    """Compile every job of ``models`` on the cluster into the cache at ``cache_dir``; False (after a
    warning) when the cluster cannot be reached and ``executor-fallback = "local"``."""
    settings = plan.settings
    try:
        ray = connect(settings, root)
    except ClusterUnavailable as exc:
        if settings.executor_fallback != "local":
            raise
        log(f"warning: {exc}; compiling on this machine (executor-fallback = 'local')")
        return False
    start = time.perf_counter()
    try:
        build = ClusterBuild(ray, settings, root, log)
        node_context = dataclasses.replace(context, threads=None)
        slots = int(ray.cluster_resources().get("CPU", 1))
        for model in models:
            for jobs in job_groups(model, slots):
                request = WorkerRequest(
                    model_request(plan, model),
                    "compile",
                    "off",
                    [job_request(model, job, Path("/out"), Path("/work")) for job in jobs],
                    node_context,
                    "/",
                    [str(p) for p in plan.import_paths],
                )
                build.submit(_Submitted(model, jobs, request.to_json()))
        tasks = len(build.pending)
        build.collect(LocalCache(cache_dir))
    finally:
        ray.shutdown()
    count = sum(len(model.jobs) for model in models)
    elapsed = time.perf_counter() - start
    log(f"ray: {count} job(s) in {tasks} task(s) on {len(build.hosts)} node(s) in {elapsed:.1f} s")
    return True
