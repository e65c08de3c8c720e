"""p2pml_py.rtc.aiortc_backend.speedups: each patch installs only where checked, is undone by uninstall(), keeps
data intact, and does what it claims (fewer SACKs; DTLS datagrams skip the STUN parser; a deferred
SACK still goes out when no packet follows)."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
from collections.abc import Iterator
from typing import Any

import aioice.ice
import aiortc
import aiortc.rtcdtlstransport
import aiortc.rtcicetransport
import aiortc.rtcsctptransport
import aiortc.utils
import OpenSSL.SSL
import pyee.asyncio
import pyee.base
import pylibsrtp
import pytest

from p2pml_py.base.aio import SlimEvent, SlimQueue
from p2pml_py.rtc.aiortc_backend import DataChannelLink, speedups
from p2pml_py.rtc.aiortc_backend.speedups import (
    aes_gcm_first,
    ice_prompt_complete,
    sack_every_second_packet,
    sctp_packets,
    sctp_receive,
    shared_certificate,
    slim_emitters,
    stun_demux,
    udp_gso,
)

from .helpers import Collector, linked, send_all

SCTP = aiortc.rtcsctptransport.RTCSctpTransport


@pytest.fixture(autouse=True)
def bound() -> None:
    """The patch modules' aiortc names are bound (as install() binds them): some tests call
    their helpers directly."""
    assert speedups.check() is None


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
        await send_all(a, b, payload)
        return await _packets_sent(a), await _packets_sent(b)


@pytest.mark.usefixtures("clean")
def test_install_and_uninstall_restore_originals() -> None:
    originals = (
        SCTP.__dict__["_handle_data"],
        SCTP.__dict__["_send_sack"],
        aiortc.rtcdtlstransport.RTCDtlsTransport.__dict__["_write_ssl"],
        aioice.ice.StunProtocol.__dict__["datagram_received"],
        # wrapped by two patches (shared_certificate, aes_gcm_first): restored newest first
        aiortc.rtcdtlstransport.RTCCertificate.__dict__["_create_ssl_context"],
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
        aiortc.rtcdtlstransport.RTCCertificate.__dict__["_create_ssl_context"],
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
        self._sack_misordered: set[int] = set()
        self._sack_duplicates: list[int] = []
        self.sent = asyncio.Event()


async def _record_send(self: Any) -> None:
    self._sack_needed = False
    self.sent.set()


@pytest.mark.usefixtures("clean")
async def test_deferred_sack_is_sent_by_timer_when_nothing_follows() -> None:
    send_sack = sack_every_second_packet._make_send_sack(_record_send)
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

    send_sack = sack_every_second_packet._make_send_sack(_record_send)
    handle = sack_every_second_packet._make_handle_data(original_handle)
    fake = _FakeSctp()
    for _ in range(4):
        await handle(fake, b"x")
    # skip, send, skip, send
    assert calls == [False, True, False, True]
    # a packet that leaves a gap is acknowledged at once, even right after a sent SACK
    fake._sack_misordered.add(7)
    await handle(fake, b"x")
    assert calls[-1] is True
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

    patched = stun_demux._make_datagram_received(original)
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
            await send_all(a, b, payload)
            return dropped

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(lossy_transfer()) == 20


# -- fast_data_path ---------------------------------------------------------------------------


class _Association:
    """What ``_data_packet`` reads of an association."""

    def __init__(self, tag: int) -> None:
        self._local_port = 5000
        self._remote_port = 5001
        self._remote_verification_tag = tag


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 1187, 1188])
def test_fast_data_packet_is_byte_for_byte_aiortcs(size: int) -> None:
    association = _Association(0xDEADBEEF)
    for flags, user_data in ((3, os.urandom(size)), (0, memoryview(os.urandom(size + 7))[7:])):
        chunk = aiortc.rtcsctptransport.DataChunk()
        chunk.flags = flags
        chunk.tsn = 0xFFFFFFF0 + size % 16
        chunk.stream_id = 1
        chunk.stream_seq = size % 65536
        chunk.protocol = 53
        chunk.user_data = user_data
        expected = aiortc.rtcsctptransport.serialize_packet(5000, 5001, 0xDEADBEEF, chunk)
        assert (
            sctp_packets._data_packet(sctp_packets._common_header(association), chunk) == expected
        )
    association._remote_verification_tag = 7  # the cached header follows a new tag
    expected = aiortc.rtcsctptransport.serialize_packet(5000, 5001, 7, chunk)
    assert sctp_packets._data_packet(sctp_packets._common_header(association), chunk) == expected


def _fragments(messages: list[tuple[int, bool]]) -> list[aiortc.rtcsctptransport.DataChunk]:
    """DATA chunks of messages (fragment count, ordered), with consecutive TSNs."""
    chunks = []
    tsn = 100
    seq = 0
    for number, (count, ordered) in enumerate(messages):
        for i in range(count):
            chunk = aiortc.rtcsctptransport.DataChunk()
            chunk.flags = (0 if ordered else aiortc.rtcsctptransport.SCTP_DATA_UNORDERED) | (
                (aiortc.rtcsctptransport.SCTP_DATA_FIRST_FRAG if i == 0 else 0)
                | (aiortc.rtcsctptransport.SCTP_DATA_LAST_FRAG if i == count - 1 else 0)
            )
            chunk.tsn = tsn
            chunk.stream_seq = seq if ordered else 0
            chunk.user_data = bytes([number, i])
            chunks.append(chunk)
            tsn += 1
        seq += 1 if ordered else 0
    return chunks


def _deliver(order: list[aiortc.rtcsctptransport.DataChunk]) -> list[bytes]:
    stream = aiortc.rtcsctptransport.InboundStream()
    out = []
    for chunk in order:
        stream.add_chunk(chunk)
        out.extend(message for _, _, message in stream.pop_messages())
    return out


def test_reassembly_skip_pops_exactly_what_aiortc_pops() -> None:
    import random

    rng = random.Random(6)
    for _ in range(300):
        messages = [(rng.randint(1, 6), rng.random() < 0.8) for _ in range(rng.randint(1, 6))]
        chunks = _fragments(messages)
        order = list(chunks)
        if rng.random() < 0.7:  # some reordering, as after a loss and its retransmission
            for _ in range(rng.randint(1, 4)):
                i, j = rng.randrange(len(order)), rng.randrange(len(order))
                order[i], order[j] = order[j], order[i]
        speedups.uninstall()
        expected = _deliver(order)
        speedups.install(("fast_data_path",))
        try:
            assert _deliver(order) == expected
        finally:
            speedups.uninstall()
        if order == chunks:
            assert len(expected) == len(messages)  # in order: every message comes out


@pytest.mark.usefixtures("clean")
def test_fast_path_transfer_survives_losses_and_a_silence() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert "fast_data_path" in speedups.install()

    async def lossy_transfer() -> tuple[int, int]:
        payload = os.urandom(3 * 1024 * 1024)
        async with linked() as (a, b):
            # Losses on the receiving side: the sender's fast path bypasses send_data.
            connection = b.channel.transport.transport.transport._connection
            original = connection.data_received
            count = 0
            dropped = 0

            def data_received(data: bytes, component: int) -> None:
                nonlocal count, dropped
                count += 1
                scattered = count % 41 == 0 and dropped < 15
                silence = 1500 <= count < 1530  # a burst: only the T3 timer recovers it
                if scattered or silence:
                    dropped += 1
                    return
                original(data, component)

            connection.data_received = data_received
            await send_all(a, b, payload)
            sctp = a.channel.transport
            assert getattr(sctp, "_p2pml_header", None) is not None  # the fast path was used
            return dropped, await _packets_sent(a)

    before = dict(speedups.SYNC_HANDLED)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        dropped, sent = runner.run(lossy_transfer())
    assert dropped == 45
    # both synchronous paths took part (and the queued ones handled the rest)
    assert speedups.SYNC_HANDLED["sack"] > before["sack"]
    assert speedups.SYNC_HANDLED["data"] > before["data"]
    # messages became chunks and went out inside the SACK handling, with no task in between
    assert speedups.SYNC_HANDLED["flush"] > before["flush"]
    assert sent > 3 * 1024 * 1024 // 1200  # DTLS counters still count the fast path's packets


def _bare_association() -> Any:
    """An RTCSctpTransport with only what ``_send`` touches; ``_transmit`` records, sends nothing."""
    sctp = SCTP.__new__(SCTP)
    sctp._outbound_stream_seq = {}
    sctp._local_tsn = 0xFFFFFFF0  # wraps around during the test
    sctp._outbound_queue = __import__("collections").deque()

    async def _transmit() -> None:
        return None

    sctp._transmit = _transmit
    return sctp


@pytest.mark.parametrize(
    ("size", "ordered", "expiry", "retransmits"),
    [
        (1, True, None, None),
        (1160, True, None, None),
        (1161, False, 5.0, 2),
        (65535, True, None, 0),
    ],
)
def test_fast_send_builds_aiortcs_chunks(
    size: int, ordered: bool, expiry: float | None, retransmits: int | None
) -> None:
    payload = memoryview(os.urandom(size))
    results = []
    for patched in (False, True):
        speedups.uninstall()
        if patched:
            assert "fast_data_path" in speedups.install(("fast_data_path",))
        sctp = _bare_association()
        for _ in range(2):  # the stream sequence number advances between messages
            asyncio.run(SCTP._send(sctp, 3, 53, payload, expiry, retransmits, ordered))
        results.append(
            (
                [
                    dict(vars(chunk), user_data=bytes(chunk.user_data))
                    for chunk in sctp._outbound_queue
                ],
                sctp._local_tsn,
                sctp._outbound_stream_seq,
            )
        )
    speedups.uninstall()
    assert results[0] == results[1]
    assert len(results[0][0]) == 2 * -(-size // 1160)


class _Channel:
    """What aiortc's ``_data_channel_flush`` reads of an RTCDataChannel."""

    def __init__(self, id: int | None) -> None:
        self.id = id
        self.maxPacketLifeTime = None
        self.maxRetransmits = None
        self.ordered = True
        self.buffered = 0

    def _addBufferedAmount(self, amount: int) -> None:
        self.buffered += amount


