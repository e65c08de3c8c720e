"""Peer sessions over real aiortc data channels on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

import pytest

from p2pml_py.engine.outcomes import Closed, CloseReason
from p2pml_py.engine.session import DownloadError, PeerSession, SessionConfig
from p2pml_py.engine.store import SegmentStore
from p2pml_py.rtc.aiortc_backend.link import DataChannelLink
from p2pml_py.rtc.aiortc_backend.loopback import loopback_pair
from p2pml_py.wire import SegmentData, SegmentDataSendingCompleted, SegmentRequest, encode
from p2pml_py.wire.protocol import PeerProtocol

SEGMENT = random.Random(7).randbytes(1_000_003)


@pytest.fixture
async def links() -> AsyncIterator[tuple[DataChannelLink, DataChannelLink]]:
    a, b = await loopback_pair()
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def test_download_and_resume(links: tuple[DataChannelLink, DataChannelLink]) -> None:
    seeder_store, leecher_store = SegmentStore(), SegmentStore()
    seeder_store.put(42, SEGMENT)
    announced = asyncio.Event()
    seeder = PeerSession(links[0], "B" * 20, seeder_store)
    leecher = PeerSession(
        links[1], "A" * 20, leecher_store, on_announcement=lambda s: announced.set()
    )
    seeder.start(seeder_store.ids())
    leecher.start()
    try:
        await asyncio.wait_for(announced.wait(), 5)
        assert 42 in leecher.remote_loaded
        data = await asyncio.wait_for(leecher.download(42), 10)
        assert hashlib.sha256(data).digest() == hashlib.sha256(SEGMENT).digest()
        tail = await asyncio.wait_for(
            leecher.download(42, byte_from=999_000, total_size=len(SEGMENT)), 10
        )
        assert tail == SEGMENT[999_000:]
        with pytest.raises(DownloadError) as info:
            await asyncio.wait_for(leecher.download(7), 10)
        assert info.value.reason == "absent"
        assert seeder.stats.bytes_uploaded == len(SEGMENT) + len(SEGMENT) - 999_000
        assert leecher.stats.segments_downloaded == 2
        assert leecher.stats.download_rate > 0
    finally:
        await seeder.aclose()
        await leecher.aclose()


async def _raw(link: DataChannelLink) -> tuple[PeerProtocol, asyncio.Queue[bytes]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    link.set_receiver(queue.put_nowait)
    return PeerProtocol(), queue


async def _first_request(queue: asyncio.Queue[bytes]) -> SegmentRequest:
    from p2pml_py.wire import decode, is_command_chunk

    while True:
        message = await asyncio.wait_for(queue.get(), 5)
        if is_command_chunk(message):
            command = decode(message)
            if isinstance(command, SegmentRequest):
                return command


@pytest.mark.parametrize("lie", ["size", "overflow", "short"])
async def test_lying_peer_is_dropped(
    links: tuple[DataChannelLink, DataChannelLink], lie: str
) -> None:
    """A peer that lies about sizes is dropped; the download fails cleanly."""
    closed = asyncio.Event()
    session = PeerSession(links[1], "H" * 20, SegmentStore(), on_closed=lambda s: closed.set())
    session.start()
    _, queue = await _raw(links[0])
    task = asyncio.create_task(session.download(5, total_size=100 if lie == "size" else None))
    request = await _first_request(queue)
    size = 99 if lie == "size" else 10
    for message in encode(SegmentData(5, request.request_id, size)):
        await links[0].send(message)
    if lie == "overflow":
        await links[0].send(b"x" * 11)
    elif lie == "short":
        await links[0].send(b"x" * 9)
        for message in encode(SegmentDataSendingCompleted(5, request.request_id)):
            await links[0].send(message)
    with pytest.raises(DownloadError):
        await asyncio.wait_for(task, 5)
    await asyncio.wait_for(closed.wait(), 5)
    assert session.close_reason is not None
    assert session.close_reason.reason is CloseReason.PROTOCOL_VIOLATION
    await asyncio.wait_for(links[0].wait_closed(), 10)


async def test_remote_close_is_detected(links: tuple[DataChannelLink, DataChannelLink]) -> None:
    closed = asyncio.Event()
    session = PeerSession(links[1], "C" * 20, SegmentStore(), on_closed=lambda s: closed.set())
    session.start()
    await links[0].aclose()
    await asyncio.wait_for(closed.wait(), 10)
    assert session.close_reason == Closed(CloseReason.CONNECTION_CLOSED)


async def test_peer_that_stops_reading_is_dropped(
    links: tuple[DataChannelLink, DataChannelLink],
) -> None:
    """The remote requests a big segment and never reads: the upload stalls, we drop it."""
    store = SegmentStore()
    store.put(1, random.Random(3).randbytes(32 * 1024 * 1024))
    closed = asyncio.Event()
    session = PeerSession(
        links[0],
        "S" * 20,
        store,
        config=SessionConfig(upload_stall_timeout=1.0),
        on_closed=lambda s: closed.set(),
    )
    session.start(store.ids())
    # Make the remote stop reading: pause its UDP sockets, so nothing it receives is processed
    # or acknowledged and our send buffer cannot drain.
    receiver_transport = links[1].channel.transport.transport.transport  # RTCIceTransport
    connection = receiver_transport.iceGatherer._connection
    for protocol in connection._protocols:
        protocol.transport.pause_reading()
    for message in encode(SegmentRequest(1, 1)):
        await links[1].send(message)
    await asyncio.wait_for(closed.wait(), 30)
    assert session.close_reason == Closed(CloseReason.REMOTE_NOT_READING)


async def test_fast_peer_requesting_small_segments_back_to_back_is_never_dropped(
    links: tuple[DataChannelLink, DataChannelLink],
) -> None:
    """A peer on a good link asks for small segments back to back for seconds: as many requests
    a second as the link carries. It is served, never dropped (no request rate limit).

    Two ways of asking fast: a raw peer that pipelines requests without waiting (each one stops
    the previous upload, as in browsers) while it reads what comes back, then a player-like
    session (one download at a time, the next as soon as the previous ends)."""
    store = SegmentStore()
    segments = {sid: random.Random(sid).randbytes(2_000 + sid) for sid in range(100)}
    for sid, data in segments.items():
        store.put(sid, data)
    seeder = PeerSession(links[0], "S" * 20, store)
    seeder.start(store.ids())
    try:
        _, queue = await _raw(links[1])
        for n in range(3000):
            for message in encode(SegmentRequest(n % 100, n % 1000)):
                await links[1].send(message)
        last = encode(SegmentDataSendingCompleted(2999 % 100, 2999 % 1000))[0]
        while await asyncio.wait_for(queue.get(), 10) != last:
            pass  # everything we asked for last arrives; nothing closes
        assert not seeder.closed and seeder.close_reason is None

        announced = asyncio.Event()
        leecher = PeerSession(
            links[1], "L" * 20, SegmentStore(), on_announcement=lambda s: announced.set()
        )
        leecher.start()
        seeder.announce(store.ids())  # the leecher's first view of us
        await asyncio.wait_for(announced.wait(), 5)
        uploaded = seeder.stats.segments_uploaded
        for count in range(2000):  # hundreds a second here: the old limit (200/s) dropped it
            sid = count % 100
            data = await asyncio.wait_for(leecher.download(sid), 5)
            assert data == segments[sid]
        assert not seeder.closed and seeder.close_reason is None
        assert seeder.stats.segments_uploaded - uploaded == 2000
        await leecher.aclose()
    finally:
        await seeder.aclose()
