"""Target ``neuron``: ``torch_neuronx.trace`` exactly as documented, saved with ``torch.jit.save``.

Nothing here can run a NEFF: in this project's tests the target runs against a test double of
``torch_neuronx`` that enforces the documented call contract. Results of those tests are not Neuron
results.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import torch

from ..runtime.neuron import neuron_device_present
from ..targets import REGISTRY
from .base import Compiled, CompileTarget, TargetUnavailable
from .options import NeuronOptions

INSTALL_HINT = (
    "target 'neuron' needs torch-neuronx and neuronx-cc on the build host: "
    "pip install torch-neuronx neuronx-cc --extra-index-url https://pip.repos.neuron.amazonaws.com "
    "(the packages of those names on PyPI are empty placeholders). To build a portable wheel on this "
    "machine instead, set HATCH_NEURON_TARGETS=cpu"
)


def _torch_neuronx():
    try:
        module = importlib.import_module("torch_neuronx")
    except ImportError as exc:
        raise TargetUnavailable(f"{INSTALL_HINT} (import torch_neuronx failed: {exc})") from None
    if not hasattr(module, "trace"):
        raise TargetUnavailable(
            f"{INSTALL_HINT} (the installed torch_neuronx has no trace(): a placeholder?)"
        )
    return module


def compiler_args(options: NeuronOptions) -> list[str]:
    """``compiler-args`` plus ``--target`` from ``neuron-target`` unless the args already set one."""
    args = list(options.compiler_args)
    if options.neuron_target and not any(a == "--target" or a.startswith("--target=") for a in args):
        args += ["--target", options.neuron_target]
    return args


class NeuronTarget(CompileTarget):
    info = REGISTRY["neuron"]
    requires_module = "torch_neuronx"
    install_hint = INSTALL_HINT

    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: NeuronOptions,
    ) -> Compiled:
        torch_neuronx = _torch_neuronx()
        args = compiler_args(options)
        kwargs = {"compiler_workdir": str(workdir), "compiler_args": args}
        # Newer SDKs trace on hosts without a device only when asked to (and then need --target).
        if not neuron_device_present() and "cpu_backend" in inspect.signature(torch_neuronx.trace).parameters:
            kwargs["cpu_backend"] = True
        traced = torch_neuronx.trace(module, example_inputs, **kwargs)
        details = {"compiler_args": args, "cpu_backend": kwargs.get("cpu_backend", False)}
        if options.dynamic_batch:
            traced = torch_neuronx.dynamic_batch(traced)
            details["dynamic_batch"] = "torch_neuronx"
        return Compiled(traced, details)

    def key_options(self, options: NeuronOptions) -> dict[str, Any]:
        return {"compiler_args": compiler_args(options), "dynamic_batch": options.dynamic_batch}

    def can_verify(self) -> bool:
        return neuron_device_present()

    def toolchain(self) -> dict[str, str | None]:
        torch_neuronx = _torch_neuronx()
        return {
            "torch-neuronx": getattr(torch_neuronx, "__version__", None) or _dist_version("torch-neuronx"),
            "neuronx-cc": _dist_version("neuronx-cc"),
        }


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
