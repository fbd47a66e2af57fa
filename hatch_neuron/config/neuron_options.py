"""``neuron-options = { ... }``: the options Neuron users set, typed, and the exact flag or call each becomes.

neuronx-cc flags (the Neuron Compiler CLI reference): ``--auto-cast``, ``--auto-cast-type``, ``--optlevel``,
``--model-type``. torch-neuronx (its API pages): ``inline_weights_to_neff`` of ``trace``, and
``torch_neuronx.async_load`` / ``lazy_load`` applied after ``trace`` and before ``torch.jit.save``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

AUTO_CAST = ("none", "matmult", "all")
AUTO_CAST_TYPES = ("bf16", "fp16", "tf32", "fp8_e4m3")
MODEL_TYPES = ("generic", "transformer", "unet-inference")
OPTLEVELS = (1, 2, 3)

#: Typed option (its TOML key) -> the neuronx-cc flag it becomes.
COMPILER_FLAGS = {
    "auto-cast": "--auto-cast",
    "auto-cast-type": "--auto-cast-type",
    "optlevel": "--optlevel",
    "model-type": "--model-type",
}


def _optlevel(value: int | None) -> str | None:
    return None if value is None or value in OPTLEVELS else f"must be 1, 2 or 3, got {value}"


@dataclass(frozen=True)
class NeuronOptionSettings:
    """Typed options of target ``neuron``, at the top level and per model; a model's keys win, key by key.

    A key left out adds nothing: neuronx-cc's and torch-neuronx's own defaults apply."""

    auto_cast: Literal[AUTO_CAST] | None = None  # type: ignore[valid-type]
    """``--auto-cast``: which operations neuronx-cc casts to ``auto-cast-type``: ``none``, ``matmult``
    (matrix multiplications) or ``all``. neuronx-cc's default changed from ``matmult`` to ``none`` in
    Neuron SDK 2.27."""

    auto_cast_type: Literal[AUTO_CAST_TYPES] | None = None  # type: ignore[valid-type]
    """``--auto-cast-type``: the type ``auto-cast`` casts to: ``bf16`` (neuronx-cc's default), ``fp16``,
    ``tf32`` or ``fp8_e4m3``."""

    optlevel: int | None = field(
        default=None, metadata={"check": _optlevel, "schema": {"enum": list(OPTLEVELS)}}
    )
    """``--optlevel``: 1 (fastest compile), 2 (neuronx-cc's default) or 3 (most optimisation)."""

    model_type: Literal[MODEL_TYPES] | None = None  # type: ignore[valid-type]
    """``--model-type``: ``generic`` (neuronx-cc's default), ``transformer`` or ``unet-inference``."""

    inline_weights: bool | None = None
    """``inline_weights_to_neff`` of ``torch_neuronx.trace``: true (torch-neuronx's default) compiles the
    weights into the NEFF; false keeps them beside it, so ``torch_neuronx.replace_weights`` can swap them
    (the compiler then cannot fold or re-lay them out). Needs torch-neuronx of Neuron SDK 2.18 (2.16 for
    some releases)."""

    async_load: bool | None = None
    """``torch_neuronx.async_load`` on the traced model before it is saved: it loads onto its NeuronCore
    in a background thread at ``torch.jit.load``; its first call waits for that."""

    lazy_load: bool | None = None
    """``torch_neuronx.lazy_load`` on the traced model before it is saved: it loads onto its NeuronCore
    at its first call instead of at ``torch.jit.load``."""

    def validate(self, path: str) -> None:
        if self.auto_cast_type is not None and self.auto_cast == "none":
            raise ConfigError(
                f"{path}.auto-cast-type",
                'has no effect with auto-cast = "none"',
                'set auto-cast = "matmult" or "all", or leave auto-cast-type out',
            )

    def merged(self, model: NeuronOptionSettings | None) -> NeuronOptionSettings:
        """These options with ``model``'s set keys replacing them."""
        if model is None:
            return self
        return dataclasses.replace(self, **{k.replace("-", "_"): v for k, v in model.chosen().items()})

    def chosen(self) -> dict[str, Any]:
        """The keys that are set, by their TOML names: what the manifest records and ``inspect`` shows."""
        return {
            f.name.replace("_", "-"): getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


def compiler_flags(chosen: dict[str, Any]) -> list[str]:
    """The neuronx-cc flags of the chosen typed options, in a fixed order."""
    flags: list[str] = []
    for key, flag in COMPILER_FLAGS.items():
        if key in chosen:
            flags += [flag, str(chosen[key])]
    return flags


def raw_flag_values(args: list[str]) -> dict[str, str]:
    """The typed options that raw ``compiler-args`` set themselves (``--optlevel 3``, ``--optlevel=3``,
    ``-O3``, ``-O 3``, ...), by TOML key. Abbreviated flags are not recognised."""
    by_flag = {flag: key for key, flag in COMPILER_FLAGS.items()} | {"-O": "optlevel"}
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in by_flag and not equals:
            following = args[i + 1] if i + 1 < len(args) else ""
            value = "" if following.startswith("-") else following
        elif not equals and arg.startswith("-O") and arg[2:].isdigit():
            name, value = "-O", arg[2:]
        if name in by_flag:
            key = by_flag[name]
            found[key] = str(int(value)) if key == "optlevel" and value.isdigit() else value
    return found


def target_in_args(args: list[str]) -> str | None:
    """The last ``--target`` of ``args`` (the one neuronx-cc takes), or None."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--target" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--target="):
            found = arg.partition("=")[2]
    return found


def conflict(chosen: dict[str, Any], args: list[str]) -> tuple[str, str] | None:
    """The first typed option that ``args`` set to another value: (key, the raw value)."""
    for key, value in raw_flag_values(args).items():
        if key in chosen and str(chosen[key]) != value:
            return key, value
    return None
