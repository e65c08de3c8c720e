"""Python peers swarm together: embedded tracker + real aiortc on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from p2pml_py.identity import ProtocolVersion, info_hash
from p2pml_py.rtc.factory import RtcFactory
from p2pml_py.rtc.loopback import LOOPBACK_CONFIG
from p2pml_py.storage import SegmentStore
from p2pml_py.swarm import Swarm
from p2pml_py.tracker.client import TrackerClient
from p2pml_py.tracker.server import TrackerServer

INFO_HASH = info_hash("v2-test-swarm-main-0", ProtocolVersion.V2_3)
SEGMENTS = {sid: random.Random(sid).randbytes(1024 * 1024) for sid in range(20)}
DIGESTS = {sid: hashlib.sha256(data).hexdigest() for sid, data in SEGMENTS.items()}


async def start_peer(stack: AsyncExitStack, tracker_url: str, store: SegmentStore) -> Swarm:
    client = await stack.enter_async_context(TrackerClient([tracker_url]))
    swarm = Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_CONFIG), store)
    return await stack.enter_async_context(swarm)


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as server:
        yield server


async def test_one_seeder_three_downloaders(tracker: TrackerServer) -> None:
    async with AsyncExitStack() as stack:
        seed_store = SegmentStore()
        for sid, data in SEGMENTS.items():
            seed_store.put(sid, data)
        seeder = await start_peer(stack, tracker.url, seed_store)
        leechers = []
        for _ in range(3):
            leechers.append(await start_peer(stack, tracker.url, SegmentStore()))
        everyone = [seeder, *leechers]
        async with asyncio.timeout(30):
            for swarm in everyone:
                await swarm.wait_until(lambda s=swarm: len(s.peers) == 3)
            # every leecher sees the seeder's announcement
            for swarm in leechers:
                await swarm.wait_until(lambda s=swarm: s.has_peer_with(19))

        async def fetch_all(swarm: Swarm, order: list[int]) -> None:
            for sid in order:
                data = await swarm.download(sid)
                assert hashlib.sha256(data).hexdigest() == DIGESTS[sid]
                swarm.store.put(sid, data)

        orders = [random.Random(n).sample(range(20), 20) for n in range(3)]
        async with asyncio.timeout(120):
            await asyncio.gather(*(fetch_all(s, o) for s, o in zip(leechers, orders, strict=True)))

        for swarm in leechers:
            assert set(swarm.store.ids()) == set(SEGMENTS)
            for sid in SEGMENTS:
                assert hashlib.sha256(swarm.store.get(sid) or b"").hexdigest() == DIGESTS[sid]
        uploaded_by_leechers = sum(s.stats.uploaded for s in leechers)
        print(
            f"seeder uploaded {seeder.stats.uploaded / 2**20:.1f} MiB, "
            f"leechers uploaded {uploaded_by_leechers / 2**20:.1f} MiB"
        )
        assert uploaded_by_leechers > 0
        assert seeder.stats.uploaded > 0
        assert sum(s.stats.downloaded for s in leechers) == 3 * 20 * 1024 * 1024
