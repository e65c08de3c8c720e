"""Which segment to load next, and from where: the browsers' hybrid-loader policy, sans-I/O.

This mirrors ``core/hybrid-loader.ts`` and ``core/utils/stream.ts`` of p2p-media-loader 2.x
(SPEC section e), so a Python viewer loads its origin and its peers the way a browser does:

* The **queue** is the segments of the stream from the one at the playhead onwards. A segment is
  inside a time window ``w`` unless ``position + w * rate < start`` or ``position > end``.
* Segments inside the **high-demand window** (15 s) are urgent: HTTP first when an HTTP slot is free,
  else P2P from a peer that has the segment.
* Other segments in the **P2P window** come from peers only, when a peer announces them and a
  P2P slot is free.
* **Random HTTP seeding** (``loadRandomThroughHttp``): every ``1 + random() * peers`` seconds, with at
  least one peer connected, the candidates are queue segments in the HTTP window that no peer has or
  is loading over HTTP and that we neither hold nor load. With ``n = peers + 1`` a budget of
  ``min(candidates, 2n) / n`` downloads is spent on shuffled candidates (one certain download per
  whole unit, the remainder with that probability), so about one peer in ``n`` fetches each new
  segment from the origin and the others get it from that peer.

Time and randomness are inputs; the driver performs the downloads.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Defaults of ``DEFAULT_STREAM_CONFIG`` (``core/core.ts``), 2.3.x."""

    simultaneous_http_downloads: int = 2
    simultaneous_p2p_downloads: int = 3
    high_demand_time_window: float = 15.0
    http_download_time_window: float = 3000.0
    p2p_download_time_window: float = 6000.0
    playback_rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("simultaneous_http_downloads", "simultaneous_p2p_downloads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in (
            "high_demand_time_window",
            "http_download_time_window",
            "p2p_download_time_window",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.playback_rate <= 0:
            raise ValueError("playback_rate must be > 0")


@dataclass(frozen=True, slots=True)
class QueueItem:
    segment_id: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Load:
    """Start loading ``segment_id`` from ``source``; ``reason`` says which rule chose it."""

    segment_id: int
    source: Literal["http", "p2p"]
    reason: Literal["urgent", "prefetch", "random"]


@dataclass(frozen=True, slots=True)
class Situation:
    """What the scheduler sees at one instant."""

    position: float
    queue: Sequence[QueueItem]
    stored: Container[int]
    http_loading: Container[int]
    p2p_loading: Container[int]
    http_slots_used: int
    p2p_slots_used: int
    peer_count: int
    peer_has: Callable[[int], bool]  # some connected peer announces it as loaded
    peer_http_loading: Callable[[int], bool]  # some connected peer loads it over HTTP
    #: an *idle* peer has it (one download per connection): defaults to ``peer_has``
    peer_can_serve: Callable[[int], bool] | None = None
    http_blocked: Container[int] = ()  # segments whose HTTP retry is backing off


def in_window(item: QueueItem, position: float, window: float, rate: float) -> bool:
    """``!(pos + w * rate < start || pos > end)`` (``core/utils/stream.ts``)."""
    return not (position + window * rate < item.start or position > item.end)


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None, rng: random.Random | None = None):
        self.config = config or SchedulerConfig()
        self.rng = rng or random.Random()

    def decide(self, s: Situation) -> list[Load]:
        """Loads to start now for urgent and prefetchable segments, in queue order."""
        config = self.config
        http_free = config.simultaneous_http_downloads - s.http_slots_used
        p2p_free = config.simultaneous_p2p_downloads - s.p2p_slots_used
        can_serve = s.peer_can_serve or s.peer_has
        loads: list[Load] = []
        for item in s.queue:
            if http_free <= 0 and p2p_free <= 0:
                break
            sid = item.segment_id
            if sid in s.stored or sid in s.http_loading or sid in s.p2p_loading:
                continue
            rate = config.playback_rate
            if in_window(item, s.position, config.high_demand_time_window, rate):
                if http_free > 0 and sid not in s.http_blocked:
                    loads.append(Load(sid, "http", "urgent"))
                    http_free -= 1
                elif p2p_free > 0 and can_serve(sid):
                    loads.append(Load(sid, "p2p", "urgent"))
                    p2p_free -= 1
            elif (
                p2p_free > 0
                and in_window(item, s.position, config.p2p_download_time_window, rate)
                and can_serve(sid)
            ):
                loads.append(Load(sid, "p2p", "prefetch"))
                p2p_free -= 1
        return loads

    def random_http_delay(self, peer_count: int) -> float:
        """Seconds to the next random-HTTP round: ``1000 + random() * 1000 * peers`` ms."""
        return 1.0 + self.rng.random() * max(peer_count, 0)

    def random_http(self, s: Situation) -> list[Load]:
        """One round of ``loadRandomThroughHttp``."""
        config = self.config
        http_free = config.simultaneous_http_downloads - s.http_slots_used
        if s.peer_count < 1 or http_free <= 0:
            return []
        candidates = [
            item.segment_id
            for item in s.queue
            if in_window(item, s.position, config.http_download_time_window, config.playback_rate)
            and item.segment_id not in s.stored
            and item.segment_id not in s.http_loading
            and item.segment_id not in s.p2p_loading
            and item.segment_id not in s.http_blocked
            and not s.peer_has(item.segment_id)
            and not s.peer_http_loading(item.segment_id)
        ]
        if not candidates:
            return []
        n = s.peer_count + 1
        probability = min(len(candidates), config.simultaneous_http_downloads * n) / n
        self.rng.shuffle(candidates)
        loads: list[Load] = []
        for sid in candidates:
            if probability <= 0 or http_free <= 0:
                break
            if probability >= 1 or self.rng.random() <= probability:
                loads.append(Load(sid, "http", "random"))
                http_free -= 1
            probability -= 1
        return loads
