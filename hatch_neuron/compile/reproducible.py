"""Byte-identical artifacts: the same model and toolchain give the same file, wherever and whenever built.

``torch.jit.save`` writes a random ``.data/serialization_id``, debug records holding absolute source paths
(``*.debug_pkl``, only used to point TorchScript errors at Python source lines), and names the archive's
top folder after the file. The archive is rewritten: saved to a temporary file, its top folder renamed
``archive`` (as torch names it for a stream), debug records dropped, the id replaced by one derived from
the content, the numbers TorchScript gives a class's later compiled types (``___torch_mangle_N``, a
per-process counter) renumbered in order of appearance, entries kept in torch's order, stored
uncompressed with fixed timestamps, and each entry's data aligned to 64 bytes as torch's own writer does.
``torch.jit.load`` reads the result like any other archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import filelock
import torch

#: Timestamp of every zip entry (the earliest a zip can hold), as torch's writer and hatchling use.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ALIGNMENT = 64
#: Bytes of weights copied per write.
BLOCK = 64 * 1024 * 1024


@contextmanager
def _mapped(file: IO[bytes]) -> Iterator[memoryview]:
    """``file``'s bytes, memory-mapped read-only (an empty view for an empty file)."""
    if os.fstat(file.fileno()).st_size == 0:
        yield memoryview(b"")
        return
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as region:
        view = memoryview(region)
        try:
            yield view
        finally:
            view.release()


def _aligned_entry(name: str, offset: int) -> zipfile.ZipInfo:
    """A zip entry whose data, written at ``offset``, starts on a 64-byte boundary (padding in ``extra``)."""
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = 0o644 << 16
    header = 30 + len(name.encode()) + 4  # local header, name, padding field's own header
    pad = (-(offset + header)) % _ALIGNMENT
    info.extra = b"\xff\xff" + pad.to_bytes(2, "little") + b"\0" * pad
    return info


def _serialization_id(entries: list[zipfile.ZipInfo]) -> bytes:
    """An id derived from the archive's content: the name, size and CRC-32 of every other entry (as
    written, so no second pass over the weights is needed)."""
    content = hashlib.sha256()
    for info in entries:
        content.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\0".encode())
    return str(int(content.hexdigest()[:32], 16)).zfill(40).encode()


#: A folder in memory (tmpfs) for the file torch writes before it is rewritten: writing it to disk too
#: doubles what a save writes, and a disk throttles a writer of many dirty pages (420 MB: 0.3 s in tmpfs,
#: 2.2 s on this machine's disk once the first one is written).
RAM_FOLDER = Path("/dev/shm")


@contextmanager
def _save_raw(module: torch.jit.ScriptModule, fallback: Path) -> Iterator[IO[bytes]]:
    """``torch.jit.save`` into a file without a name (gone with the process, even a killed one) in
    :data:`RAM_FOLDER` where it has room, else in ``fallback``; torch writes it through ``/proc/self/fd``.
    Where there is no ``/proc`` (not Linux), a named file in ``fallback``, removed afterwards."""
    if Path("/proc/self/fd").is_dir():
        for folder in ([RAM_FOLDER] if RAM_FOLDER.is_dir() else []) + [fallback]:
            with tempfile.TemporaryFile(dir=folder) as file:
                try:
                    torch.jit.save(module, f"/proc/self/fd/{file.fileno()}")
                except (RuntimeError, OSError):  # full (torch reports a failed write as a RuntimeError)
                    if folder == fallback:
                        raise
                    continue
                yield file
                return
    raw = fallback / f"hatch-neuron-{os.getpid()}.raw"
    try:
        torch.jit.save(module, str(raw))
        with raw.open("rb") as file:
            yield file
    finally:
        raw.unlink(missing_ok=True)


#: TorchScript's names for a class's second and later compiled types (``___torch_mangle_12``): numbered by a
#: counter of the whole process, so they depend on what the process compiled before (another bucket, the
#: checks), not on the model.
_MANGLE = re.compile(rb"___torch_mangle_(\d+)")
#: The entries that name types: TorchScript code and the pickles of the module tree (never the weights).
_NAMES_TYPES = (".py", "data.pkl", "constants.pkl")


