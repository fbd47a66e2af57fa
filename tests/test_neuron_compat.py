"""Load-time compatibility of ``neuron`` artifacts (hatch_neuron.runtime.neuron_compat), as pure functions.

The rules follow what the Neuron runtime refuses, per aws-neuron-sdk issues 820/823/1061 ("NEFF version ...
not supported" from a newer compiler on an older runtime) and the runtime configuration guide
(NEURON_RT_ALLOW_LEGACY_NEFF). Nothing here ran on Neuron.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hatch_neuron.runtime.neuron_compat import (
    architecture_problem,
    compiler_problem,
    host_family,
    release_problem,
    split_release,
)


def test_release_parts() -> None:
    assert split_release("2.1.2.2.3.0") == ((2, 1, 2), (2, 3, 0))
    assert split_release("2.13.0.2.99.0+testdouble") == ((2, 13, 0), (2, 99, 0))
    assert split_release("2.1") is None


@pytest.mark.parametrize(
    ("built", "installed", "level", "fragment"),
    [
        ("2.1.2.2.3.0", "2.1.2.2.3.0", None, None),
        ("2.1.2.2.3.0", None, None, None),
        ("2.1.2.2.3.0", "2.5.1.2.6.0", "warning", "(for torch 2.1.2), this is 2.5.1.2.6.0 (for torch 2.5.1)"),
        ("2.1.2.2.3.0", "2.1.2.2.3.0+local", None, None),
        ("2.1.2.2.4.0", "2.1.2.2.3.0rc1", "error", "(Neuron 2.3.0)"),
        ("2.1.2.2.4.0", "2.1.2.2.3.0", "error", "an older Neuron runtime refuses NEFFs of a newer compiler"),
        ("2.1.2.2.3.0", "2.1.2.2.4.0", "warning", "usually loads"),
        ("dev", "2.1.2.2.4.0", "warning", "if loading fails"),
    ],
)
def test_release_rules(built: str, installed: str | None, level: str | None, fragment: str | None) -> None:
    found = release_problem(built, installed)
    if level is None:
        assert found is None
        return
    assert found is not None and found[0] == level and fragment in found[1]
    if level == "error":
        assert f"install torch-neuronx=={built}" in found[1]


def test_legacy_neff_on_trn2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURON_RT_ALLOW_LEGACY_NEFF", raising=False)
    level, message = architecture_problem("trn1", "trn2")
    assert (
        level == "error"
        and "NEURON_RT_ALLOW_LEGACY_NEFF=1" in message
        and 'neuron-target = "trn2"' in message
    )
    monkeypatch.setenv("NEURON_RT_ALLOW_LEGACY_NEFF", "1")
    assert architecture_problem("inf2", "trn2")[0] == "warning"
    assert architecture_problem("trn2", "trn2") is None and architecture_problem("trn1", "inf2") is None


def test_host_family(tmp_path: Path) -> None:
    name = tmp_path / "product_name"
    name.write_text("trn2.48xlarge\n")
    assert host_family(name) == "trn2"
    name.write_text("Standard PC (Q35 + ICH9, 2009)\n")
    assert host_family(name) is None
    assert host_family(tmp_path / "absent") is None


def test_other_compiler_only_warns() -> None:
    assert compiler_problem("2.12.68.0", None) is None and compiler_problem("2.12.68.0", "2.12.68.0") is None
    level, message = compiler_problem("2.12.68.0", "2.13.66.0")
    assert level == "warning" and "compiled by neuronx-cc 2.12.68.0" in message
