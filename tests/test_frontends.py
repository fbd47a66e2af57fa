"""Every way people build: pip, ``python -m build`` (isolated and ``--no-isolation``), uv and hatch, for the
Hatchling ``example_project`` and its setuptools twin, as wheels, sdist -> wheel and editable installs.

Each test builds with the real frontend (isolated builds get setuptools or Hatchling from PyPI, a wheel of
this checkout of hatch-neuron, and torch: the build hooks ask for it, the machine's torch wheel answers),
installs the result away from the sources, imports ``<package>.compiled`` and compares every model with
eager PyTorch. ``HATCH_NEURON_TARGETS=cpu`` throughout: the portable TorchScript target, not Neuron.
Each test adds rows to the frontend x backend x mode table printed at the end of the run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import tarfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLE,
    MATRIX,
    ROOT,
    TWIN_PACKAGE,
    clean_env,
    copy_twin,
    install,
    make_venv,
    run,
    run_json,
    single_wheel,
)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
BACKENDS = ["hatchling", "setuptools"]

#: Compares every model of the package with its eager factory, at the declared shapes.
CHECK = """
    import importlib, json, torch
    from torch.utils._pytree import tree_leaves
    from hatch_neuron.runtime import read_manifest

    package = {package!r}
    compiled = importlib.import_module(package + ".compiled")
    torch.manual_seed(0)
    diffs = {{}}
    for name, entry in read_manifest(package).models.items():
        module, factory = entry.factory.split(":")
        eager = getattr(importlib.import_module(module), factory)()
        inputs = []
        for spec in entry.inputs:
            dtype = getattr(torch, spec.dtype)
            if dtype.is_floating_point:
                inputs.append(torch.rand(spec.shape, dtype=dtype))
            else:
                inputs.append(torch.randint(int(spec.low), int(spec.high), spec.shape, dtype=dtype))
        pairs = zip(tree_leaves(getattr(compiled, name)(*inputs)), tree_leaves(eager(*inputs)))
        diffs[name] = max((got - want).abs().max().item() for got, want in pairs)
    print(json.dumps({{
        "diffs": diffs,
        "compiled": compiled.__file__,
        "package": importlib.import_module(package).__file__,
    }}))
"""


def copy_project(backend: str, dest: Path) -> tuple[Path, str]:
    """A fresh copy of the backend's project (builds write into it) and its package name."""
    if backend == "setuptools":
        return copy_twin(dest), TWIN_PACKAGE
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest, "example_models"


def compare_models(package: str, *, site: Path | None = None, python: Path | None = None) -> dict[str, Any]:
    """Run :data:`CHECK` from an installed wheel (``site``) or in a virtual environment (``python``), from a
    folder that is not the project; return its report."""
    code = CHECK.format(package=package)
    if site is not None:
        return run_json(code, site)  # type: ignore[return-value]
    assert python is not None
    out = run([python, "-c", textwrap.dedent(code)], env=clean_env(), cwd=python.parent).stdout
    return json.loads(out.strip().splitlines()[-1])


def check_models(package: str, *, site: Path | None = None, python: Path | None = None) -> dict[str, Any]:
    """:func:`compare_models`, asserting that every model matches eager."""
    report = compare_models(package, site=site, python=python)
    assert report["diffs"] and all(diff < 1e-4 for diff in report["diffs"].values()), report
    return report


def check_wheel(dist: Path, package: str, site: Path) -> None:
    """Install the one wheel in ``dist`` into ``site`` (no dependencies) and :func:`check_models` it."""
    check_models(package, site=install(single_wheel(dist), site))


