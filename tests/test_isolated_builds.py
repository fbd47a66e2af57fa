"""Real isolated builds: the frontend installs hatchling, hatch-neuron (a wheel of this checkout) and torch
into a fresh build environment, as it would for a user. Slow (torch goes into every build environment)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT, clean_env, install, pip_wheel, run, run_json, single_wheel

pytestmark = pytest.mark.slow

CHECK = """
    import json, torch
    from example_models import nets
    from example_models.compiled import classifier
    x = torch.rand(1, 3, 32, 32)
    print(json.dumps({"diff": (classifier(x) - nets.make_classifier()(x)).abs().max().item()}))
"""


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links folder holding a wheel of this checkout of hatch-neuron."""
    folder = tmp_path_factory.mktemp("links")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", folder, ROOT])
    return folder


def test_pip_wheel_isolated(links: Path, tmp_path: Path) -> None:
    result = pip_wheel(
        EXAMPLE, tmp_path / "dist", env=clean_env(HATCH_NEURON_TARGETS="cpu"), isolated=True, find_links=links
    )
    assert "hatch-neuron: encoder [cpu dim1=16]: compiled in" in result.stdout + result.stderr
    site = install(single_wheel(tmp_path / "dist"), tmp_path / "site")
    assert run_json(CHECK, site)["diff"] < 1e-5


def test_python_build_isolated(links: Path, tmp_path: Path) -> None:
    # python -m build has no --find-links: extend pip's own setting (where this machine's torch wheel lies)
    find_links = " ".join(filter(None, [str(links), os.environ.get("PIP_FIND_LINKS")]))
    env = clean_env(HATCH_NEURON_TARGETS="cpu", PIP_FIND_LINKS=find_links)
    run([sys.executable, "-m", "build", "--wheel", "-o", tmp_path / "dist", EXAMPLE], env=env)
    site = install(single_wheel(tmp_path / "dist"), tmp_path / "site")
    assert run_json(CHECK, site)["diff"] < 1e-5
