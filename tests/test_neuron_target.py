"""Target ``neuron`` exercised through the TEST DOUBLE of torch_neuronx in tests/doubles.

The double enforces the documented call contract of ``torch_neuronx.trace`` and returns a CPU-traced module.
Nothing here is a Neuron result: no NEFF is produced and no NeuronCore runs anything.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import (
    DOUBLES,
    EXAMPLE,
    clean_env,
    install,
    make_project,
    pip_wheel,
    run,
    run_json,
    run_python,
    single_wheel,
)

NETS = """
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.conv(x) + 1

    def make_net():
        torch.manual_seed(0)
        return Net().eval()
"""


def double_env(log: Path, **extra: str) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(DOUBLES), TORCH_NEURONX_DOUBLE_LOG=str(log), **extra)


@pytest.fixture(scope="module")
def example_double_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], str]:
    """example_project (targets neuron, cpu) built with the double on the path."""
    out = tmp_path_factory.mktemp("example-double")
    log = out / "calls.jsonl"
    result = pip_wheel(EXAMPLE, out, env=double_env(log))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return single_wheel(out), [c for c in calls if c["call"] == "trace"], result.stdout + result.stderr


@pytest.mark.quick
def test_trace_called_exactly_as_documented(example_double_build: tuple[Path, list[dict], str]) -> None:
    _, calls, _ = example_double_build
    # compile jobs run in parallel, so the calls come in any order
    assert sorted(c["example_inputs"] for c in calls) == sorted(
        [
            [[3], [3]],  # scale_add
            [[1, 1, 3, 3]],  # conv
            [[1, 3, 32, 32]],  # classifier, batch buckets 1, 4, 8
            [[4, 3, 32, 32]],
            [[8, 3, 32, 32]],
            [[1, 8], [1, 8]],  # encoder, sequence buckets 8, 16
            [[1, 16], [1, 16]],
        ]
    )
    for call in calls:
        # compiler_args from [tool.neuron] compiler-args, then --target from neuron-target, as a list of str
        assert call["compiler_args"] == ["--optlevel", "2", "--target", "inf2"]
        assert call["compiler_workdir"] and os.path.isabs(call["compiler_workdir"])
        assert call["cpu_backend"] is False  # the seed's signature has no cpu_backend: not passed
        assert call["func"] == "FlatOutputs"


def test_manifest_records_neuron_artifacts_unverified(
    example_double_build: tuple[Path, list[dict], str],
) -> None:
    wheel, _, output = example_double_build
    with zipfile.ZipFile(wheel) as archive:
        manifest = json.loads(archive.read("example_models/_hatch_neuron/manifest.json"))
        metadata = archive.read("example_models-1.0.0.dist-info/METADATA").decode()
    assert manifest["targets"] == ["neuron", "cpu"]
    assert manifest["built_with"]["torch-neuronx"] == "2.13.0.2.99.0+testdouble"
    for model in manifest["models"].values():
        assert model["artifacts"]["neuron"][0]["verified"] is False  # no Neuron device here
        assert model["artifacts"]["neuron"][0]["compiler_args"] == ["--optlevel", "2", "--target", "inf2"]
        assert model["artifacts"]["cpu"][0]["verified"] is True
    # multi-target wheels stay installable without torch-neuronx (the cpu artifacts run anywhere)
    assert "torch-neuronx" not in metadata
    assert "conv [neuron]: compiled in" in output and "not verified (no device here)" in output


def test_runtime_prefers_neuron_only_where_usable(
    example_double_build: tuple[Path, list[dict], str], tmp_path: Path
) -> None:
    site = install(example_double_build[0], tmp_path / "site")
    code = """
        import json, torch, hatch_neuron.runtime as runtime
        from example_models.compiled import conv
        from example_models import nets
        x = torch.rand(1, 1, 3, 3)
        s = runtime.selection("example_models")
        print(json.dumps({"target": s.target, "skipped": s.skipped, "forced": s.forced,
                          "diff": (conv(x) - nets.make_conv()(x)).abs().max().item()}))
    """
    without = run_json(code, site)
    assert without["target"] == "cpu" and without["skipped"] == {"neuron": "torch_neuronx is not importable"}
    with_double = run_json(code, site, DOUBLES)
    assert with_double["target"] == "cpu" and with_double["skipped"] == {
        "neuron": "no Neuron device (/dev/neuron*)"
    }
    forced = run_json(code, site, DOUBLES, env=clean_env(HATCH_NEURON_TARGET="neuron"))
    assert forced["target"] == "neuron" and forced["forced"] and forced["diff"] < 1e-6
    missing = run_python(code, site, env=clean_env(HATCH_NEURON_TARGET="neuron"), check=False)
    assert missing.returncode != 0
    assert "ImportError" in missing.stderr and "torch-neuronx==2.13.0.2.99.0+testdouble" in missing.stderr
    inspect = run([sys.executable, "-m", "hatch_neuron", "inspect", site / "example_models"]).stdout
    assert "loads here as: cpu (neuron skipped: torch_neuronx is not importable)" in inspect
    unknown = run_python(code, site, env=clean_env(HATCH_NEURON_TARGET="inductor"), check=False)
    assert "has no 'inductor' artifacts; it was built for: neuron, cpu" in unknown.stderr


def test_neuron_only_wheel(tmp_path: Path) -> None:
    """A neuron-only wheel pins torch-neuronx, and importing it without torch_neuronx is an ImportError."""
    project = make_project(
        tmp_path / "proj",
        NETS,
        """
        [tool.neuron]
        targets = ["neuron"]
        compiler-args = ["--target", "trn1", "--auto-cast", "none"]
        neuron-target = "inf2"

        [tool.neuron.models.net]
        factory = "demo_pkg.nets:make_net"
        inputs = [{ shape = [1, 1, 3, 3] }]
        """,
    )
    log = tmp_path / "calls.jsonl"
    pip_wheel(project, tmp_path / "dist", env=double_env(log, TORCH_NEURONX_DOUBLE_CPU_BACKEND="1"))
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["compiler_args"] == ["--target", "trn1", "--auto-cast", "none"]  # an explicit --target wins
    assert call["cpu_backend"] is True  # newer-SDK signature and no device: trace on the CPU backend
    wheel = single_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("demo_pkg-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: torch-neuronx==2.13.0.2.99.*" in metadata
    site = install(wheel, tmp_path / "site")
    failed = run_python("import demo_pkg.compiled", site, check=False)
    assert failed.returncode != 0 and "ImportError" in failed.stderr
    assert "cannot load its compiled models here" in failed.stderr and "torch-neuronx" in failed.stderr
    ok = run_json(
        """
        import json, torch
        from demo_pkg.compiled import net
        from demo_pkg.nets import make_net
        x = torch.rand(1, 1, 3, 3)
        print(json.dumps({"target": net.target, "diff": (net(x) - make_net()(x)).abs().max().item()}))
        """,
        site,
        DOUBLES,
    )
    assert ok == {"target": "neuron", "diff": ok["diff"]} and ok["diff"] < 1e-6


def test_per_model_targets_and_compiler_args(tmp_path: Path) -> None:
    """A model's own ``targets`` and ``compiler-args`` replace the project's for it: ``net`` builds for
    neuron (the TEST DOUBLE) and cpu with its own flags, ``plain`` for cpu only. The manifest records
    each model's values, ``inspect`` shows them, and each model picks its target from its own list."""
    nets = NETS + "\n    def make_plain():\n        return torch.nn.Linear(4, 2).eval()\n"
    toml = """
        [tool.neuron]
        targets = ["cpu"]
        compiler-args = ["--optlevel", "2"]
        neuron-target = "inf2"

        [tool.neuron.models.net]
        factory = "demo_pkg.nets:make_net"
        inputs = [{ shape = [1, 1, 4, 4] }]
        targets = ["neuron", "cpu"]
        compiler-args = ["--model-type", "unet-inference"]
        timeout = 600

        [tool.neuron.models.plain]
        factory = "demo_pkg.nets:make_plain"
        inputs = [{ shape = [1, 4] }]
        check = "off"
    """
    project = make_project(tmp_path / "proj", nets, toml)
    log = tmp_path / "calls.jsonl"
    pip_wheel(project, tmp_path / "out", env=double_env(log))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    [trace] = [c for c in calls if c["call"] == "trace"]
    assert trace["compiler_args"] == ["--model-type", "unet-inference", "--target", "inf2"]
    wheel = single_wheel(tmp_path / "out")
    with zipfile.ZipFile(wheel) as archive:
        manifest = json.loads(archive.read("demo_pkg/_hatch_neuron/manifest.json"))
    assert manifest["targets"] == ["cpu", "neuron"]
    net, plain = manifest["models"]["net"], manifest["models"]["plain"]
    assert (net["targets"], net["compiler_args"], net["check"], net["timeout"]) == (
        ["neuron", "cpu"],
        ["--model-type", "unet-inference"],
        "error",
        600.0,
    )
    assert (plain["targets"], plain["compiler_args"], plain["check"]) == (["cpu"], ["--optlevel", "2"], "off")
    assert sorted(net["artifacts"]) == ["cpu", "neuron"] and sorted(plain["artifacts"]) == ["cpu"]
    inspect = run([Path(sys.executable).parent / "hatch-neuron", "inspect", wheel]).stdout
    assert "targets: neuron, cpu   compiler args: --model-type unet-inference   check: error" in inspect
    site = install(wheel, tmp_path / "site")
    picked = run_json(
        "import json\nfrom demo_pkg import compiled\n"
        "print(json.dumps({n: getattr(compiled, n).target for n in ('net', 'plain')}))",
        site,
    )
    assert picked == {"net": "cpu", "plain": "cpu"}  # no Neuron device here: net skips to cpu
    # a forced target applies to the models built for it; the others select as usual and say why
    forced = run_json(
        "import json\nfrom hatch_neuron.runtime import load\nplain = load('demo_pkg', 'plain')\n"
        "from hatch_neuron.runtime import selection\n"
        "print(json.dumps([plain.target, selection('demo_pkg', 'plain').skipped]))",
        site,
        env=clean_env(HATCH_NEURON_TARGET="neuron"),
    )
    assert forced == ["cpu", {"neuron": "HATCH_NEURON_TARGET=neuron, but model 'plain' was built for cpu"}]
    refused = run_python(
        "from hatch_neuron.runtime import load\nload('demo_pkg', 'plain')",
        site,
        env=clean_env(HATCH_NEURON_TARGET="inductor"),
        check=False,
    )
    assert "package 'demo_pkg' has no 'inductor' artifacts; it was built for: cpu, neuron" in refused.stderr


