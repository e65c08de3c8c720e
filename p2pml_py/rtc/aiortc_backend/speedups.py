"""Small, guarded patches of aiortc/aioice internals that cut the seeder's CPU cost per byte.

aiortc moves data-channel bytes in SCTP packets of at most 1189 bytes (``SCTP_MAX_PACKET_LENGTH``,
``aiortc/rtcsctptransport.py``), each through DTLS (pyOpenSSL) and one UDP ``sendto``, and every
packet the remote receives is acknowledged by a SACK that the sender must decrypt and process. So
the cost is per packet, and these patches remove per-packet work that does nothing useful. None of
them changes what a browser sees on the wire beyond what RFC 9260 and DTLS's cipher negotiation
allow; none can drop data.

``dtls_write_skip``
    ``RTCDtlsTransport._recv_next`` calls ``_write_ssl()`` after *every* received datagram to
    flush whatever OpenSSL wants to send back (handshake retransmissions, alerts). After the
    handshake that is almost always nothing, and finding out costs a ``bio_read`` that raises and
    catches ``SSL.WantReadError``. The patch asks the memory BIO for its pending length first
    (``BIO_get_mem_data``) and returns at once when it is 0.
``stun_demux``
    ``aioice.ice.StunProtocol.datagram_received`` tries to parse every datagram as STUN and falls
    back to "data" on ``ValueError``. RFC 7983 demultiplexes on the first byte: 20-63 is DTLS,
    128-191 RTP/RTCP, 0-3 STUN. The patch hands DTLS/RTP datagrams on without the failed parse.
``sack_every_second_packet``
    aiortc acknowledges each received DATA packet with its own SACK (``_handle_data`` ends in
    ``_send_sack``). RFC 9260 section 6.2 asks for a SACK for at least every second packet, sent
    within 200 ms, and browsers' dcSCTP does so. The patch acknowledges every second packet, and
    at once any packet after which a gap or a duplicate is reported (fast retransmission needs
    those); the SACK of an odd packet waits at most ``SACK_DELAY`` (20 ms) for the next one. This
    halves the SACKs an aiortc *receiver* sends -- which is what a seeder serving aiortc viewers
    spends a large share of its time decrypting and processing.
``transmit_scan_skip``
    ``RTCSctpTransport._transmit`` runs on every SACK and first walks the whole sent queue
    looking for chunks marked for retransmission -- with a full 1 MiB receive window that is
    ~900 chunks per SACK, 8-10 % of a seeder's CPU. Chunks are marked only in two places: a SACK
    with gap blocks (``_receive_sack_chunk``) and the T3 timer (``_t3_expired``). The patch
    keeps a per-association flag raised by those two, and while it is down, runs the original
    ``_transmit`` against an empty stand-in sent queue (so the walk is empty) and moves the
    chunks it sent onto the real queue afterwards. That is only sound if ``_transmit`` does not
    suspend, so the fast path is taken only when the selected ICE pair is a plain UDP socket
    (``aioice.ice.StunProtocol``: ``send_data`` is a bare ``sendto``), never through TURN. The
    flag goes down again once a full walk finds nothing marked.
``fast_data_path``
    The per-packet path of a data-channel byte goes through four layers of generic code:
    ``_transmit`` -> ``_send_chunk`` -> ``serialize_packet`` (three concatenations and a CRC over
    a fourth copy) -> ``RTCDtlsTransport._send_data`` -> pyOpenSSL ``send`` (which runs its whole
    error check even on success) -> ``_write_ssl`` -> ``bio_read`` -> ``RTCIceTransport._send``
    -> ``Connection.sendto`` -> ``StunProtocol.send_data`` -> the UDP transport. On a selected
    pair that is a plain UDP socket (never TURN), after the DTLS handshake, the patch does the
    same work in one synchronous function: the SCTP DATA packet is built with one ``pack`` and
    one join, its CRC32c computed in C, the record written with
    ``SSL_write`` and read back with ``BIO_read`` into one reused buffer, and handed to the UDP
    transport's ``sendto``. Receiving mirrors it (``BIO_write`` / ``SSL_read`` in
    ``_recv_next``). Every failure falls back to, or raises exactly like, the original code;
    the bytes on the wire are the same as aiortc's. The T3 retransmission timer, restarted by
    every SACK (a ``call_later`` and a ``cancel`` each time), is instead re-armed lazily: the
    timer keeps its handle and, when it fires early, sleeps again until the current deadline.
    On the receiving side, ``InboundStream.pop_messages`` walks the whole reassembly list from
    its start after every DATA chunk, so a 64 KiB message (56 fragments) costs ~1,600 steps;
    the patch skips the walk when the chunk just added was appended after every buffered one
    and is not a message's last fragment -- then no message can have become complete (one
    needs its last fragment, and none is buffered after this chunk), and ``pop_messages`` left
    nothing complete behind the last time it ran.
    Finally, aioice hands every datagram to the DTLS transport through an ``asyncio.Queue``,
    so each one costs a task wake-up and a chain of coroutine resumptions. When that reader
    task is idle (waiting, nothing queued), ``Connection.data_received`` now decrypts a DTLS
    datagram at once and handles a SACK (refilling the congestion window) or an in-order DATA
    packet that completes no message; everything else is queued, already
    decrypted, in arrival order, for the task (which still runs aiortc's code for it).
    Whatever cannot be finished without suspending is queued as a follow-up, in order. A SACK
    that empties the outbound queue also turns the channels' next queued messages into chunks
    at once (aiortc's ``_data_channel_flush``, which does not suspend on a plain UDP pair):
    queued as a follow-up instead, it left the reader task busy, and every datagram of that
    association arriving meanwhile -- ~20 per follow-up at 30 receivers -- went the slow way.
    SACKs with gap blocks (a receiver missed a packet) are handled the same way when the
    blocks are well formed: aiortc builds a set of every TSN they cover and walks the sent
    queue from its start twice per SACK, so after a loss every SACK costs the whole window until
    the retransmission arrives; the sent queue holds consecutive TSNs, so the patch indexes it
    and visits only the blocks and the holes between them (``_gap_blocks``), with the same
    misses, marks, flight size and fast recovery as aiortc.

``ice_prompt_complete``
    aioice's ``Connection.connect`` paces its connectivity checks with ``asyncio.sleep(0.02)``
    (the Ta timer) and only looks at the check list's state between those sleeps, so a
    connection whose checks complete goes on waiting for up to 20 ms before DTLS starts -- on
    loopback that was 20 of the ~34 ms from answer to open, on both sides. The patch gives
    ``aioice.ice`` an ``asyncio`` whose ``sleep`` ends early once the check list of the
    connection it runs for is completed or failed (``_check_list_maybe_complete`` /
    ``_check_list_maybe_fail`` wake it); any other sleep, such as the consent freshness
    timer's, is ``asyncio.sleep`` itself. Checks are still paced 20 ms apart.

``shared_certificate``
    aiortc makes a new ECDSA key and self-signed certificate for every RTCPeerConnection, then
    for every DTLS transport a new OpenSSL context (``SSL_CTX_new``, the certificate and key
    converted into it), and formats the certificate's three fingerprints byte by byte whenever
    it writes an SDP. Together about a quarter of the CPU of setting up a connection, which is
    what makes offer-to-open slow when many viewers connect at once. WebRTC lets one
    certificate serve many connections (``RTCConfiguration.certificates``), so the patch keeps
    one per process, made by aiortc's own code and renewed a day before it expires (aiortc's
    are valid for 30 days), and caches its fingerprints and its OpenSSL context (with the
    server-side session cache off, so no DTLS session is ever resumed across connections, and
    ``SSL_MODE_RELEASE_BUFFERS`` on, so an idle connection holds no record buffers).
    Every connection still has its own DTLS handshake and keys.

``udp_gso``
    On a loopback or LAN path most of a seeder's kernel time is the UDP send path, once per
    ~1.2 KB datagram, and each SACK lets ``fast_data_path`` send a burst of 2-5 packets. Their
    DTLS records are read back to back into one buffer, and the patch hands a run of records of
    one size (and a shorter one after them) to one ``sendmsg`` with ``UDP_SEGMENT`` (Linux 4.18+
    generic segmentation offload): the kernel, or the network card, cuts it into exactly the
    datagrams one ``sendto`` each would have made, so receivers see no difference. The call goes
    through a socket object on a duplicate of the UDP transport's descriptor (closed when the
    transport's connection is lost), and only while the transport is open with nothing queued
    in it. A failed call sends nothing, and the transport then sends the same records its own
    way (it queues what the socket cannot take now); a route that refuses GSO is not tried
    again. Measured here: 8.4-9.4 -> 3.3-4.8 us per datagram for bursts of 4 (kernel and
    call), and in the benchmark (30 receivers) 0.039 -> 0.036 s/MB.

``aes_gcm_first``
    aiortc offers ``ECDHE-ECDSA-AES128-GCM-SHA256`` first and ChaCha20-Poly1305 second, but
    OpenSSL lets the DTLS *client* choose, and libdatachannel peers (node-datachannel, native
    apps) rank ciphers by key length, so they pick ChaCha20-Poly1305 -- ~3 % of the seeder's
    cycles in the benchmark with node-datachannel receivers. On a CPU with AES instructions
    (``aes`` in ``/proc/cpuinfo``) AES-GCM costs less per byte, so the patch sets
    ``SSL_OP_CIPHER_SERVER_PREFERENCE`` on aiortc's DTLS contexts: where this peer is the DTLS
    server, aiortc's own order decides. Both ciphers are offered by both sides either way;
    Chromium (BoringSSL) already asks for AES-GCM first on such CPUs. Without AES instructions
    the context is left as it is.
Each patch is installed only on the versions whose source was read for it (:data:`CHECKED`), and
only if the attributes it relies on exist; :func:`install` reports which ones it installed and
:func:`uninstall` restores the originals.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import errno
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from struct import Struct, pack
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.rtcdtlstransport
import aiortc.rtcsctptransport
import google_crc32c
import OpenSSL.SSL

__all__ = ["CHECKED", "PATCHES", "install", "installed", "uninstall"]

logger = logging.getLogger(__name__)

#: Package major.minor versions whose source each patch was written against.
CHECKED = {"aiortc": ("1.16",), "aioice": ("0.13",)}

#: Seconds after which a deferred SACK is sent even if no further packet arrived.
SACK_DELAY = 0.02

_lock = threading.Lock()
_originals: dict[str, tuple[Any, str, Any]] = {}  # name -> (owner, attribute, original)


def _version_ok(module: Any, name: str) -> bool:
    version = str(getattr(module, "__version__", ""))
    return ".".join(version.split(".")[:2]) in CHECKED[name]


# -- dtls_write_skip -------------------------------------------------------------------------

# pyOpenSSL's cffi handles (private): the memory BIO's pending length is not public API.
_ssl_ffi: Any = getattr(OpenSSL.SSL, "_ffi", None)
_ssl_lib: Any = getattr(OpenSSL.SSL, "_lib", None)


def _make_write_ssl(original: Callable[..., Any]) -> Callable[..., Any]:
    assert _ssl_ffi is not None and _ssl_lib is not None
    pointer = _ssl_ffi.new("char **")  # only the returned length is used
    get_pending = _ssl_lib.BIO_get_mem_data

    async def _write_ssl(self: Any) -> None:
        ssl = self._ssl
        bio = getattr(ssl, "_from_ssl", None)
        if bio is not None and get_pending(bio, pointer) <= 0:
            return
        await original(self)

    return _write_ssl


def _dtls_write_skip_usable() -> bool:
    return (
        _ssl_lib is not None
        and hasattr(_ssl_lib, "BIO_get_mem_data")
        and hasattr(aiortc.rtcdtlstransport.RTCDtlsTransport, "_write_ssl")
    )


# -- stun_demux ----------------------------------------------------------------------------------


def _make_datagram_received(original: Callable[..., Any]) -> Callable[..., Any]:
    def datagram_received(self: Any, data: bytes | str, addr: tuple[Any, ...]) -> None:
        # RFC 7983: 20-63 DTLS, 128-191 RTP/RTCP -- never STUN (0-3).
        if isinstance(data, bytes) and data and (19 < data[0] < 64 or 127 < data[0] < 192):
            self.receiver.data_received(data, self.local_candidate.component)
            return
        original(self, data, addr)

    return datagram_received


def _stun_demux_usable() -> bool:
    return hasattr(aioice.ice.StunProtocol, "datagram_received")


# -- sack_every_second_packet ----------------------------------------------------------------------


def _make_handle_data(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _handle_data(self: Any, data: bytes) -> None:
        # Every second packet is acknowledged at once, and every packet that leaves a gap or
        # repeats data (the sender needs those SACKs for fast retransmission).
        defer = (
            not getattr(self, "_p2pml_sack_deferred", False)
            and not self._sack_misordered
            and not self._sack_duplicates
        )
        self._p2pml_defer_sack = defer
        try:
            await original(self, data)
        finally:
            self._p2pml_defer_sack = False

    return _handle_data


def _sack_timer_fired(sctp: Any) -> None:
    sctp._p2pml_sack_timer = None
    if sctp._sack_needed and sctp._association_state == sctp.State.ESTABLISHED:
        task = asyncio.ensure_future(sctp._send_sack())
        task.add_done_callback(_consume)


def _defer_sack(sctp: Any) -> None:
    """Leave the SACK to the next packet (``_sack_needed`` stays True), or to the timer."""
    sctp._p2pml_sack_deferred = True
    if getattr(sctp, "_p2pml_sack_timer", None) is None:
        sctp._p2pml_sack_timer = asyncio.get_running_loop().call_later(
            SACK_DELAY, _sack_timer_fired, sctp
        )


def _make_send_sack(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send_sack(self: Any) -> None:
        if getattr(self, "_p2pml_defer_sack", False):
            _defer_sack(self)
            return
        self._p2pml_sack_deferred = False
        await original(self)

    return _send_sack


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("deferred SACK not sent: %r", task.exception())


def _sack_usable() -> bool:
    cls = aiortc.rtcsctptransport.RTCSctpTransport
    return all(hasattr(cls, name) for name in ("_handle_data", "_send_sack")) and hasattr(
        aioice.ice.Connection, "data_received"
    )


# -- transmit_scan_skip ---------------------------------------------------------------------------


def _plain_udp(sctp: Any) -> bool:
    """True when sending on this association cannot suspend (selected pair on a UDP socket)."""
    return _udp_pair(sctp.transport) is not None


def _make_transmit(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _transmit(self: Any) -> None:
        if "fast_data_path:_send" in _originals and _fast_transmit(self):
            return
        if getattr(self, "_p2pml_retransmit", True) or not _plain_udp(self):
            await original(self)
            # Lower the flag only once nothing is marked any more.
            self._p2pml_retransmit = any(chunk._retransmit for chunk in self._sent_queue)
            return
        real = self._sent_queue
        self._sent_queue = type(real)()
        try:
            await original(self)
        finally:
            real.extend(self._sent_queue)
            self._sent_queue = real

    return _transmit


def _make_receive_sack_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _receive_sack_chunk(self: Any, chunk: Any) -> None:
        if chunk.gaps:
            self._p2pml_retransmit = True  # chunks may be struck and marked
        await original(self, chunk)

    return _receive_sack_chunk


def _make_t3_expired(original: Callable[..., Any]) -> Callable[..., Any]:
    def _t3_expired(self: Any) -> None:
        self._p2pml_retransmit = True  # every outstanding chunk gets marked
        original(self)

    return _t3_expired


def _transmit_usable() -> bool:
    cls = aiortc.rtcsctptransport.RTCSctpTransport
    return all(
        hasattr(cls, name) for name in ("_transmit", "_receive_sack_chunk", "_t3_expired")
    ) and hasattr(aioice.ice, "StunProtocol")


# -- fast_data_path ----------------------------------------------------------------------------

_DATA_CHUNK = aiortc.rtcsctptransport.DataChunk
_DCEP = aiortc.rtcsctptransport.WEBRTC_DCEP
_CONNECTED = aiortc.rtcdtlstransport.State.CONNECTED
_ZERO_CHECKSUM = b"\x00\x00\x00\x00"
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # by length % 4
_crc_value = google_crc32c.value
_crc_extend = google_crc32c.extend
_unpack_tag = Struct("!L").unpack_from  # the verification tag, at offset 4
_unpack_checksum = Struct("<L").unpack_from  # the CRC32c, at offset 8 (little-endian)
_unpack_sack = Struct("!BBHLLHH").unpack_from
_unpack_data = Struct("!BBHLHHL").unpack_from
_pack_sack = Struct("!BBHLLHH").pack
_pack_data = Struct("!BBHLHHL").pack
_pack_checksum = Struct("<L").pack
#: Bytes read from OpenSSL's memory BIO at a time: one DTLS record, as aiortc's ``bio_read(1500)``.
_RECORD = 1500
#: Bytes of the buffer a burst's records are read into (a burst is 2-5 packets; more are sent
#: in several calls).
_BURST_BYTES = 16 * _RECORD


def _buffer(size: int) -> Any:
    return _ssl_ffi.new("unsigned char[]", size) if _ssl_ffi is not None else None


# cffi buffers the fast paths read records into (one event loop thread per process).
_out_buffer: Any = _buffer(_RECORD)
_in_buffer: Any = _buffer(_RECORD)
_burst_buffer: Any = _buffer(_BURST_BYTES)


def _udp_pair(dtls: Any) -> Any:
    """The selected ICE pair when sending on it is a bare ``sendto`` (not TURN), else None."""
    try:
        pair = dtls._transport._connection._nominated.get(1)
    except AttributeError:
        return None
    if pair is None or type(pair.protocol) is not aioice.ice.StunProtocol:
        return None
    if getattr(pair.protocol, "transport", None) is None:
        return None
    return pair


def _send_record(dtls: Any, packet: bytes) -> bool:
    """Encrypt and send one SCTP packet synchronously; False if the fast path does not apply."""
    if dtls._state is not _CONNECTED:
        return False
    pair = _udp_pair(dtls)
    if pair is None:
        return False
    _write_record(dtls, pair, packet)
    return True


def _write_record(dtls: Any, pair: Any, packet: bytes) -> None:
    """``SSL_write`` + ``BIO_read`` + ``sendto``; raises pyOpenSSL's errors like ``send()``."""
    conn = dtls._ssl
    result = _ssl_lib.SSL_write(conn._ssl, packet, len(packet))
    if result <= 0:
        conn._raise_ssl_error(conn._ssl, result)  # raises what pyOpenSSL's send() would
    _flush_records(dtls, pair)


