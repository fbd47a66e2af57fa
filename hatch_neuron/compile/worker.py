"""Child-process entry point: import one model's factory, trace it for each target, save and verify.

Run as ``python -m hatch_neuron.compile.worker REQUEST.json RESULT.json``. Running user code here, not in
the build process, means a crash, a hang or a side effect of the factory cannot take the build down or
leak into it. Expected failures (bad factory, mismatch) are written to RESULT as ``{"ok": false}``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..runtime.pytree import flatten
from ..runtime.targets import load_artifact
from . import TargetOptions, get_target
from .checks import describe, run_checks
from .inputs import CHECK_SEED, TRACE_SEED, make_inputs
from .output_dims import OutputDimsError, output_dims
from .verify import MismatchError, compare


class ModelError(Exception):
    """A problem with the user's model, reported without a traceback of ours."""


class FlatOutputs(torch.nn.Module):
    """Wraps the factory's module or function so the traced graph returns a flat tuple of tensors."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        if isinstance(model, torch.nn.Module):
            self.model = model
        else:
            self.function = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model if hasattr(self, "model") else self.function
        return tuple(flatten(model(*inputs))[0])


def import_factory(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(
            f"factory {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}\n"
            f"{traceback.format_exc().rstrip()}"
        ) from exc
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"factory {spec!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"factory {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def build_model(spec: str) -> Any:
    factory = import_factory(spec)
    try:
        made = factory()
    except (Exception, SystemExit) as exc:
        raise ModelError(
            f"factory {spec!r} raised {type(exc).__name__}: {exc}\n{traceback.format_exc().rstrip()}"
        ) from exc
    if isinstance(made, torch.nn.Module):
        return made.eval()
    if callable(made):
        return made
    raise ModelError(
        f"factory {spec!r} returned a {type(made).__name__}; expected an nn.Module or a function"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary name beside ``path``, then rename it into place."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def _format_warning(w: warnings.WarningMessage) -> str:
    return f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"


def _spec_of(tensors: list[torch.Tensor]) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in tensors]


def run(request: dict[str, Any]) -> dict[str, Any]:
    name = request["model"]
    torch.manual_seed(0)  # factories that initialise weights randomly get the same weights every build
    model = build_model(request["factory"])
    wrapper = FlatOutputs(model).eval()
    findings = []
    if request["check"] != "off":
        findings = run_checks(name, model, wrapper, request["inputs"], request["batched"])
        problems = [f for f in findings if f["kind"] != "skipped"]
        if problems and request["check"] == "error":
            raise ModelError(
                f"the pre-flight checks found {len(problems)} problem(s) that would make torch_neuronx.trace "
                f'fail or give wrong results:\n{describe(problems)}\n(check = "warn" in [tool.neuron] '
                "downgrades them to warnings)"
            )
    if not request["jobs"]:
        return {"ok": True, "findings": findings}
    options = TargetOptions(**request["options"])
    artifacts: dict[str, list[dict[str, Any]]] = {}
    eager_by_bucket: dict[str, Any] = {}
    found_warnings: list[str] = []
    tree = None
    for job in request["jobs"]:
        specs, bucket = job["inputs"], {int(dim): size for dim, size in job["bucket"]}
        key = json.dumps(job["bucket"])
        if key not in eager_by_bucket:
            example, check = make_inputs(specs, TRACE_SEED), make_inputs(specs, CHECK_SEED)
            with torch.no_grad():
                eager_example, job_tree = flatten(model(*example))
                eager_check, _ = flatten(model(*check))
            if tree is not None and job_tree != tree:
                raise ModelError(f"the output structure changes with the bucket: {tree} vs {job_tree}")
            tree = job_tree
            eager_by_bucket[key] = (example, check, eager_example, eager_check)
        example, check, eager_example, eager_check = eager_by_bucket[key]
        target = get_target(job["target"])
        path, workdir = Path(job["path"]), Path(job["workdir"])
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            compiled = target.compile(wrapper, example, workdir, options)
        found_warnings += [
            f"{job['target']}: {_format_warning(w)}"
            for w in caught
            if issubclass(w.category, torch.jit.TracerWarning)
        ]
        _save_atomically(path, functools.partial(target.save, compiled))
        companions = {}
        for suffix, source in compiled.companions.items():
            companion = path.with_name(path.name.removesuffix(target.suffix) + suffix)
            _save_atomically(companion, functools.partial(shutil.copyfile, source))
            companions[suffix] = {
                "file": companion.name,
                "sha256": sha256_file(companion),
                "size": companion.stat().st_size,
            }
        verified = target.can_verify()
        if verified:
            loaded = load_artifact(job["target"], path.read_bytes(), {}, compiled.details)
            where = f"target {job['target']}" + (f", bucket {bucket}" if bucket else "")
            with torch.no_grad():
                for inputs, eager, label in (
                    (example, eager_example, "example inputs"),
                    (check, eager_check, "second input set, seed 1"),
                ):
                    got = list(loaded(*inputs))
                    compare(name, eager, got, request["rtol"], request["atol"], f"{where}, {label}")
        artifacts.setdefault(job["target"], []).append(
            {
                "bucket": {str(dim): size for dim, size in bucket.items()},
                "file": path.name,
                "format": target.artifact_format,
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "verified": verified,
                "input_shapes": [spec["shape"] for spec in specs],
                "output_shapes": [list(t.shape) for t in eager_example],
                "seconds": round(time.perf_counter() - start, 3),
                "toolchain": target.toolchain(),
                **({"companions": companions} if companions else {}),
                **compiled.details,
            }
        )
    first = next(iter(artifacts.values()))
    axes = {int(dim): sizes for dim, sizes in request["axes"].items()}
    try:
        dims = output_dims(
            axes,
            [({int(d): n for d, n in a["bucket"].items()}, a["output_shapes"]) for a in first],
            request["output_dims"],
            request["dynamic_batch"],
        )
    except OutputDimsError as exc:
        raise ModelError(str(exc)) from None
    _, _, eager_example, _ = next(iter(eager_by_bucket.values()))
    return {
        "ok": True,
        "outputs": {"tree": tree, "specs": _spec_of(eager_example), "dims": dims},
        "artifacts": artifacts,
        "warnings": found_warnings,
        "findings": findings,
    }


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    sys.path[:0] = request["sys_path"]
    try:
        result = run(request)
    except ModelError as exc:
        result = {"ok": False, "error": str(exc)}
    except MismatchError as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    result_path.write_text(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
