"""TEST DOUBLE of the ``torch.classes.neuron.Model`` binding a traced Neuron module holds.

The real binding is a C++ object whose setters (``set_dynamic_batching``, ``set_async_load``,
``set_lazy_load``, ``set_neuron_devices``) change how the runtime loads and runs the NEFF. Here it is a
scripted module: the same settings are its attributes, so they survive ``torch.jit.save`` and
``torch.jit.load``, and its ``forward`` does what the runtime does with them: inputs of the compiled shapes
and dtypes only, or with dynamic batching on, the documented dim-0 chunking (chunks of the traced batch,
the last zero-padded, outputs concatenated and trimmed; ``ValueError`` for a changed non-0 dimension or for
differing dim-0 sizes).

The checks run in an operator (``torch.ops.torch_neuronx_double.check_inputs``, registered when the double
is imported, as importing torch_neuronx registers the ``neuron::`` ops): an error raised in an operator
called from TorchScript reaches Python as ``RuntimeError``, so the documented ``ValueError`` arrives as a
``RuntimeError`` whose message starts with ``ValueError``, as with the real op (a C++ op throwing
``c10::ValueError`` from a scripted module surfaced as ``RuntimeError`` with torch 2.13, measured here). A
``raise`` in TorchScript itself would arrive as ``torch.jit.Error``, which is not a ``RuntimeError``. No
annotations from ``__future__`` here: TorchScript reads them.
"""

import torch

_LIBRARY = torch.library.Library("torch_neuronx_double", "DEF")
_LIBRARY.define("check_inputs(Tensor[] inputs, Tensor[] compiled, bool dynamic_batching) -> int")


def _check_inputs(inputs: list[torch.Tensor], compiled: list[torch.Tensor], dynamic_batching: bool) -> int:
    """The runtime's checks of a call, in an operator as in the real runtime: its errors reach Python as
    ``RuntimeError`` naming the documented type. Returns the batch size."""
    if len(inputs) != len(compiled):
        raise RuntimeError(f"the Neuron graph takes {len(compiled)} inputs, got {len(inputs)}")
    for i, (given, expected) in enumerate(zip(inputs, compiled, strict=True)):
        if given.dtype != expected.dtype:
            raise RuntimeError(
                f"input {i} has dtype {given.dtype}, the Neuron graph was compiled for {expected.dtype}"
            )
        if not dynamic_batching and given.shape != expected.shape:
            raise RuntimeError(
                f"input {i} has shape {list(given.shape)}, the Neuron graph was compiled for "
                f"{list(expected.shape)} (dynamic batching is off)"
            )
        if dynamic_batching and (given.dim() == 0 or given.shape[0] == 0):
            raise ValueError(f"dynamic batching: input {i} has shape {list(given.shape)}, no batch to split")
        if dynamic_batching and given.shape[0] != inputs[0].shape[0]:
            raise ValueError("dynamic batching: the inputs' dim-0 sizes differ")
        if dynamic_batching and given.shape[1:] != expected.shape[1:]:
            raise ValueError(
                f"dynamic batching: input {i} has shape {list(given.shape)}, a non-0 dimension differs from "
                f"the compiled {list(expected.shape)}"
            )
    return inputs[0].shape[0] if inputs else 0


_LIBRARY.impl("check_inputs", _check_inputs, "CompositeExplicitAutograd")


class NeuronGraph(torch.nn.Module):
    compiled_inputs: list[torch.Tensor]

    def __init__(
        self, compiled: torch.jit.ScriptModule, examples: list[torch.Tensor], neff: str, separate: bool
    ):
        super().__init__()
        self.compiled = compiled
        # one element each, expanded: the compiled shapes and dtypes without the examples' memory
        self.compiled_inputs = [torch.zeros((), dtype=t.dtype).expand(t.shape) for t in examples]
        self.neff = neff
        self.separate_weights = separate
        self.dynamic_batching = False
        self.async_load = False
        self.lazy_load = False
        self.start_nc = -1
        self.nc_count = -1

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = torch.ops.torch_neuronx_double.check_inputs(inputs, self.compiled_inputs, self.dynamic_batching)
        if not self.dynamic_batching:
            return self.compiled(inputs)
        batch = self.compiled_inputs[0].shape[0]
        outs: list[list[torch.Tensor]] = []
        start = 0
        while start < n:
            stop = min(start + batch, n)
            chunk: list[torch.Tensor] = []
            for t in inputs:
                part = t[start:stop]
                if stop - start < batch:
                    pad = torch.zeros([batch - (stop - start)] + list(part.shape[1:]), dtype=part.dtype)  # noqa: RUF005 - TorchScript
                    part = torch.cat([part, pad])
                chunk.append(part)
            result = self.compiled(chunk)
            if len(outs) == 0:
                outs = [[] for _ in range(len(result))]
            for o in range(len(result)):
                outs[o].append(result[o][: stop - start])
            start = stop
        return [torch.cat(parts) for parts in outs]


def script_graph(
    compiled: torch.jit.ScriptModule, examples: list[torch.Tensor], neff: str, separate: bool
) -> torch.jit.ScriptModule:
    return torch.jit.script(NeuronGraph(compiled, examples, neff, separate))
