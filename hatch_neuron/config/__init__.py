"""Parse and validate ``[tool.neuron]``: the first stage of the build."""

from .errors import ConfigError
from .model import DTYPES, TARGETS, InputSpec, ModelSettings, NeuronSettings
from .parse import has_neuron_table, load_settings, read_pyproject, settings_from_table

__all__ = [
    "DTYPES",
    "TARGETS",
    "ConfigError",
    "InputSpec",
    "ModelSettings",
    "NeuronSettings",
    "has_neuron_table",
    "load_settings",
    "read_pyproject",
    "settings_from_table",
]
