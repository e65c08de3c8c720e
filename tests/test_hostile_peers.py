"""Hostile peers: each is dropped, only it, while other transfers complete; memory stays bounded.

A good seeder, a victim and one hostile peer meet through the embedded tracker over real aiortc.
The hostile peer speaks raw data-channel messages; the victim meanwhile downloads segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import tracemalloc
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from p2pml_py.engine.outcomes import Closed, CloseReason, Violation
from p2pml_py.engine.session import DownloadError, SessionConfig
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.swarm import Swarm, SwarmConfig
from p2pml_py.identity import ProtocolVersion, generate_peer_id, info_hash
from p2pml_py.rtc.aiortc_backend.factory import OutgoingConnection, RtcFactory
from p2pml_py.rtc.aiortc_backend.link import DataChannelLink
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.tracker.client import TrackerClient
from p2pml_py.tracker.server import TrackerServer
from p2pml_py.wire import (
    SegmentData,
    SegmentRequest,
    SegmentsAnnouncement,
    decode,
    encode,
    is_command_chunk,
)
from p2pml_py.wire.codec import encode_int

INFO_HASH = info_hash("v2-hostile-main-0", ProtocolVersion.V2_3)
SIZE = 256 * 1024
SEGMENTS = {sid: random.Random(sid).randbytes(SIZE) for sid in range(10)}
BIG_ID = 100  # a segment only the victim holds, for the "stops reading" case
ABSENT_ID = 999  # a segment nobody holds: every request for it is answered with SegmentAbsent

Behaviour = Callable[[DataChannelLink], Awaitable[None]]


async def _requests(link: DataChannelLink) -> asyncio.Queue[SegmentRequest]:
    queue: asyncio.Queue[SegmentRequest] = asyncio.Queue()

    def receive(message: bytes) -> None:
        if is_command_chunk(message):
            with contextlib.suppress(ValueError):
                command = decode(message)
                if isinstance(command, SegmentRequest):
                    queue.put_nowait(command)

    link.set_receiver(receive)
    return queue


async def _send(link: DataChannelLink, messages: list[bytes]) -> None:
    for message in messages:
        await link.send(message)


async def size_lie(link: DataChannelLink) -> None:
    requests = await _requests(link)
    await _send(link, encode(SegmentsAnnouncement(tuple(SEGMENTS))))
    while True:
        request = await requests.get()
        await _send(link, encode(SegmentData(request.segment_id, request.request_id, SIZE * 2)))


async def overflow(link: DataChannelLink) -> None:
    requests = await _requests(link)
    await _send(link, encode(SegmentsAnnouncement(tuple(SEGMENTS))))
    while True:
        request = await requests.get()
        await _send(link, encode(SegmentData(request.segment_id, request.request_id, SIZE)))
        for _ in range(SIZE // 60000 + 2):
            await link.send(b"\x00" * 60000)


async def unknown_command(link: DataChannelLink) -> None:
    await link.send(b"cstr\x09i\x01\x01cend")


async def endless_command(link: DataChannelLink) -> None:
    await link.send(b"cstr\x00" + b"\x00" * 60000 + b"dend")
    while True:
        await link.send(b"dstr" + b"\x00" * 60000 + b"dend")


async def million_ids(link: DataChannelLink) -> None:
    # 16 "l" fields of 255 groups x 256 ids each (length byte 0 = 256): over a million ids.
    group = b"".join(encode_int(common * 256) + bytes(range(256)) for common in range(255))
    field = b"l\x10\xff" + group
    body = b"\x00" + field * 16
    assert len(body) > 1_000_000
    piece = 60000
    chunks = [body[i : i + piece] for i in range(0, len(body), piece)]
    framed = [
        (b"cstr" if i == 0 else b"dstr") + c + (b"cend" if i == len(chunks) - 1 else b"dend")
        for i, c in enumerate(chunks)
    ]
    await _send(link, framed)


async def asks_without_reading(link: DataChannelLink) -> None:
    """Keeps requesting while it takes none of the replies: its SCTP discards every DATA chunk
    we send (no SACK, so our side can never deliver), while our SACKs for its own requests still
    reach it, so it can go on asking as fast as it likes."""

    async def discard(chunk: object) -> None:
        return None

    link._pc.sctp._receive_data_chunk = discard  # type: ignore[method-assign]
    request = encode(SegmentRequest(ABSENT_ID, 1))[0]
    while True:
        await link.send(request)


async def stops_reading(link: DataChannelLink) -> None:
    await _send(link, encode(SegmentRequest(BIG_ID, 7)))
    ice = link.channel.transport.transport.transport.iceGatherer._connection
    for protocol in ice._protocols:
        protocol.transport.pause_reading()
    await asyncio.Future()


class HostilePeer:
    """Joins the swarm through the tracker like any peer, then runs ``behaviour`` on each link."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.rtc = RtcFactory(LOOPBACK_CONFIG)
        self.peer_id = generate_peer_id(ProtocolVersion.V2_3)
        self.links: list[DataChannelLink] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def _run(self, link: DataChannelLink) -> None:
        self.links.append(link)
        task = asyncio.create_task(self._guard(link))
        self.tasks.add(task)

    async def _guard(self, link: DataChannelLink) -> None:
        with contextlib.suppress(Exception):
            await self.behaviour(link)

    def offers_wanted(self) -> int:
        return 5

    async def make_offer(self) -> _Offer:
        return _Offer(self, await self.rtc.create_offer())

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
        incoming = await self.rtc.accept_offer(sdp)

        async def wait() -> None:
            with contextlib.suppress(Exception):
                self._run(await incoming.wait_link())

        task = asyncio.create_task(wait())
        self.tasks.add(task)
        return incoming.sdp

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for link in self.links:
            await link.aclose()


