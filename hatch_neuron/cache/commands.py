"""``hatch-neuron cache info|list|prune|clear``: look at and trim the local compile cache."""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import platformdirs

from .store import LocalCache

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default_cache_dir() -> Path:
    """``HATCH_NEURON_CACHE_DIR``, else the user cache folder (``~/.cache/hatch-neuron`` on Linux)."""
    configured = os.environ.get("HATCH_NEURON_CACHE_DIR", "").strip()
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("hatch-neuron"))


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``10KiB`` or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 500M, 2G, 1.5GB, 1048576)")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def format_size(size: float) -> str:
    """``812 B``, ``98.5 KiB``, ``651.3 MiB``..."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def add_parser(commands: argparse._SubParsersAction) -> None:
    cache = commands.add_parser(
        "cache",
        help="show or trim the compile cache",
        description="The local compile cache (HATCH_NEURON_CACHE_DIR, or ~/.cache/hatch-neuron on Linux).",
    )
    cache.add_argument(
        "--dir", type=Path, help="the cache folder (default: HATCH_NEURON_CACHE_DIR or the user one)"
    )
    actions = cache.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="where the cache is, how many entries and how big")
    actions.add_parser("list", help="one line per entry: key, kind, size, last use, what it holds")
    prune = actions.add_parser("prune", help="remove old entries, or the least recently used beyond a size")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="remove entries unused for DAYS days")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE", help="then keep at most SIZE (e.g. 2G)")
    actions.add_parser("clear", help="remove every entry")


def run(args: argparse.Namespace) -> int:
    cache = LocalCache(args.dir or default_cache_dir())
    if args.action == "info":
        entries = list(cache.entries())
        artifacts = [e for e in entries if e.kind == "artifact"]
        print(f"cache: {cache.root}")
        print(f"artifacts: {len(artifacts)}, {format_size(sum(e.size for e in artifacts))}")
        direct = [e for e in entries if e.kind == "direct"]
        print(f"direct records: {len(direct)}, {format_size(sum(e.size for e in direct))}")
    elif args.action == "list":
        for entry in sorted(cache.entries(), key=lambda e: e.last_used, reverse=True):
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            size = format_size(entry.size)
            print(f"{entry.key[:16]}  {entry.kind:<8}  {size:>10}  {used}  {entry.description}")
    elif args.action == "prune":
        if args.older_than is None and args.max_size is None:
            print("hatch-neuron cache prune: give --older-than DAYS and/or --max-size SIZE")
            return 2
        removed = cache.prune(args.older_than, args.max_size)
        print(f"removed {len(removed)} entries, {format_size(sum(e.size for e in removed))}")
    else:
        cache.clear()
        print(f"cleared {cache.root}")
    return 0
