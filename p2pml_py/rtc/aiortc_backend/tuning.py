"""Process-wide knobs that make an aiortc seeder faster (opt-in: call them once at start-up),
and the consent patch that releases a silent remote (applied by the factory, see the end).

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

One more patch is not about speed and not opt-in: :func:`set_consent_timeout`, which the factory
calls for every connection, so that a remote that stops answering ICE consent checks (killed,
unplugged: no close ever comes) is released after ``RtcConfig.consent_timeout`` instead of aioice's
~30 s (``CONSENT_FAILURES`` x ``CONSENT_INTERVAL``: 6 checks 5 s apart). aioice runs consent in
``Connection.query_consent``, started when ``connect()`` completes, with its policy in module
constants; :func:`enable_consent_timeout` replaces that method with checks whose policy is
:class:`ConsentClock`, run from a loop timer (no task waits between two checks), and which, for a
connection without a timeout, runs aioice's own loop. When the remote is given up, the checks close
the aioice connection as aioice's does (its sockets first), aiortc turns that into ICE state
"failed", and the data-channel link closes with
:class:`~p2pml_py.base.errors.PeerUnresponsiveError` (:func:`consent_expired` tells it apart from
other failures). Same rules as the UDP buffer patch: installed once, only on the checked versions
(``consent`` in :data:`~p2pml_py.rtc.aiortc_backend.versions.CHECKED`), otherwise one warning and
aioice's behaviour.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from p2pml_py.rtc.aiortc_backend import versions

__all__ = [
    "CONSENT_INTERVAL",
    "GC_THRESHOLDS",
    "ConsentClock",
    "consent_expired",
    "enable_consent_timeout",
    "ice_connection",
    "install_uvloop",
    "quiet_closed_transport",
    "reset_consent_timeout",
    "reset_udp_buffer_sizes",
    "set_consent_timeout",
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


# -- ICE consent: a remote that stops answering is released (RtcConfig.consent_timeout) --------

#: Seconds between two consent checks of one connection, before the 0.8-1.2 randomization RFC
#: 7675 section 5.1 asks for (so that connections made together do not check together). 2.5 s
#: is how often Chrome pings a stable connection (libwebrtc ``p2p_constants.h``
#: ``STRONG_AND_STABLE_WRITABLE_CONNECTION_PING_INTERVAL``; its pings are its consent checks),
#: so a browser peer gets from us what it sends us. RFC 7675 section 5.1 asks for 4-6 s (5 s
#: randomized, never under 4 s); at that pace two checks missed in a row take up to 13.5 s,
#: longer than a dead peer may hold a slot. A check is one ~100-byte request and its answer.
CONSENT_INTERVAL = 2.5
#: One check is one binding request, sent again once after aioice's 0.5 s RTO (the smallest
#: RFC 8445 section 14.3 allows) and missed when neither is answered within 1.5 s: one lost
#: datagram is not a miss, and a check is over before the next one starts (>= 2 s later).
CONSENT_RETRANSMISSIONS = 1
#: A remote counts as gone only after this many checks in a row were missed (and
#: ``consent_timeout`` passed since its last answer). A miss is a whole transaction that failed
#: -- its retransmission was really sent and waited for -- so a stall of our own event loop,
#: during which no check goes out, never looks like the remote's silence.
CONSENT_MIN_MISSES = 2

_CONSENT_TIMEOUT_ATTR = "_p2pml_consent_timeout"  # on an aioice Connection: seconds (float)
_CONSENT_EXPIRED_ATTR = "_p2pml_consent_expired"  # set when our check loop gave the remote up
_consent_rng = random.Random()
_original_query_consent: Callable[[Any], Coroutine[Any, Any, None]] | None = None
_consent_class: Any = None  # aioice.ice.Connection while query_consent is replaced
_consent_refused: str | None = None  # why the patch cannot be installed (warned once)
_transaction_error: type[BaseException] = Exception  # aioice.stun.TransactionError once probed


class ConsentClock:
    """When to check consent and when it has expired, for one connection (sans-I/O: the caller
    passes the time in and does the checks).

    A remote is gone once it answered none of our checks for ``timeout`` seconds *and* the last
    :data:`CONSENT_MIN_MISSES` checks were missed. While it answers, nothing expires however
    idle the connection is.
    """

    __slots__ = ("_rng", "answers", "interval", "last_answer", "misses", "next_check", "timeout")

    def __init__(self, timeout: float, now: float, rng: random.Random | None = None) -> None:
        self.timeout = timeout
        self.interval = CONSENT_INTERVAL
        self.last_answer = now  # connect() just completed: ICE checks were answered
        self.answers = 0
        self.misses = 0  # in a row, since the last answer
        self._rng = rng or _consent_rng
        self.next_check = now + self._spacing()

    def _spacing(self) -> float:
        return self.interval * (0.8 + 0.4 * self._rng.random())

    def check_sent(self, now: float) -> None:
        """A check starts now; the next one is due one randomized interval later."""
        self.next_check = now + self._spacing()

    def answered(self, now: float) -> None:
        self.last_answer = max(self.last_answer, now)
        self.answers += 1
        self.misses = 0

    def missed(self, sent_at: float) -> None:
        """The check sent at ``sent_at`` got no answer (a check older than the latest answer
        tells nothing new)."""
        if sent_at >= self.last_answer:
            self.misses += 1

    def silent_for(self, now: float) -> float:
        return now - self.last_answer

    def expired(self, now: float) -> bool:
        return self.misses >= CONSENT_MIN_MISSES and now >= self.last_answer + self.timeout

    def give_up_at(self) -> float | None:
        """When consent expires unless an answer comes first; None while fewer than
        :data:`CONSENT_MIN_MISSES` checks were missed in a row."""
        if self.misses >= CONSENT_MIN_MISSES:
            return self.last_answer + self.timeout
        return None

    def wake_at(self) -> float:
        """When the check loop has something to do: the next check, or the expiry."""
        give_up = self.give_up_at()
        return self.next_check if give_up is None else min(self.next_check, give_up)


def _consent_names() -> tuple[Any, type[BaseException] | None, str | None]:
    """(``aioice.ice.Connection``, ``aioice.stun.TransactionError``, None) when every name the
    check loop uses is there, else (None, None, why not)."""
    try:
        ice = importlib.import_module("aioice.ice")
        error = importlib.import_module("aioice.stun").TransactionError
        connection = ice.Connection
        request = ice.StunProtocol.request
    except (ImportError, AttributeError) as exc:
        return None, None, f"aioice names not found ({exc})"
    for name in ("query_consent", "build_request", "close"):
        if not callable(vars(connection).get(name)):
            return None, None, f"aioice.ice.Connection.{name} is missing"
    parameters = inspect.signature(request).parameters
    if not {"integrity_key", "retransmissions"} <= set(parameters):
        return None, None, "aioice.ice.StunProtocol.request takes other arguments"
    return connection, error, None


def enable_consent_timeout() -> bool:
    """Replace aioice's consent loop (``Connection.query_consent``) with ours, once per process.

    Ours runs only for connections :func:`set_consent_timeout` marked; any other keeps aioice's
    own (6 missed checks 5 s apart, ~30 s). Returns False, changing nothing, with one warning per
    process, on an aiortc/aioice version the loop was not checked against (``consent`` in
    :data:`~p2pml_py.rtc.aiortc_backend.versions.CHECKED`) or without a name it uses: consent then
    expires after aioice's ~30 s, as before.
    """
    global _original_query_consent, _consent_class, _consent_refused, _transaction_error
    with _lock:
        if _original_query_consent is not None:
            return True
        if _consent_refused is not None:
            return False
        reason = versions.unsupported("consent")
        connection: Any = None
        error: type[BaseException] | None = None
        if reason is None:
            connection, error, reason = _consent_names()
        if reason is not None or connection is None or error is None:
            _consent_refused = reason or "aioice names not found"
            logger.warning(
                "dead peers are released after aioice's ~30 s consent expiry, not "
                "consent_timeout: %s",
                _consent_refused,
            )
            return False
        _transaction_error = error
        _original_query_consent = vars(connection)["query_consent"]
        _consent_class = connection
        connection.query_consent = _query_consent
    return True


_quiet_state: str | None = None  # "installed", or why not


def quiet_closed_transport() -> bool:
    """End aiortc's fire-and-forget SCTP sends quietly once the transport under them is closed.

    aiortc starts ``RTCSctpTransport._data_channel_flush`` (on every ``send``, on a channel's
    open, when the association is established) and ``_transmit`` (fast retransmit) with
    ``asyncio.ensure_future`` and never awaits them. When the remote vanished and its DTLS
    transport closed (consent expired) while the association still looks established, they raise
    ``ConnectionError('Cannot send data, not connected')`` that nobody retrieves, and asyncio
    logs "Task exception was never retrieved" (seen in the soak run, issue 17). The association
    is going away anyway -- the transport's close is what the session reports -- so the wrappers
    end such a call at that error. Installed once per process, on the aiortc versions listed for
    ``quiet_sctp`` in :data:`~p2pml_py.rtc.aiortc_backend.versions.CHECKED`; otherwise one
    warning and aiortc is left alone."""
    global _quiet_state
    with _lock:
        if _quiet_state is not None:
            return _quiet_state == "installed"
        reason = versions.unsupported("quiet_sctp")
        sctp: Any = None
        if reason is None:
            try:
                sctp = importlib.import_module("aiortc.rtcsctptransport").RTCSctpTransport
            except (ImportError, AttributeError) as exc:
                reason = f"aiortc.rtcsctptransport.RTCSctpTransport not found ({exc})"
        names = ("_data_channel_flush", "_transmit")
        if reason is None and not all(
            inspect.iscoroutinefunction(getattr(sctp, n, None)) for n in names
        ):
            reason = "RTCSctpTransport._data_channel_flush/_transmit are not coroutines"
        if reason is not None:
            _quiet_state = reason
            logger.warning(
                "aiortc sends on a closed transport may log unretrieved task errors: %s", reason
            )
            return False
        for name in names:
            setattr(sctp, name, _quiet(getattr(sctp, name)))
        _quiet_state = "installed"
    return True


def _quiet(method: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Any]:
    async def quiet(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except ConnectionError as exc:
            logger.debug("SCTP send on a closed transport ended: %s", exc)

    quiet.__wrapped__ = method  # type: ignore[attr-defined]
    return quiet


def reset_consent_timeout() -> None:
    """Undo :func:`enable_consent_timeout` for connections made from now on (and forget a
    refusal, so that the next call probes again)."""
    global _original_query_consent, _consent_class, _consent_refused
    with _lock:
        _consent_refused = None
        if _original_query_consent is not None:
            _consent_class.query_consent = _original_query_consent
            _original_query_consent = _consent_class = None


def ice_connection(pc: Any) -> Any:
    """The aioice ``Connection`` under an aiortc ``RTCPeerConnection`` (private attributes of
    aiortc; the version gate covers them), or None before it has one."""
    try:
        return pc.sctp.transport.transport.iceGatherer._connection
    except AttributeError:
        return None


def set_consent_timeout(pc: Any, timeout: float) -> bool:
    """Have ``pc``'s remote released once it answered no consent check for ``timeout`` s.

    Call it before ICE can complete (the check loop reads it when it starts): right after
    ``createDataChannel`` for an offer, right after applying the remote offer for an answer.
    False (aioice's own expiry stays) when the patch cannot be installed or ``pc`` has no ICE
    connection yet.
    """
    if not enable_consent_timeout():
        return False
    connection = ice_connection(pc)
    if connection is None:
        return False
    setattr(connection, _CONSENT_TIMEOUT_ATTR, float(timeout))
    return True


def consent_expired(pc: Any) -> float | None:
    """Seconds the remote had been silent when our check loop gave it up; None when it did not
    (the connection failed or closed otherwise, or runs aioice's own loop)."""
    connection = ice_connection(pc)
    silence = getattr(connection, _CONSENT_EXPIRED_ATTR, None) if connection else None
    return float(silence) if silence is not None else None


async def _consent_check(connection: Any) -> bool | None:
    """One consent check on every nominated pair (one per component: a data channel has one):
    True if any was answered, None when there was nothing to check."""

    async def check(pair: Any) -> bool:
        request = connection.build_request(pair, nominate=False)
        try:
            await pair.protocol.request(
                request,
                pair.remote_addr,
                integrity_key=connection.remote_password.encode("utf8"),
                retransmissions=CONSENT_RETRANSMISSIONS,
            )
        except _transaction_error:
            return False
        return True

    pairs = list(connection._nominated.values())
    if not pairs:
        return None  # aioice's own loop checks nothing then either
    return any(await asyncio.gather(*(check(pair) for pair in pairs)))


async def _query_consent(self: Any) -> None:
    """``aioice.ice.Connection.query_consent``, for connections with a consent timeout.

    aioice runs this as ``_query_consent_task`` once ``connect()`` completes. For a connection
    with a timeout it only arms a :class:`_ConsentChecks` timer and returns: between checks an
    idle connection holds a timer, not a sleeping task (a task, its frame and its context are
    ~1 KiB, and a super-peer holds hundreds of idle connections).
    """
    timeout = getattr(self, _CONSENT_TIMEOUT_ATTR, None)
    if timeout is None:
        assert _original_query_consent is not None
        await _original_query_consent(self)
        return
    loop = asyncio.get_running_loop()
    _ConsentChecks(self, ConsentClock(timeout, loop.time()), loop).schedule()


class _ConsentChecks:
    """One connection's consent checks, driven by its :class:`ConsentClock`: a loop timer wakes
    it when the clock has something to do, and each check runs as a short task that is the
    connection's ``_query_consent_task`` while it runs -- so aioice's ``close()`` cancels it as
    it cancels aioice's own loop -- and arms the timer again when it ends. Nothing is armed
    once the connection is closing."""

    __slots__ = ("_clock", "_connection", "_loop")

    def __init__(self, connection: Any, clock: ConsentClock, loop: asyncio.AbstractEventLoop):
        self._connection = connection
        self._clock = clock
        self._loop = loop

    def schedule(self) -> None:
        if not self._connection._closing:
            self._loop.call_at(self._clock.wake_at(), self._wake)

    def _wake(self) -> None:
        connection = self._connection
        if connection._closing:
            return
        now = self._loop.time()
        if self._clock.expired(now):
            connection._query_consent_task = self._loop.create_task(self._expire())
        elif now < self._clock.next_check:
            self.schedule()
        else:
            self._clock.check_sent(now)
            connection._query_consent_task = self._loop.create_task(self._check(now))

    async def _check(self, sent_at: float) -> None:
        clock = self._clock
        try:
            # After two misses, a check still unanswered when consent runs out is a third.
            async with asyncio.timeout_at(clock.give_up_at()):
                answered = await _consent_check(self._connection)
        except TimeoutError:
            answered = False
        if answered:
            clock.answered(self._loop.time())
        elif answered is not None:
            clock.missed(sent_at)
        self.schedule()

    async def _expire(self) -> None:
        connection = self._connection
        silence = self._clock.silent_for(self._loop.time())
        logger.info(
            "ICE consent expired: the remote answered no check for %.1f s (%d missed in a row)",
            silence,
            self._clock.misses,
        )
        setattr(connection, _CONSENT_EXPIRED_ATTR, silence)
        # As aioice's own loop does: closing cancels the consent task unless it is forgotten first.
        connection._query_consent_task = None
        await connection.close()
