"""The SCTP receive path of ``fast_data_path``: SACKs, in-order DATA, and reassembly.

aiortc handles every received packet in its DTLS transport's reader task, through generic code
that suspends at every step. The functions here do aiortc's handling of the two packets a data
transfer is made of -- a SACK (:func:`_sack_core`) and a DATA packet that arrives in order
(:func:`_fast_data`, :func:`_data_sync`) -- without suspending where aiortc would not need to,
and leave every other packet, unchanged, to aiortc's code.

SACKs with gap blocks (a receiver missed a packet) are handled the same way when the blocks are
well formed: aiortc builds a set of every TSN they cover and walks the sent queue from its start
twice per SACK, so after a loss every SACK costs the whole window until the retransmission
arrives; the sent queue holds consecutive TSNs, so :func:`_gap_blocks` indexes it and visits
only the blocks and the holes between them, with the same misses, marks, flight size and fast
recovery as aiortc. A SACK that empties the outbound queue also turns the channels' next queued
messages into chunks at once (:func:`_flush_channels`, aiortc's ``_data_channel_flush``).

``InboundStream.pop_messages`` walks the whole reassembly list from its start after every DATA
chunk, so a 64 KiB message (56 fragments) costs ~1,600 steps; the reassembly patch skips the walk
when the chunk just added was appended after every buffered one and is not a message's last
fragment -- then no message can have become complete (one needs its last fragment, and none is
buffered after this chunk), and ``pop_messages`` left nothing complete behind the last time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from struct import Struct
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names
from p2pml_py.rtc.aiortc_backend.speedups._core import originals as _originals
from p2pml_py.rtc.aiortc_backend.speedups.dtls_records import _udp_pair, _write_record
from p2pml_py.rtc.aiortc_backend.speedups.sack_every_second_packet import _defer_sack
from p2pml_py.rtc.aiortc_backend.speedups.sctp_packets import (
    _TSN_HALF,
    _TSN_MASK,
    _ZERO_CHECKSUM,
    _checked,
    _control_packet,
    _crc_value,
    _pack_sack,
    _unpack_checksum,
    _unpack_data,
    _unpack_sack,
    _unpack_tag,
)
from p2pml_py.rtc.aiortc_backend.speedups.sctp_send import _fast_transmit, _queue_message

# aiortc's names, bound by bind() at install time.
_DATA_CHUNK: Any = None  # aiortc.rtcsctptransport.DataChunk
_ESTABLISHED: Any = None  # RTCSctpTransport.State.ESTABLISHED
_CONNECTED: Any = None  # aiortc.rtcdtlstransport.State.CONNECTED
_DCEP = 0  # WEBRTC_DCEP
_USERDATA = 0  # USERDATA_MAX_LENGTH
_LAST_FRAG = 0  # SCTP_DATA_LAST_FRAG


def bind(names: Names) -> None:
    global _DATA_CHUNK, _ESTABLISHED, _CONNECTED, _DCEP, _USERDATA, _LAST_FRAG
    _DATA_CHUNK, _ESTABLISHED, _CONNECTED = names.data_chunk, names.established, names.connected
    _DCEP, _USERDATA, _LAST_FRAG = names.dcep, names.userdata_max, names.last_frag


#: Datagrams the synchronous receive path handled in this process, by kind (diagnostics).
SYNC_HANDLED = {"sack": 0, "data": 0, "flush": 0}

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