class _Offer:
    def __init__(self, peer: HostilePeer, outgoing: OutgoingConnection) -> None:
        self.peer, self.outgoing, self.sdp = peer, outgoing, outgoing.sdp

    async def accept_answer(self, peer_id: str, sdp: str) -> None:
        self.peer._run(await self.outgoing.accept_answer(sdp))

    async def aclose(self) -> None:
        await self.outgoing.aclose()


STALL_FAST = SessionConfig(upload_stall_timeout=1.0)
#: Only the backlog rule can drop the peer that asks without reading: the stall timeout is far
#: off, and a small send buffer makes the backlog start after ~1,000 unread replies.
BACKLOG_ONLY = SessionConfig(upload_stall_timeout=120.0, max_send_backlog=16 * 1024)
SMALL_BUFFER = dataclasses.replace(LOOPBACK_CONFIG, high_watermark=16 * 1024)

V = CloseReason.PROTOCOL_VIOLATION
BEHAVIOURS: dict[str, tuple[Behaviour, Closed, SessionConfig, RtcConfig]] = {
    "size-lie": (size_lie, Closed(V, Violation.SIZE_MISMATCH), STALL_FAST, LOOPBACK_CONFIG),
    "overflow": (overflow, Closed(V, Violation.OVERFLOW), STALL_FAST, LOOPBACK_CONFIG),
    "unknown-command": (
        unknown_command,
        Closed(V, "UnknownCommandError"),
        STALL_FAST,
        LOOPBACK_CONFIG,
    ),
    "endless-command": (
        endless_command,
        Closed(V, "MessageTooLargeError"),
        STALL_FAST,
        LOOPBACK_CONFIG,
    ),
    "million-ids": (million_ids, Closed(V, "MessageTooLargeError"), STALL_FAST, LOOPBACK_CONFIG),
    "asks-without-reading": (
        asks_without_reading,
        Closed(V, Violation.NOT_READING),
        BACKLOG_ONLY,
        SMALL_BUFFER,
    ),
    "stops-reading": (
        stops_reading,
        Closed(CloseReason.REMOTE_NOT_READING),
        STALL_FAST,
        LOOPBACK_CONFIG,
    ),
}


@pytest.mark.parametrize("name", list(BEHAVIOURS))
async def test_hostile_peer_is_dropped(name: str) -> None:
    behaviour, expected, session_config, rtc_config = BEHAVIOURS[name]
    hostile = HostilePeer(behaviour)
    async with TrackerServer() as server, AsyncExitStack() as stack:
        seed_store = SegmentStore()
        for sid, data in SEGMENTS.items():
            seed_store.put(sid, data)
        config = SwarmConfig(session=session_config)

        async def peer(store: SegmentStore) -> Swarm:
            client = await stack.enter_async_context(TrackerClient([server.url]))
            swarm = Swarm(INFO_HASH, client, RtcFactory(rtc_config), store, config=config)
            return await stack.enter_async_context(swarm)

        seeder = await peer(seed_store)
        victim_store = SegmentStore()
        victim_store.put(BIG_ID, random.Random(9).randbytes(32 * 1024 * 1024))
        victim = await peer(victim_store)
        async with asyncio.timeout(20):
            await victim.wait_until(lambda: seeder.peer_id in victim.peers)
        tracemalloc.start()
        try:
            hostile_client = await stack.enter_async_context(TrackerClient([server.url]))
            stack.push_async_callback(hostile.aclose)
            await hostile_client.join(INFO_HASH, hostile.peer_id, hostile)
            async with asyncio.timeout(20):
                await victim.wait_until(lambda: hostile.peer_id in victim.stats.peers)
            baseline = tracemalloc.get_traced_memory()[0]

            async def fetch(sid: int) -> bytes:
                # Like a player: a failed P2P attempt (the hostile peer was picked, or a timeout
                # while the loop shared with the hostile peer was busy) is simply retried.
                for _ in range(5):
                    with contextlib.suppress(DownloadError):
                        return await victim.download(sid, total_size=SIZE)
                raise AssertionError(f"segment {sid} never arrived")

            async def fetch_all() -> None:
                for sid in SEGMENTS:
                    data = await fetch(sid)
                    assert hashlib.sha256(data).digest() == hashlib.sha256(SEGMENTS[sid]).digest()

            async def provoke() -> None:
                # The victim picks peers at random, weighted by measured throughput, so it may
                # never have asked the hostile peer; ask it directly, as a player eventually would.
                session = victim.peers.get(hostile.peer_id)
                if session is not None and session.remote_loaded and not session.busy:
                    with contextlib.suppress(DownloadError):
                        await session.download(min(session.remote_loaded), total_size=SIZE)

            async with asyncio.timeout(60):
                await fetch_all()
                await provoke()
                await victim.wait_until(lambda: hostile.peer_id not in victim.peers)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        counters = victim.stats.peers[hostile.peer_id]
        assert counters.close_reason == expected, counters
        assert victim.stats.drops.get(expected.key) == 1, victim.stats.drops
        # only the offender was dropped
        assert seeder.peer_id in victim.peers
        assert victim.peer_id in seeder.peers
        # memory: nothing proportional to what the hostile peer claimed or sent
        assert peak - baseline < 48 * 1024 * 1024, (peak - baseline) / 2**20
