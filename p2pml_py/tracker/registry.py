"""The embedded tracker's swarm bookkeeping, without sockets (sans-I/O).

How it works
------------
:class:`SwarmRegistry` holds, per info hash, the peers that announced over a WebSocket and the
connection ("conn", any hashable token the I/O driver picks) each peer id is bound to. The driver
feeds it parsed client messages together with the sending conn and the current time, and gets
back a list of :class:`Outgoing` -- (conn, tracker message) pairs to send. It mirrors
``bittorrent-tracker`` 11.2.3 ``server.js _onWebSocketRequest`` and ``lib/server/swarm.js``:

* announce -> reply ``{complete, incomplete, interval}`` to the sender (also for ``stopped``),
  then relay the k-th offer to the k-th of up to ``len(offers)`` random *other* peers;
* answer -> forwarded to ``to_peer_id`` only; no reply to the sender (``if (!params.answer)``);
* a closed conn leaves every swarm it was in (``_onWebSocketClose``).

Where we are stricter than bittorrent-tracker (it trusts clients):

* a peer id is bound, per swarm, to the conn that first announced it; another conn using it
  there is refused (no hijacking someone else's offers and answers);
* caps on swarms, peers per swarm, swarms per conn and offers per announce; when full, new
  entries are refused with a failure reason rather than evicting existing peers;
* peers not heard from for ``2 * interval`` are forgotten (wt-tracker does the same).

Refusals raise :class:`~p2pml_py.base.errors.TrackerProtocolError`; the driver turns them into a
``failure reason`` reply. HTTP (BitTorrent) announces are kept as separate ``http`` peers: they
are counted and listed to other HTTP peers but never receive WebRTC offers, as in ``swarm.js
_getPeers``.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

from p2pml_py.base.errors import TrackerProtocolError
from p2pml_py.tracker.messages import (
    Announce,
    AnnounceResponse,
    AnswerRelay,
    RelayedAnswer,
    RelayedOffer,
    ScrapeFile,
    ScrapeRequest,
    ScrapeResponse,
    TrackerMessage,
)

__all__ = ["HttpPeer", "Outgoing", "RegistryLimits", "SwarmRegistry"]

#: bittorrent-tracker's WebSocket interval: ``ceil(intervalMs / 1000 / 5)`` of 10 min = 120 s.
DEFAULT_INTERVAL: Final = 120


@dataclass(frozen=True, slots=True)
class RegistryLimits:
    """Memory and fan-out bounds of the registry."""

    max_swarms: int = 10_000
    max_peers_per_swarm: int = 1_000
    max_swarms_per_conn: int = 64
    max_offers: int = 20


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for the driver to send on ``conn``."""

    conn: Hashable
    message: TrackerMessage


@dataclass(frozen=True, slots=True)
class HttpPeer:
    """A BitTorrent (HTTP) peer as listed in an HTTP announce response."""

    peer_id: str
    ip: str
    port: int


@dataclass(slots=True)
class _Peer:
    conn: Hashable | None  # None for HTTP peers
    last_seen: float
    complete: bool
    ip: str = ""
    port: int = 0


@dataclass(slots=True)
class _Swarm:
    peers: dict[str, _Peer] = field(default_factory=dict)
    downloaded: int = 0

    def counts(self) -> tuple[int, int]:
        complete = sum(1 for p in self.peers.values() if p.complete)
        return complete, len(self.peers) - complete


