"""DTLS records through pyOpenSSL's cffi binding, for ``fast_data_path`` (and ``udp_gso``).

pyOpenSSL's ``Connection.send`` runs its whole error check even on success, and aiortc then
reads the record back with ``bio_read``, which raises ``WantReadError`` once the BIO is empty.
Here the record is written with ``SSL_write`` and read back with ``BIO_read`` into one reused
buffer (the cffi binding of OpenSSL's C API that pyOpenSSL itself calls), and handed to the UDP
transport's ``sendto``; receiving mirrors it with ``BIO_write`` / ``SSL_read``. Errors are raised
exactly as pyOpenSSL's ``send()`` raises them. All of it only on a selected ICE pair that is a
plain UDP socket (:func:`_udp_pair`), never through TURN, so nothing here suspends.
"""

from __future__ import annotations

from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names

#: Bytes read from OpenSSL's memory BIO at a time: one DTLS record, as aiortc's ``bio_read(1500)``.
_RECORD = 1500
#: Bytes of the buffer a burst's records are read into (a burst is 2-5 packets; more are sent
#: in several calls).
_BURST_BYTES = 16 * _RECORD

# Bound by bind(), at install time: pyOpenSSL's cffi handles, aiortc's and aioice's names, and
# the cffi buffers the fast paths read records into (one event loop thread per process).
_ssl_ffi: Any = None
_ssl_lib: Any = None
_CONNECTED: Any = None  # aiortc.rtcdtlstransport.State.CONNECTED
_STUN_PROTOCOL: Any = None  # aioice.ice.StunProtocol: a host candidate's plain UDP socket
_out_buffer: Any = None
_in_buffer: Any = None
_burst_buffer: Any = None
_pending: Any = None  # the unused data pointer of BIO_get_mem_data


def bind(names: Names) -> None:
    """Bind the names above (the buffers once per process)."""
    global _ssl_ffi, _ssl_lib, _CONNECTED, _STUN_PROTOCOL
    global _out_buffer, _in_buffer, _burst_buffer, _pending
    _ssl_ffi, _ssl_lib = names.ssl_ffi, names.ssl_lib
    _CONNECTED, _STUN_PROTOCOL = names.connected, names.stun_protocol
    if _out_buffer is None:
        _out_buffer = _ssl_ffi.new("unsigned char[]", _RECORD)
        _in_buffer = _ssl_ffi.new("unsigned char[]", _RECORD)
        _burst_buffer = _ssl_ffi.new("unsigned char[]", _BURST_BYTES)
        _pending = _ssl_ffi.new("char **")


def _udp_pair(dtls: Any) -> Any:
    """The selected ICE pair when sending on it is a bare ``sendto`` (not TURN), else None."""
    try:
        pair = dtls._transport._connection._nominated.get(1)
    except AttributeError:
        return None
    if pair is None or type(pair.protocol) is not _STUN_PROTOCOL:
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
