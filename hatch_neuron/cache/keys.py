"""Cache keys: what determines an artifact, and nothing else.

An **artifact key** is computed in the worker, from the model itself: the TorchScript graph traced at the
job's example inputs, printed without source locations (so comments, blank lines, file paths and the
checkout folder do not matter), every tensor constant in it and every named parameter and buffer (the
weights), plus the job's input specs, the target, the options that target reads and the versions of
hatch-neuron, torch and the target's toolchain (torch-neuronx, neuronx-cc, torch-xla).

A **direct key** lets a warm build skip running factories at all (like ccache's direct mode): it hashes
the model's settings and the build environment (versions of every installed distribution), and the cache
keeps, under it, records of the files the model's factory read when it last ran (its Python modules and
the data files it opened, outside the Python installation) with their sha256. When every file still has
the recorded hash, the record's artifact keys are used without running the factory. Any difference (an
edited comment included) falls back to computing artifact keys from the model, which for a comment still
finds the same artifacts. What a factory reads from anywhere else (environment variables, the network)
is not seen by this shortcut: set ``HATCH_NEURON_CACHE=verify`` to always compute keys from the model.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import sys
from typing import Any

#: Bump when the meaning of a key changes, so old entries are not used.
KEY_VERSION = 1
_SOURCE_COMMENT = re.compile(r"\s*#.*$", re.MULTILINE)
#: TorchScript names a module type again traced in the same process ``___torch_mangle_<n>``, n counting the
#: traces before it: the same computation traced by two workers would otherwise get two keys.
_MANGLE = re.compile(r"___torch_mangle_\d+\.")


def digest_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _update_tensor(digest: Any, name: str, tensor: Any) -> None:
    """Hash a tensor's dtype, shape and raw bytes (without numpy: build environments may lack it)."""
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}:".encode())
    digest.update(ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size()))


def computation_digest(traced: Any) -> str:
    """The computation of a module traced by ``torch.jit.trace``: graph (without source locations), tensor
    constants and weights."""
    digest = hashlib.sha256()
    graph = traced.inlined_graph
    digest.update(_MANGLE.sub("", _SOURCE_COMMENT.sub("", str(graph))).encode())
    for index, node in enumerate(graph.findAllNodes("prim::Constant")):
        if node.output().type().kind() == "TensorType":
            _update_tensor(digest, f"constant{index}", node.t("value"))
    for name, tensor in sorted(traced.state_dict().items()):
        _update_tensor(digest, name, tensor)
    return digest.hexdigest()


def key_inputs(
    computation: str,
    input_specs: list[dict[str, Any]],
    target: str,
    options: dict[str, Any],
    versions: dict[str, str | None],
) -> dict[str, Any]:
    """Everything an artifact key is made of (recorded with remote entries, to say what made them)."""
    return {
        "key_version": KEY_VERSION,
        "computation": computation,
        "inputs": input_specs,
        "target": target,
        "options": options,
        "versions": versions,
    }


def artifact_key(inputs: dict[str, Any]) -> str:
    """The content address of an artifact: the digest of its :func:`key_inputs`."""
    return digest_json(inputs)


def installed_distributions() -> str:
    """A digest of the distributions importable here, by their metadata folders' names (which hold name
    and version: reading every METADATA file would cost more than a warm build); a changed dependency
    changes it, the folder a build environment lives in does not."""
    names = set()
    for entry in sys.path:
        try:
            names.update(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    return digest_json(sorted(names))


def direct_key(model_request: dict[str, Any], environment: dict[str, Any]) -> str:
    return digest_json({"key_version": KEY_VERSION, "model": model_request, "environment": environment})