class SwarmRegistry:
    """Swarms, peers and relays of an embedded WebTorrent tracker; see the module docstring."""

    def __init__(
        self,
        *,
        interval: int = DEFAULT_INTERVAL,
        limits: RegistryLimits | None = None,
        rng: random.Random | None = None,
        full_scrape: bool = False,
    ) -> None:
        if interval < 1:
            raise ValueError("interval must be >= 1 s")
        self.interval = interval
        #: Answer a scrape that names no info hash with every swarm. Off by default: it would
        #: list the info hashes of every site using this tracker (production WebTorrent
        #: trackers disable it too).
        self.full_scrape = full_scrape
        self.limits = limits or RegistryLimits()
        self._rng = rng or random.Random()
        self._swarms: dict[str, _Swarm] = {}
        # conn -> info hashes it has a peer in (to clean up on close)
        self._conn_swarms: dict[Hashable, dict[str, str]] = {}
        self.offers_relayed = 0
        self.answers_relayed = 0
        self.answers_undeliverable = 0

    # -- queries ------------------------------------------------------------------------------

    @property
    def swarm_count(self) -> int:
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        return sum(len(s.peers) for s in self._swarms.values())

    def peers_of(self, info_hash: str) -> frozenset[str]:
        swarm = self._swarms.get(info_hash)
        return frozenset(swarm.peers) if swarm else frozenset()

    # -- WebSocket messages ---------------------------------------------------------------------

    def announce(self, conn: Hashable, msg: Announce, now: float) -> list[Outgoing]:
        """Handle an announce from ``conn``; raise :class:`TrackerProtocolError` to refuse it."""
        if len(msg.offers) > self.limits.max_offers:
            raise TrackerProtocolError(
                f"too many offers: {len(msg.offers)} > {self.limits.max_offers}"
            )
        swarm = self._swarms.get(msg.info_hash)
        peer = swarm.peers.get(msg.peer_id) if swarm else None
        if peer is not None and peer.conn != conn:
            raise TrackerProtocolError("peer_id is in use by another connection")

        if msg.event == "stopped":
            if swarm is not None and peer is not None:
                self._remove_peer(msg.info_hash, msg.peer_id)
            return [Outgoing(conn, self._response(msg.info_hash))]

        if peer is None:
            if swarm is None:
                if len(self._swarms) >= self.limits.max_swarms:
                    raise TrackerProtocolError("tracker is full (too many swarms)")
                swarm = _Swarm()
            if len(swarm.peers) >= self.limits.max_peers_per_swarm:
                raise TrackerProtocolError("swarm is full")
            joined = self._conn_swarms.setdefault(conn, {})
            if msg.info_hash in joined:
                # Browsers use one peer id per swarm; a second one on the same socket would let
                # one connection fill a swarm with fake peers.
                raise TrackerProtocolError("connection already has a peer id in this swarm")
            if len(joined) >= self.limits.max_swarms_per_conn:
                raise TrackerProtocolError("too many swarms on one connection")
            self._swarms[msg.info_hash] = swarm
            peer = _Peer(conn=conn, last_seen=now, complete=msg.left == 0)
            swarm.peers[msg.peer_id] = peer
            joined[msg.info_hash] = msg.peer_id
        assert swarm is not None
        peer.last_seen = now
        if msg.left == 0 and not peer.complete:
            peer.complete = True
            swarm.downloaded += 1
        elif msg.event == "completed" and not peer.complete:
            peer.complete = True
            swarm.downloaded += 1

        out = [Outgoing(conn, self._response(msg.info_hash))]
        if msg.offers:
            others = [
                (pid, p)
                for pid, p in swarm.peers.items()
                if pid != msg.peer_id and p.conn is not None
            ]
            chosen = self._rng.sample(others, min(len(others), len(msg.offers)))
            for offer, (_pid, target) in zip(msg.offers, chosen, strict=False):
                out.append(
                    Outgoing(
                        target.conn,
                        RelayedOffer(
                            info_hash=msg.info_hash,
                            peer_id=msg.peer_id,
                            offer_id=offer.offer_id,
                            sdp=offer.sdp,
                        ),
                    )
                )
            self.offers_relayed += len(chosen)
        return out

    def answer(self, conn: Hashable, msg: AnswerRelay, now: float) -> list[Outgoing]:
        """Forward an answer to ``to_peer_id``; refuse answers from non-members or hijackers."""
        swarm = self._swarms.get(msg.info_hash)
        if swarm is None:
            raise TrackerProtocolError("no swarm with that info_hash")
        sender = swarm.peers.get(msg.peer_id)
        if sender is None:
            raise TrackerProtocolError("peer_id has not announced in this swarm")
        if sender.conn != conn:
            raise TrackerProtocolError("peer_id is in use by another connection")
        sender.last_seen = now
        target = swarm.peers.get(msg.to_peer_id)
        if target is None or target.conn is None:
            # bittorrent-tracker only emits a server-side warning here; nothing is sent.
            self.answers_undeliverable += 1
            return []
        self.answers_relayed += 1
        return [
            Outgoing(
                target.conn,
                RelayedAnswer(
                    info_hash=msg.info_hash,
                    peer_id=msg.peer_id,
                    offer_id=msg.offer_id,
                    sdp=msg.sdp,
                ),
            )
        ]

    def scrape(self, msg: ScrapeRequest) -> ScrapeResponse:
        if not msg.info_hashes and not self.full_scrape:
            raise TrackerProtocolError("full scrape is disabled: name the info hashes")
        hashes = msg.info_hashes or tuple(self._swarms)
        files = []
        for info_hash in hashes:
            swarm = self._swarms.get(info_hash)
            complete, incomplete = swarm.counts() if swarm else (0, 0)
            downloaded = swarm.downloaded if swarm else 0
            files.append(ScrapeFile(info_hash, complete, incomplete, downloaded))
        return ScrapeResponse(files=tuple(files), min_request_interval=self.interval)

    def disconnect(self, conn: Hashable) -> None:
        """Forget every peer bound to ``conn`` (its socket closed)."""
        for info_hash, peer_id in list(self._conn_swarms.pop(conn, {}).items()):
            self._remove_peer(info_hash, peer_id)

    def expire(self, now: float) -> int:
        """Forget peers silent for more than 2 x interval; return how many were removed."""
        deadline = now - 2 * self.interval
        stale = [
            (info_hash, peer_id)
            for info_hash, swarm in self._swarms.items()
            for peer_id, peer in swarm.peers.items()
            if peer.last_seen < deadline
        ]
        for info_hash, peer_id in stale:
            self._remove_peer(info_hash, peer_id)
        return len(stale)

    # -- HTTP (BitTorrent) announces ----------------------------------------------------------

    def http_announce(
        self,
        info_hash: str,
        peer_id: str,
        ip: str,
        port: int,
        *,
        event: str | None,
        left: int | None,
        numwant: int,
        now: float,
    ) -> tuple[int, int, list[HttpPeer]]:
        """Handle a BitTorrent HTTP announce; return (complete, incomplete, peers)."""
        swarm = self._swarms.get(info_hash)
        peer = swarm.peers.get(peer_id) if swarm else None
        if peer is not None and peer.conn is not None:
            raise TrackerProtocolError("peer_id is in use by another connection")
        if event == "stopped":
            if peer is not None:
                self._remove_peer(info_hash, peer_id)
        else:
            if peer is None:
                if swarm is None:
                    if len(self._swarms) >= self.limits.max_swarms:
                        raise TrackerProtocolError("tracker is full (too many swarms)")
                    swarm = _Swarm()
                if len(swarm.peers) >= self.limits.max_peers_per_swarm:
                    raise TrackerProtocolError("swarm is full")
                self._swarms[info_hash] = swarm
                peer = _Peer(conn=None, last_seen=now, complete=left == 0, ip=ip, port=port)
                swarm.peers[peer_id] = peer
            peer.last_seen = now
            peer.ip, peer.port = ip, port
            if (left == 0 or event == "completed") and not peer.complete:
                peer.complete = True
                assert swarm is not None
                swarm.downloaded += 1
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return 0, 0, []
        candidates = [
            HttpPeer(pid, p.ip, p.port)
            for pid, p in swarm.peers.items()
            if p.conn is None and pid != peer_id
        ]
        chosen = self._rng.sample(candidates, min(len(candidates), max(numwant, 0)))
        complete, incomplete = swarm.counts()
        return complete, incomplete, chosen

    # -- internals ------------------------------------------------------------------------------

    def _response(self, info_hash: str) -> AnnounceResponse:
        swarm = self._swarms.get(info_hash)
        complete, incomplete = swarm.counts() if swarm else (0, 0)
        return AnnounceResponse(
            info_hash=info_hash, complete=complete, incomplete=incomplete, interval=self.interval
        )

    def _remove_peer(self, info_hash: str, peer_id: str) -> None:
        swarm = self._swarms.get(info_hash)
        if swarm is None:
            return
        peer = swarm.peers.pop(peer_id, None)
        if peer is not None and peer.conn is not None:
            joined = self._conn_swarms.get(peer.conn)
            if joined is not None and joined.get(info_hash) == peer_id:
                del joined[info_hash]
                if not joined:
                    del self._conn_swarms[peer.conn]
        if not swarm.peers:
            del self._swarms[info_hash]
