"""asyncio WebTorrent tracker client: announces swarms, relays offers and answers.

How it works
------------
:class:`TrackerClient` keeps one WebSocket per tracker URL (like ``bittorrent-tracker``'s
``socketPool``) and lets several swarms (info hashes, each with its own peer id) share it.
For every (tracker, swarm) pair a session announces: the first announce on that tracker carries
``event: "started"``, later ones none (``lib/client/tracker.js``); each announce carries fresh
offers made by the swarm's :class:`SwarmHandler` (``websocket-tracker.js _generateOffers``), and
the next one follows ``interval`` seconds after the tracker's last response (30 s before any).
Offers not answered within ``offer_timeout`` (``OFFER_TIMEOUT`` = 50 s) are released with
``aclose()``.

Inbound messages are validated by :func:`~p2pml_py.tracker.messages.parse_tracker_message` and
demultiplexed by ``info_hash``; messages for unknown swarms or from our own peer id are ignored
(``_onAnnounceResponse``). Relayed offers wait in a queue, in the order they came, and at most
``max_concurrent_answers`` of them are passed to ``handler.handle_offer`` at once (a burst of
joining peers is answered in order, none dropped); the answer is sent back with ``to_peer_id``
and ``offer_id`` echoed exactly. An offer that waited longer than ``offer_timeout`` is skipped:
its offerer gave up on it (``OFFER_TIMEOUT``). The queue holds at most ``max_queued_offers``;
past that the oldest is dropped. A relayed answer is matched by ``offer_id`` against the
session's pending offers.

When a socket drops, the session's pending offers are released (upstream destroys its peers)
and the connection is reopened after a jittered, capped exponential back-off
(``_startReconnectTimer``: ``random(0..5 min) + min(2^retries * 10 s, 1 h)``; our defaults are
shorter, see :class:`ReconnectPolicy`); every joined swarm is announced again once it is back.
Nothing raised by the tracker, the network or a handler escapes a background task: it is
logged and counted in :class:`TrackerStats`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
import string
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Final, Literal, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from p2pml_py.base.errors import LocalProtocolError, TrackerProtocolError
from p2pml_py.tracker.messages import (
    MAX_MESSAGE_CHARS,
    Announce,
    AnnounceResponse,
    AnswerRelay,
    Offer,
    RelayedAnswer,
    RelayedOffer,
    ScrapeResponse,
    TrackerFailure,
    encode,
    is_binary_id,
    parse_tracker_message,
)

__all__ = [
    "PendingOffer",
    "ReconnectPolicy",
    "SwarmHandler",
    "TrackerClient",
    "TrackerStats",
    "new_offer_id",
]

logger = logging.getLogger(__name__)

#: ``WebSocketTracker.prototype.DEFAULT_ANNOUNCE_INTERVAL``.
DEFAULT_INTERVAL: Final = 30.0
#: ``websocket-tracker.js OFFER_TIMEOUT``.
OFFER_TIMEOUT: Final = 50.0
#: ``Math.min(opts.numwant, 5)`` in ``WebSocketTracker.announce``.
MAX_OFFERS_PER_ANNOUNCE: Final = 5
_OFFER_ID_ALPHABET: Final = string.ascii_letters + string.digits


def new_offer_id() -> str:
    """20 random printable ASCII chars: a valid binary string that survives any JSON path."""
    return "".join(secrets.choice(_OFFER_ID_ALPHABET) for _ in range(20))


class PendingOffer(Protocol):
    """An offer made by the swarm code, waiting for a remote answer."""

    sdp: str  # complete non-trickle offer SDP

    async def accept_answer(self, peer_id: str, sdp: str) -> None: ...

    async def aclose(self) -> None: ...  # offer expired or unused: release it


class SwarmHandler(Protocol):
    """What the tracker client needs from one swarm."""

    def offers_wanted(self) -> int: ...  # offers for the next announce (<= 5; 0 = none)

    async def make_offer(self) -> PendingOffer: ...

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None: ...  # answer or None


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Delay before reconnect attempt ``n`` (0-based): ``min(base * 2**n, cap) * (1 + jitter*U)``.

    Upstream waits far longer (10 s .. 1 h plus up to 5 min of jitter); a seeding peer wants to be
    back sooner, but the delay still doubles and is randomised so that many peers do not hammer a
    tracker that just restarted.
    """

    base: float = 2.0
    cap: float = 300.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.base * (2 ** min(attempt, 32)), self.cap)
        return float(raw * (1.0 + self.jitter * rng.random()))


