"""``hatch-neuron`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cache import commands as cache_commands
from .inspection import InspectError, inspect_path, render
from .runtime.manifest import all_artifacts, artifact_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hatch-neuron", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="list the compiled models of a wheel or an installed package",
        description="List every model, its targets, input/output specs, artifact sizes and sha256 (checked), "
        "and the versions that built it.",
    )
    inspect.add_argument("path", help="a .whl, a package folder, a folder of packages, or an importable name")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    check = commands.add_parser(
        "check",
        help="run the pre-flight checks on a project's models",
        description="Check each declared model for what makes torch_neuronx.trace fail or give wrong "
        "results: data-dependent control flow and shapes, dtype changes, and rows that influence each other "
        "in dynamically batched models. Exit code 1 when something is found.",
    )
    check.add_argument("project", nargs="?", default=".", help="the project folder (default: .)")
    check.add_argument("--model", action="append", help="check only this model (repeatable)")
    compile_ = commands.add_parser(
        "compile",
        help="compile a project's artifacts into the caches, without building a wheel",
        description="Run the checks and compile (or take from the caches) the project's artifacts into the "
        "local compile cache, uploading them to the remote cache when one is configured. With --shard K/N, "
        "only shard K of N (the same split on every machine with the same sources): N machines cover every "
        "artifact once, and a later `pip wheel` anywhere takes them from the remote cache. Exit code 1 on "
        "any failure.",
    )
    compile_.add_argument("project", nargs="?", default=".", help="the project folder (default: .)")
    compile_.add_argument("--shard", type=_shard, help="K/N: compile shard K (1..N) of N")
    compile_.add_argument("--model", action="append", help="compile only this model (repeatable)")
    cache_commands.add_parser(commands)
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of [tool.neuron] (for editors)",
        description="Print the JSON Schema of [tool.neuron], generated from the settings model, for editors "
        "that validate pyproject.toml tables (taplo / Even Better TOML); --models-file: the schema of a YAML "
        "models file (yaml-language-server).",
    )
    schema.add_argument("--models-file", action="store_true", help="the schema of a YAML models file")
    args = parser.parse_args(argv)
    if args.command == "schema":
        from .config.schema import schema_text

        print(schema_text("models-file" if args.models_file else "pyproject"), end="")
        return 0
    if args.command == "check":
        return run_check(Path(args.project), args.model)
    if args.command == "compile":
        return run_compile(Path(args.project), args.model, args.shard)
    if args.command == "cache":
        return cache_commands.run(args)

    try:
        reports = inspect_path(args.path)
    except (InspectError, LookupError, OSError) as exc:
        message = " ".join(str(exc).splitlines())  # one line
        if isinstance(exc, OSError):
            message = f"{args.path}: {message}"
        print(f"hatch-neuron: {message}", file=sys.stderr)
        return 2
    print(json.dumps(reports, indent=2, sort_keys=True) if args.json else render(reports))
    bad = any(
        not entry["sha256_ok"]
        for report in reports
        for artifact in all_artifacts(report)
        for entry in artifact_files(artifact)
    )
    return 1 if bad else 0


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(index), int(count)


def run_compile(project: Path, models: list[str] | None, shard: tuple[int, int] | None) -> int:
    from .package import pipeline

    def log(line: str) -> None:
        print(f"hatch-neuron: {line}", flush=True)

    try:
        name = _read_project(project).get("project", {}).get("name")
        pipeline.compile_to_cache(project.resolve(), name, log, models, shard)
    except Exception as exc:
        if not pipeline.is_build_error(exc) and not isinstance(exc, FileNotFoundError):
            raise
        print(f"hatch-neuron: {exc}", file=sys.stderr)
        return 1
    return 0


def _read_project(project: Path) -> dict:
    from .config import read_pyproject

    return read_pyproject(project / "pyproject.toml")


def run_check(project: Path, models: list[str] | None) -> int:
    from .compile.findings import describe
    from .compile.runner import CompileError
    from .config import ConfigError, read_pyproject
    from .package import pipeline

    try:
        data = read_pyproject(project / "pyproject.toml")
        warning = pipeline.missing_hook_warning(data)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        findings = pipeline.check(project.resolve(), data.get("project", {}).get("name"), models)
    except (ConfigError, CompileError, FileNotFoundError) as exc:
        print(f"hatch-neuron: {exc}", file=sys.stderr)
        return 2
    problems = [f for f in findings if f["kind"] != "skipped"]
    for skipped in (f for f in findings if f["kind"] == "skipped"):
        print(f"note: {skipped['model']}: {skipped['message']} ({skipped['fix']})")
    print(describe(problems) if problems else "no problems found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