def _flush_records(dtls: Any, pair: Any) -> None:
    """Send what OpenSSL wrote into its memory BIO, one ``BIO_read`` (one record) per datagram."""
    bio = dtls._ssl._from_ssl
    while True:
        size = _ssl_lib.BIO_read(bio, _out_buffer, _RECORD)
        if size <= 0:
            break
        _send_burst(dtls, pair, _out_buffer, [size])


def _common_header(sctp: Any) -> bytes:
    """Ports and verification tag: the first 8 bytes of every packet of this association."""
    header = getattr(sctp, "_p2pml_header", None)
    tag = sctp._remote_verification_tag
    if header is None or header[0] != tag:
        header = sctp._p2pml_header = (
            tag,
            pack("!HHL", sctp._local_port, sctp._remote_port, tag),
        )
    common: bytes = header[1]
    return common


def _packet(common: bytes, *parts: bytes) -> bytes:
    """``serialize_packet``: the common header, its CRC32c, then the chunk bytes ``parts``."""
    packet = b"".join((common, _ZERO_CHECKSUM, *parts))
    return b"".join((common, _pack_checksum(_crc_value(packet)), packet[12:]))


def _data_packet(common: bytes, chunk: Any) -> bytes:
    """``serialize_packet`` of one DATA chunk, byte for byte, with fewer copies: the CRC32c runs
    over the 28 header bytes, then on over the payload (the CRC extension needs ``bytes``: a
    payload of another type is copied once), and the packet is joined once.
    :func:`_fast_transmit` has the same lines inline (one call less per packet)."""
    user_data = bytes(chunk.user_data)
    length = 16 + len(user_data)
    body = _pack_data(
        0,  # DATA
        chunk.flags,
        length,
        chunk.tsn,
        chunk.stream_id,
        chunk.stream_seq,
        chunk.protocol,
    )
    padding = _PADDING[length & 3]
    crc = _crc_extend(_crc_value(common + _ZERO_CHECKSUM + body), user_data)
    if padding:
        crc = _crc_extend(crc, padding)
    return b"".join((common, _pack_checksum(crc), body, user_data, padding))


