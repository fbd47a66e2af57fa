"""Read the manifests of a built wheel or an installed package, and check their artifacts' hashes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cache.commands import format_size
from .runtime.manifest import ARTIFACT_DIR, MANIFEST
from .runtime.targets import select_target

SUFFIX = f"{ARTIFACT_DIR}/{MANIFEST}"


def _from_wheel(path: Path) -> Iterator[tuple[str, dict[str, Any], dict[str, bytes]]]:
    with zipfile.ZipFile(path) as wheel:
        for name in sorted(n for n in wheel.namelist() if n.endswith("/" + SUFFIX)):
            folder = name[: -len(MANIFEST)]
            manifest = json.loads(wheel.read(name))
            files = {
                n[len(folder) :]: wheel.read(n)
                for n in wheel.namelist()
                if n.startswith(folder) and n != name
            }
            yield f"{path}!{name}", manifest, files


def _from_folder(folder: Path) -> Iterator[tuple[str, dict[str, Any], dict[str, bytes]]]:
    manifests = [folder / SUFFIX] if (folder / SUFFIX).is_file() else sorted(folder.rglob(SUFFIX))
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        files = {p.name: p.read_bytes() for p in manifest_path.parent.iterdir() if p.name != MANIFEST}
        yield str(manifest_path), manifest, files


def all_artifacts(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for model in manifest["models"].values():
        for entries in model["artifacts"].values():
            yield from entries


def _selection_here(manifest: dict[str, Any]) -> dict[str, Any]:
    """Which target the runtime would load on this machine, and why the ones before it were skipped."""
    try:
        picked = select_target(manifest["package"], manifest)
    except (ImportError, LookupError) as exc:
        return {"target": None, "error": str(exc)}
    return {"target": picked.target, "skipped": picked.skipped, "forced": picked.forced}


def inspect_path(target: str) -> list[dict[str, Any]]:
    """Every manifest found in ``target`` (a wheel, a package folder, a folder of packages, or an importable
    package name), each artifact annotated with ``present`` and ``sha256_ok``."""
    path = Path(target)
    if path.is_file() and path.suffix == ".whl":
        found = _from_wheel(path)
    elif path.is_dir():
        found = _from_folder(path)
    else:
        spec = (
            importlib.util.find_spec(target) if target.replace(".", "").replace("_", "").isalnum() else None
        )
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{target}: not a wheel, a folder or an importable package")
        found = _from_folder(Path(next(iter(spec.submodule_search_locations))))
    reports = []
    for where, manifest, files in found:
        for artifact in all_artifacts(manifest):
            for entry in [artifact, *artifact.get("companions", {}).values()]:
                data = files.get(entry["file"])
                entry["present"] = data is not None
                entry["sha256_ok"] = data is not None and hashlib.sha256(data).hexdigest() == entry["sha256"]
        reports.append({"source": where, **manifest, "selection_here": _selection_here(manifest)})
    if not reports:
        raise LookupError(f"{target}: no {SUFFIX} found (was it built with hatch-neuron?)")
    return reports


def _spec(spec: dict[str, Any]) -> str:
    text = f"{spec['shape']} {spec['dtype']}"
    if spec.get("low") is not None:
        text += f" in [{spec['low']:g}, {spec['high']:g})"
    return text


def _file_line(entry: dict[str, Any]) -> str:
    state = "ok" if entry["sha256_ok"] else ("MISSING" if not entry["present"] else "MISMATCH")
    return f"{entry['file']}  {format_size(entry['size'])}  sha256 {entry['sha256']} ({state})"


def render(reports: list[dict[str, Any]]) -> str:
    lines = []
    for report in reports:
        built = report["built_with"]
        lines += [
            f"{report['package']}  ({report['source']})",
            "  built with: "
            + ", ".join(
                f"{k} {built.get(k) or '-'}"
                for k in ("hatch-neuron", "torch", "torch-neuronx", "neuronx-cc", "torch-xla", "python")
                if k in built or k in ("torch-neuronx", "neuronx-cc")
            ),
            f"  module: {report['package']}.{report['module']}   load: {report['load']}   "
            f"targets (preference order): {', '.join(report['targets'])}",
            f"  compiler args: {' '.join(report['compiler_args']) or '-'}   neuron target: "
            f"{report['neuron_target'] or '-'}",
        ]
        placement = report.get("placement", "round-robin")
        if isinstance(placement, dict):
            placement = f"NeuronCores {placement['start']}..{placement['start'] + placement['count'] - 1}"
        lines.append(f"  placement: {placement}   replicas: {report.get('replicas', 1)}")
        here = report["selection_here"]
        skipped = "; ".join(f"{t} skipped: {why}" for t, why in here.get("skipped", {}).items())
        lines.append(
            f"  loads here as: {here['target'] or '-'}"
            + (" (forced by HATCH_NEURON_TARGET)" if here.get("forced") else "")
            + (f" ({skipped})" if skipped else "")
            + (f" ({here['error']})" if here.get("error") else "")
        )
        for name, model in report["models"].items():
            lines.append(f"  model {name}  ({model['factory']})")
            lines += [f"    input {i}: {_spec(s)}" for i, s in enumerate(model["inputs"])]
            lines += [f"    output {i}: {_spec(s)}" for i, s in enumerate(model["outputs"]["specs"])]
            buckets = model.get("buckets") or {}
            if buckets or model.get("dynamic_batch"):
                text = "; ".join(f"dim {d}: {', '.join(map(str, sizes))}" for d, sizes in buckets.items())
                dynamic = "yes" if model.get("dynamic_batch") else "no"
                pad = model.get("pad_value", 0)
                lines.append(f"    buckets: {text or '-'}   dynamic batch: {dynamic}   pad value: {pad:g}")
            for target, entries in model["artifacts"].items():
                for artifact in entries:
                    verified = "verified vs eager" if artifact["verified"] else "not verified"
                    native = "  torch_neuronx.dynamic_batch" if artifact.get("dynamic_batch") else ""
                    lines.append(f"    {target:<8} {_file_line(artifact)}  {verified}{native}")
                    lines += [
                        f"    {'':<8} + {_file_line(companion)}"
                        for companion in artifact.get("companions", {}).values()
                    ]
    return "\n".join(lines)
