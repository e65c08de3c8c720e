"""One stream's swarm: tracker signalling + WebRTC peer sessions + the segment store.

A :class:`Swarm` is what a browser's ``P2PLoader`` + ``P2PTrackerClient`` pair is for one stream
(``core/p2p/loader.ts``, ``core/p2p/tracker-client.ts``): it announces one info hash with its own
peer id, offers and answers connections through the tracker, keeps at most ``max_peers``
sessions (the first connection to reach ``open`` is a remote peer id's session), announces the
store to every peer on every change (coalesced), and downloads segments from peers chosen at
random weighted by measured throughput (2.3's ``downloadSegment``).

When two peers offer to each other at once, two connections open. Upstream keeps whichever
reaches "connect" first *on its side* and destroys the other, so the two sides may keep different
ones. Closing our second connection would then leave no connection at all (in a VOD swarm the
pair never trades until the next tracker round), so the second connection stays as a *standby*
session: it announces and serves like the first, and becomes the peer's session if the remote
closes the first. The side with the larger peer id closes a standby still open after
``STANDBY_GRACE`` seconds (two Python peers, which both keep their first).

Two swarms may share a :class:`~p2pml_py.engine.store.SegmentStore`: that is how one stream is served
to the 2.2 and the 2.3 swarm at once -- segment ids are the same in both versions.

Limits on connections, and what happens at each:

* ``SwarmConfig.max_peers`` -- peers in this swarm (connected plus connecting, standby
  connections not counted). A browser page keeps no fixed number; our viewer keeps 20, a seeder
  hundreds. At the limit an incoming offer gets no answer (the offerer's offer expires, as when a
  browser peer is busy) and we make no offers.
* ``SwarmConfig.connections`` -- a :class:`ConnectionBudget` shared by every swarm of a process:
  all their connections, standby and connecting ones included. At the limit: the same.
* A peer already connected is never dropped to make room. Instead, an offer that finds the swarm
  or the process full waits up to ``SwarmConfig.full_wait`` seconds (default 10) for a slot,
  at most ``MAX_WAITING_OFFERS`` per swarm at once: a peer that vanished without closing holds
  its slot until consent expires (``RtcConfig.consent_timeout``, 7.5 s), and a new peer arriving
  meanwhile is answered once it is released instead of being refused. The offerer waits 50 s for
  an answer (bittorrent-tracker ``OFFER_TIMEOUT``), so a 10 s wait is within its patience.

Connection storms: with a budget, at most ``max_handshakes`` connections of the process are set
up at once (SDP, ICE, DTLS, SCTP, until the data channel opens); the others wait their turn, in
the order their offers came, *before* any work is done for them. A hundred viewers joining in
the same second then each connect in a fraction of a second after their turn comes, instead of
all sharing the CPU until their handshakes time out together. An offer waits up to the
offerer's patience: bittorrent-tracker drops an unanswered offer after 50 s (``OFFER_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pml_py.base.aio import Notifier, Service, TaskGroup
from p2pml_py.base.errors import P2PMLError
from p2pml_py.base.limits import DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_PEERS
from p2pml_py.engine.outcomes import Closed, CloseReason
from p2pml_py.engine.session import DownloadError, PeerSession, SessionConfig, Validator
from p2pml_py.engine.store import SegmentStore
from p2pml_py.identity import ProtocolVersion, generate_peer_id
from p2pml_py.rtc.transport import Link, PendingAnswer, PendingOffer, Transport
from p2pml_py.tracker.client import TrackerClient

logger = logging.getLogger(__name__)

#: An unproven peer (measured at no more than this share of the fastest candidate, or not at
#: all) is weighted as if it ran at this share, so new and slow peers still get tried
#: (p2p-media-loader 2.3 ``core/p2p/loader.ts downloadSegment``: ``baseSpeed = max(1, maxSpeed
#: * 0.1)``).
UNPROVEN_SHARE = 0.1
#: Seconds after which the larger peer id closes a standby connection still open.
STANDBY_GRACE = 10.0
#: Closed peers whose byte counters are kept for reports.
MAX_PEER_HISTORY = 256
#: Default seconds an offer waits for a slot when the swarm or the process is full (module doc).
DEFAULT_FULL_WAIT = 10.0
#: Offers waiting for a slot at once, per swarm; more are refused at once.
MAX_WAITING_OFFERS = 8


def download_weights(rates: list[float]) -> list[float] | None:
    """How likely each candidate peer is to be asked for a segment, given its measured download
    rate (0: not measured); ``None`` means all alike. p2p-media-loader 2.3's rule
    (``core/p2p/loader.ts downloadSegment``): with no rate measured, a uniform pick; otherwise a
    peer weighs its rate, but at least ``UNPROVEN_SHARE`` of the fastest one's (at least 1) --
    lowered, when the unproven peers together would outweigh the proven ones, to the proven
    peers' total divided by the number of unproven ones."""
    fastest = max(rates, default=0.0)
    if fastest <= 0:
        return None
    base = max(1.0, fastest * UNPROVEN_SHARE)
    unproven = sum(1 for rate in rates if rate <= base)
    proven = sum(rate for rate in rates if rate > base)
    if unproven and proven and unproven * base > proven:
        base = proven / unproven
    return [max(rate, base) for rate in rates]


