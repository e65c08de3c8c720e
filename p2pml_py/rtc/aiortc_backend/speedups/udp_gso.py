"""``udp_gso``: a burst of DTLS records leaves in one ``sendmsg`` with ``UDP_SEGMENT``.

On a loopback or LAN path most of a seeder's kernel time is the UDP send path, once per ~1.2 KB
datagram, and each SACK lets ``fast_data_path`` send a burst of 2-5 packets. Their DTLS records
are read back to back into one buffer, and the patch hands a run of records of one size (and a
shorter one after them) to one ``sendmsg`` with ``UDP_SEGMENT`` (Linux 4.18+ generic
segmentation offload): the kernel, or the network card, cuts it into exactly the datagrams one
``sendto`` each would have made, so receivers see no difference. The call goes through a socket
object on a duplicate of the UDP transport's descriptor (closed when the transport's connection
is lost), and only while the transport is open with nothing queued in it. A failed call sends
nothing, and the transport then sends the same records its own way (it queues what the socket
cannot take now); a route that refuses GSO is not tried again. Measured here: 8.4-9.4 -> 3.3-4.8
us per datagram for bursts of 4 (kernel and call), and in the benchmark (30 receivers) 0.039 ->
0.036 s/MB. Linux only (:func:`_gso_usable`); elsewhere the patch is skipped.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from struct import pack
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups import dtls_records
from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, target

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

_ssl_ffi: Any = None  # pyOpenSSL's cffi ffi, bound by probe()


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


def probe(names: Names) -> list[Target]:
    global _ssl_ffi
    _ssl_ffi = names.ssl_ffi
    return [target(dtls_records, "_send_burst", _make_send_burst)]


PATCH = Patch("udp_gso", probe, applicable=_gso_usable)
