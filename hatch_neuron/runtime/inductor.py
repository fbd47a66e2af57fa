"""Running ``inductor`` artifacts (AOTInductor ``.pt2`` packages): native code for the exact torch they
were built with and the portable instruction set (or a GPU of the compute capability they were built for).
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import warnings
from pathlib import Path
from typing import IO, Any

import torch
import torch.utils._pytree as pytree

from .base import OnDevice, TargetLoader
from .schema import ArtifactEntry, Manifest

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


#: The CPU flags oneDNN's AVX-512 kernels (``avx512_core``) need.
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


def onednn_vector_isa() -> str:
    """The vector instruction set whose kernels oneDNN runs on this CPU: ``avx512``, ``avx2`` or
    ``older``, capped by ``ONEDNN_MAX_CPU_ISA`` as oneDNN caps it (a value it does not know caps nothing).
    Weights prepacked for one of them are reordered on every call by the others."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    flags = cpu_flags()
    if flags >= AVX512_CORE and not cap.startswith(("SSE", "AVX2")) and cap != "AVX":
        return "avx512"
    return "avx2" if "avx2" in flags and not cap.startswith("SSE") and cap != "AVX" else "older"


def _cuda_problem(facts: dict[str, Any]) -> str | None:
    if not torch.cuda.is_available():
        return "built for CUDA, and torch.cuda.is_available() is False here"
    here = "{}.{}".format(*torch.cuda.get_device_capability())
    if here != facts["cuda_capability"]:
        return (
            f"built for a GPU of compute capability {facts['cuda_capability']} ({facts['gpu']}), "
            f"this one is {here} ({torch.cuda.get_device_name()})"
        )
    return None


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


class InductorLoader(TargetLoader):
    def unusable_reason(self, manifest: Manifest) -> str | None:
        built = manifest.built_with.get("torch")
        if built and torch.__version__ != built:
            here = torch.__version__
            return f"built with torch {built}, this is torch {here} (native code needs the exact one)"
        artifact = manifest.first_artifact("inductor")
        if artifact is not None and artifact.details.get("device") == "cuda":
            return _cuda_problem(artifact.details)
        isa = INDUCTOR_ISA.get(platform.machine())
        if isa is None:
            return f"built for x86-64, this machine is {platform.machine()}"
        missing = [flag for flag in isa["flags"] if flag not in cpu_flags()]
        if missing:
            return f"built for {isa['name']}, this CPU lacks {', '.join(missing)}"
        return None

    def load(
        self, source: str | IO[bytes], manifest: Manifest, artifact: ArtifactEntry, core: int | None
    ) -> Any:
        problem = self.unusable_reason(manifest)
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
        packed_for, here = artifact.details.get("prepacked_for"), onednn_vector_isa()
        if packed_for and packed_for != here:
            warnings.warn(
                f"{artifact.file}: its weights were prepacked for {packed_for} CPUs (inductor-configs "
                f"cpp.weight_prepack), this CPU runs oneDNN's {here} kernels: every call reorders them "
                "(ResNet-18 measured 13x slower). Rebuild without cpp.weight_prepack for a portable package",
                RuntimeWarning,
                stacklevel=4,
            )
        return OnDevice(module, "cuda") if artifact.details.get("device") == "cuda" else module
