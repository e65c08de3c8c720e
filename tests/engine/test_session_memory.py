"""Peer sessions over in-memory links: the engine alone, no aiortc, no sockets.

Every step follows from the event loop's order, so these tests wait on events and futures only;
``asyncio.wait_for`` bounds are there so that a bug fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import pytest

from p2pml_py.engine.outcomes import CloseReason
from p2pml_py.engine.session import DownloadError, PeerSession, SessionConfig
from p2pml_py.engine.store import SegmentStore
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.testing.clock import FakeClock
from p2pml_py.testing.memory import MemoryLink, memory_pair
from p2pml_py.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    CancelSegmentRequest,
    SegmentRequest,
    decode,
    encode,
    is_command_chunk,
)

SEGMENT = random.Random(7).randbytes(1_000_003)
BOUND = 5.0  # seconds; only reached if something is broken


async def settle(rounds: int = 5) -> None:
    """Run every callback and task that is ready, a few rounds deep (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture
async def links() -> AsyncIterator[tuple[MemoryLink, MemoryLink]]:
    a, b = await memory_pair()
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


class Announcements:
    """An ``on_announcement`` callback that counts and wakes a waiter."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self, session: PeerSession) -> None:
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(BOUND):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


def session_tasks() -> list[asyncio.Task[object]]:
    """The session tasks that are running (named ``session-<role>-<peer id>``)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("session-")]


async def tasks_end() -> None:
    """Return once every session task running now has ended by itself (none is cancelled)."""
    await asyncio.wait_for(asyncio.gather(*session_tasks()), BOUND)


async def test_download_resume_and_absent_segment(links: tuple[MemoryLink, MemoryLink]) -> None:
    clock = FakeClock(1000.0)
    seeder_store = SegmentStore()
    seeder_store.put(42, SEGMENT)
    announced = Announcements()
    seeder = PeerSession(links[0], "B" * 20, seeder_store, clock=clock)
    leecher = PeerSession(
        links[1], "A" * 20, SegmentStore(), on_announcement=announced, clock=clock
    )
    seeder.start(seeder_store.ids())
    leecher.start()
    try:
        await announced.wait_for(1)
        assert leecher.remote_loaded == {42}
        data = await asyncio.wait_for(leecher.download(42), BOUND)
        assert data == SEGMENT
        tail = await asyncio.wait_for(
            leecher.download(42, byte_from=999_000, total_size=len(SEGMENT)), BOUND
        )
        assert tail == SEGMENT[999_000:]
        with pytest.raises(DownloadError) as info:
            await asyncio.wait_for(leecher.download(7), BOUND)
        assert info.value.reason == "absent"
        assert leecher.stats.download_failures == {"absent": 1}
        assert seeder.stats.bytes_uploaded == len(SEGMENT) + len(SEGMENT) - 999_000
        assert seeder.stats.segments_uploaded == 2
        assert leecher.stats.segments_downloaded == 2
        assert leecher.stats.bytes_downloaded == len(SEGMENT) + len(tail)
        # Data chunks are at most the wire's max message size.
        assert links[0].messages_sent > len(SEGMENT) // DEFAULT_MAX_MESSAGE_SIZE
        assert not seeder.closed and not leecher.closed
        # Done and idle: neither session holds a task (writer, uploader, ticker end with
        # their work) -- and the next request and announcement start them again.
        await settle(20)
        await tasks_end()  # they end by themselves (the ticker after its last sleep)
        assert session_tasks() == []
        seeder.announce((42, 43))
        await announced.wait_for(announced.count + 1)
        assert await asyncio.wait_for(leecher.download(42), BOUND) == SEGMENT
        await settle(20)
        await tasks_end()
        assert session_tasks() == []
    finally:
        await seeder.aclose()
        await leecher.aclose()
    assert links[0].closed and links[1].closed


