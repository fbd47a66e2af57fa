"""The ``[tool.neuron]`` settings model: typed dataclasses, one docstring per option.

Field names are the TOML keys with ``-`` written as ``_``. The string under each field is its
documentation: ``hatch_neuron.config.docs`` renders the README reference from it, so keep it to what a
user needs. Checks that involve one value live in ``field(metadata=...)``; checks that involve several
live in ``validate``. The converter in ``parse.py`` applies both and reports the key path.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigError

#: dtype names accepted in ``inputs[].dtype`` (torch attribute names).
DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
#: Compile targets this release can build.
TARGETS = ("neuron", "cpu")
#: Values of ``neuron-target`` (neuronx-cc ``--target``).
NEURON_INSTANCE_TARGETS = ("inf2", "trn1", "trn1n", "trn2")

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _positive_shape(shape: list[int]) -> str | None:
    if not shape:
        return "a shape needs at least one dimension"
    bad = [d for d in shape if d <= 0]
    return f"dimensions must be positive integers, got {bad[0]}" if bad else None


def _factory(value: str) -> str | None:
    if _FACTORY.match(value) and not any(keyword.iskeyword(p) for p in re.split(r"[.:]", value)):
        return None
    return f"{value!r} is not 'module:attribute' (for example 'mypkg.nets:make_encoder')"


def _dotted_name(value: str) -> str | None:
    if _DOTTED.match(value) and not any(keyword.iskeyword(p) for p in value.split(".")):
        return None
    return f"{value!r} is not a dotted Python import name"


def _identifier(value: str) -> str | None:
    if value.isidentifier() and not keyword.iskeyword(value) and not value.startswith("_"):
        return None
    return (
        f"{value!r} is not a public Python identifier (letters, digits, '_'; not a keyword; no leading '_')"
    )


@dataclass(frozen=True)
class InputSpec:
    """One positional input of a model."""

    shape: list[int] = field(metadata={"check": _positive_shape})
    """Static shape, for example ``[1, 128]``. Compiled artifacts accept exactly this shape."""

    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    """Element type: one of float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool."""

    low: float | None = None
    """Lower bound (inclusive) of the example values. Default: 0 for integers, standard normal for floats."""

    high: float | None = None
    """Upper bound (exclusive) of the example values. Default: 2 for integers. Token inputs want the
    vocabulary size here."""

    def validate(self, path: str) -> None:
        if self.dtype == "bool":
            for name in ("low", "high"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{path}.{name}", "bool inputs take no low/high (values are 0 or 1)")
            return
        if self.dtype in INTEGER_DTYPES:
            for name in ("low", "high"):
                value = getattr(self, name)
                if value is not None and value != int(value):
                    raise ConfigError(
                        f"{path}.{name}", f"{self.dtype} inputs need an integer bound, got {value}"
                    )
        if (self.low is None) != (self.high is None) and self.dtype not in INTEGER_DTYPES:
            raise ConfigError(path, "give both low and high for a float input, or neither")
        low, high = self.bounds()
        if low is not None and high is not None and not low < high:
            raise ConfigError(f"{path}.high", f"high ({high}) must be greater than low ({low})")

    def bounds(self) -> tuple[float | None, float | None]:
        """The effective (low, high), with the integer defaults filled in."""
        if self.dtype in INTEGER_DTYPES:
            return (self.low if self.low is not None else 0, self.high if self.high is not None else 2)
        return self.low, self.high


@dataclass(frozen=True)
class ModelSettings:
    """``[tool.neuron.models.<name>]``: one model to compile. The name is how users import it."""

    factory: str = field(metadata={"check": _factory})
    """``"module:attribute"`` naming a callable that takes no arguments and returns an ``nn.Module`` or a
    function of tensors. Imported from the project being built (flat or ``src/`` layout)."""

    inputs: list[InputSpec]
    """One table per positional input, in call order."""

    rtol: float | None = None
    """Relative tolerance of the build-time check of compiled against eager output. Default by output
    dtype: 1e-4 for float64, 1e-3 for float32, 1e-2 for float16/bfloat16, exact for integers."""

    atol: float | None = None
    """Absolute tolerance of that check. Default by output dtype: 1e-6 (float64), 1e-4 (float32),
    1e-2 (16-bit)."""

    def validate(self, path: str) -> None:
        if not self.inputs:
            raise ConfigError(f"{path}.inputs", "a model needs at least one input")
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{path}.{name}", f"must be >= 0, got {value}")


@dataclass(frozen=True)
class NeuronSettings:
    """``[tool.neuron]``: what to compile and how the built package loads it."""

    models: dict[str, ModelSettings] = field(metadata={"key_check": _identifier})
    """The models, one table each; the table name is the name users import."""

    targets: list[Literal[TARGETS]] = field(default_factory=lambda: ["neuron"])  # type: ignore[valid-type]
    """Compile targets, in order of preference at load time: ``neuron`` (``torch_neuronx.trace``),
    ``cpu`` (TorchScript, runs anywhere). ``HATCH_NEURON_TARGETS=cpu`` (comma-separated) replaces this at
    build time."""

    module: str = field(default="compiled", metadata={"check": _identifier})
    """Name of the generated module: models are imported from ``<package>.<module>``."""

    package: str | None = field(default=None, metadata={"check": _dotted_name})
    """Import package that receives the artifacts. Default: inferred from the project name, or the only
    top-level package of the project."""

    compiler_args: list[str] = field(default_factory=list)
    """Arguments passed to neuronx-cc (``compiler_args`` of ``torch_neuronx.trace``) for target ``neuron``."""

    neuron_target: Literal[NEURON_INSTANCE_TARGETS] | None = None  # type: ignore[valid-type]
    """Instance family to compile for (``--target`` of neuronx-cc): inf2, trn1, trn1n or trn2. Needed
    where the build host has no Neuron device."""

    load: Literal["import", "lazy"] = "import"
    """``import``: load every model when the generated module is imported; ``lazy``: on first call."""

    timeout: float = 3600.0
    """Seconds one model may take to import, trace, compile and verify before the build fails.
    ``HATCH_NEURON_TIMEOUT`` overrides it."""

    def validate(self, path: str) -> None:
        if not self.models:
            raise ConfigError(
                f"{path}.models", "declare at least one model, e.g. [tool.neuron.models.encoder]"
            )
        if not self.targets:
            raise ConfigError(f"{path}.targets", f"list at least one target; allowed: {', '.join(TARGETS)}")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"{path}.targets", f"a target is listed twice: {self.targets}")
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout", f"must be > 0 seconds, got {self.timeout}")
        lowered: dict[str, str] = {}
        for name in self.models:
            if name.lower() in lowered:
                raise ConfigError(
                    f"{path}.models.{name}",
                    f"duplicate model name: {name!r} and {lowered[name.lower()]!r} differ only in case "
                    "(artifact files would collide on case-insensitive file systems)",
                )
            lowered[name.lower()] = name
