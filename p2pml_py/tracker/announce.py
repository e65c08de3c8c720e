"""Announce timing and offer bookkeeping of the tracker client, without sockets (sans-I/O).

How it works
------------
The asyncio driver (:mod:`p2pml_py.tracker.client`) owns sockets, tasks and timers; every
decision is made here, from plain method calls that carry the current time (``now``, seconds on
any monotonic clock) and, where something is drawn at random, a :class:`random.Random` given at
construction. Results come back as values: text to send, how many offers to make, offers to
release, the time of the next deadline. Three state machines:

:class:`AnnounceSession` -- one swarm on one tracker connection, after ``bittorrent-tracker``
11.2.3 ``lib/client/websocket-tracker.js`` (which p2p-media-loader's ``core/p2p/tracker-client.ts``
runs in every browser):

* announces only while connected; the first one on a connection is due at once
  (:meth:`~AnnounceSession.connected`). The first one that reaches the tracker carries
  ``event: "started"``, later ones -- also after a reconnect -- none (``lib/client/client.js``
  ``start()`` then ``_defaultAnnounceOpts()``);
* each announce carries fresh offers, made when it is due (``_generateOffers``): the driver asks
  :meth:`~AnnounceSession.begin_announce` how many (what the swarm wants, at most ``max_offers``
  <= 5: ``Math.min(opts.numwant, 5)``), makes them, and hands them to
  :meth:`~AnnounceSession.announce`, which gives each a random 20-char ``offer_id`` and returns
  the message. ``numwant`` is the number of offers carried;
* the next announce is due ``interval`` after the tracker's latest response, or after our latest
  announce if no response came (``lib/client/tracker.js setInterval`` restarts its timer on each
  response). ``interval`` is the response's ``interval``, else its ``min interval``
  (``_onAnnounceResponse``: ``data.interval || data['min interval']``), else
  ``default_interval`` (30 s, ``DEFAULT_ANNOUNCE_INTERVAL``); the wait is then clamped to
  ``[min_interval, max_interval]`` so that a tracker can neither make us spin nor go silent;
* an offer is pending until an answer names its ``offer_id``
  (:meth:`~AnnounceSession.match_answer`; ``this.peers[offerId]``) or ``offer_timeout`` passes
  (``OFFER_TIMEOUT`` = 50 s); either way it leaves the session exactly once. A dropped socket releases every pending
  offer (``destroy()`` destroys the peers);
* :meth:`~AnnounceSession.leave` ends the session: it returns ``event: "stopped"`` (only if
  ``started`` went out: the tracker knows nothing to stop otherwise) and the offers to release.
  ``stopped`` and ``completed`` never carry offers (``announce()``). The tracker id a response
  gave is echoed as ``trackerid`` in every later message ("if absent, do not discard").

:class:`OfferQueue` -- relayed offers from other peers, waiting for the swarm to answer them.
They are answered in the order they came, at most ``max_concurrent`` at once, so that a burst of
joining peers is answered in order and none is dropped. An offer that waited longer than
``max_age`` is skipped: its offerer gave up on it after ``OFFER_TIMEOUT``. Past ``max_queued``
waiting offers the oldest is dropped.

:class:`Reconnect` -- attempt counting for one tracker URL: after a lost or failed connection
the next attempt follows a capped, jittered exponential back-off (``_startReconnectTimer``:
``random(0..5 min) + min(2^retries * 10 s, 1 h)``; ours is shorter, see
:class:`ReconnectPolicy`); a successful connection resets the count.
"""

from __future__ import annotations

import random
import string
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from p2pml_py.base.backoff import Backoff
from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.tracker.messages import (
    Announce,
    AnnounceResponse,
    AnswerRelay,
    Offer,
    RelayedOffer,
    encode,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_OFFERS_PER_ANNOUNCE",
    "OFFER_TIMEOUT",
    "AnnounceConfig",
    "AnnounceSession",
    "OfferQueue",
    "Reconnect",
    "ReconnectPolicy",
    "new_offer_id",
]

