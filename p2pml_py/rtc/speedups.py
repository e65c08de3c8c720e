"""Small, guarded patches of aiortc/aioice internals that cut the seeder's CPU cost per byte.

aiortc moves data-channel bytes in SCTP packets of at most 1189 bytes (``SCTP_MAX_PACKET_LENGTH``,
``aiortc/rtcsctptransport.py``), each through DTLS (pyOpenSSL) and one UDP ``sendto``, and every
packet the remote receives is acknowledged by a SACK that the sender must decrypt and process. So
the cost is per packet, and these patches remove per-packet work that does nothing useful. None of
them changes what a browser sees on the wire beyond what RFC 9260 allows; none can drop data.

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
    ``_send_sack``). RFC 9260 section 6.2 allows a receiver to acknowledge every second packet,
    and browsers' dcSCTP does so. The patch skips the SACK of a packet when the next datagram of
    the same connection is already queued (it will be acknowledged together with that one, in
    the same event-loop turn), at most one in a row, with a 20 ms timer as a safety net. This
    halves the SACKs an aiortc *receiver* sends -- which is what a seeder serving aiortc viewers
    spends a third of its time decrypting and processing. It takes effect on uvloop, which reads
    every waiting datagram in one loop turn; asyncio's default loop reads one datagram per turn,
    so the next packet is rarely queued yet and the patch seldom defers anything there.
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

Each patch is installed only on the versions whose source was read for it (:data:`CHECKED`), and
only if the attributes it relies on exist; :func:`install` reports which ones it installed and
:func:`uninstall` restores the originals.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import aioice
import aioice.ice
import aiortc
import aiortc.rtcdtlstransport
import aiortc.rtcsctptransport
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


def _more_queued(sctp: Any) -> bool:
    """True when the next datagram of this connection is already waiting to be processed."""
    try:
        queue = sctp.transport.transport._connection._queue
        return bool(queue.qsize())
    except AttributeError:
        return False


def _make_handle_data(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _handle_data(self: Any, data: bytes) -> None:
        defer = _more_queued(self) and not getattr(self, "_p2pml_sack_deferred", False)
        self._p2pml_defer_sack = defer
        try:
            await original(self, data)
        finally:
            self._p2pml_defer_sack = False

    return _handle_data


def _make_send_sack(original: Callable[..., Any]) -> Callable[..., Any]:
    def _flush(self: Any) -> None:
        self._p2pml_sack_timer = None
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            task = asyncio.ensure_future(self._send_sack())
            task.add_done_callback(_consume)

    async def _send_sack(self: Any) -> None:
        if getattr(self, "_p2pml_defer_sack", False):
            # _sack_needed stays True: the packet already queued sends one SACK for both.
            self._p2pml_sack_deferred = True
            if getattr(self, "_p2pml_sack_timer", None) is None:
                self._p2pml_sack_timer = asyncio.get_running_loop().call_later(
                    SACK_DELAY, _flush, self
                )
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
    try:
        pair = sctp.transport.transport._connection._nominated.get(1)
    except AttributeError:
        return False
    return pair is not None and type(pair.protocol) is aioice.ice.StunProtocol


def _make_transmit(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _transmit(self: Any) -> None:
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
    ]


PATCHES = ("dtls_write_skip", "stun_demux", "sack_every_second_packet", "transmit_scan_skip")


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
        for owner, attribute, original in _originals.values():
            setattr(owner, attribute, original)
        _originals.clear()