@pytest.mark.usefixtures("clean")
def test_synchronous_channel_flush_stops_where_aiortcs_code_is_needed() -> None:
    assert "fast_data_path" in speedups.install(("fast_data_path",))
    sctp = _bare_association()
    sctp._association_state = SCTP.State.ESTABLISHED
    sctp._forward_tsn_chunk = None
    sctp._p2pml_retransmit = False
    sctp._RTCSctpTransport__transport = type("Dtls", (), {"_state": None})()  # not connected
    ready, unnamed = _Channel(1), _Channel(None)
    sctp._data_channel_queue = __import__("collections").deque(
        [(ready, 53, b"a" * 3000), (unnamed, 53, b"b")]
    )
    # The first message becomes chunks; the transmit it needs may suspend here (no UDP pair),
    # so the rest is left to aiortc's _data_channel_flush -- nothing is dropped.
    assert not sctp_receive._flush_channels(sctp)
    assert [bytes(c.user_data) for c in sctp._outbound_queue] == [b"a" * 1160] * 2 + [b"a" * 680]
    assert ready.buffered == -3000
    assert list(sctp._data_channel_queue) == [(unnamed, 53, b"b")]
    # A channel with no stream id yet (or a DCEP message) is not taken at all.
    sctp._outbound_queue.clear()
    assert not sctp_receive._flush_channels(sctp)
    assert list(sctp._data_channel_queue) == [(unnamed, 53, b"b")]
    assert not sctp._outbound_queue
    # A stream reset queued meanwhile is left to aiortc's flush, which sends it.
    sctp._data_channel_queue.clear()
    sctp._reconfig_queue = [1]
    assert not sctp_receive._flush_channels(sctp)
    sctp._reconfig_queue = []
    assert sctp_receive._flush_channels(sctp)


