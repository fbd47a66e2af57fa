"""Pre-flight checks for the limitations ``torch_neuronx.trace`` lists (see the seed), on any machine.

Each check runs in the worker process on the model as eager PyTorch, and returns findings: what was found,
where (source line where known) and how to fix it. A finding of kind ``skipped`` says a check could not
run here; it does not fail anything.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..runtime.pytree import flatten
from .base import TargetUnavailable
from .conversions import data_dependent_sites
from .findings import Finding
from .inputs import make_inputs
from .xla import import_torch_xla

#: Seeds of the fresh inputs that traced-vs-eager comparisons use (not the build's 0 and 1).
FRESH_SEEDS = (2, 3)


_OURS = str(Path(__file__).resolve().parents[1])


def _line(stack_trace: str | None, fallback: str) -> str:
    """The innermost ``File ..., line N`` of a node's stack trace that is the user's code (torch records
    only module ``forward`` frames: for a plain function, ``fallback`` names it)."""
    frames = [line.strip() for line in (stack_trace or "").splitlines() if line.strip().startswith("File")]
    users = [frame for frame in frames if _OURS not in frame]
    return users[-1] if users else fallback


def _defined_at(model: Any) -> str:
    """Where the model's code is, for findings that have no better location."""
    code = getattr(model, "__code__", None) or getattr(type(model).forward, "__code__", None)
    return f'File "{code.co_filename}", line {code.co_firstlineno} ({code.co_name})' if code else "unknown"


def control_flow(
    name: str,
    model: Any,
    wrapper: torch.nn.Module,
    specs: list[dict[str, Any]],
    trace_example: Callable[[], Any] | None = None,
    static_shapes: bool = False,
) -> list[Finding]:
    """Python values taken from tensors that depend on the input data (see :mod:`.conversions`;
    ``static_shapes``: no intermediate shape depends on the data), and a traced graph that differs from
    eager on fresh inputs. A tracer warning alone is no finding: it also fires for values that depend only
    on shapes, which are exact under the declared fixed shapes."""
    traced, sites = data_dependent_sites(wrapper, specs, trace_example, static_shapes)
    findings = [
        Finding(
            name,
            "control-flow",
            f"Converting a tensor to a Python {site.kind} here depends on the input data "
            f"({site.summary()}); the traced graph keeps the value it saw when tracing",
            f"{site.site[0]}:{site.site[1]}"
            + (f" (called from {site.caller[0]}:{site.caller[1]})" if site.caller else ""),
            "make the computation independent of tensor values (torch.where instead of if/else on a "
            "tensor), or compile one model per branch",
        )
        for site in sites
    ]
    for seed in FRESH_SEEDS:
        inputs = make_inputs(specs, seed)
        with torch.no_grad():
            want, _ = flatten(model(*inputs))
            got = list(traced(*inputs))
        if any(
            w.shape != g.shape or not torch.allclose(w, g, rtol=1e-3, atol=1e-4)
            for w, g in zip(want, got, strict=False)
        ):
            findings.append(
                Finding(
                    name,
                    "control-flow",
                    f"the traced graph differs from eager on fresh inputs (seed {seed}): tracing froze a "
                    "data-dependent branch or loop",
                    _defined_at(model),
                    "remove data-dependent control flow; see the findings above for the lines",
                )
            )
            break
    return findings


