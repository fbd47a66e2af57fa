"""Odd input never ships a broken wheel (issue 12): stale or misplaced cache entries, look-alike model
names, a ``package`` that is not the project's, generated names that shadow the package's files, cache
folders that fail, and one-line build errors under Hatchling.

The in-process tests (the quick loop) call the config, plan and cache pieces directly; the others,
marked ``slow`` (CI runs them), are real ``pip wheel --no-build-isolation`` builds of small projects
(``cpu`` target), installed and imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, install, make_project, pip_wheel, run, run_json, single_wheel

from hatch_neuron.cache import CorruptEntry, LocalCache
from hatch_neuron.config import ConfigError
from hatch_neuron.config.parse import settings_from_table, tomllib
from hatch_neuron.package import pipeline
from hatch_neuron.package.hatch_hook import hook_table_problem
from hatch_neuron.plan import MANY_ARTIFACTS, make_plan, plan_warnings

NETS = """
    import torch

    class Net(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(4, 3)
            self.scale = scale

        def forward(self, x):
            return torch.relu(self.lin(x)) * self.scale

    def make_a():
        return Net(1.0).eval()

    def make_b():
        return Net(2.0).eval()
"""

TOML = """
    [tool.neuron]
    targets = ["cpu"]
    check = "off"

    [tool.neuron.models.a]
    factory = "demo_pkg.nets:make_a"
    inputs = [{ shape = [2, 4] }]

    [tool.neuron.models.b]
    factory = "demo_pkg.nets:make_b"
    inputs = [{ shape = [2, 4] }]
"""

#: Imports the installed package's compiled models and compares them with eager.
CHECK = """
    import json, torch
    from demo_pkg import compiled, nets
    x = torch.randn(2, 4)
    diffs = {n: (getattr(compiled, n)(x) - getattr(nets, "make_" + n)()(x)).abs().max().item() for n in "ab"}
    print(json.dumps(diffs))
"""


def minimal_model() -> dict[str, object]:
    return {"factory": "pkg.nets:make", "inputs": [{"shape": [1, 4]}]}


# -- in-process: config, plan, package checks ----------------------------------------------------------


def test_lookalike_model_names_are_duplicates() -> None:
    """``ｍodel`` (fullwidth m) is ``model`` to Python (NFKC): an import would get the other model."""
    table = {"models": {"model": minimal_model(), "ｍodel": minimal_model()}}
    with pytest.raises(ConfigError) as info:
        settings_from_table(table, {})
    assert info.value.path == "tool.neuron.models.ｍodel"
    assert "duplicate model name: 'ｍodel' and 'model' are the same name to Python" in str(info.value)
    assert "NFKC" in str(info.value)


def test_casefolded_model_names_are_duplicates() -> None:
    table = {"models": {"strasse": minimal_model(), "STRASSE": minimal_model()}}
    with pytest.raises(ConfigError, match="differ only in case"):
        settings_from_table(table, {})


def _project(tmp_path: Path, neuron: str) -> Path:
    return make_project(tmp_path / "proj", NETS, neuron)


def _build_in_process(project: Path) -> None:
    staging = project.parent / "staging"
    staging.mkdir()
    pipeline.build(project, staging, "demo-pkg", lambda line: None)


def test_package_of_another_distribution_is_refused(tmp_path: Path) -> None:
    """``package = "hatch_neuron"``, ``module = "cli"`` would overwrite hatch-neuron's own cli.py."""
    project = _project(tmp_path, TOML.replace('check = "off"', 'check = "off"\npackage = "hatch_neuron"'))
    with pytest.raises(ConfigError) as info:
        _build_in_process(project)
    message = str(info.value)
    assert info.value.path == "tool.neuron.package"
    assert "'hatch_neuron' is not a package of this project" in message
    assert str(project / "pyproject.toml") in message


@pytest.mark.parametrize(
    "shadow",
    ["compiled.py", "compiled/__init__.py", "compiled.cpython-311-x86_64-linux-gnu.so", "_hatch_neuron/x"],
)
def test_generated_names_may_not_shadow_package_files(tmp_path: Path, shadow: str) -> None:
    project = _project(tmp_path, TOML)
    path = project / "demo_pkg" / shadow
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    with pytest.raises(ConfigError) as info:
        _build_in_process(project)
    assert info.value.path == "tool.neuron.module"
    assert "exists in the source tree" in str(info.value)


def test_many_buckets_and_huge_inputs_warn(tmp_path: Path) -> None:
    table = {
        "targets": ["cpu"],
        "models": {
            "many": {
                "factory": "demo_pkg.nets:make_a",
                "inputs": [{"shape": [4, 128, 64]}],
                "batch-buckets": list(range(1, 9)),
                "buckets": {"1": list(range(8, 129, 8))},
            },
            "huge": {"factory": "demo_pkg.nets:make_a", "inputs": [{"shape": [1 << 16, 1 << 13]}]},
            "fine": {"factory": "demo_pkg.nets:make_a", "inputs": [{"shape": [2, 4]}]},
        },
    }
    warnings = plan_warnings(make_plan(settings_from_table(table, {}), _project(tmp_path, TOML)))
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("many: 128 artifacts to compile (128 bucket combinations x 1 target(s))")
    assert MANY_ARTIFACTS < 128
    assert warnings[1].startswith("huge: inputs[0] [65536, 8192] float32 is 2.0 GiB")


# -- in-process: the cache store ------------------------------------------------------------------------


def _store(cache: LocalCache, key: str, tmp_path: Path, data: bytes) -> None:
    source = tmp_path / f"src-{key}"
    source.write_bytes(data)
    cache.store(key, {"artifact": source}, {"facts": {}})


def test_entry_under_another_key_is_corrupt_and_removed(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    key_a, key_b = "aa" + "0" * 62, "bb" + "1" * 62
    _store(cache, key_a, tmp_path, b"artifact of a")
    cache.entry_dir(key_b).parent.mkdir(parents=True)
    shutil.move(cache.entry_dir(key_a), cache.entry_dir(key_b))  # files and entry.json, intact
    with pytest.raises(CorruptEntry, match="belongs to another key"):
        cache.fetch(key_b, {"artifact": tmp_path / "out"})
    assert not cache.entry_dir(key_b).exists() and not (tmp_path / "out").exists()


def test_prune_removes_lock_files_with_their_entries(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    keys = ["ab" + str(i) * 62 for i in range(3)]
    for key in keys:
        _store(cache, key, tmp_path, key.encode())
        with cache.lock(key):
            pass
    held = cache.lock("cd" + "9" * 62)  # a build compiling a key that has no entry yet
    with held:
        cache.prune(max_size=0)
        locks = sorted(p.stem for p in (cache.base / "locks").glob("*.lock"))
    assert locks == ["cd" + "9" * 62]
    cache.prune()
    assert list((cache.base / "locks").glob("*.lock")) == []


def test_cache_folder_that_is_a_file_fails_the_probe(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        LocalCache(tmp_path / "file").probe()
    LocalCache(tmp_path / "fine").probe()


# -- real builds --------------------------------------------------------------------------------------


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    return clean_env(**{"HATCH_NEURON_CACHE": "on", "HATCH_NEURON_CACHE_DIR": str(cache), **extra})


def build(project: Path, out: Path, env: dict[str, str]) -> str:
    result = pip_wheel(project, out, env=env)
    return result.stdout + result.stderr


def installed_diffs(out: Path, site: Path) -> dict[str, float]:
    diffs = run_json(CHECK, install(single_wheel(out), site))
    assert isinstance(diffs, dict)
    return diffs


def entries(cache: Path) -> dict[str, Path]:
    """Model name -> its (one) artifact entry folder."""
    found = {}
    for folder in (cache / "v1" / "artifacts").glob("*/*"):
        description = json.loads((folder / "entry.json").read_text())["description"]
        found[description.split()[1].split(".")[0]] = folder
    return found


def rewrite_entry(folder: Path, data: bytes) -> None:
    """Give an entry other artifact bytes with a consistent entry.json (a self-consistent entry)."""
    (folder / "artifact").write_bytes(data)
    meta = json.loads((folder / "entry.json").read_text())
    meta["files"]["artifact"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "entry.json").write_text(json.dumps(meta))


def resaved(artifact: Path) -> bytes:
    """The same TorchScript module saved again by torch.jit.save: other bytes (a new serialization id)."""
    code = f"""
        import io, sys, torch
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.load({str(artifact)!r}), buffer)
        sys.stdout.buffer.write(buffer.getvalue())
    """
    result = subprocess.run([sys.executable, "-c", code.replace("\n        ", "\n")], capture_output=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_direct_record_whose_entry_bytes_changed(tmp_path: Path) -> None:
    """Repro 1: a direct record's sha256 no longer describes the entry's bytes (the entry was compiled
    again). The record is dropped, the job looked up by its key and verified; the wheel imports."""
    project, cache = _project(tmp_path, TOML), tmp_path / "cache"
    build(project, tmp_path / "cold", cache_env(cache))
    folder = entries(cache)["a"]
    rewrite_entry(folder, resaved(folder / "artifact"))
    output = build(project, tmp_path / "warm", cache_env(cache))
    assert "a [cpu]: cached in" in output and "b [cpu]: cached (files unchanged)" in output, output[-3000:]
    assert max(installed_diffs(tmp_path / "warm", tmp_path / "site").values()) < 1e-5
    inspect = run([Path(sys.executable).parent / "hatch-neuron", "inspect", single_wheel(tmp_path / "warm")])
    assert "MISMATCH" not in inspect.stdout
    assert "a [cpu]: cached (files unchanged)" in build(project, tmp_path / "again", cache_env(cache))


@pytest.mark.slow
def test_entries_swapped_between_keys(tmp_path: Path) -> None:
    """Repro 1b: whole entries (files + entry.json) moved under each other's keys: both are cache faults,
    removed and compiled again; the wheel computes what eager does."""
    project, cache = _project(tmp_path, TOML), tmp_path / "cache"
    build(project, tmp_path / "cold", cache_env(cache))
    found = entries(cache)
    swap = found["a"].with_name("swap")
    found["a"].rename(swap)
    found["b"].rename(found["a"])
    swap.rename(found["b"])
    for mode in ("on", "verify"):
        output = build(project, tmp_path / mode, cache_env(cache, HATCH_NEURON_CACHE=mode))
        if mode == "on":
            assert output.count("belongs to another key or is malformed") == 2, output[-3000:]
            assert output.count("compiled in") == 2
        assert max(installed_diffs(tmp_path / mode, tmp_path / f"site-{mode}").values()) < 1e-5


@pytest.mark.slow
def test_entry_that_differs_from_eager_is_a_cache_fault(tmp_path: Path) -> None:
    """Repro 2: a self-consistent entry holding another model's artifact fails verification under
    ``cache = verify``: reported as a cache fault, removed and compiled again, not blamed on the model."""
    project, cache = _project(tmp_path, TOML), tmp_path / "cache"
    build(project, tmp_path / "cold", cache_env(cache))
    found = entries(cache)
    rewrite_entry(found["a"], (found["b"] / "artifact").read_bytes())
    output = build(project, tmp_path / "verify", cache_env(cache, HATCH_NEURON_CACHE="verify"))
    assert "does not load or does not match eager" in output and "removed, compiling again" in output
    assert "loosen rtol/atol" not in output
    assert "a [cpu]: compiled in" in output, output[-3000:]
    assert max(installed_diffs(tmp_path / "verify", tmp_path / "site").values()) < 1e-5
    again = build(project, tmp_path / "again", cache_env(cache, HATCH_NEURON_CACHE="verify"))
    assert "warning" not in again and again.count("cached in") == 2, again[-3000:]


def _assert_uncached_with_one_warning(output: str, folder: Path) -> None:
    warnings = [line for line in output.splitlines() if "is not usable" in line]
    assert len(warnings) == 1, output[-4000:]
    assert str(folder) in warnings[0] and "HATCH_NEURON_CACHE_DIR" in warnings[0]
    assert "Traceback" not in output


@pytest.mark.slow
def test_cache_dir_naming_a_file(tmp_path: Path) -> None:
    project, cache = _project(tmp_path, TOML), tmp_path / "not-a-folder"
    cache.write_text("")
    output = build(project, tmp_path / "out", cache_env(cache))
    _assert_uncached_with_one_warning(output, cache)
    assert "NotADirectoryError" in output
    assert max(installed_diffs(tmp_path / "out", tmp_path / "site").values()) < 1e-5


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """Make ``folder`` and everything in it unwritable, also for root (ext4's immutable attribute)."""
    paths = [folder, *folder.rglob("*")]
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", folder]).returncode != 0:
        pytest.skip("chattr +i does not work here (a read-only folder cannot be made for root)")
    try:
        subprocess.run(["chattr", "+i", *paths[1:]], check=True)
        yield
    finally:
        subprocess.run(["chattr", "-i", *paths], check=False)


@pytest.mark.slow
def test_read_only_cache_after_an_edit(tmp_path: Path) -> None:
    """A warm cache that cannot be written (its lock files included) and an edited model file."""
    project, cache = _project(tmp_path, TOML), tmp_path / "cache"
    build(project, tmp_path / "cold", cache_env(cache))
    nets = project / "demo_pkg" / "nets.py"
    nets.write_text(nets.read_text() + "# an edit\n")
    with immutable(cache):
        output = build(project, tmp_path / "out", cache_env(cache))
    _assert_uncached_with_one_warning(output, cache)
    assert max(installed_diffs(tmp_path / "out", tmp_path / "site").values()) < 1e-5


@pytest.mark.slow
def test_cache_replaced_during_the_build(tmp_path: Path) -> None:
    """The factory removes the cache folder and puts a file in its place: every worker's cache operation
    fails from then on; one warning, the build compiles uncached."""
    nets = NETS.replace(
        "    def make_a():\n",
        "    def make_a():\n        import os, shutil\n"
        "        cache = os.environ.get('HATCH_NEURON_CACHE_DIR')\n"
        "        if cache:\n            shutil.rmtree(cache, ignore_errors=True)\n"
        "            open(cache, 'w').close()\n",
    )
    project, cache = make_project(tmp_path / "proj", nets, TOML), tmp_path / "cache"
    output = build(project, tmp_path / "out", cache_env(cache, HATCH_NEURON_JOBS="1"))
    _assert_uncached_with_one_warning(output, cache)
    assert max(installed_diffs(tmp_path / "out", tmp_path / "site").values()) < 1e-5


@pytest.mark.slow
def test_hatchling_build_error_is_one_line(tmp_path: Path) -> None:
    project = _project(tmp_path, TOML.replace("shape = [2, 4] }", 'shape = [2, 4], dtype = "float33" }', 1))
    result = pip_wheel(project, tmp_path / "out", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not list((tmp_path / "out").glob("*.whl"))
    [line] = [line for line in output.splitlines() if "hatch-neuron: error:" in line]
    assert "tool.neuron.models.a.inputs[0].dtype: string 'float33' is not allowed" in line
    assert "did you mean 'float32'?" in line
    assert "hatch_neuron/" not in output.replace(str(project), ""), output[-3000:]
    verbose = pip_wheel(project, tmp_path / "out", env=clean_env(HATCH_NEURON_TRACEBACK="1"), check=False)
    assert "Traceback" in verbose.stderr + verbose.stdout and "pipeline.py" in verbose.stderr + verbose.stdout


@pytest.mark.slow
def test_inductor_warm_build_after_prune_and_verify(tmp_path: Path) -> None:
    """The issue's repro on inductor: build, prune the artifact (the direct record stays), rebuild with
    cache = verify (compiles again), build again. The last wheel must import and match eager. Since issue
    19 a fresh inductor compile gives the same bytes, so the record may still hold (a direct hit); before,
    its bytes differed and the record had to be dropped."""
    toml = TOML.replace('targets = ["cpu"]', 'targets = ["inductor"]')
    toml = toml[: toml.index("[tool.neuron.models.b]")]
    project, cache = _project(tmp_path, toml), tmp_path / "cache"
    env = cache_env(cache, HATCH_NEURON_TARGETS="inductor")
    build(project, tmp_path / "one", env)
    run([Path(sys.executable).parent / "hatch-neuron", "cache", "--dir", cache, "prune", "--max-size", "10K"])
    build(project, tmp_path / "two", {**env, "HATCH_NEURON_CACHE": "verify"})
    output = build(project, tmp_path / "three", env)
    assert "a [inductor]: cached in" in output or "a [inductor]: cached (files unchanged)" in output, output[
        -3000:
    ]
    site = install(single_wheel(tmp_path / "three"), tmp_path / "site")
    diff = run_json(
        "import json, torch\nfrom demo_pkg import compiled, nets\nx = torch.randn(2, 4)\n"
        "print(json.dumps((compiled.a(x) - nets.make_a()(x)).abs().max().item()))",
        site,
    )
    assert isinstance(diff, float) and diff < 1e-4


@pytest.mark.slow
def test_neuron_table_without_the_hatchling_hook_warns(tmp_path: Path) -> None:
    """Hatchling never loads a hook the project does not name, so ``hatch-neuron check`` says it."""
    project = _project(tmp_path, TOML)
    text = (project / "pyproject.toml").read_text()
    assert pipeline.missing_hook_warning(tomllib.loads(text)) is None
    (project / "pyproject.toml").write_text(text.replace("[tool.hatch.build.hooks.neuron]\n", ""))
    check = run([Path(sys.executable).parent / "hatch-neuron", "check", project], check=False)
    assert "warning: pyproject.toml has [tool.neuron] but no [tool.hatch.build.hooks.neuron]" in check.stderr
    setuptools = {"build-system": {"build-backend": "setuptools.build_meta"}, "tool": {"neuron": {}}}
    assert pipeline.missing_hook_warning(setuptools) is None


def test_settings_under_the_hatchling_hook_table_are_refused(tmp_path: Path) -> None:
    """``[tool.hatch.build.hooks.neuron] jobs = 2`` would be ignored: the build fails, naming the key and
    where hatch-neuron's settings go; Hatchling's own hook options are accepted."""
    assert hook_table_problem({"dependencies": ["x"], "enable-by-default": True}) is None
    project = _project(tmp_path, TOML)
    text = (project / "pyproject.toml").read_text()
    hooked = text.replace("[tool.hatch.build.hooks.neuron]\n", "[tool.hatch.build.hooks.neuron]\njobs = 2\n")
    (project / "pyproject.toml").write_text(hooked)
    failed = pip_wheel(project, tmp_path / "dist", check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "[tool.hatch.build.hooks.neuron] has 'jobs', which hatch-neuron does not read" in output
    assert "settings live in [tool.neuron]" in output
    assert not list((tmp_path / "dist").glob("*.whl"))
