"""The compile cache: what is a hit and what is a miss, corruption, interrupted builds, concurrent builds,
byte-identical wheels, and ``hatch-neuron cache``. Every build is a real ``pip wheel`` of a small project.

How a model's artifacts were obtained is read off the build output: ``cached (files unchanged)`` (direct
hit: the factory did not even run), ``cached in`` (the traced computation's key was found) or
``compiled in``. Where the ``neuron`` target appears it runs against the torch_neuronx TEST DOUBLE.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DOUBLES, clean_env, make_project, pip_wheel, run, single_wheel

NETS = """
    import torch

    SEED = 0

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(SEED)
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            # a comment
            return torch.relu(self.lin(x.float()))

    def make():
        return Net().eval()
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]
    check = "off"

    [tool.neuron.models.net]
    factory = "demo_pkg.nets:make"
    inputs = [{ shape = [2, 4], dtype = "float32" }]
"""


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    return clean_env(**{"HATCH_NEURON_CACHE": "on", "HATCH_NEURON_CACHE_DIR": str(cache), **extra})


def build(project: Path, cache: Path, out: Path, **extra: str) -> str:
    result = pip_wheel(project, out, env=cache_env(cache, **extra))
    return result.stdout + result.stderr


def outcome(output: str, model: str = "net") -> str:
    for line in output.splitlines():
        if f"hatch-neuron: {model} [" in line:
            if "cached (files unchanged)" in line:
                return "direct"
            return "cached" if ": cached in" in line else "compiled"
    raise AssertionError(f"no artifact line for {model}:\n{output[-3000:]}")


def edit(project: Path, old: str, new: str, file: str = "demo_pkg/nets.py") -> None:
    path = project / file
    text = path.read_text()
    assert old in text, (old, file)
    path.write_text(text.replace(old, new))


@pytest.fixture
def warm(tmp_path: Path) -> tuple[Path, Path]:
    """A project built once into a fresh cache: (project, cache)."""
    project = make_project(tmp_path / "proj", NETS, TOML)
    cache = tmp_path / "cache"
    assert outcome(build(project, cache, tmp_path / "cold")) == "compiled"
    return project, cache


HITS = {
    "nothing": lambda p: None,
    "comment": lambda p: edit(p, "# a comment", "# another comment\n        # and one more line"),
    "unrelated file": lambda p: (p / "demo_pkg" / "notes.txt").write_text("unrelated"),
    "unrelated module": lambda p: (p / "demo_pkg" / "other.py").write_text("X = 1\n"),
    "neuron compiler args (the cpu target ignores them)": lambda p: edit(
        p, 'check = "off"', 'check = "off"\ncompiler-args = ["--optlevel", "1"]', "pyproject.toml"
    ),
}
MISSES = {
    "weights": lambda p: edit(p, "SEED = 0", "SEED = 1"),
    "graph": lambda p: edit(p, "torch.relu(", "torch.sigmoid("),
    "shape": lambda p: edit(p, "shape = [2, 4]", "shape = [3, 4]", "pyproject.toml"),
    "dtype": lambda p: edit(p, 'dtype = "float32"', 'dtype = "float64"', "pyproject.toml"),
}


@pytest.mark.parametrize("change", list(HITS))
def test_changes_that_keep_the_artifact_are_hits(
    warm: tuple[Path, Path], tmp_path: Path, change: str
) -> None:
    project, cache = warm
    HITS[change](project)
    output = build(project, cache, tmp_path / "warm")
    # the direct key holds what the model's targets read: neuron's compiler args are not the cpu target's
    direct = (
        "nothing",
        "unrelated file",
        "unrelated module",
        "neuron compiler args (the cpu target ignores them)",
    )
    expected = "direct" if change in direct else "cached"
    assert outcome(output) == expected, output[-3000:]


@pytest.mark.parametrize("change", list(MISSES))
def test_changes_to_the_computation_are_misses(warm: tuple[Path, Path], tmp_path: Path, change: str) -> None:
    project, cache = warm
    MISSES[change](project)
    assert outcome(build(project, cache, tmp_path / "warm")) == "compiled"


def test_another_checkout_folder_is_a_hit(warm: tuple[Path, Path], tmp_path: Path) -> None:
    project, cache = warm
    moved = shutil.copytree(project, tmp_path / "elsewhere" / "checkout")
    assert outcome(build(moved, cache, tmp_path / "warm")) == "direct"


def test_cache_off_and_verify(warm: tuple[Path, Path], tmp_path: Path) -> None:
    project, cache = warm
    assert outcome(build(project, cache, tmp_path / "a", HATCH_NEURON_CACHE="verify")) == "cached"
    assert outcome(build(project, cache, tmp_path / "b", HATCH_NEURON_CACHE="off")) == "compiled"


def _neuron_project(root: Path, args: str) -> Path:
    toml = TOML.replace(
        'targets = ["cpu"]', f'targets = ["neuron"]\nneuron-target = "inf2"\ncompiler-args = {args}'
    )
    return make_project(root, NETS, toml)


def _double_with_version(folder: Path, version: str) -> Path:
    """A copy of the torch_neuronx TEST DOUBLE that reports another version (another toolchain)."""
    copy = shutil.copytree(DOUBLES, folder)
    init = copy / "torch_neuronx" / "__init__.py"
    text = init.read_text()
    default = '"TORCH_NEURONX_DOUBLE_VERSION", "2.13.0.2.99.0+testdouble"'
    assert default in text, "the double's version line changed"
    init.write_text(text.replace(default, f'"TORCH_NEURONX_DOUBLE_VERSION", "{version}"'))
    return copy


def test_neuron_flags_and_toolchain_version_are_misses(tmp_path: Path) -> None:
    """Through the torch_neuronx TEST DOUBLE: a compiler flag or another torch-neuronx version recompiles."""
    cache = tmp_path / "cache"
    old = _double_with_version(tmp_path / "old", "2.13.0.2.99.0+testdouble")
    new = _double_with_version(tmp_path / "new", "2.13.0.2.100.0+testdouble")
    project = _neuron_project(tmp_path / "proj", '["--optlevel", "2"]')
    assert outcome(build(project, cache, tmp_path / "1", PYTHONPATH=str(old))) == "compiled"
    assert outcome(build(project, cache, tmp_path / "2", PYTHONPATH=str(old))) == "direct"
    assert outcome(build(project, cache, tmp_path / "3", PYTHONPATH=str(new))) == "compiled"
    edit(project, '"--optlevel", "2"', '"--optlevel", "1"', "pyproject.toml")
    assert outcome(build(project, cache, tmp_path / "4", PYTHONPATH=str(old))) == "compiled"


def _artifact_entries(cache: Path) -> list[Path]:
    return sorted((cache / "v1" / "artifacts").glob("*/*"))


@pytest.mark.quick
def test_corrupted_entry_is_detected_and_rebuilt(warm: tuple[Path, Path], tmp_path: Path) -> None:
    project, cache = warm
    [entry] = _artifact_entries(cache)
    artifact = entry / "artifact"
    artifact.write_bytes(artifact.read_bytes()[:-100])  # truncated
    output = build(project, cache, tmp_path / "warm")
    assert "does not match its sha256 (corrupted or truncated); removed" in output, output[-3000:]
    assert outcome(output) == "compiled"
    [rebuilt] = _artifact_entries(cache)
    meta = json.loads((rebuilt / "entry.json").read_text())
    assert (
        hashlib.sha256((rebuilt / "artifact").read_bytes()).hexdigest() == meta["files"]["artifact"]["sha256"]
    )
    assert outcome(build(project, cache, tmp_path / "again")) == "direct"


SLOW_NETS = NETS.replace(
    "    def make():\n",
    "    def make():\n        import os, time\n"
    "        if os.environ.get('DEMO_SLOW'):\n            open(os.environ['DEMO_SLOW'], 'w').close()\n"
    "            time.sleep(60)\n",
)


def test_build_killed_mid_compile_then_a_good_build(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", SLOW_NETS, TOML)
    cache, started = tmp_path / "cache", tmp_path / "started"
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        tmp_path / "k",
    ]
    pip = subprocess.Popen(
        [str(c) for c in [*command, project]],
        env=cache_env(cache, DEMO_SLOW=str(started)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists()
    os.killpg(pip.pid, signal.SIGKILL)  # the whole build, the worker included, at once
    pip.wait()
    assert _artifact_entries(cache) == []
    assert outcome(build(project, cache, tmp_path / "good")) == "compiled"
    assert len(_artifact_entries(cache)) == 1


@pytest.mark.slow
def test_concurrent_builds_share_a_cache(tmp_path: Path) -> None:
    """Eight builds of the same project at once, one cache: all succeed, one compiles, all agree."""
    project = make_project(tmp_path / "proj", NETS, TOML)
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
    builds = [
        subprocess.Popen(
            [
                str(c)
                for c in [*command, "-w", tmp_path / f"out{i}", shutil.copytree(project, tmp_path / f"p{i}")]
            ],
            env=cache_env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(8)
    ]
    outputs = [b.communicate(timeout=900)[0] for b in builds]
    assert all(b.returncode == 0 for b in builds), [o[-2000:] for o in outputs]
    outcomes = [outcome(o) for o in outputs]
    assert outcomes.count("compiled") == 1, outcomes
    digests = {hashlib.sha256(single_wheel(tmp_path / f"out{i}").read_bytes()).hexdigest() for i in range(8)}
    assert len(digests) == 1
    assert len(_artifact_entries(cache)) == 1


@pytest.mark.slow
def test_two_builds_in_different_folders_give_the_same_wheel(tmp_path: Path) -> None:
    """Reproducible wheels: separate caches (so both really compile), other folders, other times; and with
    SOURCE_DATE_EPOCH, which hatchling uses for the wheel's timestamps, the same again."""
    digests = []
    for i, epoch in enumerate([None, None, "1700000000", "1700000000"]):
        project = make_project(tmp_path / f"checkout{i}" / "src-tree", NETS, TOML)
        out = tmp_path / f"dist{i}"
        extra = {"SOURCE_DATE_EPOCH": epoch} if epoch else {}
        output = build(project, tmp_path / f"cache{i}", out, **extra)
        assert outcome(output) == "compiled"
        digests.append(hashlib.sha256(single_wheel(out).read_bytes()).hexdigest())
    assert digests[0] == digests[1] and digests[2] == digests[3]


