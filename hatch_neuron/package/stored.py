"""Compiled artifacts go into wheels uncompressed (``ZIP_STORED``), added after the build backend wrote
the wheel.

Compiled weights are float bytes that deflate barely shrinks (about 4% for a TorchScript archive), and
deflating them is most of a large model's warm build (1.2 GiB took hatchling ~35 s). Neither Hatchling
nor setuptools can store one file and deflate the others, so the adapters keep the artifacts out of
the backend's file list and call :func:`add_stored` on the finished wheel: it is rewritten with its
entries as they were (small files, re-deflated), the artifacts stored before the ``.dist-info`` folder,
and a RECORD listing them. The artifacts take the RECORD entry's timestamp and mode 0644, so a wheel
the backend makes reproducibly (``SOURCE_DATE_EPOCH``, Hatchling's default) stays byte-reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from ..cache.store import known_artifact_sha256

BLOCK = 1024 * 1024


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _stored_entry(archive: zipfile.ZipFile, name: str, source: str, like: zipfile.ZipInfo) -> str:
    """Copy ``source`` into ``archive`` as ``name``, uncompressed; return its RECORD line."""
    info = zipfile.ZipInfo(name, date_time=like.date_time)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (0o100644 & 0xFFFF) << 16
    info.create_system = like.create_system
    size = os.path.getsize(source)
    info.file_size = size
    known = known_artifact_sha256(source)  # hashed by this build already: not read for that again
    digest = hashlib.sha256()
    with open(source, "rb") as data, archive.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as out:
        while chunk := data.read(BLOCK):
            if known is None:
                digest.update(chunk)
            out.write(chunk)
    return f"{name},{_record_hash(bytes.fromhex(known) if known else digest.digest())},{size}"


def add_stored(wheel: str | Path, files: dict[str, str]) -> None:
    """Add ``files`` (archive name -> path of the file) to ``wheel``, uncompressed, and to its RECORD."""
    if not files:
        return
    files = dict(files)
    wheel = Path(wheel)
    partial = wheel.with_name(wheel.name + ".partial")
    try:
        with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(partial, "w") as target:
            entries = source.infolist()
            [record] = [
                e for e in entries if e.filename.count("/") == 1 and e.filename.endswith(".dist-info/RECORD")
            ]
            old = source.read(record).decode().splitlines()
            own = next(line for line in old if line.startswith(record.filename + ","))
            rows = [line for line in old if line and line != own]
            metadata = record.filename.split("/")[0] + "/"
            for entry in entries:
                if entry.filename.startswith(metadata) and files:
                    rows += [_stored_entry(target, name, files.pop(name), record) for name in sorted(files)]
                if entry is not record:
                    target.writestr(entry, source.read(entry))
            target.writestr(record, "\n".join([*rows, own]) + "\n")
        os.replace(partial, wheel)
    finally:
        partial.unlink(missing_ok=True)


def split_stored(files: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``files`` (archive name -> path) as (the compiled artifacts, to add with :func:`add_stored`; the
    rest, the manifest and generated module included, for the backend)."""
    from ..runtime.manifest import ARTIFACT_DIR, MANIFEST

    def stored(name: str) -> bool:
        folder, _, file = name.rpartition("/")
        return folder.endswith("/" + ARTIFACT_DIR) and file != MANIFEST

    return {n: p for n, p in files.items() if stored(n)}, {n: p for n, p in files.items() if not stored(n)}
