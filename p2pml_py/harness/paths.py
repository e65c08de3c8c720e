"""Where the harness finds its files: ``interop/`` (pages, npm packages) and the stream cache.

Both can be moved with environment variables so the harness works from an installed package:
``P2PML_INTEROP_DIR`` (default: ``interop/`` next to the ``p2pml_py`` package in a checkout) and
``P2PML_INTEROP_CACHE`` (default: ``<interop>/.cache``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "interop_dir", "node_modules_dir", "pages_dir"]


def interop_dir() -> Path:
    env = os.environ.get("P2PML_INTEROP_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2] / "interop"


def cache_dir() -> Path:
    env = os.environ.get("P2PML_INTEROP_CACHE")
    if env:
        return Path(env).resolve()
    return interop_dir() / ".cache"


def pages_dir() -> Path:
    return interop_dir() / "pages"


def node_modules_dir() -> Path:
    return interop_dir() / "node_modules"
