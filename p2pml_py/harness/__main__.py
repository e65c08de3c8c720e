"""``python -m p2pml_py.harness setup [--cache DIR]`` (also ``p2pml-py harness setup``).

Installs the harness's pinned npm packages (:mod:`p2pml_py.harness.install`), then reports what
the system still lacks. Exit status 0 when the harness can run, 1 otherwise (each missing piece
printed with its fix).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from p2pml_py.base.errors import HarnessError
from p2pml_py.harness import paths
from p2pml_py.harness.install import check_system, ensure_installed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pml-py harness",
        description="The browser interop harness (Chromium pages, pytest plugin).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser(
        "setup",
        help="install the pinned npm packages into a cache and check the system",
        description=(
            "Runs `npm ci --ignore-scripts --prefer-offline` on the package-lock.json shipped "
            "with p2pml-py, in CACHE/npm-<lock hash>/ (skipped when already installed), and "
            "checks Chromium, Playwright, node and ffmpeg. Tests find the packages there when "
            "P2PML_HARNESS_CACHE is the same CACHE (or both are the default)."
        ),
    )
    setup.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="cache root (default: $P2PML_HARNESS_CACHE, else ~/.cache/p2pml-py/harness)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    assert args.command == "setup"
    cache: Path | None = args.cache.expanduser().resolve() if args.cache else None
    if cache is not None and cache.exists() and not cache.is_dir():
        print(f"p2pml-py harness setup: --cache {cache} is not a directory", file=sys.stderr)
        return 2
    try:
        target = ensure_installed(cache)
    except HarnessError as exc:
        print(f"p2pml-py harness setup: {exc}", file=sys.stderr)
        return 1
    problems = check_system(need_stream_tools=not os.environ.get("P2PML_INTEROP_STREAM"))
    print(f"pages: {paths.pages_dir()}")
    print(f"npm packages: {target / 'node_modules'}")
    if cache is not None and cache != paths.harness_cache_root():
        print(f"tests find them with P2PML_HARNESS_CACHE={cache}")
    active = paths.node_root()
    if active != target and cache is None:
        print(f"note: the harness currently uses {active / 'node_modules'} (see harness/paths.py)")
    for problem in problems:
        label = "missing" if problem.fatal else "optional"
        print(f"{label}: {problem}", file=sys.stderr if problem.fatal else sys.stdout)
    return 1 if any(p.fatal for p in problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
