"""The remote compile cache: artifact entries shared by many machines on any fsspec filesystem (S3 and
S3-compatible stores first), layered under the local cache (:mod:`.store`).

Layout under the URL (``s3://bucket/prefix``)::

    v1/<k[:2]>/<key>/entry.json          the commit record (below)
    v1/<k[:2]>/<key>/<upload>/<file>     the files of one upload

An upload writes its files under a fresh ``<upload>`` id, then ``entry.json`` (one object PUT, atomic on
S3), which names the upload and records each file's sha256 and size, the key's inputs (computation digest,
input specs, target, options, versions), the builder and the time. Readers go by ``entry.json`` only: an
interrupted upload is never seen, and of two concurrent uploads of one key the last ``entry.json`` wins and
points at its own complete files. A download is checked byte for byte (sha256 and size) and against its key
before it reaches the local cache; one that does not match is reported and not used. The key is the
content address of the computation, and every artifact taken from any cache is verified against eager
again before it goes into a wheel.

Faults never fail a build: every operation has timeouts; the first failure is reported once and the
remote is left alone for the rest of the worker, which compiles locally.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import ENTRY, LAYOUT, LocalCache


class RemoteUnavailable(RuntimeError):
    """The remote cache cannot be used (unreachable, too slow, no permission, fsspec backend missing)."""


class RemoteCorrupt(RuntimeError):
    """A remote entry whose files do not match its record (it was not used)."""


@dataclass(frozen=True)
class RemoteSettings:
    """What a worker needs to reach the remote cache (sent in its request)."""

    url: str
    mode: str = "read-write"
    endpoint_url: str | None = None
    timeout: float = 10.0

    @property
    def writable(self) -> bool:
        return self.mode == "read-write"


@dataclass
class RemoteEntry:
    key: str
    size: int
    stored: float
    description: str
    builder: str


def open_filesystem(settings: RemoteSettings) -> tuple[Any, str]:
    """The fsspec filesystem and the root path inside it, with timeouts and no retries for S3."""
    try:
        import fsspec
    except ImportError:
        raise RemoteUnavailable("fsspec is not installed: pip install 'hatch-neuron[remote]'") from None
    protocol = settings.url.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        options = {
            "skip_instance_cache": True,
            "config_kwargs": {
                "connect_timeout": settings.timeout,
                "read_timeout": settings.timeout,
                "retries": {"max_attempts": 1, "mode": "standard"},
            },
        }
        if settings.endpoint_url:
            options["endpoint_url"] = settings.endpoint_url
    elif protocol in ("file", "local"):
        options = {"auto_mkdir": True}
    try:
        fs, root = fsspec.core.url_to_fs(settings.url, **options)
    except (ImportError, ValueError) as exc:
        raise RemoteUnavailable(f"{settings.url}: {exc}") from None
    return fs, root.rstrip("/")


class RemoteCache:
    """One process's view of the remote cache; any error becomes :class:`RemoteUnavailable`."""

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.fs, self.root = open_filesystem(settings)

    def _dir(self, key: str) -> str:
        return f"{self.root}/{LAYOUT}/{key[:2]}/{key}"

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise RemoteUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc

    def record(self, key: str) -> dict[str, Any] | None:
        """The entry's commit record, or None when there is none."""
        try:
            data = self._call(f"reading {key[:16]}", self.fs.cat_file, f"{self._dir(key)}/{ENTRY}")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            raise RemoteCorrupt(f"remote entry {key[:16]}: unreadable {ENTRY}") from None
        if record.get("key") != key:
            raise RemoteCorrupt(f"remote entry {key[:16]}: its record is for another key")
        return record

    def download(self, key: str, local: LocalCache) -> bool:
        """Copy the entry into ``local`` (complete and checked, or not at all); False when there is none."""
        record = self.record(key)
        if record is None:
            return False
        staging = local.base / "tmp"  # inside the cache: not a file the model read
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="remote-", dir=staging) as tmp:
            files = {}
            for name, expected in record["files"].items():
                path = f"{self._dir(key)}/{record['upload']}/{name}"
                try:
                    data = self._call(f"downloading {name}", self.fs.cat_file, path)
                except FileNotFoundError:  # removed after its record was read (a prune, say): a miss
                    raise RemoteCorrupt(f"remote entry {key[:16]}: {name} is gone; not used") from None
                if len(data) != expected["size"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
                    raise RemoteCorrupt(
                        f"remote entry {key[:16]}: {name} does not match its recorded sha256 and size "
                        f"({len(data)} bytes); not used"
                    )
                files[name] = Path(tmp) / name
                files[name].write_bytes(data)
            local.store(key, files, {k: record[k] for k in ("facts", "description") if k in record})
        return True

    def upload(self, key: str, local_entry: Path, key_inputs: dict[str, Any]) -> None:
        """Upload the local entry folder ``local_entry`` under ``key``: files first, the record last."""
        meta = json.loads((local_entry / ENTRY).read_text())
        upload = uuid.uuid4().hex
        for name in meta["files"]:
            data = (local_entry / name).read_bytes()
            self._call(f"uploading {name}", self.fs.pipe_file, f"{self._dir(key)}/{upload}/{name}", data)
        record = {
            "key": key,
            "upload": upload,
            "files": meta["files"],
            "facts": meta.get("facts", {}),
            "description": meta.get("description", ""),
            "key_inputs": key_inputs,
            "builder": f"{socket.gethostname()} ({platform.system()} {platform.machine()})",
            "stored": time.time(),
        }
        body = json.dumps(record, indent=1, sort_keys=True).encode()
        self._call("uploading the record", self.fs.pipe_file, f"{self._dir(key)}/{ENTRY}", body)

    # -- maintenance (hatch-neuron cache --remote) -------------------------------------------------------

    def entries(self) -> Iterator[RemoteEntry]:
        try:
            paths = self._call("listing", self.fs.glob, f"{self.root}/{LAYOUT}/*/*/{ENTRY}")
        except FileNotFoundError:
            return
        for path in sorted(paths):
            key = path.rstrip("/").split("/")[-2]
            try:
                record = self.record(key)
            except RemoteCorrupt:
                continue
            if record is not None:
                yield RemoteEntry(
                    key,
                    sum(f["size"] for f in record["files"].values()),
                    record.get("stored", 0.0),
                    record.get("description", ""),
                    record.get("builder", ""),
                )

    def remove(self, key: str) -> None:
        self._call(f"removing {key[:16]}", self.fs.rm, self._dir(key), True)

    def prune(self, older_than_days: float) -> list[RemoteEntry]:
        cutoff = time.time() - older_than_days * 86400
        removed = [e for e in self.entries() if e.stored < cutoff]
        for entry in removed:
            self.remove(entry.key)
        return removed

    def clear(self) -> int:
        removed = 0
        for entry in list(self.entries()):
            self.remove(entry.key)
            removed += 1
        return removed


class RemoteLayer:
    """The remote cache as a worker uses it: downloads on a local miss, uploads what it compiled. The
    first failure is reported (through ``warn``) and turns the remote off for the rest of the worker."""

    def __init__(self, settings: RemoteSettings | None, warn: Callable[[str], None]) -> None:
        self.settings = settings
        self.warn = warn
        self.off = settings is None or settings.mode == "off"
        self._remote: RemoteCache | None = None

    def _cache(self) -> RemoteCache:
        assert self.settings is not None
        if self._remote is None:
            self._remote = RemoteCache(self.settings)
        return self._remote

    def fetch(self, key: str, local: LocalCache) -> bool:
        """Bring the entry of ``key`` into ``local``; False when the remote has none (or is unusable)."""
        if self.off:
            return False
        try:
            return self._cache().download(key, local)
        except RemoteCorrupt as exc:
            self.warn(f"remote cache: {exc}")
        except RemoteUnavailable as exc:
            self._give_up(exc)
        return False

    def publish(self, key: str, local: LocalCache, key_inputs: dict[str, Any]) -> None:
        """Upload ``local``'s entry of ``key`` (read-write mode only)."""
        if self.off or self.settings is None or not self.settings.writable:
            return
        try:
            self._cache().upload(key, local.entry_dir(key), key_inputs)
        except RemoteUnavailable as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        assert self.settings is not None
        self.warn(
            f"remote cache {self.settings.url} not usable ({exc}); compiling locally, and this worker "
            "does not try it again"
        )
        self.off = True
