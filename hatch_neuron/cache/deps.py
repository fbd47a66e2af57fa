"""Which files a model's factory read: its own modules and the data files it opened (for direct keys)."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

from .store import sha256_file

_SYSTEM = ("/proc/", "/sys/", "/dev/")


def installation_prefixes() -> tuple[str, ...]:
    """The folders of the Python installation (its packages are covered by version, not by file)."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    prefixes.add(site.getusersitepackages())
    return tuple(str(Path(p).resolve()) + os.sep for p in prefixes)


class ReadTracker:
    """Records, from now on, the files this process opens for reading and the modules it imports, outside
    the Python installation (whose packages the direct key covers by version) and ``ignore``."""

    def __init__(self, ignore: list[Path]) -> None:
        own = tuple(str(Path(p).resolve()) + os.sep for p in ignore)
        self._ignore = installation_prefixes() + own + _SYSTEM
        self._modules_before = set(sys.modules)
        self._opened: set[str] = set()
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if event != "open":
            return
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        writing = any(c in (mode or "") for c in "wax+") or (
            mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if not writing:
            self._opened.add(os.fsdecode(path))

    def files(self) -> dict[str, str]:
        """Absolute path -> sha256 of every file read so far (that still exists)."""
        paths = set(self._opened)
        for name in set(sys.modules) - self._modules_before:
            file = getattr(sys.modules.get(name), "__file__", None)
            if file:
                paths.add(file)
        found = {}
        for path in paths:
            resolved = str(Path(path).resolve())
            if resolved.startswith(self._ignore) or resolved.endswith(".pyc") or not os.path.isfile(resolved):
                continue
            found[resolved] = sha256_file(Path(resolved))
        return dict(sorted(found.items()))
