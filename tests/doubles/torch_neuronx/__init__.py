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
- ``TORCH_NEURONX_DOUBLE_RELEASE=1.13.1.1.12.0``: behave as that release's code (no
  ``inline_weights_to_neff``, placement in ``experimental`` only).
- ``TORCH_NEURONX_DOUBLE_CORES=N``: act as a host with ``N`` NeuronCores (placement validation, the
  ``DataParallel`` default); unset, asking for the core count is the runtime error of a device-less host.
The placement functions are in ``experimental`` (up to SDK 2.24) and at the top level (the name since
SDK 2.25).

- ``TORCH_NEURONX_DOUBLE_VERSION``: the release it says it is (default ``2.13.0.2.99.0+testdouble``).
- ``TORCH_NEURONX_DOUBLE_UNSUPPORTED``: operator kinds ``analyze`` reports as unsupported.
"""

from __future__ import annotations

import inspect
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

#: The release whose ``trace`` keywords the double has: the 1.13.1.1.12.0 code (``RELEASE=1.13.1.1.12.0``:
#: no ``inline_weights_to_neff``, which that code only warns about, and no top-level placement names), the
#: API page before ``cpu_backend`` (default), or the current one (``CPU_BACKEND=1``).
RELEASE_1_13 = os.environ.get("TORCH_NEURONX_DOUBLE_RELEASE") == "1.13.1.1.12.0"
EXTRA_KEYWORDS = {"inline_weights_to_neff": True, "cpu_backend": False}
if RELEASE_1_13:
    EXTRA_KEYWORDS = {}
    __version__ = os.environ.get("TORCH_NEURONX_DOUBLE_VERSION", "1.13.1.1.12.0")
    for _name in ("multicore_context", "neuron_cores_context", "set_multicore", "set_neuron_cores"):
        del globals()[_name]
        __all__.remove(_name)
elif os.environ.get("TORCH_NEURONX_DOUBLE_CPU_BACKEND") != "1":
    del EXTRA_KEYWORDS["cpu_backend"]


def trace(
    func: Any,
    example_inputs: Any,
    *_: Any,
    input_output_aliases: dict = {},  # noqa: B006 - the documented default
    compiler_workdir: str | os.PathLike | None = None,
    compiler_args: str | list[str] | None = None,
    partitioner_config: Any = None,
    **kwargs: Any,
) -> Any:
    """``trace`` of the release above: the 1.13.1.1.12.0 code's parameters plus its release's documented
    keywords (its ``__signature__`` shows them, as the real function's does)."""
    keywords = {
        "input_output_aliases": input_output_aliases,
        "compiler_workdir": compiler_workdir,
        "compiler_args": compiler_args,
        "partitioner_config": partitioner_config,
    }
    for name, default in EXTRA_KEYWORDS.items():
        keywords[name] = kwargs.pop(name, default)
    return trace_impl(func, example_inputs, _, keywords, kwargs)


def _signature() -> inspect.Signature:
    signature = inspect.signature(trace)
    parameters = list(signature.parameters.values())
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in EXTRA_KEYWORDS.items()
    ]
    return signature.replace(parameters=parameters[:-1] + extra + parameters[-1:])


trace.__signature__ = _signature()  # type: ignore[attr-defined]
