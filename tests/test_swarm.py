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
from tests.nodejs import NodeScript

INFO_HASH = info_hash("v2-test-swarm-main-0", ProtocolVersion.V2_3)
SEGMENTS = {sid: random.Random(sid).randbytes(1024 * 1024) for sid in range(20)}
DIGESTS = {sid: hashlib.sha256(data).hexdigest() for sid, data in SEGMENTS.items()}


async def start_peer(stack: AsyncExitStack, tracker_url: str, store: SegmentStore) -> Swarm:
    client = await stack.enter_async_context(TrackerClient([tracker_url]))
    swarm = Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_CONFIG), store)
    return await stack.enter_async_context(swarm)


@pytest.fixture(params=["embedded", "bittorrent-tracker"])
async def tracker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Our embedded tracker, and the npm bittorrent-tracker server browsers' trackers run."""
    if request.param == "embedded":
        async with TrackerServer() as server:
            yield server.url
    else:
        request.getfixturevalue("node_modules")
        async with NodeScript.run("tracker-server.mjs") as node:
            port = (await node.expect(lambda e: "port" in e))["port"]
            yield f"ws://127.0.0.1:{port}"
            assert not [e for e in node.events if e.get("event") in ("warning", "error")]


async def test_one_seeder_three_downloaders(tracker_url: str) -> None:
    async with AsyncExitStack() as stack:
        seed_store = SegmentStore()
        for sid, data in SEGMENTS.items():
            seed_store.put(sid, data)
        seeder = await start_peer(stack, tracker_url, seed_store)
        leechers = []
        for _ in range(3):
            leechers.append(await start_peer(stack, tracker_url, SegmentStore()))
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


async def test_tracker_restart_swarm_reforms() -> None:
    """The tracker goes away mid-run: peers keep their connections, reconnect with back-off, and
    a newcomer finds everyone through the restarted tracker."""
    from p2pml_py.tracker.client import ReconnectPolicy

    server = TrackerServer()
    await server.start()
    port = server.port
    url = server.url
    try:
        async with AsyncExitStack() as stack:

            async def peer(store: SegmentStore) -> Swarm:
                client = TrackerClient(
                    [url], reconnect=ReconnectPolicy(base=0.2, cap=1.0), default_interval=2.0
                )
                await stack.enter_async_context(client)
                swarm = Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_CONFIG), store)
                return await stack.enter_async_context(swarm)

            seed_store = SegmentStore()
            seed_store.put(0, SEGMENTS[0])
            a = await peer(seed_store)
            b = await peer(SegmentStore())
            async with asyncio.timeout(20):
                await b.wait_until(lambda: a.peer_id in b.peers)

            await server.aclose()
            async with asyncio.timeout(10):
                await a.tracker.wait_until(lambda: not a.tracker.is_connected(url))
            # Existing WebRTC connections do not need the tracker.
            assert a.peer_id in b.peers
            assert await asyncio.wait_for(b.download(0), 10) == SEGMENTS[0]

            server = TrackerServer(port=port)
            await server.start()
            async with asyncio.timeout(20):
                await a.tracker.wait_until(lambda: a.tracker.is_connected(url))
                await b.tracker.wait_until(lambda: b.tracker.is_connected(url))
            assert a.tracker.stats().connects >= 2 and a.tracker.stats().disconnects >= 1
            c = await peer(SegmentStore())
            async with asyncio.timeout(30):
                await c.wait_until(lambda: {a.peer_id, b.peer_id} <= set(c.peers))
                await c.wait_until(lambda: c.has_peer_with(0))
            assert await asyncio.wait_for(c.download(0), 10) == SEGMENTS[0]
    finally:
        await server.aclose()
