"""The viewer: a player model that loads like a browser running hls.js + p2p-media-loader.

It follows one stream, keeps a playhead that advances in real time (times ``playback_rate``) once
the first segment is in, and counts start-up time and stalls -- the moments the playhead reaches
the end of what is buffered. Loading decisions come from :class:`~p2pml_py.roles.scheduler.Scheduler`
(urgent segments over HTTP, the rest from peers, random HTTP seeding); every segment it holds is
announced and served to its peers, so a swarm of viewers behaves like a swarm of browsers. That
makes it both a realistic client for tests and a load generator for swarms.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import aiohttp

from p2pml_py.base.errors import LocalProtocolError, SourceError
from p2pml_py.engine.session import DownloadError
from p2pml_py.engine.streams import PeerOptions, StreamSwarms
from p2pml_py.hls.playlist import Segment
from p2pml_py.hls.source import RetryPolicy, SourceConfig, StreamFollower
from p2pml_py.roles.base import PeerRole, segment_digests
from p2pml_py.roles.scheduler import Load, QueueItem, Scheduler, SchedulerConfig, Situation

logger = logging.getLogger(__name__)

#: hls.js ``liveSyncDurationCount``: start this many target durations behind the live edge.
DEFAULT_LIVE_SYNC_SEGMENTS = 3


class Viewer(PeerRole):
    """Use as ``async with Viewer(url, options) as viewer: await viewer.wait_ended(...)``."""

    def __init__(
        self,
        manifest_url: str,
        options: PeerOptions,
        *,
        rendition: int | None = None,
        scheduler: SchedulerConfig | None = None,
        live_sync_segments: int = DEFAULT_LIVE_SYNC_SEGMENTS,
        source_config: SourceConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        tick: float = 0.05,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if source_config is None:
            # The player falls back to peers and retries by itself (see _http); a segment
            # download that retried inside the source would hold its slot while the playhead
            # runs into a stall.
            source_config = SourceConfig(segment_retry=RetryPolicy(attempts=1))
        super().__init__(manifest_url, options, source_config=source_config, session=session)
        self.rendition = rendition
        self.scheduler = Scheduler(scheduler, rng)
        self.config = self.scheduler.config
        self.live_sync_segments = live_sync_segments
        self.tick = tick
        self._rng = rng or random.Random()
        self._clock = clock
        self.swarms: StreamSwarms | None = None
        self.follower: StreamFollower | None = None
        # player
        self.position: float | None = None
        self.playing = False
        self.ended = False
        self.started_at = 0.0
        self.startup_time: float | None = None
        self.stalls = 0
        self.stall_time = 0.0
        self.skips = 0
        self._stall_began: float | None = None
        self._last_tick: float | None = None
        # loading
        self.timeline: dict[int, QueueItem] = {}
        self.segments: dict[int, Segment] = {}
        self._last_playlist: object = None
        self.http_loading: dict[int, asyncio.Task[None]] = {}
        self.p2p_loading: dict[int, asyncio.Task[None]] = {}
        self._http_failures: Counter[int] = Counter()
        self._http_blocked: dict[int, float] = {}
        self._p2p_blocked: dict[int, float] = {}
        self._next_random = 0.0
        # counters
        self.http_bytes = 0
        self.p2p_bytes = 0
        self.http_segments: Counter[str] = Counter()  # by reason
        self.p2p_segments = 0
        self.origin_errors = 0
        self.p2p_failures: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = self._clock()
        tracker = await self._connect()
        streams = self.source.streams
        if self.rendition is None:
            candidates = [s for s in streams if s.type == "main" and s.has_playlist]
            if not candidates:
                raise LocalProtocolError("the manifest has no playable main stream")
            stream = candidates[0]
        else:
            if not 0 <= self.rendition < len(streams):
                raise LocalProtocolError(
                    f"rendition {self.rendition} does not exist (0..{len(streams) - 1})"
                )
            stream = streams[self.rendition]
            if not stream.has_playlist:
                raise LocalProtocolError(f"rendition {self.rendition} has no playlist of its own")
        self.swarms = self._stream_swarms(stream, tracker)
        await self.swarms.start()
        self.follower = self.source.follow(stream)
        self._closer.spawn(self._run(), "viewer-loop")
        self._closer.spawn(self._watch_playlist(), "viewer-playlist")

    def _all_streams(self) -> list[StreamSwarms]:
        return [] if self.swarms is None else [self.swarms]

    async def _before_close(self) -> None:
        for task in [*self.http_loading.values(), *self.p2p_loading.values()]:
            task.cancel()

    async def wait_ended(self) -> None:
        """Until a VOD has played to its end (bound it with ``asyncio.timeout``)."""
        await self._ended.wait()

    # -- the loop -------------------------------------------------------------------------------

    async def _watch_playlist(self) -> None:
        assert self.follower is not None
        while True:
            await self.follower.wait_updated()
            self._wake.set()

    async def _run(self) -> None:
        while not self.ended:
            now = self._clock()
            self._update_timeline()
            self._advance(now)
            self._schedule(now)
            self._evict()
            self._wake.clear()
            try:
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _update_timeline(self) -> None:
        assert self.follower is not None
        playlist = self.follower.playlist
        if playlist is None or playlist is self._last_playlist or not playlist.segments:
            return
        self._last_playlist = playlist
        # Live playlists restart their clock at every reload: anchor on a segment we know.
        offset: float | None = None
        for segment in playlist.segments:
            known = self.timeline.get(segment.external_id)
            if known is not None:
                offset = known.start - segment.start_time
                break
        if offset is None:
            offset = max((i.end for i in self.timeline.values()), default=0.0) - (
                playlist.segments[0].start_time if self.timeline else 0.0
            )
        for segment in playlist.segments:
            if segment.external_id not in self.timeline:
                self.timeline[segment.external_id] = QueueItem(
                    segment.external_id, segment.start_time + offset, segment.end_time + offset
                )
            self.segments[segment.external_id] = segment
        if playlist.is_live:
            # Forget what slid out of the window long ago (bounded state).
            first = playlist.segments[0].external_id
            for sid in [sid for sid in self.timeline if sid < first - 64]:
                del self.timeline[sid]
                self.segments.pop(sid, None)
        if self.position is None:
            if playlist.is_live:
                start = max(0, len(playlist.segments) - self.live_sync_segments)
            else:
                start = 0
            self.position = self.timeline[playlist.segments[start].external_id].start

    def _item_at(self, position: float) -> QueueItem | None:
        for item in sorted(self.timeline.values(), key=lambda i: i.start):
            if item.end > position:
                return item
        return None

    def _buffered_end(self, position: float) -> float:
        """End of the contiguous held segments from the one at ``position``."""
        assert self.swarms is not None
        end = position
        for item in sorted(self.timeline.values(), key=lambda i: i.start):
            if item.end <= position:
                continue
            if item.segment_id not in self.swarms.store or item.start > end + 0.01:
                break
            end = item.end
        return end

    def _advance(self, now: float) -> None:
        assert self.swarms is not None and self.follower is not None
        if self.position is None:
            return
        last, self._last_tick = self._last_tick, now
        current = self._item_at(self.position)
        playlist = self.follower.playlist
        if current is None:
            if playlist is not None and not playlist.is_live:
                self.ended = True
                self._ended.set()
            return
        if current.start > self.position + 0.01:
            # Fell out of a live window: jump to the next segment, as players do.
            self.skips += 1
            self.position = current.start
        if self.playing:
            elapsed = (now - last) * self.config.playback_rate if last is not None else 0.0
            buffered = self._buffered_end(self.position)
            self.position = min(self.position + elapsed, buffered)
            if (
                self._item_at(self.position) is None
                and playlist is not None
                and not playlist.is_live
            ):
                self.ended = True
                self._ended.set()
                return
            if self.position >= buffered - 1e-9:
                self.playing = False
                self.stalls += 1
                self._stall_began = now
                logger.info("stall at %.2f s", self.position)
        elif current.segment_id in self.swarms.store:
            self.playing = True
            if self.startup_time is None:
                self.startup_time = now - self.started_at
            elif self._stall_began is not None:
                self.stall_time += now - self._stall_began
                self._stall_began = None

    def _queue(self) -> list[QueueItem]:
        assert self.position is not None
        position = self.position
        return sorted(
            (i for i in self.timeline.values() if i.end > position), key=lambda i: i.start
        )

    def _situation(self, now: float) -> Situation:
        assert self.swarms is not None and self.position is not None
        blocked = {sid for sid, until in self._http_blocked.items() if until > now}
        p2p_blocked = {sid for sid, until in self._p2p_blocked.items() if until > now}
        swarms = self.swarms
        return Situation(
            position=self.position,
            queue=self._queue(),
            stored=swarms.store,
            http_loading=self.http_loading,
            p2p_loading=self.p2p_loading,
            http_slots_used=len(self.http_loading),
            p2p_slots_used=len(self.p2p_loading),
            peer_count=swarms.peer_count,
            peer_has=swarms.peer_has,
            peer_can_serve=lambda sid: sid not in p2p_blocked and swarms.peer_can_serve(sid),
            peer_http_loading=swarms.peer_http_loading,
            http_blocked=blocked,
        )

    def _schedule(self, now: float) -> None:
        if self.position is None or self.ended:
            return
        loads = self.scheduler.decide(self._situation(now))
        if now >= self._next_random:
            assert self.swarms is not None
            loads += self.scheduler.random_http(self._situation(now))
            self._next_random = now + self.scheduler.random_http_delay(self.swarms.peer_count)
        for load in loads:
            self._start(load)

    def _start(self, load: Load) -> None:
        segment = self.segments.get(load.segment_id)
        if segment is None:
            return
        if load.source == "http":
            task = self._closer.spawn(
                self._http(segment, load.reason), f"http-{segment.external_id}"
            )
            self.http_loading[segment.external_id] = task
            self._announce_http_loading()
        else:
            task = self._closer.spawn(self._p2p(segment), f"p2p-{segment.external_id}")
            self.p2p_loading[segment.external_id] = task

    def _announce_http_loading(self) -> None:
        assert self.swarms is not None
        self.swarms.set_http_loading(list(self.http_loading))

    def _stored(self, segment: Segment, data: bytes) -> None:
        assert self.swarms is not None
        self.swarms.store.put(segment.external_id, data)
        self._wake.set()

    async def _http(
        self, segment: Segment, reason: Literal["urgent", "prefetch", "random"]
    ) -> None:
        sid = segment.external_id
        try:
            data = await self.source.fetch_segment(segment)
        except SourceError as exc:
            self.origin_errors += 1
            self._http_failures[sid] += 1
            delay = min(0.5 * 2 ** (self._http_failures[sid] - 1), 8.0)
            self._http_blocked[sid] = self._clock() + delay
            logger.info("origin: segment %s: %s (retry in %.1f s)", sid, exc, delay)
            return
        finally:
            self.http_loading.pop(sid, None)
            self._announce_http_loading()
            self._wake.set()
        self._http_failures.pop(sid, None)
        self._http_blocked.pop(sid, None)
        self.http_bytes += len(data)
        self.http_segments[reason] += 1
        self._stored(segment, data)

    async def _p2p(self, segment: Segment) -> None:
        assert self.swarms is not None
        sid = segment.external_id
        total = None
        if segment.byte_range is not None:
            total = segment.byte_range[1] - segment.byte_range[0] + 1
        try:
            data = await self.swarms.download(sid, total_size=total)
        except DownloadError as exc:
            self.p2p_failures[exc.reason] += 1
            if exc.reason != "no-peer":  # every holder was busy: simply try again next tick
                self._p2p_blocked[sid] = self._clock() + 1.0
            return
        finally:
            self.p2p_loading.pop(sid, None)
            self._wake.set()
        self.p2p_bytes += len(data)
        self.p2p_segments += 1
        self._stored(segment, data)

    def _evict(self) -> None:
        assert self.swarms is not None and self.follower is not None
        playlist = self.follower.playlist
        if self.position is None or playlist is None or not playlist.is_live:
            return
        # Browsers keep live segments up to highDemandTimeWindow behind the playhead.
        horizon = self.position - self.config.high_demand_time_window
        old = [i.segment_id for i in self.timeline.values() if i.end < horizon]
        if old:
            self.swarms.store.evict_below(max(old) + 1)
        now = self._clock()
        for blocked in (self._http_blocked, self._p2p_blocked):
            for sid in [sid for sid, until in blocked.items() if until <= now]:
                del blocked[sid]

    # -- reporting ------------------------------------------------------------------------------

    @property
    def uploaded(self) -> int:
        return 0 if self.swarms is None else self.swarms.uploaded

    @property
    def peer_count(self) -> int:
        return 0 if self.swarms is None else self.swarms.peer_count

    @property
    def p2p_share(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        peers = {} if self.swarms is None else self.swarms.peer_counters()
        return {
            "role": "viewer",
            "manifest_url": self.source.final_url if self.swarms else self.manifest_url,
            "duration": round(self._clock() - self.started_at, 3),
            "http_bytes": self.http_bytes,
            "p2p_bytes": self.p2p_bytes,
            "p2p_share": round(self.p2p_share, 4),
            "uploaded_bytes": self.uploaded,
            "stalls": self.stalls,
            "stall_time": round(self.stall_time, 3),
            "startup_time": None if self.startup_time is None else round(self.startup_time, 3),
            "skips": self.skips,
            "position": None if self.position is None else round(self.position, 3),
            "ended": self.ended,
            "http_segments": dict(self.http_segments),
            "p2p_segments": self.p2p_segments,
            "p2p_failures": dict(self.p2p_failures),
            "origin_errors": self.origin_errors,
            "peers_seen": len(peers),
            "peers": peers,
            "drops": {} if self.swarms is None else self.swarms.drops(),
            "streams": [] if self.swarms is None else [self.swarms.describe()],
            "segments": {}
            if self.swarms is None
            else {self.swarms.stream.url: segment_digests(self.swarms.store)},
        }
