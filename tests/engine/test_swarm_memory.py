"""Swarms on in-memory transports meeting through the real embedded tracker.

The signalling is real (our WebSocket tracker on 127.0.0.1 relays the offer and the answer); only
the data channels are in memory, so the swarm logic runs without aiortc.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.swarm import Swarm
from p2pml_py.identity import ProtocolVersion, info_hash
from p2pml_py.testing.memory import MemoryLink, MemoryNetwork, MemoryTransport
from p2pml_py.tracker.client import TrackerClient
from p2pml_py.tracker.server import TrackerServer

INFO_HASH = info_hash("v2-test-swarm-memory-0", ProtocolVersion.V2_3)
SEGMENT = random.Random(11).randbytes(300_001)
BOUND = 10.0  # seconds; only reached if something is broken


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as server:
        yield server


async def start_swarm(
    stack: AsyncExitStack, server: TrackerServer, network: MemoryNetwork, store: SegmentStore
) -> Swarm:
    client = await stack.enter_async_context(TrackerClient([server.url]))
    swarm = Swarm(INFO_HASH, client, MemoryTransport(network), store)
    return await stack.enter_async_context(swarm)


def link_to(swarm: Swarm, peer_id: str) -> MemoryLink:
    link = swarm.peers[peer_id].link
    assert isinstance(link, MemoryLink)
    return link


async def test_two_swarms_meet_and_trade_a_segment(tracker: TrackerServer) -> None:
    network = MemoryNetwork()
    async with AsyncExitStack() as stack:
        seed_store = SegmentStore()
        seed_store.put(3, SEGMENT)
        seeder = await start_swarm(stack, tracker, network, seed_store)
        leecher = await start_swarm(stack, tracker, network, SegmentStore())
        async with asyncio.timeout(BOUND):
            await leecher.wait_until(lambda: leecher.has_peer_with(3))
            await seeder.wait_until(lambda: leecher.peer_id in seeder.peers)
        # One connection, made of the offer and answer the tracker relayed.
        assert len(network.pairs) == 1
        assert link_to(leecher, seeder.peer_id).remote is link_to(seeder, leecher.peer_id)
        assert tracker.stats().offers_relayed >= 1 and tracker.stats().answers_relayed == 1

        data = await asyncio.wait_for(leecher.download(3), BOUND)
        assert data == SEGMENT
        assert leecher.stats.downloaded == len(SEGMENT)
        assert seeder.stats.uploaded == len(SEGMENT)
        assert seeder.stats.peers[leecher.peer_id].uploaded == len(SEGMENT)

        # The leecher stores it and announces it: the seeder's view of the leecher follows.
        leecher.store.put(3, data)
        async with asyncio.timeout(BOUND):
            await seeder.wait_until(lambda: seeder.has_peer_with(3))

        # The connection fails: both swarms forget the peer and count the drop.
        link_to(leecher, seeder.peer_id).drop()
        async with asyncio.timeout(BOUND):
            await leecher.wait_until(lambda: not leecher.peers)
            await seeder.wait_until(lambda: not seeder.peers)
        assert leecher.stats.drops == {"connection closed": 1}
        assert seeder.stats.drops == {"connection closed": 1}
        assert not leecher.stats.peers[seeder.peer_id].connected
