"""The callable that built packages expose for each compiled model."""

from __future__ import annotations

import itertools
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from .batching import ShapePolicy
from .manifest import ManifestError, manifest_location, open_artifact, read_manifest
from .pytree import builder
from .schema import Manifest
from .targets import Selection, core_for_replica, load_artifact, select_target

_selections: dict[tuple[str, str | None], Selection] = {}


def selection(package: str, model: str | None = None) -> Selection:
    """The target this process uses for ``package``'s models (or for ``model``, whose own ``targets`` may
    differ), chosen once, on first use."""
    if (package, model) not in _selections:
        manifest = read_manifest(package)
        if not manifest.targets:
            raise ManifestError(
                f"package {package!r}: manifest {manifest_location(package)}: no 'targets' list; the package "
                "was modified after the build, or its install is broken. Reinstall the package"
            )
        own = manifest.models[model].targets if model in manifest.models else None
        _selections[package, model] = select_target(package, manifest, own, model if own else None)
    return _selections[package, model]


def replica_count(manifest: Manifest) -> int:
    """``replicas`` of the build, unless ``HATCH_NEURON_REPLICAS`` says otherwise for this process."""
    override = os.environ.get("HATCH_NEURON_REPLICAS", "").strip()
    if not override:
        return manifest.replicas
    if not override.isdigit() or int(override) < 1:
        raise ValueError(f"HATCH_NEURON_REPLICAS={override!r}: expected a whole number >= 1")
    return int(override)


#: With ``warmup = "auto"``, artifacts at least this large (except ``xla`` ones) get no warm-up calls.
AUTO_WARMUP_MAX_SIZE = 64 * 2**20


def warmup_calls(manifest: Manifest, target: str, size: int) -> int:
    """Warm-up calls for an artifact of ``size`` bytes: ``warmup`` of the build (2 for packages built
    before it existed), unless ``HATCH_NEURON_WARMUP`` says otherwise for this process."""
    setting = os.environ.get("HATCH_NEURON_WARMUP", "").strip() or manifest.warmup
    if setting == "auto":
        return 2 if target == "xla" or size < AUTO_WARMUP_MAX_SIZE else 0
    if isinstance(setting, int):
        return setting
    if not setting.isdigit():
        raise ValueError(f"HATCH_NEURON_WARMUP={setting!r}: expected a whole number >= 0 or auto")
    return int(setting)


def _dtype(name: Any) -> torch.dtype:
    dtype = getattr(torch, name) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype {name!r} is not a torch dtype")
    return dtype


