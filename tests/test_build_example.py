"""example_project built with real frontends (cpu target), installed elsewhere, compared with eager."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE, assert_wheel_hygiene, clean_env, run, run_json, run_python, single_wheel

MODELS = ["scale_add", "conv", "classifier", "encoder"]
# a cpu graph does not hold its input shapes: the classifier's 3 buckets and the encoder's 2 compile to the
# same bytes each, and each model's buckets share its first bucket's file
ARTIFACTS = ["scale_add.cpu.pt", "conv.cpu.pt", "classifier.cpu.d0-1.pt", "encoder.cpu.d1-8.pt"]

COMPARE_ALL = """
    import json, torch
    from example_models import nets
    from example_models.compiled import classifier, conv, encoder, scale_add
    import example_models.compiled as compiled_module
    torch.manual_seed(123)
    cases = {
        "scale_add": (scale_add, nets.make_scale_add(), (torch.rand(3), torch.rand(3))),
        "conv": (conv, nets.make_conv(), (torch.rand(1, 1, 3, 3),)),
        "classifier": (classifier, nets.make_classifier(), (torch.rand(1, 3, 32, 32),)),
        "classifier_batch_13": (classifier, nets.make_classifier(), (torch.rand(13, 3, 32, 32),)),
        "encoder_length_11": (encoder, nets.make_encoder(), (torch.randint(0, 1000, (1, 11)),
                              torch.tensor([[1] * 9 + [0] * 2]))),
        "encoder": (encoder, nets.make_encoder(), (torch.randint(0, 1000, (1, 16)),
                    torch.tensor([[1] * 10 + [0] * 6]))),
    }
    report = {"module_file": compiled_module.__file__}
    for name, (compiled, eager, inputs) in cases.items():
        with torch.no_grad():
            got, want = compiled(*inputs), eager(*inputs)
        if isinstance(want, dict):
            assert isinstance(got, dict) and list(got) == list(want), (got.keys(), want.keys())
            pairs = [(got[k], want[k]) for k in want]
        else:
            assert isinstance(got, torch.Tensor)
            pairs = [(got, want)]
        report[name] = {
            "max_abs_diff": max((g - w).abs().max().item() for g, w in pairs),
            "device": [str(g.device) for g, _ in pairs],
            "target": compiled.target,
        }
    print(json.dumps(report))
