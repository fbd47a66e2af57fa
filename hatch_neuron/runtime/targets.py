"""Which compiled form of a package to load here, and how to load each one.

Order of preference is the manifest's ``targets`` (the project's ``targets``). A target is usable when
its runtime is: ``neuron`` needs ``torch_neuronx`` importable and a Neuron device (``/dev/neuron*``);
``xla`` needs torch-xla of the running torch's release; ``inductor`` needs the exact torch it was built
with and the CPU's instruction set (or, built for CUDA, a GPU of the same compute capability); ``cpu``
always is.
``HATCH_NEURON_TARGET=<name>`` forces one.
"""

from __future__ import annotations

import functools
import glob
import importlib
import importlib.util
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import torch.utils._pytree as pytree

from .xla import load_stablehlo, xla_problem

OVERRIDE_ENV = "HATCH_NEURON_TARGET"


@dataclass(frozen=True)
class Selection:
    """The target picked for a package, and why each one before it was skipped."""

    target: str
    skipped: dict[str, str] = field(default_factory=dict)
    forced: bool = False


def neuron_device_present() -> bool:
    return bool(glob.glob("/dev/neuron*"))


def _neuron_install_hint(manifest: dict[str, Any]) -> str:
    version = manifest.get("built_with", {}).get("torch-neuronx")
    spec = f"torch-neuronx=={version}" if version else "torch-neuronx"
    return (
        f"install {spec} (the version this package was built with) from the Neuron repository "
        "(pip install --extra-index-url https://pip.repos.neuron.amazonaws.com ...) on an Inf2/Trn1 "
        f"instance, or use a wheel built with a portable target (HATCH_NEURON_TARGETS=cpu at build time)"
    )


#: The portable instruction set that ``inductor`` artifacts are built for, per machine.
INDUCTOR_ISA = {"x86_64": {"name": "x86-64-v3 (AVX2, FMA)", "capability": "avx2", "flags": ["avx2", "fma"]}}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def first_artifact(manifest: dict[str, Any], target: str) -> dict[str, Any]:
    """One artifact entry of ``target`` (facts such as the device are the same for all of them)."""
    for model in manifest.get("models", {}).values():
        for artifact in model["artifacts"].get(target, []):
            return artifact
    return {}


def _inductor_problem(manifest: dict[str, Any]) -> str | None:
    built = manifest.get("built_with", {}).get("torch")
    if built and torch.__version__ != built:
        return (
            f"built with torch {built}, this is torch {torch.__version__} (native code needs the exact one)"
        )
    artifact = first_artifact(manifest, "inductor")
    if artifact.get("device") == "cuda":
        if not torch.cuda.is_available():
            return "built for CUDA, and torch.cuda.is_available() is False here"
        here = "{}.{}".format(*torch.cuda.get_device_capability())
        if here != artifact["cuda_capability"]:
            return (
                f"built for a GPU of compute capability {artifact['cuda_capability']} ({artifact['gpu']}), "
                f"this one is {here} ({torch.cuda.get_device_name()})"
            )
        return None
    isa = INDUCTOR_ISA.get(platform.machine())
    if isa is None:
        return f"built for x86-64, this machine is {platform.machine()}"
    missing = [flag for flag in isa["flags"] if flag not in cpu_flags()]
    if missing:
        return f"built for {isa['name']}, this CPU lacks {', '.join(missing)}"
    return None


def unusable_reason(target: str, manifest: dict[str, Any]) -> str | None:
    """None when ``target`` can run here, otherwise why not."""
    if target == "inductor":
        return _inductor_problem(manifest)
    if target == "neuron":
        if importlib.util.find_spec("torch_neuronx") is None:
            return "torch_neuronx is not importable"
        if not neuron_device_present():
            return "no Neuron device (/dev/neuron*)"
        return None
    if target == "xla":
        return xla_problem()
    if target == "cpu":
        return None
    return f"this hatch-neuron runtime does not know target {target!r}; upgrade hatch-neuron"


def select_target(
    package: str, manifest: dict[str, Any], targets: list[str] | None = None, model: str | None = None
) -> Selection:
    """The first usable of ``targets`` (a model's own; default: the package's ``targets``).

    ``HATCH_NEURON_TARGET`` forces its target on every model built for it; a model whose own targets
    lack it (the package has it for others) is selected as usual, and says so in ``skipped``. A package
    that no model was built for it refuses."""
    available = targets or manifest["targets"]
    forced = os.environ.get(OVERRIDE_ENV, "").strip()
    skipped: dict[str, str] = {}
    if forced:
        if forced in available:
            return Selection(forced, forced=True)
        if forced not in manifest["targets"]:
            raise LookupError(
                f"{OVERRIDE_ENV}={forced}: package {package!r} has no {forced!r} artifacts; "
                f"it was built for: {', '.join(manifest['targets'])}"
            )
        skipped[forced] = f"{OVERRIDE_ENV}={forced}, but model {model!r} was built for {', '.join(available)}"
    for target in available:
        reason = unusable_reason(target, manifest)
        if reason is None:
            return Selection(target, skipped)
        skipped[target] = reason
    # Nothing fully usable: a neuron-only package on a host with torch_neuronx but no visible device still
    # gets a load attempt, so the Neuron runtime can report its own error.
    first = available[0]
    if first == "neuron" and importlib.util.find_spec("torch_neuronx") is not None:
        return Selection(first, skipped)
    raise ImportError(
        f"package {package!r} cannot load its compiled models here: "
        + "; ".join(f"{t}: {r}" for t, r in skipped.items())
        + (f". To run the neuron artifacts, {_neuron_install_hint(manifest)}" if "neuron" in skipped else "")
    )


