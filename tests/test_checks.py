"""``hatch-neuron check`` and the build's pre-flight checks, on purpose-built bad models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, clean_env, make_project, pip_wheel, run

NETS = """
    import torch

    def branchy(x):
        if x.sum() > 0:
            return x * 2
        return x * -3

    def nonzero(x):
        return torch.nonzero(x > 0).float().sum().reshape(1) + x[:1]

    def widen(ids):
        return ids.long() * 2

    class Center(torch.nn.Module):
        def forward(self, x):
            return x - x.mean(0, keepdim=True)

    def make_branchy():
        return branchy

    def make_nonzero():
        return nonzero

    def make_widen():
        return widen

    def make_center():
        return Center()

    def make_fine():
        return torch.nn.Linear(4, 2).eval()

    def large(x):
        if x.abs().max() > 100:  # random inputs never get here; large ones do
            return x * 0
        return x + 1

    def masked(x, mask):
        if mask.all():  # a full mask skips the masking: a trace on one kind of mask is wrong for the other
            return x
        return x * mask

    def shape_only(x):
        if torch.tensor(x.shape[-1]) > 2:  # a tracer warning, but the value is fixed by the declared shape
            return x * 2
        return x

    def make_large():
        return large

    def make_masked():
        return masked

    def make_shape_only():
        return shape_only
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]

    [tool.neuron.models.branchy]
    factory = "demo_pkg.nets:make_branchy"
    inputs = [{ shape = [4] }]

    [tool.neuron.models.nonzero]
    factory = "demo_pkg.nets:make_nonzero"
    inputs = [{ shape = [4] }]

    [tool.neuron.models.widen]
    factory = "demo_pkg.nets:make_widen"
    inputs = [{ shape = [4], dtype = "int32", high = 10 }]

    [tool.neuron.models.center]
    factory = "demo_pkg.nets:make_center"
    inputs = [{ shape = [1, 3] }]
    dynamic-batch = true

    [tool.neuron.models.fine]
    factory = "demo_pkg.nets:make_fine"
    inputs = [{ shape = [1, 4] }]
    dynamic-batch = true

    [tool.neuron.models.large]
    factory = "demo_pkg.nets:make_large"
    inputs = [{ shape = [4] }]

    [tool.neuron.models.masked]
    factory = "demo_pkg.nets:make_masked"
    inputs = [{ shape = [1, 4] }, { shape = [1, 4], dtype = "int64" }]

    [tool.neuron.models.shape_only]
    factory = "demo_pkg.nets:make_shape_only"
    inputs = [{ shape = [1, 4] }]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("checks") / "proj", NETS, TOML)


def check(*args: object) -> tuple[int, str]:
    result = run([sys.executable, "-m", "hatch_neuron", "check", *args], check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "branchy",
            [
                "[control-flow] branchy: Converting a tensor to a Python boolean",
                "nets.py:5",
                "the traced graph differs from eager on fresh inputs",
            ],
        ),
        (
            "nonzero",
            [
                "[data-dependent-shape] nonzero: aten.nonzero.default gives a tensor whose shape depends",
                'nets.py", line 9 (nonzero)',
            ],
        ),
        (
            "widen",
            [
                "[dtype] widen: input 0 is declared int32 but the model converts it to int64",
                'declare inputs[0].dtype = "int64"',
            ],
        ),
        (
            "center",
            ["[batch-dependence] center: output 0 of a batch of 2 differs from the rows run one at a time"],
        ),
        (
            "large",
            [
                "[control-flow] large: Converting a tensor to a Python boolean here depends on the input",
                "True with large",
                "nets.py:35",
            ],
        ),
        (
            "masked",
            [
                "[control-flow] masked: Converting a tensor to a Python boolean here depends on the input",
                "True with ones, large",
                "nets.py:40",
            ],
        ),
    ],
)
def test_each_hazard_is_found(project: Path, model: str, expected: list[str]) -> None:
    code, output = check(project, "--model", model)
    assert code == 1, output
    for part in expected:
        assert part in output, (part, output)
    assert "note: " + model + ": operator support not checked" in output


def test_clean_model_and_example_project_report_nothing(project: Path) -> None:
    code, output = check(project, "--model", "fine")
    assert code == 0 and "no problems found" in output, output
    # torch.jit.trace warns about this branch on a size; with fixed shapes the trace is exact
    code, output = check(project, "--model", "shape_only")
    assert code == 0 and "no problems found" in output, output
    code, output = check(EXAMPLE)
    assert code == 0 and "no problems found" in output, output


def test_unknown_model(project: Path) -> None:
    code, output = check(project, "--model", "nope")
    assert code == 2 and "no model named nope" in output


def test_build_fails_on_findings_unless_warn(project: Path, tmp_path: Path) -> None:
    strict = make_project(tmp_path / "strict", NETS, TOML.replace("models.nonzero", "models.skip_nonzero", 0))
    # one job at a time, so that the first model declared is the one that fails the build
    result = pip_wheel(strict, tmp_path / "dist", check=False, env=clean_env(HATCH_NEURON_JOBS="1"))
    text = result.stdout + result.stderr
    assert result.returncode != 0 and not list((tmp_path / "dist").glob("*.whl"))
    assert "model 'branchy': the pre-flight checks found" in text and '(check = "warn"' in text
    # every model's findings in one build, not just the first model's
    assert "the pre-flight checks found problems in 6 model(s)" in text, text[-5000:]
    for model in ("nonzero", "widen", "center", "large", "masked"):
        assert f"model {model!r}: the pre-flight checks found" in text
    assert "model 'fine': the pre-flight" not in text and "model 'shape_only': the pre-flight" not in text
    warn_toml = TOML.replace('targets = ["cpu"]', 'targets = ["cpu"]\n    check = "warn"', 1)
    warn_toml = warn_toml.replace(
        'factory = "demo_pkg.nets:make_branchy"', 'factory = "demo_pkg.nets:make_fine"'
    )
    warn_toml = warn_toml.replace(
        "inputs = [{ shape = [4] }]\n\n    [tool.neuron.models.nonzero]",
        "inputs = [{ shape = [1, 4] }]\n\n    [tool.neuron.models.nonzero]",
    )
    lenient = make_project(tmp_path / "lenient", NETS, warn_toml)
    result = pip_wheel(lenient, tmp_path / "dist2", check=False)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert "hatch-neuron: warning: batch-dependence: center:" in text
    assert "hatch-neuron: warning: dtype: widen:" in text