"""


@pytest.mark.quick
def test_every_model_matches_eager(example_cpu_install: Path) -> None:
    report = run_json(COMPARE_ALL, example_cpu_install)
    assert report["module_file"].startswith(str(example_cpu_install))  # not the source tree
    for name in [*MODELS, "classifier_batch_13", "encoder_length_11"]:
        assert report[name]["target"] == "cpu"
        assert report[name]["device"] == ["cpu"] * len(report[name]["device"])
        assert report[name]["max_abs_diff"] <= 1e-5, (name, report[name])


def test_wheel_contents_and_metadata(example_cpu_wheel: Path) -> None:
    with zipfile.ZipFile(example_cpu_wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read("example_models-1.0.0.dist-info/METADATA").decode()
        manifest = json.loads(wheel.read("example_models/_hatch_neuron/manifest.json"))
        generated = wheel.read("example_models/compiled.py").decode()
    assert {n for n in names if n.endswith(".pt")} == {f"example_models/_hatch_neuron/{a}" for a in ARTIFACTS}
    classifier = manifest["models"]["classifier"]["artifacts"]["cpu"]
    assert [(a["bucket"], a["file"]) for a in classifier] == [
        ({"0": size}, "classifier.cpu.d0-1.pt") for size in (1, 4, 8)
    ]
    assert "Requires-Dist: torch==2.13.*" in metadata
    assert "Requires-Dist: hatch-neuron>=" in metadata
    assert "torch-neuronx" not in metadata
    assert manifest["targets"] == ["cpu"]
    assert sorted(manifest["models"]) == sorted(MODELS)
    assert manifest["models"]["encoder"]["inputs"][0] == {
        "shape": [1, 16],
        "dtype": "int64",
        "low": 0,
        "high": 1000,
        "bucketed": [1],
    }
    assert manifest["models"]["encoder"]["outputs"]["tree"] == {
        "dict": [["last_hidden_state", "T"], ["pooled", "T"]]
    }
    for model in manifest["models"].values():
        for artifact in model["artifacts"]["cpu"]:
            assert artifact["verified"] is True and artifact["format"] == "torchscript"
            assert len(artifact["sha256"]) == 64 and artifact["size"] > 0
    assert manifest["models"]["encoder"]["inputs"][1]["bucketed"] == [1]
    assert manifest["models"]["encoder"]["outputs"]["dims"] == [[-1, 1, -1], [-1, -1]]
    assert manifest["models"]["classifier"]["outputs"]["dims"] == [[0, -1]]
    assert "load('example_models', 'encoder', lazy=False)" in generated


@pytest.mark.quick
def test_wheel_hygiene(example_cpu_wheel: Path) -> None:
    assert_wheel_hygiene(example_cpu_wheel)


def test_runtime_load_returns_same_model(example_cpu_install: Path) -> None:
    result = run_json(
        """
        import json, torch
        import hatch_neuron.runtime as runtime
        from example_models.compiled import conv
        again = runtime.load("example_models", "conv")
        x = torch.rand(1, 1, 3, 3)
        picked = runtime.selection("example_models").target
        print(json.dumps({"equal": torch.equal(conv(x), again(x)), "selection": picked, "repr": repr(again)}))
        """,
        example_cpu_install,
    )
    assert result["equal"] and result["selection"] == "cpu"
    assert "example_models.conv target=cpu" in result["repr"]


BAD_CALLS = [
    (
        "conv(torch.rand(2, 1, 3, 3))",
        "ValueError",
        "conv: input 0 has shape [2, 1, 3, 3], expected [1, 1, 3, 3]",
    ),
    (
        "conv(torch.rand(1, 1, 3, 3, dtype=torch.float64))",
        "TypeError",
        "conv: input 0 has dtype torch.float64, expected torch.float32",
    ),
    (
        "encoder(torch.zeros(1, 16, dtype=torch.int32), torch.zeros(1, 16, dtype=torch.int64))",
        "TypeError",
        "encoder: input 0 has dtype torch.int32, expected torch.int64",
    ),
    (
        "encoder(torch.zeros(1, 16, dtype=torch.int64), torch.zeros(1, 8, dtype=torch.int64))",
        "ValueError",
        "encoder: the inputs' dim-1 sizes differ (input 0: 16, input 1: 8)",
    ),
    (
        "encoder(torch.zeros(1, 17, dtype=torch.int64), torch.zeros(1, 17, dtype=torch.int64))",
        "ValueError",
        "encoder: dim 1 of the inputs is 17, larger than the largest compiled bucket (16;",
    ),
    (
        "encoder(torch.zeros(2, 16, dtype=torch.int64), torch.zeros(2, 16, dtype=torch.int64))",
        "ValueError",
        "encoder: input 0 has shape [2, 16], expected [1, <=16] (compiled buckets: dim 1: 8, 16)",
    ),
    ("encoder(torch.zeros(1, 16, dtype=torch.int64))", "TypeError", "encoder: takes 2 input(s), got 1"),
    (
        "scale_add(torch.rand(3), torch.rand(3), torch.rand(3))",
        "TypeError",
        "scale_add: takes 2 input(s), got 3",
    ),
    (
        "scale_add(torch.rand(3), [1.0, 2.0, 3.0])",
        "TypeError",
        "scale_add: input 1 must be a torch.Tensor",
    ),
    ("conv(x=torch.rand(1, 1, 3, 3))", "TypeError", "conv: takes positional inputs only, got keywords"),
]


@pytest.mark.quick
def test_fixed_shapes_dtypes_and_arity(example_cpu_install: Path) -> None:
    """Neuron's fixed shapes and dtypes, enforced by the loader on every target (one interpreter for all)."""
    outcomes = run_json(
        f"""
        import json, torch
        from example_models.compiled import conv, encoder, scale_add
        outcomes = []
        for call in {[call for call, _, _ in BAD_CALLS]!r}:
            try:
                eval(call)
            except Exception as exc:
                outcomes.append(type(exc).__name__ + ": " + str(exc))
            else:
                outcomes.append("no error")
        print(json.dumps(outcomes))
        """,
        example_cpu_install,
    )
    for (call, error, message), outcome in zip(BAD_CALLS, outcomes, strict=True):
        assert outcome.startswith(f"{error}: {message}"), (call, outcome)


