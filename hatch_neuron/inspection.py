"""Read the manifests of a built wheel or an installed package, and check their artifacts' hashes.

Only what a manifest names is read, in blocks (hashed from the zip member or the file, never held whole in
memory), and the manifest itself with a size cap; an installed package is found by looking for its folder
on ``sys.path``, without importing anything.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from .cache.commands import format_size
from .runtime.manifest import (
    ARTIFACT_DIR,
    FORMAT_VERSION,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    FileProblem,
    all_artifacts,
    artifact_files,
    hash_stream,
    open_regular,
    parse_manifest,
    read_limited,
)

SUFFIX = f"{ARTIFACT_DIR}/{MANIFEST}"
#: What reading a zip member can raise on a damaged or unsupported archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)

_TOO_BIG = f"more than the {MAX_MANIFEST_BYTES} bytes a manifest may have"

#: (present, sha256_ok) of one manifest entry (``file``, ``sha256``, ``size``).
Checker = Callable[[dict[str, Any]], tuple[bool, bool]]
#: What each source yields: report source, where errors point, the manifest, its file checker.
Found = Iterator[tuple[str, str, dict[str, Any], Checker]]


class InspectError(Exception):
    """PATH cannot be inspected (not a wheel, a corrupt one, a malformed manifest...): one line, exit 2."""


def _manifest(data: bytes, where: str) -> dict[str, Any]:
    manifest, problem = parse_manifest(data)
    if problem:
        raise InspectError(f"{where}: {problem}")
    if manifest.get("format") != FORMAT_VERSION:
        raise InspectError(
            f"{where}: manifest format {manifest.get('format')!r} is not supported by this hatch-neuron "
            f"(supports {FORMAT_VERSION})"
        )
    if not isinstance(manifest.get("package"), str):
        _fail(where, "no 'package' name")
    if not isinstance(manifest.get("targets"), list):
        _fail(where, "no 'targets' list")
    return manifest


def _fail(where: str, problem: str) -> NoReturn:
    raise InspectError(f"{where}: {problem}")


def _from_wheel(path: Path, shown: str) -> Found:
    try:
        wheel = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InspectError(f"{shown}: not a wheel: not a zip archive, or a corrupt one ({exc})") from None
    except (OSError, ValueError) as exc:
        raise InspectError(f"{shown}: cannot be read ({exc})") from None
    with wheel:
        members = {info.filename: info for info in wheel.infolist()}
        for name in sorted(n for n in members if n.endswith("/" + SUFFIX)):
            where = f"{shown}: {name}"
            folder = name[: -len(MANIFEST)]
            if members[name].file_size > MAX_MANIFEST_BYTES:
                _fail(where, f"{members[name].file_size} bytes, {_TOO_BIG}")
            try:
                with wheel.open(members[name]) as stream:
                    data = read_limited(stream, MAX_MANIFEST_BYTES + 1)[0]
            except _ZIP_ERRORS as exc:
                raise InspectError(f"{where}: cannot be read from the archive ({exc})") from None
            if len(data) > MAX_MANIFEST_BYTES:
                _fail(where, f"more bytes than its header says, {_TOO_BIG}")

            def check(entry: dict[str, Any], folder: str = folder) -> tuple[bool, bool]:
                member = members.get(folder + entry["file"])
                if member is None:
                    return False, False
                if member.file_size != entry["size"]:
                    return True, False  # refused without decompressing a byte
                try:
                    with wheel.open(member) as stream:
                        count, digest = hash_stream(stream, entry["size"] + 1)
                except _ZIP_ERRORS:
                    return True, False
                return True, (count, digest) == (entry["size"], entry["sha256"])

            yield f"{path}!{name}", where, _manifest(data, where), check


def _from_manifest_file(path: Path, where: str) -> Found:
    """One manifest file; its artifacts are the files next to it."""
    folder = path.parent
    try:
        with open_regular(folder, path.name) as stream:
            data = read_limited(stream, MAX_MANIFEST_BYTES + 1)[0]
    except FileProblem as exc:
        raise InspectError(f"{where}: {exc}") from None
    except OSError as exc:
        raise InspectError(f"{where}: cannot be read ({exc})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        _fail(where, _TOO_BIG)

    def check(entry: dict[str, Any]) -> tuple[bool, bool]:
        try:
            with open_regular(folder, entry["file"], entry["size"]) as stream:
                count, digest = hash_stream(stream, entry["size"] + 1)
        except FileProblem as exc:
            return not exc.missing, False
        except OSError:
            return True, False
        return True, (count, digest) == (entry["size"], entry["sha256"])

    yield str(path), where, _manifest(data, where), check


def _from_folder(folder: Path, shown: str) -> Found:
    manifests = [folder / SUFFIX] if (folder / SUFFIX).is_file() else sorted(folder.rglob(SUFFIX))
    for path in manifests:
        yield from _from_manifest_file(path, f"{shown}: {path.relative_to(folder)}")


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def find_installed(name: str) -> Path | None:
    """The folder of installed package ``name`` (``a.b``: ``<entry>/a/b``) holding a manifest, looked up
    on ``sys.path`` without importing anything and without the current folder (which ``python -m`` and
    ``python -c`` put there: a name must not pick up whatever the folder it is run in holds)."""
    if not _is_dotted_name(name):
        return None
    parts = name.split(".")
    try:
        here: Path | None = Path.cwd().resolve()
    except OSError:
        here = None
    for entry in sys.path:
        if not entry or not isinstance(entry, str):
            continue
        try:
            base = Path(entry).resolve()
        except (OSError, RuntimeError):
            continue
        if base == here:
            continue
        folder = base.joinpath(*parts)
        if (folder / SUFFIX).is_file():
            return folder
    return None


def _selection_here(
    manifest: dict[str, Any], targets: list[str] | None = None, model: str | None = None
) -> dict[str, Any]:
    """Which target the runtime would load on this machine (for ``model``, from its own ``targets``), and
    why the ones before it were skipped."""
    from .runtime.schema import Manifest
    from .runtime.targets import select_target

    try:
        picked = select_target(manifest["package"], Manifest.from_json(manifest), targets, model)
    except (ImportError, LookupError, TypeError, ValueError, AttributeError) as exc:
        return {"target": None, "error": str(exc)}
    return {"target": picked.target, "skipped": picked.skipped, "forced": picked.forced}


def _sources(target: str) -> Found:
    path = Path(target)
    if path.is_file():
        if path.suffix == ".json":
            return _from_manifest_file(path.resolve(), target)
        if path.suffix == ".whl" or zipfile.is_zipfile(path):
            return _from_wheel(path, target)
        raise InspectError(
            f"{target}: not a wheel (a zip archive), a {MANIFEST}, a folder or an installed package name"
        )
    if path.is_dir():
        return _from_folder(path, target)
    if os.path.lexists(path):
        raise InspectError(f"{target}: not a regular file or a folder")
    folder = find_installed(target)
    if folder is None:
        looked = (
            f"no <sys.path entry>/{target.replace('.', '/')}/{SUFFIX}"
            if _is_dotted_name(target)
            else "not a package name either"
        )
        raise InspectError(
            f"{target}: not a wheel, a folder or an installed package built with hatch-neuron (no such file "
            f"or folder, and {looked})"
        )
    return _from_folder(folder, target)


def inspect_path(target: str) -> list[dict[str, Any]]:
    """Every manifest found in ``target`` (a wheel, a package folder, a folder of packages, a manifest
    file, or an installed package name), each artifact annotated with ``present`` and ``sha256_ok``.
    Raises :class:`InspectError` (one line) for what cannot be inspected."""
    reports = []
    for source, where, manifest, check in _sources(target):
        for artifact in all_artifacts(manifest):
            for entry in artifact_files(artifact):
                entry["present"], entry["sha256_ok"] = check(entry)
        report = {"source": source, **manifest, "selection_here": _selection_here(manifest)}
        for name, model in manifest["models"].items():
            if isinstance(model, dict) and model.get("targets"):  # the model's own list (per-model targets)
                model["selection_here"] = _selection_here(manifest, model["targets"], name)
        try:
            _render_report(report)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problem = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise InspectError(f"{where}: malformed manifest ({problem})") from None
        reports.append(report)
    if not reports:
        raise LookupError(f"{target}: no {SUFFIX} found (was it built with hatch-neuron?)")
    return reports


def _spec(spec: dict[str, Any]) -> str:
    text = f"{spec['name']}: " if spec.get("name") else ""
    text += f"{spec['shape']} {spec['dtype']}"
    if spec.get("low") is not None:
        text += f" in [{spec['low']:g}, {spec['high']:g})"
    return text


def _file_line(entry: dict[str, Any]) -> str:
    state = "ok" if entry["sha256_ok"] else ("MISSING" if not entry["present"] else "MISMATCH")
    return f"{entry['file']}  {format_size(entry['size'])}  sha256 {entry['sha256']} ({state})"


def render(reports: list[dict[str, Any]]) -> str:
    return "\n".join(line for report in reports for line in _render_report(report))


def _render_report(report: dict[str, Any]) -> list[str]:
    lines = []
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
        source = (
            f"transformers {model['transformers']}, task {model['task']}"
            if model.get("transformers")
            else model["factory"]
        )
        lines.append(f"  model {name}  ({source})")
        if "targets" in model:  # manifests before per-model settings lack these
            lines.append(
                f"    targets: {', '.join(model['targets'])}   compiler args: "
                f"{' '.join(model['compiler_args']) or '-'}   check: {model['check']}   "
                f"timeout: {model['timeout']:g} s   loads here as: "
                f"{model.get('selection_here', {}).get('target') or '-'}"
            )
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
                native += "  not reproducible" if artifact.get("reproducible") is False else ""
                lines.append(f"    {target:<8} {_file_line(artifact)}  {verified}{native}")
                lines += _neuron_lines(artifact)
                lines += [
                    f"    {'':<8} + {_file_line(companion)}" for companion in artifact_files(artifact)[1:]
                ]
    return lines


#: SDK releases that ignored ``--target inf2`` (aws-neuron-sdk issue 865; inf2 and trn1 share NeuronCore-v2).
INF2_TARGET_NOTE = (
    "some Neuron SDK releases ignored --target inf2 and compiled for trn1 (aws-neuron-sdk issue 865); "
    "inf2 and trn1 both have NeuronCore-v2, so such NEFFs still run on inf2"
)


def _neuron_lines(artifact: dict[str, Any]) -> list[str]:
    """A ``neuron`` artifact's typed options and the instance family it was compiled for."""
    lines = []
    chosen = artifact.get("neuron_options") or {}
    if chosen:
        lines.append(
            f"    {'':<8} neuron options: " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in chosen.items())
        )
    if artifact.get("neuron_target"):
        lines.append(f"    {'':<8} compiled for: {artifact['neuron_target']}")
        if artifact["neuron_target"] == "inf2":
            lines.append(f"    {'':<8} warning: {INF2_TARGET_NOTE}")
    return lines
