"""What a worker reports about one stream, typed on both ends of the JSON-lines channel.

The worker builds a :class:`StreamSnapshot` and sends ``to_json()``; the supervisor reads it back
with :meth:`StreamSnapshot.from_json` (a malformed report raises ``KeyError``/``TypeError``/
``ValueError`` and is dropped there), and metrics and the status page read attributes. The JSON
shape is the one ``/status`` serves under ``streams[].renditions`` and ``streams[].trackers``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RenditionSnapshot", "StreamSnapshot", "SwarmSnapshot", "TrackerSnapshot"]


@dataclass(frozen=True, slots=True)
class SwarmSnapshot:
    version: str
    info_hash: str
    peer_id: str
    peers: int
    uploaded: int
    connects: int
    connection_errors: int
    offers_refused: int
    #: Closed connections by :attr:`~p2pml_py.engine.outcomes.Closed.key`.
    drops: dict[str, int]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SwarmSnapshot:
        return cls(
            version=str(data["version"]),
            info_hash=str(data["info_hash"]),
            peer_id=str(data["peer_id"]),
            peers=int(data["peers"]),
            uploaded=int(data["uploaded"]),
            connects=int(data["connects"]),
            connection_errors=int(data["connection_errors"]),
            offers_refused=int(data.get("offers_refused", 0)),
            drops={str(k): int(v) for k, v in data["drops"].items()},
        )


@dataclass(frozen=True, slots=True)
class RenditionSnapshot:
    label: str
    type: str
    held_segments: int
    held_bytes: int
    swarms: tuple[SwarmSnapshot, ...]
    #: What it fetches (:class:`~p2pml_py.roles.demand.FetchMode`): ``all`` or ``demand``
    #: (``auto`` until its first playlist said live or VOD).
    fetch: str = "all"
    #: ``following`` (fetching from the origin) or ``idle`` (demand mode, no other peer).
    state: str = "following"
    #: Segment bytes and segments it fetched from the origin.
    origin_bytes: int = 0
    origin_segments: int = 0
    #: Segments fetch-everything would have fetched that it did not, and their estimated bytes
    #: (:class:`~p2pml_py.roles.demand.FetchAccount`).
    skipped_segments: int = 0
    saved_bytes: int = 0
    #: Times it started following.
    starts: int = 0
    #: Other peers the trackers counted at the last look (``None``: no count yet).
    tracker_others: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenditionSnapshot:
        others = data.get("tracker_others")
        return cls(
            label=str(data["label"]),
            type=str(data["type"]),
            held_segments=int(data["held_segments"]),
            held_bytes=int(data["held_bytes"]),
            swarms=tuple(SwarmSnapshot.from_json(s) for s in data["swarms"]),
            fetch=str(data.get("fetch", "all")),
            state=str(data.get("state", "following")),
            origin_bytes=int(data.get("origin_bytes", 0)),
            origin_segments=int(data.get("origin_segments", 0)),
            skipped_segments=int(data.get("skipped_segments", 0)),
            saved_bytes=int(data.get("saved_bytes", 0)),
            starts=int(data.get("starts", 0)),
            tracker_others=None if others is None else int(others),
        )


@dataclass(frozen=True, slots=True)
class OutageSnapshot:
    """A source's outages (:class:`~p2pml_py.base.outage.Outage`): down now, outages that
    ended, and seconds down in total (the current outage included)."""

    down: bool = False
    outages: int = 0
    down_seconds: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OutageSnapshot:
        if not data:
            return cls()
        return cls(
            bool(data.get("down", False)),
            int(data.get("outages", 0)),
            float(data.get("down_seconds", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class TrackerSnapshot:
    connected: bool
    errors: dict[str, int]
    outage: OutageSnapshot = field(default_factory=OutageSnapshot)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrackerSnapshot:
        return cls(
            bool(data["connected"]),
            {str(k): int(v) for k, v in data["errors"].items()},
            OutageSnapshot.from_json(data.get("outage")),
        )


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    name: str
    url: str
    #: ``starting``, ``serving``, ``retrying`` or ``stopped``.
    state: str
    error: str | None = None
    since: float | None = None
    attempts: int = 0
    rate_limit: float | None = None
    #: Uploads the rate limit turned away.
    refused: int = 0
    origin_bytes: int = 0
    origin_errors: dict[str, int] = field(default_factory=dict)
    #: Origin playlist outages, every rendition's playlist together.
    origin_outage: OutageSnapshot = field(default_factory=OutageSnapshot)
    #: Segment bodies that failed their checks (p2pml_py.hls.guard), by reason.
    segments_rejected: dict[str, int] = field(default_factory=dict)
    #: Held VOD segments replaced because the origin's copy changed (revalidation).
    segments_replaced: int = 0
    renditions: tuple[RenditionSnapshot, ...] = ()
    trackers: dict[str, TrackerSnapshot] = field(default_factory=dict)

    @property
    def peers(self) -> int:
        return sum(s.peers for r in self.renditions for s in r.swarms)

    @property
    def saved_bytes(self) -> int:
        """Estimated origin bytes demand-driven fetching saved, every rendition together."""
        return sum(r.saved_bytes for r in self.renditions)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["renditions"] = list(data["renditions"])
        for rendition in data["renditions"]:
            rendition["swarms"] = list(rendition["swarms"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamSnapshot:
        since = data.get("since")
        rate = data.get("rate_limit")
        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            state=str(data["state"]),
            error=None if data.get("error") is None else str(data["error"]),
            since=None if since is None else float(since),
            attempts=int(data.get("attempts", 0)),
            rate_limit=None if rate is None else float(rate),
            refused=int(data.get("refused", 0)),
            origin_bytes=int(data.get("origin_bytes", 0)),
            origin_errors={str(k): int(v) for k, v in data.get("origin_errors", {}).items()},
            origin_outage=OutageSnapshot.from_json(data.get("origin_outage")),
            segments_rejected={
                str(k): int(v) for k, v in data.get("segments_rejected", {}).items()
            },
            segments_replaced=int(data.get("segments_replaced", 0)),
            renditions=tuple(RenditionSnapshot.from_json(r) for r in data.get("renditions", [])),
            trackers={
                str(url): TrackerSnapshot.from_json(t)
                for url, t in data.get("trackers", {}).items()
            },
        )
