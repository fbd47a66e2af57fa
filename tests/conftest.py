"""Helpers for tests that build real wheels with real frontends and run them from a separate location."""

from __future__ import annotations

import base64
import csv
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
#: Holds the torch_neuronx TEST DOUBLE; only tests put it on PYTHONPATH. Never a Neuron result.
DOUBLES = ROOT / "tests" / "doubles"
CONSTRAINTS = ROOT / "scripts" / "constraints.txt"
#: The setuptools twin of example_project (two of its models; the tests copy its nets.py in).
TWIN = ROOT / "tests" / "projects" / "setuptools_twin"
TWIN_PACKAGE = "twin_models"


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without hatch-neuron overrides, with torch pinned for pip and the
    compile cache off (tests of the cache turn it on with their own folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCH_NEURON_", "TORCH_NEURONX_"))}
    env.pop("PYTHONPATH", None)
    env.pop("SOURCE_DATE_EPOCH", None)
    env["HATCH_NEURON_CACHE"] = "off"
    env.update(PIP_CONSTRAINT=str(CONSTRAINTS), PIP_BUILD_CONSTRAINT=str(CONSTRAINTS))
    env.update(extra)
    return env


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd],
        env=env or clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def pip_wheel(
    project: Path,
    out: Path,
    *,
    env: dict[str, str] | None = None,
    isolated: bool = False,
    find_links: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``pip wheel`` the project into ``out`` (``--no-build-isolation`` unless ``isolated``)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", out]
    cmd += ["--find-links", find_links] if find_links else []
    cmd += [] if isolated else ["--no-build-isolation"]
    return run([*cmd, project], env=env, check=check)


def single_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def install(wheel: Path, target: Path) -> Path:
    """Install ``wheel`` (no dependencies) into its own folder, away from the source tree."""
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel])
    return target


def assert_wheel_hygiene(wheel: Path) -> None:
    """check-wheel-contents and twine check pass, every RECORD hash and size matches the file, and the
    compiled artifacts (``.pt`` files of ``_hatch_neuron``) are stored uncompressed."""
    bin_dir = Path(sys.executable).parent
    assert ": OK" in run([bin_dir / "check-wheel-contents", wheel]).stdout
    assert "PASSED" in run([bin_dir / "twine", "check", wheel]).stdout
    with zipfile.ZipFile(wheel) as archive:
        artifacts = [
            i for i in archive.infolist() if "/_hatch_neuron/" in i.filename and i.filename.endswith(".pt")
        ]
        assert artifacts and all(i.compress_type == zipfile.ZIP_STORED for i in artifacts), "stored"
        [record_name] = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        for name, digest, size in csv.reader(archive.read(record_name).decode().splitlines()):
            if name == record_name:
                continue
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), name


def run_python(
    code: str, *paths: Path, env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose imports come from ``paths`` (then the test venv)."""
    env = dict(env or clean_env())
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    return run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd or paths[0], check=check)


def run_json(code: str, *paths: Path, env: dict[str, str] | None = None) -> object:
    """Run ``code``, which prints one JSON document as its last line, and return it."""
    return json.loads(run_python(code, *paths, env=env).stdout.strip().splitlines()[-1])


def make_project(
    root: Path, nets: str, neuron_toml: str, *, package: str = "demo_pkg", layout: str = "flat"
) -> Path:
    """Write a small Hatchling project that uses the hook: ``<package>/nets.py`` holds ``nets``."""
    base = root / "src" if layout == "src" else root
    (base / package).mkdir(parents=True)
    (base / package / "__init__.py").write_text("")
    (base / package / "nets.py").write_text(textwrap.dedent(nets))
    (root / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
        [build-system]
        requires = ["hatchling", "hatch-neuron"]
        build-backend = "hatchling.build"

        [project]
        name = "{package.replace("_", "-")}"
        version = "0.1.0"

        [tool.hatch.build.targets.wheel]
        packages = ["{"src/" if layout == "src" else ""}{package}"]

        [tool.hatch.build.hooks.neuron]

        """)
        + textwrap.dedent(neuron_toml)
    )
    return root


HATCHLING = """\
[build-system]
requires = ["hatchling", "hatch-neuron"]
build-backend = "hatchling.build"
"""
SETUPTOOLS = """\
[build-system]
requires = ["setuptools", "hatch-neuron"]
build-backend = "setuptools.build_meta"
"""


