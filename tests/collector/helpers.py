"""Reports for the collector tests."""

from __future__ import annotations

import json
from typing import Any

STREAM = "http://127.0.0.1:8000/vod/master.m3u8"


def report(viewer: str = "a" * 32, **fields: Any) -> dict[str, Any]:
    """A valid first report; ``fields`` override."""
    base: dict[str, Any] = {
        "v": 1,
        "viewer": viewer,
        "stream": STREAM,
        "seq": 1,
        "t": 5000,
        "http": 1_000_000,
        "p2p": 3_000_000,
        "up": 500_000,
        "peers": 2,
        "stalls": 0,
        "startup": 800,
    }
    base.update(fields)
    return base


def body(viewer: str = "a" * 32, **fields: Any) -> bytes:
    return json.dumps(report(viewer, **fields)).encode()
