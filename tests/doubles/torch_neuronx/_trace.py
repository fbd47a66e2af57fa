"""TEST DOUBLE of ``torch_neuronx.trace`` (``xla_impl/trace.py`` of torch-neuronx 1.13.1.1.12.0, and the
trace API page of the Neuron docs for ``inline_weights_to_neff`` and ``cpu_backend``).

What follows the real code: the argument handling (extra positional arguments mapped with a
``DeprecationWarning``, more than five a ``RuntimeError``; ``options`` / ``states`` deprecated; any other
keyword only a ``UserWarning``; ``compiler_args`` a str split like a shell line or a list;
``compiler_workdir`` a str or a ``Path``, a temporary one when not given), the workdir files
(``model/graph.hlo``, ``model/metadata.json``, ``command.txt`` and ``graph.neff``), and the result: a
module traced with ``strict=False`` around one Neuron graph binding, so a model returning a dict returns
a dict, and whose weights are inside the graph (``state_dict()`` empty) unless
``inline_weights_to_neff=False``.

What is not Neuron: the "graph" is ``torch.jit.trace`` of the model on the CPU (frozen when the weights are
inlined), ``graph.neff`` is a text file saying so, and no compiler runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._graph import script_graph
from ._runtime import log_call

#: What the Neuron libraries would have read when they were imported (device-less hosts set it first).
PLATFORM_AT_IMPORT = os.environ.get("NEURON_PLATFORM_TARGET_OVERRIDE")
NEFF_TEXT = "TEST DOUBLE: not a NEFF. No Neuron compiler ran; the graph inside the module is a CPU trace.\n"
_POSITIONAL = ("states", "input_output_aliases", "compiler_workdir", "compiler_args", "options")


class _FlatGraph(torch.nn.Module):
    """``func`` with its inputs taken as one list and its outputs flattened (the HLO's parameter and
    result tuples)."""

    def __init__(self, func: Any) -> None:
        super().__init__()
        self.func = func

    def forward(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return pytree.tree_leaves(self.func(*tensors))


class NeuronModule(torch.nn.Module):
    """The real ``NeuronModule``: flat inputs into the graph binding, its outputs packed back."""

    def __init__(self, graph: torch.jit.ScriptModule, packer: pytree.TreeSpec) -> None:
        super().__init__()
        self.model = graph
        self.packer = packer

    def forward(self, *tensors: torch.Tensor) -> Any:
        return pytree.tree_unflatten(self.model(list(tensors)), self.packer)


def _arguments(positional: tuple, keywords: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if positional:
        warnings.warn(
            f"Received {2 + len(positional)} positional arguments but expected 2. Use of positional "
            "arguments after `func` and `example_inputs` is deprecated. Please specify keyword arguments "
            "instead.",
            category=DeprecationWarning,
            stacklevel=3,
        )
        if len(positional) > 5:
            raise RuntimeError(f"Received {2 + len(positional)} positional arguments but expected 2")
        for name, value in zip(_POSITIONAL, positional, strict=False):
            if value is not None and name in ("states", "options"):
                kwargs.setdefault(name, value)  # a keyword given too wins, as in the real code
            elif value is not None:
                keywords[name] = value
    for name in ("options", "states"):
        if kwargs.pop(name, None) is not None:
            warnings.warn(f"Argument `{name}` is deprecated", category=DeprecationWarning, stacklevel=3)
    if kwargs:
        warnings.warn(
            f"Unexpected keyword arguments: {list(kwargs.keys())}", category=UserWarning, stacklevel=3
        )
    return keywords


def _write_workdir(workdir: Path, args: list[str]) -> None:
    model = workdir / "model"
    (model / "weights").mkdir(parents=True, exist_ok=True)
    (model / "graph.hlo").write_text("TEST DOUBLE: not HLO\n")
    (model / "metadata.json").write_text(
        json.dumps({"model_files": "graph.hlo", "version": "1.0", "weights": {}}, indent=4)
    )
    command = ["neuronx-cc", "compile", "model", "--framework", "XLA", "--target", "trn1", "--output"]
    command += ["graph.neff", *args]
    (workdir / "command.txt").write_text(" ".join(os.path.basename(str(item)) for item in command))
    (workdir / "graph.neff").write_text(NEFF_TEXT)


def _compiled_graph(func: Any, examples: list[torch.Tensor], inline_weights: bool) -> torch.jit.ScriptModule:
    graph = torch.jit.trace(_FlatGraph(func), (examples,), strict=False)
    if not inline_weights:
        return graph
    frozen = torch.jit.freeze(graph.eval())
    # a frozen module cannot be a scripted module's attribute until it has been through save and load
    buffer = io.BytesIO()
    torch.jit.save(frozen, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def trace_impl(
    func: Any,
    example_inputs: Any,
    positional: tuple,
    keywords: dict[str, Any],
    kwargs: dict[str, Any],
) -> torch.jit.ScriptModule:
    keywords = _arguments(positional, keywords, kwargs)
    if not callable(func):
        raise TypeError(f"func must be a torch.nn.Module or a callable, got {type(func).__name__}")
    if keywords.get("partitioner_config") is not None or keywords.get("input_output_aliases"):
        raise NotImplementedError(
            "TEST DOUBLE of torch_neuronx: partitioner_config and input_output_aliases are accepted as "
            "documented but not modelled"
        )
    # as the real code: anything but a tuple is one argument (the double models tensor arguments only)
    examples = list(example_inputs) if isinstance(example_inputs, tuple) else [example_inputs]
    if not all(isinstance(t, torch.Tensor) for t in examples):
        raise TypeError(f"example_inputs must be a Tensor or a tuple of Tensors, got {example_inputs!r:.80}")
    args = keywords.get("compiler_args") or []
    args = shlex.split(args) if isinstance(args, str) else list(args)
    workdir = keywords.get("compiler_workdir")
    with tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(workdir) as folder:
        _write_workdir(Path(folder), args)
    inline = keywords.get("inline_weights_to_neff", True)
    log_call(
        {
            "call": "trace",
            "func": type(func).__name__,
            "example_inputs": [list(t.shape) for t in examples],
            "compiler_workdir": None if workdir is None else str(workdir),
            "compiler_args": keywords.get("compiler_args"),
            "inline_weights_to_neff": inline,
            "cpu_backend": keywords.get("cpu_backend", False),
            "platform_target_override_at_import": PLATFORM_AT_IMPORT,
        }
    )
    with torch.no_grad():
        packer = pytree.tree_structure(func(*examples))
        graph = script_graph(_compiled_graph(func, examples, inline), examples, NEFF_TEXT, not inline)
        return torch.jit.trace(NeuronModule(graph, packer), tuple(examples), strict=False)


def move_trace_to_device(trace: torch.jit.ScriptModule, device_id: int) -> None:
    """Real: sets the runtime's default start core and moves the trace's states to that core."""
    from ._runtime import set_default_placement, visible_core_count

    if not 0 <= device_id < visible_core_count():
        raise RuntimeError(f"NeuronCore {device_id} is not visible to this process")
    set_default_placement(device_id, -1)
    log_call({"call": "move_trace_to_device", "device_id": device_id})