@pytest.mark.usefixtures("clean")
def test_fast_receive_paths_leave_other_packets_to_aiortc() -> None:
    sctp = SCTP.__new__(SCTP)
    sctp._association_state = SCTP.State.ESTABLISHED
    sctp._local_verification_tag = 1234
    sctp._last_received_tsn = 99
    sctp._sack_misordered = set()
    sctp._sack_duplicates = []
    sctp._reconfig_deferred = None
    sctp._forward_tsn_streams = {}
    sctp._forward_tsn_chunk = None
    sctp._sent_queue = __import__("collections").deque()

    def packet(tag: int, *chunks: Any) -> bytes:
        out = aiortc.rtcsctptransport.serialize_packet(5000, 5000, tag, chunks[0])
        return out if len(chunks) == 1 else out + b"".join(bytes(c) for c in chunks[1:])

    data = aiortc.rtcsctptransport.DataChunk()
    data.flags, data.tsn, data.user_data = 3, 101, b"x" * 20  # not the next TSN (100)
    gap_sack = aiortc.rtcsctptransport.SackChunk()
    gap_sack.gaps = [(4, 6), (2, 3)]  # descending: no receiver sends that
    corrupt = bytearray(packet(1234, aiortc.rtcsctptransport.SackChunk()))
    corrupt[-1] ^= 1
    data_next = aiortc.rtcsctptransport.DataChunk()
    data_next.flags, data_next.tsn, data_next.user_data = 3, 100, b"y" * 20
    for plain in (
        packet(1234, data),  # out of order
        packet(4321, data_next),  # wrong verification tag
        packet(1234, gap_sack),  # malformed gap report: aiortc's strike/retransmit logic
        bytes(corrupt),  # bad checksum
        packet(1234, data_next, data_next),  # two chunks in one packet
    ):
        assert not asyncio.run(sctp_receive._fast_sack(sctp, plain))
        assert not asyncio.run(sctp_receive._fast_data(sctp, plain))
    assert sctp._last_received_tsn == 99  # nothing was taken


@pytest.mark.parametrize(
    ("last", "cumulative"),
    [(5, 0xFFFFFFFE), (0x80000004, 5), (5, 4), (5, 5), (5, 6), (0xFFFFFFFF, 0), (5, 0x80000005)],
)
def test_sack_core_ignores_exactly_the_sacks_aiortc_calls_old(last: int, cumulative: int) -> None:
    """The serial-number comparison inlined in _sack_core is aiortc's uint32_gt, across the
    wrap-around and at the half-way point."""
    sctp = SCTP.__new__(SCTP)
    sctp._association_state = SCTP.State.ESTABLISHED
    sctp._local_verification_tag = 1234
    sctp._forward_tsn_streams = {}
    sctp._forward_tsn_chunk = None
    sctp._last_sacked_tsn = last
    sctp._flight_size = 0
    sctp._cwnd = 4 * 1200
    sctp._sent_queue = __import__("collections").deque()
    sctp._outbound_queue = __import__("collections").deque()
    sctp._fast_recovery_exit = None
    sctp._t3_handle = None
    sctp._advanced_peer_ack_tsn = last
    sctp._reconfig_queue = []
    sctp._data_channel_queue = __import__("collections").deque()
    sack = aiortc.rtcsctptransport.SackChunk()
    sack.cumulative_tsn = cumulative
    plain = aiortc.rtcsctptransport.serialize_packet(5000, 5000, 1234, sack)
    result = sctp_receive._sack_core(sctp, plain)
    if aiortc.utils.uint32_gt(last, cumulative):  # old: ignored, nothing changed
        assert (result, sctp._last_sacked_tsn) == (sctp_receive._SACK_DONE, last)
    else:
        assert sctp._last_sacked_tsn == cumulative
        assert sctp._advanced_peer_ack_tsn == cumulative