def test_cache_commands(warm: tuple[Path, Path]) -> None:
    _, cache = warm
    cli = [sys.executable, "-m", "hatch_neuron", "cache", "--dir", cache]
    info = run([*cli, "info"]).stdout
    assert f"cache: {cache}" in info and "artifacts: 1," in info and "direct records: 1," in info
    listed = run([*cli, "list"]).stdout.splitlines()
    assert len(listed) == 2 and "artifact" in listed[0] + listed[1] and "net.cpu.pt" in "".join(listed)
    assert "removed 0 entries" in run([*cli, "prune", "--older-than", "30"]).stdout
    assert "removed 0 entries" in run([*cli, "prune", "--max-size", "1G"]).stdout
    assert "removed 2 entries" in run([*cli, "prune", "--max-size", "0"]).stdout
    run([*cli, "clear"])
    assert "artifacts: 0," in run([*cli, "info"]).stdout
    bad = run([*cli, "prune", "--max-size", "lots"], check=False)
    assert bad.returncode == 2 and "is not a size" in bad.stderr


def test_computation_digest_ignores_earlier_traces_in_the_process() -> None:
    """TorchScript mangles the type name of a module traced again (``___torch_mangle_<n>``): the key must
    not depend on what the worker traced before (a second worker would otherwise compile the job again)."""
    import torch

    from hatch_neuron.cache.keys import computation_digest

    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    first = computation_digest(torch.jit.trace(model, (torch.rand(4, 8),)))
    assert "___torch_mangle_" in str(torch.jit.trace(model, (torch.rand(1, 8),)).inlined_graph)
    assert computation_digest(torch.jit.trace(model, (torch.rand(4, 8),))) == first
