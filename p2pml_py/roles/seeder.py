"""The seeder: follows an HLS stream from its origin and serves it to the browsers' swarms.

For every chosen stream (all video levels and audio tracks by default) the seeder joins the swarm
of each protocol version, follows the media playlist (live: reloads, sliding window; VOD: once),
fetches every segment over HTTP as soon as it appears -- announcing it in ``p`` while loading and
in ``l`` once held, which is what makes browsers ask for it -- and evicts what slid out of a live
window. Origin errors are counted and retried while the segment is still in the playlist; what
the seeder already holds keeps being served during an origin outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import aiohttp

from p2pml_py.base.aio import TaskGroup
from p2pml_py.base.errors import LocalProtocolError, SourceError
from p2pml_py.engine.streams import PeerOptions, PeerSummary, StreamSwarms
from p2pml_py.hls.playlist import Segment, Stream
from p2pml_py.hls.source import SourceConfig, StreamFollower
from p2pml_py.roles.base import PeerRole, merge_counts, segment_digests
from p2pml_py.roles.summary import SeederSummary

logger = logging.getLogger(__name__)


def choose_streams(streams: Sequence[Stream], renditions: Sequence[int] | None) -> list[Stream]:
    """Streams with a playlist, all of them or those at the given positions of ``streams``."""
    if renditions is None:
        return [s for s in streams if s.has_playlist]
    chosen: list[Stream] = []
    for index in renditions:
        if not 0 <= index < len(streams):
            raise LocalProtocolError(
                f"rendition {index} does not exist (the manifest has {len(streams)}: 0..{len(streams) - 1})"
            )
        if not streams[index].has_playlist:
            raise LocalProtocolError(f"rendition {index} is carried inside another stream")
        chosen.append(streams[index])
    return chosen


class _StreamFeeder:
    """Fetches one stream's segments into its store."""

    def __init__(
        self,
        seeder: Seeder,
        follower: StreamFollower,
        swarms: StreamSwarms,
        concurrency: int,
        retry_delay: float,
    ) -> None:
        self.seeder = seeder
        self.follower = follower
        self.swarms = swarms
        self.loading: dict[int, Segment] = {}
        self.failed: dict[int, Segment] = {}
        self.slots = asyncio.Semaphore(concurrency)
        self.retry_delay = retry_delay
        self.closer = TaskGroup(logger)

    async def run(self) -> None:
        self.closer.spawn(self._retry_loop(), "seeder-retry")
        async for segment in self.follower.new_segments():
            self._evict_outside_window()
            if segment.external_id in self.swarms.store or segment.external_id in self.loading:
                continue
            await self.slots.acquire()
            self._start(segment)

    def _start(self, segment: Segment) -> None:
        self.loading[segment.external_id] = segment
        self.swarms.set_http_loading(list(self.loading))
        self.closer.spawn(self._fetch(segment), f"seeder-fetch-{segment.external_id}")

    async def _fetch(self, segment: Segment) -> None:
        try:
            data = await self.seeder.source.fetch_segment(segment)
        except SourceError as exc:
            logger.warning("origin: segment %s: %s", segment.external_id, exc)
            self.seeder.origin_errors += 1
            self.failed[segment.external_id] = segment
            return
        finally:
            self.loading.pop(segment.external_id, None)
            self.slots.release()
        self.seeder.http_bytes += len(data)
        self.failed.pop(segment.external_id, None)
        self.swarms.set_http_loading(list(self.loading))
        self.swarms.store.put(segment.external_id, data)

    def _evict_outside_window(self) -> None:
        playlist = self.follower.playlist
        if playlist is None or not playlist.is_live or not playlist.segments:
            return
        first = playlist.segments[0].external_id
        self.swarms.store.evict_below(first)
        for sid in [sid for sid in self.failed if sid < first]:
            del self.failed[sid]

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_delay)
            self._evict_outside_window()
            for sid, segment in list(self.failed.items()):
                if sid in self.loading or sid in self.swarms.store:
                    continue
                if self.slots.locked():
                    break
                await self.slots.acquire()
                del self.failed[sid]
                self._start(segment)

    async def aclose(self) -> None:
        await self.closer.aclose()


class Seeder(PeerRole):
    """Use as ``async with Seeder(url, options) as seeder: ...``."""

    def __init__(
        self,
        manifest_url: str,
        options: PeerOptions,
        *,
        renditions: Sequence[int] | None = None,
        source_config: SourceConfig | None = None,
        concurrency: int = 2,
        retry_delay: float = 1.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(manifest_url, options, source_config=source_config, session=session)
        self.renditions = renditions
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.streams: list[StreamSwarms] = []
        self.http_bytes = 0
        self.origin_errors = 0
        self.started_at = 0.0
        self._feeders: list[_StreamFeeder] = []

    async def start(self) -> None:
        self.started_at = time.monotonic()
        tracker = await self._connect()
        chosen = choose_streams(self.source.streams, self.renditions)
        for stream in chosen:
            swarms = self._stream_swarms(stream, tracker)
            await swarms.start()
            self.streams.append(swarms)
            follower = self.source.follow(stream)
            feeder = _StreamFeeder(self, follower, swarms, self.concurrency, self.retry_delay)
            self._feeders.append(feeder)
            self._closer.spawn(feeder.run(), f"seeder-feed-{stream.label}")
        logger.info(
            "seeding %d stream(s) of %s in %s",
            len(chosen),
            self.source.final_url,
            ", ".join(v.value for v in self.options.versions),
        )

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

    def summary(self) -> SeederSummary:
        peers: dict[str, PeerSummary] = {}
        for stream in self.streams:
            peers.update(stream.peer_counters())
        return SeederSummary(
            manifest_url=self.source.final_url if self.streams else self.manifest_url,
            duration=round(time.monotonic() - self.started_at, 3),
            http_bytes=self.http_bytes,
            uploaded_bytes=self.uploaded,
            origin_errors=self.origin_errors,
            peers=peers,
            drops=merge_counts(s.drops() for s in self.streams),
            streams=[s.describe() for s in self.streams],
            segments={s.stream.url: segment_digests(s.store) for s in self.streams},
        )
