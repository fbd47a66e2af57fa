"""TEST DOUBLE of ``torch_neuronx``. It is not Neuron and nothing it produces is a Neuron result.

The real torch-neuronx cannot be installed here (no Neuron SDK, no device). This double enforces the
documented call contract of ``torch_neuronx.trace`` (see shared/seed): ``func`` a module or callable,
``example_inputs`` a tensor or tuple of tensors, keyword-only ``compiler_workdir`` (str) and
``compiler_args`` (str or list of str). It records each call as a JSON line in the file named by
``TORCH_NEURONX_DOUBLE_LOG`` and returns ``torch.jit.trace(func, example_inputs)``, so the artifact it
produces runs on the CPU. ``dynamic_batch`` wraps a traced module in a scripted module that implements
the documented semantics (chunks of the traced batch size along dim 0, last one zero-padded, outputs
concatenated and trimmed, ValueError on a non-0 dimension change or on differing dim-0 sizes).
``experimental.neuron_cores_context`` records the placement it is asked for.

``TORCH_NEURONX_DOUBLE_CPU_BACKEND=1`` makes ``trace`` also accept ``cpu_backend`` like newer SDKs.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import tempfile
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
    if os.environ.get("TORCH_NEURONX_DOUBLE_LOG"):
        record = {
            "call": "trace",
            "func": type(func).__name__,
            "example_inputs": [
                list(t.shape)
                for t in ((example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs)
            ],
            "compiler_workdir": compiler_workdir,
            "compiler_args": compiler_args,
            "cpu_backend": cpu_backend,
        }
        log_call(record)
    return torch.jit.trace(func, example_inputs)


def log_call(record: dict) -> None:
    log = os.environ.get("TORCH_NEURONX_DOUBLE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")


_DYNAMIC_BATCH = """
import torch
from typing import List, Tuple


class DynamicBatch(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, batch: int, shapes: List[List[int]]):
        super().__init__()
        self.inner = inner
        self.batch = batch
        self.shapes = shapes

    def forward(self, {params}) -> Tuple[{out_types}]:
        inputs: List[torch.Tensor] = [{names}]
        n = inputs[0].shape[0]
        for i in range(len(inputs)):
            if inputs[i].shape[0] != n:
                raise ValueError("dynamic_batch: the inputs' dim-0 sizes differ")
            if inputs[i].shape[1:] != self.shapes[i][1:]:
                raise ValueError("dynamic_batch: a non-0 dimension differs from the traced shape")
        outs: List[List[torch.Tensor]] = [[] for _ in range({outputs})]
        start = 0
        while start < n:
            stop = min(start + self.batch, n)
            chunk: List[torch.Tensor] = []
            for t in inputs:
                part = t[start:stop]
                if stop - start < self.batch:
                    pad = torch.zeros([self.batch - (stop - start)] + part.shape[1:], dtype=part.dtype)
                    part = torch.cat([part, pad])
                chunk.append(part)
            result = self.inner({chunk})
{appends}
            start = stop
        return ({cats},)
"""


def dynamic_batch(neuron_script):
    """Documented semantics, in TorchScript so that it survives torch.jit.save / torch.jit.load."""
    graph_inputs = list(neuron_script.graph.inputs())[1:]
    shapes = [list(i.type().sizes()) for i in graph_inputs]
    outputs = len(next(iter(neuron_script.graph.outputs())).type().elements())
    names = [f"x{i}" for i in range(len(shapes))]
    source = _DYNAMIC_BATCH.format(
        params=", ".join(f"{n}: torch.Tensor" for n in names),
        names=", ".join(names),
        out_types=", ".join(["torch.Tensor"] * outputs),
        outputs=outputs,
        chunk=", ".join(f"chunk[{i}]" for i in range(len(names))),
        appends="\n".join(
            f"            outs[{o}].append(result[{o}][: stop - start])" for o in range(outputs)
        ),
        cats=", ".join(f"torch.cat(outs[{o}])" for o in range(outputs)),
    )
    folder = Path(tempfile.mkdtemp(prefix="torch-neuronx-double-"))
    (folder / "dynamic_batch_module.py").write_text(source)
    spec = importlib.util.spec_from_file_location(
        f"_dynamic_batch_{id(folder)}", folder / "dynamic_batch_module.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log_call({"call": "dynamic_batch", "batch": shapes[0][0], "inputs": len(shapes), "outputs": outputs})
    return torch.jit.script(module.DynamicBatch(neuron_script, shapes[0][0], shapes))


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