class ConnectionBudget:
    """A cap on the peer connections of every swarm that shares it (one per process).

    It counts, on demand, what each registered swarm holds (peers, standby and connecting
    connections), so nothing has to be given back and nothing can leak.
    """

    def __init__(self, limit: int, *, max_handshakes: int = DEFAULT_MAX_HANDSHAKES) -> None:
        if limit < 1:
            raise ValueError(f"max_connections must be >= 1, got {limit}")
        if max_handshakes < 1:
            raise ValueError(f"max_handshakes must be >= 1, got {max_handshakes}")
        self.limit = limit
        self.max_handshakes = max_handshakes
        #: Connections being set up (FIFO: asyncio wakes waiters in order).
        self.handshakes = asyncio.Semaphore(max_handshakes)
        #: Notified when a connection of any registered swarm ends (room may have appeared).
        self.changed = Notifier()
        self._swarms: weakref.WeakSet[Swarm] = weakref.WeakSet()

    def register(self, swarm: Swarm) -> None:
        self._swarms.add(swarm)

    def unregister(self, swarm: Swarm) -> None:
        self._swarms.discard(swarm)

    @property
    def used(self) -> int:
        return sum(swarm.connection_count for swarm in self._swarms)

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    max_peers: int = DEFAULT_MAX_PEERS
    session: SessionConfig = field(default_factory=SessionConfig)
    #: Shared by the swarms of a process (see the module docstring); None: no process-wide cap.
    connections: ConnectionBudget | None = field(default=None, compare=False)
    #: Seconds an offer that finds no room waits for a slot (0: refused at once).
    full_wait: float = DEFAULT_FULL_WAIT

    def __post_init__(self) -> None:
        if self.max_peers < 1:
            raise ValueError(f"max_peers must be >= 1, got {self.max_peers}")
        if not 0 <= self.full_wait <= 40:
            raise ValueError(
                f"full_wait must be in [0, 40] seconds (the offerer waits 50 s), "
                f"got {self.full_wait}"
            )


@dataclass(slots=True)
class PeerCounters:
    uploaded: int = 0
    downloaded: int = 0
    connected: bool = True
    close_reason: Closed | None = None


