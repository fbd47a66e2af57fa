"""TEST DOUBLE of ``torch_neuronx.experimental`` placement (``experimental/placement.py`` of torch-neuronx
1.13.1.1.12.0): the same validation of ``nc_count`` (0 and values below -1 are ``ValueError``; a count above
the visible cores is ``ValueError``; without a device, asking for the visible count is ``RuntimeError``), the
placement recorded on the graphs and in the call log; nothing is placed anywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .._runtime import bindings, default_placement, log_call, set_default_placement, visible_core_count


def _validate_nc_count(nc_count: int) -> None:
    if nc_count == 0:
        raise ValueError(f"Invalid NeuronCore count nc_count={nc_count}. Cannot be set to 0")
    if nc_count < -1:
        raise ValueError(f"Invalid NeuronCore count nc_count={nc_count}. Values less than -1 are invalid")
    if nc_count > 0:
        visible = visible_core_count()
        if nc_count > visible:
            raise ValueError(
                f"Invalid NeuronCore count nc_count={nc_count}. NeuronCores available: {visible}"
            )


def set_neuron_cores(trace: torch.jit.ScriptModule, start_nc: int = -1, nc_count: int = -1) -> None:
    """The graphs of ``trace`` go to cores ``start_nc ..`` (``-1``: the least used), ``nc_count`` of them."""
    _validate_nc_count(nc_count)
    for binding in bindings(trace):
        binding.start_nc, binding.nc_count = start_nc, nc_count
    log_call({"call": "set_neuron_cores", "start_nc": start_nc, "nc_count": nc_count})


def set_multicore(trace: torch.jit.ScriptModule) -> None:
    set_neuron_cores(trace, 0, visible_core_count())


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> Iterator[None]:
    """Models loaded inside go to cores ``start_nc .. start_nc + nc_count - 1``."""
    previous = default_placement()
    _validate_nc_count(nc_count)
    set_default_placement(start_nc, nc_count)
    log_call({"call": "neuron_cores_context", "start_nc": start_nc, "nc_count": nc_count})
    try:
        yield
    finally:
        set_default_placement(**previous)


@contextlib.contextmanager
def multicore_context() -> Iterator[None]:
    count = visible_core_count()
    previous = default_placement()
    set_default_placement(0, count)
    log_call({"call": "multicore_context", "nc_count": count})
    try:
        yield
    finally:
        set_default_placement(**previous)
