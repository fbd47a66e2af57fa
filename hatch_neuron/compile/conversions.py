"""Where a traced graph freezes a value: every tensor -> Python conversion, recorded with its value.

``torch.jit.trace`` (and so ``torch_neuronx.trace``) runs the model once and keeps only tensor operations:
a Python value taken from a tensor (``bool``, ``int``, ``float``, ``.item()``, ``.tolist()``,
``__index__``, ``.numpy()``) becomes a constant of the graph. That is exact when the value depends only
on shapes, dtypes or parameters (fixed for the declared inputs), and wrong when it depends on the input
data. So the model is traced on several input sets of the declared shapes and dtypes whose *values*
differ as much as they can (all-zero, all-one, large, negative, half and half, random; masks empty, full
and half), with a :class:`~torch.overrides.TorchFunctionMode` recording each conversion's value per
source line; a line whose values differ between the sets is a hazard. Tracing, not eager runs, because
models take other paths under tracing (``torch.jit.is_tracing()``).
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .inputs import TRACE_SEED, make_inputs

#: Tensor methods that hand a value to Python, and what the value is called in a finding.
CONVERSIONS = {
    "__bool__": "boolean",
    "__int__": "integer",
    "__index__": "integer",
    "__float__": "float",
    "item": "number (.item())",
    "tolist": "list (.tolist())",
    "numpy": "NumPy array (.numpy())",
    "__contains__": "boolean (`in`)",
}

_TORCH = str(Path(torch.__file__).resolve().parent)
_OURS = str(Path(__file__).resolve().parents[1])
#: The input sets, besides the build's own example inputs (their values are what differs).
FILLS = ("zeros", "ones", "large", "negative", "half", "random")
#: Seed of the ``random`` set (the build uses 0 and 1, the fresh-input comparison 2 and 3).
RANDOM_SEED = 5

Site = tuple[str, int]


#: Where installed code lives: a site there (transformers, say) is also reported with the project's line.
_INSTALLED = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("purelib", "platlib", "stdlib")}
)


def _sites() -> tuple[Site, Site | None]:
    """The innermost frame that is neither torch nor hatch-neuron (the line that asked for the value), and
    the innermost frame of the project's own code when that is another one (the call that reached it)."""
    frame, site = sys._getframe(2), None
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith((_TORCH, _OURS, "<")):
            here = (name, frame.f_lineno)
            site = site or here
            if not name.startswith(_INSTALLED):
                return site, here if here != site else None
        frame = frame.f_back
    return site or ("unknown", 0), None


def _comparable(value: Any) -> str:
    """A value as a short string that is equal for equal values (NaN included)."""
    if hasattr(value, "tobytes"):  # numpy
        value = (getattr(value, "shape", None), str(getattr(value, "dtype", "")), value.tobytes())
    text = repr(value)
    return text if len(text) <= 80 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


#: Graph nodes whose value is a tensor's shape, not its data: a conversion of a value computed from these,
#: parameters and constants only is the same for every input of the declared shapes (when no
#: intermediate shape depends on the data, which ``torch.export`` tells).
SHAPE_NODES = frozenset({"aten::size", "aten::dim", "aten::numel", "prim::shape", "aten::len"})