def _mangle_numbers(source: zipfile.ZipFile, entries: list[zipfile.ZipInfo]) -> dict[bytes, bytes]:
    """Each mangle number in the archive -> its rank of first appearance (entry names and texts, in order)."""
    numbers: dict[bytes, bytes] = {}
    for entry in entries:
        texts = [entry.filename.encode()]
        texts += [source.read(entry)] if entry.filename.endswith(_NAMES_TYPES) else []
        for text in texts:
            for number in _MANGLE.findall(text):
                numbers.setdefault(number, str(len(numbers)).encode())
    return numbers


def _renumbered(text: bytes, numbers: dict[bytes, bytes]) -> bytes:
    return _MANGLE.sub(lambda m: b"___torch_mangle_" + numbers[m[1]], text)


def _data_offset(raw: IO[bytes], entry: zipfile.ZipInfo) -> int:
    """Where ``entry``'s stored bytes start in ``raw``: after its local header, name and extra field."""
    raw.seek(entry.header_offset)
    header = raw.read(30)
    return (
        entry.header_offset
        + 30
        + int.from_bytes(header[26:28], "little")
        + int.from_bytes(header[28:30], "little")
    )


def save_torchscript(module: torch.jit.ScriptModule, path: Path) -> None:
    """Write ``module`` to ``path`` as described above. The weights are copied from a memory map of
    torch's file in blocks, never held in memory as a whole nor read through the zip reader (whose reads
    and CRC checks made the copy 1.4-1.7x slower for BERT-large: torch wrote that file a moment ago)."""
    # saved to a path (three times faster than to a Python stream), which names the top folder after the
    # file; renamed "archive" below, as a stream names it
    with _save_raw(module, path.parent) as raw, zipfile.ZipFile(raw) as source, _mapped(raw) as mapped:
        entries = [i for i in source.infolist() if not i.filename.endswith(".debug_pkl")]
        id_entry = next(e for e in entries if e.filename.endswith("/.data/serialization_id"))
        entries = [e for e in entries if e is not id_entry] + [id_entry]  # torch writes it last too
        numbers = _mangle_numbers(source, entries)
        with path.open("wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for entry in entries:
                name = _renumbered(entry.filename.encode(), numbers).decode()
                info = _aligned_entry("archive/" + name.split("/", 1)[1], out.tell())
                if entry is id_entry:
                    archive.writestr(info, _serialization_id(archive.infolist()))
                elif numbers and entry.filename.endswith(_NAMES_TYPES):
                    archive.writestr(info, _renumbered(source.read(entry), numbers))
                else:
                    info.file_size = entry.file_size
                    with archive.open(info, "w") as target:
                        _copy_entry(source, raw, mapped, entry, target)


def _copy_entry(
    source: zipfile.ZipFile, raw: IO[bytes], mapped: memoryview, entry: zipfile.ZipInfo, target: IO[bytes]
) -> None:
    """Write ``entry``'s bytes to ``target`` in blocks: from the memory map where stored as is (the
    weights), else through the zip reader (torch deflates some code entries)."""
    if entry.compress_type != zipfile.ZIP_STORED:
        with source.open(entry) as data:
            shutil.copyfileobj(data, target, BLOCK)
        return
    start = _data_offset(raw, entry)
    for offset in range(start, start + entry.file_size, BLOCK):
        with mapped[offset : min(offset + BLOCK, start + entry.file_size)] as block:
            target.write(block)


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


#: Where targets whose output holds the folder they compiled in (AOTInductor: its generated sources and
#: library name their own paths) compile: one folder per artifact key at a fixed place, not a random
#: temporary one, so the same job gives the same bytes on any machine, in any checkout. Not ``$TMPDIR``:
#: that differs between machines.
KEYED_ROOT = Path("/tmp/hatch-neuron-keyed") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())


@contextmanager
def keyed_workdir(key: str, fallback: Path) -> Iterator[tuple[Path, bool]]:
    """``(folder, True)``: an empty folder named after ``key`` under :data:`KEYED_ROOT`, held under a lock
    of its own (two builds compiling one key take turns) and removed afterwards; ``(fallback, False)``
    where that folder cannot be used (another user's, or no room), and the artifact is then not
    reproducible."""
    folder = KEYED_ROOT / key[:32]
    try:
        KEYED_ROOT.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            KEYED_ROOT.chmod(0o1777)  # every user's builds share it, as /tmp itself
        lock = filelock.FileLock(f"{folder}.lock")
        lock.acquire()
    except OSError:
        yield fallback, False
        return
    try:
        try:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        except OSError:
            yield fallback, False
            return
        yield folder, True
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lock.release()
