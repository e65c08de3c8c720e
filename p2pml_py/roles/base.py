"""The base of every role (:class:`~p2pml_py.roles.seeder.Seeder`,
:class:`~p2pml_py.roles.viewer.Viewer`): an origin, one tracker client, one WebRTC transport, the
streams' swarms (:class:`~p2pml_py.engine.streams.StreamSwarms`) and background tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping

import aiohttp

from p2pml_py.base.aio import Service, TaskGroup
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.streams import PeerOptions, StreamSwarms
from p2pml_py.hls.playlist import Stream
from p2pml_py.hls.source import HlsSource, SourceConfig
from p2pml_py.rtc.transport import Transport, open_transport
from p2pml_py.tracker.client import TrackerClient

logger = logging.getLogger(__name__)


class PeerRole(Service):
    """Base of :class:`~p2pml_py.roles.seeder.Seeder` and :class:`~p2pml_py.roles.viewer.Viewer`: the origin
    (an :class:`~p2pml_py.hls.source.HlsSource`), one tracker client shared by every swarm, one
    WebRTC factory, and background tasks. ``async with`` starts it; :meth:`aclose` (idempotent)
    leaves every swarm (trackers get ``stopped``) and closes the source."""

    def __init__(
        self,
        manifest_url: str,
        options: PeerOptions,
        *,
        source_config: SourceConfig | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.manifest_url = manifest_url
        self.options = options
        self.source = HlsSource(manifest_url, session=session, config=source_config)
        self.tracker: TrackerClient | None = None
        self.rtc: Transport = open_transport(options.rtc)
        self._closer = TaskGroup(logger)
        self._closed = False

    async def start(self) -> None:
        raise NotImplementedError

    async def wait_ended(self) -> None:
        """Until the role has nothing more to do (a viewer at the end of a VOD). A seeder serves
        until it is closed: for it this only returns by cancellation."""
        await asyncio.Event().wait()

    async def _connect(self) -> TrackerClient:
        """Load the manifest, then open the tracker connections."""
        await self.source.__aenter__()
        self.tracker = TrackerClient(self.options.trackers)
        await self.tracker.__aenter__()
        return self.tracker

    @property
    def swarm_id(self) -> str:
        """The page's swarm id if configured, else the manifest URL's (after redirects)."""
        return self.options.swarm_id or self.source.swarm_id

    def _stream_swarms(self, stream: Stream, tracker: TrackerClient) -> StreamSwarms:
        return StreamSwarms(stream, self.swarm_id, self.options, tracker, self.rtc)

    def _announceable(self, streams: Iterable[Stream]) -> list[Stream]:
        """``streams`` minus those whose swarms are outside ``options.only_info_hashes``
        (each skipped one is logged once: it is a configuration or an instance question)."""
        kept = []
        for stream in streams:
            if self.options.allows(self.swarm_id, stream):
                kept.append(stream)
            else:
                logger.warning(
                    "not announcing %s of %s: its swarm is not one the tracker knows",
                    stream.label,
                    self.source.final_url,
                )
        return kept

    def _all_streams(self) -> list[StreamSwarms]:
        raise NotImplementedError

    async def _before_close(self) -> None:
        """Stop role-specific work before the swarms close."""

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._closer.aclose()
        await self._before_close()
        await asyncio.gather(*(s.aclose() for s in self._all_streams()), return_exceptions=True)
        if self.tracker is not None:
            await self.tracker.aclose()
        await self.source.aclose()


def segment_digests(store: SegmentStore) -> dict[str, str]:
    """SHA-256 of every held segment, by segment id (for reports and byte-exact checks)."""
    return {str(sid): hashlib.sha256(store.get(sid) or b"").hexdigest() for sid in store.ids()}


def merge_counts(items: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in items:
        for key, value in counts.items():
            out[key] = out.get(key, 0) + value
    return out
