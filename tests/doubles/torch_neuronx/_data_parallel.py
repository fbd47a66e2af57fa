"""TEST DOUBLE of ``torch_neuronx.DataParallel`` (``xla_impl/data_parallel.py`` of torch-neuronx
1.13.1.1.12.0): default cores all visible ones (``RuntimeError`` without a device); core ids as ints or
``"nc:#"``; dynamic batching turned on when ``dim == 0`` and ``set_dynamic_batching``; consecutive cores
get one module placed on all of them, others a copy per core; the input split along ``dim`` into one chunk
per core (the remainder spread over the first), run on a thread pool and concatenated; a placement that
fails (``ValueError``) leaves ``forward`` refusing to run until ``disable_dynamic_batching()``; an uneven
split warns that the cores are under-used."""

from __future__ import annotations

import copy
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ._bindings import dynamic_batch
from ._runtime import visible_core_count
from .experimental import set_neuron_cores


def _core_index(core: int | str) -> int:
    if isinstance(core, int):
        return core
    found = re.fullmatch(r"nc:(\d+)", core) if isinstance(core, str) else None
    if found is None:
        raise ValueError(f"Expected `nc:#` or an integer, but got: {core}")
    return int(found.group(1))


def _split(tensor: torch.Tensor, parts: int, dim: int) -> list[torch.Tensor]:
    size, remainder = divmod(tensor.shape[dim], parts)
    lengths = [size + (i < remainder) for i in range(parts)]
    return [chunk for chunk in torch.split(tensor, lengths, dim) if chunk.shape[dim]]


class DataParallel(torch.nn.Module):
    def __init__(
        self,
        module: torch.nn.Module,
        device_ids: list | None = None,
        dim: int = 0,
        set_dynamic_batching: bool = True,
    ) -> None:
        super().__init__()
        cores = list(range(visible_core_count())) if device_ids is None else device_ids
        self.module, self.dim, self.set_dynamic_batching = module, dim, set_dynamic_batching
        self.device_ids = sorted(_core_index(core) for core in cores)
        self.dynamic_batching_failed = False
        dynamic_batch(module, set_dynamic_batching and dim == 0)
        self.loaded_modules = self._load(module)
        self.split_size = -1

    def _load(self, module: torch.nn.Module) -> list[torch.nn.Module]:
        first, count = self.device_ids[0], len(self.device_ids)
        loaded = [module]
        try:
            if self.device_ids == list(range(first, first + count)):
                set_neuron_cores(module, first, count)
            else:
                loaded += [copy.deepcopy(module) for _ in self.device_ids[1:]]
                for core, each in zip(self.device_ids, loaded, strict=True):
                    set_neuron_cores(each, core, 1)
        except ValueError as exc:  # the real code logs it, and forward then refuses to run
            self.dynamic_batching_failed = True
            warnings.warn(f"Automatic dynamic batching failed due to {exc}.", stacklevel=3)
        self.num_workers = 2 * len(loaded)
        return loaded

    def disable_dynamic_batching(self) -> None:
        self.set_dynamic_batching = False
        dynamic_batch(self.module, False)
        self.loaded_modules = self._load(self.module)

    def forward(self, *inputs: torch.Tensor) -> Any:
        if self.dynamic_batching_failed and self.set_dynamic_batching:
            raise RuntimeError(
                "Automatic dynamic batching must be disabled before running inference. Please disable "
                "dynamic batching by calling `disable_dynamic_batching() on your DataParallel module."
            )
        chunks = list(zip(*(_split(t, len(self.device_ids), self.dim) for t in inputs), strict=True))
        if len(chunks) % len(self.device_ids):
            warnings.warn(
                "The NeuronCores are not being fully utilized because `inputs.shape[dim]` is not divisible "
                "by the number of NeuronCores given in `device_ids`.",
                stacklevel=2,
            )
        with ThreadPoolExecutor(self.num_workers) as pool:
            futures = [
                pool.submit(self.loaded_modules[i % len(self.loaded_modules)], *chunk)
                for i, chunk in enumerate(chunks)
            ]
            outputs = [future.result() for future in futures]
        if isinstance(outputs[0], torch.Tensor):
            return torch.cat(outputs, self.dim)
        if isinstance(outputs[0], dict):
            return {key: torch.cat([out[key] for out in outputs], self.dim) for key in outputs[0]}
        return type(outputs[0])(torch.cat(parts, self.dim) for parts in zip(*outputs, strict=True))
