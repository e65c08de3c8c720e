"""The base of every role (:class:`~p2pml_py.roles.seeder.Seeder`,
:class:`~p2pml_py.roles.viewer.Viewer`): an origin, one tracker client, one WebRTC transport, the
streams' swarms (:class:`~p2pml_py.engine.streams.StreamSwarms`) and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Self

import aiohttp

from p2pml_py.base.errors import P2PMLError
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.streams import PeerOptions, StreamSwarms
from p2pml_py.hls.playlist import Stream
from p2pml_py.hls.source import HlsSource, SourceConfig
from p2pml_py.rtc.transport import Transport, open_transport
from p2pml_py.tracker.client import TrackerClient

logger = logging.getLogger(__name__)


class PeerRole:
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
        self._closer = Closer()
        self._closed = False

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        raise NotImplementedError

    async def _connect(self) -> TrackerClient:
        """Load the manifest, then open the tracker connections."""
        await self.source.__aenter__()
        self.tracker = TrackerClient(self.options.trackers)
        await self.tracker.__aenter__()
        return self.tracker

    def _stream_swarms(self, stream: Stream, tracker: TrackerClient) -> StreamSwarms:
        swarm_id = self.options.swarm_id or self.source.swarm_id
        return StreamSwarms(stream, swarm_id, self.options, tracker, self.rtc)

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


class Closer:
    """Owns background tasks: ``spawn`` them, ``aclose`` cancels and awaits every one."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            level = logging.WARNING if isinstance(exc, P2PMLError) else logging.ERROR
            logger.log(level, "task %s failed: %r", task.get_name(), exc, exc_info=exc)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def segment_digests(store: SegmentStore) -> dict[str, str]:
    """SHA-256 of every held segment, by segment id (for reports and byte-exact checks)."""
    return {str(sid): hashlib.sha256(store.get(sid) or b"").hexdigest() for sid in store.ids()}


def merge_counts(items: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in items:
        for key, value in counts.items():
            out[key] = out.get(key, 0) + value
    return out
