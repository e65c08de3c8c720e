"""p2pml_py.rtc.speedups: each patch installs only where checked, is undone by uninstall(), keeps
data intact, and does what it claims (fewer SACKs; DTLS datagrams skip the STUN parser; a deferred
SACK still goes out when no packet follows)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import aioice.ice
import aiortc
import aiortc.rtcdtlstransport
import aiortc.rtcsctptransport
import pytest

from p2pml_py.rtc import DataChannelLink, speedups

from .helpers import Collector, linked

SCTP = aiortc.rtcsctptransport.RTCSctpTransport


@pytest.fixture
def clean() -> Iterator[None]:
    speedups.uninstall()
    yield
    speedups.uninstall()


async def _packets_sent(link: DataChannelLink) -> int:
    # RTCPeerConnection.getStats() has no transport entry without media; ask DTLS directly.
    report = link.channel.transport.transport._get_stats()
    return int(sum(s.packetsSent for s in report.values()))


async def _transfer(size: int) -> tuple[int, int]:
    """Send ``size`` random bytes a -> b; return (packets a sent, packets b sent)."""
    payload = os.urandom(size)
    async with linked() as (a, b):
        got = Collector()
        b.set_receiver(got)
        for start in range(0, size, 65535):
            await a.send(payload[start : start + 65535])
        await got.wait_for(total=size, within=60)
        assert hashlib.sha256(b"".join(got.messages)).digest() == hashlib.sha256(payload).digest()
        return await _packets_sent(a), await _packets_sent(b)


@pytest.mark.usefixtures("clean")
def test_install_and_uninstall_restore_originals() -> None:
    originals = (
        SCTP.__dict__["_handle_data"],
        SCTP.__dict__["_send_sack"],
        aiortc.rtcdtlstransport.RTCDtlsTransport.__dict__["_write_ssl"],
        aioice.ice.StunProtocol.__dict__["datagram_received"],
    )
    assert speedups.install() == speedups.PATCHES
    assert speedups.install() == speedups.PATCHES  # twice: no double wrapping
    assert SCTP.__dict__["_send_sack"] is not originals[1]
    speedups.uninstall()
    assert speedups.installed() == ()
    assert (
        SCTP.__dict__["_handle_data"],
        SCTP.__dict__["_send_sack"],
        aiortc.rtcdtlstransport.RTCDtlsTransport.__dict__["_write_ssl"],
        aioice.ice.StunProtocol.__dict__["datagram_received"],
    ) == originals


@pytest.mark.usefixtures("clean")
def test_unchecked_versions_get_no_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "9.9.0")
    assert speedups.install() == ()
    with pytest.raises(ValueError):
        speedups.install(("no_such_patch",))


@pytest.mark.usefixtures("clean")
def test_transfer_intact_with_half_the_sacks() -> None:
    # On uvloop, which reads every waiting datagram in one loop turn (the default loop reads one
    # per turn, so the next packet is rarely queued yet and the patch seldom defers).
    uvloop = pytest.importorskip("uvloop")
    size = 4 * 1024 * 1024
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sent_plain, acks_plain = runner.run(_transfer(size))
        speedups.install()
        sent_fast, acks_fast = runner.run(_transfer(size))
    # Unpatched aiortc acknowledges (almost) every DATA packet; patched, at most every second
    # one is skipped, and only when the next is already queued.
    assert acks_plain > 0.8 * sent_plain
    assert acks_fast < 0.75 * sent_fast
    assert acks_fast >= 0.45 * sent_fast


class _FakeSctp:
    """The attributes the SACK patch touches, with a recording _send_sack underneath."""

    State = SCTP.State

    def __init__(self) -> None:
        self._sack_needed = True
        self._association_state = SCTP.State.ESTABLISHED
        self.sent = asyncio.Event()


async def _record_send(self: Any) -> None:
    self._sack_needed = False
    self.sent.set()


@pytest.mark.usefixtures("clean")
async def test_deferred_sack_is_sent_by_timer_when_nothing_follows() -> None:
    send_sack = speedups._make_send_sack(_record_send)
    fake = _FakeSctp()
    fake._send_sack = lambda: send_sack(fake)  # type: ignore[attr-defined]  # what the timer calls
    fake._p2pml_defer_sack = True  # type: ignore[attr-defined]
    await send_sack(fake)
    assert not fake.sent.is_set()  # deferred
    fake._p2pml_defer_sack = False  # type: ignore[attr-defined]
    async with asyncio.timeout(1):
        await fake.sent.wait()  # sent by the SACK_DELAY timer
    assert not fake._sack_needed


@pytest.mark.usefixtures("clean")
async def test_second_packet_in_a_row_is_always_acknowledged() -> None:
    calls: list[bool] = []

    async def original_handle(self: Any, data: bytes) -> None:
        await send_sack(self)
        calls.append(self.sent.is_set())
        self.sent.clear()
        self._sack_needed = True

    send_sack = speedups._make_send_sack(_record_send)
    handle = speedups._make_handle_data(original_handle)
    fake = _FakeSctp()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for _ in range(5):
        queue.put_nowait(b"x")
    fake.transport = type("D", (), {"transport": type("I", (), {"_connection": type("C", (), {"_queue": queue})})})  # type: ignore[attr-defined]
    for _ in range(4):
        queue.get_nowait()
        await handle(fake, b"x")
    # more packets were queued each time: skip, send, skip, send
    assert calls == [False, True, False, True]
    timer = getattr(fake, "_p2pml_sack_timer", None)
    if timer is not None:
        timer.cancel()


class _Receiver:
    def __init__(self) -> None:
        self.data: list[bytes] = []

    def data_received(self, data: bytes, component: int) -> None:
        self.data.append(data)


@pytest.mark.usefixtures("clean")
def test_stun_demux_passes_dtls_on_and_stun_to_aioice() -> None:
    seen_by_original: list[bytes] = []

    def original(self: Any, data: bytes, addr: tuple[Any, ...]) -> None:
        seen_by_original.append(data)

    patched = speedups._make_datagram_received(original)
    protocol = type("P", (), {})()
    protocol.receiver = _Receiver()
    protocol.local_candidate = type("L", (), {"component": 1})()
    dtls_record = bytes([23, 0xFE, 0xFD]) + bytes(20)
    rtp = bytes([0x80]) + bytes(11)
    stun_binding = bytes([0x00, 0x01, 0x00, 0x00]) + bytes.fromhex("2112a442") + bytes(12)
    for datagram in (dtls_record, rtp, stun_binding):
        patched(protocol, datagram, ("127.0.0.1", 1))
    assert protocol.receiver.data == [dtls_record, rtp]
    assert seen_by_original == [stun_binding]


@pytest.mark.usefixtures("clean")
def test_lost_packets_are_still_retransmitted_with_the_scan_skipped() -> None:
    uvloop = pytest.importorskip("uvloop")
    speedups.install(("transmit_scan_skip",))

    async def lossy_transfer() -> int:
        payload = os.urandom(2 * 1024 * 1024)
        async with linked() as (a, b):
            pair = a.channel.transport.transport.transport._connection._nominated[1]
            protocol = pair.protocol
            original = protocol.send_data
            count = 0
            dropped = 0

            async def send_data(data: bytes, addr: tuple[str, int]) -> None:
                nonlocal count, dropped
                count += 1
                if count % 37 == 0 and dropped < 20:  # lose some DATA packets
                    dropped += 1
                    return
                await original(data, addr)

            protocol.send_data = send_data
            got = Collector()
            b.set_receiver(got)
            for start in range(0, len(payload), 65535):
                await a.send(payload[start : start + 65535])
            await got.wait_for(total=len(payload), within=60)
            assert b"".join(got.messages) == payload
            return dropped

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(lossy_transfer()) == 20
