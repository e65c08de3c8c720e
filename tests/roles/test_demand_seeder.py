"""A real seeder fetching on demand, on loopback: synthetic origin, our tracker, a real viewer.

Nothing watches -> the seeder loads playlists only; a viewer joins one rendition -> that
rendition alone is fetched and the viewer plays without a stall; the viewer leaves -> fetching
stops once the tracker's count dropped and the grace passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from p2pml_py.base.aio import cancel_and_wait
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.demand import DemandConfig, FetchReport
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer

RENDITIONS = tuple(
    Rendition(f"r{i}", bandwidth=bw, width=w, height=h, segment_size=bw // 8)
    for i, (bw, w, h) in enumerate(
        ((200_000, 416, 234), (400_000, 640, 360), (800_000, 960, 540), (1_600_000, 1280, 720))
    )
)
WATCHED = 2
#: The live tuning INTEROP-NOTES found for browsers (highDemandTimeWindow 4, liveSyncDurationCount 6).
LIVE = SchedulerConfig(high_demand_time_window=4.0)
GRACE = 2.0
#: The tracker asks for 2 s; the client announces every 5 s at the fastest (its min_interval).
ANNOUNCE_EVERY = 5.0


async def until(
    origin: SyntheticOrigin, tracker: TrackerServer, predicate: Callable[[], bool], timeout: float
) -> None:
    """Until ``predicate()`` holds, re-checked on every origin response (a live playlist is
    reloaded every segment duration) and every tracker message (announces, offers)."""
    waits = [
        asyncio.create_task(origin.stats.changed.wait_until(predicate)),
        asyncio.create_task(tracker.wait_until(predicate)),
    ]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(waits)


def segment_bytes_of(origin: SyntheticOrigin, name: str) -> int:
    return origin.stats.bytes_under(f"/{name}/")


async def test_live_demand_follows_only_the_watched_rendition() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, live=True, segment_duration=1.0, window=8) as origin,
        TrackerServer(interval=2) as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        demand = DemandConfig(grace=GRACE, tick=0.2)
        async with Seeder(
            origin.url, options, source_config=origin.source_config(), fetch="demand", demand=demand
        ) as seeder:

            def reports() -> list[FetchReport]:
                return seeder.fetch_reports()

            names = [s.stream.url.rsplit("/", 2)[-2] for s in seeder.streams]
            assert names == [r.name for r in RENDITIONS]
            # No viewer: the playlists are reloaded (the window at start and 3 new segments
            # noted as not fetched), the tracker counted nobody else, no segment was fetched.
            await until(
                origin,
                tracker,
                lambda: all(
                    r.skipped_segments >= 8 + 3 and r.tracker_others == 0 for r in reports()
                ),
                20,
            )
            assert origin.stats.segment_paths() == []
            assert seeder.http_bytes == 0
            for report in reports():
                assert (report.mode, report.state, report.starts) == ("demand", "idle", 0)
                assert report.saved_bytes > 0

            viewer = Viewer(
                origin.url,
                options,
                source_config=origin.source_config(),
                rendition=WATCHED,
                scheduler=LIVE,
                live_sync_segments=6,
            )
            try:
                await viewer.start()
                await until(origin, tracker, lambda: reports()[WATCHED].origin_segments >= 6, 20)
                woke = reports()[WATCHED]
                assert woke.state == "following" and woke.starts == 1
                # The viewer plays on, P2P from the seeder once it is past the urgent window.
                await until(
                    origin, tracker, lambda: seeder.uploaded > 0 and (viewer.position or 0) > 6, 30
                )
                stalls = viewer.stalls
                p2p = viewer.p2p_bytes
            finally:
                left = time.monotonic()
                await viewer.aclose()
            assert stalls == 0
            assert p2p > 0
            # Only the watched rendition came from the origin (the seeder's and the viewer's
            # fetches together); the seeder's own count agrees with what it holds per rendition.
            for index, name in enumerate(names):
                fetched = segment_bytes_of(origin, name)
                assert (fetched > 0) == (index == WATCHED), (name, fetched)
            now = reports()
            assert (
                seeder.http_bytes == sum(r.origin_bytes for r in now) == now[WATCHED].origin_bytes
            )
            assert [r.state for r in now] == ["idle", "idle", "following", "idle"]

            # The viewer left: the next announce response counts nobody, the grace passes, and
            # the rendition goes idle; then no more segments are fetched.
            await until(origin, tracker, lambda: reports()[WATCHED].state == "idle", 20)
            idle_after = time.monotonic() - left
            print(
                f"\nlive demand: watched rendition fetched {now[WATCHED].origin_segments} "
                f"segments, others 0 (saved est. {[r.saved_bytes for r in now]} bytes); "
                f"viewer stalls {stalls}, P2P {p2p} bytes; idle {idle_after:.1f} s after it left"
            )
            assert idle_after <= ANNOUNCE_EVERY + GRACE + 2.0, idle_after
            fetched = reports()[WATCHED].origin_segments
            skipped = reports()[WATCHED].skipped_segments
            await until(
                origin, tracker, lambda: reports()[WATCHED].skipped_segments >= skipped + 3, 20
            )
            assert reports()[WATCHED].origin_segments == fetched
            assert reports()[WATCHED].tracker_others == 0
            summary = seeder.summary().to_json()
            assert [s["fetch"]["state"] for s in summary["streams"]] == ["idle"] * 4


async def test_vod_demand_fetches_a_rendition_once_it_is_wanted() -> None:
    async with (
        SyntheticOrigin(renditions=RENDITIONS, vod_segments=12, segment_duration=1.0) as origin,
        TrackerServer(interval=2) as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        demand = DemandConfig(grace=GRACE, tick=0.2)
        async with Seeder(
            origin.url, options, source_config=origin.source_config(), fetch="demand", demand=demand
        ) as seeder:
            await until(
                origin,
                tracker,
                lambda: all(r.tracker_others == 0 for r in seeder.fetch_reports()),
                20,
            )
            assert origin.stats.segment_paths() == []
            assert [r.skipped_segments for r in seeder.fetch_reports()] == [12] * 4
            scheduler = SchedulerConfig(playback_rate=4.0, high_demand_time_window=15.0 / 4)
            async with Viewer(
                origin.url,
                options,
                source_config=origin.source_config(),
                rendition=WATCHED,
                scheduler=scheduler,
            ) as viewer:
                await until(
                    origin,
                    tracker,
                    lambda: seeder.fetch_reports()[WATCHED].origin_segments == 12,
                    30,
                )
                async with asyncio.timeout(30):
                    await viewer.wait_ended()
                assert viewer.stalls == 0
            reports = seeder.fetch_reports()
            assert [r.origin_segments for r in reports] == [0, 0, 12, 0]
            assert reports[WATCHED].saved_bytes == 0 and reports[WATCHED].skipped_segments == 0
            # The others' savings: 12 segments each at BANDWIDTH x duration (= their real size).
            for r, rendition in zip(reports, RENDITIONS, strict=True):
                if r.label != reports[WATCHED].label:
                    assert r.saved_bytes == 12 * rendition.bandwidth // 8
            assert len(seeder.streams[WATCHED].store) == 12