class _Checks:
    """What the check-pacing sleep reads of an aioice Connection."""

    def __init__(self) -> None:
        self._check_list_done = False


@pytest.mark.usefixtures("clean")
async def test_check_pacing_sleep_ends_when_the_check_list_completes() -> None:
    connection = _Checks()
    token = ice_prompt_complete._CHECKING.set(connection)
    try:
        sleeper = asyncio.create_task(ice_prompt_complete._check_pacing_sleep(30.0, "result"))
        await asyncio.sleep(0.05)
        assert not sleeper.done()  # checks still running: it paces as asked
        connection._check_list_done = True
        ice_prompt_complete._wake(connection)
        async with asyncio.timeout(5):  # instead of the 30 s asked for
            assert await sleeper == "result"
        # Once the check list is over (consent freshness), a sleep is a plain asyncio.sleep.
        waiter = asyncio.create_task(ice_prompt_complete._check_pacing_sleep(0.3))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await waiter
    finally:
        ice_prompt_complete._CHECKING.reset(token)


@pytest.mark.usefixtures("clean")
async def test_links_open_and_carry_data_with_prompt_ice_completion() -> None:
    assert "ice_prompt_complete" in speedups.install(("ice_prompt_complete",))
    assert type(aioice.ice.asyncio).__name__ == "_AsyncioForAioice"
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(300_000))
        await send_all(b, a, os.urandom(70_000))
    speedups.uninstall()
    assert aioice.ice.asyncio is asyncio


def _local_certificate(link: DataChannelLink) -> Any:
    return link.channel.transport.transport._RTCDtlsTransport__local_certificate


@pytest.mark.usefixtures("clean")
async def test_one_certificate_and_context_serve_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modes: list[int] = []
    set_mode = OpenSSL.SSL.Context.set_mode

    def recording_set_mode(context: OpenSSL.SSL.Context, mode: int) -> int:
        modes.append(mode)
        return set_mode(context, mode)

    monkeypatch.setattr(OpenSSL.SSL.Context, "set_mode", recording_set_mode)
    monkeypatch.setattr(shared_certificate, "_certificates", {})  # a context made in this test
    assert "shared_certificate" in speedups.install(("shared_certificate",))
    async with linked() as (a, b), linked() as (c, d):
        certificates = {id(_local_certificate(link)) for link in (a, b, c, d)}
        assert len(certificates) == 1
        await send_all(a, b, os.urandom(100_000))
        await send_all(d, c, os.urandom(100_000))
        certificate = _local_certificate(a)
        (context,) = certificate._p2pml_contexts.values()
        assert context.get_session_cache_mode() == OpenSSL.SSL.SESS_CACHE_OFF
        assert OpenSSL.SSL.MODE_RELEASE_BUFFERS in modes  # idle connections hold no buffers
        assert a.channel.transport.transport._ssl.get_context() is context
        fingerprints = certificate.getFingerprints()
        fingerprints[0].value = "changed by a caller"
        assert certificate.getFingerprints()[0].value != "changed by a caller"
    speedups.uninstall()
    async with linked() as (e, f):  # unpatched again: one certificate per connection
        assert _local_certificate(e) is not _local_certificate(f)


@pytest.mark.usefixtures("clean")
def test_shared_certificate_is_renewed_before_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "shared_certificate" in speedups.install(("shared_certificate",))
    make = aiortc.rtcdtlstransport.RTCCertificate.generateCertificate
    first = make()
    assert make() is first
    # aiortc's certificates are valid for 30 days: with a 31-day margin each one is renewed.
    monkeypatch.setattr(shared_certificate, "CERTIFICATE_RENEW_BEFORE", datetime.timedelta(days=31))
    second = make()
    assert second is not first
    assert second.getFingerprints() != first.getFingerprints()


