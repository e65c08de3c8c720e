"""The viewer's player model, sans-I/O: playhead, stalls, live sync, and what to load when.

:class:`~p2pml_py.roles.viewer.Viewer` drives it from asyncio; this module never awaits, never
reads a clock and never draws from a global RNG: the time is the ``now`` argument of each call,
randomness is the ``random.Random`` given to the constructor, and every decision is a returned
value (:class:`PlayerEvent` for the playhead, :class:`Plan` for the loads). So a unit test can
play a stream on plain floats.

The model, and the browser rules it mirrors:

* **Timeline.** Segments get times on one continuous clock. A live playlist restarts its clock at
  every reload, so each reload is anchored on a segment already known; a reload sharing no segment
  continues where the timeline ended. The timeline is kept sorted by start time as segments are
  inserted, so a tick finds the playhead's segment by bisection instead of sorting.
* **Start.** VOD starts at the first segment. Live starts ``live_sync_segments`` segments behind
  the live edge, as hls.js does with ``liveSyncDurationCount`` (3 target durations by default).
* **Playhead.** Once the segment at the playhead is held the player plays, advancing at
  ``playback_rate`` times the elapsed time, never past the end of the contiguous held segments.
  Reaching that end is a **stall**; it ends when the segment at the playhead arrives. The first
  start is the start-up time. A VOD ends when the playhead passes the last segment; a live
  playhead that fell out of the window jumps to the next segment it still has (a skip).
* **Queue.** The segments from the one at the playhead onwards (``generateQueue`` in
  ``core/utils/queue.ts``); window membership is ``isSegmentInTimeWindow`` of
  ``core/utils/stream.ts``. :class:`~p2pml_py.roles.scheduler.Scheduler` turns the queue into
  urgent HTTP, P2P and prefetch loads (``processQueue`` in ``core/hybrid-loader.ts``).
* **Random HTTP** (``loadRandomThroughHttp`` in ``core/hybrid-loader.ts``) runs on its own timer,
  every ``1 + random() * peers`` seconds (``setIntervalLoading``), and sees the HTTP slots that the
  queue's loads already took.
* **Cancel.** ``processRequests`` in ``core/hybrid-loader.ts`` aborts a load whose segment left the
  queue. The model cancels only loads of segments that left the timeline altogether (a live
  window long gone): loads of segments the playhead skipped still finish and are shared.
* **Retries.** A failed origin download is retried after a capped exponential back-off; a failed
  P2P download (other than "no peer had it") waits :data:`P2P_RETRY_DELAY` for that segment.
* **Live eviction.** Browsers keep live segments up to ``highDemandTimeWindow`` behind the
  playhead (``isSegmentActualInPlayback`` locks them in the storage).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from p2pml_py.base.backoff import Backoff
from p2pml_py.roles.scheduler import Load, QueueItem, Scheduler, SchedulerConfig, Situation

__all__ = [
    "DEFAULT_LIVE_SYNC_SEGMENTS",
    "HTTP_RETRY",
    "LIVE_HISTORY_SEGMENTS",
    "P2P_RETRY_DELAY",
    "Peers",
    "Plan",
    "Player",
    "PlayerEvent",
]

#: hls.js ``liveSyncDurationCount``: start this many target durations behind the live edge.
DEFAULT_LIVE_SYNC_SEGMENTS = 3
#: A live timeline forgets segments this many ids before the playlist's first (bounded state).
LIVE_HISTORY_SEGMENTS = 64
#: Back-off of an origin download after its ``n``-th consecutive failure: 0.5 s doubling to 8 s.
HTTP_RETRY = Backoff(initial=0.5, cap=8.0)
#: Seconds a segment is not asked of peers again after a P2P download of it failed.
P2P_RETRY_DELAY = 1.0
#: Two segments closer than this (seconds) are contiguous; a playhead this far before its
#: segment's start has fallen out of the window.
_GAP = 0.01
#: The playhead at the buffered end within this is a stall (float rounding).
_EPSILON = 1e-9

Reason = Literal["urgent", "prefetch", "random"]


class Peers(Protocol):
    """What the model asks of the swarm (:class:`~p2pml_py.engine.streams.StreamSwarms`)."""

    @property
    def peer_count(self) -> int: ...

    def peer_has(self, segment_id: int) -> bool: ...

    def peer_can_serve(self, segment_id: int) -> bool: ...

    def peer_http_loading(self, segment_id: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class PlayerEvent:
    """A change of the playhead at ``position`` (timeline seconds).

    ``started``: first playback (start-up done); ``stalled``: the playhead reached the end of what
    is held; ``resumed``: a stall ended; ``skipped``: a live playhead jumped to the next segment it
    still has; ``ended``: a VOD played to its end.
    """

    kind: Literal["started", "stalled", "resumed", "skipped", "ended"]
    position: float


@dataclass(frozen=True, slots=True)
class Plan:
    """Loads to start now (by source, each with the rule that chose it) and loads to cancel."""

    http: tuple[Load, ...] = ()
    p2p: tuple[Load, ...] = ()
    cancel: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.http or self.p2p or self.cancel)


class Player:
    """The player and loader state of one viewer on one stream (see the module docstring).

    Feed it playlists (:meth:`update_playlist`), tick it (:meth:`advance`, :meth:`plan`,
    :meth:`evict_below`), and report each load's end (:meth:`http_done`, :meth:`p2p_done`,
    :meth:`load_dropped`). ``held`` is the set of segment ids the store holds now.
    """

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        rng: random.Random | None = None,
        *,
        live_sync_segments: int = DEFAULT_LIVE_SYNC_SEGMENTS,
    ) -> None:
        self.scheduler = Scheduler(config, rng)
        self.config = self.scheduler.config
        self.live_sync_segments = live_sync_segments
        # playhead
        self.started_at = 0.0
        self.position: float | None = None
        self.is_live: bool | None = None
        self.playing = False
        self.ended = False
        self.startup_time: float | None = None
        self.stalls = 0
        self.stall_time = 0.0
        self.skips = 0
        self._stall_began: float | None = None
        self._last_tick: float | None = None
        # timeline: by id, and sorted by start (ties in insertion order)
        self._by_id: dict[int, QueueItem] = {}
        self._items: list[QueueItem] = []
        self._ends_sorted = True  # then the items with end > t are a suffix of _items
        # loads: in start order (the HTTP ones are announced in that order)
        self.http_loading: dict[int, Reason] = {}
        self.p2p_loading: dict[int, Reason] = {}
        self._cancel: list[int] = []
        self._http_failures: dict[int, int] = {}
        self._http_blocked: dict[int, float] = {}
        self._p2p_blocked: dict[int, float] = {}
        self.next_random_round = 0.0

    def start(self, now: float) -> None:
        """The viewer started: start-up time counts from ``now``."""
        self.started_at = now

    # -- timeline -------------------------------------------------------------------------------

    @property
    def timeline(self) -> Sequence[QueueItem]:
        """Every known segment on the continuous clock, sorted by start."""
        return self._items

    def item(self, segment_id: int) -> QueueItem | None:
        return self._by_id.get(segment_id)

    def update_playlist(self, segments: Sequence[QueueItem], *, is_live: bool) -> list[int]:
        """Take a (re)loaded playlist; ``segments`` carry the playlist's own times.

        Returns the ids the timeline forgot (a live window long gone); their loads are cancelled
        by the next :meth:`plan`.
        """
        self.is_live = is_live
        if not segments:
            return []
        offset: float | None = None
        for segment in segments:
            known = self._by_id.get(segment.segment_id)
            if known is not None:
                offset = known.start - segment.start
                break
        if offset is None:
            offset = max(i.end for i in self._items) - segments[0].start if self._items else 0.0
        for segment in segments:
            if segment.segment_id not in self._by_id:
                self._insert(
                    QueueItem(segment.segment_id, segment.start + offset, segment.end + offset)
                )
        forgotten: list[int] = []
        if is_live:
            cutoff = segments[0].segment_id - LIVE_HISTORY_SEGMENTS
            forgotten = [sid for sid in self._by_id if sid < cutoff]
            if forgotten:
                self._forget(forgotten)
        if self.position is None:
            start = max(0, len(segments) - self.live_sync_segments) if is_live else 0
            self.position = self._by_id[segments[start].segment_id].start
        return forgotten

    def _insert(self, item: QueueItem) -> None:
        index = bisect.bisect_right(self._items, item.start, key=_start)
        self._items.insert(index, item)
        self._by_id[item.segment_id] = item
        before = self._items[index - 1] if index else None
        after = self._items[index + 1] if index + 1 < len(self._items) else None
        if (before is not None and before.end > item.end) or (
            after is not None and item.end > after.end
        ):
            self._ends_sorted = False

    def _forget(self, segment_ids: Sequence[int]) -> None:
        gone = set(segment_ids)
        for sid in gone:
            del self._by_id[sid]
            self._http_failures.pop(sid, None)
            self._http_blocked.pop(sid, None)
            self._p2p_blocked.pop(sid, None)
            if sid in self.http_loading or sid in self.p2p_loading:
                self.load_dropped(sid)
                self._cancel.append(sid)
        self._items = [i for i in self._items if i.segment_id not in gone]
        self._ends_sorted = all(a.end <= b.end for a, b in itertools.pairwise(self._items))

    def _from(self, position: float) -> Iterator[QueueItem]:
        """The items ending after ``position``, in start order."""
        items = self._items
        if self._ends_sorted:
            index = bisect.bisect_right(items, position, key=_end)
            return (items[i] for i in range(index, len(items)))
        return (i for i in items if i.end > position)

    def item_at(self, position: float) -> QueueItem | None:
        """The first segment (by start) that ends after ``position``."""
        return next(self._from(position), None)

    def queue(self) -> list[QueueItem]:
        """The segments from the one at the playhead onwards (``generateQueue``)."""
        return [] if self.position is None else list(self._from(self.position))

    def buffered_end(self, position: float, held: Container[int]) -> float:
        """End of the contiguous held segments from the one at ``position``."""
        end = position
        for item in self._from(position):
            if item.segment_id not in held or item.start > end + _GAP:
                break
            end = item.end
        return end

    # -- playhead -------------------------------------------------------------------------------

    def advance(self, now: float, held: Container[int]) -> list[PlayerEvent]:
        """Move the playhead to ``now``; what happened to it on the way."""
        if self.position is None or self.ended:
            return []
        events: list[PlayerEvent] = []
        last, self._last_tick = self._last_tick, now
        current = self.item_at(self.position)
        if current is None:
            if self.is_live is False:
                return self._end(events)
            return events
        if current.start > self.position + _GAP:
            # Fell out of a live window: jump to the next segment, as players do.
            self.skips += 1
            self.position = current.start
            events.append(PlayerEvent("skipped", self.position))
        if self.playing:
            elapsed = (now - last) * self.config.playback_rate if last is not None else 0.0
            buffered = self.buffered_end(self.position, held)
            self.position = min(self.position + elapsed, buffered)
            if self.is_live is False and self.item_at(self.position) is None:
                return self._end(events)
            if self.position >= buffered - _EPSILON:
                self.playing = False
                self.stalls += 1
                self._stall_began = now
                events.append(PlayerEvent("stalled", self.position))
        elif current.segment_id in held:
            self.playing = True
            if self.startup_time is None:
                self.startup_time = now - self.started_at
                events.append(PlayerEvent("started", self.position))
            elif self._stall_began is not None:
                self.stall_time += now - self._stall_began
                self._stall_began = None
                events.append(PlayerEvent("resumed", self.position))
        return events

    def _end(self, events: list[PlayerEvent]) -> list[PlayerEvent]:
        assert self.position is not None
        self.ended = True
        events.append(PlayerEvent("ended", self.position))
        return events

    # -- loading --------------------------------------------------------------------------------

    def plan(self, now: float, held: Container[int], peers: Peers) -> Plan:
        """Loads to start and cancel at ``now``; the started ones count as loading from here on.

        The queue's loads come first; a random-HTTP round that is due then sees the HTTP slots
        they took, as ``loadRandomThroughHttp`` sees ``executingHttpCount``.
        """
        cancel, self._cancel = tuple(self._cancel), []
        if self.position is None or self.ended:
            return Plan(cancel=cancel)
        for blocked in (self._http_blocked, self._p2p_blocked):
            for sid in [sid for sid, until in blocked.items() if until <= now]:
                del blocked[sid]
        queue = self.queue()
        loads = self.scheduler.decide(self._situation(queue, held, peers))
        self._mark(loads)
        if now >= self.next_random_round:
            random_loads = self.scheduler.random_http(self._situation(queue, held, peers))
            self._mark(random_loads)
            loads += random_loads
            self.next_random_round = now + self.scheduler.random_http_delay(peers.peer_count)
        return Plan(
            http=tuple(load for load in loads if load.source == "http"),
            p2p=tuple(load for load in loads if load.source == "p2p"),
            cancel=cancel,
        )

    def _situation(self, queue: list[QueueItem], held: Container[int], peers: Peers) -> Situation:
        assert self.position is not None
        p2p_blocked = self._p2p_blocked

        def can_serve(segment_id: int) -> bool:
            return segment_id not in p2p_blocked and peers.peer_can_serve(segment_id)

        return Situation(
            position=self.position,
            queue=queue,
            stored=held,
            http_loading=self.http_loading,
            p2p_loading=self.p2p_loading,
            http_slots_used=len(self.http_loading),
            p2p_slots_used=len(self.p2p_loading),
            peer_count=peers.peer_count,
            peer_has=peers.peer_has,
            peer_can_serve=can_serve,
            peer_http_loading=peers.peer_http_loading,
            http_blocked=self._http_blocked,
        )

    def _mark(self, loads: Sequence[Load]) -> None:
        for load in loads:
            loading = self.http_loading if load.source == "http" else self.p2p_loading
            loading[load.segment_id] = load.reason

    def http_done(self, segment_id: int, now: float, *, failed: bool = False) -> float | None:
        """An origin download ended; on failure, the seconds until it may be retried."""
        if self.http_loading.pop(segment_id, None) is None:
            return None  # cancelled, or not ours
        if not failed:
            self._http_failures.pop(segment_id, None)
            self._http_blocked.pop(segment_id, None)
            return None
        failures = self._http_failures.get(segment_id, 0) + 1
        self._http_failures[segment_id] = failures
        delay = HTTP_RETRY.delay(failures)
        self._http_blocked[segment_id] = now + delay
        return delay

    def p2p_done(self, segment_id: int, now: float, *, failure: str | None = None) -> None:
        """A P2P download ended; ``failure`` is the :class:`DownloadError` reason, if any."""
        if self.p2p_loading.pop(segment_id, None) is None:
            return
        if failure is not None and failure != "no-peer":
            # "no-peer": every holder was busy, simply try again next tick.
            self._p2p_blocked[segment_id] = now + P2P_RETRY_DELAY

    def load_dropped(self, segment_id: int) -> None:
        """A load ended without an outcome (cancelled, or never started)."""
        self.http_loading.pop(segment_id, None)
        self.p2p_loading.pop(segment_id, None)

    def evict_below(self) -> int | None:
        """Live: the store may drop every id below this (``highDemandTimeWindow`` behind)."""
        if self.position is None or not self.is_live:
            return None
        horizon = self.position - self.config.high_demand_time_window
        items = self._items
        if self._ends_sorted:  # the items ending before the horizon are a prefix
            items = items[: bisect.bisect_left(items, horizon, key=_end)]
        old = [i.segment_id for i in items if i.end < horizon]
        return max(old) + 1 if old else None


def _start(item: QueueItem) -> float:
    return item.start


def _end(item: QueueItem) -> float:
    return item.end
