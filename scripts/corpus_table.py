"""Build the corpus of real architectures (tests/projects/corpus) and print the README's table of it.

    .venv/bin/python scripts/corpus_table.py [--out FOLDER]

One ``pip wheel --no-build-isolation`` of the corpus with its own settings (the default check), the wheel
installed into a folder of its own, then ``python -m corpus_models.compare`` there for the default targets
and for ``inductor`` (the models whose own ``targets`` list it), and ``hatch-neuron check`` on the project.
Per model: its class, targets, the distinct lines ``torch.jit.trace`` warned about while compiling (each
was a finding of the check before issue 13), the findings of the check now, and the max abs difference
of each compiled target from eager on inputs unlike the build's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "projects" / "corpus"
sys.path.insert(0, str(ROOT))

from hatch_neuron.config.parse import tomllib  # noqa: E402

TRACER_WARNING = re.compile(r"hatch-neuron: warning: (\w+): \w+: (.+?:\d+): TracerWarning")
FINDING = re.compile(r"^- \[([\w-]+)\] (\w+): ")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode not in (0, 1):
        sys.exit(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def compare(site: Path, target: str | None, names: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    extra = ["--target", target] if target else []
    result = run([sys.executable, "-m", "corpus_models.compare", *extra, *names], env=env, cwd=site)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the wheel and the install here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="corpus-table-"))
    models = tomllib.loads((CORPUS / "pyproject.toml").read_text())["tool"]["neuron"]["models"]
    spec = importlib.util.spec_from_file_location("_corpus_nets", CORPUS / "corpus_models" / "nets.py")
    assert spec and spec.loader
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    architectures: dict[str, str] = nets.ARCHITECTURES
    targets = {name: table.get("targets", ["cpu"]) for name, table in models.items()}
    env = {**os.environ, "HATCH_NEURON_CACHE": os.environ.get("HATCH_NEURON_CACHE", "off")}
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation"]
    build = run([*command, "-w", out / "dist", CORPUS], env=env)
    if build.returncode:
        sys.exit(f"the corpus build failed:\n{build.stdout[-5000:]}\n{build.stderr[-3000:]}")
    warned: dict[str, set[str]] = {name: set() for name in models}
    for model, site in TRACER_WARNING.findall(build.stdout + build.stderr):
        warned[model].add(site)
    [wheel] = (out / "dist").glob("*.whl")
    site = out / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel])
    diffs = {"cpu": compare(site, None, list(models))}
    inductor = [name for name, listed in targets.items() if "inductor" in listed]
    diffs["inductor"] = compare(site, "inductor", inductor) if inductor else {}
    check = run([sys.executable, "-m", "hatch_neuron", "check", CORPUS])
    findings = {name: 0 for name in models}
    for _, model in (m.groups() for m in map(FINDING.match, check.stdout.splitlines()) if m):
        findings[model] += 1
    print(
        "| model | transformers class | targets | lines `torch.jit.trace` warned about | findings | "
        "max diff, cpu | max diff, inductor |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in models:
        inductor_diff = diffs["inductor"].get(name)
        print(
            f"| `{name}` | {architectures[name]} | {', '.join(targets[name])} | {len(warned[name])} | "
            f"{findings[name]} | {diffs['cpu'][name]:.1e} | "
            + (f"{inductor_diff:.1e} |" if inductor_diff is not None else "- |")
        )
    print(f"\nwheel: {wheel.name}, {wheel.stat().st_size / 2**20:.0f} MiB; build output in {out}")
    (out / "build.log").write_text(build.stdout + build.stderr)


if __name__ == "__main__":
    main()
