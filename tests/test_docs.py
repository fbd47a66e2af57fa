"""The README's [tool.neuron] reference is generated from the settings model and must be current."""

import subprocess
import sys

from conftest import ROOT


def test_readme_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hatch_neuron.config.docs", "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