def assert_sdist_has_sources_only(sdist: Path, package: str) -> None:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(name.endswith(f"{package}/nets.py") for name in names), names
    assert any(name.endswith("/pyproject.toml") for name in names), names
    assert not any("_hatch_neuron" in name or name.endswith("/compiled.py") for name in names), names


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links folder holding a wheel of this checkout of hatch-neuron."""
    folder = tmp_path_factory.mktemp("links")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", folder, ROOT])
    return folder


@pytest.fixture(scope="module")
def env(links: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The frontends' settings: find hatch-neuron in ``links`` and torch where pip finds it on this machine
    (pip's own setting); pin torch to the test environment's (pip: scripts/constraints.txt; uv and hatch,
    which uses uv: the exact local version, so that the machine's CPU wheel is taken, not a CUDA one)."""
    folder = tmp_path_factory.mktemp("frontend-settings")
    constraints = folder / "torch.txt"
    constraints.write_text(f"torch=={importlib.metadata.version('torch')}\n")
    local = os.environ.get("PIP_FIND_LINKS", "").split()
    return clean_env(
        HATCH_NEURON_TARGETS="cpu",
        PIP_FIND_LINKS=" ".join([str(links), *local]),
        UV_FIND_LINKS=",".join([str(links), *local]),
        UV_BUILD_CONSTRAINT=str(constraints),
        UV_CONSTRAINT=str(constraints),
        HATCH_DATA_DIR=str(folder / "hatch-data"),
    )


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Callable[..., dict[str, Any]]]:
    """``row(frontend, backend, mode)``: a table row, failed until the test marks it ``pass``."""
    rows: list[dict[str, Any]] = []

    def add(frontend: str, backend: str, mode: str) -> dict[str, Any]:
        entry = {"frontend": frontend, "backend": backend, "mode": mode, "result": "FAIL", "seconds": None}
        rows.append(entry)
        return entry

    yield add
    request.config.stash[MATRIX].extend(rows)


