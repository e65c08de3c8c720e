"""Seeder + viewers against a local origin: VOD."""

from __future__ import annotations

import asyncio
import hashlib

from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer
from tests.roles.helpers import store_filled

RENDITION = (Rendition("360p", bandwidth=800_000, width=640, height=360),)


async def test_vod_one_seeder_four_viewers() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITION, vod_segments=60, segment_size=96 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        async with Seeder(origin.url, options, source_config=origin.source_config()) as seeder:
            await store_filled(seeder.streams[0].store, 60)
            egress_before = origin.stats.segment_bytes()
            # 120 s of content played at 4x: the browsers' 15 s high-demand window, in content
            # seconds, is 3.75 s of wall time.
            scheduler = SchedulerConfig(playback_rate=4.0, high_demand_time_window=15.0 / 4)
            viewers = [
                Viewer(
                    origin.url, options, source_config=origin.source_config(), scheduler=scheduler
                )
                for _ in range(4)
            ]
            for viewer in viewers:
                await viewer.__aenter__()
            try:
                async with asyncio.timeout(60):
                    for viewer in viewers:
                        await viewer.wait_ended()
            finally:
                for viewer in viewers:
                    await viewer.aclose()
            summaries = [v.summary().to_json() for v in viewers]
            viewer_egress = origin.stats.segment_bytes() - egress_before
        http = sum(s["http_bytes"] for s in summaries)
        p2p = sum(s["p2p_bytes"] for s in summaries)
        share = p2p / (http + p2p)
        stream_bytes = 60 * 96 * 1024
        print(
            f"\nVOD 1 seeder + 4 viewers: P2P share {share:.0%}, stalls "
            f"{[s['stalls'] for s in summaries]}, startup {[s['startup_time'] for s in summaries]}, "
            f"origin egress to viewers {viewer_egress / stream_bytes:.2f} stream copies, "
            f"seeder uploaded {seeder.uploaded / stream_bytes:.2f} copies"
        )
        for summary in summaries:
            print(
                {
                    k: summary[k]
                    for k in (
                        "http_segments",
                        "p2p_segments",
                        "p2p_failures",
                        "peers_seen",
                        "startup_time",
                    )
                }
            )
            assert summary["stalls"] == 0, summary
            assert summary["ended"]
            for sid, digest in next(iter(summary["segments"].values())).items():
                assert (
                    digest == hashlib.sha256(origin.expected_segment("360p", int(sid))).hexdigest()
                )
        assert share >= 0.70
        assert viewer_egress == http
