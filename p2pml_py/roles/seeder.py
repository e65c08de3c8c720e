"""The seeder: follows an HLS stream from its origin and serves it to the browsers' swarms.

For every chosen stream (all video levels and audio tracks by default) the seeder joins the swarm
of each protocol version, follows the media playlist (live: reloads, sliding window; VOD: once),
fetches segments over HTTP -- announcing each in ``p`` while loading and in ``l`` once held, which
is what makes browsers ask for it -- and evicts what slid out of a live window. Origin errors are
counted and retried while the segment is still in the playlist; what the seeder already holds
keeps being served during an origin outage.

Which segments it fetches is its :class:`~p2pml_py.roles.demand.FetchMode`: ``all`` fetches every
segment as soon as it appears; ``demand`` fetches a rendition only while its swarms have other
peers (:class:`~p2pml_py.roles.demand.DemandPolicy`, fed every ``tick`` with what the tracker and
the swarms say) -- live from the live edge, VOD from its start once first wanted. The swarms stay
joined either way, so browsers still find the seeder and make it wanted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import aiohttp

from p2pml_py.base.aio import Notifier, TaskGroup
from p2pml_py.base.backoff import Backoff
from p2pml_py.base.errors import SegmentInvalidError, SourceError
from p2pml_py.engine.streams import PeerOptions, PeerSummary, StreamSwarms
from p2pml_py.hls.fetcher import Validators
from p2pml_py.hls.playlist import MediaPlaylist, Segment, Stream
from p2pml_py.hls.select import RenditionSelector, select_renditions
from p2pml_py.hls.source import SourceConfig, StreamFollower
from p2pml_py.roles.base import PeerRole, merge_counts, segment_digests
from p2pml_py.roles.demand import (
    WAKE_SEGMENTS,
    DemandConfig,
    DemandPolicy,
    DemandSignals,
    FetchAccount,
    FetchMode,
    FetchReport,
    RenditionState,
)
from p2pml_py.roles.summary import SeederSummary

logger = logging.getLogger(__name__)

#: A segment the origin failed to deliver (or delivered broken) is asked for again after
#: ``retry_delay`` doubling per failure up to this many seconds, as long as the playlist lists it.
MAX_RETRY_DELAY = 60.0
#: Default age (seconds) after which a held VOD segment is revalidated with a conditional GET.
DEFAULT_REVALIDATE = 3600.0


def choose_streams(
    streams: Sequence[Stream], renditions: Sequence[int | str | RenditionSelector] | None
) -> list[Stream]:
    """Streams with a playlist, all of them or those the selectors name
    (:mod:`p2pml_py.hls.select`: rendition numbers, ``lowest``, ``640x360``, ``800k`` ...)."""
    return select_renditions(streams, renditions)


class _StreamFeeder:
    """Fetches one stream's segments into its store, all of them or as demand says."""

    def __init__(
        self,
        seeder: Seeder,
        follower: StreamFollower,
        swarms: StreamSwarms,
        concurrency: int,
        retry_delay: float,
        mode: FetchMode,
        demand: DemandConfig,
    ) -> None:
        self.seeder = seeder
        self.follower = follower
        self.swarms = swarms
        self.loading: dict[int, Segment] = {}
        self.failed: dict[int, Segment] = {}
        #: Per failed segment: consecutive failures and when it may be asked for again.
        self.failures: dict[int, tuple[int, float]] = {}
        #: Per held segment: the origin's validators and when the body was last confirmed.
        self.validated: dict[int, tuple[Segment, Validators, float]] = {}
        self.slots = asyncio.Semaphore(concurrency)
        self.retry_delay = retry_delay
        self.backoff = Backoff(retry_delay, max(retry_delay, MAX_RETRY_DELAY))
        #: ``AUTO`` until the first playlist says live or VOD.
        self.mode = mode
        self.live: bool | None = None
        self.policy = DemandPolicy(demand)
        self.account = FetchAccount(swarms.stream)
        self.tracker_others: int | None = None
        self.changed = Notifier()  # the demand state changed
        self.closer = TaskGroup(logger)

    @property
    def label(self) -> str:
        return self.swarms.label

    @property
    def on_demand(self) -> bool:
        return self.mode is not FetchMode.ALL

    @property
    def state(self) -> RenditionState:
        if not self.on_demand:
            return RenditionState.FOLLOWING
        return self.policy.state

    async def run(self) -> None:
        self.closer.spawn(self._retry_loop(), "seeder-retry")
        if self.seeder.revalidate is not None:
            self.closer.spawn(self._revalidate_loop(self.seeder.revalidate), "seeder-revalidate")
        playlist = await self.follower.wait_loaded()
        self.live = playlist.is_live
        self.mode = self.mode.resolve(playlist.is_live)
        if self.mode is FetchMode.ALL:
            await self._fetch_every_segment()
        elif playlist.is_live:
            await self._follow_live()
        else:
            await self._fetch_vod_when_wanted(playlist)

    async def _fetch_every_segment(self) -> None:
        async for segment in self.follower.new_segments():
            self._evict_outside_window()
            await self._fetch_once(segment)

    async def _follow_live(self) -> None:
        """Every new segment while following; while idle only note what it would have cost."""
        async for segment in self.follower.new_segments():
            self._evict_outside_window()
            if self.policy.following:
                await self._fetch_once(segment)
            elif not self._held_or_loading(segment.external_id):
                self.account.skipped(segment)

    async def _fetch_vod_when_wanted(self, playlist: MediaPlaylist) -> None:
        for segment in playlist.segments:
            self.account.skipped(segment)
        for segment in playlist.segments:
            await self.changed.wait_until(lambda: self.policy.following)
            await self._fetch_once(segment)

    async def _wake(self) -> None:
        """Live, just wanted: the newest ``WAKE_SEGMENTS`` first (where a joining hls.js player
        starts), then the rest of the window, newest to oldest: a page with a longer live sync
        (``liveSyncDurationCount``) or a shorter ``highDemandTimeWindow`` asks its peers for
        those, and a seeder that held only the newest ones would send it to HTTP."""
        playlist = self.follower.playlist
        if playlist is None or not playlist.is_live:
            return
        newest = playlist.segments[-WAKE_SEGMENTS:]
        older = playlist.segments[:-WAKE_SEGMENTS][::-1]
        for segment in [*newest, *older]:
            if not self.policy.following:
                return
            await self._fetch_once(segment)

    def _held_or_loading(self, segment_id: int) -> bool:
        return segment_id in self.swarms.store or segment_id in self.loading

    async def _fetch_once(self, segment: Segment) -> None:
        """Start fetching ``segment`` once a slot is free, unless it is held or loading by then."""
        if self._held_or_loading(segment.external_id):
            return
        await self.slots.acquire()
        if self._held_or_loading(segment.external_id):
            self.slots.release()
            return
        self._start(segment)

    def _start(self, segment: Segment) -> None:
        self.loading[segment.external_id] = segment
        self.swarms.set_http_loading(list(self.loading))
        self.closer.spawn(self._fetch(segment), f"seeder-fetch-{segment.external_id}")

    async def _fetch(self, segment: Segment) -> None:
        sid = segment.external_id
        try:
            fetched = await self.seeder.source.fetch_segment_response(segment)
        except SourceError as exc:
            count = self.failures.get(sid, (0, 0.0))[0] + 1
            delay = self.backoff.delay(count)
            self.failures[sid] = (count, time.monotonic() + delay)
            # A rejected body was logged as a warning by the guard already (hls/guard.py).
            level = logging.INFO if isinstance(exc, SegmentInvalidError) else logging.WARNING
            logger.log(
                level,
                "origin: segment %s: %s (failure %d, next try in %.1f s)",
                sid,
                exc,
                count,
                delay,
            )
            self.seeder.origin_errors += 1
            self.failed[sid] = segment
            return
        finally:
            self.loading.pop(sid, None)
            self.slots.release()
        data = fetched.body
        self.seeder.http_bytes += len(data)
        self.account.fetched(sid, len(data))
        self.failed.pop(sid, None)
        self.failures.pop(sid, None)
        self.swarms.set_http_loading(list(self.loading))
        self.swarms.store.put(sid, data)
        if fetched.validators and self.live is not True:
            self.validated[sid] = (segment, fetched.validators, time.monotonic())

    def _evict_outside_window(self) -> None:
        playlist = self.follower.playlist
        if playlist is None or not playlist.is_live or not playlist.segments:
            return
        first = playlist.segments[0].external_id
        self.swarms.store.evict_below(first)
        self.account.forget_outside(first, playlist.segments[-1].external_id)
        for sid in [sid for sid in self.failed if sid < first]:
            del self.failed[sid]
            self.failures.pop(sid, None)
        for sid in [sid for sid in self.validated if sid < first]:
            del self.validated[sid]

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_delay)
            self._evict_outside_window()
            if self.on_demand and not self.policy.following:
                continue  # wanted when it failed, not any more
            now = time.monotonic()
            for sid, segment in list(self.failed.items()):
                if sid in self.loading or sid in self.swarms.store:
                    continue
                if self.failures.get(sid, (0, 0.0))[1] > now:
                    continue  # backing off
                if self.slots.locked():
                    break
                await self.slots.acquire()
                del self.failed[sid]
                self._start(segment)

    async def _revalidate_loop(self, max_age: float) -> None:
        """VOD: ask the origin, with a conditional GET, whether a segment held for ``max_age``
        seconds changed; a new body (checked like any other) replaces the held one. Segments
        whose origin sent neither ``ETag`` nor ``Last-Modified`` are not revalidated: that
        would download the whole VOD again every ``max_age``."""
        while True:
            await asyncio.sleep(min(max_age, 60.0))
            now = time.monotonic()
            due = [
                item
                for sid, item in self.validated.items()
                if now - item[2] >= max_age and sid in self.swarms.store
            ]
            for segment, validators, _ in due:
                async with self.slots:
                    await self._revalidate(segment, validators)

    async def _revalidate(self, segment: Segment, validators: Validators) -> None:
        sid = segment.external_id
        try:
            fetched = await self.seeder.source.fetch_segment_response(
                segment, conditional=validators
            )
        except SourceError as exc:
            logger.info("origin: revalidating segment %s: %s (keeping ours)", sid, exc)
            self.validated[sid] = (segment, validators, time.monotonic())
            return
        now = time.monotonic()
        if fetched.not_modified:
            self.validated[sid] = (segment, fetched.validators or validators, now)
            return
        self.seeder.http_bytes += len(fetched.body)
        if fetched.body != self.swarms.store.get(sid):
            logger.warning(
                "origin: segment %s changed since it was fetched; serving the new body",
                sid,
                extra={"event": "segment_replaced", "segment": sid},
            )
            self.seeder.replaced_segments += 1
            self.swarms.store.put(sid, fetched.body)
        self.validated[sid] = (segment, fetched.validators or validators, now)

    # -- demand ---------------------------------------------------------------------------------

    def observe(self, now: float, known_seeders: int) -> None:
        """Feed the policy what the swarms say at ``now``; act on a change of state."""
        if not self.on_demand:
            return
        swarms = self.swarms
        signals = DemandSignals(
            tracker_others=swarms.tracker_others(known_seeders),
            offers=swarms.offers_received,
            peers=swarms.connected_uploads(),
        )
        self.tracker_others = signals.tracker_others
        if not self.policy.update(now, signals):
            return
        state = self.policy.state
        logger.info(
            "rendition %s: %s (%s)",
            self.label,
            state.value,
            self.policy.reason if self.policy.following else "no other peer",
            extra={"event": f"rendition_{state.value}", "rendition": self.label},
        )
        self.changed.notify()
        if self.policy.following and self.live:
            self.closer.spawn(self._wake(), f"seeder-wake-{self.label}")

    def report(self) -> FetchReport:
        return FetchReport(
            label=self.label,
            mode=self.mode.value,
            state=self.state.value,
            origin_bytes=self.account.origin_bytes,
            origin_segments=self.account.origin_segments,
            skipped_segments=self.account.skipped_segments,
            saved_bytes=self.account.saved_bytes,
            starts=self.policy.starts,
            tracker_others=self.tracker_others,
        )

    async def aclose(self) -> None:
        await self.closer.aclose()


