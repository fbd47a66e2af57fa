"""``hatch-neuron compile --shard K/N`` (issue 18): N machines cover every artifact once, and a wheel build
anywhere then compiles nothing. The split is checked in-process; the machines are real processes with
their own local caches, sharing moto's S3 server on loopback (``test_remote_cache``'s fixture)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import clean_env, make_project, run
from test_remote_cache import BUCKET, CREDENTIALS, build, endpoint, summary  # noqa: F401 (a fixture)

from hatch_neuron.cli import main
from hatch_neuron.config import settings_from_table
from hatch_neuron.plan import make_plan, shard_jobs

NETS = """
    import torch

    def make(width=8):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(width, 4), torch.nn.ReLU())
"""
NEURON_TOML = """
    [tool.neuron]
    targets = ["cpu"]
    remote-cache = "s3://{bucket}/team"
    remote-cache-endpoint-url = "{endpoint}"
    remote-cache-timeout = 5

    [tool.neuron.models.lin]
    factory = "demo_pkg.nets:make"
    inputs = [{{ shape = [1, 8] }}]
    batch-buckets = [1, 2, 4]

    [tool.neuron.models.wide]
    factory = "demo_pkg.nets:make"
    factory-args = {{ width = 32 }}
    inputs = [{{ shape = [1, 32] }}]
    batch-buckets = [1, 8]
"""


def _table(buckets: list[int], models: int = 3) -> dict[str, object]:
    return {
        "targets": ["cpu", "inductor"],
        "models": {
            f"m{i}": {"factory": "pkg.nets:make", "inputs": [{"shape": [1, 4 + i]}], "batch-buckets": buckets}
            for i in range(models)
        },
    }


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16])
def test_shards_cover_every_job_once_and_stay_balanced(tmp_path: Path, count: int) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    plan = make_plan(settings_from_table(_table([1, 2, 4, 8]), environ={}), tmp_path, "pkg")
    shards = [shard_jobs(plan, k, count) for k in range(1, count + 1)]
    assert set().union(*shards) == set(plan.jobs) and sum(map(len, shards)) == len(plan.jobs)  # disjoint
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards == [shard_jobs(plan, k, count) for k in range(1, count + 1)]  # the same every time
    if count == 2:  # each model's largest buckets are dealt to both shards
        largest = [{j.model for j in s if j.bucket == ((0, 8),)} for s in shards]
        assert all(largest)


@pytest.mark.parametrize("shard", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(shard: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compile", ".", "--shard", shard])
    assert info.value.code == 2 and "expected K/N with 1 <= K <= N" in capsys.readouterr().err


def _compile(project: Path, cache: Path, *args: str, check: bool = True) -> str:
    env = clean_env(HATCH_NEURON_CACHE="on", HATCH_NEURON_CACHE_DIR=str(cache), **CREDENTIALS)
    result = run([sys.executable, "-m", "hatch_neuron.cli", "compile", project, *args], env=env, check=check)
    return result.stdout + result.stderr


def _artifacts(output: str) -> set[str]:
    return set(re.findall(r"hatch-neuron: (\w+ \[cpu dim0=\d+\]): compiled", output))


@pytest.mark.slow
def test_two_shard_machines_then_a_wheel_that_compiles_nothing(endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    project = make_project(tmp_path / "proj", NETS, NEURON_TOML.format(bucket=BUCKET, endpoint=endpoint))
    one = _compile(project, tmp_path / "cache-1", "--shard", "1/2")
    two = _compile(project, tmp_path / "cache-2", "--shard", "2/2")
    assert "shard 1/2: 3 of 5 artifact(s)" in one and "shard 2/2: 2 of 5 artifact(s)" in two
    assert _artifacts(one).isdisjoint(_artifacts(two))
    assert len(_artifacts(one) | _artifacts(two)) == 5
    assert not list((tmp_path / "proj").glob("*.whl"))
    wheel = build(project, tmp_path / "wheel", tmp_path / "cache-3")  # a third machine
    assert summary(wheel) == "0 artifact(s) compiled, 0 from the cache, 5 from the remote cache"
    # a shard run again takes its artifacts from its own cache
    again = _compile(project, tmp_path / "cache-1", "--shard", "1/2")
    assert "3 from the cache" in again and "compiled in" not in again


@pytest.mark.slow
def test_compile_failures_exit_1(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", NETS, NEURON_TOML.format(bucket=BUCKET, endpoint="http://x"))
    env = clean_env()  # the cache off: nowhere to put the artifacts
    done = run([sys.executable, "-m", "hatch_neuron.cli", "compile", project], env=env, check=False)
    assert done.returncode == 1 and "tool.neuron.cache: is off, and hatch-neuron compile puts" in done.stderr
    broken = _compile(project, tmp_path / "cache", "--model", "nope", check=False)
    assert "no model named nope; the project has lin, wide" in broken
