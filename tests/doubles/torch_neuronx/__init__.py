"""TEST DOUBLE of ``torch_neuronx``. It is not Neuron and nothing it produces is a Neuron result.

The real torch-neuronx cannot be installed here (no Neuron SDK, no device). This double enforces the
documented call contract of ``torch_neuronx.trace`` (see shared/seed): ``func`` a module or callable,
``example_inputs`` a tensor or tuple of tensors, keyword-only ``compiler_workdir`` (str) and
``compiler_args`` (str or list of str). It records each call as a JSON line in the file named by
``TORCH_NEURONX_DOUBLE_LOG`` and returns ``torch.jit.trace(func, example_inputs)``, so the artifact it
produces runs on the CPU. ``dynamic_batch`` is not provided yet.

``TORCH_NEURONX_DOUBLE_CPU_BACKEND=1`` makes ``trace`` also accept ``cpu_backend`` like newer SDKs.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch

__version__ = "2.13.0.2.99.0+testdouble"
IS_TEST_DOUBLE = True


class ContractError(TypeError):
    """A call that the documented torch_neuronx.trace would not accept."""


def _check_inputs(example_inputs):
    if isinstance(example_inputs, torch.Tensor):
        return
    if not isinstance(example_inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise ContractError(
            f"example_inputs must be a Tensor or a tuple of Tensors, got {example_inputs!r:.80}"
        )


def _check_compiler_args(compiler_args):
    if compiler_args is None or isinstance(compiler_args, str):
        return
    if not isinstance(compiler_args, list) or not all(isinstance(a, str) for a in compiler_args):
        raise ContractError(f"compiler_args must be a str or a list of str, got {compiler_args!r}")


def _trace(func, example_inputs, *, compiler_workdir=None, compiler_args=None, cpu_backend=False):
    if not callable(func):
        raise ContractError(f"func must be a torch.nn.Module or a callable, got {type(func).__name__}")
    _check_inputs(example_inputs)
    _check_compiler_args(compiler_args)
    if compiler_workdir is not None:
        if not isinstance(compiler_workdir, str):
            raise ContractError(f"compiler_workdir must be a str, got {type(compiler_workdir).__name__}")
        Path(compiler_workdir).mkdir(parents=True, exist_ok=True)
        (Path(compiler_workdir) / "graph.neff.testdouble").write_text(
            "not a NEFF: produced by a test double\n"
        )
    log = os.environ.get("TORCH_NEURONX_DOUBLE_LOG")
    if log:
        record = {
            "func": type(func).__name__,
            "example_inputs": [
                list(t.shape)
                for t in ((example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs)
            ],
            "compiler_workdir": compiler_workdir,
            "compiler_args": compiler_args,
            "cpu_backend": cpu_backend,
        }
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
    return torch.jit.trace(func, example_inputs)


if os.environ.get("TORCH_NEURONX_DOUBLE_CPU_BACKEND") == "1":

    def trace(func, example_inputs, *_, compiler_workdir=None, compiler_args=None, cpu_backend=False):
        """Newer-SDK signature (with ``cpu_backend``)."""
        return _trace(
            func,
            example_inputs,
            compiler_workdir=compiler_workdir,
            compiler_args=compiler_args,
            cpu_backend=cpu_backend,
        )
else:

    def trace(func, example_inputs, *, compiler_workdir=None, compiler_args=None):
        """Documented signature of the seed: keyword-only compiler_workdir and compiler_args."""
        return _trace(func, example_inputs, compiler_workdir=compiler_workdir, compiler_args=compiler_args)


assert "compiler_args" in inspect.signature(trace).parameters
