"""Child-process entry point: import one model's factory, trace it for each target, save and verify.

Run as ``python -m hatch_neuron.compile.worker REQUEST.json RESULT.json``. Running user code here, not in
the build process, means a crash, a hang or a side effect of the factory cannot take the build down or
leak into it. REQUEST is a :class:`~.contracts.WorkerRequest`, RESULT a :class:`~.contracts.WorkerResult`;
expected failures (bad factory, mismatch) are results with ``ok`` False.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import torch

from ..cache import CorruptEntry, LocalCache
from ..cache.deps import ReadTracker
from ..cache.keys import artifact_key, computation_digest, key_inputs
from ..cache.remote import RemoteLayer
from ..cache.store import artifact_sha256, entry_files
from ..plan import bucket_label
from ..runtime.pytree import flatten
from ..runtime.schema import ArtifactEntry, Manifest
from ..runtime.targets import load_artifact
from . import CompileTarget, get_target
from .base import CannotCompile
from .checks import run_checks
from .contracts import ArtifactRecord, BucketOutputs, JobRequest, Origin, WorkerRequest, WorkerResult
from .forkserver import installation_modules
from .inputs import CHECK_SEED, TRACE_SEED, make_inputs
from .reproducible import keyed_workdir
from .verify import MismatchError, compare


class ModelError(Exception):
    """A problem with the user's model, reported without a traceback of ours."""


class FlatOutputs(torch.nn.Module):
    """Wraps the factory's module or function so the traced graph returns a flat tuple of tensors."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        if isinstance(model, torch.nn.Module):
            self.model = model
        else:
            self.function = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model if hasattr(self, "model") else self.function
        return tuple(flatten(model(*inputs))[0])


def import_factory(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(
            f"factory {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}\n"
            f"{traceback.format_exc().rstrip()}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"factory {spec!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"factory {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def build_model(spec: str, args: dict[str, Any] | None = None) -> Any:
    factory = import_factory(spec)
    try:
        made = factory(**(args or {}))
    except (Exception, SystemExit) as exc:
        raise ModelError(
            f"factory {spec!r} raised {type(exc).__name__}: {exc}\n{traceback.format_exc().rstrip()}"
        ) from exc
    if isinstance(made, torch.nn.Module):
        return made.eval()
    if callable(made):
        return made
    raise ModelError(
        f"factory {spec!r} returned a {type(made).__name__}; expected an nn.Module or a function"
    )


def _save_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary name beside ``path``, then rename it into place."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def tracer_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The tracer's warnings among ``caught``, each once with how often it came."""
    counts = Counter(
        f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, torch.jit.TracerWarning)
    )
    return [text + (f" ({count} times)" if count > 1 else "") for text, count in counts.items()]


def _spec_of(tensors: list[torch.Tensor]) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in tensors]


def _storage_address(tensor: torch.Tensor) -> int:
    """Where the memory under ``tensor`` (and every view of it) starts; 0 where it has none to compare."""
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # a tensor without storage (an XLA tensor, a sparse one)
        return 0


def aliased_outputs(first: list[torch.Tensor], second: list[torch.Tensor]) -> list[int]:
    """The flat indices of the outputs that are in the same memory in two calls on different inputs: they
    are (views of) state the artifact keeps, a frozen weight or buffer, which a caller's in-place change
    would change for every later call. Both calls' outputs must be alive (held by the caller), so that a
    fresh output of the second call cannot get the memory of one of the first."""
    return [
        index
        for index, (a, b) in enumerate(zip(first, second, strict=True))
        if (address := _storage_address(a)) != 0 and address == _storage_address(b)
    ]