class ConversionRecorder(TorchFunctionMode):
    """Records, per source line, the values of the tensor -> Python conversions made there, in order; and,
    under :func:`torch.jit._get_trace_graph` called with ``inputs`` (their graph values come first),
    whether any converted value depends on their data in the traced graph (``reads_data``; True when that
    cannot be told)."""

    def __init__(self, inputs: tuple[torch.Tensor, ...] | None = None) -> None:
        super().__init__()
        self.values: dict[Site, list[str]] = {}
        self.kinds: dict[Site, str] = {}
        self.callers: dict[Site, Site | None] = {}
        self.inputs = inputs
        self._memory = {_storage(t) for t in inputs or ()}
        self.reads_data = False
        self._clean: set[int] = set()  # traced values found not to depend on input data

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        kind = CONVERSIONS.get(getattr(func, "__name__", ""))
        if kind is not None:
            site, caller = _sites()
            self.values.setdefault(site, []).append(_comparable(result))
            self.kinds.setdefault(site, kind)
            self.callers.setdefault(site, caller)
            if not self.reads_data:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                self.reads_data = any(self._from_input_data(t) for t in tensors)
        return result

    def _from_input_data(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor``'s traced value is computed from an input other than through its shape. A
        tensor the tracer never saw (``x.data``) enters the graph as a constant: one in an input's
        memory counts as that input."""
        state = torch._C._get_tracing_state()
        if self.inputs is None or state is None:
            return True
        try:
            value = torch._C._get_value_trace(tensor)
        except RuntimeError:  # not a traced value: where it came from is unknown
            return True
        if _writes_in_place(state.graph()):
            return True
        inputs = {v.unique() for v in list(state.graph().inputs())[: len(self.inputs)]}
        stack, seen = [value], set()
        while stack:
            value = stack.pop()
            if value.unique() in seen or value.unique() in self._clean:
                continue
            seen.add(value.unique())
            node = value.node()
            if value.unique() in inputs or (
                _tensor_constant(node) and _storage(node.t("value")) in self._memory
            ):
                return True
            if node.kind() not in SHAPE_NODES:
                stack.extend(node.inputs())
        self._clean |= seen
        return False


def _storage(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _tensor_constant(node: torch._C.Node) -> bool:
    return node.kind() == "prim::Constant" and node.output().type().kind() == "TensorType"


def _writes_in_place(graph: torch._C.Graph) -> bool:
    """Whether the graph traced so far writes into a tensor in place: ``y[:] = x`` traces as ``slice``
    then ``copy_`` on the slice, so a later read of ``y`` does not lead back to ``x`` in the graph."""
    return any(n.kind().endswith("_") and not n.kind().endswith("__") for n in graph.nodes())


def _state(module: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Where each parameter and buffer's memory is, and its version (``buf.data = x`` is not traced)."""
    return {name: (t.data_ptr(), t._version) for name, t in module.state_dict(keep_vars=True).items()}


def _filled(spec: dict[str, Any], fill: str) -> torch.Tensor:
    """One input of the declared shape and dtype whose values are all of one kind (``half``: the first
    half of the last dimension at the top of the range, the rest at the bottom: a half-padded mask)."""
    shape, dtype = spec["shape"], getattr(torch, spec["dtype"])
    half = torch.arange(shape[-1]) < (shape[-1] + 1) // 2  # first half along the last dim
    if dtype == torch.bool:
        values = {"zeros": False, "ones": True, "large": True, "negative": False}
        base = torch.full(shape, values.get(fill, False), dtype=torch.bool)
        return half.expand(shape).clone() if fill == "half" else base
    if not dtype.is_floating_point:
        low, high = int(spec["low"]), int(spec["high"]) - 1  # inclusive
        pick = {"zeros": low, "ones": min(low + 1, high), "large": high, "negative": low}
        if fill == "half":
            return torch.where(half, high, low).expand(shape).to(dtype).clone()
        return torch.full(shape, pick[fill], dtype=dtype)
    low, high = spec.get("low"), spec.get("high")
    if low is not None and high is not None:
        top = high - (high - low) * 1e-3
        pick = {"zeros": min(max(0.0, low), top), "ones": min(max(1.0, low), top)}
        pick |= {"large": top, "negative": low}
        edges = (top, low)
    else:
        pick = {"zeros": 0.0, "ones": 1.0, "large": 1e4, "negative": -1e4}
        edges = (1e4, 0.0)
    if fill == "half":
        return torch.where(half, *edges).expand(shape).to(dtype).clone()
    return torch.full(shape, pick[fill]).to(dtype)


def input_sets(specs: list[dict[str, Any]]) -> Iterator[tuple[str, tuple[torch.Tensor, ...]]]:
    """(label, inputs): the build's example inputs first, then one set per :data:`FILLS`."""
    yield "example inputs", make_inputs(specs, TRACE_SEED)
    for fill in FILLS:
        if fill == "random":
            yield f"random (seed {RANDOM_SEED})", make_inputs(specs, RANDOM_SEED)
        else:
            yield fill, tuple(_filled(spec, fill) for spec in specs)


@dataclass(frozen=True)
class DataDependentSite:
    """A source line whose tensor -> Python conversions gave different values on different input sets."""

    site: Site
    kind: str
    #: Input-set label -> the values converted there, in order.
    values: dict[str, list[str]]
    #: The project's own line that called into it, when the site is in installed code.
    caller: Site | None

    def summary(self, limit: int = 160) -> str:
        """``value (set, set), value (set)``, shortened to about ``limit`` characters."""
        by_value: dict[str, list[str]] = {}
        for label, values in self.values.items():
            by_value.setdefault(", ".join(values) or "no conversion", []).append(label)
        text = "; ".join(f"{value} with {', '.join(labels)}" for value, labels in by_value.items())
        return text if len(text) <= limit else text[: limit - 3] + "..."


def _trace_only(wrapper: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Run ``wrapper`` under the tracer without making a module of the graph (a third of the time of
    ``torch.jit.trace`` for BERT-base), falling back to ``torch.jit.trace`` where torch lacks it."""
    get_trace_graph = getattr(torch.jit, "_get_trace_graph", None)
    if get_trace_graph is None:
        torch.jit.trace(wrapper, inputs, check_trace=False)
    else:
        get_trace_graph(wrapper, inputs)


def data_dependent_sites(
    wrapper: torch.nn.Module,
    specs: list[dict[str, Any]],
    trace_example: Callable[[], Any] | None = None,
    static_shapes: bool = False,
) -> tuple[Any, list[DataDependentSite]]:
    """Trace ``wrapper`` on every input set; return the trace of the build's example inputs (made by
    ``trace_example`` when given) and the source lines whose conversions gave different values on
    different sets. Conversions are recorded by running traced, without making a module of the graph.

    With ``static_shapes`` (no intermediate shape depends on the data), when no value converted on the
    example inputs is computed from the inputs' data (only from shapes, parameters and constants; no
    tensor written in place before it) and the module's parameters and buffers are unchanged, the other
    sets are not run: every conversion then gives the same value for every input of the declared shapes,
    so the model takes the same path (BERT-large: 0.9 s instead of 6.5 s).

    A set the model refuses (an exception: extreme values can trip a model's own asserts) gives no
    evidence and is left out; the example inputs must trace (the build traces on them too)."""
    traced, runs = None, {}
    may_stop = static_shapes and getattr(torch.jit, "_get_trace_graph", None) is not None
    for label, inputs in input_sets(specs):
        watching = may_stop and not runs  # only the first set's run can make the others unneeded
        recorder = ConversionRecorder(inputs if watching else None)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings say nothing the values do not
                if traced is None:  # outside the recorder: a mode changes the names of the graph's values
                    traced = (trace_example or partial(torch.jit.trace, wrapper, inputs, check_trace=False))()
                state = _state(wrapper) if watching else None
                with recorder:
                    _trace_only(wrapper, inputs)
        except Exception:
            if traced is None:
                raise
            continue
        runs[label] = recorder
        if watching and not recorder.reads_data and _state(wrapper) == state:
            break
    differing = []
    for site in dict.fromkeys(s for recorder in runs.values() for s in recorder.values):
        seen = {label: recorder.values.get(site, []) for label, recorder in runs.items()}
        if len({repr(v) for v in seen.values()}) > 1:
            first = next(r for r in runs.values() if site in r.kinds)
            differing.append(DataDependentSite(site, first.kinds[site], seen, first.callers[site]))
    return traced, differing