async def test_announcements_replace_the_remote_view(
    links: tuple[MemoryLink, MemoryLink],
) -> None:
    heard_by_b = Announcements()
    heard_by_a = Announcements()
    a = PeerSession(links[0], "A" * 20, SegmentStore(), on_announcement=heard_by_a)
    b = PeerSession(links[1], "B" * 20, SegmentStore(), on_announcement=heard_by_b)
    a.start((1, 2, 3), (4,))
    b.start((9,))
    try:
        await heard_by_b.wait_for(1)
        await heard_by_a.wait_for(1)
        assert b.remote_loaded == {1, 2, 3} and b.remote_http_loading == {4}
        assert a.remote_loaded == {9} and a.remote_http_loading == frozenset()
        a.announce((2, 5))  # the whole state: 1 and 3 are gone, nothing is loading
        await heard_by_b.wait_for(2)
        assert b.remote_loaded == {2, 5} and b.remote_http_loading == frozenset()
        # Two announcements in a row before the writer runs: the stale one is replaced.
        a.announce((6,))
        a.announce((7,), (8,))
        await heard_by_b.wait_for(3)
        await settle()
        assert heard_by_b.count == 3
        assert b.remote_loaded == {7} and b.remote_http_loading == {8}
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("how", ["aclose", "connection lost"])
async def test_a_seeder_that_goes_away_mid_transfer_fails_the_download(
    how: str,
) -> None:
    # A small watermark keeps the upload in flight for many loop iterations.
    a, b = await memory_pair(RtcConfig(high_watermark=100_000))
    store = SegmentStore()
    store.put(1, SEGMENT)
    midway = asyncio.Event()
    chunks = 0

    def on_uploaded(session: PeerSession, count: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            midway.set()

    closed = asyncio.Event()
    seeder = PeerSession(a, "S" * 20, store, on_uploaded=on_uploaded)
    leecher = PeerSession(b, "L" * 20, SegmentStore(), on_closed=lambda s: closed.set())
    seeder.start(store.ids())
    leecher.start()
    try:
        download = asyncio.create_task(leecher.download(1, total_size=len(SEGMENT)))
        await asyncio.wait_for(midway.wait(), BOUND)
        assert leecher.protocol.downloading == 1
        if how == "aclose":
            await seeder.aclose()
        else:
            a.drop()
        with pytest.raises(DownloadError) as info:
            await asyncio.wait_for(download, BOUND)
        assert info.value.reason == "closed"
        await asyncio.wait_for(closed.wait(), BOUND)
        assert str(leecher.close_reason) == "connection closed"
        assert 0 < seeder.stats.bytes_uploaded < len(SEGMENT)
        assert leecher.stats.segments_downloaded == 0
        await asyncio.wait_for(seeder.wait_closed(), BOUND)
    finally:
        await seeder.aclose()
        await leecher.aclose()


async def test_receive_timeout_on_a_fake_clock(links: tuple[MemoryLink, MemoryLink]) -> None:
    """A remote that never answers a request: the download fails once the (fake) receive timeout
    has passed, not before, and the request is cancelled on the wire."""
    clock = FakeClock()
    raw: list[bytes] = []
    links[0].set_receiver(raw.append)  # a remote that reads but never answers
    # tick_interval=0: the ticker only yields to the loop between checks, so fake time rules.
    session = PeerSession(
        links[1], "R" * 20, SegmentStore(), config=SessionConfig(tick_interval=0), clock=clock
    )
    session.start()

    def tickers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("session-ticker-")]

    try:
        await settle()
        assert tickers() == []  # nothing can time out: no ticker task is held
        download = asyncio.create_task(session.download(3))
        await settle(20)
        assert not download.done() and len(tickers()) == 1
        clock.advance(1.9)
        await settle(20)
        assert not download.done()
        clock.advance(0.1)  # receive_timeout = 2.0
        with pytest.raises(DownloadError) as info:
            await asyncio.wait_for(download, BOUND)
        assert info.value.reason == "timeout"
        await settle()
        commands = [decode(m) for m in raw if is_command_chunk(m)]
        assert [type(c) for c in commands][-2:] == [SegmentRequest, CancelSegmentRequest]
        assert not session.closed  # one timeout is not a violation
        assert tickers() == []  # it ended with the download
        again = asyncio.create_task(session.download(4))  # the next one starts it again
        await settle(20)
        assert len(tickers()) == 1
        clock.advance(2.0)
        with pytest.raises(DownloadError):
            await asyncio.wait_for(again, BOUND)
    finally:
        await session.aclose()


async def test_a_remote_that_stops_reading_is_dropped() -> None:
    """The remote asks for a big segment and stalls: the upload cannot drain and the session
    gives up after ``upload_stall_timeout`` (a wall-clock deadline inside the engine)."""
    a, b = await memory_pair(RtcConfig(high_watermark=100_000))
    store = SegmentStore()
    store.put(1, SEGMENT)
    closed = asyncio.Event()
    seeder = PeerSession(
        a,
        "S" * 20,
        store,
        config=SessionConfig(upload_stall_timeout=0.05),
        on_closed=lambda s: closed.set(),
    )
    seeder.start(store.ids())
    try:
        b.set_receiver(lambda data: None)
        b.stall()
        for message in encode(SegmentRequest(1, 1)):
            await b.send(message)
        await asyncio.wait_for(closed.wait(), BOUND)
        assert str(seeder.close_reason) == "remote stopped reading"
        assert seeder.stats.bytes_uploaded < len(SEGMENT)
    finally:
        await seeder.aclose()
        await b.aclose()


class OlderLink:
    """A Link as the seam was before ``on_closed``: a session still learns of its close."""

    def __init__(self, link: MemoryLink) -> None:
        self._link = link
        self.label = link.label

    @property
    def closed(self) -> bool:
        return self._link.closed

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        self._link.set_receiver(callback)

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        await self._link.send(data)

    async def wait_closed(self) -> None:
        await self._link.wait_closed()

    async def aclose(self) -> None:
        await self._link.aclose()


async def test_a_link_without_on_closed_is_watched_by_a_task(
    links: tuple[MemoryLink, MemoryLink],
) -> None:
    closed = asyncio.Event()
    session = PeerSession(
        OlderLink(links[1]), "R" * 20, SegmentStore(), on_closed=lambda s: closed.set()
    )
    session.start()
    try:
        await settle()
        assert [t.get_name() for t in session_tasks()] == ["session-watch-" + "R" * 20]
        await links[0].aclose()  # the remote goes
        await asyncio.wait_for(closed.wait(), BOUND)
        assert session.close_reason is not None
        assert session.close_reason.reason is CloseReason.CONNECTION_CLOSED
    finally:
        await session.aclose()
