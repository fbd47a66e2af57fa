"""Target ``inductor`` (AOTInductor, native x86-64 code): built, installed, compared with eager; the wheel is
platform-tagged and pins the exact torch; the runtime refuses a CPU without the ISA (faked flags)."""

from __future__ import annotations

import hashlib
import json
import platform
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env, install, make_project, pip_wheel, run_json, run_python, single_wheel

from hatch_neuron.compile.inductor import InductorTarget
from hatch_neuron.compile.options import InductorOptions
from hatch_neuron.runtime.inductor import onednn_vector_isa

pytestmark = [
    pytest.mark.slow,  # an AOTInductor compile takes ~30 s here
    pytest.mark.skipif(platform.machine() != "x86_64", reason="inductor artifacts are built for x86-64"),
]

NETS = """
    import torch

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
"""

TOML = """
    [tool.neuron]
    targets = ["inductor", "cpu"]

    [tool.neuron.models.mlp]
    factory = "demo_pkg.nets:make"
    inputs = [{ shape = [4, 16] }]
    dynamic-batch = true
"""

FREEZE = {"freezing": True}

CALL = textwrap.dedent("""
    import json, torch
    import hatch_neuron.runtime as runtime
    from demo_pkg.compiled import mlp
    from demo_pkg.nets import make
    x = torch.rand(11, 16)
    with torch.no_grad():
        diff = (mlp(x) - make()(x)).abs().max().item()
    s = runtime.selection("demo_pkg")
    print(json.dumps({"target": s.target, "skipped": s.skipped, "diff": diff}))
""")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inductor")
    output = pip_wheel(make_project(root / "proj", NETS, TOML), root / "dist")
    assert "mlp [inductor dim0=4]: compiled in" in output.stdout + output.stderr
    wheel = single_wheel(root / "dist")
    return wheel, install(wheel, root / "site")


