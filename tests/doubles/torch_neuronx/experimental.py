"""TEST DOUBLE of ``torch_neuronx.experimental`` placement APIs: records what it is asked, places nothing."""

from __future__ import annotations

import contextlib

from . import log_call


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1):
    """Models loaded inside would go to NeuronCores ``start_nc .. start_nc + nc_count - 1``."""
    log_call({"call": "neuron_cores_context", "start_nc": start_nc, "nc_count": nc_count})
    yield


def set_neuron_cores(trace, start_nc: int = -1, nc_count: int = -1) -> None:
    log_call({"call": "set_neuron_cores", "start_nc": start_nc, "nc_count": nc_count})
