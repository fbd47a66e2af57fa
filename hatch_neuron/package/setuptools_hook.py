"""setuptools adapter: a thin layer over :mod:`hatch_neuron.package.pipeline`, like the Hatchling one.

A project opts in with ``[build-system] requires = ["setuptools", "hatch-neuron"]``, ``build-backend =
"setuptools.build_meta"`` and a ``[tool.neuron]`` table; no ``setup.py`` and nothing else.

**Registration.** hatch-neuron's ``setuptools.finalize_distribution_options`` entry point calls
:func:`finalize_distribution_options` for every setuptools ``Distribution`` made where hatch-neuron is
installed (a runtime environment too). It reads the ``pyproject.toml`` setuptools reads (in ``src_root`` or
the current folder) and, without ``[tool.neuron]``, returns having changed nothing (and imported nothing
that imports torch). With it, the command class setuptools picks for ``bdist_wheel`` (its own, or a
project's from ``setup.py`` or ``[tool.setuptools.cmdclass]``) gets :class:`NeuronWheel` mixed in, and
the one for ``editable_wheel`` :class:`NeuronEditableWheel`. The mixing happens where
setuptools looks the class up (``Distribution.get_command_class``), not in ``Distribution.cmdclass``:
the hook runs before setuptools applies ``pyproject.toml``, which replaces the whole ``cmdclass`` table
when it has one.

**torch.** Under ``setuptools.build_meta``'s requirement report for a wheel, the hook asks for torch
(:func:`_request_torch`, :mod:`.build_requires`).

**Why ``bdist_wheel`` and ``editable_wheel``.** They are the commands that run only when a wheel is
built: ``sdist`` (sources only, like Hatchling's sdists), ``egg_info`` and ``dist_info`` (PEP 517
metadata preparation) never compile. ``build_py`` would also run for ``setup.py build``.

**What** :meth:`NeuronWheel.run` **does** before handing over to setuptools' own ``run``:

1. compiles with :func:`pipeline.build_staged`. A failure reported on purpose (configuration, model,
   toolchain) becomes a ``DistutilsError``: setuptools prints ``error: hatch-neuron: <message>`` and
   exits non-zero, and no wheel is written; other exceptions keep their traceback.
2. copies the files into ``build_lib`` (where ``build_py`` puts the modules, and whose whole tree
   ``install`` copies into the wheel), and removes them again when the wheel is written, so that a later
   build in the same checkout (say, without ``[tool.neuron]``) cannot pick them up from ``build/``.
3. adds the ``Requires-Dist`` pins by assigning a new list to ``install_requires``. setuptools marks the
   values it read from ``pyproject.toml`` as static and deprecates changing them in place (a
   ``SetuptoolsDeprecationWarning``, overdue since 2025-10-10, an error under
   ``SETUPTOOLS_ENFORCE_DEPRECATION=1``), but accepts a new value; it then writes ``Dynamic: Requires-Dist``
   into the wheel's METADATA. So this works with ``[project] dependencies`` static, dynamic or absent, and
   the project's own dependencies come first. (The sdist, built without compiling, lists the project's
   own dependencies only and does not mark them dynamic, as with Hatchling: a tool that takes an sdist's
   static metadata at its word (PEP 643) resolves without the pins; the built wheel has them.)
4. drops ``--dist-info-dir``: a PEP 517 frontend (pip) calls ``prepare_metadata_for_build_wheel`` first
   and passes that folder to ``build_wheel``, which has ``bdist_wheel`` copy it into the wheel as is. That
   metadata was made without compiling, so it lacks the pins; setuptools writes METADATA afresh instead.
   As with Hatchling, the wheel's metadata is the prepared one plus the pins (and the ``Dynamic`` line).
5. for a platform-specific build (``inductor``), sets ``root_is_pure = False`` and makes the
   distribution report extension modules (as setuptools-rust does), so that the package goes to the root
   of the wheel (platlib) and the wheel is tagged ``cpXY-cpXY-<platform>``, not ``py3-none-any``.

:class:`NeuronEditableWheel` does 1, 3 and 4 the same way (``_NeuronCommand``), and instead of 2 writes
the files, in the editable layout (``hatch_neuron.runtime.editable``), into the folder setuptools zips
into the editable wheel.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..config import ConfigError, has_neuron_table
from ..config.parse import declaration_files


def finalize_distribution_options(dist: Any) -> None:
    """The ``setuptools.finalize_distribution_options`` hook: a no-op unless ``[tool.neuron]`` is there."""
    root = Path(getattr(dist, "src_root", None) or os.curdir).resolve()
    pyproject = root / "pyproject.toml"
    try:
        if not pyproject.is_file() or not has_neuron_table(pyproject):
            return
    except ConfigError:  # not TOML, or `tool` not a table: setuptools reports it when it reads the file
        return
    _request_torch(dist, pyproject)
    lookup = dist.get_command_class

    def get_command_class(command: str) -> type:
        cls = lookup(command)
        mixin = MIXINS.get(command)
        if mixin is not None and not issubclass(cls, mixin):
            cls = type(cls.__name__, (mixin, cls), {"neuron_root": root})
            dist.cmdclass[command] = cls
        return cls

    dist.get_command_class = get_command_class


def sdist_files(dirname: str = "") -> list[str]:
    """The ``setuptools.file_finders`` hook: the YAML models files and the project's own checkpoint
    folders that ``[tool.neuron]`` names, so that setuptools' sdists hold them (Hatchling's include every
    file of the project anyway); nothing for other projects."""
    root = Path(dirname or os.curdir)
    return [os.path.join(dirname, os.path.relpath(p, root)) for p in declaration_files(root)]


def _request_torch(dist: Any, pyproject: Path) -> None:
    """Add torch to the requirements of a wheel build (see :mod:`.build_requires`).

    ``setuptools.build_meta`` answers ``get_requires_for_build_wheel`` (and ``_editable``) by running the
    project's setup with a ``Distribution`` whose ``fetch_build_eggs`` raises ``SetupRequirementsError``
    (how it reports ``setup_requires``); asking it for torch there, when this environment lacks a torch
    that meets the requirement, adds torch to what the frontend installs. Outside that report (the build
    itself, a plain ``setup.py`` run) nothing is asked, so nothing is ever fetched. For an sdist nothing
    is asked either: its build needs no torch.
    """
    build_meta = sys.modules.get("setuptools.build_meta")
    if build_meta is None or not isinstance(dist, build_meta.Distribution) or _building_sdist():
        return
    from . import build_requires

    requirement = build_requires.torch_requirement(pyproject)
    if not build_requires.is_satisfied(requirement):
        dist.fetch_build_eggs([requirement])


def _building_sdist() -> bool:
    """Whether this runs inside ``setuptools.build_meta``'s ``get_requires_for_build_sdist``."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "get_requires_for_build_sdist" and code.co_filename.endswith("build_meta.py"):
            return True
        frame = frame.f_back
    return False


