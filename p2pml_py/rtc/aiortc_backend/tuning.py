"""Process-wide knobs that make an aiortc seeder faster. All are opt-in; call them once at start-up.

* :func:`install_uvloop` -- run asyncio on uvloop when it is installed (``pip install
  p2pml-py[fast]``). aiortc's data path is a chain of coroutines and one ``sendto`` per SCTP packet
  (~1.2 KB), so the event loop's own overhead is a large share of the cost (INTEROP-NOTES
  "Measured on loopback": 5-10 MB/s on the default loop, 15-20 MB/s on uvloop).
* :func:`set_udp_buffer_sizes` -- bigger kernel buffers for the UDP sockets aioice opens. The
  default receive buffer (``net.core.rmem_default``, 208 KB) overflows when many peers' packets
  arrive between two loop turns; every lost packet costs an SCTP retransmission, and a lost
  packet at the end of a burst waits for the T3 timer (``SCTP_RTO_MIN`` = 1 s) -- a visible stall.

Both return whether they took effect, so a caller can log it. Neither changes what goes on the
wire. :func:`tune_process` applies them and :mod:`p2pml_py.rtc.aiortc_backend.speedups` in one call -- what a
seeder's ``main()`` should do before ``asyncio.run``.

How to patch aioice, and why it is small: aioice creates each host candidate's socket in
``Connection.gather_candidates`` and then sets ``SO_RCVBUF`` itself to
``aioice.turn.UDP_SOCKET_BUFFER_SIZE`` (256 KiB, capped by ``net.core.rmem_max``); it offers no
hook. :func:`set_udp_buffer_sizes` wraps ``aioice.ice.Connection.gather_candidates``: after the
original returns -- before any DTLS or SCTP packet can flow -- it sets ``SO_RCVBUF``/``SO_SNDBUF``
(the ``*FORCE`` variants when the process may, so root passes ``rmem_max``) on the socket of every
protocol in ``Connection._protocols``. The wrapper is installed once per process, only on the
aioice versions it was checked against (``udp_buffers`` in
:data:`p2pml_py.rtc.aiortc_backend.versions.CHECKED`) and only if ``gather_candidates`` is there;
otherwise aioice is left as it is, with one warning. It can be removed again
(:func:`reset_udp_buffer_sizes`).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from p2pml_py.rtc.aiortc_backend import versions

__all__ = [
    "GC_THRESHOLDS",
    "install_uvloop",
    "reset_udp_buffer_sizes",
    "set_udp_buffer_sizes",
    "tune_gc",
    "tune_process",
    "tune_process_unless_disabled",
    "udp_buffer_sizes",
    "uvloop_available",
]

logger = logging.getLogger(__name__)

#: Default buffer size :func:`set_udp_buffer_sizes` asks for: 4 MiB each way, enough for a
#: burst of ~3500 full-size SCTP packets.
DEFAULT_UDP_BUFFER = 4 * 1024 * 1024

_lock = threading.Lock()
_sizes: tuple[int, int] | None = None  # (rcvbuf, sndbuf) while the patch is active
_original_gather: Callable[[Any], Coroutine[Any, Any, None]] | None = None
_patched_class: Any = None  # aioice.ice.Connection while the wrapper is installed


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def install_uvloop() -> bool:
    """Make new event loops uvloop loops (``asyncio.run`` after this uses uvloop).

    Returns False, changing nothing, when uvloop is not installed. Call it before the loop
    starts; an already running loop is not replaced.
    """
    try:
        import uvloop
    except ImportError:
        logger.info("uvloop is not installed; staying on the default asyncio loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _connection_class() -> tuple[Any, str | None]:
    """(``aioice.ice.Connection``, None) when it has the method the wrapper wraps, else (None,
    why not)."""
    try:
        connection = importlib.import_module("aioice.ice").Connection
    except (ImportError, AttributeError) as exc:
        return None, f"aioice.ice.Connection not found ({exc})"
    if not callable(vars(connection).get("gather_candidates")):
        return None, "aioice.ice.Connection.gather_candidates is missing"
    return connection, None


def _set_buffers(sock: socket.socket, rcvbuf: int, sndbuf: int) -> None:
    for force, plain, size in (
        (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF, rcvbuf),
        (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF, sndbuf),
    ):
        if size <= 0:
            continue
        # The *FORCE variants pass net.core.[rw]mem_max but need CAP_NET_ADMIN; the plain ones
        # are capped silently at that maximum.
        if force is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)
                continue
            except OSError:
                pass
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
        except OSError as exc:
            logger.debug("could not set socket buffer to %d: %s", size, exc)


async def _gather_candidates(self: Any) -> None:
    assert _original_gather is not None
    await _original_gather(self)
    sizes = _sizes
    if sizes is None:
        return
    for protocol in getattr(self, "_protocols", ()):
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            _set_buffers(sock, *sizes)


def set_udp_buffer_sizes(
    rcvbuf: int = DEFAULT_UDP_BUFFER, sndbuf: int = DEFAULT_UDP_BUFFER
) -> bool:
    """From now on, every UDP socket aioice opens gets these buffer sizes (bytes; 0 = leave).

    Returns False, changing nothing, with one warning, on an aioice version this patch was not
    checked against or without the method it wraps. Calling it again only changes the sizes.
    """
    global _sizes, _original_gather, _patched_class
    if rcvbuf < 0 or sndbuf < 0:
        raise ValueError("buffer sizes must be >= 0")
    with _lock:
        reason = versions.unsupported("udp_buffers")
        connection = _patched_class
        if reason is None and connection is None:
            connection, reason = _connection_class()
        if reason is not None:
            logger.warning("UDP buffer sizes left as aioice sets them: %s", reason)
            return False
        if _original_gather is None:
            _original_gather = vars(connection)["gather_candidates"]
            _patched_class = connection
            connection.gather_candidates = _gather_candidates
        _sizes = (rcvbuf, sndbuf)
    return True


def reset_udp_buffer_sizes() -> None:
    """Undo :func:`set_udp_buffer_sizes` for sockets opened from now on."""
    global _sizes, _original_gather, _patched_class
    with _lock:
        _sizes = None
        if _original_gather is not None:
            _patched_class.gather_candidates = _original_gather
            _original_gather = _patched_class = None


def udp_buffer_sizes(sock: socket.socket) -> tuple[int, int]:
    """The kernel's (SO_RCVBUF, SO_SNDBUF) of ``sock`` (Linux reports twice the size asked)."""
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


