"""The callable that built packages expose for each compiled model."""

from __future__ import annotations

import threading
from typing import Any

import torch

from .manifest import read_artifact, read_manifest
from .pytree import unflatten
from .targets import Selection, load_artifact, select_target

_selections: dict[str, Selection] = {}


def selection(package: str) -> Selection:
    """The target this process uses for ``package`` (chosen once, on first use)."""
    if package not in _selections:
        _selections[package] = select_target(package, read_manifest(package))
    return _selections[package]


class CompiledModel:
    """A compiled model with Neuron's fixed input shapes and dtypes enforced on every target.

    Calling it checks the inputs against the declared specs, runs the artifact and returns outputs in
    the structure the eager model returned (tensor, tuple, list or dict). Every target loaded here
    returns CPU tensors (a Neuron traced module copies its outputs back to the host itself).
    """

    def __init__(self, package: str, name: str, *, lazy: bool = False) -> None:
        manifest = read_manifest(package)
        if name not in manifest["models"]:
            raise LookupError(
                f"package {package!r} has no compiled model {name!r}; it has: {', '.join(manifest['models'])}"
            )
        self.package = package
        self.name = name
        self.target = selection(package).target
        entry = manifest["models"][name]
        self._artifact = entry["artifacts"][self.target]
        self._tree = entry["outputs"]["tree"]
        self.input_shapes = [tuple(spec["shape"]) for spec in entry["inputs"]]
        self.input_dtypes = [getattr(torch, spec["dtype"]) for spec in entry["inputs"]]
        self._module: Any = None
        self._lock = threading.Lock()
        if not lazy:
            self.load()

    def load(self) -> Any:
        """Load (once) and return the underlying module; verifies the artifact's sha256 first."""
        with self._lock:
            if self._module is None:
                data = read_artifact(self.package, self._artifact["file"], self._artifact["sha256"])
                self._module = load_artifact(self.target, data, read_manifest(self.package))
        return self._module

    def check_inputs(self, args: tuple[Any, ...]) -> None:
        if len(args) != len(self.input_shapes):
            raise TypeError(f"{self.name}: takes {len(self.input_shapes)} input(s), got {len(args)}")
        specs = zip(args, self.input_shapes, self.input_dtypes, strict=True)
        for index, (arg, shape, dtype) in enumerate(specs):
            if not isinstance(arg, torch.Tensor):
                raise TypeError(
                    f"{self.name}: input {index} must be a torch.Tensor, got {type(arg).__name__}"
                )
            if arg.dtype != dtype:
                raise TypeError(
                    f"{self.name}: input {index} has dtype {arg.dtype}, expected {dtype} "
                    "(compiled dtypes are fixed; convert with .to())"
                )
            if arg.shape != shape:
                raise ValueError(
                    f"{self.name}: input {index} has shape {list(arg.shape)}, expected {list(shape)} "
                    "(compiled shapes are fixed)"
                )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{self.name}: takes positional inputs only, got keywords {sorted(kwargs)}")
        self.check_inputs(args)
        module = self._module if self._module is not None else self.load()
        # no_grad rather than inference_mode: callers may modify the outputs in place afterwards.
        with torch.no_grad():
            flat = module(*args)
        if self._tree == "T":  # the common case, kept off the generic path
            return flat[0]
        return unflatten(flat, self._tree)

    def __repr__(self) -> str:
        specs = zip(self.input_shapes, self.input_dtypes, strict=True)
        shapes = ", ".join(f"{list(s)}:{str(d).removeprefix('torch.')}" for s, d in specs)
        return f"<CompiledModel {self.package}.{self.name} target={self.target} inputs=({shapes})>"
