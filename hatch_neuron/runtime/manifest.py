"""Read a built package's manifest and its artifacts, checking each artifact's size and sha256.

Nothing the manifest says is trusted: every file it names must be a plain file name of the artifact
folder (no ``..``, no absolute path, no symlink out of the folder) and a regular file whose size is the
recorded one before a byte of it is read; then it is hashed in blocks, at most ``size + 1`` bytes, while
the loader reads it from its path (:func:`open_artifact`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import stamps
from .schema import FORMAT_VERSION, Manifest, ManifestProblem, file_name_problem, manifest_problem

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Folder, inside the package that receives the artifacts, holding manifest.json and the artifacts.
ARTIFACT_DIR = "_hatch_neuron"
MANIFEST = "manifest.json"
#: A manifest larger than this is refused unread (a real one is a few KiB per model).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
#: Read and hash files in blocks of this size.
BLOCK = 1024 * 1024
_REINSTALL = "the package was modified after the build, or its install is broken. Reinstall the package"


class ArtifactIntegrityError(RuntimeError):
    """An artifact's bytes do not match the sha256 or size recorded at build time (tampered or truncated)."""


class ManifestError(RuntimeError):
    """A package's manifest is malformed, or names an artifact that is missing, not a regular file, or
    outside the package's artifact folder."""


#: Artifact folders outside their package: package -> folder (editable installs, see ``runtime.editable``).
_FOLDERS: dict[str, Path] = {}


def use_artifact_folder(package: str, folder: str | Path) -> None:
    """Read ``package``'s manifest and artifacts from ``folder`` instead of ``<package>/_hatch_neuron``."""
    _FOLDERS[package] = Path(folder)
    read_manifest.cache_clear()


def artifact_folder(package: str) -> Traversable:
    """Where ``package``'s manifest and artifacts are."""
    folder = _FOLDERS.get(package)
    return folder if folder is not None else resources.files(package).joinpath(ARTIFACT_DIR)


def manifest_location(package: str) -> str:
    """The manifest's path, as error messages name it."""
    return str(artifact_folder(package).joinpath(MANIFEST))


# --- what a manifest says -----------------------------------------------------------------------


