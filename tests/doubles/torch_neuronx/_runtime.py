"""TEST DOUBLE: the part of the Neuron runtime the Python API asks about (visible NeuronCores, the default
placement) and the ``torch.classes.neuron.Model`` bindings inside traced modules.

A real host has NeuronCores only with a device; here ``TORCH_NEURONX_DOUBLE_CORES=N`` makes the double
behave as if the host had ``N`` (nothing runs on them). Without it, asking for the core count fails the
way the real runtime does on a host without a device (``experimental/placement.py``:
``_get_neuron_visible_core_count``).
"""

from __future__ import annotations

import json
import os

import torch

#: The class name of the scripted module that stands in for ``torch.classes.neuron.Model``.
BINDING = "NeuronGraph"
_default_placement = {"start_nc": -1, "nc_count": -1}


def log_call(record: dict) -> None:
    """Append ``record`` as a JSON line to ``$TORCH_NEURONX_DOUBLE_LOG`` (the tests' call log)."""
    log = os.environ.get("TORCH_NEURONX_DOUBLE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")


def _visible_cores(spec: str, total: int) -> list[int]:
    cores: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        cores.extend(range(int(first), int(last or first) + 1))
    return [core for core in cores if core < total]


def visible_core_count() -> int:
    """The NeuronCores this process sees: the double's pretend device, narrowed by
    ``NEURON_RT_VISIBLE_CORES`` (an index, a range ``0-3`` or a comma list) like the runtime does."""
    total = os.environ.get("TORCH_NEURONX_DOUBLE_CORES")
    if not total:
        raise RuntimeError(
            "Neuron runtime cannot be initialized; cannot determine the number of available NeuronCores"
        )
    spec = os.environ.get("NEURON_RT_VISIBLE_CORES")
    return len(_visible_cores(spec, int(total))) if spec else int(total)


def default_placement() -> dict[str, int]:
    return dict(_default_placement)


def set_default_placement(start_nc: int, nc_count: int) -> None:
    _default_placement.update(start_nc=start_nc, nc_count=nc_count)


def bindings(trace: torch.nn.Module) -> list[torch.jit.ScriptModule]:
    """The Neuron graphs inside ``trace`` (``xla_impl/torchscript.py``: ``get_model_bindings``)."""
    return [
        module
        for module in trace.modules()
        if isinstance(module, torch.jit.ScriptModule) and module.original_name == BINDING
    ]
