"""Buckets and dynamic batching: the seed's semantics on hand-traced modules (fast), and on built wheels."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import DOUBLES, clean_env, install, make_project, pip_wheel, run, run_json, single_wheel

import hatch_neuron
from hatch_neuron.compile.output_dims import OutputDimsError, output_dims


class Net(torch.nn.Module):
    """The seed's dynamic-batch example network."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + 1


def test_seed_example_batch_1_traced_called_with_8() -> None:
    net = Net().eval()
    traced = torch.jit.trace(net, torch.rand(1, 1, 3, 3))
    dynamic = hatch_neuron.dynamic_batch(traced)
    inputs_batch_8 = torch.rand(8, 1, 3, 3)
    with torch.no_grad():
        assert torch.allclose(dynamic(inputs_batch_8), net(inputs_batch_8), atol=1e-6)
        assert dynamic(torch.rand(3, 1, 3, 3)).shape == (3, 1, 1, 1)


def test_seed_invalid_example_non_0_dim_changed() -> None:
    traced = torch.jit.trace(lambda x: x * 2, torch.rand(2, 3, 5))
    dynamic = hatch_neuron.dynamic_batch(traced)
    assert dynamic(torch.rand(3, 3, 5)).shape == (3, 3, 5)  # valid: only dim 0 changes
    with pytest.raises(ValueError, match=r"input 0 has shape \[2, 7, 5\], expected \[any, 3, 5\]"):
        dynamic(torch.rand(2, 7, 5))


def test_dim_0_sizes_must_agree() -> None:
    traced = torch.jit.trace(lambda x, y: x + y, (torch.rand(1, 2), torch.rand(1, 2)))
    dynamic = hatch_neuron.dynamic_batch(traced)
    with pytest.raises(ValueError, match="dim-0 sizes differ"):
        dynamic(torch.rand(3, 2), torch.rand(2, 2))
    with pytest.raises(ValueError, match="one batch size for every input"):
        hatch_neuron.dynamic_batch(traced, (torch.rand(1, 2), torch.rand(3, 2)))


def test_loaded_module_needs_example_inputs(tmp_path: Path) -> None:
    torch.jit.save(torch.jit.freeze(torch.jit.trace(Net().eval(), torch.rand(1, 1, 3, 3))), tmp_path / "m.pt")
    loaded = torch.jit.load(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="pass example_inputs"):
        hatch_neuron.dynamic_batch(loaded)
    assert hatch_neuron.dynamic_batch(loaded, torch.rand(1, 1, 3, 3))(torch.rand(5, 1, 3, 3)).shape[0] == 5


def test_output_dims_rule() -> None:
    axes = {0: [1, 4], 1: [8, 16]}
    artifacts = [({0: b, 1: t}, [[b, t, 32], [b, 32], [t, t]]) for b in (1, 4) for t in (8, 16)]
    dims = output_dims(axes, artifacts, {}, dynamic_batch=False)
    assert dims == [[0, 1, -1], [0, -1], [1, 1]]
    with pytest.raises(
        OutputDimsError, match=r"output 2 \(shape \[8, 8\]\) does not have the batch as its dim 0"
    ):
        output_dims(axes, artifacts, {}, dynamic_batch=True)
    # same sizes on two bucketed dims: the own-index dim wins, otherwise it must be declared
    same = {0: [2, 4], 1: [2, 4]}
    shared = [({0: n, 1: m}, [[n, m], [m]]) for n in (2, 4) for m in (2, 4)]
    assert output_dims(same, shared, {}, dynamic_batch=False) == [[0, 1], [1]]
    grows = [({0: b}, [[b, 2 * b]]) for b in (1, 4)]
    with pytest.raises(OutputDimsError, match="changes with the bucket"):
        output_dims({0: [1, 4]}, grows, {}, dynamic_batch=False)
    assert output_dims({0: [1, 4]}, grows, {"0": [0, -1]}, dynamic_batch=False) == [[0, -1]]
    with pytest.raises(OutputDimsError, match="one entry per output dim"):
        output_dims({0: [1, 4]}, grows, {"0": [0]}, dynamic_batch=False)


