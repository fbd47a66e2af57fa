"""Which compiled form of a package to load here, and loading an artifact by its target's loader.

Order of preference is the manifest's ``targets`` (the project's ``targets``). A target is usable when
its runtime is (each target's loader says, see :mod:`hatch_neuron.targets`): ``neuron`` needs
``torch_neuronx`` importable and a Neuron device (``/dev/neuron*``); ``xla`` needs torch-xla of the
running torch's release; ``inductor`` needs the exact torch it was built with and the CPU's instruction
set (or, built for CUDA, a GPU of the same compute capability); ``cpu`` always is.
``HATCH_NEURON_TARGET=<name>`` forces one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import IO, Any

from ..targets import REGISTRY, UnknownTarget, loader, target_info
from .schema import ArtifactEntry, Manifest

OVERRIDE_ENV = "HATCH_NEURON_TARGET"


@dataclass(frozen=True)
class Selection:
    """The target picked for a package, and why each one before it was skipped."""

    target: str
    skipped: dict[str, str] = field(default_factory=dict)
    forced: bool = False


def unusable_reason(target: str, manifest: Manifest) -> str | None:
    """None when ``target`` can run here, otherwise why not."""
    try:
        return loader(target).unusable_reason(manifest)
    except UnknownTarget:
        return f"this hatch-neuron runtime does not know target {target!r}; upgrade hatch-neuron"


def select_target(
    package: str, manifest: Manifest, targets: list[str] | None = None, model: str | None = None
) -> Selection:
    """The first usable of ``targets`` (a model's own; default: the package's ``targets``).

    ``HATCH_NEURON_TARGET`` forces its target on every model built for it; a model whose own targets
    lack it (the package has it for others) is selected as usual, and says so in ``skipped``. A package
    that no model was built for it refuses."""
    known = manifest.targets or []
    available = targets or known
    forced = os.environ.get(OVERRIDE_ENV, "").strip()
    skipped: dict[str, str] = {}
    if forced:
        if forced in available:
            return Selection(forced, forced=True)
        if forced not in known:
            raise LookupError(
                f"{OVERRIDE_ENV}={forced}: package {package!r} has no {forced!r} artifacts; "
                f"it was built for: {', '.join(known)}"
            )
        skipped[forced] = f"{OVERRIDE_ENV}={forced}, but model {model!r} was built for {', '.join(available)}"
    for target in available:
        reason = unusable_reason(target, manifest)
        if reason is None:
            return Selection(target, skipped)
        skipped[target] = reason
    # Nothing fully usable: the first target may still get a load attempt (a neuron one on a host with
    # torch_neuronx but no visible device, so the Neuron runtime can report its own error).
    first = available[0]
    if first in REGISTRY and loader(first).attempt_anyway():
        return Selection(first, skipped)
    hints = [
        f". To run the {t} artifacts, {hint}"
        for t in skipped
        if t in REGISTRY and (hint := loader(t).install_hint(manifest))
    ]
    raise ImportError(
        f"package {package!r} cannot load its compiled models here: "
        + "; ".join(f"{t}: {r}" for t, r in skipped.items())
        + "".join(hints)
    )


CORE_LIST_FORMS = "an index (2), a range (0-3) or a comma list of them (0,1,2-3), contiguous and increasing"


def parse_visible_cores(text: str, variable: str = "NEURON_RT_VISIBLE_CORES") -> list[int]:
    """The NeuronCores ``text`` names in the Neuron runtime's syntax (``m,n,p-q``; the result must be a
    contiguous, increasing run, as the runtime requires). Anything else is a ``ValueError`` naming the
    variable, its value and the accepted forms."""
    cores: list[int] = []
    for part in text.split(","):
        found = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if found is None or int(found.group(2) or found.group(1)) < int(found.group(1)):
            raise ValueError(
                f"{variable}={text!r}: {part.strip()!r} is not a core index or range; use {CORE_LIST_FORMS}"
            )
        cores.extend(range(int(found.group(1)), int(found.group(2) or found.group(1)) + 1))
    if cores != list(range(cores[0], cores[0] + len(cores))):
        raise ValueError(
            f"{variable}={text!r} names cores {cores}, which are not contiguous; use {CORE_LIST_FORMS}"
        )
    return cores


def visible_core_count() -> int | None:
    """NeuronCores this process may use per NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES (None: all)."""
    visible = os.environ.get("NEURON_RT_VISIBLE_CORES", "").strip()
    if visible:
        return len(parse_visible_cores(visible))
    number = os.environ.get("NEURON_RT_NUM_CORES", "").strip()
    if number and not number.isdigit():
        raise ValueError(f"NEURON_RT_NUM_CORES={number!r}: expected a number of NeuronCores (0: all)")
    return int(number) if number and int(number) > 0 else None


def core_for_replica(placement: str | dict[str, int], replica: int) -> int | None:
    """The NeuronCore (relative to the visible ones) that replica ``replica`` is pinned to, or None for
    Neuron's round-robin placement."""
    if placement == "round-robin" or isinstance(placement, str):
        return None
    start, count = placement["start"], placement["count"]
    visible = visible_core_count()
    if visible is not None and start + count > visible:
        raise ValueError(
            f"placement {{start = {start}, count = {count}}} needs NeuronCores {start}..{start + count - 1}, "
            f"but this process sees {visible} (NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES)"
        )
    return start + replica % count


def load_artifact(
    target: str,
    source: str | IO[bytes],
    manifest: Manifest,
    artifact: ArtifactEntry,
    core: int | None = None,
) -> Any:
    """Load one artifact (its path, or a stream of its bytes; described by its manifest entry ``artifact``)
    as a callable module (a ``neuron`` one onto ``core`` when given), by its target's loader."""
    try:
        info = target_info(target)
    except UnknownTarget as exc:
        raise RuntimeError(f"cannot load a {target!r} artifact: {exc}; upgrade hatch-neuron") from None
    found = artifact.format or info.artifact_format
    if found != info.artifact_format:
        raise RuntimeError(
            f"cannot load {artifact.file!r}: its format is {found!r}, "
            f"target {target!r} artifacts are {info.artifact_format!r}; the package was built by another "
            "hatch-neuron"
        )
    if not isinstance(source, str):
        source.seek(0)  # the stream of an earlier replica's load
    return loader(target).load(source, manifest, artifact, core)