class _NeuronCommand:
    """What the two mixins share: compiling, and the pins in the metadata."""

    neuron_root: Path
    distribution: Any
    dist_info_dir: str | None

    def _compile(self, editable: bool) -> tuple[Any, Path]:
        """Compile (a failure on purpose becomes setuptools' ``BaseError``) and add the pins."""
        from setuptools.errors import BaseError

        from . import pipeline

        dist = self.distribution
        try:
            result, staging = pipeline.build_staged(self.neuron_root, dist.get_name(), self._log, editable)
        except Exception as exc:
            if pipeline.is_build_error(exc):
                raise BaseError(f"hatch-neuron: {exc}") from exc
            raise
        requires = list(dist.install_requires or [])
        requires += [r for r in result.requirements if r not in requires]
        dist.install_requires = dist.metadata.install_requires = requires
        self.dist_info_dir = None  # made without the pins: have setuptools write the metadata afresh
        return result, staging

    def _log(self, line: str) -> None:
        self.announce(f"hatch-neuron: {line}", level=logging.INFO)  # type: ignore[attr-defined]


class NeuronWheel(_NeuronCommand):
    """Mixed into the project's ``bdist_wheel`` command class; see the module docstring."""

    root_is_pure: bool

    def run(self) -> None:
        from ..runtime.manifest import ARTIFACT_DIR
        from .stored import add_stored, split_stored

        result, staging = self._compile(editable=False)
        build_lib = Path(self.get_finalized_command("build_py").build_lib)  # type: ignore[attr-defined]
        generated = build_lib.joinpath(*str(result.manifest.package).split("."), ARTIFACT_DIR)
        try:
            shutil.rmtree(generated, ignore_errors=True)  # left by a build that was killed
            stored, files = split_stored(result.files)
            _copy_files(files, build_lib)
            if result.platform_specific:
                self.root_is_pure = False
                self.distribution.has_ext_modules = lambda: True
            written = len(self.distribution.dist_files)  # type: ignore[attr-defined]
            super().run()  # type: ignore[misc]
            for command, _, wheel in self.distribution.dist_files[written:]:  # type: ignore[attr-defined]
                if command == "bdist_wheel":
                    add_stored(wheel, stored)
        finally:
            shutil.rmtree(generated, ignore_errors=True)
            for target in result.files:
                (build_lib / target).unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)


class NeuronEditableWheel(_NeuronCommand):
    """Mixed into ``editable_wheel``: compiles, and puts the editable layout of the files (see
    ``hatch_neuron.runtime.editable``) into the wheel next to what setuptools puts there."""

    def run(self) -> None:
        self._neuron_result, staging = self._compile(editable=True)
        try:
            super().run()  # type: ignore[misc]
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _run_build_commands(self, dist_name: str, unpacked_wheel: str, *args: Any) -> Any:
        # setuptools writes everything under unpacked_wheel into the editable wheel (non-editable data,
        # headers and scripts go there too); no public hook reaches that folder
        outputs = super()._run_build_commands(dist_name, unpacked_wheel, *args)  # type: ignore[misc]
        _copy_files(self._neuron_result.files, Path(unpacked_wheel))
        return outputs


def _copy_files(files: dict[str, str], destination: Path) -> None:
    for target, source in files.items():
        (destination / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination / target)


MIXINS: dict[str, type] = {"bdist_wheel": NeuronWheel, "editable_wheel": NeuronEditableWheel}
