"""Hostile offers relayed by a real tracker to a real seeding swarm.

A hostile peer joins the swarm over a raw WebSocket and announces one mutated offer after the
other (mutations of a real aiortc offer: see ``tests/rtc/sdp_mutations.py``). The seeding
:class:`~p2pml_py.engine.swarm.Swarm` (real tracker client, real aiortc) declines or answers
each; none raises, every answer it gave is given up within ``open_timeout``, and afterwards it
holds no connection, socket or task from them, its memory is back where it was, and a good peer
still connects and downloads.
"""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS, SERVER_MAX_PEERS
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.swarm import ConnectionBudget, Swarm, SwarmConfig
from p2pml_py.identity import ProtocolVersion, generate_peer_id, info_hash
from p2pml_py.rtc.aiortc_backend import RtcFactory
from p2pml_py.tracker.client import TrackerClient
from p2pml_py.tracker.messages import (
    MAX_SDP_CHARS,
    Announce,
    AnnounceResponse,
    Offer,
    TrackerFailure,
    encode,
    parse_tracker_message,
)
from p2pml_py.tracker.server import TrackerServer
from tests.conftest import record_fuzz_example
from tests.rtc.sdp_mutations import (
    CATALOGUE,
    LOOPBACK_FAST,
    Op,
    apply,
    forget_mdns_state,
    live_mutations,
    mutations,
    open_sockets,
    other_tasks,
    real_sdps,
    recording_pcs,
)

INFO_HASH = info_hash("v2-hostile-offers-0", ProtocolVersion.V2_3)
SEGMENT = secrets.token_bytes(200_000)


class HostileAnnouncer:
    """One peer id on a raw tracker WebSocket, announcing one offer at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peer_id = generate_peer_id(ProtocolVersion.V2_3)
        self.ws: ClientConnection | None = None
        self.refused = 0

    async def announce(self, sdp: str) -> None:
        """Send an announce with ``sdp`` as its one offer; return once the tracker dealt with it
        (answered the announce, refused it, or hung up on a frame that was too large)."""
        if self.ws is None:
            self.ws = await connect(self.url, proxy=None, max_size=None)
        offer = Offer("".join(chr(b) for b in secrets.token_bytes(20)), "v=0")
        # Our encoder refuses an SDP the tracker would refuse; a hostile peer has its own.
        message = json.loads(encode(Announce(INFO_HASH, self.peer_id, (offer,), left=1)))
        message["offers"][0]["offer"]["sdp"] = sdp
        try:
            await self.ws.send(json.dumps(message, ensure_ascii=False))
            while True:
                reply = parse_tracker_message(await self.ws.recv())
                if isinstance(reply, TrackerFailure):
                    self.refused += 1
                    return
                if isinstance(reply, AnnounceResponse):
                    return
                # a relayed answer from the seeder: not read any further
        except ConnectionClosed:
            self.refused += 1
            self.ws = None

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()


@dataclass
class Seeder:
    server: TrackerServer
    client: TrackerClient
    swarm: Swarm
    store: SegmentStore


@asynccontextmanager
async def seeding() -> AsyncIterator[Seeder]:
    """A tracker and a seeding swarm set up like ``seed``'s: a process-wide connection budget
    with its handshake slots, the server peer cap, answers given up after open_timeout."""
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(TrackerServer())
        store = SegmentStore()
        store.put(1, SEGMENT)
        client = await stack.enter_async_context(TrackerClient([server.url]))
        budget = ConnectionBudget(SERVER_MAX_CONNECTIONS)
        config = SwarmConfig(max_peers=SERVER_MAX_PEERS, connections=budget)
        swarm = Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_FAST), store, config=config)
        await stack.enter_async_context(swarm)
        async with asyncio.timeout(10):  # the tracker relays offers to announced peers only
            await server.wait_until(lambda: swarm.peer_id in server.registry.peers_of(INFO_HASH))
        yield Seeder(server, client, swarm, store)


async def hostile_burst(seeder: Seeder, offers: list[str]) -> None:
    """Announce every offer; wait until the seeder dealt with each one the tracker relayed and
    let go of every connection; check it is left holding nothing and raised nothing."""
    swarm, client = seeder.swarm, seeder.client
    hostile = HostileAnnouncer(seeder.server.url)
    gc.collect()
    sockets, tasks = open_sockets(), other_tasks()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with recording_pcs() as pcs:
            relayed_before = seeder.server.stats().offers_relayed
            for sdp in offers:
                await hostile.announce(sdp)
            relayed = seeder.server.stats().offers_relayed - relayed_before
            oversized = sum(len(sdp) > MAX_SDP_CHARS for sdp in offers)
            assert relayed == len(offers) - oversized  # the tracker refuses the rest
            assert hostile.refused == oversized

            def handled() -> bool:
                stats = client.stats()
                done = stats.answers_sent + stats.offers_declined + stats.handler_errors
                return done >= relayed

            async with asyncio.timeout(30):
                await client.wait_until(handled)
                # Answered offers are given up after open_timeout, each by its own task.
                waiting = [t for t in other_tasks() if t.get_name().startswith("swarm-incoming-")]
                if waiting:
                    await asyncio.wait(waiting)
            assert swarm.connection_count == 0
            await hostile.aclose()
            for _ in range(3):
                await asyncio.sleep(0)
            gc.collect()
            peak = tracemalloc.get_traced_memory()[1] - baseline
            after = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    stats = client.stats()
    assert stats.handler_errors == 0, "an offer made Swarm.handle_offer raise"
    assert stats.offers_received == stats.answers_sent + stats.offers_declined
    assert swarm.stats.offers_answered == stats.answers_sent
    # every answered offer failed to connect (the hostile peer never completes one)
    assert swarm.stats.connection_errors == relayed
    assert not swarm.peers
    assert [pc.connectionState for pc in pcs].count("closed") == len(pcs)
    assert len(pcs) == swarm.stats.offers_answered  # refused offers created none
    assert open_sockets() <= sockets
    assert other_tasks() <= tasks
    # what the seeder keeps for a hostile peer: a counters entry; nothing proportional to it
    assert peak < 8 * 2**20 + 2 * sum(map(len, offers)), peak / 2**20
    assert after < 512 * 1024, after / 2**20


async def good_peer_downloads(seeder: Seeder) -> None:
    async with (
        TrackerClient([seeder.server.url]) as client,
        Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_FAST), SegmentStore()) as viewer,
    ):
        async with asyncio.timeout(20):
            await viewer.wait_until(lambda: seeder.swarm.peer_id in viewer.peers)
            await viewer.wait_until(lambda: viewer.has_peer_with(1))
            assert await viewer.download(1, total_size=len(SEGMENT)) == SEGMENT


async def test_catalogue_offers_through_the_tracker() -> None:
    forget_mdns_state()
    base = real_sdps()[0]
    offers = [apply(base, mutation) for mutation in CATALOGUE.values()]
    async with seeding() as seeder:
        await hostile_burst(seeder, offers)
        assert seeder.swarm.stats.offers_answered > 0  # some were plausible enough to answer
        assert seeder.swarm.stats.offers_answered < len(offers) // 2
        await good_peer_downloads(seeder)
    forget_mdns_state()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(mutations, live_mutations), min_size=10, max_size=10))
async def test_random_offers_through_the_tracker(batch: list[list[Op]]) -> None:
    record_fuzz_example()
    forget_mdns_state()
    base = real_sdps()[0]
    async with seeding() as seeder:
        await hostile_burst(seeder, [apply(base, mutation) for mutation in batch])
        await good_peer_downloads(seeder)
    forget_mdns_state()
