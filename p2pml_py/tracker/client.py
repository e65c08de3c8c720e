"""asyncio WebTorrent tracker client: the socket and task driver of :mod:`.announce`.

How it works
------------
:class:`TrackerClient` keeps one WebSocket per tracker URL (like ``bittorrent-tracker``'s
``socketPool``) and lets several swarms (info hashes, each with its own peer id) share it. What
to send and when -- the first announce and its ``started`` event, the interval, how many offers
each announce carries, offer expiry, answers matched to offers, the queue of relayed offers, the
reconnect back-off -- is decided by the sans-I/O state machines of
:mod:`p2pml_py.tracker.announce` (one :class:`~.announce.AnnounceSession` and one
:class:`~.announce.OfferQueue` per tracker and swarm, one :class:`~.announce.Reconnect` per
tracker). This module opens sockets, runs tasks, sleeps until the deadlines they return, and
calls the swarm's :class:`SwarmHandler` for offers and answers.

Inbound messages are validated by :func:`~p2pml_py.tracker.messages.parse_tracker_message` and
demultiplexed by ``info_hash``; messages for unknown swarms or from our own peer id are ignored
(``_onAnnounceResponse``). At most ``max_concurrent_answers`` relayed offers are passed to
``handler.handle_offer`` at once, and at most ``max_handler_tasks`` accepted answers are being
passed to their offers. When a socket drops, the pending offers are released and every joined
swarm is announced again once it is back. Nothing raised by the tracker, the network or a
handler escapes a background task: it is logged and counted in :class:`TrackerStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Literal, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from p2pml_py.base.aio import Notifier, TaskGroup, cancel_and_wait
from p2pml_py.base.errors import LocalProtocolError, TrackerProtocolError
from p2pml_py.base.outage import Outage
from p2pml_py.tracker.announce import (
    DEFAULT_INTERVAL,
    MAX_OFFERS_PER_ANNOUNCE,
    OFFER_TIMEOUT,
    AnnounceConfig,
    AnnounceSession,
    OfferQueue,
    Reconnect,
    ReconnectPolicy,
    new_offer_id,
)
from p2pml_py.tracker.messages import (
    MAX_MESSAGE_CHARS,
    AnnounceResponse,
    RelayedAnswer,
    RelayedOffer,
    ScrapeResponse,
    TrackerFailure,
    is_binary_id,
    parse_tracker_message,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_OFFERS_PER_ANNOUNCE",
    "OFFER_TIMEOUT",
    "PendingOffer",
    "ReconnectPolicy",
    "SwarmHandler",
    "TrackerClient",
    "TrackerStats",
    "new_offer_id",
]

logger = logging.getLogger(__name__)


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


class _Session:
    """One swarm on one tracker connection: runs its :class:`AnnounceSession` and
    :class:`OfferQueue` -- announce and expiry loops while connected, handler calls."""

    def __init__(self, conn: _Connection, swarm: _Swarm) -> None:
        client = conn.client
        self.conn = conn
        self.swarm = swarm
        self.state: AnnounceSession[PendingOffer] = AnnounceSession(
            swarm.info_hash, swarm.peer_id, client.announce_config()
        )
        # Relayed offers not yet passed to the handler, with the socket they came on.
        self.queue: OfferQueue[tuple[ClientConnection, RelayedOffer]] = OfferQueue(
            max_queued=client.max_queued_offers,
            max_concurrent=client.max_concurrent_answers,
            max_age=client.offer_timeout,
        )
        self._changed = Notifier()  # a deadline moved or an offer became pending
        self._tasks = TaskGroup(logger)  # loops and handler calls, cancelled by aclose()
        self._loops: list[asyncio.Task[Any]] = []  # the loops of the current socket

    def start(self, ws: ClientConnection) -> None:
        """The socket is (re)connected: announce now, then as the state machine says."""
        if self._loops:
            raise LocalProtocolError("session already running")
        self.state.connected(time.monotonic())
        name = f"tracker-announce-{self.conn.url}"
        self._loops = [
            self._tasks.spawn(self._announce_loop(ws), name=name),
            self._tasks.spawn(self._expire_loop(), name=name + "-expire"),
        ]

    async def disconnect(self) -> None:
        """The socket is gone: stop announcing and release the pending offers."""
        loops, self._loops = self._loops, []
        await cancel_and_wait(loops)
        for offer in self.state.disconnected():
            await self._close_offer(offer)

    async def aclose(self) -> str | None:
        """Cancel everything and release pending offers; returns the ``stopped`` text to send."""
        stopped, offers = self.state.leave()
        self.queue.close()
        self._loops = []
        try:
            await self._tasks.aclose()
        finally:
            for offer in offers:
                await self._close_offer(offer)
        return stopped

    async def _close_offer(self, offer: PendingOffer) -> None:
        try:
            await offer.aclose()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.conn.stats.handler_errors += 1
            logger.exception("PendingOffer.aclose failed")

    def _spawn_handler_call(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a handler call in a task owned by this session, unless too many are running."""
        if len(self._tasks) - len(self._loops) >= self.conn.client.max_handler_tasks:
            coro.close()
            self.conn.stats.ignored_messages += 1
            logger.warning("%s: too many offers/answers in progress, dropping one", self.conn.url)
            return
        self._tasks.spawn(coro, name=name)

    async def _sleep_until(self, deadline: float | None) -> None:
        """Until ``deadline`` (monotonic) or the next change, whichever comes first."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    # -- announcing -----------------------------------------------------------------------------

    async def _announce_loop(self, ws: ClientConnection) -> None:
        while True:
            if self.state.announce_due(time.monotonic()):
                await self._announce(ws)
            else:
                await self._sleep_until(self.state.next_announce_at)

    async def _announce(self, ws: ClientConnection) -> None:
        stats = self.conn.stats
        try:
            wanted = int(self.swarm.handler.offers_wanted())
        except Exception:
            stats.handler_errors += 1
            logger.exception("offers_wanted() failed")
            wanted = 0
        count = self.state.begin_announce(wanted)
        made: list[PendingOffer] = []
        if count:
            for result in await self._make_offers(count):
                if isinstance(result, BaseException):
                    stats.offer_errors += 1
                    logger.warning("make_offer() failed: %r", result)
                else:
                    made.append(result)
        try:
            text = self.state.announce(time.monotonic(), made)
        except LocalProtocolError:
            stats.offer_errors += 1
            logger.exception("could not encode announce (bad offer SDP?)")
            for offer in made:
                await self._close_offer(offer)
            return
        self._changed.notify()  # new pending offers: the expiry loop re-reads its deadline
        try:
            await ws.send(text)
        except ConnectionClosed:
            return  # the connection loop notices the drop and releases the offers
        self.state.announce_sent(time.monotonic())
        stats.announces_sent += 1
        stats.offers_sent += len(made)
        self.conn.client.notify()

    async def _make_offers(self, count: int) -> list[PendingOffer | BaseException]:
        """Ask the handler for ``count`` offers concurrently; release them if we are cancelled."""
        handler = self.swarm.handler
        tasks = [asyncio.create_task(handler.make_offer()) for _ in range(count)]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            await cancel_and_wait(tasks)
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
            expired = self.state.expire(time.monotonic())
            for offer in expired:
                self.conn.stats.offers_expired += 1
                await self._close_offer(offer)
            if expired:
                self.conn.client.notify()
            await self._sleep_until(self.state.next_expiry_at)

    # -- inbound --------------------------------------------------------------------------------

    def on_response(self, msg: AnnounceResponse) -> None:
        self.state.on_response(time.monotonic(), msg)
        self._changed.notify()  # the next announce moved

    def on_offer(self, ws: ClientConnection, msg: RelayedOffer) -> None:
        stats = self.conn.stats
        stats.offers_received += 1
        logger.debug("%s: offer from %s", self.conn.url, msg.peer_id)
        dropped = self.queue.push(self.conn.client.clock(), (ws, msg))
        if dropped:
            stats.offers_skipped += dropped
            logger.warning(
                "%s: more than %d offers waiting, dropped the oldest",
                self.conn.url,
                self.queue.max_queued,
            )
        self._answer_next()

    def _answer_next(self) -> None:
        """Pass the offers the queue releases to the handler."""
        ready, skipped = self.queue.take(self.conn.client.clock())
        self.conn.stats.offers_skipped += skipped
        for ws, msg in ready:
            task = self._tasks.spawn(self._answer(ws, msg), name=f"tracker-answer-{self.conn.url}")
            task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[Any]) -> None:
        self.queue.finished()
        self._answer_next()

    async def _answer(self, ws: ClientConnection, msg: RelayedOffer) -> None:
        stats = self.conn.stats
        try:
            sdp = await self.swarm.handler.handle_offer(msg.peer_id, msg.sdp)
        except asyncio.CancelledError:
            raise
        except Exception:
            stats.handler_errors += 1
            logger.exception("handle_offer() failed")
            return
        if sdp is None:
            logger.debug("%s: offer from %s declined", self.conn.url, msg.peer_id)
            stats.offers_declined += 1
            self.conn.client.notify()
            return
        try:
            text = self.state.answer(msg, sdp)
        except LocalProtocolError:
            stats.handler_errors += 1
            logger.exception("handle_offer() returned an answer we cannot send")
            return
        try:
            await ws.send(text)
        except ConnectionClosed:
            return
        stats.answers_sent += 1
        self.conn.client.notify()

    def on_answer(self, msg: RelayedAnswer) -> None:
        offer = self.state.match_answer(msg.offer_id)
        if offer is None:
            self.conn.stats.answers_unmatched += 1
            logger.debug("%s: answer for unknown offer id", self.conn.url)
            self.conn.client.notify()
            return
        self.conn.stats.answers_received += 1
        logger.debug("%s: answer from %s", self.conn.url, msg.peer_id)
        self._changed.notify()
        self._spawn_handler_call(self._accept(offer, msg), f"tracker-accept-{self.conn.url}")

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
        self.reconnect = Reconnect(client.reconnect, random.Random())
        self.outage = Outage(f"tracker {url}")
        self._tasks = TaskGroup(logger)

    def start(self) -> None:
        self._tasks.spawn(self._run(), name=f"tracker-{self.url}")

    async def aclose(self) -> None:
        # Say goodbye while the socket is still up, then stop the loop.
        for info_hash in list(self.sessions):
            await self.remove_swarm(info_hash)
        await self._tasks.aclose()

    def add_swarm(self, swarm: _Swarm) -> None:
        session = _Session(self, swarm)
        self.sessions[swarm.info_hash] = session
        if self.ws is not None:
            session.start(self.ws)

    async def remove_swarm(self, info_hash: str) -> None:
        session = self.sessions.pop(info_hash, None)
        if session is None:
            return
        stopped = await session.aclose()
        ws = self.ws
        if ws is not None and stopped is not None:
            try:
                async with asyncio.timeout(self.client.send_timeout):
                    await ws.send(stopped)
                self.stats.stopped_sent += 1
            except (ConnectionClosed, TimeoutError):
                logger.debug("could not send stopped to %s", self.url)
        self.client.notify()

    async def _run(self) -> None:
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
                    self.reconnect.connected()
                    self.stats.connects += 1
                    back = self.outage.succeeded(time.monotonic())
                    if back is not None:
                        logger.warning("%s", back)
                    else:
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
                            await session.disconnect()
            except (OSError, WebSocketException, TimeoutError) as exc:
                error = exc
            if connected:
                self.stats.disconnects += 1
                reason = f"lost: {error or 'closed by tracker'}"
            else:
                self.stats.connect_failures += 1
                reason = f"cannot connect: {error!r}"
            # One line when the tracker goes away, a summary a minute while it stays away, one
            # line when it is back (with the outage's length).
            line = self.outage.failed(time.monotonic(), reason)
            if line is not None:
                logger.warning("%s", line)
            else:
                logger.debug("tracker %s %s", self.url, reason)
            self.client.notify()
            retry_at = self.reconnect.lost(time.monotonic())
            delay = max(0.0, retry_at - time.monotonic())
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
        if session is None or session.state.stopped:
            self.stats.ignored_messages += 1
            return
        if isinstance(msg, AnnounceResponse):
            self.stats.responses += 1
            if msg.warning:
                self.stats.warnings += 1
                logger.warning("tracker %s warning: %s", self.url, msg.warning)
            session.on_response(msg)
            return
        if not session.state.accepts_from(msg.peer_id):
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
        self._changed = Notifier()
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
        """Send ``stopped`` for every swarm, close every socket. Idempotent.

        If the caller is cancelled meanwhile, the ``CancelledError`` propagates at once; calling
        ``aclose`` again finishes the job.
        """
        self._closed = True
        self._swarms.clear()
        await asyncio.gather(*(conn.aclose() for conn in self._conns.values()))

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

    def announce_config(self) -> AnnounceConfig:
        """The announce settings a newly joined swarm gets."""
        return AnnounceConfig(
            default_interval=self.default_interval,
            min_interval=self.min_interval,
            max_interval=self.max_interval,
            offer_timeout=self.offer_timeout,
            max_offers=self.max_offers,
        )

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

    def outage(self, url: str) -> Outage | None:
        """The outage record of one tracker URL (read it, do not change it)."""
        conn = self._conns.get(url.rstrip("/"))
        return None if conn is None else conn.outage

    def swarm_state(self, url: str, info_hash: str) -> SwarmTrackerState | None:
        conn = self._conns.get(url.rstrip("/"))
        session = conn.sessions.get(info_hash) if conn else None
        if session is None:
            return None
        state = session.state
        return SwarmTrackerState(state.complete, state.incomplete, state.interval)

    def pending_offers(self, info_hash: str) -> int:
        return sum(
            c.sessions[info_hash].state.pending_count
            for c in self._conns.values()
            if info_hash in c.sessions
        )

    def notify(self) -> None:
        """Wake :meth:`wait_until` callers (called internally after every state change)."""
        self._changed.notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, re-checking after each state change.

        Bound it with ``asyncio.timeout``; it waits forever otherwise.
        """
        await self._changed.wait_until(predicate)
