"""Whether a ``neuron`` artifact can load here, decided before ``torch.jit.load`` (standard library only).

- **torch-neuronx release**: its version is the torch release it is built for, then the Neuron release
  (``2.1.2.2.3.0``: torch 2.1.2, Neuron 2.3.0). An older Neuron part than the build's refuses the NEFF of a
  newer compiler ("NEFF version ... not supported", aws-neuron-sdk issues 820, 823, 1061): an error. A
  newer Neuron part usually loads, and another torch part may: warnings.
- **Architecture**: a NEFF compiled for trn1 / trn1n / inf2 (NeuronCore-v2) on a trn2 host runs only with
  ``NEURON_RT_ALLOW_LEGACY_NEFF=1`` (Neuron runtime 2.25+, documented as for testing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Where EC2 names the instance type (``trn2.48xlarge``).
PRODUCT_NAME = Path("/sys/devices/virtual/dmi/id/product_name")
LEGACY_FAMILIES = ("inf2", "trn1", "trn1n")


def split_release(version: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``2.1.2.2.3.0+abc`` -> ((2, 1, 2), (2, 3, 0)); None when it is not in that form."""
    release = re.match(r"\d+(?:\.\d+)*", version)  # without local, pre-, post- and dev-release tags
    values = tuple(int(n) for n in release.group().split(".")) if release else ()
    if len(values) < 4:
        return None
    return values[:3], values[3:]


def _dotted(numbers: tuple[int, ...]) -> str:
    return ".".join(map(str, numbers))


def release_problem(built: str | None, installed: str | None) -> tuple[str, str] | None:
    """("error" | "warning", message) when the installed torch-neuronx is not the one the artifact was
    built with, or None."""
    if not built or not installed or built == installed:
        return None
    were, are = split_release(built), split_release(installed)
    if were is not None and were == are:
        return None
    install = f"install torch-neuronx=={built} (with the Neuron runtime of its SDK release), or rebuild here"
    if were is None or are is None:
        return (
            "warning",
            f"built with torch-neuronx {built}, this is {installed}; if loading fails, {install}",
        )
    if were[0] != are[0]:
        return (
            "warning",
            f"built with torch-neuronx {built} (for torch {_dotted(were[0])}), this is {installed} "
            f"(for torch {_dotted(are[0])}); if loading fails, {install}",
        )
    if are[1] < were[1]:
        return (
            "error",
            f"built with torch-neuronx {built} (Neuron {_dotted(were[1])}), this is the older "
            f"{installed} (Neuron {_dotted(are[1])}): an older Neuron runtime refuses NEFFs of a "
            f"newer compiler ('NEFF version ... not supported'); {install}",
        )
    return "warning", f"built with torch-neuronx {built}, this is the newer {installed}: usually loads"


def compiler_problem(built: str | None, installed: str | None) -> tuple[str, str] | None:
    """A warning when another neuronx-cc is installed than the one that compiled the NEFF: nothing is
    recompiled at load, but it says which SDK release the runtime should be of."""
    if not built or not installed or built == installed:
        return None
    return (
        "warning",
        f"its NEFF was compiled by neuronx-cc {built}, the installed neuronx-cc is {installed}; loading does "
        "not recompile, so if the runtime refuses the NEFF ('NEFF version ... not supported'), install the "
        "Neuron runtime of the build's SDK release or rebuild here",
    )


def host_family(product_name: Path = PRODUCT_NAME) -> str | None:
    """The EC2 instance family of this host (``trn2``), or None off EC2."""
    try:
        name = product_name.read_text().strip()
    except OSError:
        return None
    family = name.split(".")[0]
    return family if re.fullmatch(r"(inf|trn)\d+[a-z]*", family) else None


def architecture_problem(compiled_for: str | None, host: str | None) -> tuple[str, str] | None:
    """("error" | "warning", message) for a NEFF of an older architecture on a trn2 host, or None."""
    if compiled_for not in LEGACY_FAMILIES or host != "trn2":
        return None
    allowed = os.environ.get("NEURON_RT_ALLOW_LEGACY_NEFF", "").lower() in ("1", "true")
    what = (
        f"compiled for {compiled_for} (NeuronCore-v2), and this host is {host}: the Neuron runtime (2.25+) "
        "runs such NEFFs only with NEURON_RT_ALLOW_LEGACY_NEFF=1, which AWS documents as for testing (an "
        'incompatible NEFF fails with a data mismatch or stalls); rebuild with neuron-target = "trn2"'
    )
    return ("warning" if allowed else "error"), what
