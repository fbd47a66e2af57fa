"""Preloaded workers (``workers = "preloaded"``, the default): forked from a server that has imported torch
and what earlier workers imported from the Python installation, and still isolated from each other."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import clean_env, make_project, pip_wheel, single_wheel

from hatch_neuron.compile.forkserver import ForkServer, ServerGone, factory_imports
from hatch_neuron.compile.runner import HATCH_NEURON_HOME

#: Model ``a`` changes state that a worker forked later would inherit if the server were not clean: a
#: module it imports from the installation (by a name the source scan cannot see), another module's
#: attribute and the environment. Model ``b`` reports what its worker started with.
LEAKY_NETS = """
    import importlib, json, os, sys
    import torch

    # what this module's worker started with; names built at run time, so that the source scan that
    # preloads the factories' imports cannot see them: only learning from a's worker preloads colorsys
    COLORSYS = "col" + "orsys"
    PRELOADED = COLORSYS in sys.modules

    def make_a():
        importlib.import_module(COLORSYS).LEAK = "from a"
        json.LEAK = "from a"
        os.environ["HATCH_NEURON_TEST_LEAK"] = "from a"
        return torch.nn.Linear(4, 2)

    def make_b():
        seen = {{
            "colorsys preloaded": PRELOADED,
            "colorsys": getattr(importlib.import_module(COLORSYS), "LEAK", None),
            "json": getattr(json, "LEAK", None),
            "environ": os.environ.get("HATCH_NEURON_TEST_LEAK"),
        }}
        with open({report!r}, "w") as file:
            json.dump(seen, file)
        return torch.nn.Linear(4, 2)
"""

LEAKY_TOML = """
    [tool.neuron]
    targets = ["cpu"]
    jobs = 1

    [tool.neuron.models.a]
    factory = "demo_pkg.nets:make_a"
    inputs = [{ shape = [1, 4] }]

    [tool.neuron.models.b]
    factory = "demo_pkg.nets:make_b"
    inputs = [{ shape = [1, 4] }]
"""


@pytest.mark.parametrize("workers", ["preloaded", "fresh"])
def test_no_state_of_one_model_reaches_the_next(tmp_path: Path, workers: str) -> None:
    report = tmp_path / "seen.json"
    project = make_project(tmp_path / "proj", LEAKY_NETS.format(report=str(report)), LEAKY_TOML)
    result = pip_wheel(project, tmp_path / "out", env=clean_env(HATCH_NEURON_WORKERS=workers), check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    single_wheel(tmp_path / "out")
    seen = json.loads(report.read_text())
    assert (seen["colorsys"], seen["json"], seen["environ"]) == (None, None, None), seen
    # preloaded: b's worker started with the module a's worker imported (learned), without a's change
    assert seen["colorsys preloaded"] is (workers == "preloaded"), seen


def test_factory_imports_reads_the_source_without_running_it(tmp_path: Path) -> None:
    package = tmp_path / "proj" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise SystemExit('the scan must not import the project')\n")
    (package / "nets.py").write_text(
        "import json\nfrom . import layers\nfrom torch import nn\n\ndef make():\n    import colorsys\n"
    )
    (package / "layers.py").write_text("import torch_xla\nimport email.mime\nfrom pkg import nets\n")
    hints = factory_imports(["pkg.nets:make"], [tmp_path / "proj"])
    assert {"json", "torch", "torch:nn", "colorsys", "email.mime"} <= set(hints), hints
    assert not any(h.startswith(("pkg", "torch_xla")) for h in hints), hints


def test_a_dead_server_is_reported_so_that_fresh_workers_are_used(tmp_path: Path) -> None:
    server = ForkServer(HATCH_NEURON_HOME)
    try:
        request, result, log = tmp_path / "request.json", tmp_path / "result.json", tmp_path / "log"
        request.write_text("{}")
        first = server.start(request, result, log, tmp_path, "HATCH_NEURON_WORKER_test")
        assert first.wait() == 1  # the empty request is refused by the worker, which exits
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        with pytest.raises(ServerGone):
            server.start(request, result, log, tmp_path, "HATCH_NEURON_WORKER_test")
    finally:
        server.close()
