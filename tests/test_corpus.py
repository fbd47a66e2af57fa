"""The corpus of real architectures (tests/projects/corpus): transformers' own model classes with small
configs, and the real all-MiniLM-L6-v2, built with ``pip wheel`` and the default settings (``check =
"error"``), installed away from the source tree and compared with eager on inputs unlike the build's.

The build takes a few minutes on 2 CPUs; it runs once per module. ``pytest -m slow tests/test_corpus.py -rP``
shows its time and the table of differences.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT, clean_env, install, pip_wheel, run, run_json, single_wheel

from hatch_neuron.config.parse import tomllib

pytestmark = pytest.mark.slow

CORPUS = ROOT / "tests" / "projects" / "corpus"
PACKAGE = "corpus_models"
TOLERANCE = 1e-4
#: The models built for ``inductor`` too (their own ``targets``): a text encoder, a decoder-only LM, a
#: vision transformer and a CNN. (Swin's own targets leave it out: torch.export fails on it.)
INDUCTOR = ("bert", "llama", "vit", "resnet")


def _nets() -> ModuleType:
    """The corpus's ``nets.py``, loaded on its own (it imports transformers only inside its factories)."""
    spec = importlib.util.spec_from_file_location("_corpus_nets", CORPUS / PACKAGE / "nets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(diffs: dict[str, float]) -> str:
    return "\n".join(
        f"  {name:<16} {diff:.3e}{'  > tolerance' if diff > TOLERANCE else ''}"
        for name, diff in diffs.items()
    )


@pytest.fixture(scope="module")
def corpus_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus-wheel")
    start = time.perf_counter()
    pip_wheel(CORPUS, out, env=clean_env())
    seconds = time.perf_counter() - start
    wheel = single_wheel(out)
    print(f"corpus wheel: {wheel.name}, {wheel.stat().st_size / 2**20:.1f} MiB, built in {seconds:.1f} s")
    return install(wheel, tmp_path_factory.mktemp("corpus-site"))


def test_declarations_match_the_factories() -> None:
    """pyproject.toml declares every architecture with its factory and the inputs ``nets.INPUTS`` holds
    (compare.py makes its inputs from those), with the default check."""
    config = tomllib.loads((CORPUS / "pyproject.toml").read_text())["tool"]["neuron"]
    assert "check" not in config, "the corpus must build with the default check (error)"
    assert config["targets"] == ["cpu"]
    models = config["models"]
    nets = _nets()
    assert list(models) == list(nets.INPUTS) and set(models) == set(nets.ARCHITECTURES)
    for name, table in models.items():
        assert table["factory"] == f"{PACKAGE}.nets:make_{name}", name
        assert table.get("targets", ["cpu"]) == (["cpu", "inductor"] if name in INDUCTOR else ["cpu"]), name
        assert table["inputs"] == nets.INPUTS[name], name
        for spec in table["inputs"]:
            if spec["dtype"] == "int64":
                assert spec["low"] == 0 and spec["high"] in (2, nets.VOCAB, nets.MINILM_VOCAB), (name, spec)


def test_every_architecture_matches_eager(corpus_site: Path) -> None:
    """Each compiled model equals the eager model from the same factory within 1e-4 on random inputs of
    other seeds and, for the text models, full, half-padded, one-padded and random masks."""
    diffs = run_json(
        f"""\
        import json
        from {PACKAGE}.compare import compare
        print(json.dumps(compare()))
        """,
        corpus_site,
    )
    assert isinstance(diffs, dict)
    print("compiled vs eager, max abs diff:\n" + _table(diffs))
    assert set(diffs) == set(_nets().INPUTS)
    assert all(diff <= TOLERANCE for diff in diffs.values()), "compiled vs eager, max abs diff:\n" + _table(
        diffs
    )


def test_compare_command_with_a_forced_target(corpus_site: Path) -> None:
    """``python -m corpus_models.compare --target cpu NAME...`` forces the target and prints the JSON."""
    env = clean_env(PYTHONPATH=str(corpus_site))
    result = run(
        [sys.executable, "-m", f"{PACKAGE}.compare", "--target", "cpu", "gpt2", "minilm"],
        env=env,
        cwd=corpus_site,
    )
    diffs = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(diffs) == ["gpt2", "minilm"]
    assert all(diff <= TOLERANCE for diff in diffs.values()), diffs


def test_inductor_models_match_eager(corpus_site: Path) -> None:
    """The models whose own targets add ``inductor`` (AOTInductor, native code), forced to load it."""
    result = run(
        [sys.executable, "-m", f"{PACKAGE}.compare", "--target", "inductor", *INDUCTOR],
        env=clean_env(PYTHONPATH=str(corpus_site)),
        cwd=corpus_site,
    )
    diffs = json.loads(result.stdout.strip().splitlines()[-1])
    print("inductor vs eager, max abs diff:\n" + _table(diffs))
    assert list(diffs) == list(INDUCTOR)
    assert all(diff <= TOLERANCE for diff in diffs.values()), _table(diffs)
