"""Demand-driven fetching: when a seeder fetches a rendition from the origin (sans-I/O).

Why
---
A seeder that fetches every rendition all the time costs the origin one copy of the whole ladder
whether anyone watches or not; with 5-7 renditions and viewers on one or two of them it can cost
more than it saves. A rendition is worth fetching only while its swarm (either protocol version)
has *other* peers, and browsers make that visible in three ways, all of which reach a seeder that
stays joined (announced to the tracker) while it fetches nothing:

* the tracker's ``complete``/``incomplete`` counts in every announce response
  (``_onAnnounceResponse`` of bittorrent-tracker's ``websocket-tracker.js``): every peer of the
  swarm, ourselves included (p2p-media-loader announces no ``left``, so browsers and we are all
  ``incomplete``). Fresh once per *our* announce ``interval``;
* an offer relayed from a peer we are not connected to: a browser joining a swarm announces with
  5 offers at once (``Math.min(opts.numwant, 5)``), and re-announces with 5 fresh ones every
  ``interval`` -- 120 s from bittorrent-tracker (``ceil(intervalMs / 1000 / 5)``), 20 s from
  wt-tracker -- so a newcomer is seen within a second;
* a connected peer -- one that connected within the grace period, or that took segments from us
  within it. A connected peer that does neither is not demand: another seeder of the same stream
  (a fleet's second replica, a second ``seed``) connects too and never downloads, and counting it
  would keep both seeders following forever. For the same reason the tracker counts can be told
  to discount ``known_seeders`` (the other replicas announced in every swarm).

How
---
:class:`DemandPolicy` is one rendition's state machine, fed with the time and
:class:`DemandSignals` by its driver (the seeder polls every ``tick``). ``IDLE`` -> ``FOLLOWING``
as soon as any signal says another peer is there; ``FOLLOWING`` -> ``IDLE`` once no signal has
said so for ``grace`` seconds. What the seeder does in each state (:class:`FetchMode`):

* live: it keeps reloading the media playlist (a few hundred bytes a reload) so that it knows the
  live edge; while following it fetches each new segment, and on waking it first fetches the
  newest ``WAKE_SEGMENTS`` of the window -- where a joining hls.js player starts
  (``liveSyncDurationCount`` = 3 segments behind the end) -- then the rest of the window,
  newest to oldest, for pages that start further back. A browser loads its first
  ``highDemandTimeWindow`` (15 s, ``core/core.ts``) over HTTP anyway, which leaves that time to
  start following;
* VOD: it fetches the rendition's segments in order once it is first wanted (pausing while idle),
  and keeps them under ``store_mb`` like every other store.

**The grace period** (``DEFAULT_GRACE`` = 30 s) is p2p-media-loader's own:
``p2pInactiveLoaderDestroyTimeoutMs`` (30 000 ms, ``core/core.ts``) is how long a browser keeps a
swarm it switched away from, expecting to come back (ABR switches). We keep following as long. It
only guards against start/stop churn: a peer that comes back re-announces with offers and wakes
the rendition at once, and a restart costs a few segments from the live edge. Because the counts
are only as fresh as our last announce, a rendition goes idle at most ``interval + grace`` after
its last other peer left (connections and offers are seen at once).

**Bytes saved** (:class:`FetchAccount`) is what fetch-everything would have fetched and we did
not: every segment that appeared in the playlist (live: published while idle, the window at
start included; VOD: the whole playlist, until fetched) times its size -- exact for a byte range,
else the mean size of the rendition's segments fetched so far, else the variant's ``BANDWIDTH``
(hls.js ``bitrate``) times the segment's duration. ``BANDWIDTH`` is a peak rate (RFC 8216
4.3.4.2), so before anything was fetched the estimate errs high; segments with no size at all
(an audio rendition never fetched) are counted but add no bytes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from p2pml_py.hls.playlist import Segment, Stream

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_TICK",
    "WAKE_SEGMENTS",
    "DemandConfig",
    "DemandPolicy",
    "DemandSignals",
    "FetchAccount",
    "FetchMode",
    "FetchReport",
    "RenditionState",
    "estimate_segment_bytes",
]

#: ``p2pInactiveLoaderDestroyTimeoutMs`` (30 s): how long a browser keeps a swarm it left.
DEFAULT_GRACE: Final = 30.0
#: Seconds between two looks at the signals (an offer is seen at most this late).
DEFAULT_TICK: Final = 1.0
#: Newest segments fetched on waking: hls.js ``liveSyncDurationCount`` (3), where players start.
WAKE_SEGMENTS: Final = 3


class FetchMode(enum.StrEnum):
    """What a seeder fetches from the origin, per rendition."""

    #: Live: ``DEMAND``; VOD: ``ALL`` (the default of ``seed`` and the super-peer).
    AUTO = "auto"
    #: Every segment of every rendition, watched or not.
    ALL = "all"
    #: A rendition only while its swarm has other peers (this module).
    DEMAND = "demand"

    @classmethod
    def parse(cls, value: object, field_name: str = "fetch") -> FetchMode:
        """``value`` as a mode; :class:`ValueError` naming ``field_name`` otherwise."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(f'{field_name}: must be "auto", "all" or "demand", got {value!r}')

    def resolve(self, live: bool) -> FetchMode:
        """``ALL`` or ``DEMAND`` for a live or VOD rendition."""
        if self is FetchMode.AUTO:
            return FetchMode.DEMAND if live else FetchMode.ALL
        return self


