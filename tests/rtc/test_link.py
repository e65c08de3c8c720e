"""DataChannelLink over real aiortc on 127.0.0.1: ordering, bulk transfer, backpressure, closing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from p2pml_py.base.errors import LinkClosedError, LocalProtocolError, MessageTooLargeError
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import DataChannelLink
from p2pml_py.rtc.aiortc_backend.link import DEFAULT_MAX_QUEUED_MESSAGES

from .helpers import LOOPBACK, Collector, linked


async def test_both_directions_in_order_with_max_browser_chunks() -> None:
    sizes = [1, 0, 65535, 2, 65535, 65535, 1000, 65536, 3]
    forward = [os.urandom(n) for n in sizes]
    backward = [os.urandom(n) for n in reversed(sizes)]
    async with linked() as (a, b):
        at_a, at_b = Collector(), Collector()
        a.set_receiver(at_a)
        b.set_receiver(at_b)

        async def send_all(link: DataChannelLink, messages: list[bytes]) -> None:
            for message in messages:
                await link.send(memoryview(message))

        await asyncio.gather(send_all(a, forward), send_all(b, backward))
        await asyncio.gather(
            at_b.wait_for(messages=len(forward)), at_a.wait_for(messages=len(backward))
        )
        assert at_b.messages == forward
        assert at_a.messages == backward
        assert a.messages_sent == b.messages_received == len(forward)
        assert a.bytes_sent == b.bytes_received == sum(sizes)
        assert b.messages_sent == a.messages_received == len(backward)


async def test_16_mib_transfer_sha256() -> None:
    payload = os.urandom(16 * 1024 * 1024)
    chunk = 64 * 1024
    async with linked() as (a, b):
        digest = hashlib.sha256()
        collector_done = asyncio.Event()
        received = 0

        def receive(data: bytes) -> None:
            nonlocal received
            digest.update(data)
            received += len(data)
            if received >= len(payload):
                collector_done.set()

        b.set_receiver(receive)
        started = time.perf_counter()
        for offset in range(0, len(payload), chunk):
            await a.send(memoryview(payload)[offset : offset + chunk])
        await asyncio.wait_for(collector_done.wait(), 60)
        elapsed = time.perf_counter() - started
        print(
            f"\n16 MiB in 64 KiB messages: {elapsed:.2f} s, {len(payload) / elapsed / 1e6:.1f} MB/s"
        )
        assert received == len(payload)
        assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
        assert b.messages_received == len(payload) // chunk


async def test_backpressure_keeps_buffered_amount_bounded() -> None:
    high = 256 * 1024
    chunk = 64 * 1024
    config = RtcConfig(ice_addresses=("127.0.0.1",), high_watermark=high)
    async with linked(config) as (a, b):
        sizes: list[int] = []
        collector = Collector()

        def slow_receiver(data: bytes) -> None:  # records sizes, like a session that parses
            sizes.append(len(data))
            collector(data)

        b.set_receiver(slow_receiver)
        max_buffered = 0
        total = 8 * 1024 * 1024
        for _ in range(total // chunk):
            await a.send(os.urandom(chunk))
            max_buffered = max(max_buffered, a.buffered_amount)
        await collector.wait_for(total=total, within=30)
        print(f"\nmax bufferedAmount {max_buffered} with high watermark {high}")
        # never more than one message above the watermark ...
        assert max_buffered <= high + chunk
        # ... and the queue really did fill, so send() had to wait for bufferedamountlow
        assert max_buffered > high
        assert sizes == [chunk] * (total // chunk)


async def test_backpressure_counts_messages_too() -> None:
    """Tiny messages to a peer that reads nothing: the byte watermark alone would let ~60,000 of
    them queue (each a tuple and a task in aiortc); send() stops at max_queued_messages, and
    goes on, in order, once the peer reads again."""
    async with linked() as (a, b):
        collector = Collector()
        b.set_receiver(collector)
        protocols = b.channel.transport.transport.transport.iceGatherer._connection._protocols
        for protocol in protocols:  # b stops reading: nothing it receives is acknowledged
            protocol.transport.pause_reading()
        sent = 0

        async def send_forever() -> None:
            nonlocal sent
            while True:
                await a.send(sent.to_bytes(4, "big") + bytes(13))
                sent += 1

        sender = asyncio.ensure_future(send_forever())
        # the sender blocks: nothing is read, so the count stops growing within a few sends
        async with asyncio.timeout(10):
            while True:
                before = sent
                await asyncio.sleep(0.2)  # time for the sender to run, had it not blocked
                if sent == before:
                    break
        assert a.queued_messages <= DEFAULT_MAX_QUEUED_MESSAGES
        assert a.buffered_amount < 17 * (DEFAULT_MAX_QUEUED_MESSAGES + 1)
        assert sent < 2 * DEFAULT_MAX_QUEUED_MESSAGES + 100  # plus what SCTP took in flight
        for protocol in protocols:
            protocol.transport.resume_reading()
        target = sent + 3 * DEFAULT_MAX_QUEUED_MESSAGES
        await collector.wait_for(messages=target, within=30)
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        numbers = [int.from_bytes(m[:4], "big") for m in collector.messages[:target]]
        assert numbers == list(range(target))


async def test_blocked_sender_gets_link_closed_error() -> None:
    config = RtcConfig(ice_addresses=("127.0.0.1",), high_watermark=64 * 1024)
    async with linked(config) as (a, b):
        b.set_receiver(lambda data: None)
        for _ in range(8):  # no await in between: the queue is far above the watermark
            a.channel.send(bytes(64 * 1024))
        assert a.buffered_amount > a.high_watermark
        blocked = asyncio.ensure_future(a.send(b"x"))
        await asyncio.sleep(0)  # let it start and block (not waiting for a condition)
        assert not blocked.done()
        await a.aclose()
        with pytest.raises(LinkClosedError):
            await asyncio.wait_for(blocked, 2)


@pytest.mark.parametrize("how", ["link-aclose", "channel-close", "dtls-close", "pc-close"])
async def test_remote_close_detected_promptly(how: str) -> None:
    async with linked() as (a, b):
        b.set_receiver(lambda data: None)
        started = time.perf_counter()
        if how == "link-aclose":
            await a.aclose()
        elif how == "channel-close":
            a.channel.close()
        elif how == "dtls-close":
            await a.channel.transport.transport.stop()  # DTLS close_notify, SCTP left as is
        else:
            await a.channel.transport.stop()  # SCTP ABORT, as RTCPeerConnection.close() does
        await asyncio.wait_for(b.wait_closed(), 3.0)
        print(f"\nremote close ({how}) seen after {(time.perf_counter() - started) * 1000:.0f} ms")
        assert b.closed and b.close_reason is not None
        with pytest.raises(LinkClosedError):
            await b.send(b"late")
        await asyncio.wait_for(a.wait_closed(), 3.0)  # the closing side notices too
        await b.aclose()
        await b.aclose()  # idempotent
        assert b.channel.readyState == "closed"


async def test_messages_before_set_receiver_are_kept_and_flushed_in_order() -> None:
    async with linked() as (a, b):
        arrived = asyncio.Event()
        count = 0

        def observe(message: object) -> None:  # a second listener, after the link's own
            nonlocal count
            count += 1
            if count == 3:
                arrived.set()

        b.channel.on("message", observe)
        for n in range(3):
            await a.send(bytes([n]) * 10)
        await asyncio.wait_for(arrived.wait(), 5)
        collector = Collector()
        b.set_receiver(collector)
        # the three early messages are delivered inside set_receiver
        assert collector.messages == [bytes([n]) * 10 for n in range(3)]
        await a.send(b"later")
        await collector.wait_for(messages=4)
        assert collector.messages[-1] == b"later"


async def test_early_buffer_overflow_closes_link() -> None:
    config = RtcConfig(ice_addresses=("127.0.0.1",), early_buffer_bytes=1000)
    async with linked(config) as (a, b):
        await a.send(bytes(600))
        await a.send(bytes(600))
        await asyncio.wait_for(b.wait_closed(), 5)
        assert isinstance(b.close_reason, LinkClosedError)
        await asyncio.wait_for(a.wait_closed(), 5)


async def test_receiver_exception_closes_link() -> None:
    problem = ValueError("cannot parse")

    def receiver(data: bytes) -> None:
        raise problem

    async with linked() as (a, b):
        b.set_receiver(receiver)
        await a.send(b"bad")
        await asyncio.wait_for(b.wait_closed(), 5)
        assert b.close_reason is problem
        await asyncio.wait_for(a.wait_closed(), 5)


async def test_message_size_limits() -> None:
    # b advertises a=max-message-size:65536, and aiortc on a's side honours it
    async with linked(RtcConfig(ice_addresses=("127.0.0.1",), max_message_size=65536)) as (a, b):
        collector = Collector()
        b.set_receiver(collector)
        with pytest.raises(LocalProtocolError):
            await a.send(bytes(65537))
        await a.send(bytes(65536))
        await collector.wait_for(messages=1)
        assert not a.closed


async def test_oversized_incoming_message_closes_link() -> None:
    big = RtcConfig(ice_addresses=("127.0.0.1",), max_message_size=1 << 20)
    async with linked(big) as (a, b):
        # pretend b accepts less than it advertised: a message above its limit ends the link
        b._max_message_size = 65536
        b.set_receiver(lambda data: None)
        await a.send(bytes(70000))
        await asyncio.wait_for(b.wait_closed(), 5)
        assert isinstance(b.close_reason, MessageTooLargeError)


async def test_send_after_local_close_raises() -> None:
    async with linked(LOOPBACK) as (a, _b):
        await a.aclose()
        assert a.closed
        with pytest.raises(LinkClosedError):
            await a.send(b"x")
