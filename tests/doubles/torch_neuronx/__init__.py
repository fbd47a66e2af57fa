"""TEST DOUBLE of ``torch_neuronx``. It is not Neuron and nothing it produces is a Neuron result.

The real torch-neuronx cannot be installed here (no Neuron SDK, no device). This double follows the
public copy of torch-neuronx 1.13.1.1.12.0's Python code (GitHub ``gschaves/torch-neuronx``) and the Neuron
SDK's API pages in what it accepts, warns about and refuses, what it writes and what it returns; each
behaviour is pinned by ``tests/test_neuronx_double.py``, which names its source. What it cannot be: a
compiler or a device. The graph inside a traced module is a CPU ``torch.jit.trace`` of the model, and
``graph.neff`` is a text file saying so.

Switches (environment):

- ``TORCH_NEURONX_DOUBLE_LOG``: a file that gets one JSON line per API call (the tests' call log).
- ``TORCH_NEURONX_DOUBLE_CPU_BACKEND=1``: ``trace`` takes ``cpu_backend`` as newer SDKs' does.
- ``TORCH_NEURONX_DOUBLE_CORES=N``: act as a host with ``N`` NeuronCores (placement validation, the
  ``DataParallel`` default); unset, asking for the core count is the runtime error of a device-less host.
The placement functions are in ``experimental`` (up to SDK 2.24) and at the top level (the name since
SDK 2.25).

- ``TORCH_NEURONX_DOUBLE_VERSION``: the release it says it is (default ``2.13.0.2.99.0+testdouble``).
- ``TORCH_NEURONX_DOUBLE_UNSUPPORTED``: operator kinds ``analyze`` reports as unsupported.
"""

from __future__ import annotations

import os
from typing import Any

from . import experimental
from ._analyze import analyze
from ._bindings import async_load, dynamic_batch, lazy_load, replace_weights
from ._data_parallel import DataParallel
from ._runtime import log_call
from ._trace import move_trace_to_device, trace_impl
from .experimental import multicore_context, neuron_cores_context, set_multicore, set_neuron_cores

__version__ = os.environ.get("TORCH_NEURONX_DOUBLE_VERSION", "2.13.0.2.99.0+testdouble")
IS_TEST_DOUBLE = True

__all__ = [
    "DataParallel",
    "analyze",
    "async_load",
    "dynamic_batch",
    "experimental",
    "lazy_load",
    "log_call",
    "move_trace_to_device",
    "multicore_context",
    "neuron_cores_context",
    "replace_weights",
    "set_multicore",
    "set_neuron_cores",
    "trace",
]

if os.environ.get("TORCH_NEURONX_DOUBLE_CPU_BACKEND") == "1":

    def trace(
        func: Any,
        example_inputs: Any,
        *_: Any,
        input_output_aliases: dict = {},  # noqa: B006 - the documented default
        compiler_workdir: str | os.PathLike | None = None,
        compiler_args: str | list[str] | None = None,
        partitioner_config: Any = None,
        inline_weights_to_neff: bool = True,
        cpu_backend: bool = False,
        **kwargs: Any,
    ) -> Any:
        """The signature of the current trace API page (with ``cpu_backend``)."""
        keywords = dict(locals())
        return trace_impl(*_split(keywords))
else:

    def trace(
        func: Any,
        example_inputs: Any,
        *_: Any,
        input_output_aliases: dict = {},  # noqa: B006 - the documented default
        compiler_workdir: str | os.PathLike | None = None,
        compiler_args: str | list[str] | None = None,
        partitioner_config: Any = None,
        inline_weights_to_neff: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The signature of the trace API page before ``cpu_backend``."""
        keywords = dict(locals())
        return trace_impl(*_split(keywords))


def _split(arguments: dict[str, Any]) -> tuple:
    """``trace``'s arguments as ``trace_impl`` takes them: positional extras, keywords, unknown keywords."""
    func, example_inputs = arguments.pop("func"), arguments.pop("example_inputs")
    positional, unknown = arguments.pop("_"), arguments.pop("kwargs")
    return func, example_inputs, positional, arguments, unknown