class Seeder(PeerRole):
    """Use as ``async with Seeder(url, options) as seeder: ...``.

    ``fetch``: ``"all"`` (the default here: every segment of every rendition), ``"demand"`` or
    ``"auto"`` (demand for live, all for VOD: the default of ``seed`` and the super-peer); see
    :mod:`p2pml_py.roles.demand`. ``demand`` tunes the policy (grace, tick, known seeders).
    """

    def __init__(
        self,
        manifest_url: str,
        options: PeerOptions,
        *,
        renditions: Sequence[int | str | RenditionSelector] | None = None,
        source_config: SourceConfig | None = None,
        concurrency: int = 2,
        retry_delay: float = 1.0,
        session: aiohttp.ClientSession | None = None,
        fetch: FetchMode | str = FetchMode.ALL,
        demand: DemandConfig | None = None,
        revalidate: float | None = DEFAULT_REVALIDATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(manifest_url, options, source_config=source_config, session=session)
        if revalidate is not None and revalidate <= 0:
            raise ValueError(f"revalidate must be > 0 seconds or None, got {revalidate}")
        #: Age (seconds) after which a held VOD segment is revalidated (``None``: never).
        self.revalidate = revalidate
        self.replaced_segments = 0
        self.renditions = renditions
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.fetch = FetchMode.parse(fetch)
        self.demand = demand or DemandConfig()
        self._clock = clock
        self.streams: list[StreamSwarms] = []
        self.http_bytes = 0
        self.origin_errors = 0
        self.started_at = 0.0
        self._feeders: list[_StreamFeeder] = []

    async def start(self) -> None:
        self.started_at = time.monotonic()
        tracker = await self._connect()
        chosen = self._announceable(choose_streams(self.source.streams, self.renditions))
        for stream in chosen:
            swarms = self._stream_swarms(stream, tracker)
            await swarms.start()
            self.streams.append(swarms)
            follower = self.source.follow(stream)
            feeder = _StreamFeeder(
                self,
                follower,
                swarms,
                self.concurrency,
                self.retry_delay,
                self.fetch,
                self.demand,
            )
            self._feeders.append(feeder)
            self._closer.spawn(feeder.run(), f"seeder-feed-{stream.label}")
        if self.fetch is not FetchMode.ALL:
            self._closer.spawn(self._watch_demand(), "seeder-demand")
        logger.info(
            "seeding %d stream(s) of %s in %s, fetching %s",
            len(chosen),
            self.source.final_url,
            ", ".join(v.value for v in self.options.versions),
            self.fetch.value,
        )

    async def _watch_demand(self) -> None:
        while True:
            now = self._clock()
            for feeder in self._feeders:
                feeder.observe(now, self.demand.known_seeders)
            await asyncio.sleep(self.demand.tick)

    def _all_streams(self) -> list[StreamSwarms]:
        return self.streams

    async def _before_close(self) -> None:
        for feeder in self._feeders:
            await feeder.aclose()

    # -- reporting ------------------------------------------------------------------------------

    @property
    def uploaded(self) -> int:
        return sum(s.uploaded for s in self.streams)

    @property
    def peer_count(self) -> int:
        return sum(s.peer_count for s in self.streams)

    @property
    def segments_held(self) -> int:
        return sum(len(s.store) for s in self.streams)

    def fetch_reports(self) -> list[FetchReport]:
        """Per rendition (in the order of :attr:`streams`): mode, state, origin bytes, savings."""
        return [feeder.report() for feeder in self._feeders]

    def summary(self) -> SeederSummary:
        peers: dict[str, PeerSummary] = {}
        for stream in self.streams:
            peers.update(stream.peer_counters())
        streams = [s.describe() for s in self.streams]
        for described, feeder in zip(streams, self._feeders, strict=False):
            described["fetch"] = feeder.report().to_json()
        return SeederSummary(
            manifest_url=self.source.final_url if self.streams else self.manifest_url,
            duration=round(time.monotonic() - self.started_at, 3),
            http_bytes=self.http_bytes,
            uploaded_bytes=self.uploaded,
            origin_errors=self.origin_errors,
            peers=peers,
            drops=merge_counts(s.drops() for s in self.streams),
            streams=streams,
            segments={s.stream.url: segment_digests(s.store) for s in self.streams},
        )
