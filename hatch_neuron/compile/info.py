"""What the build process needs to know about each target without importing it (or torch): file names,
format, whether its artifacts are native code, and where its :class:`CompileTarget` lives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetInfo:
    name: str
    #: ``module:Class`` under ``hatch_neuron.compile``.
    implementation: str
    #: How the runtime loads the artifact (recorded in the manifest).
    artifact_format: str = "torchscript"
    suffix: str = ".pt"
    #: Files written beside the artifact, named ``<stem><suffix>`` (the runtime does not load them).
    companion_suffixes: tuple[str, ...] = ()
    #: Native code for one platform: the wheel gets a platform tag and an exact torch pin.
    platform_specific: bool = False


TARGET_INFO = {
    info.name: info
    for info in (
        TargetInfo("neuron", "neuron:NeuronTarget"),
        TargetInfo("xla", "xla:XlaTarget", "stablehlo", ".stablehlo.zip", (".hlo.pb",)),
        TargetInfo("inductor", "inductor:InductorTarget", "aoti", ".pt2", platform_specific=True),
        TargetInfo("cpu", "cpu:CpuTarget"),
    )
}