def graph_checks(
    name: str, model: Any, wrapper: torch.nn.Module, specs: list[dict[str, Any]]
) -> list[Finding]:
    """Data-dependent shapes and dtype changes, read off ``torch.export``'s graph (fake tensors)."""
    try:
        exported = torch.export.export(wrapper, make_inputs(specs, 0), strict=False)
    except Exception as exc:  # export is stricter than tracing (a guard on an unbacked value fails it)
        # Not a finding by itself: a guard on a value that is constant for the declared shapes (Swin's
        # window sizes) is exact when traced, and a value that depends on the data is found by the
        # conversion check. For the ``inductor`` target, the failing export is that target's build error.
        return [
            Finding(
                name,
                "skipped",
                f"torch.export could not export the model ({type(exc).__name__}: {_first_line(exc)[:200]}); "
                "the shape and dtype checks on its graph were skipped",
                "-",
                "the inductor target needs torch.export; leave it out for this model "
                "(targets in its own table) if its build fails",
            )
        ]
    findings = []
    user_inputs = set(exported.graph_signature.user_inputs)
    placeholders = [n for n in exported.graph.nodes if n.op == "placeholder" and n.name in user_inputs]
    for node in exported.graph.nodes:
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            continue
        where = _line(node.meta.get("stack_trace"), _defined_at(model))
        if any(not isinstance(d, int) for d in value.shape):
            findings.append(
                Finding(
                    name,
                    "data-dependent-shape",
                    f"{node.target} gives a tensor whose shape depends on the data ({list(value.shape)})",
                    where,
                    "Neuron needs fixed intermediate shapes: replace it with a fixed-size computation "
                    "(masking with torch.where, top-k with a fixed k)",
                )
            )
        if node.op == "call_function" and str(node.target) in ("aten.to.dtype", "aten._to_copy.default"):
            source = node.args[0] if node.args else None
            declared = (
                getattr(torch, specs[placeholders.index(source)]["dtype"]) if source in placeholders else None
            )
            # int -> float is normal (masks); int32 -> int64 or float32 -> float64 means a wrong declaration
            if declared is not None and declared.is_floating_point == value.dtype.is_floating_point:
                index = placeholders.index(source)
                findings.append(
                    Finding(
                        name,
                        "dtype",
                        f"input {index} is declared {specs[index]['dtype']} but the model converts "
                        f"it to {str(value.dtype).removeprefix('torch.')}",
                        where,
                        f'declare inputs[{index}].dtype = "{str(value.dtype).removeprefix("torch.")}" '
                        "(compiled dtypes are fixed)",
                    )
                )
        if value.dtype == torch.float64 and node.op == "call_function":
            findings.append(
                Finding(
                    name,
                    "dtype",
                    f"{node.target} computes in float64",
                    where,
                    "NeuronCores have no float64: compute in float32 (or bfloat16)",
                )
            )
    return _first_per_place(findings)


def _first_per_place(findings: list[Finding]) -> list[Finding]:
    """One finding per kind and source line (a float64 line has many ops), but every input conversion."""
    seen, kept = set(), []
    for finding in findings:
        key = (finding.kind, finding.where, finding.message if "declared" in finding.message else "")
        if key not in seen:
            seen.add(key)
            kept.append(finding)
    return kept


def operator_support(
    name: str, model: Any, wrapper: torch.nn.Module, specs: list[dict[str, Any]]
) -> list[Finding]:
    """Lower the model through torch-xla (the path ``torch_neuronx.trace`` takes) and report the ops that
    have no lowering and that input data flows into: torch-xla runs those on the CPU, which cuts the graph,
    and neuronx-cc cannot compile them.

    An op without a lowering that computes on parameters and constants only (weight norm on a conv weight,
    as in Wav2Vec2) is dropped, not reported, not even as a ``skipped`` note: torch-xla runs it on the CPU
    once and its result enters the HLO as one more parameter, like a weight (the HLO of the outputs keeps
    the model's inputs as parameters and holds no trace of the op), so ``torch_neuronx.trace`` folds it into
    the compiled model's constants; it is not a problem, and a note on every such model would be noise.
    Which ops are fed by input is read off ``torch.export``'s graph (see :func:`_op_line`); where export
    fails or the op matches no node there, the op is reported (conservative)."""
    try:
        torch_xla = import_torch_xla()
    except TargetUnavailable as exc:
        return [
            Finding(
                name,
                "skipped",
                f"operator support not checked: {exc}",
                "-",
                "compile on a Neuron build host (torch_neuronx.trace reports unsupported operators)",
            )
        ]
    metrics = importlib.import_module("torch_xla.debug.metrics")
    device = torch_xla.device()
    metrics.clear_counters()
    try:
        with torch.no_grad():
            outputs = copy.deepcopy(wrapper).to(device)(*(t.to(device) for t in make_inputs(specs, 0)))
            torch_xla._XLAC._get_xla_tensors_hlo_proto(list(outputs))
    except Exception as exc:
        return [
            Finding(
                name,
                "operator-support",
                f"lowering through torch-xla failed: {type(exc).__name__}: {_first_line(exc)}",
                _defined_at(model),
                "torch_neuronx.trace lowers the same way: change the failing operation",
            )
        ]
    fallbacks = sorted(
        n for n in metrics.counter_names() if n.startswith("aten::") and n not in CPU_ON_PURPOSE
    )
    graphs = _input_fed_graphs(wrapper, specs) if fallbacks else []
    wheres = {op: _op_line(model, graphs, op) for op in fallbacks}
    return [
        Finding(
            name,
            "operator-support",
            f"{op} has no XLA lowering: torch-xla ran it on the CPU, and neuronx-cc cannot compile it",
            where,
            "replace it with supported operations (see the Neuron PyTorch operator list), or run it outside "
            "the compiled model",
        )
        for op, where in wheres.items()
        if where is not None
    ]


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