class ModelSession:
    """One model in this worker: the eager model, its example inputs and eager outputs per bucket."""

    def __init__(self, request: WorkerRequest) -> None:
        self.request = request.model
        self.name = request.model.model
        torch.manual_seed(0)  # factories that initialise weights randomly get the same weights every build
        self.model = build_model(request.model.factory, request.model.factory_args)
        self.wrapper = FlatOutputs(self.model).eval()
        self._buckets: dict[str, Any] = {}
        self._traces: dict[str, tuple[torch.jit.ScriptModule, list[str]]] = {}
        self.tree: Any = None

    def traced(self, specs: list[dict[str, Any]]) -> tuple[torch.jit.ScriptModule, list[str]]:
        """The model traced at the example inputs of ``specs``, and the tracer's warnings: one trace that
        the checks, the artifact key and the ``cpu`` target share."""
        key = json.dumps(specs)
        if key not in self._traces:
            with warnings.catch_warnings(record=True) as caught, torch.no_grad():
                warnings.simplefilter("always")
                module = torch.jit.trace(self.wrapper, make_inputs(specs, TRACE_SEED), check_trace=False)
            self._traces[key] = (module, tracer_warnings(caught))
        return self._traces[key]

    def bucket(self, job: JobRequest) -> tuple[Any, Any, list[torch.Tensor], list[torch.Tensor]]:
        """(example inputs, check inputs, eager outputs on each) for the job's bucket."""
        key = json.dumps(job.bucket)
        if key not in self._buckets:
            example, check = make_inputs(job.inputs, TRACE_SEED), make_inputs(job.inputs, CHECK_SEED)
            with torch.no_grad():
                eager_example, tree = flatten(self.model(*example))
                eager_check, _ = flatten(self.model(*check))
            if self.tree is not None and tree != self.tree:
                raise ModelError(f"the output structure changes with the bucket: {self.tree} vs {tree}")
            self.tree = tree
            self._buckets[key] = (example, check, eager_example, eager_check)
        return self._buckets[key]

    def verify(self, job: JobRequest, path: Path, details: dict[str, Any]) -> None:
        """Compare the artifact at ``path`` with eager on both input sets (:class:`MismatchError`), and
        record in ``details`` (the artifact's facts, which become its manifest entry) which outputs alias
        the artifact's own state: ``aliased_outputs``, their flat indices, present only when there are
        some (the runtime copies those outputs on every call). Facts from the cache are brought up to
        date the same way."""
        example, check, eager_example, eager_check = self.bucket(job)
        facts = ArtifactEntry.from_json({"file": path.name, "sha256": "", "size": 0, **details})
        loaded = load_artifact(job.target, str(path), Manifest(), facts)
        bucket = dict(job.bucket)
        where = f"target {job.target}" + (f", bucket {bucket}" if bucket else "")
        runs = []
        with torch.no_grad():
            for inputs, eager, label in (
                (example, eager_example, "example inputs"),
                (check, eager_check, "second input set, seed 1"),
            ):
                got = list(loaded(*inputs))
                compare(self.name, eager, got, self.request.rtol, self.request.atol, f"{where}, {label}")
                runs.append(got)
        details.pop("aliased_outputs", None)
        if aliased := aliased_outputs(*runs):
            details["aliased_outputs"] = aliased

    def outputs(self, job: JobRequest) -> BucketOutputs:
        _, _, eager_example, _ = self.bucket(job)
        return BucketOutputs(job.stem, self.tree, _spec_of(eager_example))


def _paths(job: JobRequest, target: CompileTarget) -> tuple[Path, dict[str, Path]]:
    """The artifact's path and its companions' (suffix -> path), all named after the job's stem."""
    path = Path(job.path)
    stem = path.name.removesuffix(target.info.suffix)
    return path, {suffix: path.with_name(stem + suffix) for suffix in target.info.companion_suffixes}


def _entry(job: JobRequest, path: Path, companions: dict[str, Path], facts: dict[str, Any]) -> ArtifactEntry:
    """The manifest entry of an artifact at ``path`` (``facts``: what the target and the build found)."""
    return ArtifactEntry.from_json(
        {
            "bucket": {str(dim): size for dim, size in job.bucket},
            "file": path.name,
            "sha256": artifact_sha256(path),
            "size": path.stat().st_size,
            "input_shapes": [spec["shape"] for spec in job.inputs],
            **facts,
            "companions": {
                suffix: {"file": p.name, "sha256": artifact_sha256(p), "size": p.stat().st_size}
                for suffix, p in companions.items()
            },
        }
    )


