"""Neuron's shape rules at call time: fixed shapes, buckets and dynamic batching (torch, stdlib only).

A model's *axes* are its bucketed dimensions and their compiled sizes, ``{0: [1, 4, 8], 1: [32, 64]}``.
For a call, each bucketed dimension takes the smallest compiled size that every input fits in; inputs
are padded up to it with ``pad_value`` and outputs are trimmed back along the dimensions that follow it.
With dynamic batching, a batch larger than the largest batch bucket is split into chunks of that size
(the last one gets the smallest bucket that fits it) and the outputs are concatenated along dim 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NOT_BUCKETED = -1


class ShapePolicy:
    """Checks a call's inputs and maps them onto compiled buckets."""

    def __init__(
        self,
        name: str,
        shapes: Sequence[Sequence[int]],
        dtypes: Sequence[torch.dtype] | None,
        axes: dict[int, list[int]] | None = None,
        dynamic_batch: bool = False,
        native_dynamic_batch: bool = False,
        output_dims: list[list[int]] | None = None,
        pad_value: float = 0.0,
        bucketed: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.name = name
        self.shapes = [tuple(s) for s in shapes]
        self.dtypes = list(dtypes) if dtypes is not None else None
        self.axes = {dim: sorted(sizes) for dim, sizes in (axes or {}).items()}
        self.dynamic_batch = dynamic_batch
        self.native = native_dynamic_batch
        self.output_dims = output_dims  # None: every output follows dim 0 and nothing else
        self.pad_value = pad_value
        # per input, its bucketed dims (default: every bucketed dim the input has)
        self.bucketed = [
            set(dims) for dims in (bucketed or [[d for d in self.axes if d < len(s)] for s in self.shapes])
        ]

    def expected(self, index: int) -> str:
        dims = []
        for dim, size in enumerate(self.shapes[index]):
            if dim == 0 and self.dynamic_batch:
                dims.append("any")
            elif dim in self.bucketed[index]:
                dims.append("<=" + str(self.axes[dim][-1]))
            else:
                dims.append(str(size))
        return "[" + ", ".join(dims) + "]"

    def _hint(self) -> str:
        if not self.axes:
            return "compiled shapes are fixed"
        parts = [f"dim {d}: {', '.join(map(str, s))}" for d, s in self.axes.items()]
        return (
            "compiled buckets: " + "; ".join(parts) + (", any batch (dynamic)" if self.dynamic_batch else "")
        )

    def check(self, args: Sequence[object]) -> dict[int, int]:
        """Raise TypeError/ValueError as Neuron would; return the call's size on each bucketed dim."""
        if len(args) != len(self.shapes):
            raise TypeError(f"{self.name}: takes {len(self.shapes)} input(s), got {len(args)}")
        sizes: dict[int, int] = {}
        for index, arg in enumerate(args):
            if not isinstance(arg, torch.Tensor):
                raise TypeError(
                    f"{self.name}: input {index} must be a torch.Tensor, got {type(arg).__name__}"
                )
            if self.dtypes is not None and arg.dtype != self.dtypes[index]:
                raise TypeError(
                    f"{self.name}: input {index} has dtype {arg.dtype}, expected {self.dtypes[index]} "
                    "(compiled dtypes are fixed; convert with .to())"
                )
            shape = self.shapes[index]
            bucketed = self.bucketed[index]
            wrong = arg.dim() != len(shape) or any(
                arg.shape[dim] != want for dim, want in enumerate(shape) if dim not in bucketed
            )
            if wrong:
                raise ValueError(
                    f"{self.name}: input {index} has shape {list(arg.shape)}, "
                    f"expected {self.expected(index)} ({self._hint()})"
                )
            for dim in bucketed:
                first = sizes.setdefault(dim, arg.shape[dim])
                if arg.shape[dim] != first:
                    raise ValueError(
                        f"{self.name}: the inputs' dim-{dim} sizes differ (input 0: {first}, input {index}: "
                        f"{arg.shape[dim]}); bucketed and batched dims must agree across inputs"
                    )
        for dim, size in sizes.items():
            largest = self.axes[dim][-1]
            if size < 1:
                raise ValueError(f"{self.name}: dim {dim} of the inputs is {size}; it must be at least 1")
            if size > largest and not (dim == 0 and self.dynamic_batch):
                raise ValueError(
                    f"{self.name}: dim {dim} of the inputs is {size}, larger than the largest compiled "
                    f"bucket ({largest}; {self._hint()})"
                )
        return sizes

    def pieces(self, sizes: dict[int, int], parts: int = 1) -> list[tuple[int, int]]:
        """Ranges of dim 0 to run separately: chunks of the largest batch bucket with dynamic batching
        (for a native dynamic batch, ``parts`` near-equal ranges), else the whole call."""
        batch = sizes.get(0)
        if batch is None or not self.dynamic_batch:
            return [(0, batch or 0)]
        step = -(-batch // parts) if self.native else self.axes[0][-1]
        return [(start, min(start + step, batch)) for start in range(0, batch, step)]

    def bucket(self, sizes: dict[int, int]) -> tuple[int, ...]:
        """The compiled bucket for a call (or chunk) of these sizes, as sizes in axis order."""
        chosen = []
        for dim, options in self.axes.items():
            size = sizes[dim]
            chosen.append(options[0] if dim == 0 and self.native else next(o for o in options if o >= size))
        return tuple(chosen)

    def fits_exactly(self, sizes: dict[int, int], bucket: tuple[int, ...]) -> bool:
        """Whether a call of these sizes needs no padding (so no trimming) on ``bucket``."""
        return all(
            sizes[dim] == size or (dim == 0 and self.native)
            for dim, size in zip(self.axes, bucket, strict=True)
        )

    def warmup_inputs(self, bucket: tuple[int, ...]) -> list[torch.Tensor]:
        """Zeros of the compiled shapes and dtypes of ``bucket``, to run an artifact once before the first
        call."""
        inputs = []
        sizes = dict(zip(self.axes, bucket, strict=True))
        for index, (shape, bucketed) in enumerate(zip(self.shapes, self.bucketed, strict=True)):
            dtype = self.dtypes[index] if self.dtypes is not None else torch.float32
            inputs.append(
                torch.zeros([sizes[d] if d in bucketed else n for d, n in enumerate(shape)], dtype=dtype)
            )
        return inputs

    def pad(self, args: Sequence[torch.Tensor], bucket: tuple[int, ...]) -> list[torch.Tensor]:
        padded = []
        for arg, bucketed in zip(args, self.bucketed, strict=True):
            target = list(arg.shape)
            for dim, size in zip(self.axes, bucket, strict=True):
                if dim in bucketed and not (dim == 0 and self.native):
                    target[dim] = size
            if target == list(arg.shape):
                padded.append(arg)
                continue
            out = arg.new_full(target, self.pad_value)
            out[tuple(slice(0, n) for n in arg.shape)] = arg
            padded.append(out)
        return padded

    def trim(self, outputs: Sequence[torch.Tensor], sizes: dict[int, int]) -> list[torch.Tensor]:
        trimmed = []
        for index, out in enumerate(outputs):
            dims = self.output_dims[index] if self.output_dims is not None else [0]
            cut = [slice(None)] * len(dims)
            padded = False
            for k, axis in enumerate(dims):
                if axis != NOT_BUCKETED and axis in sizes and out.shape[k] != sizes[axis]:
                    cut[k], padded = slice(0, sizes[axis]), True
            trimmed.append(out[tuple(cut)] if padded else out)
        return trimmed