def copy_twin(dest: Path, *, neuron: bool = True, backend: str = "setuptools") -> Path:
    """A copy of the twin (builds write build/ and *.egg-info into the project): without ``[tool.neuron]``
    when ``neuron`` is false; with Hatchling and its hook instead of setuptools when ``backend`` says so."""
    shutil.copytree(TWIN, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.copyfile(
        EXAMPLE / "example_models" / "nets.py", dest / TWIN_PACKAGE / "nets.py"
    )  # the same models
    text = (dest / "pyproject.toml").read_text()
    if not neuron:
        text = text[: text.index("\n[tool.neuron]")] + "\n"
    if backend == "hatchling":
        assert SETUPTOOLS in text
        text = text.replace(SETUPTOOLS, HATCHLING)
        text += f'\n[tool.hatch.build.targets.wheel]\npackages = ["{TWIN_PACKAGE}"]\n'
        text += "\n[tool.hatch.build.hooks.neuron]\n"
    (dest / "pyproject.toml").write_text(text)
    return dest


@pytest.fixture(scope="session")
def example_cpu_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """example_project built by ``pip wheel`` with ``HATCH_NEURON_TARGETS=cpu`` (no build isolation)."""
    out = tmp_path_factory.mktemp("example-cpu")
    pip_wheel(EXAMPLE, out, env=clean_env(HATCH_NEURON_TARGETS="cpu"))
    return single_wheel(out)


@pytest.fixture(scope="session")
def example_cpu_install(example_cpu_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(example_cpu_wheel, tmp_path_factory.mktemp("example-cpu-site"))


def make_venv(path: Path) -> Path:
    """A bare virtual environment (no pip) for installs that need site-packages of their own (an editable
    install's ``.pth`` files run only there); it sees the test environment's packages after its own. Returns
    its python."""
    run([sys.executable, "-m", "venv", "--without-pip", path])
    [site_packages] = path.glob("lib/python*/site-packages")
    test_site = sysconfig.get_paths()["purelib"]
    (site_packages / "_test_environment.pth").write_text(f"import site; site.addsitedir({test_site!r})\n")
    return path / "bin" / "python"


# -- the frontend x backend x mode table that tests/test_frontends.py fills and the summary prints ---------

MATRIX = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[MATRIX] = []


# -- the test pyramid: tests that start processes are marked ``integration`` from what they use ----------

#: The helpers that start a frontend, an installer, an interpreter or a build's workers.
PROCESS_HELPERS = ("run", "pip_wheel", "install", "run_python", "run_json", "make_venv")


def _starts_processes(function: Any, module_globals: dict[str, Any], seen: set[Any]) -> bool:
    """Whether ``function`` (a test or fixture) reaches a process helper or ``subprocess``, directly or
    through functions of the test module and this file (followed by name, nested functions included)."""
    function = inspect.unwrap(function)
    if function in seen or function is _starts_processes or not hasattr(function, "__code__"):
        return False
    seen.add(function)
    codes = [function.__code__]
    names: set[str] = set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes += [const for const in code.co_consts if inspect.iscode(const)]
    helpers = [subprocess, *(globals()[name] for name in PROCESS_HELPERS)]
    ours = (__name__, module_globals.get("__name__"))
    for name in names:
        target = module_globals.get(name)  # a global of the function's own module, not an attribute
        if any(target is helper for helper in helpers):
            return True
        if (
            inspect.isfunction(target)
            and target.__module__ in ours
            and _starts_processes(target, target.__globals__, seen)
        ):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that starts processes (itself or through its fixtures): real wheel
    builds, installs, fresh interpreters. The default ``pytest`` (the quick loop) leaves them out unless
    they are marked ``quick`` too; CI runs everything (``scripts/test.sh``)."""
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker("integration"):
            continue
        module_globals = item.module.__dict__ if item.module else {}
        functions = [item.function] + [
            definitions[-1].func for definitions in item._fixtureinfo.name2fixturedefs.values()
        ]
        seen: set[Any] = set()
        if any(_starts_processes(f, getattr(f, "__globals__", module_globals), seen) for f in functions):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(MATRIX, [])
    if not rows:
        return
    terminalreporter.section("frontend x backend x mode (build time: the frontend command only)")
    terminalreporter.write_line(f"{'frontend':<40} {'backend':<11} {'mode':<14} {'result':<6} {'build s':>8}")
    for row in rows:
        seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        terminalreporter.write_line(
            f"{row['frontend']:<40} {row['backend']:<11} {row['mode']:<14} {row['result']:<6} {seconds:>8}"
        )