def compile_job(session: ModelSession, job: JobRequest, options: Any, key: str) -> ArtifactRecord:
    """Trace/compile one job (artifact ``key``) with its target's ``options``, save it atomically, verify it
    against eager; return its record."""
    target = get_target(job.target)
    example, _, eager_example, _ = session.bucket(job)
    path, companion_paths = _paths(job, target)
    Path(job.workdir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    module, found = session.wrapper, []
    if target.compiles_the_trace:
        module, found = session.traced(job.inputs)
    own = Path(job.workdir)
    folder = keyed_workdir(key, own) if target.output_holds_workdir else contextlib.nullcontext((own, True))
    with folder as (workdir, reproducible):
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            compiled = target.compile(module, example, workdir, options)
        _save_atomically(path, functools.partial(target.save, compiled))
        for suffix, source in compiled.companions.items():
            _save_atomically(companion_paths[suffix], functools.partial(shutil.copyfile, source))
    if not reproducible:
        compiled.details["reproducible"] = False
    found = [f"{job.target}: {text}" for text in [*found, *tracer_warnings(caught)]]
    verified = target.can_verify()
    if verified:
        try:
            session.verify(job, path, compiled.details)
        except MismatchError:
            plain = target.without_load_optimization(compiled.details)
            if plain is None:
                raise
            session.verify(job, path, plain)  # outside the model's tolerance optimized: ship it plain
            compiled.details.update(plain)
    facts = {
        "format": target.info.artifact_format,
        "verified": verified,
        "output_shapes": [list(t.shape) for t in eager_example],
        **compiled.details,
    }
    entry = _entry(job, path, companion_paths, facts)
    seconds = round(time.perf_counter() - start, 3)
    return ArtifactRecord(entry, job.target, Origin.COMPILED, seconds, found, target.toolchain())


def job_key_inputs(session: ModelSession, job: JobRequest, options: Any, versions: dict) -> dict[str, Any]:
    """What the job's artifact key is made of (:func:`artifact_key` of it is the key)."""
    target = get_target(job.target)
    return key_inputs(
        computation_digest(session.traced(job.inputs)[0]),
        job.inputs,
        job.target,
        target.key_options(options),
        {**versions, **target.toolchain()},
    )


def fetch_job(
    session: ModelSession, job: JobRequest, key: str, cache: LocalCache, events: list[str]
) -> ArtifactRecord | None:
    """The job's artifact from the cache (checked by sha256 and against eager), or None."""
    target = get_target(job.target)
    path, companion_paths = _paths(job, target)
    start = time.perf_counter()
    dest = entry_files(path, companion_paths)
    try:
        meta = cache.fetch(key, dest)
    except CorruptEntry as exc:
        events.append(f"{session.name} [{job.target}]: {exc}")
        return None
    if meta is None:
        return None
    facts = dict(meta["facts"])
    toolchain = facts.pop("toolchain", {})
    if facts["verified"]:
        try:
            session.verify(job, path, facts)
        except ModelError:
            raise  # the model itself failed (eager run), not the entry
        except Exception as exc:  # a bad entry: only a fresh compile's mismatch is the model's fault
            cache.evict(key)
            events.append(
                f"{session.name} [{job.target}]: cache entry {key[:16]} does not load or does not match "
                f"eager ({exc.fact if isinstance(exc, MismatchError) else f'{type(exc).__name__}: {exc}'}); "
                "removed, compiling again"
            )
            return None
    entry = _entry(job, path, companion_paths, facts)
    seconds = round(time.perf_counter() - start, 3)
    return ArtifactRecord(entry, job.target, Origin.LOCAL_CACHE, seconds, [], toolchain)


def store_job(cache: LocalCache, key: str, job: JobRequest, record: ArtifactRecord) -> None:
    path, companion_paths = _paths(job, get_target(job.target))
    files = entry_files(path, companion_paths)
    description = f"{job.target} {path.name} ({session_label(job)})"
    cache.store(key, files, {"facts": record.facts(), "description": description})


def session_label(job: JobRequest) -> str:
    return bucket_label(job.bucket) or "no buckets"


def compile_or_reuse(
    session: ModelSession,
    job: JobRequest,
    key: str,
    inputs: dict[str, Any],
    caches: tuple[LocalCache, RemoteLayer],
    options: Any,
    events: list[str],
    *,
    wait: bool,
) -> ArtifactRecord | None:
    """The job's artifact from the local cache, else from the remote one, else compiled (and stored in
    both), under the key's lock. Without ``wait``, None when another worker holds the lock (it is
    compiling this job)."""
    cache, remote = caches
    if cache.faulty:
        return compile_job(session, job, options, key)
    try:
        lock = cache.lock(key)
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        return None
    except OSError as exc:
        cache.fault(exc)
        return compile_job(session, job, options, key)
    try:
        try:
            record = fetch_job(session, job, key, cache, events)
            if record is None and remote.fetch(key, cache):
                record = fetch_job(session, job, key, cache, events)
                if record is not None:
                    record = dataclasses.replace(record, origin=Origin.REMOTE_CACHE)
        except OSError as exc:  # the cache vanished or broke under us: compile, uncached
            cache.fault(exc)
            record = None
        if record is None:
            record = compile_job(session, job, options, key)  # verified against eager before it is stored
            if not cache.faulty:
                try:
                    store_job(cache, key, job, record)
                    remote.publish(key, cache, inputs)
                except OSError as exc:
                    cache.fault(exc)
    finally:
        with contextlib.suppress(OSError):
            lock.release()
    return record


def run(request: WorkerRequest) -> WorkerResult:
    """``mode`` prepare: checks, then every job of the model, from the cache or compiled, leaving to
    others the jobs whose lock another worker holds (and taking them from the cache once it is done);
    compile: the given jobs (a job the scheduler gave to a second worker to finish the model sooner)."""
    build = request.build
    if build.threads:
        torch.set_num_threads(build.threads)
    modules_before = set(sys.modules)
    # what the build itself reads and writes (its folders, the cache) is not the model's input
    untracked = [Path(request.tmp), *(Path(job.path).parent for job in request.jobs)]
    untracked += [Path(build.cache_dir)] if build.cache_dir else []
    tracker = ReadTracker(untracked) if build.track_reads else None
    options = request.model.options
    for target, target_options in options.items():
        for name, value in get_target(target).environment(target_options).items():
            os.environ.setdefault(name, value)
    session = ModelSession(request)
    jobs = request.jobs
    result = WorkerResult()
    if request.mode == "prepare" and request.check != "off":
        model = request.model
        result.findings = run_checks(
            session.name,
            session.model,
            session.wrapper,
            model.inputs,
            model.batched,
            lambda: session.traced(model.inputs)[0],
        )
        if request.check == "error" and any(f["kind"] != "skipped" for f in result.findings):
            # nothing to compile: the scheduler fails the build once every model's checks have run
            result.check_failed = True
            jobs = []
    if jobs:
        caches = (LocalCache(Path(str(build.cache_dir))), RemoteLayer(build.remote, result.events.append))
        inputs = {job.stem: job_key_inputs(session, job, options[job.target], build.versions) for job in jobs}
        result.keys = {stem: artifact_key(each) for stem, each in inputs.items()}

        def reuse(job: JobRequest, wait: bool) -> ArtifactRecord | None:
            key, key_inputs = result.keys[job.stem], inputs[job.stem]
            return compile_or_reuse(
                session, job, key, key_inputs, caches, options[job.target], result.events, wait=wait
            )

        deferred = []
        for job in jobs:
            record = reuse(job, wait=request.mode == "compile")
            if record is None:
                deferred.append(job)
            else:
                result.artifacts[job.stem] = record
        for job in deferred:
            result.artifacts[job.stem] = reuse(job, wait=True)  # type: ignore[assignment]
        result.outputs = session.outputs(jobs[0])
        result.cache_fault = caches[0].fault_reason
    if tracker is not None:
        result.reads = tracker.files()
    result.imported = installation_modules(modules_before)  # for the fork server to preload
    return result


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = WorkerRequest.from_json(json.loads(request_path.read_text()))
    sys.path[:0] = request.sys_path
    try:
        result = run(request)
    except (ModelError, CannotCompile, MismatchError) as exc:
        result = WorkerResult(ok=False, error=str(exc))
    except Exception as exc:
        result = WorkerResult(
            ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    result_path.write_text(json.dumps(result.to_json()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