NETS = """
    import torch

    class Rows(torch.nn.Module):
        '''Rows are independent: batch padding cannot change the real rows.'''
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

    class Tokens(torch.nn.Module):
        '''Position-wise over a sequence dim (bucketed), plus an output that does not follow it.'''
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.embed = torch.nn.Embedding(50, 8)
            self.mix = torch.nn.Linear(8, 8)

        def forward(self, ids, scale):
            states = self.mix(self.embed(ids)) * scale[:, None, :]
            return {"states": states, "first": states[:, 0, :] * 2}

    def make_rows():
        return Rows().eval()

    def make_tokens():
        return Tokens().eval()

    def double(x):
        return x * 2 + 1

    def make_double():
        return double
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]

    [tool.neuron.models.rows]
    factory = "demo_pkg.nets:make_rows"
    inputs = [{ shape = [1, 6] }]
    batch-buckets = [1, 4, 8]
    dynamic-batch = true

    [tool.neuron.models.bounded]
    factory = "demo_pkg.nets:make_rows"
    inputs = [{ shape = [1, 6] }]
    batch-buckets = [2, 4]

    [tool.neuron.models.tokens]
    factory = "demo_pkg.nets:make_tokens"
    inputs = [{ shape = [1, 16], dtype = "int64", low = 0, high = 50 }, { shape = [1, 8] }]
    buckets = { 1 = [4, 16] }
    batch-buckets = [1, 2]
    dynamic-batch = true
    pad-value = 0

    [tool.neuron.models.seed]
    factory = "demo_pkg.nets:make_double"
    inputs = [{ shape = [1, 3, 5] }]
    dynamic-batch = true
"""