def test_wheel_is_platform_tagged_and_pins_torch(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    assert wheel.name.endswith("-linux_x86_64.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("demo_pkg-0.1.0.dist-info/METADATA").decode()
        assert "demo_pkg/_hatch_neuron/mlp.inductor.d0-4.pt2" in archive.namelist()
    import torch
    from packaging.version import Version

    assert f"Requires-Dist: torch=={Version(torch.__version__).public}" in metadata


def test_inductor_output_matches_eager(built: tuple[Path, Path]) -> None:
    report = run_json(CALL, built[1])
    assert report["target"] == "inductor" and report["skipped"] == {}
    assert report["diff"] < 1e-5


def test_cpu_without_the_isa_falls_back_or_refuses(built: tuple[Path, Path]) -> None:
    fake = "import hatch_neuron.runtime.inductor as t; t.cpu_flags = lambda: frozenset({'sse2'})\n"
    report = run_json(fake + CALL, built[1])
    assert report["target"] == "cpu" and report["diff"] < 1e-5
    assert report["skipped"] == {"inductor": "built for x86-64-v3 (AVX2, FMA), this CPU lacks avx2, fma"}
    forced = run_python(
        fake + "import demo_pkg.compiled",
        built[1],
        env=clean_env(HATCH_NEURON_TARGET="inductor"),
        check=False,
    )
    assert forced.returncode != 0
    assert "cannot load the inductor artifact: built for x86-64-v3 (AVX2, FMA), this CPU lacks avx2, fma" in (
        forced.stderr
    )


def test_other_torch_falls_back(built: tuple[Path, Path]) -> None:
    fake = "import torch; torch.__version__ = '2.99.0'\n"
    report = run_json(fake + CALL, built[1])
    assert report["target"] == "cpu"
    assert "native code needs the exact one" in report["skipped"]["inductor"]


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(),
    reason='inductor-device = "cuda" needs a GPU on the build host; this host has none',
)
def test_cuda_inductor_matches_eager(tmp_path: Path) -> None:
    toml = TOML.replace(
        'targets = ["inductor", "cpu"]', 'targets = ["inductor", "cpu"]\n    inductor-device = "cuda"'
    )
    project = make_project(tmp_path / "proj", NETS, toml)
    pip_wheel(project, tmp_path / "dist")
    site = install(single_wheel(tmp_path / "dist"), tmp_path / "site")
    report = run_json(CALL, site)
    assert report["target"] == "inductor" and report["diff"] < 1e-4
    on_gpu = run_python(
        CALL.replace("torch.rand(11, 16)", "torch.rand(11, 16).cuda()").replace(
            "make()(x)", "make().cuda()(x)"
        ),
        site,
    )
    assert on_gpu.returncode == 0


UNEXPORTABLE = """
    import torch

    class Window(torch.nn.Module):
        def forward(self, x):
            size = int(x.abs().sum() * 0 + 2)  # a value torch.export cannot prove, constant in fact
            return x[:, :size] * 2

    def make():
        return Window()
"""


def test_export_failure_is_the_inductor_targets_error_and_a_model_can_skip_it(tmp_path: Path) -> None:
    """Like Swin: torch.export fails although the TorchScript trace is exact. The check finds nothing
    (the value is the same for every input), the ``inductor`` job fails the build with torch's message and
    the model's line, and the model's own ``targets`` leave inductor out."""
    toml = TOML.replace('factory = "demo_pkg.nets:make"', 'factory = "demo_pkg.nets:make"', 1)
    toml = toml.replace(
        "inputs = [{ shape = [4, 16] }]\n    dynamic-batch = true", "inputs = [{ shape = [1, 4] }]"
    )
    project = make_project(tmp_path / "proj", UNEXPORTABLE, toml)
    failed = pip_wheel(project, tmp_path / "out", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0 and not list((tmp_path / "out").glob("*.whl"))
    assert "target inductor: torch.export cannot export this model (GuardOnDataDependentSymNode" in text
    assert 'nets.py", line 6' in text and "own targets = [...]" in text, text[-3000:]
    assert "pre-flight checks found" not in text
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '    targets = ["cpu"]\n')
    pip_wheel(project, tmp_path / "out2")
    site = install(single_wheel(tmp_path / "out2"), tmp_path / "site")
    diff = run_json(
        "import json, torch\nfrom demo_pkg import compiled, nets\nx = torch.randn(1, 4) * 100\n"
        "print(json.dumps((compiled.mlp(x) - nets.make()(x)).abs().max().item()))",
        site,
    )
    assert diff == 0.0


def with_configs(table: str) -> str:
    return TOML.replace(
        'targets = ["inductor", "cpu"]', f'targets = ["inductor", "cpu"]\n    inductor-configs = {table}'
    )


def test_inductor_configs_reach_aotinductor_and_the_key(tmp_path: Path) -> None:
    """``inductor-configs = { freezing = true }`` builds a model matching eager; the settings are part of
    the cache key; a name this torch's Inductor lacks fails the build before any model is imported."""
    default, frozen = (InductorTarget().key_options(InductorOptions(configs=c)) for c in ({}, FREEZE))
    assert frozen != default and frozen["freezing"] is True
    assert InductorTarget.configs(InductorOptions(configs=FREEZE))["cpp.march"] == "x86-64-v3"

    unknown = TOML.replace(
        'targets = ["inductor", "cpu"]',
        'targets = ["inductor", "cpu"]\n    inductor-configs = { no_such_setting = 1 }',
    )
    failed = pip_wheel(make_project(tmp_path / "bad", NETS, unknown), tmp_path / "bad-dist", check=False)
    assert failed.returncode != 0
    assert "'no_such_setting' is not a setting of torch" in failed.stdout + failed.stderr
    assert not list((tmp_path / "bad-dist").glob("*.whl"))

    toml = TOML.replace(
        'targets = ["inductor", "cpu"]',
        'targets = ["inductor", "cpu"]\n    inductor-configs = { freezing = true }',
    )
    pip_wheel(make_project(tmp_path / "proj", NETS, toml), tmp_path / "dist")
    report = run_json(CALL, install(single_wheel(tmp_path / "dist"), tmp_path / "site"))
    assert report["target"] == "inductor" and report["diff"] < 1e-5


REPRODUCIBLE_TOML = """
    [tool.neuron]
    targets = ["inductor"]

    [tool.neuron.models.mlp]
    factory = "demo_pkg.nets:make"
    inputs = [{ shape = [1, 16] }]
    batch-buckets = [1, 4]

    [tool.neuron.models.plain]
    factory = "demo_pkg.nets:make"
    targets = ["cpu"]
    inputs = [{ shape = [2, 16] }]

    [tool.neuron.models.cnn]
    factory = "demo_pkg.nets:make_cnn"
    inputs = [{ shape = [1, 3, 16, 16] }]
"""


def test_two_cold_builds_in_other_folders_give_the_same_wheel(tmp_path: Path) -> None:
    """Issue 19: inductor artifacts compile in a folder named after their key, so two cold builds (cache
    off, other checkouts, other cache folders, other times) of cpu + inductor models give one wheel; a
    frozen CNN's (freezing: the default for convolutions) included."""
    digests = []
    for i in range(2):
        nets = NETS + CNN_NETS.replace("def make()", "def make_cnn()").replace("import torch\n", "", 1)
        project = make_project(tmp_path / f"checkout-{i}" / ("x" * (i + 1)), nets, REPRODUCIBLE_TOML)
        env = clean_env(SOURCE_DATE_EPOCH="1700000000", HATCH_NEURON_CACHE_DIR=str(tmp_path / f"cache-{i}"))
        output = pip_wheel(project, tmp_path / f"dist-{i}", env=env)
        assert "mlp [inductor dim0=4]: compiled in" in output.stdout + output.stderr
        wheel = single_wheel(tmp_path / f"dist-{i}")
        digests.append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    print("wheel sha256:", digests)
    assert digests[0] == digests[1]
    with zipfile.ZipFile(wheel) as archive:
        assert sum(n.endswith(".pt2") for n in archive.namelist()) == 3
        manifest = archive.read("demo_pkg/_hatch_neuron/manifest.json").decode()
        assert '"reproducible": false' not in manifest and '"inductor_configs_added"' in manifest


CNN_NETS = """
    import torch

    def make():
        torch.manual_seed(0)
        layers = [torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
"""

CNN_TOML = """
    [tool.neuron]
    targets = ["inductor"]

    [tool.neuron.models.cnn]
    factory = "demo_pkg.nets:make"
    inputs = [{ shape = [2, 3, 16, 16] }]
"""

CNN_CALL = textwrap.dedent("""
    import json, warnings, torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from demo_pkg.compiled import cnn
    from demo_pkg.nets import make
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        diff = (cnn(x) - make()(x)).abs().max().item()
    print(json.dumps({"diff": diff, "warnings": [str(w.message) for w in caught]}))
""")


def artifact_details(site: Path) -> dict:
    manifest = json.loads((site / "demo_pkg" / "_hatch_neuron" / "manifest.json").read_text())
    (model,) = manifest["models"].values()
    (artifact,) = model["artifacts"]["inductor"]
    return artifact


def test_convolutions_freeze_by_default_and_prepacking_is_tied_to_the_cpu(tmp_path: Path) -> None:
    """A CNN compiles with freezing and unpacked weights unless the project says otherwise (the manifest
    records what was added); weights prepacked on request are tied to the build CPU's oneDNN kernels,
    and loading them where oneDNN runs others warns (emulated with ONEDNN_MAX_CPU_ISA)."""
    pip_wheel(make_project(tmp_path / "auto", CNN_NETS, CNN_TOML), tmp_path / "auto-dist")
    site = install(single_wheel(tmp_path / "auto-dist"), tmp_path / "auto-site")
    details = artifact_details(site)
    assert details["inductor_configs_added"] == {"freezing": True, "cpp.weight_prepack": False}
    assert "prepacked_for" not in details
    report = run_json(CNN_CALL, site)
    assert report["diff"] < 1e-5 and report["warnings"] == []

    packed = CNN_TOML.replace(
        'targets = ["inductor"]',
        'targets = ["inductor"]\n    inductor-configs = { "cpp.weight_prepack" = true }',
    )
    pip_wheel(make_project(tmp_path / "packed", CNN_NETS, packed), tmp_path / "packed-dist")
    site = install(single_wheel(tmp_path / "packed-dist"), tmp_path / "packed-site")
    built_for = artifact_details(site)["prepacked_for"]
    assert built_for == onednn_vector_isa()
    other = {"avx512": "AVX2", "avx2": "AVX"}.get(built_for, "SSE41")
    report = run_json(CNN_CALL, site, env=clean_env(ONEDNN_MAX_CPU_ISA=other))
    assert report["diff"] < 1e-5
    assert any(f"prepacked for {built_for} CPUs" in w for w in report["warnings"]), report
