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

from ..config.neuron_options import compiler_flags, raw_flag_values, target_in_args
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


def compiled_for(options: NeuronOptions) -> str | None:
    """The instance family neuronx-cc compiles for: the last ``--target`` of the args (the one it takes),
    else ``neuron-target``."""
    return target_in_args(options.compiler_args) or options.neuron_target


def compiler_args(options: NeuronOptions) -> list[str]:
    """``compiler-args``, then the flags of the typed ``neuron-options`` the args do not already set
    (config validation refused those that set them to another value), then ``--target`` from
    ``neuron-target`` unless the args set one."""
    args = list(options.compiler_args)
    already = raw_flag_values(args)
    args += compiler_flags({k: v for k, v in options.chosen.items() if k not in already})
    if options.neuron_target and target_in_args(args) is None:
        args += ["--target", options.neuron_target]
    return args


def _require(torch_neuronx: Any, name: str, option: str) -> Any:
    if not hasattr(torch_neuronx, name):
        raise TargetUnavailable(
            f"neuron-options {option} needs torch_neuronx.{name}, which the installed torch-neuronx "
            f"{getattr(torch_neuronx, '__version__', '?')} lacks: install a newer Neuron SDK release"
        )
    return getattr(torch_neuronx, name)


class NeuronTarget(CompileTarget):
    info = REGISTRY["neuron"]
    requires_module = "torch_neuronx"
    install_hint = INSTALL_HINT

    def environment(self, options: NeuronOptions) -> dict[str, str]:
        # Device-less build hosts: the Neuron libraries read the platform when they are imported.
        if compiled_for(options) and not neuron_device_present():
            return {"NEURON_PLATFORM_TARGET_OVERRIDE": str(compiled_for(options))}
        return {}

    def compile(
        self,
        module: torch.nn.Module,
        example_inputs: tuple[torch.Tensor, ...],
        workdir: Path,
        options: NeuronOptions,
    ) -> Compiled:
        torch_neuronx = _torch_neuronx()
        args = compiler_args(options)
        kwargs: dict[str, Any] = {"compiler_workdir": str(workdir), "compiler_args": args}
        parameters = inspect.signature(torch_neuronx.trace).parameters
        # Newer SDKs trace on hosts without a device only when asked to (and then need --target).
        if not neuron_device_present() and "cpu_backend" in parameters:
            if target_in_args(args) is None:
                raise TargetUnavailable(
                    "this host has no Neuron device, and torch-neuronx then compiles only for a given "
                    'instance family: set neuron-target = "inf2" (or trn1, trn1n, trn2) in [tool.neuron]'
                )
            kwargs["cpu_backend"] = True
        if not options.inline_weights:
            if "inline_weights_to_neff" not in parameters:
                # older releases only warn about the keyword and inline the weights anyway
                raise TargetUnavailable(
                    "neuron-options inline-weights = false needs torch_neuronx.trace's "
                    "inline_weights_to_neff (Neuron SDK 2.18; 2.16 for some releases); the installed "
                    f"torch-neuronx {getattr(torch_neuronx, '__version__', '?')} lacks it"
                )
            kwargs["inline_weights_to_neff"] = False
        traced = torch_neuronx.trace(module, example_inputs, **kwargs)
        details: dict[str, Any] = {"compiler_args": args, "cpu_backend": kwargs.get("cpu_backend", False)}
        if compiled_for(options):
            details["neuron_target"] = compiled_for(options)
        if options.chosen:
            details["neuron_options"] = dict(options.chosen)
        if options.dynamic_batch:
            traced = torch_neuronx.dynamic_batch(traced)
            details["dynamic_batch"] = "torch_neuronx"
        # documented order: right after trace, before torch.jit.save
        for option, call in (("async-load", "async_load"), ("lazy-load", "lazy_load")):
            if options.chosen.get(option):
                _require(torch_neuronx, call, f"{option} = true")(traced)
        return Compiled(traced, details)

    def key_options(self, options: NeuronOptions) -> dict[str, Any]:
        return {
            "compiler_args": compiler_args(options),
            "dynamic_batch": options.dynamic_batch,
            "neuron_options": dict(sorted(options.chosen.items())),
        }

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