CHECK = """
    import json, os, torch
    from demo_pkg import nets
    from demo_pkg.compiled import bounded, rows, seed, tokens
    torch.manual_seed(7)
    eager_rows, eager_tokens = nets.make_rows(), nets.make_tokens()
    report = {"rows": {}, "errors": {}}
    with torch.no_grad():
        for b in range(1, 21):
            x = torch.rand(b, 6)
            report["rows"][b] = (rows(x) - eager_rows(x)).abs().max().item()
        x = torch.rand(3, 6)
        report["bounded_3"] = (bounded(x) - eager_rows(x)).abs().max().item()
        diffs = []
        for b, t in [(1, 3), (1, 4), (2, 5), (3, 16), (5, 9), (1, 1)]:
            ids, scale = torch.randint(0, 50, (b, t)), torch.rand(b, 8)
            got, want = tokens(ids, scale), eager_tokens(ids, scale)
            assert got["states"].shape == (b, t, 8) and got["first"].shape == (b, 8), (b, t)
            diffs.append(max((got[k] - want[k]).abs().max().item() for k in want))
        report["tokens"] = max(diffs)
        x = torch.rand(8, 3, 5)
        report["seed_8"] = (seed(x) - nets.double(x)).abs().max().item()
    for name, call in {
        "bounded_too_big": lambda: bounded(torch.rand(5, 6)),
        "rows_wrong_feature": lambda: rows(torch.rand(3, 7)),
        "tokens_too_long": lambda: tokens(torch.zeros(1, 17, dtype=torch.int64), torch.rand(1, 8)),
        "tokens_dim0_differ": lambda: tokens(torch.zeros(3, 4, dtype=torch.int64), torch.rand(2, 8)),
        "seed_invalid": lambda: seed(torch.rand(2, 7, 5)),
        "rows_dtype": lambda: rows(torch.rand(3, 6, dtype=torch.float64)),
    }.items():
        try:
            call()
            report["errors"][name] = "no error"
        except Exception as exc:
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def batching_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batching")
    project = make_project(root / "proj", NETS, TOML)
    output = pip_wheel(project, root / "dist")
    lines = [line for line in (output.stdout + output.stderr).splitlines() if "hatch-neuron:" in line]
    # rows and bounded share artifacts (same factory and shape), so either may be the one "cached"
    assert any(re.search(r"tokens \[cpu dim0=2 dim1=16\]: (compiled|cached) in", line) for line in lines), (
        lines
    )
    return install(single_wheel(root / "dist"), root / "site")


@pytest.mark.quick
def test_buckets_and_dynamic_batch_match_eager(batching_site: Path) -> None:
    report = run_json(CHECK, batching_site)
    assert max(report["rows"].values()) < 1e-5, report["rows"]  # batch sizes 1..20, beyond the largest (8)
    assert report["bounded_3"] < 1e-5 and report["tokens"] < 1e-5 and report["seed_8"] < 1e-6
    errors = report["errors"]
    assert errors["bounded_too_big"].startswith(
        "ValueError: bounded: dim 0 of the inputs is 5, larger than the largest compiled bucket (4;"
    )
    assert errors["rows_wrong_feature"].startswith(
        "ValueError: rows: input 0 has shape [3, 7], expected [any, 6]"
    )
    assert errors["tokens_too_long"].startswith("ValueError: tokens: dim 1 of the inputs is 17, larger than")
    assert errors["tokens_dim0_differ"].startswith("ValueError: tokens: the inputs' dim-0 sizes differ")
    assert errors["seed_invalid"].startswith(
        "ValueError: seed: input 0 has shape [2, 7, 5], expected [any, 3, 5]"
    )
    assert errors["rows_dtype"].startswith("TypeError: rows: input 0 has dtype torch.float64")


def test_replicas_give_the_same_results(batching_site: Path) -> None:
    code = """
        import json, os, torch
        from demo_pkg.compiled import rows, tokens
        torch.manual_seed(3)
        x = torch.rand(37, 6)
        ids, scale = torch.randint(0, 50, (7, 9)), torch.rand(7, 8)
        print(json.dumps({"replicas": rows.replicas, "rows": rows(x).tolist(),
                          "tokens": tokens(ids, scale)["states"].tolist()}))
    """
    one = run_json(code, batching_site, env=clean_env(HATCH_NEURON_REPLICAS="1"))
    two = run_json(code, batching_site, env=clean_env(HATCH_NEURON_REPLICAS="2"))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["rows"] == two["rows"] and one["tokens"] == two["tokens"]


def test_inspect_shows_buckets(batching_site: Path) -> None:
    text = run([sys.executable, "-m", "hatch_neuron", "inspect", batching_site / "demo_pkg"]).stdout
    assert "buckets: dim 0: 1, 2; dim 1: 4, 16   dynamic batch: yes   pad value: 0" in text
    assert "buckets: dim 0: 2, 4   dynamic batch: no" in text
    assert "placement: round-robin   replicas: 1" in text
    assert text.count("tokens.cpu.d0-1.d1-4.pt") == 4  # its 4 buckets compile to the same bytes: one file


def test_neuron_dynamic_batch_and_placement_through_double(tmp_path: Path) -> None:
    """TEST DOUBLE of torch_neuronx, not Neuron: checks which APIs are called and with what."""
    toml = """
        [tool.neuron]
        targets = ["neuron"]
        neuron-target = "inf2"
        placement = { start = 1, count = 2 }
        replicas = 2

        [tool.neuron.models.seed]
        factory = "demo_pkg.nets:make_double"
        inputs = [{ shape = [1, 3, 5] }]
        dynamic-batch = true
    """
    project = make_project(tmp_path / "proj", NETS, toml)
    log = tmp_path / "calls.jsonl"
    env = clean_env(PYTHONPATH=str(DOUBLES), TORCH_NEURONX_DOUBLE_LOG=str(log))
    pip_wheel(project, tmp_path / "dist", env=env)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["call"] for c in calls] == ["trace", "dynamic_batch"]  # native dynamic batching applied
    site = install(single_wheel(tmp_path / "dist"), tmp_path / "site")
    log.unlink()
    code = """
        import json, torch
        from demo_pkg.compiled import seed
        from demo_pkg import nets
        x = torch.rand(9, 3, 5)
        try:
            seed(torch.rand(2, 7, 5))
        except ValueError as exc:
            invalid = str(exc)
        print(json.dumps({"diff": (seed(x) - nets.double(x)).abs().max().item(), "invalid": invalid}))
    """
    # the double acts as a host with 4 NeuronCores: placement is validated against them
    report = run_json(
        code, site, DOUBLES, env=clean_env(TORCH_NEURONX_DOUBLE_LOG=str(log), TORCH_NEURONX_DOUBLE_CORES="4")
    )
    assert report["diff"] < 1e-6
    assert report["invalid"].startswith("seed: input 0 has shape [2, 7, 5], expected [any, 3, 5]")
    placements = [json.loads(line) for line in log.read_text().splitlines()]
    assert placements == [
        {"call": "neuron_cores_context", "start_nc": 1, "nc_count": 1},
        {"call": "neuron_cores_context", "start_nc": 2, "nc_count": 1},
    ]
    failed = run(
        [sys.executable, "-c", "import demo_pkg.compiled"],
        env=clean_env(PYTHONPATH=f"{site}:{DOUBLES}", NEURON_RT_VISIBLE_CORES="0-1"),
        cwd=site,
        check=False,
    )
    assert failed.returncode != 0
    assert "needs NeuronCores 1..2, but this process sees 2" in failed.stderr
