"""Where the harness finds its files, from a git checkout or from an installed wheel.

* **Pages and the npm lock** ship inside the package (``p2pml_py/harness/web/``: ``pages/``,
  ``package.json``, ``package-lock.json``, ``node/``), so they are the same wherever it runs.
* **npm packages** (``node_modules/``), the first of:

  1. ``$P2PML_INTEROP_DIR/node_modules`` (a directory you installed the lock into yourself);
  2. ``$P2PML_HARNESS_CACHE/npm-<lock>/node_modules`` when that variable is set;
  3. ``interop/node_modules`` of a git checkout, when it exists (``interop/setup.sh``);
  4. ``<user cache>/p2pml-py/harness/npm-<lock>/node_modules``, what ``p2pml-py harness setup``
     installs (``<lock>``: the first 12 hex digits of the SHA-256 of the shipped lock file, so a
     new lock never picks up packages installed from an old one).

* **Generated files** (the test stream): ``$P2PML_INTEROP_CACHE``, else ``interop/.cache`` of a
  checkout, else the harness cache root.

``<user cache>`` is ``$XDG_CACHE_HOME`` or ``~/.cache``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = [
    "DEFAULT_CHROMIUM",
    "cache_dir",
    "checkout_interop_dir",
    "chromium_executable",
    "harness_cache_root",
    "lock_digest",
    "lock_file",
    "missing_chromium",
    "node_modules_dir",
    "node_root",
    "node_scripts_dir",
    "npm_dir",
    "pages_dir",
    "web_dir",
]

_WEB = Path(__file__).resolve().parent / "web"
DEFAULT_CHROMIUM = "/usr/bin/chromium"


def web_dir() -> Path:
    """The harness's package data: pages, the npm manifest and lock, node helper scripts."""
    return _WEB


def pages_dir() -> Path:
    return _WEB / "pages"


def node_scripts_dir() -> Path:
    return _WEB / "node"


def lock_file() -> Path:
    return _WEB / "package-lock.json"


def lock_digest() -> str:
    """SHA-256 (hex) of the shipped ``package-lock.json``."""
    return hashlib.sha256(lock_file().read_bytes()).hexdigest()


def checkout_interop_dir() -> Path | None:
    """``interop/`` of the git checkout this package runs from; None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    interop = root / "interop"
    if interop.is_dir() and (root / "setup.cfg").is_file():
        return interop
    return None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else None


def harness_cache_root() -> Path:
    """``$P2PML_HARNESS_CACHE``, else ``<user cache>/p2pml-py/harness``."""
    explicit = _env_path("P2PML_HARNESS_CACHE")
    if explicit is not None:
        return explicit
    base = _env_path("XDG_CACHE_HOME") or Path.home() / ".cache"
    return base / "p2pml-py" / "harness"


def npm_dir(cache_root: Path | None = None) -> Path:
    """Where ``p2pml-py harness setup`` installs the shipped lock under ``cache_root``."""
    return (cache_root or harness_cache_root()) / f"npm-{lock_digest()[:12]}"


def node_root() -> Path:
    """The directory whose ``node_modules/`` the harness uses (see the module docstring)."""
    explicit = _env_path("P2PML_INTEROP_DIR")
    if explicit is not None:
        return explicit
    if os.environ.get("P2PML_HARNESS_CACHE"):
        return npm_dir()
    interop = checkout_interop_dir()
    if interop is not None and (interop / "node_modules").is_dir():
        return interop
    return npm_dir()


def node_modules_dir() -> Path:
    return node_root() / "node_modules"


def chromium_executable() -> str:
    """``$P2PML_CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    return os.environ.get("P2PML_CHROMIUM") or DEFAULT_CHROMIUM


def missing_chromium(path: str) -> str | None:
    """Why ``path`` cannot be the harness's browser, with the fix; None when it can."""
    if os.access(path, os.X_OK) and Path(path).is_file():
        return None
    return (
        f"no Chromium at {path}: install Debian's chromium package (apt-get install chromium), "
        "or point P2PML_CHROMIUM at a Chromium or Chrome binary (the harness drives the system "
        "browser; it never runs `playwright install`)"
    )


def cache_dir() -> Path:
    """Generated files (the test stream): ``$P2PML_INTEROP_CACHE``, else ``interop/.cache`` of a
    checkout, else the harness cache root."""
    explicit = _env_path("P2PML_INTEROP_CACHE")
    if explicit is not None:
        return explicit
    interop = checkout_interop_dir()
    if interop is not None:
        return interop / ".cache"
    return harness_cache_root()
