"""What the pre-flight checks report, and how it is shown; no torch here (the build process formats the
findings that workers send back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    model: str
    kind: str  # control-flow | data-dependent-shape | dtype | operator-support | batch-dependence | skipped
    message: str
    where: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def describe(findings: list[dict[str, str]]) -> str:
    """Findings as text, grouped by model (in the order models first appear), one block per distinct
    finding with a count when the same one was found more than once."""
    counts: dict[tuple[str, str, str, str], int] = {}
    for f in findings:
        key = (f["model"], f["kind"], f["message"], f["where"])
        counts[key] = counts.get(key, 0) + 1
    fixes = {(f["model"], f["kind"], f["message"], f["where"]): f["fix"] for f in findings}
    order = list(dict.fromkeys(model for model, *_ in counts))
    blocks = []
    for model in order:
        for key, count in counts.items():
            if key[0] == model:
                _, kind, message, where = key
                times = f" ({count} times)" if count > 1 else ""
                blocks.append(
                    f"- [{kind}] {model}: {message}{times}\n    where: {where}\n    fix: {fixes[key]}"
                )
    return "\n".join(blocks)


def check_failure(failures: dict[str, list[dict[str, str]]]) -> str:
    """The build error for models whose checks found problems (``check = "error"``): every model's
    findings, so that one build shows everything to fix."""
    lines = [
        f"the pre-flight checks found problems in {len(failures)} model(s) that would make "
        "torch_neuronx.trace fail or give wrong results:"
    ]
    for model, findings in failures.items():
        problems = [f for f in findings if f["kind"] != "skipped"]
        lines += [
            f"model {model!r}: the pre-flight checks found {len(problems)} problem(s):",
            describe(problems),
        ]
    lines.append('(check = "warn" in [tool.neuron], or in a model\'s own table, downgrades them to warnings)')
    return "\n".join(lines)
