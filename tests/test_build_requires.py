"""torch as a build requirement: which one, and that both backends report it for wheels only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLE, clean_env, copy_twin, run_python

from hatch_neuron.config import ConfigError
from hatch_neuron.package.build_requires import TORCH_ENV, is_satisfied, torch_requirement


def pyproject(tmp_path: Path, dependencies: list[str]) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[project]\nname = "demo"\nversion = "1"\ndependencies = {json.dumps(dependencies)}\n')
    return path


@pytest.mark.parametrize(
    ("dependencies", "expected"),
    [
        ([], "torch"),
        (["numpy", "torch>=2.9,<2.14"], "torch<2.14,>=2.9"),
        (["Torch==2.9.*; python_version >= '3'"], "Torch==2.9.*"),
        (["torch==1.0; python_version < '3'"], "torch"),  # a marker that does not apply here
    ],
)
def test_the_projects_own_torch_requirement(tmp_path: Path, dependencies: list[str], expected: str) -> None:
    assert torch_requirement(pyproject(tmp_path, dependencies), environ={}) == expected


def test_the_environment_variable_wins(tmp_path: Path) -> None:
    path = pyproject(tmp_path, ["torch>=2.9"])
    assert torch_requirement(path, environ={TORCH_ENV: "torch==2.9.1+cpu"}) == "torch==2.9.1+cpu"
    for bad in ("numpy==1.0", "torch=="):
        with pytest.raises(ConfigError, match=TORCH_ENV):
            torch_requirement(path, environ={TORCH_ENV: bad})


def test_is_satisfied_by_this_environment() -> None:
    assert is_satisfied("torch") and is_satisfied("torch>=2.1")
    assert not is_satisfied("torch<2")


#: What each backend's PEP 517 hooks ask for, run in the project folder.
REQUIRES = """
    import json, importlib
    backend = importlib.import_module({backend!r})
    print(json.dumps({{
        hook: getattr(backend, "get_requires_for_build_" + hook)() for hook in ("wheel", "editable", "sdist")
    }}))
"""


@pytest.mark.parametrize("backend", ["hatchling.build", "setuptools.build_meta"])
def test_backends_ask_for_torch_for_wheels_only(backend: str, tmp_path: Path) -> None:
    if backend == "hatchling.build":
        project = tmp_path / "proj"
        shutil.copytree(EXAMPLE, project)
    else:
        project = copy_twin(tmp_path / "proj")
    env = clean_env(**{TORCH_ENV: "torch==1.13.1"})  # not installed here, so setuptools reports it too
    out = run_python(REQUIRES.format(backend=backend), project, env=env).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert "torch==1.13.1" in report["wheel"] and "torch==1.13.1" in report["editable"]
    assert not any(r.startswith("torch") for r in report["sdist"])
    if backend == "setuptools.build_meta":  # setuptools reports only what this environment lacks
        out = run_python(REQUIRES.format(backend=backend), project, env=clean_env()).stdout
        assert json.loads(out.strip().splitlines()[-1])["wheel"] == []