class RenditionState(enum.StrEnum):
    IDLE = "idle"
    FOLLOWING = "following"


@dataclass(frozen=True, slots=True)
class DemandConfig:
    #: Seconds a rendition keeps following after the last sign of another peer.
    grace: float = DEFAULT_GRACE
    #: Seconds between two looks at the signals.
    tick: float = DEFAULT_TICK
    #: Other seeders announced in every swarm of the stream (a fleet's other replicas): the
    #: tracker counts them like viewers, so they are discounted.
    known_seeders: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.grace) or self.grace < 0:
            raise ValueError(f"demand grace: must be a number of seconds >= 0, got {self.grace}")
        if not math.isfinite(self.tick) or self.tick <= 0:
            raise ValueError(f"demand tick: must be a number of seconds > 0, got {self.tick}")
        if self.known_seeders < 0:
            raise ValueError(f"known_seeders: must be >= 0, got {self.known_seeders}")


@dataclass(frozen=True, slots=True)
class DemandSignals:
    """What one rendition's swarms say right now (both protocol versions together)."""

    #: Other peers the trackers count (per swarm the highest count of a connected tracker, minus
    #: ourselves and the known seeders, summed over the versions); ``None``: no count yet.
    tracker_others: int | None = None
    #: Offers received so far from peers we were not connected to (a running total).
    offers: int = 0
    #: Connected peers: peer id -> bytes uploaded to it so far.
    peers: Mapping[str, int] = field(default_factory=dict)


class DemandPolicy:
    """One rendition: ``IDLE`` or ``FOLLOWING``, from :class:`DemandSignals` and the time."""

    def __init__(self, config: DemandConfig | None = None) -> None:
        self.config = config or DemandConfig()
        self.state = RenditionState.IDLE
        #: When the state last changed (``None``: never).
        self.since: float | None = None
        #: Latest time a signal said another peer is there.
        self.last_demand: float | None = None
        #: What said so: ``tracker``, ``offer`` or ``peer``.
        self.reason: str | None = None
        #: Times the rendition started following.
        self.starts = 0
        self._offers = 0  # the running total of offers at the last look
        # Connected peers: id -> (bytes uploaded to it, when it last connected or took bytes).
        # Only peers connected now are kept, so this is bounded by the swarms' max_peers.
        self._peers: dict[str, tuple[int, float]] = {}

    @property
    def following(self) -> bool:
        return self.state is RenditionState.FOLLOWING

    def idle_at(self) -> float | None:
        """When a following rendition goes idle unless another sign comes."""
        if not self.following or self.last_demand is None:
            return None
        return self.last_demand + self.config.grace

    def update(self, now: float, signals: DemandSignals) -> bool:
        """Take the signals seen at ``now``; True when the state changed."""
        seen = self._demand(now, signals)
        if seen is not None:
            reason, when = seen
            if self.last_demand is None or when >= self.last_demand:
                self.last_demand, self.reason = when, reason
            if not self.following:
                self.state, self.since = RenditionState.FOLLOWING, now
                self.starts += 1
                return True
        idle_at = self.idle_at()
        if idle_at is not None and now >= idle_at:
            self.state, self.since = RenditionState.IDLE, now
            return True
        return False

    def _demand(self, now: float, signals: DemandSignals) -> tuple[str, float] | None:
        """The latest sign of another peer within the grace: what it was and when."""
        offers, self._offers = self._offers, signals.offers
        peers: dict[str, tuple[int, float]] = {}
        for peer_id, uploaded in signals.peers.items():
            before = self._peers.get(peer_id)
            if before is None or uploaded > before[0]:
                peers[peer_id] = (uploaded, now)  # just connected, or took bytes since
            else:
                peers[peer_id] = before
        self._peers = peers
        if signals.tracker_others is not None and signals.tracker_others > 0:
            return "tracker", now
        if signals.offers > offers:
            return "offer", now
        active = max((at for _, at in peers.values()), default=None)
        if active is not None and now - active < self.config.grace:
            return "peer", active
        return None