def _gso_transfer(loop_factory: Any, size: int) -> list[int]:
    """Send ``size`` random bytes a -> b (checked by send_all); the sizes of the datagrams b's
    socket delivered."""

    async def transfer() -> list[int]:
        async with linked() as (a, b):
            connection = b.channel.transport.transport.transport._connection
            original = connection.data_received
            sizes: list[int] = []

            def data_received(data: bytes, component: int) -> None:
                sizes.append(len(data))
                original(data, component)

            connection.data_received = data_received
            await send_all(a, b, os.urandom(size))
            return sizes

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(transfer())


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_udp_gso_sends_bursts_in_one_call_and_the_receiver_sees_single_datagrams(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not udp_gso._gso_usable():
        pytest.fail("UDP GSO is expected to be usable on the Linux/glibc machines we test on")
    factory = pytest.importorskip("uvloop").new_event_loop if loop == "uvloop" else None
    assert "udp_gso" in speedups.install()
    made: list[socket.socket] = []

    class Tracking(socket.socket):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(udp_gso, "_GsoSocket", Tracking)
    before = dict(speedups.GSO_SENT)
    sizes = _gso_transfer(factory, 2 * 1024 * 1024)
    # one duplicate descriptor on the sender's socket, closed with the connection
    assert len(made) == 1 and made[0].fileno() == -1
    calls = speedups.GSO_SENT["calls"] - before["calls"]
    datagrams = speedups.GSO_SENT["datagrams"] - before["datagrams"]
    assert calls > 100 and datagrams > 2 * calls  # bursts of several packets per sendmsg
    assert speedups.GSO_SENT["fallbacks"] == before["fallbacks"]
    # The kernel cut every burst into the datagrams one sendto each would have made.
    assert len(sizes) > 2 * 1024 * 1024 // 1200
    assert max(sizes) <= 1500


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize(("error", "disabled"), [("EAGAIN", False), ("EIO", True)])
def test_udp_gso_refused_falls_back_to_sendto_without_losing_data(
    monkeypatch: pytest.MonkeyPatch, error: str, disabled: bool
) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert "udp_gso" in speedups.install()
    calls = 0
    code = int(getattr(__import__("errno"), error))

    class Refusing(socket.socket):
        # Every third sendmsg fails as the kernel would: a full socket buffer (EAGAIN) is
        # retried by the transport; a route without GSO (EIO) is not tried again.
        def sendmsg(self, *args: Any) -> int:
            nonlocal calls
            calls += 1
            if calls % 3 == 0:
                raise OSError(code, os.strerror(code))
            return super().sendmsg(*args)

    monkeypatch.setattr(udp_gso, "_GsoSocket", Refusing)
    before = dict(speedups.GSO_SENT)
    sizes = _gso_transfer(uvloop.new_event_loop, 1024 * 1024)  # send_all checks every byte
    fallbacks = speedups.GSO_SENT["fallbacks"] - before["fallbacks"]
    assert len(sizes) > 1024 * 1024 // 1200
    if disabled:
        assert fallbacks == 1 and speedups.GSO_SENT["disabled"] == before["disabled"] + 1
        assert calls == 3  # never again on that pair
    else:
        assert fallbacks == calls // 3 > 10
        assert speedups.GSO_SENT["disabled"] == before["disabled"]


def _negotiated_cipher(client_ciphers: bytes) -> str:
    """A DTLS handshake in memory: aiortc's context as the server, a client that ranks
    ``client_ciphers`` in its order (as libdatachannel ranks ChaCha20 first); the cipher chosen."""
    certificate = aiortc.rtcdtlstransport.RTCCertificate.generateCertificate()
    profiles = aiortc.rtcdtlstransport.SRTP_PROFILES
    server = OpenSSL.SSL.Connection(certificate._create_ssl_context(profiles), None)
    server.set_accept_state()
    mine = aiortc.rtcdtlstransport.RTCCertificate.generateCertificate()
    context = OpenSSL.SSL.Context(OpenSSL.SSL.DTLS_METHOD)
    context.use_certificate(mine._cert)
    context.use_privatekey(mine._key)
    context.set_cipher_list(client_ciphers)
    client = OpenSSL.SSL.Connection(context, None)
    client.set_connect_state()
    for _ in range(20):  # a DTLS 1.2 handshake takes two round trips
        for one, other in ((client, server), (server, client)):
            try:
                one.do_handshake()
            except OpenSSL.SSL.WantReadError:
                pass
            while True:
                try:
                    other.bio_write(one.bio_read(65536))
                except OpenSSL.SSL.WantReadError:
                    break
        cipher = server.get_cipher_name()
        if cipher and client.get_cipher_name():
            return str(cipher)
    raise AssertionError("no handshake")


CHACHA_FIRST = b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"


@pytest.mark.usefixtures("clean")
def test_aes_gcm_first_lets_the_server_choose_aes_gcm(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _negotiated_cipher(CHACHA_FIRST) == "ECDHE-ECDSA-CHACHA20-POLY1305"  # aiortc as is
    monkeypatch.setattr(aes_gcm_first, "_cpu_has_aes", lambda: True)
    assert speedups.install(("aes_gcm_first", "shared_certificate")) == (
        "shared_certificate",
        "aes_gcm_first",
    )
    assert _negotiated_cipher(CHACHA_FIRST) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    # Only ciphers both offer: a client without AES-GCM still gets ChaCha20.
    assert _negotiated_cipher(CHACHA_FIRST.split(b":")[0]) == "ECDHE-ECDSA-CHACHA20-POLY1305"
    speedups.uninstall()
    monkeypatch.setattr(aes_gcm_first, "_cpu_has_aes", lambda: False)  # no AES instructions
    assert "aes_gcm_first" in speedups.install(("aes_gcm_first",))
    assert _negotiated_cipher(CHACHA_FIRST) == "ECDHE-ECDSA-CHACHA20-POLY1305"


def test_cpu_has_aes_reads_cpuinfo() -> None:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
        flags = next(line for line in info if line.split(":")[0].strip() in ("flags", "Features"))
    assert aes_gcm_first._cpu_has_aes() == ("aes" in flags.split(":", 1)[1].split())


def _sack_association(first_tsn: int, count: int) -> Any:
    """An established association with ``count`` chunks in flight from ``first_tsn``; the
    timers, the RTO update and the transmit that follow a SACK are no-ops (both sides alike)."""
    import collections
    import types

    sctp = SCTP.__new__(SCTP)
    sctp._association_state = SCTP.State.ESTABLISHED
    sctp._local_verification_tag = 1234
    sctp._forward_tsn_streams = {}
    sctp._forward_tsn_chunk = None
    sctp._last_sacked_tsn = (first_tsn - 1) & 0xFFFFFFFF
    sctp._advanced_peer_ack_tsn = sctp._last_sacked_tsn
    sctp._flight_size = count * 1200
    sctp._cwnd = 50 * 1200  # fully used: slow start, then congestion avoidance
    sctp._ssthresh = 60 * 1200
    sctp._partial_bytes_acked = 0
    sctp._fast_recovery_exit = None
    sctp._fast_recovery_transmit = False
    sctp._outbound_queue = collections.deque()
    sctp._reconfig_queue = []
    sctp._data_channel_queue = collections.deque()
    sctp._t3_handle = None
    sctp._srtt = None
    sctp._p2pml_retransmit = False
    sctp._RTCSctpTransport__transport = types.SimpleNamespace(_state=None)  # no fast transmit

    async def nothing() -> None:
        return None

    sctp._data_channel_flush = sctp._transmit = nothing
    sctp._t3_cancel = sctp._t3_restart = lambda: None
    sctp._update_rto = lambda sample: None
    sctp._sent_queue = collections.deque()
    for index in range(count):
        chunk = aiortc.rtcsctptransport.DataChunk(flags=3 if index % 5 == 4 else 0)
        chunk.tsn = (first_tsn + index) & 0xFFFFFFFF
        chunk.user_data = b"x" * 1200
        chunk._book_size = 1200
        chunk._in_flight = True
        chunk._sent_count = 1
        chunk._sent_time = 0.0
        chunk._abandoned = chunk._acked = chunk._retransmit = False
        chunk._expiry = chunk._max_retransmits = None
        chunk._misses = 0
        sctp._sent_queue.append(chunk)
    return sctp


def _sack_state(sctp: Any) -> tuple[Any, ...]:
    chunks = tuple(
        (c.tsn, c._acked, c._misses, c._retransmit, c._in_flight, c._abandoned, c._sent_count)
        for c in sctp._sent_queue
    )
    return (
        chunks,
        sctp._flight_size,
        sctp._cwnd,
        sctp._ssthresh,
        sctp._partial_bytes_acked,
        sctp._fast_recovery_exit,
        sctp._fast_recovery_transmit,
        sctp._last_sacked_tsn,
        sctp._advanced_peer_ack_tsn,
    )


def _sack(cumulative: int, gaps: list[tuple[int, int]], duplicates: list[int]) -> Any:
    sack = aiortc.rtcsctptransport.SackChunk()
    sack.cumulative_tsn = cumulative
    sack.gaps = gaps
    sack.duplicates = duplicates
    sack.advertised_rwnd = 1 << 20
    return sack


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("seed", range(6))
def test_gap_sacks_change_exactly_what_aiortcs_receive_sack_chunk_changes(seed: int) -> None:
    """A receiver losing packets at random SACKs every 1-3 arrivals; each SACK goes to
    aiortc's own ``_receive_sack_chunk`` on one association and to ``_sack_core`` on a copy
    of it, and both must end in the same state: every chunk's acked/misses/retransmit/in-flight
    flags, flight size, cwnd, ssthresh, fast recovery. Lost chunks marked for retransmission
    are "retransmitted" on both (and may be lost again). Malformed block lists are refused."""
    import random

    rng = random.Random(seed)
    first = 0xFFFFFF00 + rng.randrange(0, 200)  # the TSNs wrap around
    count = 400
    reference = _sack_association(first, count)
    fast = _sack_association(first, count)
    received: set[int] = set()
    handled = losses = 0
    arrivals = [(first + i) & 0xFFFFFFFF for i in range(count)]
    step = 0
    while arrivals and step < 5000:
        step += 1
        batch = rng.choice((1, 2, 2, 3))  # packets between two SACKs
        for tsn in arrivals[:batch]:
            if rng.random() > 0.12:
                received.add(tsn)
        del arrivals[:batch]
        cumulative = (first - 1) & 0xFFFFFFFF
        while (cumulative + 1) & 0xFFFFFFFF in received:
            cumulative = (cumulative + 1) & 0xFFFFFFFF
        offsets = sorted(((t - cumulative) & 0xFFFFFFFF) for t in received)
        gaps: list[tuple[int, int]] = []
        for offset in (o for o in offsets if 0 < o < 0x10000):
            if gaps and gaps[-1][1] + 1 == offset:
                gaps[-1] = (gaps[-1][0], offset)
            else:
                gaps.append((offset, offset))
        duplicates = [cumulative] if rng.random() < 0.1 else []
        sack = _sack(cumulative, gaps, duplicates)
        asyncio.run(reference._receive_sack_chunk(sack))
        plain = aiortc.rtcsctptransport.serialize_packet(5000, 5000, 1234, sack)
        result = sctp_receive._sack_core(fast, plain)
        assert result != sctp_receive._SACK_NOT_MINE
        handled += bool(gaps)
        assert _sack_state(fast) == _sack_state(reference), f"step {step}"
        # aiortc's _transmit would resend the marked chunks now: the same on both sides.
        for sctp in (reference, fast):
            for chunk in sctp._sent_queue:
                if chunk._retransmit:
                    chunk._retransmit = False
                    chunk._sent_count += 1
                    if not chunk._in_flight:
                        chunk._in_flight = True
                        sctp._flight_size += chunk._book_size
        for chunk in reference._sent_queue:
            if chunk._sent_count > 1 and chunk.tsn not in received and chunk.tsn not in arrivals:
                # the retransmission is on its way, a few packets behind new ones
                arrivals.insert(rng.randrange(0, min(len(arrivals), 8) + 1), chunk.tsn)
                losses += 1
    assert handled > 20 and losses > 5  # the gap path was exercised, with fast retransmits
    # Blocks a correct receiver never sends are left to aiortc, and change nothing.
    cumulative = fast._last_sacked_tsn
    before = _sack_state(fast)
    for gaps in ([(5, 3)], [(4, 6), (2, 3)], [(2, 6), (5, 9)], [(0, 2)]):
        plain = aiortc.rtcsctptransport.serialize_packet(
            5000, 5000, 1234, _sack(cumulative, gaps, [])
        )
        assert sctp_receive._sack_core(fast, plain) == sctp_receive._SACK_NOT_MINE
        assert _sack_state(fast) == before


def _srtp_sessions(link: DataChannelLink) -> list[Any]:
    dtls = link.channel.transport.transport
    return [dtls._rx_srtp, dtls._tx_srtp]


@pytest.mark.usefixtures("clean")
async def test_lazy_srtp_makes_no_session_for_a_data_channel() -> None:
    assert "lazy_srtp" in speedups.install(("lazy_srtp",))
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(100_000))
        await send_all(b, a, os.urandom(10_000))
        sessions = _srtp_sessions(a) + _srtp_sessions(b)
        assert [type(s).__name__ for s in sessions] == ["LazySession"] * 4
        assert not any(s.made for s in sessions)
    speedups.uninstall()
    assert aiortc.rtcdtlstransport.Session is pylibsrtp.Session
    async with linked() as (c, _d):
        assert all(isinstance(s, pylibsrtp.Session) for s in _srtp_sessions(c))


@pytest.mark.usefixtures("clean")
def test_lazy_srtp_protects_exactly_as_a_session_made_at_once() -> None:
    speedups.install(("lazy_srtp",))
    lazy_session = aiortc.rtcdtlstransport.Session
    key = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16-byte key + 14-byte salt

    def policy(ssrc_type: int) -> pylibsrtp.Policy:
        return pylibsrtp.Policy(key=key, ssrc_type=ssrc_type)

    rtp = bytes.fromhex("80080001000000640000abcd") + b"payload" * 20
    rtcp = bytes.fromhex("80c8000600000abc") + bytes(20)
    plain_tx = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    lazy_tx = lazy_session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    assert not lazy_tx.made
    protected = lazy_tx.protect(rtp)
    assert lazy_tx.made
    assert protected == plain_tx.protect(rtp)
    assert lazy_tx.protect_rtcp(rtcp) == plain_tx.protect_rtcp(rtcp)
    lazy_rx = lazy_session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    assert lazy_rx.unprotect(protected) == rtp
    lazy_rx.remove_stream(0xABCD)  # anything else reaches the real session
    speedups.uninstall()


def _ice_waits(link: DataChannelLink) -> list[Any]:
    ice = link.channel.transport.transport.transport  # RTCIceTransport
    connection = ice._connection  # aioice.ice.Connection
    return [ice._RTCIceTransport__start, connection._check_list_state, connection._queue]


@pytest.mark.usefixtures("clean")
async def test_slim_waits_makes_the_ice_events_and_queues_slim() -> None:
    assert "slim_waits" in speedups.install(("slim_waits",))
    assert aiortc.rtcicetransport.asyncio.Event is SlimEvent
    assert aioice.ice.asyncio is not asyncio and aioice.ice.asyncio.Queue is SlimQueue
    assert aioice.ice.asyncio.gather is asyncio.gather  # every other name is asyncio's
    async with linked() as (a, b):
        await send_all(a, b, os.urandom(100_000))
        for link in (a, b):
            start, check_list_state, queue = _ice_waits(link)
            assert type(start) is SlimEvent and start.is_set()
            assert type(check_list_state) is SlimQueue and type(queue) is SlimQueue
    speedups.uninstall()
    assert aioice.ice.asyncio is asyncio and aiortc.rtcicetransport.asyncio is asyncio
    async with linked() as (c, _d):
        assert [type(w) for w in _ice_waits(c)] == [asyncio.Event, asyncio.Queue, asyncio.Queue]


@pytest.mark.usefixtures("clean")
async def test_sync_channel_send_flushes_in_send_and_keeps_the_order() -> None:
    original = vars(SCTP)["_data_channel_send"]
    assert "sync_channel_send" in speedups.install(("sync_channel_send",))
    async with linked() as (a, b):
        got = Collector()
        b.set_receiver(got)
        sctp = a.channel.transport
        flushed = sctp_receive.SYNC_HANDLED["flush"]
        a.channel.send(b"first")  # idle association: the message leaves inside send()
        assert not sctp._data_channel_queue and a.channel.bufferedAmount == 0
        assert sctp_receive.SYNC_HANDLED["flush"] == flushed + 1
        messages = [b"first"] + [index.to_bytes(4, "big") * 50 for index in range(300)]
        for message in messages[1:]:
            await a.send(message)
        # then more than the congestion window holds: the rest waits for SACKs, in order
        big = [os.urandom(60_000) for _ in range(20)]
        for message in big:
            await a.send(message)
        await got.wait_for(messages=len(messages) + len(big), within=30)
        assert got.messages == messages + big
        assert a.channel.bufferedAmount == 0
    speedups.uninstall()
    assert vars(SCTP)["_data_channel_send"] is original


@pytest.mark.usefixtures("clean")
async def test_sync_channel_send_on_a_closed_transport_raises_nothing() -> None:
    speedups.install(("sync_channel_send",))
    async with linked() as (a, _b):
        dtls = a.channel.transport.transport
        await dtls.stop()  # the DTLS transport closes under a channel that still looks open
        a.channel.send(b"after the transport closed")  # must not raise from the sync flush
        for _ in range(3):
            await asyncio.sleep(0)
    speedups.uninstall()


@pytest.mark.usefixtures("clean")
def test_slim_waits_keeps_what_ice_prompt_complete_gives_aioice() -> None:
    assert speedups.install(("ice_prompt_complete", "slim_waits")) == (
        "ice_prompt_complete",
        "slim_waits",
    )
    view = aioice.ice.asyncio
    assert view.Queue is SlimQueue and view.Event is SlimEvent
    assert view.sleep is ice_prompt_complete._check_pacing_sleep  # the wrapped view's own
    assert view.gather is asyncio.gather
    speedups.uninstall()
    assert aioice.ice.asyncio is asyncio


@pytest.mark.usefixtures("clean")
async def test_slim_emitters_keep_handlers_in_dicts_and_emit_as_pyee_does() -> None:
    emitter_class = pyee.base.EventEmitter
    originals = (vars(emitter_class)["_add_event_handler"], vars(emitter_class)["_call_handlers"])
    assert "slim_emitters" in speedups.install(("slim_emitters",))
    emitter = pyee.asyncio.AsyncIOEventEmitter()
    calls: list[tuple[str, int]] = []
    emitter.on("x", lambda n: calls.append(("first", n)))
    emitter.once("x", lambda n: calls.append(("once", n)))
    emitter.on("x", lambda n: calls.append(("last", n)))
    assert type(emitter._events["x"]) is dict
    assert emitter.emit("x", 1) and emitter.emit("x", 2)
    assert calls == [("first", 1), ("once", 1), ("last", 1), ("first", 2), ("last", 2)]
    assert not emitter.emit("nobody-listens", 3)  # False, as pyee returns it
    with pytest.raises(ValueError, match="unhandled"):
        emitter.emit("error", ValueError("unhandled"))  # an unhandled error still raises
    handler = emitter.listeners("x")[0]
    emitter.remove_listener("x", handler)
    emitter.remove_all_listeners("x")
    assert not emitter.emit("x", 4) and len(calls) == 5
    # _waiting: shared and empty until a handler returns a future, then the emitter's own
    assert emitter._waiting is slim_emitters.NOTHING_WAITING and emitter.complete
    emitter.cancel()  # pyee's own cancel and wait_for_complete on the shared empty one
    await emitter.wait_for_complete()
    errors: list[BaseException] = []
    emitter.on("error", errors.append)
    release = asyncio.Event()

    async def handler_coroutine(n: int) -> None:
        await release.wait()
        if n < 0:
            raise ValueError("negative")

    emitter.on("y", handler_coroutine)
    emitter.emit("y", 1)
    emitter.emit("y", -1)
    assert type(emitter._waiting) is set and len(emitter._waiting) == 2
    assert not emitter.complete and slim_emitters.NOTHING_WAITING == frozenset()
    release.set()
    await emitter.wait_for_complete()
    await asyncio.sleep(0)
    assert emitter.complete and [str(e) for e in errors] == ["negative"]
    async with linked() as (a, b):  # every aiortc object's handlers: dicts, and data flows
        await send_all(a, b, os.urandom(100_000))
        for emitter in (a.channel, a.channel.transport, a.channel.transport.transport):
            assert emitter._events and all(type(h) is dict for h in emitter._events.values())
    speedups.uninstall()
    assert (vars(emitter_class)["_add_event_handler"], vars(emitter_class)["_call_handlers"]) == (
        originals
    )