@contextmanager
def timed(entry: dict[str, Any]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    entry["seconds"] = time.perf_counter() - start


def command(template: str, **paths: Path) -> list[str]:
    """``template`` split into words, ``{name}`` filled from ``paths``, the tool taken from the test
    environment (``python`` is its interpreter)."""
    tool, *words = template.split()
    return [str(BIN / tool), *(word.format(**paths) for word in words)]


WHEEL_FRONTENDS = {
    "pip wheel": "python -m pip wheel --no-deps -w {out} {project}",
    "python -m build --wheel": "python -m build --wheel -o {out} {project}",
    "python -m build --wheel --no-isolation": "python -m build --wheel --no-isolation -o {out} {project}",
    "uv build --wheel": "uv build --wheel -o {out} {project}",
    "hatch build -t wheel": "hatch --no-interactive build -t wheel {out}",  # builds the current folder
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("frontend", list(WHEEL_FRONTENDS))
def test_wheel(frontend: str, backend: str, env: dict[str, str], row: Callable, tmp_path: Path) -> None:
    entry = row(frontend, backend, "wheel")
    project, package = copy_project(backend, tmp_path / "proj")
    with timed(entry):
        run(command(WHEEL_FRONTENDS[frontend], project=project, out=tmp_path / "dist"), env=env, cwd=project)
    check_wheel(tmp_path / "dist", package, tmp_path / "site")
    entry["result"] = "pass"


#: Each builds the sdist, then the wheel from the unpacked sdist.
SDIST_FRONTENDS = {
    "python -m build": "python -m build -o {out} {project}",
    "python -m build --no-isolation": "python -m build --no-isolation -o {out} {project}",
    "uv build": "uv build -o {out} {project}",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("frontend", list(SDIST_FRONTENDS))
def test_sdist_then_wheel(
    frontend: str, backend: str, env: dict[str, str], row: Callable, tmp_path: Path
) -> None:
    entry = row(frontend, backend, "sdist -> wheel")
    project, package = copy_project(backend, tmp_path / "proj")
    with timed(entry):
        result = run(command(SDIST_FRONTENDS[frontend], project=project, out=tmp_path / "dist"), env=env)
    output = result.stdout + result.stderr
    assert "wheel from sdist" in output or "wheel from source distribution" in output
    [sdist] = (tmp_path / "dist").glob("*.tar.gz")
    assert_sdist_has_sources_only(sdist, package)
    check_wheel(tmp_path / "dist", package, tmp_path / "site")
    entry["result"] = "pass"


@pytest.mark.parametrize("backend", BACKENDS)
def test_pip_wheel_from_sdist(backend: str, env: dict[str, str], row: Callable, tmp_path: Path) -> None:
    """pip builds a wheel from an sdist file (as it does for a project on PyPI without wheels)."""
    entry = row("pip wheel <sdist>", backend, "sdist -> wheel")
    project, package = copy_project(backend, tmp_path / "proj")
    template = "python -m build --sdist --no-isolation -o {out} {project}"
    run(command(template, out=tmp_path, project=project), env=env)
    [sdist] = tmp_path.glob("*.tar.gz")
    assert_sdist_has_sources_only(sdist, package)
    with timed(entry):
        run(
            command("python -m pip wheel --no-deps -w {out} {sdist}", out=tmp_path / "dist", sdist=sdist),
            env=env,
        )
    check_wheel(tmp_path / "dist", package, tmp_path / "site")
    entry["result"] = "pass"


EDITABLE_FRONTENDS = {
    "pip install -e": "python -m pip --python {python} install --no-deps -e {project}",
    "uv pip install -e": "uv pip install --python {python} --no-deps -e {project}",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("frontend", list(EDITABLE_FRONTENDS))
def test_editable(frontend: str, backend: str, env: dict[str, str], row: Callable, tmp_path: Path) -> None:
    entry = row(frontend, backend, "editable")
    project, package = copy_project(backend, tmp_path / "proj")
    python = make_venv(tmp_path / "venv")
    with timed(entry):
        run(command(EDITABLE_FRONTENDS[frontend], project=project, python=python), env=env)
    report = check_models(package, python=python)
    assert Path(report["package"]).is_relative_to(project)  # the package comes from the sources
    assert f"_hatch_neuron_editable_{package}" in report["compiled"]  # its compiled models from the install
    entry["result"] = "pass"


@pytest.mark.parametrize("backend", BACKENDS)
def test_editable_edit_and_reinstall(backend: str, row: Callable, tmp_path: Path) -> None:
    """Between installs the compiled module keeps the models of the last install (the sources are live,
    the artifacts are not); installing again recompiles what changed and takes the rest from the cache."""
    entry = row("pip install -e, edit, again", backend, "editable")
    project, package = copy_project(backend, tmp_path / "proj")
    python = make_venv(tmp_path / "venv")
    env = clean_env(HATCH_NEURON_TARGETS="cpu", HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(tmp_path))
    template = "python -m pip --python {python} install -v --no-deps --no-build-isolation -e {project}"
    reinstall = command(template, python=python, project=project)
    run(reinstall, env=env)
    check_models(package, python=python)

    nets = project / package / "nets.py"
    nets.write_text(nets.read_text().replace("return self.conv(x) + 1", "return self.conv(x) + 2"))
    stale = compare_models(package, python=python)["diffs"]  # eager is the edited source, compiled is not
    assert stale.pop("conv") == pytest.approx(1.0) and all(diff < 1e-4 for diff in stale.values())

    with timed(entry):
        log = run(reinstall, env=env)
    assert "1 artifact(s) compiled" in log.stdout + log.stderr  # conv; the others come from the cache
    check_models(package, python=python)
    entry["result"] = "pass"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hatch_dev_environment(backend: str, env: dict[str, str], row: Callable, tmp_path: Path) -> None:
    """hatch's default environment installs the project in development mode (an editable install made by
    uv); ``hatch run`` runs in it."""
    entry = row("hatch run (dev-mode environment)", backend, "editable")
    project, package = copy_project(backend, tmp_path / "proj")
    if backend == "setuptools":
        # hatch takes a setuptools project's static [project] dependencies at their word and installs the
        # project itself without dependencies, so it never sees the pins the adapter adds to the wheel:
        # such a project lists the runtime loader itself (the README says so)
        pyproject = project / "pyproject.toml"
        text = pyproject.read_text()
        assert 'dependencies = ["torch"]' in text
        pyproject.write_text(
            text.replace('dependencies = ["torch"]', 'dependencies = ["torch", "hatch-neuron"]')
        )
    script = tmp_path / "check.py"  # a file: hatch would read the braces of -c code as its own fields
    script.write_text(textwrap.dedent(CHECK.format(package=package)))
    with timed(entry):
        run(command("hatch --no-interactive env create"), env=env, cwd=project)
    out = run(command("hatch --no-interactive run python {script}", script=script), env=env, cwd=project)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["diffs"] and all(diff < 1e-4 for diff in report["diffs"].values()), report
    assert f"_hatch_neuron_editable_{package}" in report["compiled"]
    entry["result"] = "pass"
