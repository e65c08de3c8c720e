"""What a role reports when it stops: typed summaries for ``seed``, ``watch`` and ``demo``.

``to_json()`` gives the ``--json`` output: the same keys, in the same order, as before these
types existed (documented in the README), so scripts reading it keep working.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from p2pml_py.engine.streams import PeerSummary

__all__ = ["DemoSummary", "PeerSummary", "SeederSummary", "ViewerSummary"]


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_json()  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _fields_json(obj: Any) -> dict[str, Any]:
    return {f.name: _json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


@dataclass(frozen=True, slots=True)
class SeederSummary:
    manifest_url: str
    duration: float
    http_bytes: int
    uploaded_bytes: int
    origin_errors: int
    peers: dict[str, PeerSummary]
    #: Closed connections by :attr:`~p2pml_py.engine.outcomes.Closed.key`.
    drops: dict[str, int]
    streams: list[dict[str, Any]]
    #: SHA-256 of every held segment, by media playlist URL and segment id.
    segments: dict[str, dict[str, str]]
    role: str = field(default="seeder", init=False)
    p2p_bytes: int = field(default=0, init=False)

    @property
    def peers_seen(self) -> int:
        return len(self.peers)

    def to_json(self) -> dict[str, Any]:
        data = _fields_json(self)
        order = (
            "role manifest_url duration http_bytes p2p_bytes uploaded_bytes origin_errors "
            "peers_seen peers drops streams segments"
        ).split()
        data["peers_seen"] = self.peers_seen
        return {key: data[key] for key in order}


@dataclass(frozen=True, slots=True)
class ViewerSummary:
    manifest_url: str
    duration: float
    http_bytes: int
    p2p_bytes: int
    uploaded_bytes: int
    stalls: int
    stall_time: float
    startup_time: float | None
    skips: int
    position: float | None
    ended: bool
    #: HTTP-loaded segments by why they went to HTTP (``urgent``, ``random``, ...).
    http_segments: dict[str, int]
    p2p_segments: int
    p2p_failures: dict[str, int]
    origin_errors: int
    peers: dict[str, PeerSummary]
    drops: dict[str, int]
    streams: list[dict[str, Any]]
    segments: dict[str, dict[str, str]]
    role: str = field(default="viewer", init=False)

    @property
    def peers_seen(self) -> int:
        return len(self.peers)

    @property
    def p2p_share(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        data = _fields_json(self)
        data["p2p_share"] = round(self.p2p_share, 4)
        data["peers_seen"] = self.peers_seen
        order = (
            "role manifest_url duration http_bytes p2p_bytes p2p_share uploaded_bytes stalls "
            "stall_time startup_time skips position ended http_segments p2p_segments "
            "p2p_failures origin_errors peers_seen peers drops streams segments"
        ).split()
        return {key: data[key] for key in order}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    stream: str
    duration: float
    seeder: SeederSummary
    viewers: list[ViewerSummary]
    #: Segment bytes the origin served, and how many copies of the stream that is.
    origin_segment_bytes: int
    origin_copies: float

    @property
    def p2p_share(self) -> float:
        http = sum(v.http_bytes for v in self.viewers)
        p2p = sum(v.p2p_bytes for v in self.viewers)
        return p2p / (http + p2p) if http + p2p else 0.0

    @property
    def stalls(self) -> int:
        return sum(v.stalls for v in self.viewers)

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "duration": self.duration,
            "seeder": self.seeder.to_json(),
            "viewers": [v.to_json() for v in self.viewers],
            "p2p_share": self.p2p_share,
            "stalls": self.stalls,
            "origin": {"segment_bytes": self.origin_segment_bytes, "copies": self.origin_copies},
        }