#: ``WebSocketTracker.prototype.DEFAULT_ANNOUNCE_INTERVAL``.
DEFAULT_INTERVAL: Final = 30.0
#: ``websocket-tracker.js OFFER_TIMEOUT``.
OFFER_TIMEOUT: Final = 50.0
#: ``Math.min(opts.numwant, 5)`` in ``WebSocketTracker.announce``.
MAX_OFFERS_PER_ANNOUNCE: Final = 5
_OFFER_ID_ALPHABET: Final = string.ascii_letters + string.digits
_SYSTEM_RANDOM: Final = random.SystemRandom()

T = TypeVar("T")


class _HasSdp(Protocol):
    @property
    def sdp(self) -> str: ...


OfferT = TypeVar("OfferT", bound=_HasSdp)


def new_offer_id(rng: random.Random | None = None) -> str:
    """20 random printable ASCII chars: a valid binary string that survives any JSON path.

    Upstream draws 20 random bytes; printable ASCII is just as valid and cannot be mangled by a
    tracker that re-encodes strings. Without ``rng`` the OS source is used: offer ids are seen by
    every peer the offer is relayed to, but they should still not be predictable.
    """
    source = rng if rng is not None else _SYSTEM_RANDOM
    return "".join(source.choice(_OFFER_ID_ALPHABET) for _ in range(20))


# -- reconnecting ---------------------------------------------------------------------------


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

    @property
    def backoff(self) -> Backoff:
        return Backoff(initial=self.base, cap=self.cap, multiplier=2.0, jitter=self.jitter)

    def delay(self, attempt: int, rng: random.Random) -> float:
        # Backoff counts failures from 1; our attempts count from 0.
        return self.backoff.delay(attempt + 1, rng)


