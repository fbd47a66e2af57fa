"""Target ``xla`` (torch-xla lowering: HLO proto + StableHLO run on torch-xla's CPU device) and the
operator-support check through torch-xla. These run in the xla lane (``scripts/test_xla.sh``: torch 2.9.0 +
torch-xla 2.9.0, ``PJRT_DEVICE=CPU``) and are skipped, with the reason, anywhere torch-xla cannot run.

No Neuron compiler runs here: the HLO proto is what ``torch_neuronx.trace`` would hand to neuronx-cc, and
these tests only check that it is written and recorded, not what neuronx-cc would make of it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE, clean_env, install, make_project, pip_wheel, run, run_json, single_wheel

from hatch_neuron.runtime.xla import xla_problem

pytestmark = [
    pytest.mark.xla,
    pytest.mark.skipif(
        xla_problem() is not None, reason=f"runs in the xla lane (scripts/test_xla.sh): {xla_problem()}"
    ),
]

RUN_EXAMPLES = """
    import json, torch, hatch_neuron.runtime as runtime
    from example_models import nets
    from example_models.compiled import classifier, conv, encoder, scale_add
    torch.manual_seed(0)
    cases = {
        "scale_add": (scale_add, nets.make_scale_add(), (torch.rand(3), torch.rand(3))),
        "conv": (conv, nets.make_conv(), (torch.rand(1, 1, 3, 3),)),
        "classifier x13": (classifier, nets.make_classifier(), (torch.rand(13, 3, 32, 32),)),
        "encoder len 11": (encoder, nets.make_encoder(),
                           (torch.randint(0, 1000, (1, 11)), torch.ones(1, 11).long())),
    }
    diffs = {}
    for name, (compiled, eager, inputs) in cases.items():
        with torch.no_grad():
            got, want = compiled(*inputs), eager(*inputs)
        got, want = (got, want) if isinstance(got, dict) else ({"out": got}, {"out": want})
        assert all(got[k].device.type == "cpu" for k in got)
        diffs[name] = max((got[k] - want[k]).abs().max().item() for k in want)
    s = runtime.selection("example_models")
    print(json.dumps({"target": s.target, "skipped": s.skipped, "diffs": diffs}))
"""


@pytest.fixture(scope="module")
def example_xla(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("xla")
    result = pip_wheel(
        EXAMPLE, root / "dist", env=clean_env(HATCH_NEURON_TARGETS="xla,cpu", PJRT_DEVICE="CPU")
    )
    wheel = single_wheel(root / "dist")
    return wheel, install(wheel, root / "site"), result.stdout + result.stderr


def test_example_project_runs_on_torch_xla_and_matches_eager(example_xla: tuple[Path, Path, str]) -> None:
    _, site, output = example_xla
    assert "classifier [xla dim0=8]: compiled in" in output and "verified against eager" in output
    report = run_json(RUN_EXAMPLES, site, env=clean_env(PJRT_DEVICE="CPU"))
    assert report["target"] == "xla" and report["skipped"] == {}
    assert all(diff < 1e-4 for diff in report["diffs"].values()), report


def test_wheel_holds_hlo_proto_and_stablehlo(example_xla: tuple[Path, Path, str]) -> None:
    wheel, _, _ = example_xla
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("example_models/_hatch_neuron/manifest.json"))
        metadata = archive.read("example_models-1.0.0.dist-info/METADATA").decode()
        assert manifest["targets"] == ["xla", "cpu"]
        assert manifest["built_with"]["torch-xla"] == "2.9.0"
        artifacts = [a for m in manifest["models"].values() for a in m["artifacts"]["xla"]]
        assert len(artifacts) == 7  # scale_add, conv, classifier x3 buckets, encoder x2 buckets
        for artifact in artifacts:
            assert artifact["format"] == "stablehlo" and artifact["verified"]
            hlo = artifact["companions"][".hlo.pb"]
            assert artifact["file"].endswith(".stablehlo.zip") and hlo["file"].endswith(".hlo.pb")
            proto = archive.read(f"example_models/_hatch_neuron/{hlo['file']}")
            assert hashlib.sha256(proto).hexdigest() == hlo["sha256"] and b"IrToHlo" in proto
            program = zipfile.ZipFile(archive.open(f"example_models/_hatch_neuron/{artifact['file']}"))
            assert {"functions/forward.bytecode", "functions/forward.meta"} <= set(program.namelist())
    assert "example_models/_hatch_neuron/classifier.xla.d0-8.hlo.pb" in names
    assert "Requires-Dist: torch==2.9.*" in metadata


def test_selection_override_and_inspect(example_xla: tuple[Path, Path, str]) -> None:
    _, site, _ = example_xla
    forced = run_json(RUN_EXAMPLES, site, env=clean_env(PJRT_DEVICE="CPU", HATCH_NEURON_TARGET="cpu"))
    assert forced["target"] == "cpu" and max(forced["diffs"].values()) < 1e-4
    shown = run([sys.executable, "-m", "hatch_neuron", "inspect", site / "example_models"]).stdout
    assert "loads here as: xla" in shown and ".hlo.pb" in shown


NETS = """
    import torch

    class Histogram(torch.nn.Module):
        def forward(self, x):
            return torch.histc(x, bins=4) + x.sum()

    def make_histogram():
        return Histogram()
"""


def test_check_reports_ops_without_xla_lowering(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj",
        NETS,
        """
        [tool.neuron]
        targets = ["cpu"]

        [tool.neuron.models.histogram]
        factory = "demo_pkg.nets:make_histogram"
        inputs = [{ shape = [4] }]
        """,
    )
    env = clean_env(PJRT_DEVICE="CPU")
    result = run([sys.executable, "-m", "hatch_neuron", "check", project], env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "[operator-support] histogram: aten::histc has no XLA lowering" in output
    assert 'nets.py", line 6, in forward' in output, output  # the torch.histc line
    clean = run([sys.executable, "-m", "hatch_neuron", "check", EXAMPLE], env=env, check=False)
    assert clean.returncode == 0 and "no problems found" in clean.stdout, clean.stdout + clean.stderr
    assert "operator support not checked" not in clean.stdout + clean.stderr