class CompiledModel:
    """A compiled model with Neuron's shape rules enforced on every target.

    Calling it checks the inputs against the declared specs (fixed shapes and dtypes; buckets and dynamic
    batching where the project declared them), runs the artifacts and returns outputs in the structure
    the eager model returned (tensor, tuple, list or dict). Every target loaded here returns CPU tensors
    (a Neuron traced module copies its outputs back to the host itself).
    """

    def __init__(self, package: str, name: str, *, lazy: bool = False) -> None:
        manifest = read_manifest(package)
        if name not in manifest.models:
            raise LookupError(
                f"package {package!r} has no compiled model {name!r}; it has: {', '.join(manifest.models)}"
            )
        self.package = package
        self.name = name
        self.target = selection(package, name).target
        entry = manifest.models[name]
        artifacts = entry.artifacts.get(self.target)
        if not artifacts:
            raise ManifestError(
                f"package {package!r}: manifest {manifest_location(package)}: model {name!r} has no "
                f"artifacts for target {self.target!r}, the one selected here; it has: "
                f"{', '.join(t for t, found in entry.artifacts.items() if found) or 'none'}. The package "
                "was modified after the build, or its install is broken. Reinstall the package"
                + (", or set HATCH_NEURON_TARGET to one of those" if selection(package, name).forced else "")
            )
        try:
            axes = {int(dim): sizes for dim, sizes in entry.buckets.items()}
            self._artifacts = {
                tuple(artifact.bucket[str(dim)] for dim in axes): artifact for artifact in artifacts
            }
            native = any(a.details.get("dynamic_batch") == "torch_neuronx" for a in self._artifacts.values())
            self._aliased = {key: a.aliased_outputs for key, a in self._artifacts.items()}
            self.policy = ShapePolicy(
                name,
                [spec.shape for spec in entry.inputs],
                [_dtype(spec.dtype) for spec in entry.inputs],
                axes,
                dynamic_batch=entry.dynamic_batch,
                native_dynamic_batch=native,
                output_dims=entry.outputs.dims,
                pad_value=entry.pad_value,
                bucketed=[spec.bucketed for spec in entry.inputs],
            )
            self._rebuild = builder(entry.outputs.tree)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise ManifestError(
                f"package {package!r}: manifest {manifest_location(package)}: model {name!r}: the entry is "
                f"malformed ({problem}); the package was modified after the build, or its install is broken. "
                "Reinstall the package"
            ) from None
        self.input_shapes = self.policy.shapes
        self.input_dtypes = self.policy.dtypes
        #: The inputs' names, which calls may use as keywords (empty: positional only).
        self.input_names = tuple(spec.name for spec in entry.inputs if spec.name)
        self.replicas = replica_count(manifest)
        self._placement = manifest.placement
        self._modules: dict[tuple[int, ...], list[Any]] | None = None
        self._single: Any = None  # the one module of a model without buckets or replicas: the fast path
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._pool: ThreadPoolExecutor | None = None
        if not lazy:
            self.load()

    def load(self) -> Any:
        """Load (once) every artifact and replica, checking each artifact's sha256 first; return the
        module of the first bucket's first replica (the raw module, for a model without buckets)."""
        with self._lock:
            if self._modules is None:
                manifest = read_manifest(self.package)
                modules, calls = {}, {}
                for key, artifact in self._artifacts.items():
                    with open_artifact(self.package, artifact.file, artifact.sha256, artifact.size) as source:
                        modules[key] = [
                            load_artifact(
                                self.target, source, manifest, artifact, core_for_replica(self._placement, i)
                            )
                            for i in range(self.replicas)
                        ]
                    calls[key] = warmup_calls(manifest, self.target, artifact.size)
                self._warm_up(modules, calls)
                if not self.policy.axes and self.replicas == 1:
                    self._single = modules[()][0]
                self._modules = modules
        return next(iter(self._modules.values()))[0]

    def _warm_up(self, modules: dict[tuple[int, ...], list[Any]], calls: dict[tuple[int, ...], int]) -> None:
        """Run every loaded module of each bucket ``calls[bucket]`` times on zeros of its compiled shapes,
        so that the first calls' one-off work (TorchScript's profiling executor optimises the graph over
        its first calls, torch-xla compiles on its first) happens at load time, not in a user's first
        calls."""
        with torch.no_grad():
            for bucket, replicas in modules.items():
                if not calls[bucket]:
                    continue
                inputs = self.policy.warmup_inputs(bucket)
                try:
                    for module in replicas:
                        for _ in range(calls[bucket]):
                            module(*inputs)
                # zeros are not every model's input (a Cholesky, say): a failed warm-up is no load error
                except Exception as exc:
                    first = (str(exc).strip().splitlines() or [""])[0]
                    warnings.warn(
                        f"{self.package}.{self.name}: the warm-up call on zeros failed "
                        f"({type(exc).__name__}: {first}); the model is loaded, its first calls will be "
                        "slower. Set warmup = 0 to skip the warm-up",
                        RuntimeWarning,
                        stacklevel=2,
                    )

    def module_for(self, *args: Any) -> Any:
        """The raw module (replica 0) that a call with these inputs runs on, padded to its bucket."""
        if self._modules is None:
            self.load()
        return self._modules[self.policy.bucket(self.policy.check(args))][0]  # type: ignore[index]

    @property
    def loaded(self) -> bool:
        """Whether the artifacts are loaded (always after construction, unless ``lazy``)."""
        return self._modules is not None

    def check_inputs(self, args: tuple[Any, ...]) -> dict[int, int]:
        return self.policy.check(args)

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The inputs of a call in declaration order, keywords bound by name as Python binds them."""
        names = self.input_names
        if not names:
            raise TypeError(f"{self.name}: takes positional inputs only, got keywords {sorted(kwargs)}")
        takes = f"it takes {', '.join(names)}"
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"{self.name}: unexpected keyword input(s) {', '.join(unknown)}; {takes}")
        twice = [name for name in names[: len(args)] if name in kwargs]
        if twice:
            raise TypeError(f"{self.name}: input {twice[0]!r} given both by position and by keyword")
        missing = [name for name in names[len(args) :] if name not in kwargs]
        if missing:
            raise TypeError(f"{self.name}: missing input(s) {', '.join(missing)}; {takes}")
        return (*args, *(kwargs[name] for name in names[len(args) :]))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) < len(self.input_names):
            args = self._positional(args, kwargs)
        sizes = self.policy.check(args)
        if self._modules is None:
            self.load()
        # no_grad rather than inference_mode: callers may modify the outputs in place afterwards.
        with torch.no_grad():
            if self._single is not None:
                flat = self._owned((), self._single(*args))
            elif (exact := self._modules.get(key := tuple(sizes[d] for d in self.policy.axes))) is not None:
                # the call's sizes are a compiled bucket: no padding, trimming or chunking to do
                flat = self._owned(key, exact[next(self._turn) % self.replicas](*args))
            else:
                pieces = self.policy.pieces(sizes, self.replicas)
                if len(pieces) == 1:
                    flat = self._run(args, sizes, next(self._turn) % self.replicas, owned=True)
                else:
                    flat = self._run_pieces(args, sizes, pieces)  # concatenated: new tensors already
        return self._rebuild(flat)

    def _owned(self, bucket: tuple[int, ...], flat: Any) -> Any:
        """``flat`` with a copy of each output the build found to alias the artifact's own state (a frozen
        weight or buffer, ``aliased_outputs`` in the manifest; none when the field is missing), so that a
        caller changing an output in place never changes what later calls return."""
        aliased = self._aliased[bucket]
        if not aliased:
            return flat
        flat = list(flat)
        for index in aliased:
            flat[index] = flat[index].clone()
        return flat

    def _run(self, args: Any, sizes: dict[int, int], replica: int, *, owned: bool = False) -> Any:
        """The flat outputs of one bucket's module (padded and trimmed as needed); ``owned``: with the
        outputs that alias the module's state copied (:meth:`_owned`), for results handed to the caller
        as they are."""
        bucket = self.policy.bucket(sizes)
        module = self._modules[bucket][replica]  # type: ignore[index]
        if self.policy.fits_exactly(sizes, bucket):
            flat = module(*args)
        else:
            flat = self.policy.trim(module(*self.policy.pad(args, bucket)), sizes)
        return self._owned(bucket, flat) if owned else flat

    def _run_pieces(
        self, args: Any, sizes: dict[int, int], pieces: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        step = pieces[0][1] - pieces[0][0]
        chunks = list(zip(*(arg.split(step) for arg in args), strict=True))

        def run_group(replica: int) -> list[tuple[int, Any]]:
            with torch.no_grad():  # grad mode is per thread
                return [
                    (index, self._run(chunks[index], {**sizes, 0: stop - start}, replica))
                    for index, (start, stop) in enumerate(pieces)
                    if index % self.replicas == replica
                ]

        if self.replicas == 1:
            results = run_group(0)
        else:
            if self._pool is None:
                # torch applies its thread count to a new thread only when the thread asks for it
                self._pool = ThreadPoolExecutor(
                    self.replicas - 1,
                    thread_name_prefix=f"hatch-neuron-{self.name}",
                    initializer=torch.get_num_threads,
                )
            others = [self._pool.submit(run_group, r) for r in range(1, min(self.replicas, len(pieces)))]
            results = run_group(0) + [item for future in others for item in future.result()]
            results.sort(key=lambda item: item[0])
        outputs = [flat for _, flat in results]
        return [torch.cat([out[leaf] for out in outputs]) for leaf in range(len(outputs[0]))]

    def __repr__(self) -> str:
        specs = zip(self.input_shapes, self.input_dtypes or [], strict=True)
        shapes = ", ".join(f"{list(s)}:{str(d).removeprefix('torch.')}" for s, d in specs)
        return f"<CompiledModel {self.package}.{self.name} target={self.target} inputs=({shapes})>"
