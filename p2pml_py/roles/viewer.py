"""The viewer: a player model that loads like a browser running hls.js + p2p-media-loader.

It follows one stream, keeps a playhead that advances in real time (times ``playback_rate``) once
the first segment is in, and counts start-up time and stalls -- the moments the playhead reaches
the end of what is buffered. The playhead and every loading decision (urgent segments over HTTP,
the rest from peers, random HTTP seeding) belong to the sans-I/O
:class:`~p2pml_py.roles.player.Player` and :class:`~p2pml_py.roles.scheduler.Scheduler`; this
module only moves the bytes. Every segment it holds is announced and served to its peers, so a
swarm of viewers behaves like a swarm of browsers. That makes it both a realistic client for tests
and a load generator for swarms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

import aiohttp

from p2pml_py.base.errors import SourceError
from p2pml_py.engine.session import DownloadError
from p2pml_py.engine.streams import PeerOptions, StreamSwarms
from p2pml_py.hls.playlist import Segment
from p2pml_py.hls.select import RenditionSelector, describe_rendition, select_rendition
from p2pml_py.hls.source import RetryPolicy, SourceConfig, StreamFollower
from p2pml_py.roles.base import PeerRole, segment_digests
from p2pml_py.roles.player import DEFAULT_LIVE_SYNC_SEGMENTS, Plan, Player, PlayerEvent
from p2pml_py.roles.scheduler import Load, QueueItem, SchedulerConfig
from p2pml_py.roles.summary import ViewerSummary

__all__ = ["DEFAULT_LIVE_SYNC_SEGMENTS", "Viewer"]

logger = logging.getLogger(__name__)


class Viewer(PeerRole):
    """Use as ``async with Viewer(url, options) as viewer: await viewer.wait_ended(...)``.

    A thin asyncio driver over :class:`~p2pml_py.roles.player.Player`: every ``tick`` (or sooner,
    when a playlist or a download arrives) it feeds the model the time, the playlist and what the
    store holds, then performs the model's decisions -- downloads from the origin or from peers,
    cancellations, evictions -- and reports each download's end back to it.
    """

    def __init__(
        self,
        manifest_url: str,
        options: PeerOptions,
        *,
        rendition: int | str | RenditionSelector | None = None,
        scheduler: SchedulerConfig | None = None,
        live_sync_segments: int = DEFAULT_LIVE_SYNC_SEGMENTS,
        source_config: SourceConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        tick: float = 0.05,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        source_config = source_config or SourceConfig()
        if source_config.segment_retry is None:
            # The player falls back to peers and retries by itself (see Player.http_done): a
            # segment download that retried inside the source would hold its slot while the
            # playhead runs into a stall.
            source_config = dataclasses.replace(
                source_config, segment_retry=RetryPolicy(attempts=1)
            )
        super().__init__(manifest_url, options, source_config=source_config, session=session)
        self.rendition = rendition
        #: Which rendition :meth:`start` joined, e.g. ``rendition 1: 640x360 800 kbps, hls.js
        #: level 0`` (``None`` before).
        self.joined: str | None = None
        self.player = Player(scheduler, rng, live_sync_segments=live_sync_segments)
        self.scheduler = self.player.scheduler
        self.config = self.scheduler.config
        self.live_sync_segments = live_sync_segments
        self.tick = tick
        self._clock = clock
        self.swarms: StreamSwarms | None = None
        self.follower: StreamFollower | None = None
        self.segments: dict[int, Segment] = {}  # by id, for every segment on the timeline
        self._last_playlist: object = None
        self._loads: dict[int, asyncio.Task[None]] = {}  # running downloads, by segment id
        # counters
        self.http_bytes = 0
        self.p2p_bytes = 0
        self.http_segments: Counter[str] = Counter()  # by reason
        self.p2p_segments = 0
        self.origin_errors = 0
        self.p2p_failures: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()

    # -- the player's state, for reports ----------------------------------------------------

    @property
    def started_at(self) -> float:
        return self.player.started_at

    @property
    def position(self) -> float | None:
        return self.player.position

    @property
    def playing(self) -> bool:
        return self.player.playing

    @property
    def ended(self) -> bool:
        return self.player.ended

    @property
    def startup_time(self) -> float | None:
        return self.player.startup_time

    @property
    def stalls(self) -> int:
        return self.player.stalls

    @property
    def stall_time(self) -> float:
        return self.player.stall_time

    @property
    def skips(self) -> int:
        return self.player.skips

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.player.start(self._clock())
        tracker = await self._connect()
        streams = self.source.streams
        # hls.js numbers its levels by resolution and bitrate, not in playlist order: say both.
        number = select_rendition(streams, self.rendition)
        stream = streams[number]
        self.joined = f"rendition {describe_rendition(streams, number)}"
        logger.info(
            "watching %s",
            self.joined,
            extra={
                "event": "rendition_joined",
                "rendition": number,
                "hlsjs_level": stream.hlsjs_levels[0] if stream.hlsjs_levels else None,
                "label": stream.label,
                "playlist_url": stream.url,
            },
        )
        self.swarms = self._stream_swarms(stream, tracker)
        await self.swarms.start()
        self.follower = self.source.follow(stream)
        self._closer.spawn(self._run(), "viewer-loop")
        self._closer.spawn(self._watch_playlist(), "viewer-playlist")

    def _all_streams(self) -> list[StreamSwarms]:
        return [] if self.swarms is None else [self.swarms]

    async def _before_close(self) -> None:
        for task in self._loads.values():
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
        assert self.swarms is not None
        store = self.swarms.store
        while not self.player.ended:
            now = self._clock()
            self._update_timeline()
            for event in self.player.advance(now, store):
                self._played(event)
            self._perform(self.player.plan(now, store, self.swarms))
            below = self.player.evict_below()
            if below is not None:
                store.evict_below(below)
            self._wake.clear()
            try:
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _update_timeline(self) -> None:
        assert self.follower is not None
        playlist = self.follower.playlist
        if playlist is None or playlist is self._last_playlist:
            return
        self._last_playlist = playlist
        items = [QueueItem(s.external_id, s.start_time, s.end_time) for s in playlist.segments]
        forgotten = self.player.update_playlist(items, is_live=playlist.is_live)
        for segment in playlist.segments:
            self.segments[segment.external_id] = segment
        for sid in forgotten:
            self.segments.pop(sid, None)

    def _played(self, event: PlayerEvent) -> None:
        if event.kind == "stalled":
            logger.info("stall at %.2f s", event.position)
        elif event.kind == "ended":
            self._ended.set()

    def _perform(self, plan: Plan) -> None:
        for sid in plan.cancel:
            task = self._loads.pop(sid, None)
            if task is not None:
                task.cancel()
        for load in (*plan.http, *plan.p2p):
            self._start(load)
        if plan.http or plan.cancel:
            self._announce_http_loading()

    def _start(self, load: Load) -> None:
        segment = self.segments.get(load.segment_id)
        if segment is None:
            self.player.load_dropped(load.segment_id)
            return
        sid = segment.external_id
        if load.source == "http":
            coro = self._http(segment, load.reason)
        else:
            coro = self._p2p(segment)
        self._loads[sid] = self._closer.spawn(coro, f"{load.source}-{sid}")

    def _finished(self, sid: int) -> bool:
        """Forget the download task of ``sid``; False if it was cancelled by the player."""
        task = self._loads.get(sid)
        if task is None or task is not asyncio.current_task():
            return False
        del self._loads[sid]
        self._wake.set()
        return True

    def _announce_http_loading(self) -> None:
        assert self.swarms is not None
        self.swarms.set_http_loading(list(self.player.http_loading))

    def _stored(self, segment: Segment, data: bytes) -> None:
        assert self.swarms is not None
        self.swarms.store.put(segment.external_id, data)
        self._wake.set()

    async def _http(self, segment: Segment, reason: str) -> None:
        sid = segment.external_id
        try:
            data = await self.source.fetch_segment(segment)
        except SourceError as exc:
            self.origin_errors += 1
            if self._finished(sid):
                delay = self.player.http_done(sid, self._clock(), failed=True)
                self._announce_http_loading()
                logger.info("origin: segment %s: %s (retry in %.1f s)", sid, exc, delay)
            return
        except BaseException:
            if self._finished(sid):
                self.player.load_dropped(sid)
                self._announce_http_loading()
            raise
        if self._finished(sid):
            self.player.http_done(sid, self._clock())
            self._announce_http_loading()
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
            if self._finished(sid):
                self.player.p2p_done(sid, self._clock(), failure=exc.reason)
            return
        except BaseException:
            if self._finished(sid):
                self.player.load_dropped(sid)
            raise
        # What a peer sends is checked like what the origin sends (p2pml_py.hls.guard): a bad
        # body is a failed P2P load -- the player takes the segment from elsewhere -- and is
        # never stored, so never played nor passed on.
        verdict = await self.source.guard.check(segment, data, source="peer")
        if verdict.reason is not None:
            self.p2p_failures["invalid"] += 1
            if self._finished(sid):
                self.player.p2p_done(sid, self._clock(), failure="invalid")
            return
        if self._finished(sid):
            self.player.p2p_done(sid, self._clock())
        self.p2p_bytes += len(data)
        self.p2p_segments += 1
        self._stored(segment, data)

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

    def summary(self) -> ViewerSummary:
        swarms = self.swarms
        return ViewerSummary(
            manifest_url=self.source.final_url if swarms else self.manifest_url,
            duration=round(self._clock() - self.started_at, 3),
            http_bytes=self.http_bytes,
            p2p_bytes=self.p2p_bytes,
            uploaded_bytes=self.uploaded,
            stalls=self.stalls,
            stall_time=round(self.stall_time, 3),
            startup_time=None if self.startup_time is None else round(self.startup_time, 3),
            skips=self.skips,
            position=None if self.position is None else round(self.position, 3),
            ended=self.ended,
            http_segments=dict(self.http_segments),
            p2p_segments=self.p2p_segments,
            p2p_failures=dict(self.p2p_failures),
            origin_errors=self.origin_errors,
            peers={} if swarms is None else swarms.peer_counters(),
            drops={} if swarms is None else swarms.drops(),
            streams=[] if swarms is None else [swarms.describe()],
            segments={} if swarms is None else {swarms.stream.url: segment_digests(swarms.store)},
        )
