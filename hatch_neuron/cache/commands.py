"""``hatch-neuron cache info|list|prune|clear [--remote [URL]]``: look at and trim the local compile cache,
or the remote one."""

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
    cache.add_argument(
        "--remote",
        nargs="?",
        const="",
        metavar="URL",
        help="work on the remote cache at URL (default: HATCH_NEURON_REMOTE_CACHE) instead of the local one",
    )
    cache.add_argument(
        "--endpoint-url", help="with --remote: the S3-compatible endpoint (or AWS_ENDPOINT_URL)"
    )
    actions = cache.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="where the cache is, how many entries and how big")
    actions.add_parser("list", help="one line per entry: key, kind, size, last use, what it holds")
    prune = actions.add_parser("prune", help="remove old entries, or the least recently used beyond a size")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="remove entries unused for DAYS days")
    prune.add_argument("--max-size", type=parse_size, metavar="SIZE", help="then keep at most SIZE (e.g. 2G)")
    actions.add_parser("clear", help="remove every entry")


def run(args: argparse.Namespace) -> int:
    if args.remote is not None:
        return run_remote(args)
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


def run_remote(args: argparse.Namespace) -> int:
    from .remote import RemoteCache, RemoteSettings, RemoteUnavailable

    url = args.remote or os.environ.get("HATCH_NEURON_REMOTE_CACHE", "").strip()
    if not url:
        print("hatch-neuron cache --remote: give a URL (s3://bucket/prefix) or set HATCH_NEURON_REMOTE_CACHE")
        return 2
    try:
        remote = RemoteCache(RemoteSettings(url, endpoint_url=args.endpoint_url))
        if args.action == "info":
            entries = list(remote.entries())
            print(f"remote cache: {url}")
            print(f"artifacts: {len(entries)}, {format_size(sum(e.size for e in entries))}")
        elif args.action == "list":
            for entry in sorted(remote.entries(), key=lambda e: e.stored, reverse=True):
                stored = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.stored))
                print(
                    f"{entry.key[:16]}  {format_size(entry.size):>10}  {stored}  {entry.description}"
                    f"  [{entry.builder}]"
                )
        elif args.action == "prune":
            if args.older_than is None or args.max_size is not None:
                print("hatch-neuron cache --remote prune: give --older-than DAYS (--max-size is local only)")
                return 2
            removed = remote.prune(args.older_than)
            print(f"removed {len(removed)} entries, {format_size(sum(e.size for e in removed))}")
        else:
            print(f"removed {remote.clear()} entries from {url}")
    except RemoteUnavailable as exc:
        print(f"hatch-neuron cache --remote: {exc}")
        return 1
    return 0