#: Counters of CPU work that are data transfers, not missing lowerings.
CPU_ON_PURPOSE = {"aten::_local_scalar_dense", "aten::_to_copy", "aten::_copy_from"}


def _op_line(model: Any, graphs: list[tuple[torch.fx.Graph, set[torch.fx.Node]]], op: str) -> str | None:
    """Where the user's code calls ``op`` (a torch-xla counter name such as ``aten::median.dim_values``,
    matched to graph nodes by name, overload aside) on data that the model's inputs flow into; ``None``
    when every node of that name computes on parameters and constants only; the model's definition when
    no node matches (export failed, or the op reached torch-xla under another name)."""
    base = op.removeprefix("aten::").split(".")[0]
    matched = False
    for graph, fed in graphs:
        for node in graph.nodes:
            if node.op == "call_function" and str(node.target).split(".")[1:2] == [base]:
                if node in fed:
                    return _line(node.meta.get("stack_trace"), _defined_at(model))
                matched = True
    return None if matched else _defined_at(model)


def _input_fed_graphs(
    wrapper: torch.nn.Module, specs: list[dict[str, Any]]
) -> list[tuple[torch.fx.Graph, set[torch.fx.Node]]]:
    """``torch.export``'s graph of the model, as exported and with its CompositeImplicitAutograd ops
    decomposed (torch-xla counts ops after that decomposition: ``_weight_norm`` reaches it as
    ``_weight_norm_interface``), each with the set of its nodes that a user input flows into (a node is
    fed when one of its inputs is a user-input placeholder or a fed node; parameters, buffers and
    constants are not). Empty when export fails."""
    try:
        exported = torch.export.export(wrapper, make_inputs(specs, 0), strict=False)
    except Exception:
        return []
    programs = [exported]
    try:
        table = torch.export.default_decompositions()
        composite = {op: fn for op, fn in table.items() if _composite_implicit(op)}
        programs.append(exported.run_decompositions(composite))
    except Exception:  # the exported graph alone: ops it cannot match are reported
        pass
    graphs = []
    for program in programs:
        user_inputs = set(program.graph_signature.user_inputs)
        fed: set[torch.fx.Node] = set()
        for node in program.graph.nodes:  # topological order
            if (node.op == "placeholder" and node.name in user_inputs) or any(
                a in fed for a in node.all_input_nodes
            ):
                fed.add(node)
        graphs.append((program.graph, fed))
    return graphs


def _composite_implicit(op: Any) -> bool:
    return isinstance(op, torch._ops.OpOverload) and torch._C._dispatch_has_kernel_for_dispatch_key(
        op.name(), "CompositeImplicitAutograd"
    )


def batch_dependence(name: str, model: Any, specs: list[dict[str, Any]], batch: int) -> list[Finding]:
    """Rows of a batched call must not influence each other when batches are padded and split."""
    rows = max(batch, 2)
    batched = [{**spec, "shape": [rows, *spec["shape"][1:]]} for spec in specs]
    inputs = make_inputs(batched, 4)
    with torch.no_grad():
        together, _ = flatten(model(*inputs))
        alone = [flatten(model(*[t[i : i + 1] for t in inputs]))[0] for i in range(rows)]
    for index, out in enumerate(together):
        each = torch.cat([a[index] for a in alone])
        if out.shape != each.shape or not torch.allclose(out, each, rtol=1e-3, atol=1e-4):
            return [
                Finding(
                    name,
                    "batch-dependence",
                    f"output {index} of a batch of {rows} differs from the rows run one "
                    "at a time: rows influence each other",
                    _defined_at(model),
                    "dynamic batching pads and splits batches, which would change results: make rows "
                    "independent (eval-mode BatchNorm, no batch-wide reductions) or drop dynamic-batch and "
                    "batch-buckets",
                )
            ]
    return []


def run_checks(
    name: str,
    model: Any,
    wrapper: torch.nn.Module,
    specs: list[dict[str, Any]],
    batched: bool,
    trace_example: Callable[[], Any] | None = None,
) -> list[dict[str, str]]:
    """Every check's findings; ``trace_example`` gives the trace at the build's example inputs (shared
    with the build; by default the checks trace it themselves)."""
    graph = graph_checks(name, model, wrapper, specs)
    static_shapes = not any(f.kind in ("skipped", "data-dependent-shape") for f in graph)
    findings = control_flow(name, model, wrapper, specs, trace_example, static_shapes)
    findings += graph
    findings += operator_support(name, model, wrapper, specs)
    if batched:
        findings += batch_dependence(name, model, specs, specs[0]["shape"][0])
    return [f.as_dict() for f in findings]
