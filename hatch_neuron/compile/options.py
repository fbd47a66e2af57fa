"""Each target's own options: what it reads of the settings, as a plain, picklable dataclass.

Torch-free, so the build process computes them (for the direct cache key and for pre-flight) without
importing a target. The registry (:mod:`hatch_neuron.targets`) names each target's class; a target that
reads no settings has :class:`NoOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import NeuronSettings
    from ..plan import ModelPlan


@dataclass(frozen=True)
class NoOptions:
    """A target that reads no settings."""

    @classmethod
    def from_settings(cls, settings: NeuronSettings, model: ModelPlan | None = None) -> NoOptions:
        return cls()


@dataclass(frozen=True)
class NeuronOptions:
    #: ``compiler-args`` (the model's own where it sets them).
    compiler_args: list[str] = field(default_factory=list)
    #: ``neuron-target``: neuronx-cc's ``--target``.
    neuron_target: str | None = None
    #: The model is dynamically batched and has one artifact: ``torch_neuronx.dynamic_batch`` applies.
    dynamic_batch: bool = False
    #: The typed ``neuron-options`` that are set, by TOML key (the model's over the project's).
    chosen: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: NeuronSettings, model: ModelPlan | None = None) -> NeuronOptions:
        """For ``model``'s jobs, or for pre-flight without one."""
        return cls(
            list(settings.compiler_args if model is None else model.compiler_args),
            settings.neuron_target,
            model is not None and model.settings.dynamic_batch and len(model.buckets()) == 1,
            (settings.neuron_options if model is None else model.neuron_options).chosen(),
        )

    @property
    def inline_weights(self) -> bool:
        return self.chosen.get("inline-weights", True)


@dataclass(frozen=True)
class InductorOptions:
    #: ``inductor-device``.
    device: str = "cpu"
    #: ``inductor-configs``: extra AOTInductor settings.
    configs: dict[str, bool | int | float | str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: NeuronSettings, model: ModelPlan | None = None) -> InductorOptions:
        return cls(settings.inductor_device, dict(settings.inductor_configs))