class Reconnect:
    """Back-off state of one tracker URL: consecutive failed or lost connections."""

    def __init__(self, policy: ReconnectPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        #: Attempts since the last successful connection.
        self.attempt = 0

    def connected(self) -> None:
        """The socket is open: the next loss starts the back-off from ``base`` again."""
        self.attempt = 0

    def lost(self, now: float) -> float:
        """The socket closed or could not be opened: when to try again."""
        delay = self.policy.delay(self.attempt, self._rng)
        self.attempt += 1
        return now + delay


# -- announcing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnounceConfig:
    """Announce timing and offer limits (:class:`~p2pml_py.tracker.client.TrackerClient`
    arguments of the same names)."""

    default_interval: float = DEFAULT_INTERVAL
    min_interval: float = 5.0
    max_interval: float | None = None
    offer_timeout: float = OFFER_TIMEOUT
    max_offers: int = MAX_OFFERS_PER_ANNOUNCE

    def wait(self, interval: float) -> float:
        """Seconds between announces when the tracker asks for ``interval``."""
        value = max(interval, self.min_interval)
        if self.max_interval is not None:
            value = min(value, self.max_interval)
        return value


@dataclass(slots=True)
class _Pending(Generic[OfferT]):
    offer: OfferT
    expires: float


class AnnounceSession(Generic[OfferT]):
    """One swarm on one tracker connection; ``OfferT`` is the driver's offer object (only its
    ``sdp`` is read here).

    See the module docstring for the rules. The session outlives reconnects: ``started`` is sent
    once, and the tracker's interval and tracker id are kept.
    """

    def __init__(
        self,
        info_hash: str,
        peer_id: str,
        config: AnnounceConfig,
        rng: random.Random | None = None,
    ) -> None:
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.config = config
        self._rng = rng
        #: Latest interval the tracker asked for (``default_interval`` until it does).
        self.interval = config.default_interval
        self.tracker_id: str | None = None
        self.complete: int | None = None
        self.incomplete: int | None = None
        #: An announce reached the tracker, so ``started`` was sent.
        self.started_sent = False
        self.connected_now = False
        self.stopped = False
        self._announcing = False
        self._next_announce: float | None = None
        self._pending: dict[str, _Pending[OfferT]] = {}

    # -- connection ---------------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """The socket is open: announce at once."""
        if self.stopped:
            return
        self.connected_now = True
        self._announcing = False
        self._next_announce = now

    def disconnected(self) -> list[OfferT]:
        """The socket is gone: no announce until it is back; returns the offers to release."""
        self.connected_now = False
        self._announcing = False
        self._next_announce = None
        return self.release_offers()

    # -- announcing ---------------------------------------------------------------------------

    @property
    def wait_interval(self) -> float:
        """Seconds from our latest announce or the tracker's latest response to the next
        announce."""
        return self.config.wait(self.interval)

    @property
    def next_announce_at(self) -> float | None:
        """When the next announce is due (``None``: not while disconnected or announcing)."""
        return self._next_announce

    def announce_due(self, now: float) -> bool:
        return self._next_announce is not None and now >= self._next_announce

    def begin_announce(self, wanted: int) -> int:
        """Start the due announce: how many offers to make for it, given how many the swarm
        wants. Nothing else is due until :meth:`announce` (the offers take a while to make)."""
        if not self.connected_now or self.stopped:
            raise LocalProtocolError("announce while not connected")
        self._announcing = True
        self._next_announce = None
        return max(0, min(wanted, self.config.max_offers, MAX_OFFERS_PER_ANNOUNCE))

    def announce(self, now: float, offers: Sequence[OfferT]) -> str:
        """The announce text carrying ``offers``; they are now pending.

        The next announce is scheduled even if this one fails: a :class:`LocalProtocolError`
        (an SDP that cannot be sent) leaves nothing pending -- the caller releases ``offers``.
        """
        if not self._announcing or not self.connected_now:
            raise LocalProtocolError("announce() without begin_announce()")
        self._announcing = False
        self._next_announce = now + self.wait_interval
        ids = [self._new_offer_id() for _ in offers]
        text = encode(
            Announce(
                info_hash=self.info_hash,
                peer_id=self.peer_id,
                offers=tuple(
                    Offer(offer_id=i, sdp=o.sdp) for i, o in zip(ids, offers, strict=True)
                ),
                event=None if self.started_sent else "started",
                numwant=len(offers),
                uploaded=0,
                downloaded=0,
                trackerid=self.tracker_id,
            )
        )
        expires = now + self.config.offer_timeout
        for offer_id, offer in zip(ids, offers, strict=True):
            self._pending[offer_id] = _Pending(offer, expires)
        return text

    def announce_sent(self, now: float) -> None:
        """The text from :meth:`announce` went out: ``started`` is done; wait from now."""
        self.started_sent = True
        if self.connected_now and not self._announcing and not self.stopped:
            self._next_announce = now + self.wait_interval

    def on_response(self, now: float, msg: AnnounceResponse) -> None:
        """The tracker's reply to an announce: its interval counts from now."""
        interval = msg.interval or msg.min_interval
        if interval:
            self.interval = float(interval)
        if msg.tracker_id:
            self.tracker_id = msg.tracker_id
        if msg.complete is not None:
            self.complete = msg.complete
        if msg.incomplete is not None:
            self.incomplete = msg.incomplete
        if self.connected_now and not self._announcing and not self.stopped:
            self._next_announce = now + self.wait_interval

    def completed(self) -> str:
        """An ``event: "completed"`` announce, without offers (``announce()``).

        The driver does not send it: a live stream is never complete, and p2p-media-loader
        browsers never send it either.
        """
        return encode(
            Announce(
                info_hash=self.info_hash,
                peer_id=self.peer_id,
                event="completed",
                numwant=0,
                uploaded=0,
                downloaded=0,
                trackerid=self.tracker_id,
            )
        )

    def leave(self) -> tuple[str | None, list[OfferT]]:
        """End the session: the ``stopped`` text (``None`` if ``started`` never went out) and
        the offers to release. Nothing is announced afterwards."""
        self.stopped = True
        self._announcing = False
        self._next_announce = None
        stopped = None
        if self.started_sent:
            stopped = encode(
                Announce(
                    info_hash=self.info_hash,
                    peer_id=self.peer_id,
                    event="stopped",
                    numwant=0,
                    uploaded=0,
                    downloaded=0,
                    trackerid=self.tracker_id,
                )
            )
        return stopped, self.release_offers()

    # -- pending offers -----------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def next_expiry_at(self) -> float | None:
        """When the oldest pending offer expires (``None``: nothing pending)."""
        if not self._pending:
            return None
        return min(p.expires for p in self._pending.values())

    def expire(self, now: float) -> list[OfferT]:
        """Pending offers whose ``offer_timeout`` has passed (removed; release them)."""
        expired = [oid for oid, p in self._pending.items() if p.expires <= now]
        return [self._pending.pop(oid).offer for oid in expired]

    def match_answer(self, offer_id: str) -> OfferT | None:
        """The pending offer an answer is for (removed), or ``None`` if it is not ours or no
        longer pending (expired, released, or already answered)."""
        item = self._pending.pop(offer_id, None)
        return None if item is None else item.offer

    def release_offers(self) -> list[OfferT]:
        """Every pending offer (removed; release them)."""
        pending, self._pending = self._pending, {}
        return [p.offer for p in pending.values()]

    # -- inbound ------------------------------------------------------------------------------

    def accepts_from(self, peer_id: str) -> bool:
        """Whether a relayed offer or answer from ``peer_id`` is for us to handle: not after
        :meth:`leave`, and never our own (``_onAnnounceResponse``: "ignore offers/answers from
        this client")."""
        return not self.stopped and peer_id != self.peer_id

    def answer(self, offer: RelayedOffer, sdp: str) -> str:
        """The text answering a relayed ``offer``: ``to_peer_id`` and ``offer_id`` echoed exactly.

        Raises :class:`LocalProtocolError` if ``sdp`` cannot be sent.
        """
        return encode(
            AnswerRelay(
                info_hash=self.info_hash,
                peer_id=self.peer_id,
                to_peer_id=offer.peer_id,
                offer_id=offer.offer_id,
                sdp=sdp,
                trackerid=self.tracker_id,
            )
        )

    def _new_offer_id(self) -> str:
        while True:
            offer_id = new_offer_id(self._rng)
            if offer_id not in self._pending:
                return offer_id


# -- relayed offers -------------------------------------------------------------------------


class OfferQueue(Generic[T]):
    """Relayed offers waiting to be answered: FIFO, bounded, stale ones skipped."""

    def __init__(self, *, max_queued: int, max_concurrent: int, max_age: float) -> None:
        self.max_queued = max_queued
        self.max_concurrent = max_concurrent
        self.max_age = max_age
        #: Offers taken and not yet :meth:`finished`.
        self.answering = 0
        self.closed = False
        self._queue: deque[tuple[float, T]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, now: float, item: T) -> int:
        """Queue an offer that arrived at ``now``; returns how many older ones were dropped to
        make room (0 or 1)."""
        if self.closed:
            return 0
        dropped = 0
        while self._queue and len(self._queue) >= self.max_queued:
            self._queue.popleft()
            dropped += 1
        self._queue.append((now, item))
        return dropped

    def take(self, now: float) -> tuple[list[T], int]:
        """Offers to answer now, oldest first, up to the free answering slots (each one taken
        counts as answering until :meth:`finished`), and how many stale ones were skipped."""
        ready: list[T] = []
        skipped = 0
        while self._queue and self.answering < self.max_concurrent and not self.closed:
            received, item = self._queue.popleft()
            if now - received > self.max_age:
                skipped += 1
                continue
            self.answering += 1
            ready.append(item)
        return ready, skipped

    def finished(self) -> None:
        """One taken offer has been answered (or declined, or failed)."""
        self.answering = max(0, self.answering - 1)

    def close(self) -> None:
        """Drop every waiting offer and take no more."""
        self.closed = True
        self._queue.clear()
