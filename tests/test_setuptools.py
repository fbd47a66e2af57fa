"""The setuptools adapter (hatch_neuron/package/setuptools_hook.py): tests/projects/setuptools_twin, a
setuptools project with example_project's nets and no setup.py, built with real frontends (cpu target),
installed elsewhere and compared with eager and with the same project built by Hatchling; the adapter's
metadata, tagging and command handling against a stand-in for the pipeline; failures."""

from __future__ import annotations

import json
import platform
import sys
import tarfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import (
    SETUPTOOLS,
    TWIN,
    TWIN_PACKAGE,
    assert_wheel_hygiene,
    clean_env,
    copy_twin,
    install,
    pip_wheel,
    run,
    run_json,
    run_python,
    single_wheel,
)

from hatch_neuron import __version__
from hatch_neuron.compile.scheduler import torch_version
from hatch_neuron.package.pipeline import release_line

PACKAGE = TWIN_PACKAGE
DIST_INFO = "setuptools_twin-1.0.0.dist-info"
ARTIFACTS = ["conv.cpu.pt", "encoder.cpu.d1-8.pt", "manifest.json"]  # the d1-16 bucket shares d1-8's bytes
PINS = [f"hatch-neuron>={__version__}", release_line("torch", torch_version())]
SOURCES = [f"{PACKAGE}/__init__.py", f"{PACKAGE}/nets.py"]
GENERATED = [f"{PACKAGE}/compiled.py"] + [f"{PACKAGE}/_hatch_neuron/{name}" for name in ARTIFACTS]
CPU = clean_env(HATCH_NEURON_TARGETS="cpu")


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def metadata(files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(Requires-Dist, Dynamic) of the wheel's METADATA."""
    (name,) = [n for n in files if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(files[name].decode())
    return message.get_all("Requires-Dist") or [], message.get_all("Dynamic") or []


def package_files(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name.startswith(f"{PACKAGE}/")}


@pytest.fixture(scope="module")
def twin_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The twin built by ``pip wheel --no-build-isolation`` for the cpu target: (wheel, build output)."""
    root = tmp_path_factory.mktemp("twin")
    result = pip_wheel(copy_twin(root / "proj"), root / "dist", env=CPU)
    assert not (root / "proj" / "build" / "lib" / PACKAGE / "_hatch_neuron").exists()  # removed after use
    assert not (root / "proj" / "build" / "lib" / PACKAGE / "compiled.py").exists()
    return single_wheel(root / "dist"), result.stdout + result.stderr


@pytest.fixture(scope="module")
def twin_site(twin_build: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(twin_build[0], tmp_path_factory.mktemp("twin-site"))


@pytest.mark.quick
def test_wheel_hygiene(twin_build: tuple[Path, str]) -> None:
    assert_wheel_hygiene(twin_build[0])


def test_twin_needs_no_setup_py() -> None:
    assert not (TWIN / "setup.py").exists() and not (TWIN / "setup.cfg").exists()


def test_models_match_eager(twin_site: Path) -> None:
    report = run_json(
        """
        import json, torch
        from twin_models import nets
        import twin_models.compiled as compiled
        torch.manual_seed(123)
        cases = {
            "conv": (compiled.conv, nets.make_conv(), (torch.rand(1, 1, 3, 3),)),
            "encoder": (compiled.encoder, nets.make_encoder(), (torch.randint(0, 1000, (1, 16)),
                        torch.tensor([[1] * 10 + [0] * 6]))),
            "encoder_length_5": (compiled.encoder, nets.make_encoder(), (torch.randint(0, 1000, (1, 5)),
                                 torch.ones(1, 5, dtype=torch.int64))),
            "encoder_length_11": (compiled.encoder, nets.make_encoder(), (torch.randint(0, 1000, (1, 11)),
                                  torch.tensor([[1] * 9 + [0] * 2]))),
        }
        report = {"module_file": compiled.__file__, "names": compiled.__all__}
        for name, (model, eager, inputs) in cases.items():
            with torch.no_grad():
                got, want = model(*inputs), eager(*inputs)
            pairs = [(got[k], want[k]) for k in want] if isinstance(want, dict) else [(got, want)]
            report[name] = {
                "diff": max((g - w).abs().max().item() for g, w in pairs),
                "shapes": [[list(g.shape), list(w.shape)] for g, w in pairs],
                "target": model.target,
            }
        print(json.dumps(report))
        """,
        twin_site,
    )
    assert report["module_file"].startswith(str(twin_site))  # the installed wheel, not the source tree
    assert report["names"] == ["conv", "encoder"]
    for name in ("conv", "encoder", "encoder_length_5", "encoder_length_11"):
        assert report[name]["target"] == "cpu"
        assert all(got == want for got, want in report[name]["shapes"]), (name, report[name])
        assert report[name]["diff"] <= 1e-5, (name, report[name])


def test_wheel_contents_and_metadata(twin_build: tuple[Path, str]) -> None:
    wheel, output = twin_build
    assert wheel.name == "setuptools_twin-1.0.0-py3-none-any.whl"
    files = wheel_files(wheel)
    assert sorted(package_files(files)) == sorted(SOURCES + GENERATED)
    requires, dynamic = metadata(files)
    assert requires == ["torch", *PINS]  # the project's own (static) dependencies first, then the pins
    assert dynamic == ["requires-dist"]  # what setuptools writes for a value a plugin changed
    assert b"Root-Is-Purelib: true" in files[f"{DIST_INFO}/WHEEL"]
    generated = files[f"{PACKAGE}/compiled.py"].decode()
    assert "load('twin_models', 'encoder', lazy=False)" in generated
    for line in ("conv [cpu]: compiled in", "encoder [cpu dim1=8]: compiled in", "3 artifact(s) compiled"):
        assert f"hatch-neuron: {line}" in output


def test_same_wheel_contents_as_hatchling(twin_build: tuple[Path, str], tmp_path: Path) -> None:
    """The same project built by Hatchling: byte-identical artifacts, manifest and generated module, and
    the same pins."""
    pip_wheel(copy_twin(tmp_path / "proj", backend="hatchling"), tmp_path / "dist", env=CPU)
    hatchling = wheel_files(single_wheel(tmp_path / "dist"))
    setuptools = wheel_files(twin_build[0])
    assert package_files(setuptools) == package_files(hatchling)
    assert sorted(metadata(setuptools)[0]) == sorted(metadata(hatchling)[0])


def test_without_neuron_table_the_wheel_is_plain(tmp_path: Path) -> None:
    result = pip_wheel(copy_twin(tmp_path / "proj", neuron=False), tmp_path / "dist", env=CPU)
    wheel = single_wheel(tmp_path / "dist")
    assert wheel.name == "setuptools_twin-1.0.0-py3-none-any.whl"
    files = wheel_files(wheel)
    assert sorted(package_files(files)) == SOURCES
    assert metadata(files) == (["torch"], [])
    assert "hatch-neuron" not in result.stdout + result.stderr


HOOK_PROBE = """
    import json, sys
    import setuptools
    from setuptools.command.bdist_wheel import bdist_wheel
    from setuptools.dist import Distribution
    dist = Distribution()
    dist.parse_config_files()
    cls = dist.get_command_class("bdist_wheel")
    print(json.dumps({
        "stock": cls is bdist_wheel,
        "mro": [c.__name__ for c in cls.__mro__][:3],
        "torch": "torch" in sys.modules,
        "sdist": dist.get_command_class("sdist").__module__,
    }))
"""


@pytest.mark.parametrize("neuron", [False, True])
def test_hook_is_cheap_and_inert_without_neuron_table(tmp_path: Path, neuron: bool) -> None:
    project = copy_twin(tmp_path / "proj", neuron=neuron)
    report = run_json(HOOK_PROBE, project)
    assert report["torch"] is False  # the hook itself never imports torch
    assert report["sdist"] == "setuptools.command.sdist"
    if neuron:
        assert report["mro"] == ["bdist_wheel", "NeuronWheel", "_NeuronCommand"]
    else:
        assert report["stock"] is True


def test_sdist_then_wheel_from_it(twin_build: tuple[Path, str], tmp_path: Path) -> None:
    project = copy_twin(tmp_path / "proj")
    result = run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path / "sdist", project],
        env=CPU,
    )
    assert "hatch-neuron:" not in result.stdout + result.stderr  # nothing compiled for an sdist
    (sdist,) = (tmp_path / "sdist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.partition("/")[2] for name in archive.getnames()]
        pkg_info = archive.extractfile("setuptools_twin-1.0.0/PKG-INFO").read().decode()  # type: ignore[union-attr]
    for name in ("pyproject.toml", *SOURCES):
        assert name in names, names
    assert not any("_hatch_neuron" in n or n.endswith((".pt", "compiled.py")) for n in names), names
    assert Parser().parsestr(pkg_info).get_all("Requires-Dist") == ["torch"]
    pip_wheel(sdist, tmp_path / "dist", env=CPU)
    files = wheel_files(single_wheel(tmp_path / "dist"))
    assert package_files(files) == package_files(wheel_files(twin_build[0]))  # same bytes as from the tree
    assert metadata(files)[0] == ["torch", *PINS]


# The adapter against a stand-in for the pipeline (no compile): PEP 517 hooks called in one process the way
# pip calls them, with setuptools' deprecation warnings as errors.

FAKE_BUILD = """
    import json, sys, tempfile, warnings, zipfile
    from pathlib import Path
    from setuptools import build_meta
    from setuptools.warnings import SetuptoolsDeprecationWarning
    from hatch_neuron.package import pipeline
    from hatch_neuron.runtime.schema import Manifest

    warnings.simplefilter("error", SetuptoolsDeprecationWarning)
    calls = []

    def fake_build_staged(root, project_name, log, editable=False):
        calls.append((project_name, editable))
        staging = Path(tempfile.mkdtemp(prefix="hatch-neuron-"))
        (staging / "manifest.json").write_text("{}")
        (staging / "compiled.py").write_text("# generated")
        files = {
            "demo_pkg/_hatch_neuron/manifest.json": str(staging / "manifest.json"),
            "demo_pkg/compiled.py": str(staging / "compiled.py"),
        }
        pins = ["hatch-neuron>=0.1.0", "torch==2.13.*"]
        manifest = Manifest(package="demo_pkg")
        return pipeline.BuildResult(files, pins, manifest, PLATFORM_SPECIFIC), staging

    def read(folder, wheel):
        with zipfile.ZipFile(folder / wheel) as archive:
            info = "demo_pkg-0.1.0.dist-info"
            return {
                "wheel": wheel,
                "names": sorted(archive.namelist()),
                "metadata": archive.read(f"{info}/METADATA").decode(),
                "WHEEL": archive.read(f"{info}/WHEEL").decode(),
            }

    pipeline.build_staged = fake_build_staged
    out, meta, frontend = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    report = {}
    if frontend == "pip":  # metadata first, and its folder passed on (bdist_wheel --dist-info-dir)
        build_meta.build_sdist(str(out / "sdist"))
        report["sdist"] = len(calls)
        editable = build_meta.build_editable(str(out / "editable"))
        report["editable"] = calls[-1:]
        report["editable_built"] = read(out / "editable", editable)
        meta.mkdir(parents=True)
        name = build_meta.prepare_metadata_for_build_wheel(str(meta))
        report["metadata"] = len(calls)
        wheel = build_meta.build_wheel(str(out / "pip"), metadata_directory=str(meta / name))
    else:  # python -m build: no metadata folder
        wheel = build_meta.build_wheel(str(out / "build"))
    report["wheel"] = len(calls)
    report["built"] = read(out / frontend, wheel)
    report["left"] = sorted(
        str(p) for p in Path("build").rglob("*") if "_hatch_neuron" in p.parts or p.name == "compiled.py"
    )
    report["temp"] = sorted(p.name for p in Path(tempfile.gettempdir()).glob("hatch-neuron-*"))
    report["custom"] = Path("custom-ran").exists()
    print(json.dumps(report))
"""


def fake_build(tmp_path: Path, project_table: str, tool_tables: str, platform_specific: bool) -> dict:
    """Build a one-package setuptools project with ``[tool.neuron]`` through the PEP 517 hooks, with
    ``pipeline.build_staged`` replaced by a stand-in; return what :data:`FAKE_BUILD` reports."""
    project = tmp_path / "proj"
    (project / "demo_pkg").mkdir(parents=True)
    (project / "demo_pkg" / "__init__.py").write_text("")
    (project / "requirements.txt").write_text("numpy>=1.20\n")
    (project / "custom_cmd.py").write_text(CUSTOM_WHEEL)
    (project / "pyproject.toml").write_text(
        SETUPTOOLS
        + f'\n[project]\nname = "demo-pkg"\nversion = "0.1.0"\n{project_table}\n{tool_tables}\n'
        + '[tool.neuron]\ntargets = ["cpu"]\n'
    )
    (tmp_path / "tmp").mkdir()
    code = textwrap.dedent(FAKE_BUILD).replace("PLATFORM_SPECIFIC", str(platform_specific))
    env = clean_env(TMPDIR=str(tmp_path / "tmp"))
    report = {}
    for frontend in ("pip", "build"):  # each in its own process, as frontends do (distutils caches paths)
        cmd = [sys.executable, "-c", code, tmp_path / "out", tmp_path / "meta", frontend]
        output = run(cmd, env=env, cwd=project)
        report[frontend] = json.loads(output.stdout.strip().splitlines()[-1])
    return report


CUSTOM_WHEEL = """\
from pathlib import Path
from setuptools.command.bdist_wheel import bdist_wheel


class Wheel(bdist_wheel):
    def run(self):
        Path("custom-ran").write_text("")
        super().run()
"""

DEPENDENCIES = {
    "static": ('dependencies = ["numpy>=1.20"]\n', "", ["numpy>=1.20"]),
    "static-empty": ("dependencies = []\n", "", []),
    "absent": ("", "", []),
    "dynamic": (
        'dynamic = ["dependencies"]\n',
        '[tool.setuptools.dynamic]\ndependencies = { file = ["requirements.txt"] }\n',
        ["numpy>=1.20"],
    ),
}


@pytest.mark.parametrize("platform_specific", [False, True], ids=["pure", "platform"])
@pytest.mark.parametrize("declared", list(DEPENDENCIES))
def test_adapter_metadata_and_tag(tmp_path: Path, declared: str, platform_specific: bool) -> None:
    project_table, tool_tables, own = DEPENDENCIES[declared]
    report = fake_build(tmp_path, project_table, tool_tables, platform_specific)
    pip, build = report["pip"], report["build"]
    # compiled for the wheels only (the editable one too): not for the sdist or the prepared metadata
    assert (pip["sdist"], pip["editable"], pip["metadata"], pip["wheel"]) == (0, [["demo-pkg", True]], 1, 2)
    assert build["wheel"] == 1
    for each in (pip, build):
        assert each["left"] == [] and each["temp"] == []  # nothing left in build/ or the temp folder
    assert pip["built"]["metadata"] == build["built"]["metadata"]
    assert pip["built"]["names"] == build["built"]["names"]
    built = pip["built"]
    message = Parser().parsestr(built["metadata"])
    assert message.get_all("Requires-Dist") == [*own, "hatch-neuron>=0.1.0", "torch==2.13.*"]
    assert message.get_all("Dynamic") == ["requires-dist"]
    assert "demo_pkg/compiled.py" in built["names"]
    assert "demo_pkg/_hatch_neuron/manifest.json" in built["names"]
    assert not any(".data/" in name for name in built["names"])  # at the root of the wheel, not in .data
    editable = pip["editable_built"]  # the same files and pins in the editable wheel
    assert Parser().parsestr(editable["metadata"]).get_all("Requires-Dist") == message.get_all(
        "Requires-Dist"
    )
    assert {"demo_pkg/compiled.py", "demo_pkg/_hatch_neuron/manifest.json"} <= set(editable["names"])
    if platform_specific:
        impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
        assert built["wheel"].startswith(f"demo_pkg-0.1.0-{impl}-{impl}-linux_"), built["wheel"]
        assert "Root-Is-Purelib: false" in built["WHEEL"]
    else:
        assert built["wheel"] == "demo_pkg-0.1.0-py3-none-any.whl"
        assert "Root-Is-Purelib: true" in built["WHEEL"]


def test_adapter_keeps_the_projects_own_bdist_wheel(tmp_path: Path) -> None:
    """A ``bdist_wheel`` from ``[tool.setuptools.cmdclass]`` (applied after the hook ran) still compiles."""
    tables = '[tool.setuptools.cmdclass]\nbdist_wheel = "custom_cmd.Wheel"\n'
    report = fake_build(tmp_path, "dependencies = []\n", tables, False)["pip"]
    assert report["custom"] is True and report["wheel"] == 2  # the editable wheel, then this one
    assert "demo_pkg/compiled.py" in report["built"]["names"]


# Failures: no wheel, the message without a stack of setuptools frames, nothing left behind.


def make_setuptools_project(root: Path, nets: str, neuron_toml: str) -> Path:
    (root / "demo_pkg").mkdir(parents=True)
    (root / "demo_pkg" / "__init__.py").write_text("")
    (root / "demo_pkg" / "nets.py").write_text(textwrap.dedent(nets))
    (root / "pyproject.toml").write_text(
        SETUPTOOLS + '\n[project]\nname = "demo-pkg"\nversion = "0.1.0"\n\n' + textwrap.dedent(neuron_toml)
    )
    return root


FAILURES = {
    "factory": (
        "def make():\n    raise RuntimeError('weights not found')\n",
        'dtype = "float32"',
        ["error: hatch-neuron: model 'boom'", "weights not found"],
    ),
    "config": (
        "def make():\n    return lambda x: x\n",
        'dtype = "float"',
        ["error: hatch-neuron: ", "pyproject.toml: tool.neuron.models.boom.inputs[0].dtype: string 'float'"],
    ),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failed_build_leaves_no_wheel(tmp_path: Path, kind: str) -> None:
    nets, dtype, messages = FAILURES[kind]
    toml = f"""
        [tool.neuron]
        targets = ["cpu"]

        [tool.neuron.models.boom]
        factory = "demo_pkg.nets:make"
        inputs = [{{ shape = [4], {dtype} }}]
    """
    project = make_setuptools_project(tmp_path / "proj", nets, toml)
    (tmp_path / "tmp").mkdir()
    result = pip_wheel(project, tmp_path / "dist", env=clean_env(TMPDIR=str(tmp_path / "tmp")), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert list((tmp_path / "dist").glob("*.whl")) == []
    for message in messages:
        assert message in output, output[-4000:]
    assert "setuptools/" not in output and "setuptools_hook" not in output  # no stack of build frames
    assert list((tmp_path / "tmp").glob("hatch-neuron-*")) == []
    assert not list(project.rglob("_hatch_neuron")) and not list(project.rglob("compiled.py"))


@pytest.mark.slow  # an AOTInductor compile takes ~30 s here
@pytest.mark.skipif(platform.machine() != "x86_64", reason="inductor artifacts are built for x86-64")
def test_inductor_wheel_is_platform_tagged(tmp_path: Path) -> None:
    nets = """
        import torch

        def make():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    """
    toml = """
        [tool.neuron]
        targets = ["inductor"]

        [tool.neuron.models.mlp]
        factory = "demo_pkg.nets:make"
        inputs = [{ shape = [2, 16] }]
    """
    pip_wheel(make_setuptools_project(tmp_path / "proj", nets, toml), tmp_path / "dist")
    wheel = single_wheel(tmp_path / "dist")
    impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name == f"demo_pkg-0.1.0-{impl}-{impl}-linux_x86_64.whl", wheel.name
    files = wheel_files(wheel)
    assert "demo_pkg/_hatch_neuron/mlp.inductor.pt2" in files, sorted(files)
    assert b"Root-Is-Purelib: false" in files["demo_pkg-0.1.0.dist-info/WHEEL"]
    from packaging.version import Version

    assert metadata(files)[0] == [f"hatch-neuron>={__version__}", f"torch=={Version(torch_version()).public}"]
    site = install(wheel, tmp_path / "site")
    result = run_python(
        """
        import torch
        from demo_pkg.compiled import mlp
        from demo_pkg.nets import make
        x = torch.rand(2, 16)
        with torch.no_grad():
            print("diff", (mlp(x) - make()(x)).abs().max().item(), mlp.target)
        """,
        site,
    )
    _, diff, target = result.stdout.split()
    assert target == "inductor" and float(diff) < 1e-5
