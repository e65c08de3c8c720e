"""``p2pml-py harness setup``: the pinned npm packages, installed into a cache on first use.

A wheel cannot carry ``node_modules`` (native prebuilt binaries, ~100 packages), so it ships the
``package.json`` and ``package-lock.json`` the harness was tested with (``web/``) and this command
runs ``npm ci --ignore-scripts`` on them in ``<cache>/npm-<lock>/`` (:mod:`p2pml_py.harness.paths`).
``npm ci`` installs exactly the lock; ``--ignore-scripts`` because an optional native WebRTC
module of a dependency would try to build itself (INTEROP-NOTES "Browser page");
``--prefer-offline`` so a second install, or one inside a network namespace, comes from npm's
cache. A stamp file (the lock's SHA-256) makes re-running a no-op.

It then checks what the harness needs from the system and says how to get what is missing:
Chromium (never downloaded: Debian's package or ``P2PML_CHROMIUM``), Playwright for Python, node
(the npm bittorrent-tracker fixture) and ffmpeg (only to generate the test stream).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pml_py.base.errors import HarnessError
from p2pml_py.harness import paths

__all__ = [
    "STAMP",
    "NpmPackage",
    "Problem",
    "check_system",
    "ensure_installed",
    "is_installed",
    "locked_packages",
]

#: Written into ``node_modules/`` after a successful install: the SHA-256 of the lock it came from
#: (the same stamp ``interop/setup.sh`` writes in a checkout).
STAMP = ".p2pml-lock"
_NPM_TIMEOUT = 900.0  # seconds; a cold install downloads ~40 MB


@dataclass(frozen=True, slots=True)
class NpmPackage:
    """A top-level dependency of the lock: ``alias`` is its folder in ``node_modules``."""

    alias: str
    name: str
    version: str

    def __str__(self) -> str:
        real = "" if self.alias == self.name else f" (as {self.alias})"
        return f"{self.name} {self.version}{real}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the harness needs from the system; ``fatal`` when no test can run without it."""

    what: str
    fix: str
    fatal: bool

    def __str__(self) -> str:
        return f"{self.what}: {self.fix}"


def locked_packages(lock: Mapping[str, Any]) -> list[NpmPackage]:
    """The top-level packages of a ``package-lock.json`` (lockfileVersion 2 or 3), by alias."""
    try:
        packages: Mapping[str, Mapping[str, Any]] = lock["packages"]
        wanted: Mapping[str, str] = packages[""].get("dependencies") or {}
        result = []
        for alias in sorted(wanted):
            entry = packages[f"node_modules/{alias}"]
            result.append(NpmPackage(alias, str(entry.get("name") or alias), str(entry["version"])))
    except (KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"package-lock.json: no packages/dependencies entry {exc}") from exc
    return result


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a JSON object")
    return data


def is_installed(target: Path, digest: str, packages: Sequence[NpmPackage]) -> bool:
    """``npm ci`` of the lock with SHA-256 ``digest`` completed in ``target``."""
    modules = target / "node_modules"
    try:
        stamp = (modules / STAMP).read_text().strip()
    except OSError:
        return False
    return stamp == digest and all((modules / p.alias / "package.json").is_file() for p in packages)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_installed(
    cache_root: Path | None = None,
    *,
    say: Callable[[str], None] = print,
    npm: str | None = None,
) -> Path:
    """Install the shipped lock into ``<cache_root>/npm-<lock>/`` unless it already is there.

    Returns that directory (its ``node_modules`` is what the harness serves). Raises
    :class:`HarnessError` naming the fix when npm is missing or ``npm ci`` fails.
    """
    target = paths.npm_dir(cache_root)
    digest = paths.lock_digest()
    packages = locked_packages(_read_lock(paths.lock_file()))
    listing = "\n".join(f"  {p}" for p in packages)
    if is_installed(target, digest, packages):
        say(f"npm packages already installed in {target}:\n{listing}")
        return target
    npm = npm or shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise HarnessError(
            "node and npm are needed to install the harness's npm packages: "
            "apt-get install nodejs npm (Debian 12), then run p2pml-py harness setup again"
        )
    say(f"installing {len(packages)} pinned npm packages (and their locked dependencies) into")
    say(f"{target}:\n{listing}")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(paths.web_dir() / name, target / name)
    (target / "node_modules" / STAMP).unlink(missing_ok=True)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"]
    say(f"running: {' '.join(['npm', *command[1:]])}")
    try:
        result = subprocess.run(
            command,
            cwd=target,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(
            f"npm ci did not finish within {_NPM_TIMEOUT:.0f} s in {target}"
        ) from exc
    if result.returncode != 0:
        raise HarnessError(
            f"npm ci failed in {target} (exit {result.returncode}); without the network it can "
            f"only install from npm's cache:\n{_tail(result.stdout + result.stderr)}"
        )
    if not all((target / "node_modules" / p.alias / "package.json").is_file() for p in packages):
        raise HarnessError(f"npm ci in {target} left packages missing:\n{_tail(result.stdout)}")
    (target / "node_modules" / STAMP).write_text(digest + "\n")
    say("npm packages installed")
    return target


def check_system(*, need_stream_tools: bool = True) -> list[Problem]:
    """What the harness needs from the system and does not find, each with its fix."""
    problems: list[Problem] = []
    reason = paths.missing_chromium(paths.chromium_executable())
    if reason is not None:
        what, _, fix = reason.partition(": ")
        problems.append(Problem(what, fix, fatal=True))
    if importlib.util.find_spec("playwright") is None:
        problems.append(
            Problem(
                "no Playwright for Python",
                "pip install 'p2pml-py[interop]' (or pip install playwright)",
                fatal=True,
            )
        )
    if shutil.which("node") is None:
        problems.append(
            Problem("no node", "apt-get install nodejs (the npm_tracker fixture)", fatal=False)
        )
    if need_stream_tools and shutil.which("ffmpeg") is None:
        problems.append(
            Problem(
                "no ffmpeg",
                "apt-get install ffmpeg, or set P2PML_INTEROP_STREAM to a stream of your own",
                fatal=False,
            )
        )
    return problems