@dataclass(slots=True)
class TrackerStats:
    """Counters for one tracker URL (a copy is returned by :meth:`TrackerClient.stats`)."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    announces_sent: int = 0
    offers_sent: int = 0
    offer_errors: int = 0
    offers_expired: int = 0
    responses: int = 0
    offers_received: int = 0
    #: Offers never passed to the handler: they waited past offer_timeout, or the queue was full.
    offers_skipped: int = 0
    answers_sent: int = 0
    offers_declined: int = 0
    answers_received: int = 0
    answers_unmatched: int = 0
    handler_errors: int = 0
    warnings: int = 0
    failures: int = 0
    invalid_messages: int = 0
    ignored_messages: int = 0
    stopped_sent: int = 0

    def copy(self) -> TrackerStats:
        return TrackerStats(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True, slots=True)
class SwarmTrackerState:
    """What the tracker last said about one swarm."""

    complete: int | None
    incomplete: int | None
    interval: float


@dataclass(slots=True)
class _Swarm:
    info_hash: str
    peer_id: str
    handler: SwarmHandler


@dataclass(slots=True)
class _Pending:
    offer: PendingOffer
    expires: float


class _Session:
    """One swarm on one tracker connection: announce loop, pending offers, handler tasks."""

    def __init__(self, conn: _Connection, swarm: _Swarm) -> None:
        self.conn = conn
        self.swarm = swarm
        self.started_sent = False
        self.interval = conn.client.default_interval
        self.tracker_id: str | None = None
        self.complete: int | None = None
        self.incomplete: int | None = None
        self.pending: dict[str, _Pending] = {}
        self._response = asyncio.Event()
        self._pending_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.stopping = False
        # Relayed offers not yet passed to the handler: (arrival time, socket, offer).
        self._offers: collections.deque[tuple[float, ClientConnection, RelayedOffer]] = (
            collections.deque()
        )
        self._answering = 0

    # called when the socket is (re)connected
    def start(self, ws: ClientConnection) -> None:
        if self._loops:
            raise LocalProtocolError("session already running")
        name = f"tracker-announce-{self.conn.url}"
        self._loops = [
            asyncio.create_task(self._announce_loop(ws), name=name),
            asyncio.create_task(self._expire_loop(), name=name + "-expire"),
        ]

    async def stop_loops(self) -> None:
        loops, self._loops = self._loops, []
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        """Cancel everything and release pending offers."""
        self.stopping = True
        tasks = [*self._loops, *self._tasks]
        self._loops = []
        self._offers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.release_offers()

    async def release_offers(self) -> None:
        pending, self.pending = self.pending, {}
        for item in pending.values():
            await self._close_offer(item.offer)

    async def _close_offer(self, offer: PendingOffer) -> None:
        try:
            await offer.aclose()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.conn.stats.handler_errors += 1
            logger.exception("PendingOffer.aclose failed")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a handler call in a task owned by this session (cancelled by :meth:`aclose`)."""
        if len(self._tasks) >= self.conn.client.max_handler_tasks:
            coro.close()
            self.conn.stats.ignored_messages += 1
            logger.warning("%s: too many offers/answers in progress, dropping one", self.conn.url)
            return
        self._start(coro, name)

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- announcing -----------------------------------------------------------------------------

    async def _announce_loop(self, ws: ClientConnection) -> None:
        while True:
            self._response.clear()
            await self._announce(ws)
            # Wait ``interval`` counted from the latest response (tracker.js setInterval restarts
            # its timer on every response), or from the send if no response comes.
            while True:
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation
                    # that arrives together with the event.
                    async with asyncio.timeout(self._wait_interval()):
                        await self._response.wait()
                except TimeoutError:
                    break
                self._response.clear()

    def _wait_interval(self) -> float:
        client = self.conn.client
        value = max(self.interval, client.min_interval)
        if client.max_interval is not None:
            value = min(value, client.max_interval)
        return value

    async def _announce(self, ws: ClientConnection) -> None:
        handler = self.swarm.handler
        try:
            wanted = int(handler.offers_wanted())
        except Exception:
            self.conn.stats.handler_errors += 1
            logger.exception("offers_wanted() failed")
            wanted = 0
        wanted = max(0, min(wanted, self.conn.client.max_offers))
        offers: list[Offer] = []
        made: list[tuple[str, PendingOffer]] = []
        if wanted:
            for result in await self._make_offers(wanted):
                if isinstance(result, BaseException):
                    self.conn.stats.offer_errors += 1
                    logger.warning("make_offer() failed: %r", result)
                    continue
                offer_id = new_offer_id()
                made.append((offer_id, result))
                offers.append(Offer(offer_id=offer_id, sdp=result.sdp))
        event = None if self.started_sent else "started"
        msg = Announce(
            info_hash=self.swarm.info_hash,
            peer_id=self.swarm.peer_id,
            offers=tuple(offers),
            event=event,
            numwant=len(offers),
            uploaded=0,
            downloaded=0,
            trackerid=self.tracker_id,
        )
        try:
            text = encode(msg)
        except LocalProtocolError:
            self.conn.stats.offer_errors += 1
            logger.exception("could not encode announce (bad offer SDP?)")
            for _, offer in made:
                await self._close_offer(offer)
            return
        expires = time.monotonic() + self.conn.client.offer_timeout
        for offer_id, offer in made:
            self.pending[offer_id] = _Pending(offer, expires)
        self._pending_changed.set()
        try:
            await ws.send(text)
        except ConnectionClosed:
            # The connection loop notices the drop and releases the offers.
            return
        self.started_sent = True
        self.conn.stats.announces_sent += 1
        self.conn.stats.offers_sent += len(offers)
        self.conn.client.notify()

    async def _make_offers(self, count: int) -> list[PendingOffer | BaseException]:
        """Ask the handler for ``count`` offers concurrently; release them if we are cancelled."""
        handler = self.swarm.handler
        tasks = [asyncio.create_task(handler.make_offer()) for _ in range(count)]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and task.exception() is None:
                    await self._close_offer(task.result())
            raise
        results: list[PendingOffer | BaseException] = []
        for task in tasks:
            if task.cancelled():
                results.append(asyncio.CancelledError())
            else:
                exc = task.exception()
                results.append(exc if exc is not None else task.result())
        return results

    async def _expire_loop(self) -> None:
        while True:
            self._pending_changed.clear()
            now = time.monotonic()
            expired = [oid for oid, p in self.pending.items() if p.expires <= now]
            for offer_id in expired:
                item = self.pending.pop(offer_id)
                self.conn.stats.offers_expired += 1
                await self._close_offer(item.offer)
            if expired:
                self.conn.client.notify()
            timeout = None
            if self.pending:
                timeout = max(0.0, min(p.expires for p in self.pending.values()) - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._pending_changed.wait()

    # -- inbound --------------------------------------------------------------------------------

    def on_response(self, msg: AnnounceResponse) -> None:
        interval = msg.interval or msg.min_interval
        if interval:
            self.interval = float(interval)
        if msg.tracker_id:
            self.tracker_id = msg.tracker_id
        if msg.complete is not None:
            self.complete = msg.complete
        if msg.incomplete is not None:
            self.incomplete = msg.incomplete
        self._response.set()

    def on_offer(self, ws: ClientConnection, msg: RelayedOffer) -> None:
        self.conn.stats.offers_received += 1
        logger.debug("%s: offer from %s", self.conn.url, msg.peer_id)
        client = self.conn.client
        if len(self._offers) >= client.max_queued_offers:
            self._offers.popleft()
            self.conn.stats.offers_skipped += 1
            logger.warning(
                "%s: more than %d offers waiting, dropped the oldest",
                self.conn.url,
                client.max_queued_offers,
            )
        self._offers.append((client.clock(), ws, msg))
        self._answer_next()

    def _answer_next(self) -> None:
        """Pass queued offers to the handler, oldest first, up to max_concurrent_answers."""
        client = self.conn.client
        while (
            self._offers and self._answering < client.max_concurrent_answers and not self.stopping
        ):
            received, ws, msg = self._offers.popleft()
            if client.clock() - received > client.offer_timeout:
                self.conn.stats.offers_skipped += 1
                continue
            self._answering += 1
            task = self._start(self._answer(ws, msg), f"tracker-answer-{self.conn.url}")
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering -= 1
        self._answer_next()

    async def _answer(self, ws: ClientConnection, msg: RelayedOffer) -> None:
        try:
            sdp = await self.swarm.handler.handle_offer(msg.peer_id, msg.sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.conn.stats.handler_errors += 1
            logger.exception("handle_offer() failed")
            return
        if sdp is None:
            logger.debug("%s: offer from %s declined", self.conn.url, msg.peer_id)
            self.conn.stats.offers_declined += 1
            self.conn.client.notify()
            return
        reply = AnswerRelay(
            info_hash=self.swarm.info_hash,
            peer_id=self.swarm.peer_id,
            to_peer_id=msg.peer_id,
            offer_id=msg.offer_id,
            sdp=sdp,
            trackerid=self.tracker_id,
        )
        try:
            await ws.send(encode(reply))
        except LocalProtocolError:
            self.conn.stats.handler_errors += 1
            logger.exception("handle_offer() returned an answer we cannot send")
            return
        except ConnectionClosed:
            return
        self.conn.stats.answers_sent += 1
        self.conn.client.notify()

    def on_answer(self, msg: RelayedAnswer) -> None:
        item = self.pending.pop(msg.offer_id, None)
        if item is None:
            self.conn.stats.answers_unmatched += 1
            logger.debug("%s: answer for unknown offer id", self.conn.url)
            self.conn.client.notify()
            return
        self.conn.stats.answers_received += 1
        logger.debug("%s: answer from %s", self.conn.url, msg.peer_id)
        self._pending_changed.set()
        self.spawn(self._accept(item.offer, msg), f"tracker-accept-{self.conn.url}")

    async def _accept(self, offer: PendingOffer, msg: RelayedAnswer) -> None:
        try:
            await offer.accept_answer(msg.peer_id, msg.sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.conn.stats.handler_errors += 1
            logger.exception("accept_answer() failed")
            await self._close_offer(offer)
        self.conn.client.notify()


class _Connection:
    """One tracker URL: the socket, its reconnect loop and the sessions of every joined swarm."""

    def __init__(self, client: TrackerClient, url: str) -> None:
        self.client = client
        self.url = url
        self.stats = TrackerStats()
        self.sessions: dict[str, _Session] = {}
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"tracker-{self.url}")

    async def aclose(self) -> None:
        # Say goodbye while the socket is still up, then stop the loop.
        for info_hash in list(self.sessions):
            await self.remove_swarm(info_hash)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def add_swarm(self, swarm: _Swarm) -> None:
        session = _Session(self, swarm)
        self.sessions[swarm.info_hash] = session
        if self.ws is not None:
            session.start(self.ws)

    async def remove_swarm(self, info_hash: str) -> None:
        session = self.sessions.pop(info_hash, None)
        if session is None:
            return
        await session.aclose()
        ws = self.ws
        if ws is not None and session.started_sent:
            stopped = Announce(
                info_hash=info_hash,
                peer_id=session.swarm.peer_id,
                event="stopped",
                numwant=0,
                uploaded=0,
                downloaded=0,
                trackerid=session.tracker_id,
            )
            try:
                async with asyncio.timeout(self.client.send_timeout):
                    await ws.send(encode(stopped))
                self.stats.stopped_sent += 1
            except (ConnectionClosed, TimeoutError):
                logger.debug("could not send stopped to %s", self.url)
        self.client.notify()

    async def _run(self) -> None:
        attempt = 0
        while True:
            connected = False
            error: BaseException | None = None
            try:
                async with connect(
                    self.url,
                    open_timeout=self.client.connect_timeout,
                    max_size=self.client.max_message_size,
                    proxy=self.client.proxy,
                    compression=None,
                ) as ws:
                    connected = True
                    attempt = 0
                    self.stats.connects += 1
                    logger.info("connected to tracker %s", self.url)
                    self.ws = ws
                    for session in self.sessions.values():
                        session.start(ws)
                    self.client.notify()
                    try:
                        await self._read(ws)
                    finally:
                        self.ws = None
                        for session in list(self.sessions.values()):
                            await session.stop_loops()
                            await session.release_offers()
            except (OSError, WebSocketException, TimeoutError) as exc:
                error = exc
            if connected:
                self.stats.disconnects += 1
                logger.warning("lost tracker %s: %s", self.url, error or "closed by tracker")
            else:
                self.stats.connect_failures += 1
                logger.warning("cannot connect to tracker %s: %r", self.url, error)
            self.client.notify()
            delay = self.client.reconnect.delay(attempt, self._rng)
            attempt += 1
            logger.debug("reconnecting to %s in %.2f s", self.url, delay)
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> None:
        async for data in ws:
            try:
                msg = parse_tracker_message(data, max_chars=self.client.max_message_size)
            except TrackerProtocolError as exc:
                self.stats.invalid_messages += 1
                logger.warning("invalid message from tracker %s: %s", self.url, exc)
                self.client.notify()
                continue
            self._dispatch(ws, msg)
            self.client.notify()

    def _dispatch(
        self,
        ws: ClientConnection,
        msg: AnnounceResponse | RelayedOffer | RelayedAnswer | ScrapeResponse | TrackerFailure,
    ) -> None:
        if isinstance(msg, TrackerFailure):
            self.stats.failures += 1
            logger.warning("tracker %s failure: %s", self.url, msg.reason)
            return
        if isinstance(msg, ScrapeResponse):
            self.stats.ignored_messages += 1
            return
        session = self.sessions.get(msg.info_hash)
        if session is None or session.stopping:
            self.stats.ignored_messages += 1
            return
        if isinstance(msg, AnnounceResponse):
            self.stats.responses += 1
            if msg.warning:
                self.stats.warnings += 1
                logger.warning("tracker %s warning: %s", self.url, msg.warning)
            session.on_response(msg)
            return
        if msg.peer_id == session.swarm.peer_id:
            self.stats.ignored_messages += 1
            return
        if isinstance(msg, RelayedOffer):
            session.on_offer(ws, msg)
        else:
            session.on_answer(msg)


class TrackerClient:
    """Announce swarms to WebTorrent trackers and relay WebRTC offers/answers.

    Use as ``async with TrackerClient(urls) as client: await client.join(...)``.
    """

    def __init__(
        self,
        announce_urls: Sequence[str],
        *,
        default_interval: float = DEFAULT_INTERVAL,
        min_interval: float = 5.0,
        max_interval: float | None = None,
        offer_timeout: float = OFFER_TIMEOUT,
        max_offers: int = MAX_OFFERS_PER_ANNOUNCE,
        reconnect: ReconnectPolicy | None = None,
        connect_timeout: float = 10.0,
        send_timeout: float = 5.0,
        max_message_size: int = MAX_MESSAGE_CHARS,
        max_handler_tasks: int = 64,
        max_concurrent_answers: int = 32,
        max_queued_offers: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        proxy: str | Literal[True] | None = None,
    ) -> None:
        # bt/client.js: strip trailing "/" and drop duplicates, keep order.
        urls: list[str] = []
        for url in announce_urls:
            url = url.rstrip("/")
            if not url.startswith(("ws://", "wss://")):
                raise LocalProtocolError(f"not a WebSocket tracker URL: {url!r}")
            if url not in urls:
                urls.append(url)
        if not urls:
            raise LocalProtocolError("no tracker URL given")
        self.urls: tuple[str, ...] = tuple(urls)
        self.default_interval = default_interval
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.offer_timeout = offer_timeout
        self.max_offers = max(0, min(max_offers, MAX_OFFERS_PER_ANNOUNCE))
        self.reconnect = reconnect or ReconnectPolicy()
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.max_message_size = max_message_size
        self.max_handler_tasks = max_handler_tasks
        self.max_concurrent_answers = max_concurrent_answers
        self.max_queued_offers = max_queued_offers
        #: How old a queued offer is (tests pass a fake one).
        self.clock = clock
        #: Passed to ``websockets.connect``: ``None`` = direct (default), ``True`` = from env.
        self.proxy = proxy
        self._swarms: dict[str, _Swarm] = {}
        self._conns: dict[str, _Connection] = {}
        self._changed = asyncio.Event()
        self._started = False
        self._closed = False

    async def __aenter__(self) -> TrackerClient:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._closed:
            raise LocalProtocolError("tracker client is closed")
        if self._started:
            return
        self._started = True
        for url in self.urls:
            conn = _Connection(self, url)
            self._conns[url] = conn
            conn.start()

    async def aclose(self) -> None:
        """Send ``stopped`` for every swarm, close every socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(conn.aclose() for conn in self._conns.values()))
        self._swarms.clear()

    async def join(self, info_hash: str, peer_id: str, handler: SwarmHandler) -> None:
        """Start announcing ``info_hash`` as ``peer_id`` on every tracker."""
        if not self._started or self._closed:
            raise LocalProtocolError("tracker client is not running")
        if not is_binary_id(info_hash) or not is_binary_id(peer_id):
            raise LocalProtocolError("info_hash and peer_id must be 20-char binary strings")
        if info_hash in self._swarms:
            raise LocalProtocolError("already joined this info hash")
        swarm = _Swarm(info_hash, peer_id, handler)
        self._swarms[info_hash] = swarm
        for conn in self._conns.values():
            conn.add_swarm(swarm)

    async def leave(self, info_hash: str) -> None:
        """Stop announcing ``info_hash``: release its offers and send ``stopped`` everywhere."""
        if self._swarms.pop(info_hash, None) is None:
            return
        await asyncio.gather(*(conn.remove_swarm(info_hash) for conn in self._conns.values()))

    # -- introspection --------------------------------------------------------------------------

    def stats(self, url: str | None = None) -> TrackerStats:
        """Counters of one tracker URL, or the sum over all of them."""
        if url is not None:
            return self._conns[url.rstrip("/")].stats.copy()
        total = TrackerStats()
        for conn in self._conns.values():
            for f in fields(total):
                setattr(total, f.name, getattr(total, f.name) + getattr(conn.stats, f.name))
        return total

    def is_connected(self, url: str) -> bool:
        conn = self._conns.get(url.rstrip("/"))
        return conn is not None and conn.ws is not None

    def swarm_state(self, url: str, info_hash: str) -> SwarmTrackerState | None:
        conn = self._conns.get(url.rstrip("/"))
        session = conn.sessions.get(info_hash) if conn else None
        if session is None:
            return None
        return SwarmTrackerState(session.complete, session.incomplete, session.interval)

    def pending_offers(self, info_hash: str) -> int:
        return sum(
            len(c.sessions[info_hash].pending)
            for c in self._conns.values()
            if info_hash in c.sessions
        )

    def notify(self) -> None:
        """Wake :meth:`wait_until` callers (called internally after every state change)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, re-checking after each state change.

        Bound it with ``asyncio.timeout``; it waits forever otherwise.
        """
        while not predicate():
            await self._changed.wait()
