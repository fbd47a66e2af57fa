"""TEST DOUBLE of the functions that change a traced module's Neuron graphs in place
(``xla_impl/torchscript.py``: ``dynamic_batch``, ``async_load``, ``lazy_load``; the replace-weights API page
of the Neuron docs: ``replace_weights``)."""

from __future__ import annotations

import warnings

import torch

from ._runtime import bindings, log_call


def dynamic_batch(trace: torch.nn.Module, enable_dynamic_batch: bool = True) -> torch.nn.Module:
    """Turns dynamic batching on (or off) in every graph of ``trace``, in place; returns ``trace``."""
    for binding in bindings(trace):
        binding.dynamic_batching = enable_dynamic_batch
    log_call({"call": "dynamic_batch", "enable": enable_dynamic_batch})
    return trace


def async_load(trace: torch.nn.Module, enable_async_load: bool = True) -> None:
    """Real: the graphs load onto their cores in the background at ``torch.jit.load``. Returns None."""
    for binding in bindings(trace):
        binding.async_load = enable_async_load
    log_call({"call": "async_load", "enable": enable_async_load})


def lazy_load(trace: torch.nn.Module, enable_lazy_load: bool = True) -> None:
    """Real: the graphs load onto their cores at the first call, not at ``torch.jit.load``. Returns None."""
    for binding in bindings(trace):
        binding.lazy_load = enable_lazy_load
    log_call({"call": "lazy_load", "enable": enable_lazy_load})


def replace_weights(neuron_model: torch.jit.ScriptModule, weights: torch.nn.Module | dict) -> None:
    """Copies ``weights`` (a module or a state dict) into the graphs traced with
    ``inline_weights_to_neff=False``, in place; warns when the model has no separated weights."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    separated = [binding for binding in bindings(neuron_model) if binding.separate_weights]
    if not separated:
        warnings.warn(
            "replace_weights: the Neuron model does not contain any separated weights (it was traced with "
            "inline_weights_to_neff=True)",
            stacklevel=2,
        )
    with torch.no_grad():
        for binding in separated:
            for name, tensor in binding.compiled.state_dict().items():
                key = name.removeprefix("func.")
                if key in state:
                    tensor.copy_(state[key])
    log_call({"call": "replace_weights", "names": sorted(state)})
