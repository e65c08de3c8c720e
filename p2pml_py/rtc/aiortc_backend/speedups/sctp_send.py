"""The SCTP send path of ``fast_data_path``: messages to chunks, chunks to datagrams, T3 timer.

A data-channel byte goes through four layers of generic code in aiortc: ``_transmit`` ->
``_send_chunk`` -> ``serialize_packet`` -> ``RTCDtlsTransport._send_data`` -> pyOpenSSL
``send`` -> ``_write_ssl`` -> ``bio_read`` -> ``RTCIceTransport._send`` -> ``Connection.sendto``
-> ``StunProtocol.send_data`` -> the UDP transport. On a plain UDP pair after the handshake,
:func:`_fast_transmit` does the same work in one synchronous function per burst
(:mod:`.sctp_packets` builds the packets, :mod:`.dtls_records` encrypts and sends them), and
:func:`_queue_message` cuts a message into aiortc's own chunks with less work.

The T3 retransmission timer, restarted by every SACK (a ``call_later`` and a ``cancel`` each
time), is re-armed lazily instead: the timer keeps its handle and, when it fires early, sleeps
again until the current deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups import dtls_records as _records
from p2pml_py.rtc.aiortc_backend.speedups._core import Names
from p2pml_py.rtc.aiortc_backend.speedups.dtls_records import (
    _BURST_BYTES,
    _RECORD,
    _send_record,
    _udp_pair,
)
from p2pml_py.rtc.aiortc_backend.speedups.sctp_packets import (
    _PADDING,
    _TSN_MASK,
    _ZERO_CHECKSUM,
    _common_header,
    _crc_extend,
    _crc_value,
    _data_packet,
    _pack_checksum,
    _pack_data,
)

# aiortc's names, bound by bind() at install time.
_DATA_CHUNK: Any = None  # aiortc.rtcsctptransport.DataChunk
_CONNECTED: Any = None  # aiortc.rtcdtlstransport.State.CONNECTED
_USERDATA = 0  # USERDATA_MAX_LENGTH
_FIRST_FRAG = 0  # SCTP_DATA_FIRST_FRAG
_LAST_FRAG = 0  # SCTP_DATA_LAST_FRAG
_UNORDERED = 0  # SCTP_DATA_UNORDERED


def bind(names: Names) -> None:
    global _DATA_CHUNK, _CONNECTED, _USERDATA, _FIRST_FRAG, _LAST_FRAG, _UNORDERED
    _DATA_CHUNK, _CONNECTED = names.data_chunk, names.connected
    _USERDATA, _FIRST_FRAG = names.userdata_max, names.first_frag
    _LAST_FRAG, _UNORDERED = names.last_frag, names.unordered


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
    # socket together (:func:`.dtls_records._send_burst`, which ``udp_gso`` replaces) once all
    # are encrypted.
    buffer = _records._burst_buffer
    send_burst = _records._send_burst
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
    lib = _records._ssl_lib
    ssl_write = lib.SSL_write
    bio_read = lib.BIO_read
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
                    send_burst(dtls, pair, buffer, sizes)  # what was encrypted goes out first
                conn._raise_ssl_error(ssl, result)  # raises what pyOpenSSL's send() would
            while True:
                if offset > _BURST_BYTES - _RECORD:
                    send_burst(dtls, pair, buffer, sizes)
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
        send_burst(dtls, pair, buffer, sizes)
    return True


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
