"""The settings that targets read (a plain, picklable subset of ``NeuronSettings``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TargetOptions:
    compiler_args: list[str] = field(default_factory=list)
    neuron_target: str | None = None
    #: The model is dynamically batched and has one artifact per target: targets with a native dynamic
    #: batching (``torch_neuronx.dynamic_batch``) apply it; the others leave it to the loader.
    dynamic_batch: bool = False
    inductor_device: str = "cpu"
    #: ``inductor-configs``: extra AOTInductor settings.
    inductor_configs: dict[str, bool | int | float | str] = field(default_factory=dict)
