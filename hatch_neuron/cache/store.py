"""The local compile cache: content-addressed entries on disk, safe under concurrent builds and crashes.

Layout under the cache folder (``v1/`` so that a future layout can live beside this one)::

    v1/artifacts/<k[:2]>/<key>/entry.json + the artifact's files
    v1/direct/<k[:2]>/<key>.json      records that map a model's inputs (files read) to artifact keys
    v1/locks/<key>.lock                one lock per key (filelock)
    v1/tmp/                            entries being written

An entry is written under ``tmp/`` (``entry.json`` last) and renamed into place, so an entry is either
complete or absent: a build killed at any moment leaves at most a stale ``tmp/`` folder, which no build
reads and ``prune``/``clear`` remove. Every file's sha256 is recorded and checked on every read; an entry
that does not match is reported, removed and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

LAYOUT = "v1"
ENTRY = "entry.json"


class CorruptEntry(RuntimeError):
    """A cache entry whose files do not match their recorded sha256 (it has been removed)."""


T = TypeVar("T")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: The sha256 of artifact files this process wrote or hashed, by the file's identity (device, inode, size,
#: modification time): the artifacts a build copies from the cache are hashed while they are copied,
#: and neither the pipeline's check nor the wheel's RECORD needs to read 1 GB of them again. A file
#: replaced or rewritten since has another identity and is hashed again. Only for the build's own
#: staged artifacts (:func:`artifact_sha256`); sources are always hashed afresh.
_ARTIFACT_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def _identity(path: Path | str) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def known_artifact_sha256(path: Path | str) -> str | None:
    """The sha256 this process found for the artifact file at ``path``, if it is unchanged since."""
    return _ARTIFACT_DIGESTS.get(_identity(path))


def artifact_sha256(path: Path) -> str:
    """The sha256 of a staged artifact file: remembered (:data:`_ARTIFACT_DIGESTS`), else hashed."""
    before = _identity(path)
    known = _ARTIFACT_DIGESTS.get(before)
    if known is None:
        known = sha256_file(path)
        if _identity(path) == before:  # not written while it was read
            _ARTIFACT_DIGESTS[before] = known
    return known


def entry_files(artifact: T, companions: dict[str, T]) -> dict[str, T]:
    """The names a cache entry gives an artifact's files: ``artifact``, and ``companion<suffix>`` for each
    file beside it (the values: paths, or their manifest entries)."""
    return {"artifact": artifact, **{f"companion{suffix}": c for suffix, c in companions.items()}}


def _copy_hashing(source: Path, dest: Path) -> str:
    """Copy ``source`` to ``dest``, returning the sha256 of the bytes copied (one pass over them)."""
    digest = hashlib.sha256()
    with source.open("rb") as src, dest.open("wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _place(source: Path, dest: Path) -> str | None:
    """Put ``source``'s bytes at ``dest``: a hard link where the file system allows one (a GB of weights
    is not written a second time; sharing is safe because no file here is ever written in place: every
    writer writes a new file and renames it over the old name), else a copy. Returns the sha256 when the
    copy computed it, None for a link."""
    try:
        os.link(source, dest)
        return None
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or one without hard links
        return _copy_hashing(source, dest)


def _place_checked(source: Path, dest: Path, sha256: str) -> bool:
    """:func:`_place` ``source`` at ``dest`` (via a temporary name); False, and nothing at ``dest``, when
    its bytes do not match ``sha256``."""
    partial = dest.with_name(dest.name + f".partial-{uuid.uuid4().hex[:8]}")
    try:
        if (_place(source, partial) or sha256_file(partial)) != sha256:
            return False
        os.replace(partial, dest)
        _ARTIFACT_DIGESTS[_identity(dest)] = sha256  # the bytes just placed, hashed as they were
        return True
    except FileNotFoundError:
        return False
    finally:
        partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class EntryInfo:
    key: str
    kind: str  # artifact | direct
    size: int
    last_used: float
    description: str


def fault_message(root: Path, exc: BaseException) -> str:
    """The one warning a build prints when its cache folder fails (unwritable, gone, not a folder, full)."""
    return (
        f"the compile cache {root} is not usable ({type(exc).__name__}: {exc}); this build goes on "
        "without it. Point HATCH_NEURON_CACHE_DIR (or tool.neuron.cache-dir) at a writable folder, or set "
        "HATCH_NEURON_CACHE=off"
    )


class LocalCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / LAYOUT
        #: Why this cache stopped being used in this process (see :meth:`fault`), or None.
        self.fault_reason: str | None = None

    @property
    def faulty(self) -> bool:
        return self.fault_reason is not None

    def fault(self, exc: BaseException) -> None:
        """Stop using this cache for the rest of the process: an operation on its folder failed."""
        self.fault_reason = self.fault_reason or fault_message(self.root, exc)

    def probe(self) -> None:
        """Raise OSError unless the cache's folders can be created and written (checked before a build)."""
        for folder in ("locks", "tmp"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        probe = self.base / "tmp" / f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()

    # -- artifacts --------------------------------------------------------------------------------------

    def entry_dir(self, key: str) -> Path:
        return self.base / "artifacts" / key[:2] / key

    def lock(self, key: str) -> FileLock:
        """A lock for one key: held while checking for, compiling and storing that key's entry, so two
        builds that need the same artifact compile it once."""
        (self.base / "locks").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.base / "locks" / f"{key}.lock"))

    def fetch(self, key: str, dest: dict[str, Path]) -> dict[str, Any] | None:
        """Place (link or copy, see :func:`_place`) entry ``key``'s files at ``dest`` (file name in the
        entry -> destination) and return its metadata, or None when there is no entry. Raises
        :class:`CorruptEntry` (after removing the entry) when a file is missing or does not match its
        sha256."""
        folder = self.entry_dir(key)
        try:
            meta = json.loads((folder / ENTRY).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._discard(folder)
            raise CorruptEntry(f"cache entry {key[:16]}: unreadable {ENTRY} ({exc}); removed") from None
        if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("files"), dict):
            self._discard(folder)
            raise CorruptEntry(
                f"cache entry {key[:16]}: its {ENTRY} belongs to another key or is malformed (an entry moved "
                "or edited by hand); removed, compiling again"
            )
        for name, target in dest.items():
            expected = meta["files"].get(name, {}).get("sha256")
            if expected is None or not _place_checked(folder / name, target, expected):
                self._discard(folder)
                raise CorruptEntry(
                    f"cache entry {key[:16]}: {name} is missing or does not match its sha256 (corrupted or "
                    "truncated); removed, compiling again"
                )
        with contextlib.suppress(OSError):
            os.utime(folder)  # last use, for prune
        return meta

    def store(self, key: str, files: dict[str, Path], meta: dict[str, Any]) -> None:
        """Store ``files`` (name in the entry -> file) under ``key`` with ``meta``; complete or not at all."""
        folder = self.entry_dir(key)
        if (folder / ENTRY).exists():
            return
        tmp = self._tmp_dir()
        try:
            recorded = {}
            for name, source in files.items():
                # a copy is hashed as it is made; a link is the build's own file, whose hash it knows
                digest = _place(source, tmp / name) or artifact_sha256(tmp / name)
                recorded[name] = {"sha256": digest, "size": (tmp / name).stat().st_size}
            body = {**meta, "key": key, "files": recorded, "stored": time.time()}
            (tmp / ENTRY).write_text(json.dumps(body, indent=1, sort_keys=True))
            folder.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # another build stored the same key first: keep theirs
                os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def evict(self, key: str) -> None:
        """Remove entry ``key`` (a fault found after it was read: it loads wrongly or differs from eager)."""
        self._discard(self.entry_dir(key))

    def _tmp_dir(self) -> Path:
        tmp = self.base / "tmp" / f"{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        return tmp

    def _discard(self, folder: Path) -> None:
        """Move a bad entry out of the way atomically, then delete it."""
        trash = self.base / "tmp" / f"discard-{uuid.uuid4().hex}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- direct records ---------------------------------------------------------------------------------

    def _direct_file(self, key: str) -> Path:
        return self.base / "direct" / key[:2] / f"{key}.json"

    def direct_records(self, key: str) -> list[dict[str, Any]]:
        try:
            return json.loads(self._direct_file(key).read_text())
        except (OSError, ValueError):
            return []

    def add_direct_record(self, key: str, record: dict[str, Any], keep: int = 8) -> None:
        """Add ``record`` first in the list for ``key`` (the ``keep`` most recent are kept)."""
        path = self._direct_file(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock(key):
            records = [r for r in self.direct_records(key) if r.get("files") != record.get("files")]
            records = [record, *records][:keep]
            partial = path.with_name(f"{path.name}.partial-{uuid.uuid4().hex[:8]}")
            partial.write_text(json.dumps(records, sort_keys=True))
            os.replace(partial, path)

    def drop_direct_record(self, key: str, record: dict[str, Any]) -> None:
        """Remove ``record`` from the list for ``key`` (its artifacts are gone or differ)."""
        path = self._direct_file(key)
        with self.lock(key):
            records = [r for r in self.direct_records(key) if r != record]
            partial = path.with_name(f"{path.name}.partial-{uuid.uuid4().hex[:8]}")
            partial.write_text(json.dumps(records, sort_keys=True))
            os.replace(partial, path)

    # -- maintenance ------------------------------------------------------------------------------------

    def entries(self) -> Iterator[EntryInfo]:
        for folder in sorted((self.base / "artifacts").glob("*/*")):
            try:
                meta = json.loads((folder / ENTRY).read_text())
                size = sum(p.stat().st_size for p in folder.iterdir())
                used = folder.stat().st_mtime
            except (OSError, ValueError):
                continue
            yield EntryInfo(folder.name, "artifact", size, used, meta.get("description", ""))
        for path in sorted((self.base / "direct").glob("*/*.json")):
            with contextlib.suppress(OSError):
                stat = path.stat()
                yield EntryInfo(path.stem, "direct", stat.st_size, stat.st_mtime, "model inputs -> artifacts")

    def remove(self, entry: EntryInfo) -> None:
        if entry.kind == "artifact":
            self._discard(self.entry_dir(entry.key))
        else:
            self._direct_file(entry.key).unlink(missing_ok=True)

    def prune(self, older_than_days: float | None = None, max_size: int | None = None) -> list[EntryInfo]:
        """Remove entries unused for ``older_than_days``, then the least recently used ones until the cache
        holds at most ``max_size`` bytes; also leftovers of interrupted writes. Returns what was removed."""
        removed = []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        if older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400
            removed += [e for e in entries if e.last_used < cutoff]
            entries = [e for e in entries if e.last_used >= cutoff]
        if max_size is not None:
            total = sum(e.size for e in entries)
            while entries and total > max_size:
                oldest = entries.pop(0)
                removed.append(oldest)
                total -= oldest.size
        for entry in removed:
            self.remove(entry)
        self._clean_tmp(older_than=3600)
        self._prune_locks()
        return removed

    def _prune_locks(self) -> None:
        """Remove the lock files of keys that have no entry, unless a build holds one now. (A build that
        opened such a file just before it goes may then compile a key twice; stores stay atomic.)"""
        kept = {e.key for e in self.entries()}
        for path in (self.base / "locks").glob("*.lock"):
            if path.stem in kept:
                continue
            lock = FileLock(str(path))
            try:
                lock.acquire(timeout=0)
            except (Timeout, OSError):
                continue
            try:
                path.unlink(missing_ok=True)
            finally:
                lock.release()

    def _clean_tmp(self, older_than: float) -> None:
        """Remove write folders older than ``older_than`` seconds (their builds are gone)."""
        for folder in (self.base / "tmp").glob("*"):
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > older_than:
                    shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
