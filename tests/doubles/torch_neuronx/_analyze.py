"""TEST DOUBLE of ``torch_neuronx.analyze`` (``xla_impl/analyze.py`` of torch-neuronx 1.13.1.1.12.0): the same
signature and report structure. The double cannot know which operators neuronx-cc supports: it counts the
``aten::`` ops of a ``torch.jit.trace`` and reports as unsupported the kinds listed in
``$TORCH_NEURONX_DOUBLE_UNSUPPORTED`` (comma-separated, e.g. ``aten::fft_fft``), none by default."""

from __future__ import annotations

import collections
import os
from typing import Any

import torch

from ._runtime import log_call


def analyze(
    model: Any,
    ex_input: Any,
    compiler_workdir: str | os.PathLike | None = None,
    additional_ignored_ops: set[str] = frozenset(),
    max_workers: int = 4,
    is_hf_transformers: bool = False,
    cleanup: bool = False,
) -> dict[str, Any]:
    from . import __version__

    inputs = ex_input if isinstance(ex_input, tuple) else (ex_input,)
    traced = torch.jit.trace(model, inputs, strict=False)
    unsupported_kinds = {k for k in os.environ.get("TORCH_NEURONX_DOUBLE_UNSUPPORTED", "").split(",") if k}
    supported: collections.Counter[str] = collections.Counter()
    unsupported = []
    for node in traced.inlined_graph.nodes():
        kind = node.kind()
        if not kind.startswith("aten::") or kind in additional_ignored_ops:
            continue
        if kind in unsupported_kinds:
            where = node.sourceRange().strip().splitlines()
            unsupported.append(
                {
                    "kind": kind,
                    "compute_engine": "CPU",
                    "failureAt": "neuronx-cc",
                    "call": where[0] if where else "",
                }
            )
        else:
            supported[kind] += 1
    total = sum(supported.values()) + len(unsupported)
    log_call({"call": "analyze", "func": type(model).__name__})
    return {
        "torch_neuronx_version": __version__,
        "neuronx_cc_version": None,
        "support_percentage": f"{100 * sum(supported.values()) / total:.2f}%" if total else "100.00%",
        "supported_operators": dict(supported),
        "unsupported_operators": unsupported,
    }
