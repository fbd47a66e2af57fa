"""``hatch-neuron`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from .inspection import all_artifacts, inspect_path, render


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
    args = parser.parse_args(argv)

    try:
        reports = inspect_path(args.path)
    except (FileNotFoundError, LookupError) as exc:
        print(f"hatch-neuron: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(reports, indent=2, sort_keys=True) if args.json else render(reports))
    bad = any(not a["sha256_ok"] for report in reports for a in all_artifacts(report))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