def estimate_segment_bytes(segment: Segment, stream: Stream, mean_size: float | None) -> int | None:
    """The segment's size as fetch-everything would have paid it (see the module doc)."""
    if segment.byte_range is not None:
        start, end = segment.byte_range
        return end - start + 1
    if mean_size is not None:
        return round(mean_size)
    if stream.bitrate and segment.duration > 0:
        return round(stream.bitrate * segment.duration / 8)
    return None


@dataclass(frozen=True, slots=True)
class FetchReport:
    """One rendition's fetching, for summaries, snapshots and metrics."""

    label: str
    #: ``auto`` until the first playlist says live or VOD, then ``all`` or ``demand``.
    mode: str
    #: ``following`` or ``idle`` (fetch-everything always follows).
    state: str
    #: Segment bytes and segments fetched from the origin.
    origin_bytes: int
    origin_segments: int
    #: Segments fetch-everything would have fetched that we did not, and their estimated bytes.
    skipped_segments: int
    saved_bytes: int
    #: Times the rendition started following (demand mode).
    starts: int
    #: Other peers the trackers counted at the last look (``None``: no count yet).
    tracker_others: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "mode": self.mode,
            "state": self.state,
            "origin_bytes": self.origin_bytes,
            "origin_segments": self.origin_segments,
            "skipped_segments": self.skipped_segments,
            "saved_bytes": self.saved_bytes,
            "starts": self.starts,
            "tracker_others": self.tracker_others,
        }


class FetchAccount:
    """Origin bytes fetched, and the estimate of those saved, for one rendition."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.origin_bytes = 0
        self.origin_segments = 0
        self.skipped_segments = 0
        self._saved_bytes = 0
        # Segments skipped that may still be fetched (live: in the window; VOD: the playlist):
        # id -> estimated size. Fetching one takes it back out of the savings.
        self._pending: dict[int, int | None] = {}

    @property
    def mean_size(self) -> float | None:
        return self.origin_bytes / self.origin_segments if self.origin_segments else None

    @property
    def saved_bytes(self) -> int:
        return self._saved_bytes

    def skipped(self, segment: Segment) -> None:
        """Fetch-everything would have fetched ``segment`` now; we do not (yet)."""
        if segment.external_id in self._pending:
            return
        size = estimate_segment_bytes(segment, self.stream, self.mean_size)
        self._pending[segment.external_id] = size
        self.skipped_segments += 1
        self._saved_bytes += size or 0

    def fetched(self, segment_id: int, size: int) -> None:
        self.origin_bytes += size
        self.origin_segments += 1
        if segment_id in self._pending:
            estimate = self._pending.pop(segment_id)
            self.skipped_segments -= 1
            self._saved_bytes -= estimate or 0

    def forget_outside(self, first: int, last: int) -> None:
        """Live: only segments ``first..last`` are in the window now; those that left it (or
        belong to a stream that restarted its sequence numbers) stay saved for good."""
        for sid in [sid for sid in self._pending if not first <= sid <= last]:
            del self._pending[sid]
