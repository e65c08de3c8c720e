"""Seeder + viewers: a live sliding window, origin outages and tracker outages."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from contextlib import AsyncExitStack

import pytest

from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
from tests.roles.helpers import store_filled

RENDITION = (Rendition("360p", bandwidth=800_000, width=640, height=360),)
#: The live tuning INTEROP-NOTES found for browsers (highDemandTimeWindow 4, liveSyncDurationCount 6).
LIVE = SchedulerConfig(high_demand_time_window=4.0)


async def run_for(seconds: float) -> None:
    await asyncio.sleep(seconds)  # real-time playback: the scenario itself takes this long


@pytest.mark.parametrize("with_seeder", [True, False], ids=["seeder", "viewers-only"])
async def test_live_sliding_window(with_seeder: bool) -> None:
    """With a seeder that follows the live edge, viewers get new segments from it: the seeder
    announces each one in ``p`` as soon as it starts loading it, so, exactly as in browsers, no
    viewer picks it for random HTTP. Without a seeder the random-HTTP rule does the seeding."""
    async with (
        SyntheticOrigin(
            renditions=RENDITION, live=True, segment_duration=2.0, window=10, segment_size=64 * 1024
        ) as origin,
        TrackerServer() as tracker,
        AsyncExitStack() as stack,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        seeder = None
        if with_seeder:
            seeder = await stack.enter_async_context(
                Seeder(origin.url, options, source_config=origin.source_config())
            )
        viewers = [
            Viewer(
                origin.url,
                options,
                source_config=origin.source_config(),
                scheduler=LIVE,
                live_sync_segments=6,
            )
            for _ in range(4)
        ]
        try:
            for viewer in viewers:
                await viewer.start()
            await run_for(20)
            summaries = [v.summary().to_json() for v in viewers]
        finally:
            await asyncio.gather(*(v.aclose() for v in viewers))
    http = sum(s["http_bytes"] for s in summaries)
    p2p = sum(s["p2p_bytes"] for s in summaries)
    random_http = [s["http_segments"].get("random", 0) for s in summaries]
    uploaded = [s["uploaded_bytes"] for s in summaries]
    print(
        f"\nlive ({'with' if seeder else 'without'} seeder): P2P share {p2p / (http + p2p):.0%}, "
        f"stalls {[s['stalls'] for s in summaries]}, random-HTTP segments per viewer "
        f"{random_http}, uploaded per viewer {uploaded}, "
        f"seeder uploaded {seeder.uploaded if seeder else 0}"
    )
    for summary in summaries:
        assert summary["stalls"] == 0, summary
        assert summary["startup_time"] is not None
        assert summary["skips"] == 0, summary  # kept up: never fell out of the window
    assert p2p > 0
    if seeder is None:
        # Viewers fetched new segments from the origin themselves and served them to the others.
        assert sum(random_http) >= 2, random_http
        assert sum(1 for u in uploaded if u > 0) >= 2, uploaded
    else:
        assert seeder.uploaded > 0


async def test_vod_origin_errors_viewers_fall_back_to_peers() -> None:
    """The origin fails the first segments (503) after the seeder got them: viewers take them from
    the seeder and play without a stall."""
    async with (
        SyntheticOrigin(renditions=RENDITION, vod_segments=40, segment_size=64 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        async with Seeder(origin.url, options, source_config=origin.source_config()) as seeder:
            await store_filled(seeder.streams[0].store, 40)
            for sequence in range(6):
                origin.override(f"360p/{sequence}.ts", "origin down", status=503)
            scheduler = SchedulerConfig(playback_rate=4.0, high_demand_time_window=15.0 / 4)
            viewers = [
                Viewer(
                    origin.url, options, source_config=origin.source_config(), scheduler=scheduler
                )
                for _ in range(2)
            ]
            try:
                for viewer in viewers:
                    await viewer.start()
                async with asyncio.timeout(40):
                    for viewer in viewers:
                        await viewer.wait_ended()
                summaries = [v.summary().to_json() for v in viewers]
            finally:
                await asyncio.gather(*(v.aclose() for v in viewers))
        for summary in summaries:
            brief = {k: v for k, v in summary.items() if k not in ("segments", "peers", "streams")}
            assert summary["stalls"] == 0, brief
            assert summary["origin_errors"] > 0, brief  # they did try the origin first
            assert len(next(iter(summary["segments"].values()))) == 40
            for sequence in range(6):
                digest = next(iter(summary["segments"].values()))[str(sequence)]
                expected = origin.expected_segment("360p", sequence)
                assert digest == hashlib.sha256(expected).hexdigest()
        assert seeder.uploaded > 0


async def test_live_origin_outage_seeder_serves_viewers_recover() -> None:
    """The whole origin goes down for 3 s of a live stream: the seeder keeps what it holds and
    retries, viewers play from their buffer, and everyone picks up new segments afterwards."""
    async with (
        SyntheticOrigin(
            renditions=RENDITION, live=True, segment_duration=1.0, window=10, segment_size=32 * 1024
        ) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        async with Seeder(
            origin.url, options, source_config=origin.source_config(), retry_delay=0.2
        ) as seeder:
            store = seeder.streams[0].store
            await store_filled(store, 5)
            viewers = [
                Viewer(
                    origin.url,
                    options,
                    source_config=origin.source_config(),
                    scheduler=LIVE,
                    live_sync_segments=6,
                )
                for _ in range(2)
            ]
            try:
                for viewer in viewers:
                    await viewer.start()
                await run_for(4)
                origin.outage = True
                await run_for(3)
                held_during = store.ids()
                newest = max(held_during)
                positions = [v.position or 0.0 for v in viewers]
                origin.outage = False
                await run_for(6)
                summaries = [v.summary().to_json() for v in viewers]
                errors = [v.source.stats.total_errors for v in viewers]
            finally:
                await asyncio.gather(*(v.aclose() for v in viewers))
            assert held_during, "the seeder keeps what it holds during an outage"
            assert max(store.ids()) > newest + 2, "the seeder resumed after the outage"
            assert seeder.source.stats.total_errors > 0
        for summary, before, error_count in zip(summaries, positions, errors, strict=True):
            brief = {k: v for k, v in summary.items() if k not in ("segments", "peers", "streams")}
            assert summary["stalls"] == 0, brief
            assert error_count > 0, brief  # the outage was seen (playlist reloads failed)
            assert summary["position"] > before + 4, brief  # kept playing after the outage
            held = [int(sid) for sid in next(iter(summary["segments"].values()))]
            assert max(held) > newest, brief  # got segments published after the outage


async def test_tracker_outage_viewer_goes_on_over_http() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with SyntheticOrigin(
        renditions=RENDITION, vod_segments=10, segment_size=32 * 1024
    ) as origin:
        options = PeerOptions(trackers=(f"ws://127.0.0.1:{dead_port}",), rtc=LOOPBACK_CONFIG)
        scheduler = SchedulerConfig(playback_rate=4.0, high_demand_time_window=15.0 / 4)
        async with Viewer(
            origin.url, options, source_config=origin.source_config(), scheduler=scheduler
        ) as viewer:
            async with asyncio.timeout(30):
                await viewer.wait_ended()
            summary = viewer.summary().to_json()
    assert summary["stalls"] == 0
    assert summary["http_bytes"] == 10 * 32 * 1024
    assert summary["p2p_bytes"] == 0
