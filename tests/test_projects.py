"""Purpose-built projects: src layout, package inference, lazy load, output structures, bool and bf16."""

from __future__ import annotations

import zipfile
from pathlib import Path

from conftest import clean_env, install, make_project, pip_wheel, run_json, single_wheel

NETS = """
    import torch

    def pair(x, y):
        return x + y, [x * y, {"diff": x - y}]

    def masked(x, keep):
        return torch.where(keep, x, torch.zeros_like(x)).sum(-1)

    class Half(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.linear = torch.nn.Linear(8, 4).to(torch.bfloat16)

        def forward(self, x):
            return self.linear(x)

    def make_pair():
        return pair

    def make_masked():
        return masked

    def make_half():
        return Half().eval()
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]
    module = "models"
    load = "lazy"

    [tool.neuron.models.pair]
    factory = "demo_pkg.nets:make_pair"
    inputs = [{ shape = [2, 3] }, { shape = [2, 3], low = -1, high = 1 }]

    [tool.neuron.models.masked]
    factory = "demo_pkg.nets:make_masked"
    inputs = [{ shape = [4, 5] }, { shape = [4, 5], dtype = "bool" }]

    [tool.neuron.models.half]
    factory = "demo_pkg.nets:make_half"
    inputs = [{ shape = [3, 8], dtype = "bfloat16" }]
"""

CHECK = """
    import json, torch
    import demo_pkg.models as models
    from demo_pkg import nets
    state = {name: not getattr(models, name).loaded for name in models.__all__}
    x, y = torch.rand(2, 3), torch.rand(2, 3)
    got, want = models.pair(x, y), nets.pair(x, y)
    keep = torch.rand(4, 5) > 0.5
    h = torch.rand(3, 8, dtype=torch.bfloat16)
    print(json.dumps({
        "lazy_before_call": state,
        "structure": [type(got).__name__, type(got[1]).__name__, type(got[1][1]).__name__, list(got[1][1])],
        "pair": max((got[0] - want[0]).abs().max().item(), (got[1][0] - want[1][0]).abs().max().item(),
                    (got[1][1]["diff"] - want[1][1]["diff"]).abs().max().item()),
        "masked": (models.masked(x := torch.rand(4, 5), keep) - nets.masked(x, keep)).abs().max().item(),
        "half_dtype": str(models.half(h).dtype),
        "half": (models.half(h) - nets.make_half()(h)).abs().max().item(),
        "all": sorted(models.__all__),
    }))
"""


def test_src_layout_lazy_load_and_output_structures(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, TOML, layout="src")  # package inferred from the name
    pip_wheel(project, tmp_path / "dist")
    wheel = single_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        assert "demo_pkg/models.py" in archive.namelist()
        assert "demo_pkg/_hatch_neuron/half.cpu.pt" in archive.namelist()
    report = run_json(CHECK, install(wheel, tmp_path / "site"))
    assert report["lazy_before_call"] == {"pair": True, "masked": True, "half": True}
    assert report["structure"] == ["tuple", "list", "dict", ["diff"]]
    assert report["pair"] == 0 and report["masked"] == 0
    assert report["half_dtype"] == "torch.bfloat16" and report["half"] <= 1e-2
    assert report["all"] == ["half", "masked", "pair"]


def test_package_that_cannot_be_inferred(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, TOML.replace("lazy", "import"), package="demo_pkg")
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('name = "demo-pkg"', 'name = "other-name"')
    )
    (project / "second").mkdir()
    (project / "second" / "__init__.py").write_text("")
    result = pip_wheel(project, tmp_path / "dist", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and not list((tmp_path / "dist").glob("*.whl"))
    assert "tool.neuron.package: cannot infer the import package" in text and "demo_pkg, second" in text


def test_generated_module_must_not_shadow_a_source_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, TOML)
    (project / "demo_pkg" / "models.py").write_text("# the user's own module\n")
    result = pip_wheel(project, tmp_path / "dist", env=clean_env(), check=False)
    text = result.stdout + result.stderr
    assert (
        result.returncode != 0
        and "tool.neuron.module" in text
        and "models.py exists in the source tree" in text
    )