def visible_core_count() -> int | None:
    """NeuronCores this process may use per NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES (None: all)."""
    visible = os.environ.get("NEURON_RT_VISIBLE_CORES", "").strip()
    if visible:
        count = 0
        for part in visible.split(","):
            low, _, high = part.partition("-")
            count += int(high or low) - int(low) + 1
        return count
    number = os.environ.get("NEURON_RT_NUM_CORES", "").strip()
    return int(number) if number and int(number) > 0 else None


def core_for_replica(placement: str | dict[str, int], replica: int) -> int | None:
    """The NeuronCore (relative to the visible ones) that replica ``replica`` is pinned to, or None for
    Neuron's round-robin placement."""
    if placement == "round-robin" or isinstance(placement, str):
        return None
    start, count = placement["start"], placement["count"]
    visible = visible_core_count()
    if visible is not None and start + count > visible:
        raise ValueError(
            f"placement {{start = {start}, count = {count}}} needs NeuronCores {start}..{start + count - 1}, "
            f"but this process sees {visible} (NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES)"
        )
    return start + replica % count


class OnDevice:
    """Runs a module whose artifact lives on another device: moves the inputs there and the outputs back
    to the device of the first input, so a compiled model takes and returns CPU tensors on every target
    (and tensors already on that device stay there)."""

    def __init__(self, module: Any, device: str | torch.device) -> None:
        self.module = module
        self.device = torch.device(device)

    def __call__(self, *inputs: torch.Tensor) -> Any:
        home = inputs[0].device if inputs else torch.device("cpu")
        outputs = self.module(*(t.to(self.device) for t in inputs))
        if isinstance(outputs, torch.Tensor):
            return outputs.to(home)
        return type(outputs)(t.to(home) for t in outputs)


class AOTIModule:
    """An AOTInductor package's model, called without what ``AOTICompiledModel.__call__`` redoes on every
    call (it parses the call specs from JSON and flattens the arguments: ~10-40 us, as much as a small
    model's whole run). The specs are read once; the inputs go straight to the model's boxed run."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.loader = compiled.loader
        in_spec, out_spec = (pytree.treespec_loads(spec) for spec in self.loader.get_call_spec())
        self.arity = in_spec.num_leaves
        self.positional = in_spec == pytree.tree_structure(((0,) * self.arity, {}))
        self.out_spec = out_spec

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if not self.positional or len(inputs) != self.arity:
            return self.compiled(*inputs)  # torch's own call (and error) for anything else
        return pytree.tree_unflatten(self.loader.boxed_run(list(inputs)), self.out_spec)


def load_artifact(
    target: str,
    source: str | IO[bytes],
    manifest: dict[str, Any],
    artifact: dict[str, Any],
    core: int | None = None,
) -> Any:
    """Load one artifact (its path, or a stream of its bytes; described by its manifest entry ``artifact``)
    as a callable module (a ``neuron`` one onto ``core`` when given)."""
    if not isinstance(source, str):
        source.seek(0)  # the stream of an earlier replica's load
    if target == "inductor":
        problem = _inductor_problem(manifest)
        if problem:  # refuse here rather than crash with SIGILL or a symbol error
            raise RuntimeError(f"cannot load the inductor artifact: {problem}; use another target")
        # torch warns that the package's ISA (the portable one) differs from this CPU's: that is the point
        package_log = logging.getLogger("torch.export.pt2_archive._package")
        level = package_log.level
        package_log.setLevel(logging.ERROR)
        try:
            module = AOTIModule(torch._inductor.aoti_load_package(source))
        finally:
            package_log.setLevel(level)
        return OnDevice(module, "cuda") if artifact.get("device") == "cuda" else module
    if target == "xla":
        return OnDevice(*load_stablehlo(source))
    if target != "neuron":
        return torch.jit.load(source, map_location="cpu")
    try:
        importlib.import_module("torch_neuronx")  # registers the neuron:: ops
    except ImportError as exc:
        raise ImportError(
            f"loading a neuron artifact needs torch_neuronx: {_neuron_install_hint(manifest)}"
        ) from exc
    if core is None:
        return torch.jit.load(source)  # Neuron places it on the next core, round-robin
    experimental = importlib.import_module("torch_neuronx.experimental")
    with experimental.neuron_cores_context(start_nc=core, nc_count=1):
        return torch.jit.load(source)