@dataclass(slots=True)
class SwarmStats:
    connects: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    uploaded: int = 0
    downloaded: int = 0
    offers_made: int = 0
    offers_answered: int = 0
    #: Offers from new peers left unanswered because the swarm (max_peers) or the process
    #: (ConnectionBudget) was full.
    offers_refused: int = 0
    #: Offers that found no room, waited, and got a slot (``SwarmConfig.full_wait``).
    offers_waited: int = 0
    #: Offers from peers we were not connected to (answered, refused or abandoned): someone
    #: new wants this stream -- a seeder's demand signal (:mod:`p2pml_py.roles.demand`).
    offers_received: int = 0
    duplicate_connections: int = 0
    connection_errors: int = 0
    #: Byte counters per remote peer id: current peers plus the latest closed ones.
    peers: OrderedDict[str, PeerCounters] = field(default_factory=OrderedDict)


class _Offer:
    """Adapts a transport's :class:`~p2pml_py.rtc.transport.PendingOffer` to the tracker client's."""

    def __init__(self, swarm: Swarm, outgoing: PendingOffer) -> None:
        self._swarm = swarm
        self._outgoing = outgoing
        self.sdp = outgoing.sdp

    async def accept_answer(self, peer_id: str, sdp: str) -> None:
        swarm = self._swarm
        if not swarm._is_new(peer_id) or not swarm._has_room():
            await self._outgoing.aclose()
            return
        swarm._connecting += 1
        gate = swarm._handshake_gate()
        try:
            if gate is not None:
                await gate.acquire()
            try:
                link = await self._outgoing.accept_answer(sdp)
            finally:
                if gate is not None:
                    gate.release()
        except P2PMLError as exc:
            swarm.stats.connection_errors += 1
            logger.info("swarm %s: connecting to %s failed: %s", swarm.name, peer_id, exc)
            return
        finally:
            swarm._connecting -= 1
        await swarm._add_peer(peer_id, link)

    async def aclose(self) -> None:
        await self._outgoing.aclose()


