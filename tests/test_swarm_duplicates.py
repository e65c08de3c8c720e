"""Two connections to one peer (both sides offered at once): the second one stays as a standby
session, takes over when the remote closes the first, and is closed after a grace period by the
side with the larger peer id. Real aiortc links on 127.0.0.1; the swarm's tracker is never used."""

from __future__ import annotations

import asyncio

import pytest

import p2pml_py.engine.swarm as swarm_module
from p2pml_py.engine.outcomes import Closed, CloseReason
from p2pml_py.engine.session import PeerSession
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.swarm import Swarm
from p2pml_py.identity import ProtocolVersion, info_hash
from p2pml_py.rtc.aiortc_backend.factory import RtcFactory
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.tracker.client import TrackerClient
from tests.rtc.helpers import linked

INFO_HASH = info_hash("v2-test-swarm-duplicates-0", ProtocolVersion.V2_3)
DATA = bytes(range(256)) * 2048  # 512 KiB
LOW, HIGH = "-PM0203-" + "a" * 12, "-PM0203-" + "z" * 12


def _swarm(peer_id: str) -> Swarm:
    store = SegmentStore()
    store.put(1, DATA)
    client = TrackerClient(["ws://127.0.0.1:9"])  # never started: no traffic
    return Swarm(INFO_HASH, client, RtcFactory(LOOPBACK_CONFIG), store, peer_id=peer_id)


async def test_remote_keeping_the_second_connection_still_gets_served() -> None:
    swarm = _swarm(LOW)  # the smaller id: it never closes a standby itself
    try:
        async with linked() as (first, remote_first), linked() as (second, remote_second):
            await swarm._add_peer(HIGH, first)
            await swarm._add_peer(HIGH, second)
            assert swarm.peers[HIGH].link is first
            assert swarm._standby[HIGH].link is second
            assert swarm.stats.duplicate_connections == 1
            # The remote (like p2p-media-loader) keeps the second and destroys the first.
            await remote_first.aclose()
            async with asyncio.timeout(20):
                await swarm.wait_until(
                    lambda: HIGH in swarm.peers and swarm.peers[HIGH].link is second
                )
            assert HIGH not in swarm._standby
            announced = asyncio.Event()
            remote = PeerSession(
                remote_second, LOW, SegmentStore(), on_announcement=lambda s: announced.set()
            )
            remote.start()
            try:
                async with asyncio.timeout(20):
                    await announced.wait()  # the standby announced on its own
                    assert 1 in remote.remote_loaded
                    assert await remote.download(1) == DATA
            finally:
                await remote.aclose()
    finally:
        await swarm.aclose()


async def test_larger_peer_id_closes_a_standby_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(swarm_module, "STANDBY_GRACE", 0.5)
    swarm = _swarm(HIGH)
    try:
        async with linked() as (first, _), linked() as (second, _):
            await swarm._add_peer(LOW, first)
            await swarm._add_peer(LOW, second)
            standby = swarm._standby[LOW]
            async with asyncio.timeout(10):
                await swarm.wait_until(lambda: LOW not in swarm._standby)
            assert standby.closed
            assert swarm.peers[LOW].link is first and not swarm.peers[LOW].closed
            assert standby.close_reason == Closed(CloseReason.DUPLICATE)
    finally:
        await swarm.aclose()
