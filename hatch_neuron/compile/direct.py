"""Direct cache hits: a model whose factory's files are unchanged since a recorded build gets that build's
artifacts copied from the cache without starting a worker (no torch import, no trace).

A record, kept in the cache under the model's *direct key* (its request, settings and the build's
environment), holds the sha256 of every file its factory read, the artifact keys and the model's
:class:`~.contracts.ModelResult`. A hit needs every file unchanged and every artifact in the cache with
the bytes the record describes; a record whose artifacts are gone or differ is dropped.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..cache import CorruptEntry, LocalCache
from ..cache.keys import direct_key, installed_distributions
from ..cache.store import entry_files, sha256_file
from ..plan import BuildPlan, ModelPlan
from .contracts import ModelResult
from .pool import ModelBuild
from .runner import model_request

#: Part of every direct key: raised when a record's result changes shape (2: ``aliased_outputs``; 3: typed
#: records, :class:`~.contracts.ModelResult`; 4: the inference defaults, ``inductor_configs_added`` and
#: ``optimize_for_inference``, which older records lack), so that older records are not used.
DIRECT_RECORD_FORMAT = 4


class DirectCache:
    def __init__(
        self,
        plan: BuildPlan,
        root: Path,
        out_dir: Path,
        cache: LocalCache,
        versions: dict[str, str],
        log: Callable[[str], None],
        on_fault: Callable[[OSError], None],
    ) -> None:
        self.plan, self.root, self.out_dir, self.versions, self.log = plan, root, out_dir, versions, log
        self.cache: LocalCache | None = cache
        self._on_fault = on_fault

    def _fault(self, exc: OSError) -> None:
        self.cache = None
        self._on_fault(exc)

    @functools.cached_property
    def _environment(self) -> dict[str, Any]:
        """What the direct keys of this build share: versions and where modules are imported from."""
        return {
            **self.versions,
            "python": platform.python_version(),
            "distributions": installed_distributions(),
            # where factories and toolchains are imported from (a module found elsewhere is another one)
            "pythonpath": os.environ.get("PYTHONPATH", ""),
        }

    def key(self, model: ModelPlan) -> str:
        request = {
            **model_request(self.plan, model).to_json(),
            # a worker's time limit changes no artifact
            "settings": {k: v for k, v in asdict(model.settings).items() if k != "timeout"},
            "stems": [job.stem for job in model.jobs],
            "check": model.check,
            "record": DIRECT_RECORD_FORMAT,
        }
        return direct_key(request, self._environment)

    def _relative(self, path: str) -> str:
        try:
            return "./" + Path(path).relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path

    def _absolute(self, path: str) -> Path:
        return self.root / path[2:] if path.startswith("./") else Path(path)

    def hit(self, model: ModelPlan) -> ModelResult | None:
        """The model's recorded result, its artifacts copied into the output folder, or None."""
        if self.cache is None:
            return None
        for record in self.cache.direct_records(self.key(model)):
            try:
                unchanged = all(sha256_file(self._absolute(p)) == h for p, h in record["files"].items())
            except OSError:
                unchanged = False
            if not unchanged:
                continue
            result = ModelResult.from_json(record["result"])
            if self._fetch_recorded(record["keys"], result):
                return result
            if self.cache is None:  # the cache failed while reading
                return None
            # the record's artifacts are gone or are not the bytes it describes: it cannot be trusted
            try:
                self.cache.drop_direct_record(self.key(model), record)
            except OSError as exc:
                self._fault(exc)
            return None
        return None

    def _fetch_recorded(self, keys: dict[str, str], result: ModelResult) -> bool:
        """Copy a direct record's artifacts into the output folder; True when every one is there with the
        sha256 and size the record's manifest entries say (the bytes that go into the wheel)."""
        assert self.cache is not None
        for stem, key in keys.items():
            entry = result.artifacts[stem].entry
            described = entry_files(entry, entry.companions)
            dest = {name: self.out_dir / part.file for name, part in described.items()}
            try:
                meta = self.cache.fetch(key, dest)
            except CorruptEntry as exc:
                self.log(f"warning: {exc}")
                return False
            except OSError as exc:
                self._fault(exc)
                return False
            if meta is None or any(
                (meta["files"].get(name, {}).get("sha256"), meta["files"].get(name, {}).get("size"))
                != (part.sha256, part.size)
                for name, part in described.items()
            ):
                for file in dest.values():
                    file.unlink(missing_ok=True)
                return False
        return True

    def record(self, build: ModelBuild, assembled: ModelResult) -> None:
        """Keep what this build found for the model, for the next build to take."""
        if self.cache is None:
            return
        files = dict(build.reads)
        declared_in = build.model.declared_in
        try:
            if declared_in is not None:  # a YAML models file: its model's declaration
                files[str(declared_in.resolve())] = sha256_file(declared_in)
        except OSError:
            return
        record = {
            "files": {self._relative(p): h for p, h in sorted(files.items())},
            "keys": build.keys,
            "result": assembled.to_json(),
            "created": time.time(),
        }
        try:
            self.cache.add_direct_record(self.key(build.model), record)
        except OSError as exc:
            self._fault(exc)
