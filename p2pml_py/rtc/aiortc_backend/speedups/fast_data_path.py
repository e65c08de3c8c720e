"""``fast_data_path``: aiortc's per-packet data path, done in fewer and synchronous steps.

On a selected ICE pair that is a plain UDP socket (``aioice.ice.StunProtocol``, never TURN),
after the DTLS handshake and with no RTP on the transport:

* sending -- :mod:`.sctp_send`: a message becomes aiortc's own DATA chunks with less work, and
  each burst the congestion window allows is built (:mod:`.sctp_packets`), encrypted and sent
  (:mod:`.dtls_records`) in one synchronous function; the T3 timer is re-armed lazily;
* receiving -- here and in :mod:`.sctp_receive`: aioice hands every datagram to the DTLS
  transport through an ``asyncio.Queue``, so each one costs a task wake-up and a chain of
  coroutine resumptions. When that reader task is idle (waiting, nothing queued),
  ``Connection.data_received`` now decrypts a DTLS datagram at once and handles a SACK
  (refilling the congestion window, and the channels' next messages when the outbound queue
  empties) or an in-order DATA packet that completes no message; everything else is queued,
  already decrypted, in arrival order, for the task, which still runs aiortc's code for it.
  Whatever cannot be finished without suspending is queued as a follow-up, in order. (Queued
  as a follow-up instead, the channel refill left the reader task busy, and every datagram of
  that association arriving meanwhile -- ~20 per follow-up at 30 receivers -- went the slow
  way.) The reader task's own ``_recv_next`` takes the same short cuts.

Every failure falls back to, or raises exactly like, the original code; the bytes on the wire
are the same as aiortc's, and no data can be dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups import dtls_records, sctp_receive, sctp_send
from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, need, target
from p2pml_py.rtc.aiortc_backend.speedups.dtls_records import (
    _RECORD,
    _decrypt,
    _decrypted_nothing,
    _flush_records,
    _tuned_dtls,
    _udp_pair,
)
from p2pml_py.rtc.aiortc_backend.speedups.sctp_receive import (
    _SACK_FOLLOW_UP,
    _SACK_NOT_MINE,
    SYNC_HANDLED,
    _data_sync,
    _fast_data,
    _fast_sack,
    _sack_core,
    _sack_follow_up,
)

# Bound by probe() at install time.
_SCTP: Any = None  # aiortc.rtcsctptransport.RTCSctpTransport
_CONNECTED: Any = None  # aiortc.rtcdtlstransport.State.CONNECTED
_ssl_ffi: Any = None
_ssl_lib: Any = None
_in_buffer: Any = None  # dtls_records' buffers
_pending: Any = None


class _Plain(bytes):
    """A DTLS record that the synchronous path decrypted, queued in its arrival order."""


class _FollowUp(bytes):
    """Queued after a SACK that the synchronous path handled up to an ``await``."""


class _Closed(bytes):
    """Queued when the synchronous path read the remote's close_notify."""


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


#: The RTCSctpTransport methods the fast paths call (besides those they replace).
_SCTP_CALLED = (
    "_transmit",
    "_receive_sack_chunk",
    "_update_rto",
    "_update_advanced_peer_ack_point",
    "_data_channel_flush",
    "_get_inbound_stream",
    "_receive",
    "_reset_deferred_streams",
    "_maybe_abandon",
    "_t3_cancel",
    "_t3_expired",
    "_send_sack",
    "_handle_data",
)


def probe(names: Names) -> list[Target]:
    global _SCTP, _CONNECTED, _ssl_ffi, _ssl_lib, _in_buffer, _pending
    sctp, dtls, inbound, connection = names.sctp, names.dtls, names.inbound_stream, names.connection
    need(sctp, *_SCTP_CALLED)
    need(dtls, "_write_ssl")
    _SCTP, _CONNECTED = sctp, names.connected
    _ssl_ffi, _ssl_lib = names.ssl_ffi, names.ssl_lib
    _in_buffer, _pending = dtls_records._in_buffer, dtls_records._pending
    return [
        target(sctp, "_send_chunk", sctp_send._make_send_chunk),
        target(sctp, "_send", sctp_send._make_send),
        target(dtls, "_send_data", sctp_send._make_send_data),
        target(dtls, "_recv_next", _make_recv_next),
        target(connection, "data_received", _make_connection_data_received),
        target(sctp, "_t3_start", sctp_send._make_t3_start),
        target(sctp, "_t3_restart", sctp_send._make_t3_restart),
        target(inbound, "add_chunk", sctp_receive._make_add_chunk),
        target(inbound, "pop_messages", sctp_receive._make_pop_messages),
    ]


PATCH = Patch("fast_data_path", probe)