def _make_send_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send_chunk(self: Any, chunk: Any) -> None:
        if type(chunk) is _DATA_CHUNK:
            packet = _data_packet(_common_header(self), chunk)
            if _send_record(self._RTCSctpTransport__transport, packet):
                return
        await original(self, chunk)

    return _send_chunk


def _make_send_data(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send_data(self: Any, data: bytes) -> None:
        if not _send_record(self, data):
            await original(self, data)

    return _send_data


def _make_recv_next(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _recv_next(self: Any) -> None:
        if not _tuned_dtls(self):
            # Handshake timers, or RTP media on this transport: aiortc's own code.
            await original(self)
            return
        connection = self.transport._connection
        connection._p2pml_dtls = self  # lets data_received take the synchronous path
        data = await self.transport._recv()
        kind = type(data)
        receiver = self._data_receiver
        if kind is _Plain:
            plain: bytes | None = data
        elif kind is _FollowUp:
            if type(receiver) is _SCTP:
                await _sack_follow_up(receiver)
            return
        elif kind is _Closed:
            raise ConnectionError
        else:
            self._RTCDtlsTransport__rx_bytes += len(data)
            self._RTCDtlsTransport__rx_packets += 1
            if not 19 < data[0] < 64:
                return  # not DTLS; RTP/RTCP with no receiver or sender is dropped by aiortc too
            plain = _decrypt(self, data)
            if _ssl_lib.BIO_get_mem_data(self._ssl._from_ssl, _pending) > 0:
                await self._write_ssl()  # an alert or a retransmitted flight
            if plain is None:
                raise ConnectionError
        if plain and receiver:
            if type(receiver) is _SCTP and (
                await _fast_sack(receiver, plain) or await _fast_data(receiver, plain)
            ):
                return
            await receiver._handle_data(plain)

    return _recv_next


_pending: Any = _ssl_ffi.new("char **") if _ssl_ffi is not None else None


_SCTP = aiortc.rtcsctptransport.RTCSctpTransport
_CERTIFICATE = aiortc.rtcdtlstransport.RTCCertificate
_ESTABLISHED = _SCTP.State.ESTABLISHED
_USERDATA = aiortc.rtcsctptransport.USERDATA_MAX_LENGTH
_FIRST_FRAG = aiortc.rtcsctptransport.SCTP_DATA_FIRST_FRAG
_UNORDERED = aiortc.rtcsctptransport.SCTP_DATA_UNORDERED
_TSN_MASK = 0xFFFFFFFF
_TSN_HALF = 0x80000000


def _fast_transmit(sctp: Any) -> bool:
    """aiortc's ``_transmit`` when nothing waits for retransmission, without suspending.

    Returns False (the caller runs aiortc's code) when a FORWARD TSN is pending, a chunk may be
    marked for retransmission, or sending could suspend (not a plain UDP pair).
    """
    if sctp._forward_tsn_chunk is not None or getattr(sctp, "_p2pml_retransmit", True):
        return False
    dtls = sctp._RTCSctpTransport__transport
    if dtls._state is not _CONNECTED:
        return False
    pair = _udp_pair(dtls)
    if pair is None:
        return False
    outbound = sctp._outbound_queue
    burst = (2 if sctp._fast_recovery_exit is not None else 4) * _USERDATA
    cwnd = min(sctp._flight_size + burst, sctp._cwnd)
    if not outbound or sctp._flight_size >= cwnd:
        return True
    sent = sctp._sent_queue
    now = time.time()
    common = _common_header(sctp)
    # The burst's DTLS records are read into one buffer, back to back, and handed to the
    # socket together (:func:`_send_burst`) once all are encrypted.
    buffer = _burst_buffer
    conn = dtls._ssl
    ssl = conn._ssl
    bio = conn._from_ssl
    sizes: list[int] = []
    offset = 0
    head = common + _ZERO_CHECKSUM
    pack_data = _pack_data
    pack_checksum = _pack_checksum
    crc_value = _crc_value
    crc_extend = _crc_extend
    ssl_write = _ssl_lib.SSL_write
    bio_read = _ssl_lib.BIO_read
    flight = sctp._flight_size
    try:
        while outbound and flight < cwnd:
            chunk = outbound.popleft()
            sent.append(chunk)
            if not chunk._in_flight:
                chunk._in_flight = True
                flight += chunk._book_size
            chunk._sent_count += 1
            chunk._sent_time = now
            # _data_packet, inline
            user_data = chunk.user_data
            if type(user_data) is not bytes:
                user_data = bytes(user_data)
            length = 16 + len(user_data)
            body = pack_data(
                0, chunk.flags, length, chunk.tsn, chunk.stream_id, chunk.stream_seq, chunk.protocol
            )
            padding = _PADDING[length & 3]
            crc = crc_extend(crc_value(head + body), user_data)
            if padding:
                crc = crc_extend(crc, padding)
            packet = b"".join((common, pack_checksum(crc), body, user_data, padding))
            result = ssl_write(ssl, packet, len(packet))
            if result <= 0:
                if sizes:
                    _send_burst(dtls, pair, buffer, sizes)  # what was encrypted goes out first
                conn._raise_ssl_error(ssl, result)  # raises what pyOpenSSL's send() would
            while True:
                if offset > _BURST_BYTES - _RECORD:
                    _send_burst(dtls, pair, buffer, sizes)
                    sizes = []
                    offset = 0
                size = bio_read(bio, buffer + offset, _RECORD)
                if size <= 0:
                    break
                sizes.append(size)
                offset += size
                if size < _RECORD:
                    break  # a memory BIO returns less than asked only once it is empty
    finally:
        # Once per burst, not per packet as in aiortc; also when SSL_write raised: what was
        # taken from the outbound queue is in flight and timed.
        sctp._flight_size = flight
        if sctp._t3_handle is None and sent:
            sctp._t3_start()
    if sizes:
        _send_burst(dtls, pair, buffer, sizes)
    return True


def _send_burst(dtls: Any, pair: Any, buffer: Any, sizes: list[int]) -> None:
    """Send the DTLS records lying back to back at the start of ``buffer`` (``sizes`` bytes
    each) as one datagram each, in order, with the UDP transport's ``sendto``. The ``udp_gso``
    patch replaces this."""
    sendto = pair.protocol.transport.sendto
    addr = pair.remote_addr
    offset = 0
    for size in sizes:
        sendto(_ssl_ffi.buffer(buffer + offset, size)[:], addr)
        offset += size
    dtls._RTCDtlsTransport__tx_bytes += offset
    dtls._RTCDtlsTransport__tx_packets += len(sizes)


def _checked(sctp: Any, plain: bytes) -> bool:
    """The common header of a packet for this association: verification tag and CRC32c."""
    return bool(
        _unpack_tag(plain, 4)[0] == sctp._local_verification_tag
        and _unpack_checksum(plain, 8)[0]
        == _crc_value(b"".join((plain[:8], _ZERO_CHECKSUM, plain[12:])))
    )


_SACK_NOT_MINE = 0  # not a SACK handled here (see _sack_core): nothing was changed
_SACK_DONE = 1  # handled, new data sent
_SACK_FOLLOW_UP = 2  # handled; _sack_follow_up must still run (it may suspend)


def _sack_core(sctp: Any, plain: bytes) -> int:
    """aiortc's handling of a packet holding one SACK, up to the point where aiortc awaits; see
    the ``_SACK_*`` results. Gap blocks are handled here too (:func:`_gap_blocks`) when they are
    well formed and the sent queue holds consecutive TSNs; anything else is left to aiortc."""
    size = len(plain)
    if size < 28 or plain[12] != 3 or sctp._association_state is not _ESTABLISHED:
        return _SACK_NOT_MINE
    _, _, length, cumulative_tsn, _, gaps, duplicates = _unpack_sack(plain, 12)
    # _checked, inline: the verification tag and the CRC32c (over the packet, checksum zeroed)
    if (
        length != size - 12
        or length != 16 + 4 * (gaps + duplicates)
        or _unpack_tag(plain, 4)[0] != sctp._local_verification_tag
        or _unpack_checksum(plain, 8)[0]
        != _crc_value(b"".join((plain[:8], _ZERO_CHECKSUM, plain[12:])))
    ):
        return _SACK_NOT_MINE
    if sctp._forward_tsn_streams or sctp._forward_tsn_chunk is not None:
        return _SACK_NOT_MINE
    # -- RTCSctpTransport._receive_sack_chunk.
    # In serial number arithmetic (RFC 1982, aiortc's uint32_gt), a > b is
    # 0 < (a - b) mod 2**32 < 2**31; inlined below.
    sent = sctp._sent_queue
    blocks: tuple[int, ...] = ()
    if gaps:
        blocks = _unpack_gaps(gaps)(plain, 28)
        if not _gaps_handled_here(sent, cumulative_tsn, blocks):
            return _SACK_NOT_MINE
    if 0 < (sctp._last_sacked_tsn - cumulative_tsn) & _TSN_MASK < _TSN_HALF:
        return _SACK_DONE  # an old SACK: ignored
    received_time = time.time()
    sctp._last_sacked_tsn = cumulative_tsn
    cwnd_fully_utilized = sctp._flight_size >= sctp._cwnd
    done = 0
    done_bytes = 0
    # sent[0].tsn <= cumulative_tsn in serial number arithmetic (RFC 1982), inlined
    while sent and (cumulative_tsn - sent[0].tsn) & _TSN_MASK < _TSN_HALF:
        chunk = sent.popleft()
        done += 1
        if not chunk._acked:
            done_bytes += chunk._book_size
        if chunk._in_flight:
            chunk._in_flight = False
            sctp._flight_size -= chunk._book_size
        if done == 1 and chunk._sent_count == 1:
            # aiortc measures the RTT on every SACK; RFC 9260 section 6.3.1 (C4) asks for at
            # most one measurement per round trip, which is what this does.
            sample = received_time - chunk._sent_time
            srtt = sctp._srtt
            if srtt is None or received_time - getattr(sctp, "_p2pml_rtt_at", 0.0) >= srtt:
                sctp._p2pml_rtt_at = received_time
                sctp._update_rto(sample)
    loss = False
    if blocks:
        gap_bytes, loss = _gap_blocks(sctp, sent, blocks)
        done_bytes += gap_bytes
    if sctp._fast_recovery_exit is None:
        if done and cwnd_fully_utilized:
            if sctp._cwnd <= sctp._ssthresh:
                sctp._cwnd += min(done_bytes, _USERDATA)
            else:
                sctp._partial_bytes_acked += done_bytes
                if sctp._partial_bytes_acked >= sctp._cwnd:
                    sctp._partial_bytes_acked -= sctp._cwnd
                    sctp._cwnd += _USERDATA
        if loss:  # fast retransmit: enter fast recovery (RFC 9260 section 7.2.4)
            sctp._ssthresh = max(sctp._cwnd // 2, 4 * _USERDATA)
            sctp._cwnd = sctp._ssthresh
            sctp._partial_bytes_acked = 0
            sctp._fast_recovery_exit = sent[-1].tsn
            sctp._fast_recovery_transmit = True
    elif not 0 < (sctp._fast_recovery_exit - cumulative_tsn) & _TSN_MASK < _TSN_HALF:
        sctp._fast_recovery_exit = None
    if not sent:
        sctp._t3_cancel()
    elif done:
        handle = sctp._t3_handle
        box = getattr(sctp, "_p2pml_t3_box", None)
        if handle is not None and box is not None and box[0] is handle:
            # _t3_restart (fast_data_path's), inline: the armed timer re-arms itself
            sctp._p2pml_t3_deadline = sctp._loop.time() + sctp._rto
        else:
            sctp._t3_restart()
    outbound = sctp._outbound_queue
    if (
        (outbound and outbound[0]._abandoned)
        or (sent and sent[0]._abandoned)
        or 0 < (sctp._advanced_peer_ack_tsn - cumulative_tsn) & _TSN_MASK < _TSN_HALF
    ):
        sctp._update_advanced_peer_ack_point()  # partial reliability at work: aiortc's code
    else:
        sctp._advanced_peer_ack_tsn = cumulative_tsn
    if sctp._reconfig_queue:
        return _SACK_FOLLOW_UP
    if not outbound and sctp._data_channel_queue:
        return _SACK_DONE if _flush_channels(sctp) else _SACK_FOLLOW_UP
    return _SACK_DONE if _fast_transmit(sctp) else _SACK_FOLLOW_UP


_gap_structs: dict[int, Any] = {}


def _unpack_gaps(count: int) -> Any:
    """``unpack_from`` of ``count`` gap blocks (start, end offsets from the cumulative TSN)."""
    unpack = _gap_structs.get(count)
    if unpack is None:
        unpack = _gap_structs[count] = Struct(f"!{2 * count}H").unpack_from
    return unpack


def _gaps_handled_here(sent: Any, cumulative_tsn: int, blocks: tuple[int, ...]) -> bool:
    """Gap blocks that :func:`_gap_blocks` handles exactly as aiortc would: ascending, not
    overlapping, not empty, and a sent queue of consecutive TSNs that starts right after the
    cumulative TSN once the acknowledged chunks are gone. (A receiver following RFC 9260 sends
    nothing else; anything else -- a hostile peer's blocks -- is left to aiortc's code.)"""
    previous = 0
    for index in range(0, len(blocks), 2):
        start = blocks[index]
        end = blocks[index + 1]
        if not previous < start <= end:
            return False
        previous = end
    if not sent:
        return True
    first = sent[0].tsn
    count = len(sent)
    return bool(
        (sent[-1].tsn - first) & _TSN_MASK == count - 1
        and (cumulative_tsn + 1 - first) & _TSN_MASK <= count
    )


def _gap_blocks(sctp: Any, sent: Any, blocks: tuple[int, ...]) -> tuple[int, bool]:
    """The gap-block half of aiortc's ``_receive_sack_chunk``, once the cumulatively acknowledged
    chunks are gone: the chunks in the blocks are acknowledged, those in the holes before the
    highest newly acknowledged one get a miss, and the third miss marks one for retransmission.
    aiortc builds a set of every TSN the blocks cover and walks the sent queue from its start
    twice per SACK -- after a loss, the whole window on every SACK until the retransmission
    arrives. Here the sent queue's TSNs are consecutive (:func:`_gaps_handled_here`), so a TSN's
    chunk is ``sent[tsn - cumulative_tsn - 1]``, and only the blocks and the holes are visited.
    Returns (bytes newly acknowledged, whether a chunk was marked lost)."""
    count = len(sent)
    done_bytes = 0
    newest = -1  # index of the highest newly acknowledged chunk
    for index in range(0, len(blocks), 2):
        for position in range(blocks[index] - 1, min(blocks[index + 1], count)):
            chunk = sent[position]
            if not chunk._acked:
                done_bytes += chunk._book_size
                chunk._acked = True
                newest = position
            if chunk._in_flight:
                chunk._in_flight = False
                sctp._flight_size -= chunk._book_size
    loss = False
    hole = 0  # the holes: before the first block, between blocks, up to `newest`
    for index in range(0, len(blocks), 2):
        if hole > newest:
            break
        for position in range(hole, min(blocks[index] - 1, newest + 1)):
            chunk = sent[position]
            chunk._misses += 1
            if chunk._misses == 3:
                chunk._misses = 0
                if not sctp._maybe_abandon(chunk):
                    chunk._retransmit = True
                chunk._acked = False
                if chunk._in_flight:
                    chunk._in_flight = False
                    sctp._flight_size -= chunk._book_size
                loss = True
        hole = blocks[index + 1]
    if loss:
        sctp._p2pml_retransmit = True  # transmit_scan_skip: chunks are marked now
    return done_bytes, loss


def _flush_channels(sctp: Any) -> bool:
    """aiortc's ``_data_channel_flush`` without suspending: while nothing is left to send, the
    next message the channels queued becomes chunks and is transmitted. False when the rest
    needs aiortc's code (a channel with no stream id yet, a DCEP message, a transmit that may
    suspend); then nothing is lost, ``_sack_follow_up`` carries on from where this stopped."""
    queue = sctp._data_channel_queue
    outbound = sctp._outbound_queue
    while queue and not outbound:
        channel, protocol, user_data = queue[0]
        stream_id = channel.id
        if stream_id is None or protocol == _DCEP:
            return False
        queue.popleft()
        lifetime = channel.maxPacketLifeTime
        _queue_message(
            sctp,
            stream_id,
            protocol,
            user_data,
            time.time() + lifetime / 1000 if lifetime else None,
            channel.maxRetransmits,
            channel.ordered,
        )
        transmitted = _fast_transmit(sctp)
        channel._addBufferedAmount(-len(user_data))
        SYNC_HANDLED["flush"] += 1
        if not transmitted:
            return False
    # A channel closed meanwhile (a "bufferedamountlow" handler may close one): aiortc's flush
    # ends by sending the stream reset, so the follow-up runs it.
    return not sctp._reconfig_queue


async def _sack_follow_up(sctp: Any) -> None:
    """The end of aiortc's ``_receive_sack_chunk``: refill from the channels, then transmit."""
    if (not sctp._outbound_queue and sctp._data_channel_queue) or sctp._reconfig_queue:
        await sctp._data_channel_flush()
    if not _fast_transmit(sctp):
        await sctp._transmit()


async def _fast_sack(sctp: Any, plain: bytes) -> bool:
    """:func:`_sack_core` and its follow-up; False (nothing changed) for other packets."""
    result = _sack_core(sctp, plain)
    if result == _SACK_FOLLOW_UP:
        await _sack_follow_up(sctp)
    return result != _SACK_NOT_MINE


def _in_order_data(sctp: Any, plain: bytes) -> tuple[int, int, int, int, int, int] | None:
    """(flags, length, tsn, stream id, stream seq, protocol) of a packet holding one DATA chunk
    with the next TSN, on an association with nothing misordered, duplicated or being reset;
    None for any other packet."""
    size = len(plain)
    if size < 33 or plain[12] != 0 or sctp._association_state is not _ESTABLISHED:
        return None
    _, flags, length, tsn, stream_id, stream_seq, protocol = _unpack_data(plain, 12)
    if length <= 16 or 12 + length + (-length & 3) != size:
        return None  # several chunks, or a length aiortc's parser would reject
    if (
        tsn != (sctp._last_received_tsn + 1) & _TSN_MASK
        or sctp._sack_misordered
        or sctp._sack_duplicates
        or sctp._reconfig_deferred is not None
        or not _checked(sctp, plain)
    ):
        return None
    return flags, length, tsn, stream_id, stream_seq, protocol


def _accept_in_order(sctp: Any, plain: bytes, fields: tuple[int, int, int, int, int, int]) -> Any:
    """``_receive_data_chunk`` / ``_mark_received`` for the next TSN in order, up to the
    reassembly; returns the inbound stream the chunk was added to."""
    flags, length, tsn, stream_id, stream_seq, protocol = fields
    chunk = _DATA_CHUNK.__new__(_DATA_CHUNK)
    chunk.flags = flags
    chunk.tsn = tsn
    chunk.stream_id = stream_id
    chunk.stream_seq = stream_seq
    chunk.protocol = protocol
    chunk.user_data = plain[28 : 12 + length]
    sctp._sack_needed = True
    sctp._last_received_tsn = tsn
    stream = sctp._inbound_streams.get(stream_id) or sctp._get_inbound_stream(stream_id)
    stream.add_chunk(chunk)  # appended after every buffered chunk: it has the highest TSN
    sctp._advertised_rwnd -= length - 16
    return stream


async def _fast_data(sctp: Any, plain: bytes) -> bool:
    """aiortc's handling of a packet holding one DATA chunk that arrives in order.

    Returns False, having changed nothing, for any other packet (aiortc then handles it).
    """
    fields = _in_order_data(sctp, plain)
    if fields is None:
        return False
    stream = _accept_in_order(sctp, plain, fields)
    for message in stream.pop_messages():
        sctp._advertised_rwnd += len(message[2])
        await sctp._receive(*message)
    if sctp._reconfig_deferred is not None:
        await sctp._reset_deferred_streams()
    # -- the end of _handle_data, with sack_every_second_packet's rule when it is installed
    if sctp._sack_needed:
        defer = "sack_every_second_packet:_send_sack" in _originals and not getattr(
            sctp, "_p2pml_sack_deferred", False
        )
        sctp._p2pml_defer_sack = defer
        try:
            await sctp._send_sack()
        finally:
            sctp._p2pml_defer_sack = False
    return True


def _data_sync(sctp: Any, plain: bytes) -> bool:
    """An in-order DATA packet that completes no message, handled without suspending.

    Like :func:`_fast_data`, but only when nothing needs an ``await``: not a last fragment (so no
    message is delivered), and its SACK either deferred or sent on a plain UDP pair. Returns
    False, having changed nothing, otherwise.
    """
    if "sack_every_second_packet:_send_sack" not in _originals:
        return False
    fields = _in_order_data(sctp, plain)
    if fields is None or fields[0] & _LAST_FRAG:
        return False
    defer = not getattr(sctp, "_p2pml_sack_deferred", False)
    dtls = sctp._RTCSctpTransport__transport
    pair = None
    if not defer:
        pair = _udp_pair(dtls) if dtls._state is _CONNECTED else None
        if pair is None:
            return False
    _accept_in_order(sctp, plain, fields)
    if defer:
        _defer_sack(sctp)  # _sack_needed stays True
        return True
    # aiortc's _send_sack with nothing misordered or duplicated: cumulative TSN and window only.
    sack = _pack_sack(3, 0, 16, fields[2], max(0, sctp._advertised_rwnd), 0, 0)
    sctp._sack_needed = False
    sctp._p2pml_sack_deferred = False
    _write_record(dtls, pair, _control_packet(sctp, sack))
    return True


def _control_packet(sctp: Any, chunk: bytes) -> bytes:
    """An SCTP packet around one already serialized chunk (``serialize_packet``)."""
    return _packet(_common_header(sctp), chunk)


#: Datagrams the synchronous receive path handled in this process, by kind (diagnostics).
SYNC_HANDLED = {"sack": 0, "data": 0, "flush": 0}


class _Plain(bytes):
    """A DTLS record that the synchronous path decrypted, queued in its arrival order."""


class _FollowUp(bytes):
    """Queued after a SACK that the synchronous path handled up to an ``await``."""


class _Closed(bytes):
    """Queued when the synchronous path read the remote's close_notify."""


def _decrypt(dtls: Any, data: bytes) -> bytes | None:
    """One DTLS datagram to plaintext (b"" when it carries none); None on close_notify.
    ``Connection.data_received`` (fast_data_path) has these lines inline."""
    lib = _ssl_lib
    conn = dtls._ssl
    lib.BIO_write(conn._into_ssl, data, len(data))
    size = lib.SSL_read(conn._ssl, _in_buffer, _RECORD)
    if size > 0:
        plain: bytes = _ssl_ffi.buffer(_in_buffer, size)[:]
        return plain
    return _decrypted_nothing(conn, size)


def _decrypted_nothing(conn: Any, size: int) -> bytes | None:
    """After ``SSL_read`` returned ``size`` <= 0: None on close_notify, else b""."""
    lib = _ssl_lib
    closed = lib.SSL_get_error(conn._ssl, size) == lib.SSL_ERROR_ZERO_RETURN
    lib.ERR_clear_error()  # pyOpenSSL pops the queue into its exception; so do we
    return None if closed else b""


def _tuned_dtls(dtls: Any) -> bool:
    """After the handshake, with no RTP: the transports the fast receive paths handle."""
    router = dtls._rtp_router
    return bool(
        dtls._RTCDtlsTransport__handshake_done and not router.receivers and not router.senders
    )


def _make_connection_data_received(original: Callable[..., Any]) -> Callable[..., Any]:
    def data_received(self: Any, data: bytes, component: int) -> None:
        # aioice queues every datagram for the DTLS transport's reader task, which wakes up for
        # each one. When that task is idle (waiting, nothing queued), a DTLS datagram is
        # decrypted here, and a SACK or an in-order DATA packet is handled at once;
        # anything else is queued -- decrypted, in order -- for the task.
        dtls = getattr(self, "_p2pml_dtls", None)
        queue = self._queue
        if (
            dtls is None
            or component != 1
            or type(data) is not bytes
            or not 19 < data[0] < 64
            or queue._queue
            or not queue._getters
            or dtls._state is not _CONNECTED
            # _tuned_dtls, inline
            or not dtls._RTCDtlsTransport__handshake_done
            or dtls._rtp_router.receivers
            or dtls._rtp_router.senders
        ):
            original(self, data, component)
            return
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        # _decrypt, inline up to its common case (a record with plaintext)
        conn = dtls._ssl
        lib = _ssl_lib
        lib.BIO_write(conn._into_ssl, data, len(data))
        size = lib.SSL_read(conn._ssl, _in_buffer, _RECORD)
        plain = _ssl_ffi.buffer(_in_buffer, size)[:] if size > 0 else _decrypted_nothing(conn, size)
        if lib.BIO_get_mem_data(conn._from_ssl, _pending) > 0:
            pair = _udp_pair(dtls)
            if pair is not None:
                _flush_records(dtls, pair)  # an alert or a flight
        if plain is None:
            original(self, _Closed(), component)
            return
        sctp = dtls._data_receiver
        if not plain or sctp is None:
            return
        if type(sctp) is _SCTP:
            result = _sack_core(sctp, plain)
            if result != _SACK_NOT_MINE:
                SYNC_HANDLED["sack"] += 1
                if result == _SACK_FOLLOW_UP:
                    original(self, _FollowUp(), component)
                return
            if _data_sync(sctp, plain):
                SYNC_HANDLED["data"] += 1
                return
        original(self, _Plain(plain), component)

    return data_received


def _queue_message(
    sctp: Any,
    stream_id: int,
    pp_id: int,
    user_data: bytes,
    expiry: float | None,
    max_retransmits: int | None,
    ordered: bool,
) -> None:
    """The first half of aiortc's ``_send``: one message into DATA chunks on the outbound queue.

    The same chunks as aiortc's, each a copy of one template dict (not 16 attribute stores)
    holding a ``bytes`` slice of the message, as aiortc's do. (A memoryview slice would save no
    copy -- the packet needs ``bytes`` for its CRC -- and would make every chunk's dict one more
    object for the garbage collector to track; with only atoms in it, the dict is untracked.)"""
    stream_seq = sctp._outbound_stream_seq.get(stream_id, 0) if ordered else 0
    total = len(user_data)
    unordered = 0 if ordered else _UNORDERED
    tsn = sctp._local_tsn
    append = sctp._outbound_queue.append
    new = _DATA_CHUNK.__new__
    if type(user_data) is not bytes:
        user_data = bytes(user_data)
    template = {
        "flags": unordered,
        "tsn": tsn,
        "stream_id": stream_id,
        "stream_seq": stream_seq,
        "protocol": pp_id,
        "user_data": b"",
        "_abandoned": False,
        "_acked": False,
        "_book_size": _USERDATA,
        "_expiry": expiry,
        "_in_flight": False,
        "_max_retransmits": max_retransmits,
        "_misses": 0,
        "_retransmit": False,
        "_sent_count": 0,
        "_sent_time": None,
    }
    fields: dict[str, Any] = {}
    for position in range(0, total, _USERDATA):
        chunk = new(_DATA_CHUNK)
        fields = template.copy()
        fields["tsn"] = tsn
        fields["user_data"] = user_data[position : position + _USERDATA]
        chunk.__dict__ = fields
        if not position:
            fields["flags"] = unordered | _FIRST_FRAG
        tsn = (tsn + 1) & _TSN_MASK
        append(chunk)
    if fields:  # the last fragment
        fields["flags"] |= _LAST_FRAG
        fields["_book_size"] = len(fields["user_data"])
    sctp._local_tsn = tsn
    if ordered:
        sctp._outbound_stream_seq[stream_id] = (stream_seq + 1) & 0xFFFF


def _make_send(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send(
        self: Any,
        stream_id: int,
        pp_id: int,
        user_data: bytes,
        expiry: float | None = None,
        max_retransmits: int | None = None,
        ordered: bool = True,
    ) -> None:
        _queue_message(self, stream_id, pp_id, user_data, expiry, max_retransmits, ordered)
        await self._transmit()

    return _send


def _t3_fire(sctp: Any, handle_box: list[Any]) -> None:
    if sctp._t3_handle is not handle_box[0]:
        return  # cancelled or replaced since
    remaining = sctp._p2pml_t3_deadline - sctp._loop.time()
    if remaining > 0.001:
        handle_box[0] = sctp._t3_handle = sctp._loop.call_later(
            remaining, _t3_fire, sctp, handle_box
        )
        return
    sctp._t3_expired()


def _t3_arm(sctp: Any) -> None:
    sctp._p2pml_t3_deadline = sctp._loop.time() + sctp._rto
    box: list[Any] = [None]
    box[0] = sctp._t3_handle = sctp._loop.call_later(sctp._rto, _t3_fire, sctp, box)
    sctp._p2pml_t3_box = box


def _make_t3_start(original: Callable[..., Any]) -> Callable[..., Any]:
    def _t3_start(self: Any) -> None:
        assert self._t3_handle is None
        _t3_arm(self)

    return _t3_start


def _make_t3_restart(original: Callable[..., Any]) -> Callable[..., Any]:
    def _t3_restart(self: Any) -> None:
        handle = self._t3_handle
        box = getattr(self, "_p2pml_t3_box", None)
        if handle is not None and box is not None and box[0] is handle:
            # Still armed by us: move the deadline, the timer re-arms itself when it fires.
            self._p2pml_t3_deadline = self._loop.time() + self._rto
            return
        if handle is not None:
            handle.cancel()
            self._t3_handle = None
        _t3_arm(self)

    return _t3_restart


_INBOUND = aiortc.rtcsctptransport.InboundStream
_LAST_FRAG = aiortc.rtcsctptransport.SCTP_DATA_LAST_FRAG


def _make_add_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    def add_chunk(self: Any, chunk: Any) -> None:
        reassembly = self.reassembly
        original(self, chunk)
        # Appended after every buffered chunk (not inserted into a gap), and not a last fragment.
        self._p2pml_nothing_complete = (
            reassembly is self.reassembly
            and reassembly[-1] is chunk
            and not chunk.flags & _LAST_FRAG
        )

    return add_chunk


def _make_pop_messages(original: Callable[..., Any]) -> Callable[..., Any]:
    def pop_messages(self: Any) -> Any:
        if getattr(self, "_p2pml_nothing_complete", False):
            self._p2pml_nothing_complete = False
            return iter(())
        return original(self)

    return pop_messages


def _fast_data_path_usable() -> bool:
    sctp = aiortc.rtcsctptransport.RTCSctpTransport
    dtls = aiortc.rtcdtlstransport.RTCDtlsTransport
    needed_lib = ("SSL_write", "SSL_read", "BIO_read", "BIO_write", "SSL_get_error")
    return (
        _ssl_lib is not None
        and all(hasattr(_ssl_lib, name) for name in needed_lib)
        and _dtls_write_skip_usable()
        and all(
            hasattr(sctp, name)
            for name in (
                "_send",
                "_send_chunk",
                "_t3_start",
                "_t3_restart",
                "_receive_sack_chunk",
                "_update_rto",
                "_update_advanced_peer_ack_point",
                "_data_channel_flush",
                "_get_inbound_stream",
                "_receive",
                "_reset_deferred_streams",
            )
        )
        and all(hasattr(dtls, name) for name in ("_send_data", "_recv_next"))
        and all(hasattr(_INBOUND, name) for name in ("add_chunk", "pop_messages"))
        and hasattr(aioice.ice, "StunProtocol")
    )


# -- ice_prompt_complete ------------------------------------------------------------------------

#: The aioice Connection whose ``connect()`` runs in this task (and in tasks it starts).
_CHECKING: contextvars.ContextVar[Any] = contextvars.ContextVar("p2pml_ice_checking", default=None)


def _make_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    async def connect(self: Any) -> None:
        token = _CHECKING.set(self)
        try:
            await original(self)
        finally:
            _CHECKING.reset(token)

    return connect


def _wake(connection: Any) -> None:
    waiter = connection.__dict__.get("_p2pml_wake")
    if waiter is not None and connection._check_list_done:
        _resolve(waiter)


def _make_check_list_maybe_complete(original: Callable[..., Any]) -> Callable[..., Any]:
    def _check_list_maybe_complete(self: Any) -> bool:
        result: bool = original(self)
        _wake(self)
        return result

    return _check_list_maybe_complete


def _make_check_list_maybe_fail(original: Callable[..., Any]) -> Callable[..., Any]:
    def _check_list_maybe_fail(self: Any) -> None:
        original(self)
        _wake(self)

    return _check_list_maybe_fail


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _check_pacing_sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` for aioice.ice: ends early when the connection's checks are over."""
    connection = _CHECKING.get()
    if connection is None or connection._check_list_done:
        return await asyncio.sleep(delay, result)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    connection._p2pml_wake = waiter
    handle = loop.call_later(delay, _resolve, waiter)
    try:
        await waiter
    finally:
        handle.cancel()
        connection._p2pml_wake = None
    return result


class _AsyncioForAioice:
    """The ``asyncio`` module as aioice.ice sees it: the same, except :func:`_check_pacing_sleep`."""

    sleep = staticmethod(_check_pacing_sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def _ice_prompt_complete_usable() -> bool:
    connection = aioice.ice.Connection
    return aioice.ice.__dict__.get("asyncio") is asyncio and all(
        hasattr(connection, name)
        for name in ("connect", "_check_list_maybe_complete", "_check_list_maybe_fail")
    )


# -- udp_gso ---------------------------------------------------------------------------------------

_SOL_UDP = 17
_UDP_SEGMENT = 103  # linux/udp.h
_GSO_ERRORS = {errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE}
_segment_options: dict[int, list[tuple[int, int, bytes]]] = {}  # segment size -> cmsg list
_GsoSocket = socket.socket  # what sends; a test may substitute a subclass


def _gso_usable() -> bool:
    return sys.platform == "linux" and hasattr(socket.socket, "sendmsg")


#: ``calls``/``datagrams``: sendmsg calls with UDP_SEGMENT and the datagrams they made;
#: ``fallbacks``: calls that failed (their records then went by the transport's sendto);
#: ``disabled``: pairs on which GSO was refused and is not tried again.
GSO_SENT = {"calls": 0, "datagrams": 0, "fallbacks": 0, "disabled": 0}


def _gso_socket(pair: Any) -> Any:
    """A socket object on the pair's UDP socket for ``sendmsg``; None when the transport's own
    ``sendto`` must send (closing, data queued in it, GSO refused on this pair)."""
    protocol = pair.protocol
    transport = protocol.transport
    if transport.is_closing() or transport.get_write_buffer_size():
        return None
    cached = pair.__dict__.get("_p2pml_gso")
    if cached is not None and cached[0] is transport:
        return cached[1]
    sock = None
    try:
        raw = transport.get_extra_info("socket")
        sock = _GsoSocket(raw.family, raw.type, raw.proto, os.dup(raw.fileno()))
    except (OSError, AttributeError, ValueError):
        pass
    pair._p2pml_gso = (transport, sock)
    if sock is not None:
        # The duplicate descriptor closes with the transport's own (the port is then free).
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            sock.close()
            lost(exc)

        protocol.connection_lost = connection_lost
    return sock


def _make_send_burst(original: Callable[..., Any]) -> Callable[..., Any]:
    def _send_burst(dtls: Any, pair: Any, buffer: Any, sizes: list[int]) -> None:
        # A run of records of one size (and one shorter record after them: a message's last
        # fragment) goes out in one sendmsg with UDP_SEGMENT; the kernel (or the network card)
        # cuts it into the same datagrams as one sendto each -- the receiver sees no difference.
        # A lone record (a SACK, the end of a burst) goes by the transport's sendto, which costs
        # less than a sendmsg for one datagram.
        count = len(sizes)
        sock = _gso_socket(pair) if count > 1 else None
        if sock is None:
            original(dtls, pair, buffer, sizes)
            return
        addr = pair.remote_addr
        offset = 0
        first = 0
        while first < count:
            segment = sizes[first]
            end = first + 1
            while end < count and sizes[end] == segment:
                end += 1
            if end < count and sizes[end] < segment:
                end += 1
            if end - first == 1:
                original(dtls, pair, buffer + offset, sizes[first:end])
                offset += segment
                first = end
                continue
            run = sum(sizes[first:end])
            options = _segment_options.get(segment)
            if options is None:
                options = _segment_options[segment] = [
                    (_SOL_UDP, _UDP_SEGMENT, pack("=H", segment))
                ]
            try:
                sock.sendmsg([_ssl_ffi.buffer(buffer + offset, run)], options, 0, addr)
            except OSError as exc:
                # Nothing of the run was sent (UDP sends all or nothing): the transport sends
                # it instead -- it queues what the socket cannot take now (EAGAIN) and reports
                # other errors its own way. GSO refused on this route: not tried again on it.
                GSO_SENT["fallbacks"] += 1
                if exc.errno in _GSO_ERRORS:
                    GSO_SENT["disabled"] += 1
                    pair._p2pml_gso = (pair.protocol.transport, None)
                original(dtls, pair, buffer + offset, sizes[first:])
                return
            GSO_SENT["calls"] += 1
            GSO_SENT["datagrams"] += end - first
            dtls._RTCDtlsTransport__tx_bytes += run
            dtls._RTCDtlsTransport__tx_packets += end - first
            offset += run
            first = end

    return _send_burst


# -- shared_certificate ---------------------------------------------------------------------------

#: Renew the shared certificate once it expires within this time.
CERTIFICATE_RENEW_BEFORE = datetime.timedelta(days=1)
_certificates: dict[type, Any] = {}  # RTCCertificate class -> the process's certificate


def _make_generate_certificate(original: Any) -> Any:
    generate = original.__func__

    def generateCertificate(cls: type) -> Any:
        certificate = _certificates.get(cls)
        now = datetime.datetime.now(tz=datetime.UTC)
        if certificate is None or certificate.expires - now < CERTIFICATE_RENEW_BEFORE:
            certificate = _certificates[cls] = generate(cls)
        return certificate

    return classmethod(generateCertificate)


def _make_get_fingerprints(original: Callable[..., Any]) -> Callable[..., Any]:
    def getFingerprints(self: Any) -> list[Any]:
        cached = self.__dict__.get("_p2pml_fingerprints")
        if cached is None:
            cached = self._p2pml_fingerprints = tuple(original(self))
        return [dataclasses.replace(fingerprint) for fingerprint in cached]

    return getFingerprints


def _make_create_ssl_context(original: Callable[..., Any]) -> Callable[..., Any]:
    def _create_ssl_context(self: Any, srtp_profiles: list[Any]) -> Any:
        key = tuple(profile.openssl_profile for profile in srtp_profiles)
        contexts = self.__dict__.setdefault("_p2pml_contexts", {})
        context = contexts.get(key)
        if context is None:
            context = original(self, srtp_profiles=srtp_profiles)
            context.set_session_cache_mode(OpenSSL.SSL.SESS_CACHE_OFF)
            # An idle connection gives its record buffers back (~40 KiB each on a seeder with
            # hundreds of mostly idle viewers; the next record allocates them again).
            context.set_mode(OpenSSL.SSL.MODE_RELEASE_BUFFERS)
            contexts[key] = context
        return context

    return _create_ssl_context


def _cpu_has_aes() -> bool:
    """AES instructions (x86 AES-NI, ARMv8 crypto extension) according to ``/proc/cpuinfo``."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


def _make_prefer_aes_gcm(original: Callable[..., Any]) -> Callable[..., Any]:
    prefer = _cpu_has_aes()

    def _create_ssl_context(self: Any, srtp_profiles: list[Any]) -> Any:
        context = original(self, srtp_profiles)
        # A context shared_certificate returns again is in use: pyOpenSSL refuses changes then.
        if prefer and not getattr(context, "_p2pml_server_preference", False):
            context.set_options(OpenSSL.SSL.OP_CIPHER_SERVER_PREFERENCE)
            context._p2pml_server_preference = True
        return context

    return _create_ssl_context


def _aes_gcm_first_usable() -> bool:
    return hasattr(_CERTIFICATE, "_create_ssl_context") and hasattr(
        OpenSSL.SSL, "OP_CIPHER_SERVER_PREFERENCE"
    )


def _shared_certificate_usable() -> bool:
    generate = _CERTIFICATE.__dict__.get("generateCertificate")
    return (
        isinstance(generate, classmethod)
        and all(hasattr(_CERTIFICATE, name) for name in ("getFingerprints", "_create_ssl_context"))
        and hasattr(OpenSSL.SSL.Context, "set_session_cache_mode")
        and hasattr(OpenSSL.SSL, "MODE_RELEASE_BUFFERS")
    )


# -- install / uninstall ---------------------------------------------------------------------------

_Patch = tuple[str, Callable[[], bool], list[tuple[Any, str, Callable[[Any], Any]]]]


def _patches() -> list[_Patch]:
    sctp = aiortc.rtcsctptransport.RTCSctpTransport
    dtls = aiortc.rtcdtlstransport.RTCDtlsTransport
    return [
        ("dtls_write_skip", _dtls_write_skip_usable, [(dtls, "_write_ssl", _make_write_ssl)]),
        (
            "stun_demux",
            _stun_demux_usable,
            [(aioice.ice.StunProtocol, "datagram_received", _make_datagram_received)],
        ),
        (
            "sack_every_second_packet",
            _sack_usable,
            [(sctp, "_handle_data", _make_handle_data), (sctp, "_send_sack", _make_send_sack)],
        ),
        (
            "transmit_scan_skip",
            _transmit_usable,
            [
                (sctp, "_transmit", _make_transmit),
                (sctp, "_receive_sack_chunk", _make_receive_sack_chunk),
                (sctp, "_t3_expired", _make_t3_expired),
            ],
        ),
        (
            "fast_data_path",
            _fast_data_path_usable,
            [
                (sctp, "_send_chunk", _make_send_chunk),
                (sctp, "_send", _make_send),
                (dtls, "_send_data", _make_send_data),
                (dtls, "_recv_next", _make_recv_next),
                (aioice.ice.Connection, "data_received", _make_connection_data_received),
                (sctp, "_t3_start", _make_t3_start),
                (sctp, "_t3_restart", _make_t3_restart),
                (_INBOUND, "add_chunk", _make_add_chunk),
                (_INBOUND, "pop_messages", _make_pop_messages),
            ],
        ),
        (
            "ice_prompt_complete",
            _ice_prompt_complete_usable,
            [
                (aioice.ice, "asyncio", lambda _original: _AsyncioForAioice()),
                (aioice.ice.Connection, "connect", _make_connect),
                (
                    aioice.ice.Connection,
                    "_check_list_maybe_complete",
                    _make_check_list_maybe_complete,
                ),
                (aioice.ice.Connection, "_check_list_maybe_fail", _make_check_list_maybe_fail),
            ],
        ),
        ("udp_gso", _gso_usable, [(sys.modules[__name__], "_send_burst", _make_send_burst)]),
        (
            "shared_certificate",
            _shared_certificate_usable,
            [
                (_CERTIFICATE, "generateCertificate", _make_generate_certificate),
                (_CERTIFICATE, "getFingerprints", _make_get_fingerprints),
                (_CERTIFICATE, "_create_ssl_context", _make_create_ssl_context),
            ],
        ),
        (
            "aes_gcm_first",
            _aes_gcm_first_usable,
            [(_CERTIFICATE, "_create_ssl_context", _make_prefer_aes_gcm)],
        ),
    ]


PATCHES = (
    "dtls_write_skip",
    "stun_demux",
    "sack_every_second_packet",
    "transmit_scan_skip",
    "fast_data_path",
    "ice_prompt_complete",
    "shared_certificate",
    "udp_gso",
    "aes_gcm_first",
)


def install(names: tuple[str, ...] = PATCHES) -> tuple[str, ...]:
    """Install the named patches (all by default); returns those now installed.

    A patch is skipped, with a warning, when aiortc/aioice are not a :data:`CHECKED` version or
    the attributes it wraps are missing. Installing twice is harmless.
    """
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown patch(es) {sorted(unknown)}; known: {PATCHES}")
    with _lock:
        if not (_version_ok(aiortc, "aiortc") and _version_ok(aioice, "aioice")):
            logger.warning(
                "aiortc %s / aioice %s not checked for speedups (%s): none installed",
                getattr(aiortc, "__version__", "?"),
                getattr(aioice, "__version__", "?"),
                CHECKED,
            )
            return installed()
        for name, usable, targets in _patches():
            if name not in names or any(f"{name}:{attr}" in _originals for _, attr, _ in targets):
                continue
            if not usable():
                logger.warning("speedup %s: attributes missing, not installed", name)
                continue
            for owner, attribute, make in targets:
                original = owner.__dict__[attribute]
                _originals[f"{name}:{attribute}"] = (owner, attribute, original)
                setattr(owner, attribute, make(original))
    return installed()


def installed() -> tuple[str, ...]:
    names = {key.split(":", 1)[0] for key in _originals}
    return tuple(name for name in PATCHES if name in names)


def uninstall() -> None:
    """Restore every original; connections made afterwards run unpatched aiortc."""
    with _lock:
        _certificates.clear()
        # Newest first: two patches may wrap one attribute (the second wraps the first's).
        for owner, attribute, original in reversed(list(_originals.values())):
            setattr(owner, attribute, original)
        _originals.clear()