class Swarm(Service):
    """A stream swarm. ``async with Swarm(...)`` joins the tracker; leaving sends ``stopped``."""

    def __init__(
        self,
        info_hash: str,
        tracker: TrackerClient,
        rtc: Transport,
        store: SegmentStore,
        *,
        version: ProtocolVersion = ProtocolVersion.V2_3,
        peer_id: str | None = None,
        config: SwarmConfig | None = None,
        validator: Validator | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.info_hash = info_hash
        self.tracker = tracker
        self.rtc = rtc
        self.store = store
        self.version = version
        self.peer_id = peer_id or generate_peer_id(version)
        self.config = config or SwarmConfig()
        self.validator = validator
        self.name = name or info_hash
        self.stats = SwarmStats()
        self.peers: dict[str, PeerSession] = {}
        self._standby: dict[str, PeerSession] = {}  # a second connection per peer id, see above
        self.http_loading: tuple[int, ...] = ()
        self._rng = rng or random.Random()
        self._connecting = 0
        self._waiting_offers = 0  # offers waiting for a slot (_wait_for_room)
        self._incoming: set[PendingAnswer] = set()  # answered, not yet open
        self._tasks = TaskGroup(logger)
        self._announce_scheduled = False
        self._unsubscribe: Callable[[], None] | None = None
        self._changed = Notifier()
        self._joined = False
        self._closed = False
        if self.config.connections is not None:
            self.config.connections.register(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._joined:
            return
        self._joined = True
        self._unsubscribe = self.store.subscribe(self._schedule_announce)
        await self.tracker.join(self.info_hash, self.peer_id, self)
        logger.info(
            "swarm %s: joined as peer %s",
            self.name,
            self.peer_id,
            extra={"event": "swarm_joined", "swarm": self.name, "peer_id": self.peer_id},
        )

    async def aclose(self) -> None:
        """Leave the tracker (``stopped``), close every peer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._notify()  # offers waiting for a slot give up
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._joined:
            with contextlib.suppress(P2PMLError):
                await self.tracker.leave(self.info_hash)
        await self._tasks.aclose()
        # Answered offers whose task was cancelled before it ran (no wait_link to close them).
        await asyncio.gather(*(i.aclose() for i in self._incoming), return_exceptions=True)
        self._incoming.clear()
        sessions = [*self.peers.values(), *self._standby.values()]
        await asyncio.gather(
            *(peer.aclose(CloseReason.SWARM_CLOSED) for peer in sessions), return_exceptions=True
        )
        if self.config.connections is not None:
            self.config.connections.unregister(self)

    def _notify(self) -> None:
        self._changed.notify()
        budget = self.config.connections
        if budget is not None:
            budget.changed.notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked after every change (bound it yourself)."""
        await self._changed.wait_until(predicate)

    # -- tracker signalling (SwarmHandler) -------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Connections this swarm holds: peers, standby connections and ones being set up."""
        return len(self.peers) + len(self._standby) + self._connecting

    def _room(self) -> int:
        """Connections we may still start: the lower of this swarm's and the process's room."""
        room = self.config.max_peers - len(self.peers) - self._connecting
        budget = self.config.connections
        if budget is not None:
            room = min(room, budget.free)
        return max(0, room)

    def _has_room(self) -> bool:
        return self._room() > 0

    def _is_new(self, peer_id: str) -> bool:
        """Not ourselves, not connected already, and we are not closing."""
        return not self._closed and peer_id != self.peer_id and peer_id not in self.peers

    def _wants(self, peer_id: str) -> bool:
        """A connection to ``peer_id`` that is (about to be) open would be kept."""
        budget = self.config.connections
        return (
            self._is_new(peer_id)
            and len(self.peers) < self.config.max_peers
            and (budget is None or budget.used < budget.limit)
        )

    def tracker_others(self) -> int | None:
        """Other peers the trackers count in this swarm: the highest ``complete + incomplete``
        a connected tracker sent in its latest announce response, less ourselves (every peer
        that announced is counted, we included); ``None`` before any count."""
        best: int | None = None
        for url in self.tracker.urls:
            if not self.tracker.is_connected(url):
                continue  # a lost tracker's counts go stale
            state = self.tracker.swarm_state(url, self.info_hash)
            if state is None or (state.complete is None and state.incomplete is None):
                continue
            count = max(0, (state.complete or 0) + (state.incomplete or 0) - 1)
            best = count if best is None else max(best, count)
        return best

    def offers_wanted(self) -> int:
        if self._closed:
            return 0
        return min(5, self._room())

    async def make_offer(self) -> _Offer:
        outgoing = await self.rtc.create_offer()
        self.stats.offers_made += 1
        return _Offer(self, outgoing)

    @property
    def waiting_offers(self) -> int:
        """Offers waiting for a slot now (``SwarmConfig.full_wait``)."""
        return self._waiting_offers

    async def _wait_for_room(self) -> bool:
        """Full: wait up to ``full_wait`` for a slot (module doc); False if none came."""
        if self.config.full_wait <= 0 or self._waiting_offers >= MAX_WAITING_OFFERS:
            return False
        budget = self.config.connections
        changed = budget.changed if budget is not None else self._changed
        self._waiting_offers += 1
        self._changed.notify()  # for whoever watches waiting_offers
        try:
            async with asyncio.timeout(self.config.full_wait):
                await changed.wait_until(lambda: self._closed or self._has_room())
        except TimeoutError:
            return False
        finally:
            self._waiting_offers -= 1
        if self._closed:
            return False
        self.stats.offers_waited += 1
        return True

    def _handshake_gate(self) -> asyncio.Semaphore | None:
        """The process's handshake slots (none without a budget)."""
        budget = self.config.connections
        return None if budget is None else budget.handshakes

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
        """Answer a peer's offer (``None``: declined). With a budget this first waits for a
        handshake slot, which is held until the data channel opens or the connection fails."""
        if not self._is_new(peer_id):
            return None
        self.stats.offers_received += 1
        if not self._has_room() and not await self._wait_for_room():
            self.stats.offers_refused += 1  # full: this swarm's max_peers or the process's cap
            return None
        if not self._is_new(peer_id):
            return None  # connected meanwhile (its own offer to us, say), or we are closing
        self._connecting += 1  # the room is ours while we wait for a slot
        gate = self._handshake_gate()
        released = False

        def release(*_: object) -> None:
            nonlocal released
            if not released:
                released = True
                self._connecting -= 1
                if gate is not None:
                    gate.release()

        try:
            if gate is not None:
                await gate.acquire()
        except BaseException:
            self._connecting -= 1
            raise
        try:
            if self._closed:
                release()
                return None
            incoming = await self.rtc.accept_offer(sdp)
        except P2PMLError as exc:
            # An offer we cannot use (RtcSdpError ...) is the offerer's fault: declined and
            # counted, like a connection that fails later, not a handler error with a traceback.
            release()
            self.stats.connection_errors += 1
            logger.info("swarm %s: offer from %s refused: %s", self.name, peer_id, exc)
            return None
        except BaseException:
            release()
            raise
        if self._closed:  # closed while we answered: nobody would own the connection
            release()
            await incoming.aclose()
            return None
        self.stats.offers_answered += 1
        self._incoming.add(incoming)

        async def wait_for_link() -> None:
            try:
                link = await incoming.wait_link()
            except P2PMLError as exc:
                self.stats.connection_errors += 1
                logger.info("swarm %s: offer from %s failed: %s", self.name, peer_id, exc)
                return
            finally:
                self._incoming.discard(incoming)
                release()  # before _add_peer, which counts this connection as a peer
            await self._add_peer(peer_id, link)

        task = self._tasks.spawn(wait_for_link(), f"swarm-incoming-{peer_id}")
        # A task cancelled before it ever ran (the swarm closing) runs no finally clause.
        task.add_done_callback(release)
        return incoming.sdp

    # -- peers ----------------------------------------------------------------------------------

    def _new_session(self, peer_id: str, link: Link) -> PeerSession:
        return PeerSession(
            link,
            peer_id,
            self.store,
            config=self.config.session,
            on_announcement=self._on_announcement,
            on_closed=self._on_peer_closed,
            on_uploaded=self._on_uploaded,
            validator=self.validator,
        )

    async def _add_peer(self, peer_id: str, link: Link) -> None:
        if not self._closed and peer_id in self.peers and peer_id not in self._standby:
            # A second connection to a connected peer: the remote may keep this one.
            self.stats.duplicate_connections += 1
            standby = self._new_session(peer_id, link)
            self._standby[peer_id] = standby
            standby.start(self.store.ids(), self.http_loading)
            if self.peer_id > peer_id:
                self._tasks.spawn(
                    self._expire_standby(peer_id, standby), f"swarm-standby-{peer_id}"
                )
            return
        if not self._wants(peer_id):
            self.stats.duplicate_connections += int(peer_id in self.peers)
            await link.aclose()
            return
        session = self._new_session(peer_id, link)
        self.peers[peer_id] = session
        counters = PeerCounters()
        self.stats.peers[peer_id] = counters
        self.stats.peers.move_to_end(peer_id)
        self.stats.connects += 1
        logger.info("swarm %s: peer %s connected (%d peers)", self.name, peer_id, len(self.peers))
        session.start(self.store.ids(), self.http_loading)
        self._notify()

    async def _expire_standby(self, peer_id: str, standby: PeerSession) -> None:
        await asyncio.sleep(STANDBY_GRACE)
        if self._standby.get(peer_id) is standby and peer_id in self.peers:
            await standby.aclose(CloseReason.DUPLICATE)

    def _on_announcement(self, session: PeerSession) -> None:
        self._notify()

    def _on_peer_closed(self, session: PeerSession) -> None:
        peer_id = session.remote_peer_id
        if self._standby.get(peer_id) is session:
            del self._standby[peer_id]  # the remote kept the other connection
            self._notify()
            return
        if self.peers.get(peer_id) is session:
            del self.peers[peer_id]
            standby = self._standby.pop(peer_id, None)
            if standby is not None and not standby.closed and not self._closed:
                self.peers[peer_id] = standby  # the remote kept this one
                logger.info(
                    "swarm %s: peer %s continues on its second connection", self.name, peer_id
                )
                self._notify()
                return
        closed = session.close_reason or Closed(CloseReason.CLOSED_BY_US)
        self.stats.drops[closed.key] = self.stats.drops.get(closed.key, 0) + 1
        counters = self.stats.peers.get(session.remote_peer_id)
        if counters is not None:
            counters.connected = False
            counters.close_reason = closed
        self._trim_history()
        self._notify()

    def _trim_history(self) -> None:
        history = self.stats.peers
        closed = [pid for pid, c in history.items() if not c.connected]
        for pid in closed[: max(0, len(closed) - MAX_PEER_HISTORY)]:
            del history[pid]

    def _on_uploaded(self, session: PeerSession, count: int) -> None:
        self.stats.uploaded += count
        counters = self.stats.peers.get(session.remote_peer_id)
        if counters is not None:
            counters.uploaded += count

    # -- announcements --------------------------------------------------------------------------

    def _schedule_announce(self) -> None:
        # Coalesce bursts of store changes into one announcement per loop iteration, as browsers
        # coalesce per microtask (core/p2p/loader.ts).
        if self._announce_scheduled or self._closed:
            return
        self._announce_scheduled = True
        asyncio.get_running_loop().call_soon(self._announce_now)

    def _announce_now(self) -> None:
        self._announce_scheduled = False
        loaded = self.store.ids()
        for session in [*self.peers.values(), *self._standby.values()]:
            session.announce(loaded, self.http_loading)

    def set_http_loading(self, segment_ids: tuple[int, ...]) -> None:
        """Tell peers which segments we are fetching over HTTP right now (``p``)."""
        if segment_ids != self.http_loading:
            self.http_loading = segment_ids
            self._schedule_announce()

    # -- downloading ----------------------------------------------------------------------------

    def peers_with(self, segment_id: int) -> list[PeerSession]:
        return [p for p in self.peers.values() if segment_id in p.remote_loaded and not p.closed]

    def has_peer_with(self, segment_id: int, *, include_http_loading: bool = False) -> bool:
        for peer in self.peers.values():
            if segment_id in peer.remote_loaded:
                return True
            if include_http_loading and segment_id in peer.remote_http_loading:
                return True
        return False

    def _choose(self, candidates: list[PeerSession]) -> PeerSession:
        if len(candidates) == 1:
            return candidates[0]
        weights = download_weights([p.stats.download_rate for p in candidates])
        return self._rng.choices(candidates, weights=weights)[0]

    async def download(
        self, segment_id: int, *, byte_from: int = 0, total_size: int | None = None
    ) -> bytes:
        """Fetch a segment from the peers that announce it, trying another one on failure.

        Raises :class:`~p2pml_py.engine.session.DownloadError` (reason ``no-peer``) when no idle peer
        has it or every one failed.
        """
        tried: set[str] = set()
        while True:
            candidates = [
                p
                for p in self.peers_with(segment_id)
                if not p.busy and p.remote_peer_id not in tried
            ]
            if not candidates:
                raise DownloadError(segment_id, "no-peer")
            peer = self._choose(candidates)
            tried.add(peer.remote_peer_id)
            try:
                data = await peer.download(segment_id, byte_from=byte_from, total_size=total_size)
            except DownloadError as exc:
                logger.debug("swarm %s: %s from %s: %s", self.name, segment_id, peer, exc.reason)
                continue
            self.stats.downloaded += len(data)
            counters = self.stats.peers.get(peer.remote_peer_id)
            if counters is not None:
                if not counters.downloaded:
                    logger.info(
                        "swarm %s: first segment from peer %s",
                        self.name,
                        peer.remote_peer_id,
                        extra={
                            "event": "first_segment_from",
                            "swarm": self.name,
                            "remote_peer_id": peer.remote_peer_id,
                        },
                    )
                counters.downloaded += len(data)
            return data