def all_artifacts(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every artifact entry of a manifest, model by model, target by target."""
    for model in manifest["models"].values():
        for entries in model["artifacts"].values():
            yield from entries


def artifact_files(artifact: dict[str, Any]) -> list[dict[str, Any]]:
    """The file entries (``file``, ``sha256``, ``size``) of one artifact: its own, then its companions'."""
    return [artifact, *artifact.get("companions", {}).values()]


def parse_manifest(data: bytes) -> tuple[Any, str | None]:
    """The manifest decoded from ``data``, and what is wrong with it (None when nothing)."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}; truncated?)"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    if isinstance(manifest, dict) and manifest.get("format") != FORMAT_VERSION:
        return manifest, None  # another format: the caller says which (its structure is not ours to check)
    return manifest, manifest_problem(manifest)


# --- reading files -----------------------------------------------------------------------------------


class FileProblem(Exception):
    """Why a file cannot be read: missing, outside its folder, not a regular file, or of another size."""

    def __init__(self, message: str, *, size: int | None = None, missing: bool = False) -> None:
        super().__init__(message)
        self.size = size  # the size found, when that is the problem
        self.missing = missing


def open_regular(folder: Path, name: str, size: int | None = None) -> IO[bytes]:
    """Open ``folder/name`` for reading, refusing (:class:`FileProblem`) a name that is not a plain file
    name, a path that resolves outside ``folder`` (symlinks), anything but a regular file (devices, FIFOs:
    opened without blocking, checked before any read) and, when ``size`` is given, another size."""
    problem = file_name_problem(name)
    if problem:
        raise FileProblem(problem)
    try:
        base = folder.resolve(strict=True)
        path = (folder / name).resolve(strict=True)
    except FileNotFoundError:
        raise FileProblem("no such file", missing=True) from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
        raise FileProblem(f"cannot be resolved ({exc})") from None
    if path.parent != base:
        raise FileProblem(f"resolves to {path}, outside the artifact folder {base}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileProblem("no such file", missing=True) from None
    except OSError as exc:
        raise FileProblem(f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"{path} is not a regular file")
        if size is not None and info.st_size != size:
            raise FileProblem(f"{info.st_size} bytes, the manifest recorded {size}", size=info.st_size)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(stream: IO[bytes], limit: int) -> tuple[bytes, str]:
    """At most ``limit`` bytes of ``stream`` (fewer at its end), read in blocks, and their sha256."""
    digest = hashlib.sha256()
    chunks = []
    left = limit
    while left > 0:
        chunk = stream.read(min(BLOCK, left))
        if not chunk:
            break
        digest.update(chunk)
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), digest.hexdigest()


def hash_stream(stream: IO[bytes], limit: int) -> tuple[int, str]:
    """The number of bytes (at most ``limit``) read from ``stream`` in blocks, and their sha256; nothing is
    kept in memory but one block."""
    digest = hashlib.sha256()
    count = 0
    while count < limit:
        chunk = stream.read(min(BLOCK, limit - count))
        if not chunk:
            break
        digest.update(chunk)
        count += len(chunk)
    return count, digest.hexdigest()


def _read_node(folder: Traversable, name: str, size: int | None, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``folder/name`` (``size``: the size it must have, checked before reading).

    In a plain folder whose file has the checked ``size``, one read of at most ``limit`` bytes: the bytes
    are returned, so reading them in blocks would only add a copy. Otherwise (no size, or a Traversable
    that is not a folder, such as a zip) in blocks, stopping at ``limit``."""
    if isinstance(folder, Path):
        with open_regular(folder, name, size) as stream:
            return stream.read(limit) if size is not None else read_limited(stream, limit)[0]
    problem = file_name_problem(name)
    if problem:
        raise FileProblem(problem)
    node = folder.joinpath(name)
    if not node.is_file():
        raise FileProblem("no such file", missing=True)
    with node.open("rb") as stream:
        return read_limited(stream, limit)[0]


@cache
def read_manifest(package: str) -> Manifest:
    """The manifest of ``package`` (an importable package built with hatch-neuron), checked for the
    structure the loader relies on (:class:`ManifestError` naming the package and the file otherwise)."""
    where = f"package {package!r}: manifest {manifest_location(package)}"
    try:
        data = _read_node(artifact_folder(package), MANIFEST, None, MAX_MANIFEST_BYTES + 1)
    except FileProblem as exc:
        if exc.missing:
            raise LookupError(
                f"package {package!r} has no {ARTIFACT_DIR}/{MANIFEST}: it was not built with hatch-neuron, "
                "or the build did not run the hook (is [tool.hatch.build.hooks.neuron] declared?)"
            ) from None
        raise ManifestError(f"{where}: {exc}; {_REINSTALL}") from None
    except OSError as exc:
        raise ManifestError(f"{where}: cannot be read ({exc}); {_REINSTALL}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_MANIFEST_BYTES} bytes; {_REINSTALL}")
    manifest, problem = parse_manifest(data)
    if problem:
        raise ManifestError(f"{where}: {problem}; {_REINSTALL}")
    if manifest.get("format") != FORMAT_VERSION:
        raise RuntimeError(
            f"package {package!r}: manifest format {manifest.get('format')!r} is not supported by this "
            f"hatch-neuron runtime (supports {FORMAT_VERSION}); install the hatch-neuron the package asks for"
        )
    try:
        return Manifest.from_json(manifest)
    except ManifestProblem as exc:
        raise ManifestError(f"{where}: {exc}; {_REINSTALL}") from None


def _artifact_where(package: str, file: str) -> str:
    where = f"package {package!r}"
    return (
        where if file_name_problem(file) else f"{where}: artifact {artifact_folder(package).joinpath(file)}"
    )


def _artifact_refused(package: str, where: str, exc: Exception) -> RuntimeError:
    """The error for an artifact that cannot be read at all (``exc``: a FileProblem or OSError)."""
    if isinstance(exc, FileProblem) and exc.size is not None:
        return ArtifactIntegrityError(
            f"{where}: {exc}; the file was modified or truncated after the build. Reinstall the "
            "package; the artifact was not loaded"
        )
    if isinstance(exc, FileProblem):
        return ManifestError(
            f"{where}: {exc} (the manifest {manifest_location(package)} names it); {_REINSTALL}"
        )
    return ManifestError(f"{where}: cannot be read ({exc}); {_REINSTALL}")


def _mismatch(where: str, sha256: str, size: int, actual: str, count: int) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"{where}: sha256 is {actual}, the manifest recorded {sha256} "
        f"({count} bytes read, {size} recorded); the file was modified or truncated after the build. "
        "Reinstall the package; the artifact was not loaded"
    )


