"""The target registry: one line per compile target, naming its two halves and its artifact files.

A target is a compile half (a :class:`hatch_neuron.compile.base.CompileTarget` in ``compile/``, run at
build time) and a runtime half (a :class:`hatch_neuron.runtime.base.TargetLoader` in ``runtime/``, run by
the built package: is the target usable here, and how its artifacts load). Both are named here as
``module:Class`` strings and imported only when asked for, so this module is the bottom of the package:
it imports nothing of it (nor torch), and every stage, the settings model included, reads the target
names from it. Adding a target: one compile module, one runtime module, one line in :data:`REGISTRY`
(and, for a target that reads settings, its options class in ``compile/options.py``).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TargetInfo:
    """What every stage knows about a target without importing it."""

    name: str
    #: The compile half: ``module:Class`` under ``hatch_neuron.compile``.
    compiler: str
    #: The runtime half: ``module:Class`` under ``hatch_neuron.runtime``.
    loader: str
    #: How the runtime loads the artifact (recorded in each manifest entry and checked at load).
    artifact_format: str = "torchscript"
    suffix: str = ".pt"
    #: Files written beside the artifact, named ``<stem><suffix>`` (the runtime does not load them).
    companion_suffixes: tuple[str, ...] = ()
    #: Native code for one platform: the wheel gets a platform tag and an exact torch pin.
    platform_specific: bool = False
    #: The settings it reads: ``module:Class`` under ``hatch_neuron.compile`` (torch-free).
    options: str = "options:NoOptions"


#: Every target, in the order the settings reference lists them.
REGISTRY: dict[str, TargetInfo] = {
    info.name: info
    for info in (
        TargetInfo("neuron", "neuron:NeuronTarget", "neuron:NeuronLoader", options="options:NeuronOptions"),
        TargetInfo(
            "xla", "xla:XlaTarget", "xla:XlaLoader", "stablehlo", ".stablehlo.zip", (".hlo.pb",)
        ),
        TargetInfo(
            "inductor", "inductor:InductorTarget", "inductor:InductorLoader", "aoti", ".pt2",
            platform_specific=True, options="options:InductorOptions",
        ),
        TargetInfo("cpu", "cpu:CpuTarget", "cpu:CpuLoader"),
    )
}  # fmt: skip

TARGET_NAMES = tuple(REGISTRY)


class UnknownTarget(LookupError):
    """A target name that is not in the registry (the message lists the known ones)."""


def target_info(name: str) -> TargetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(TARGET_NAMES)
        raise UnknownTarget(f"unknown target {name!r}; this hatch-neuron knows {known}") from None


def _class(package: str, implementation: str) -> Any:
    module, _, cls = implementation.partition(":")
    return getattr(importlib.import_module(f"hatch_neuron.{package}.{module}"), cls)


def compiler(name: str) -> Any:
    """A new :class:`~hatch_neuron.compile.base.CompileTarget` of target ``name`` (imports it, and torch)."""
    return _class("compile", target_info(name).compiler)()


def options_type(name: str) -> Any:
    """The class of target ``name``'s options (:mod:`hatch_neuron.compile.options`, torch-free)."""
    return _class("compile", target_info(name).options)


@functools.cache
def loader(name: str) -> Any:
    """The :class:`~hatch_neuron.runtime.base.TargetLoader` of target ``name`` (imports it, and torch)."""
    return _class("runtime", target_info(name).loader)()