def test_every_neuron_option_becomes_its_documented_flag_or_call(tmp_path: Path) -> None:
    """Typed ``neuron-options`` (top level, and a model's keys over them) become exactly the documented
    neuronx-cc flags and torch-neuronx calls, read from the TEST DOUBLE's call log: the flags after the
    project's own ``compiler-args`` (a flag they already set is not repeated), ``inline_weights_to_neff``,
    ``async_load`` and ``lazy_load`` right after ``trace`` and before the save, and on this device-less host
    ``NEURON_PLATFORM_TARGET_OVERRIDE`` set before torch_neuronx is imported. Not a Neuron result."""
    project = make_project(
        tmp_path / "proj",
        NETS,
        """
        [tool.neuron]
        targets = ["neuron"]
        neuron-target = "inf2"
        compiler-args = ["--optlevel", "3"]
        placement = { start = 1, count = 1 }

        [tool.neuron.neuron-options]
        auto-cast = "matmult"
        auto-cast-type = "bf16"
        optlevel = 3
        model-type = "transformer"
        async-load = true
        lazy-load = true

        [tool.neuron.models.net]
        factory = "demo_pkg.nets:make_net"
        inputs = [{ shape = [1, 1, 3, 3] }]
        neuron-options = { model-type = "generic", inline-weights = false }
        """,
    )
    log = tmp_path / "calls.jsonl"
    pip_wheel(project, tmp_path / "dist", env=double_env(log, TORCH_NEURONX_DOUBLE_CPU_BACKEND="1"))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["call"] for c in calls] == ["trace", "async_load", "lazy_load"]
    trace = calls[0]
    assert trace["compiler_args"] == [
        "--optlevel", "3", "--auto-cast", "matmult", "--auto-cast-type", "bf16", "--model-type", "generic",
        "--target", "inf2",
    ]  # fmt: skip
    assert trace["inline_weights_to_neff"] is False and trace["cpu_backend"] is True
    assert trace["platform_target_override_at_import"] == "inf2"
    wheel = single_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        manifest = json.loads(archive.read("demo_pkg/_hatch_neuron/manifest.json"))
    (artifact,) = manifest["models"]["net"]["artifacts"]["neuron"]
    assert artifact["neuron_target"] == "inf2"
    assert artifact["neuron_options"] == {
        "auto-cast": "matmult",
        "auto-cast-type": "bf16",
        "optlevel": 3,
        "model-type": "generic",
        "inline-weights": False,
        "async-load": True,
        "lazy-load": True,
    }
    inspect = run([sys.executable, "-m", "hatch_neuron", "inspect", wheel]).stdout
    assert (
        'neuron options: async-load = true, auto-cast = "matmult", auto-cast-type = "bf16", '
        'inline-weights = false, lazy-load = true, model-type = "generic", optlevel = 3'
    ) in inspect
    assert "compiled for: inf2" in inspect and "ignored --target inf2" in inspect
    site = install(wheel, tmp_path / "site")
    log.unlink()
    ok = run_json(
        """
        import json, torch
        from demo_pkg.compiled import net
        from demo_pkg.nets import make_net
        x = torch.rand(1, 1, 3, 3)
        print(json.dumps({"target": net.target, "diff": (net(x) - make_net()(x)).abs().max().item()}))
        """,
        site,
        DOUBLES,
        env=double_env(log, TORCH_NEURONX_DOUBLE_CORES="2"),
    )
    assert ok["target"] == "neuron" and ok["diff"] < 1e-6
    loads = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["call"] for c in loads] == ["neuron_cores_context", "move_trace_to_device"]
    assert loads[1]["device_id"] == 1  # separated weights follow the model onto its pinned core
    # another torch-neuronx release where the package loads: refused before torch.jit.load, naming both
    older = run_python(
        "import demo_pkg.compiled",
        site,
        DOUBLES,
        env=double_env(log, TORCH_NEURONX_DOUBLE_CORES="2", TORCH_NEURONX_DOUBLE_VERSION="2.13.0.2.98.0"),
        check=False,
    )
    assert older.returncode != 0 and "older Neuron runtime refuses NEFFs of a newer compiler" in older.stderr
    assert "this is the older 2.13.0.2.98.0" in older.stderr
    assert "install torch-neuronx==2.13.0.2.99.0+testdouble" in older.stderr


def test_typed_options_in_flags_and_key() -> None:
    """In-process: the flags a NeuronOptions gives and that every typed option is part of the cache key
    (async-load and lazy-load add no flag, but change the saved module)."""
    from hatch_neuron.compile.neuron import NeuronTarget, compiler_args
    from hatch_neuron.compile.options import NeuronOptions

    base = NeuronOptions(["--optlevel", "3"], "inf2", False, {"optlevel": 3, "auto-cast": "all"})
    assert compiler_args(base) == ["--optlevel", "3", "--auto-cast", "all", "--target", "inf2"]
    keys = {
        repr(NeuronTarget().key_options(NeuronOptions(base.compiler_args, "inf2", False, chosen)))
        for chosen in (
            base.chosen,
            {**base.chosen, "auto-cast": "matmult"},
            {**base.chosen, "lazy-load": True},
        )
    }
    assert len(keys) == 3