def read_artifact(package: str, file: str, sha256: str, size: int) -> bytes:
    """The bytes of one artifact, refused unless the file is a regular file of the artifact folder of
    ``size`` bytes (checked before reading) that hashes to ``sha256``."""
    where = _artifact_where(package, file)
    try:
        data = _read_node(artifact_folder(package), file, size, size + 1)
    except (FileProblem, OSError) as exc:
        raise _artifact_refused(package, where, exc) from None
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != size or actual != sha256:
        raise _mismatch(where, sha256, size, actual, len(data))
    return data


#: Files at least this large are hashed by a helper process while they load: ``torch.jit.load`` holds the
#: GIL throughout, so a thread of this process could not hash meanwhile (432 MB: load 0.30 s, sha256 0.45 s).
HELPER_MIN_SIZE = 64 * 2**20

#: The helper maps the file in windows of this size: hashing the page cache in place (no copy into a
#: buffer: 1.26x a bare load against 1.31x for 1 MiB reads, BERT-base), its resident set one window.
HELPER_WINDOW = 64 * 2**20

_HELPER_CODE = """
import hashlib, mmap, os, sys
fd, limit, window = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
size, digest = min(os.fstat(fd).st_size, limit), hashlib.sha256()
for start in range(0, size, window):
    with mmap.mmap(fd, min(window, size - start), access=mmap.ACCESS_READ, offset=start) as view:
        digest.update(view)
print(size, digest.hexdigest())
"""


def _start_hash_helper(stream: IO[bytes], limit: int) -> subprocess.Popen[str] | None:
    """A Python process (isolated, without site) hashing the open file ``stream`` (passed as its descriptor,
    so it is this very file) up to ``limit`` bytes; None where none can start (the thread hashes then)."""
    if not sys.executable:
        return None
    fd = stream.fileno()
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER_CODE, str(fd), str(limit), str(HELPER_WINDOW)],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except (OSError, ValueError):
        return None


def _helper_result(helper: subprocess.Popen[str]) -> tuple[int, str] | None:
    """(bytes hashed, sha256) from the helper, or None when it failed (the caller hashes itself then)."""
    output, _ = helper.communicate()
    try:
        count, digest = output.split()
        return (int(count), digest) if helper.returncode == 0 else None
    except ValueError:
        return None


@contextmanager
def open_artifact(package: str, file: str, sha256: str, size: int) -> Iterator[str | IO[bytes]]:
    """What a loader reads for one artifact: the path of the file, checked as :func:`read_artifact` checks
    it before a byte is read, or (a package not installed as plain files, such as a zip) its checked bytes.

    No copy of the file is kept in memory: its sha256 is computed in blocks while the block loads from the
    path (by a helper process for large files, see :data:`HELPER_MIN_SIZE`; else in a thread), and
    checked on leaving the block, whatever the block did: a difference, or a file
    replaced or changed on disk meanwhile, raises :class:`ArtifactIntegrityError` (rather than the
    loader's own error about a corrupted file), and what the block loaded must be dropped. A file verified
    before and unchanged since (:mod:`.stamps`) is not hashed again."""
    folder = artifact_folder(package)
    if not isinstance(folder, Path):
        yield io.BytesIO(read_artifact(package, file, sha256, size))
        return
    where = _artifact_where(package, file)
    try:
        stream = open_regular(folder, file, size)
    except (FileProblem, OSError) as exc:
        raise _artifact_refused(package, where, exc) from None
    with stream:
        path = (folder / file).resolve()
        opened = os.fstat(stream.fileno())
        replaced = ArtifactIntegrityError(
            f"{where}: the file was replaced or changed while it loaded; the artifact was not loaded. Load "
            "again, or reinstall the package"
        )
        if stamps.is_verified(path, sha256, opened):
            yield str(path)
            if not stamps.unchanged(path, opened):
                raise replaced
            return
        hashed: dict[str, Any] = {}
        helper = _start_hash_helper(stream, size + 1) if size >= HELPER_MIN_SIZE else None

        def hash_file() -> None:
            try:
                got = _helper_result(helper) if helper is not None else None
                hashed["count"], hashed["sha256"] = got or hash_stream(stream, size + 1)
            except OSError as exc:
                hashed["error"] = exc

        hashing = threading.Thread(target=hash_file, name=f"hatch-neuron-hash-{file}", daemon=True)
        hashing.start()
        try:
            yield str(path)
        finally:
            hashing.join()
            if "error" in hashed:
                raise _artifact_refused(package, where, hashed["error"])
            if hashed["count"] != size or hashed["sha256"] != sha256:
                raise _mismatch(where, sha256, size, hashed["sha256"], hashed["count"])
            if not stamps.unchanged(path, opened):
                raise replaced
        stamps.record_verified(path, sha256, opened)
