"""Byte-identical artifacts: the same model and toolchain give the same file, wherever and whenever built.

``torch.jit.save`` writes a random ``.data/serialization_id``, debug records holding absolute source paths
(``*.debug_pkl``, only used to point TorchScript errors at Python source lines), and names the archive's
top folder after the file. The archive is rewritten: saved to memory (top folder ``archive``), debug
records dropped, the id replaced by one derived from the content, entries kept in torch's order, stored
uncompressed with fixed timestamps, and each entry's data aligned to 64 bytes as torch's own writer does.
``torch.jit.load`` reads the result like any other archive.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import torch

#: Timestamp of every zip entry (the earliest a zip can hold), as torch's writer and hatchling use.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ALIGNMENT = 64


def _aligned_entry(name: str, offset: int) -> zipfile.ZipInfo:
    """A zip entry whose data, written at ``offset``, starts on a 64-byte boundary (padding in ``extra``)."""
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = 0o644 << 16
    header = 30 + len(name.encode()) + 4  # local header, name, padding field's own header
    pad = (-(offset + header)) % _ALIGNMENT
    info.extra = b"\xff\xff" + pad.to_bytes(2, "little") + b"\0" * pad
    return info


def torchscript_bytes(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    entries = [
        (i.filename, source.read(i)) for i in source.infolist() if not i.filename.endswith(".debug_pkl")
    ]
    content = hashlib.sha256()
    for name, data in entries:
        if not name.endswith("/.data/serialization_id"):
            content.update(name.encode() + b"\0" + data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            if name.endswith("/.data/serialization_id"):
                data = str(int(content.hexdigest()[:32], 16)).zfill(40).encode()
            archive.writestr(_aligned_entry(name, out.tell()), data)
    return out.getvalue()


def zip_folder(folder: Path, archive: Path) -> None:
    """Zip ``folder`` (empty sub-folders too) in name order, uncompressed, with fixed timestamps and modes."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_dir():
                info = zipfile.ZipInfo(name + "/", ZIP_TIME)
                info.external_attr = 0o40755 << 16 | 0x10
                out.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(name, ZIP_TIME)
                info.external_attr = 0o644 << 16
                out.writestr(info, path.read_bytes())
