"""Verification stamps: an artifact hashed once is not hashed again while its file is unchanged.

Hashing dominates loading a large artifact (sha256 of 432 MB: 0.45 s here, ``torch.jit.load`` of it:
0.30 s), and the hash cannot overlap the load, which holds the GIL. So after an artifact's sha256
matched its manifest, the loader records the file's status (device, inode, size, mtime and ctime in ns)
in a stamp named by the file's path and recorded sha256. A later load whose file has the same status
skips the hash: any write to the file, a rename onto it or a chmod changes its ctime, which no user can
set back, so a file with the same status is the file that was verified (git's index trusts the same
fields; as git does with "racy" entries, a file changed in the last 2 s gets no stamp). Stamps live in
``$HATCH_NEURON_STAMPS``, else ``$XDG_CACHE_HOME/hatch-neuron/verified``, else
``~/.cache/hatch-neuron/verified``; ``HATCH_NEURON_VERIFY=always`` hashes on every load. Stamps are an
optimisation only: one that cannot be read or written means the file is hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

VERIFY_ENV = "HATCH_NEURON_VERIFY"
#: A file changed less than this long before it was hashed gets no stamp: file times have the kernel
#: clock's tick as granularity (milliseconds), so a change within the same tick could leave them as they
#: were (git's "racy clean" problem). Any change after the stamp is at least this much later, a new time.
SETTLED_NS = 2_000_000_000
STAMPS_ENV = "HATCH_NEURON_STAMPS"


def stamp_folder() -> Path:
    explicit = os.environ.get(STAMPS_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hatch-neuron" / "verified"


def _status(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def unchanged(path: Path, opened: os.stat_result) -> bool:
    """Whether ``path`` is still the file that was opened (status ``opened``), unmodified."""
    try:
        return _status(os.stat(path)) == _status(opened)
    except OSError:
        return False


def _stamp(path: Path, sha256: str) -> Path:
    name = hashlib.sha256(f"{path}\0{sha256}".encode()).hexdigest()
    return stamp_folder() / name[:2] / f"{name}.json"


def is_verified(path: Path, sha256: str, opened: os.stat_result) -> bool:
    """Whether the file at ``path`` (``opened``: the status of the open file) was verified against
    ``sha256`` and has not changed since."""
    mode = os.environ.get(VERIFY_ENV, "").strip()
    if mode not in ("", "stamp", "always"):
        raise ValueError(
            f"{VERIFY_ENV}={mode!r}: expected 'always' (hash every load) or 'stamp' (the default)"
        )
    if mode == "always":
        return False
    try:
        return json.loads(_stamp(path, sha256).read_text()) == _status(opened)
    except (OSError, ValueError):
        return False


def record_verified(path: Path, sha256: str, opened: os.stat_result) -> None:
    """Record that the file at ``path``, of status ``opened``, hashed to ``sha256`` (unless it changed
    too recently for its times to tell a later change: :data:`SETTLED_NS`)."""
    if time.time_ns() - max(opened.st_mtime_ns, opened.st_ctime_ns) < SETTLED_NS:
        return
    stamp = _stamp(path, sha256)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        partial = stamp.with_name(f"{stamp.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(_status(opened)))
        os.replace(partial, stamp)
    except OSError:
        pass  # a read-only or full home: the next load hashes again