def test_tampered_and_truncated_artifacts_are_refused(example_cpu_wheel: Path, tmp_path: Path) -> None:
    from conftest import install

    site = install(example_cpu_wheel, tmp_path / "site")
    artifacts = site / "example_models" / "_hatch_neuron"
    original = {name: (artifacts / f"{name}.cpu.pt").read_bytes() for name in ("conv", "scale_add")}
    flipped = bytearray(original["scale_add"])
    flipped[len(flipped) // 2] ^= 0xFF
    for name, damaged in (("conv", original["conv"][:-100]), ("scale_add", bytes(flipped))):
        (artifacts / f"{name}.cpu.pt").write_bytes(damaged)
        result = run_python("import example_models.compiled", site, check=False)
        assert result.returncode != 0
        assert "ArtifactIntegrityError" in result.stderr and f"{name}.cpu.pt" in result.stderr
        assert "modified or truncated" in result.stderr
        (artifacts / f"{name}.cpu.pt").write_bytes(original[name])
    (artifacts / "conv.cpu.pt").write_bytes(original["conv"][:-100])
    lazy = run_python(
        """
        import hatch_neuron.runtime as runtime, torch
        model = runtime.load("example_models", "conv", lazy=True)   # nothing read yet
        try:
            model(torch.rand(1, 1, 3, 3))
        except runtime.ArtifactIntegrityError as exc:
            print("refused:", exc)
        """,
        site,
    )
    assert "refused: " in lazy.stdout and "conv.cpu.pt" in lazy.stdout
    inspect = run([sys.executable, "-m", "hatch_neuron", "inspect", site / "example_models"], check=False)
    assert inspect.returncode == 1 and "MISMATCH" in inspect.stdout


def test_inspect_wheel_and_installed_package(example_cpu_wheel: Path, example_cpu_install: Path) -> None:
    text = run([sys.executable, "-m", "hatch_neuron", "inspect", example_cpu_wheel]).stdout
    for name in MODELS:
        assert f"model {name}" in text
    assert "torch 2.13" in text and "hatch-neuron 0.1.0" in text and "torch-neuronx -" in text
    as_json = json.loads(
        run(
            [
                sys.executable,
                "-m",
                "hatch_neuron",
                "inspect",
                "--json",
                example_cpu_install / "example_models",
            ]
        ).stdout
    )
    (report,) = as_json
    assert report["package"] == "example_models" and report["targets"] == ["cpu"]
    encoder = report["models"]["encoder"]
    assert encoder["artifacts"]["cpu"][0]["sha256_ok"] is True
    assert encoder["inputs"][1]["shape"] == [1, 16]
    missing = run([sys.executable, "-m", "hatch_neuron", "inspect", "/nonexistent.whl"], check=False)
    assert missing.returncode == 2 and "not a wheel" in missing.stderr


def test_sdist_carries_sources_and_no_artifacts(tmp_path: Path) -> None:
    run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path, EXAMPLE],
        env=clean_env(HATCH_NEURON_TARGETS="cpu"),
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    import tarfile

    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(n.endswith("example_models/nets.py") for n in names)
    assert any(n.endswith("pyproject.toml") for n in names)
    assert not any("_hatch_neuron" in n or n.endswith(".pt") or n.endswith("compiled.py") for n in names)


def test_python_build_wheel_frontend(tmp_path: Path) -> None:
    run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", tmp_path, EXAMPLE],
        env=clean_env(HATCH_NEURON_TARGETS="cpu"),
    )
    wheel = single_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        assert "example_models/_hatch_neuron/encoder.cpu.d1-8.pt" in archive.namelist()