#: Garbage-collector thresholds :func:`tune_process` sets (CPython's default is (700, 10, 10)).
#: A seeder makes a DATA chunk object per ~1.2 KB it sends, each living for a round trip, so at
#: the default a collection ran every few hundred packets and promoted chunks still in flight.
#: Measured in the benchmark (30 receivers): 4-5 % of the seeder's CPU in the collector with
#: the defaults, 0.5-0.8 % with these plus :func:`gc.freeze` after the warm-up.
GC_THRESHOLDS = (20000, 20, 100)


def tune_process(
    *,
    uvloop: bool = True,
    udp_buffer: int = DEFAULT_UDP_BUFFER,
    speedups: bool = True,
    gc_thresholds: tuple[int, int, int] | None = GC_THRESHOLDS,
) -> dict[str, object]:
    """Everything that makes this process a faster seeder; call once, before ``asyncio.run``.

    Returns what took effect, e.g. ``{"uvloop": True, "udp_buffer": 4194304, "speedups":
    ("dtls_write_skip", ...), "warm_up_ms": 71.3, "gc_thresholds": (20000, 20, 100)}``, for the
    caller to log. ``gc_thresholds=None`` leaves the garbage collector as it is.
    """
    from p2pml_py.rtc.aiortc_backend import speedups as speedups_module

    done: dict[str, object] = {"uvloop": install_uvloop() if uvloop else False}
    done["udp_buffer"] = (
        udp_buffer if udp_buffer and set_udp_buffer_sizes(udp_buffer, udp_buffer) else 0
    )
    done["speedups"] = speedups_module.install() if speedups else ()
    if speedups:
        done["warm_up_ms"] = round(warm_up(), 1)
    if gc_thresholds is not None:
        tune_gc(gc_thresholds)
        done["gc_thresholds"] = gc_thresholds
    logger.info("process tuning: %s", done)
    return done


#: Upper bound of the warm-up connection (it takes 50-60 ms of CPU on loopback).
WARM_UP_TIMEOUT = 5.0


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Freeze what the process made so far (modules, the warm-up: it lives as long as the
    process, so the collector need not walk it again) and set ``thresholds``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def warm_up(*, connection: bool = True) -> float:
    """Do now the one-time work of this process's first WebRTC connection; returns its ms.

    aiortc imports part of ``cryptography`` lazily, on the first certificate it makes, and a
    process's first certificate and OpenSSL context cost more than later ones. With the
    ``shared_certificate`` speedup the certificate made here is the one every connection uses.
    With ``connection`` (and no event loop running in this thread), one data channel is then
    opened between two in-process peers on 127.0.0.1 and a message sent over it, which runs
    every other first-time path once (SDP parsing, ICE, the DTLS handshake, SCTP). Measured in
    the benchmark: the first connection of a fresh process took 130-175 ms from offer to open,
    later ones 25-45 ms; after this warm-up the first one is like the later ones. Best effort:
    a failure is logged and ignored (the first connection then pays).
    """
    started = time.perf_counter()
    try:
        from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate

        certificate = RTCCertificate.generateCertificate()
        certificate.getFingerprints()
        certificate._create_ssl_context(srtp_profiles=SRTP_PROFILES)
    except Exception as exc:
        logger.warning("WebRTC warm-up failed (the first connection will be slower): %r", exc)
        return (time.perf_counter() - started) * 1000
    if connection:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                asyncio.run(_warm_up_connection())
            except Exception as exc:
                logger.warning("WebRTC warm-up connection failed (ignored): %r", exc)
        else:
            logger.debug("warm-up connection skipped: an event loop runs in this thread")
    return (time.perf_counter() - started) * 1000


async def _warm_up_connection() -> None:
    from p2pml_py.rtc.aiortc_backend.loopback import loopback_pair

    async with asyncio.timeout(WARM_UP_TIMEOUT):
        first, second = await loopback_pair()
        try:
            received = asyncio.Event()
            second.set_receiver(lambda _data: received.set())
            await first.send(b"warm-up")
            await received.wait()
        finally:
            await first.aclose()
            await second.aclose()


#: Set to 1 (``p2pml-py --no-tuning`` does) to run on plain asyncio and unpatched aiortc.
NO_TUNING_ENV = "P2PML_NO_TUNING"


def tune_process_unless_disabled() -> dict[str, object] | None:
    """:func:`tune_process`, unless ``P2PML_NO_TUNING`` is set (to anything but ``0``)."""
    if os.environ.get(NO_TUNING_ENV, "") not in ("", "0"):
        logger.info("process tuning disabled by %s", NO_TUNING_ENV)
        return None
    return tune_process()
