"""Never a bad segment stored, played or uploaded (issue 17): real ffmpeg-made MPEG-TS from a
real origin that truncates bodies, a seeder and a viewer over aiortc on 127.0.0.1, the
``hashes`` command and integrity lists, conditional-GET revalidation."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.hls.hashes import parse_integrity_list
from p2pml_py.hls.source import HlsSource, RetryPolicy, SourceConfig
from p2pml_py.hls.validate import Reason
from p2pml_py.roles.base import segment_digests
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.roles.viewer import Viewer
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.origin import Rendition, StreamOrigin, SyntheticOrigin
from p2pml_py.testing.stream import TestStream, cached_stream
from p2pml_py.tracker.server import TrackerServer
from tests.roles.helpers import play_to_end, store_filled

#: One failed attempt is enough: the seeder's own back-off does the retrying.
ONE_TRY = SourceConfig(segment_retry=RetryPolicy(attempts=1), stall_timeout=5.0)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> TestStream:
    """12 s of real media (ffmpeg: H.264 + AAC in MPEG-TS, 2 s segments, two renditions)."""
    return cached_stream(tmp_path_factory.mktemp("stream"), duration=12)


async def test_truncated_bodies_are_rejected_never_uploaded_and_refetched_after_recovery(
    stream: TestStream, caplog: pytest.LogCaptureFixture
) -> None:
    """The origin answers 200 with half of every segment and a matching Content-Length: nothing
    at the HTTP level says so. Every body is rejected (a log line naming the segment, a count),
    nothing is stored, so nothing can be uploaded; once the origin recovers, each segment is
    fetched again and the seeder serves the real bytes to a viewer."""
    async with StreamOrigin(stream) as origin, TrackerServer() as tracker:
        origin.faults.truncate = True
        url = origin.vod_url()
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        caplog.set_level(logging.WARNING, logger="p2pml_py.hls.guard")
        async with Seeder(
            url, options, renditions=[0], source_config=ONE_TRY, retry_delay=0.05
        ) as seeder:
            feeder_segments = len(stream.renditions[0].segments)
            guard = seeder.source.guard

            def all_rejected() -> bool:
                return guard.stats.total_rejected >= feeder_segments

            async with asyncio.timeout(20):
                await origin.stats.changed.wait_until(all_rejected)
            assert len(seeder.streams[0].store) == 0
            assert seeder.uploaded == 0
            assert set(guard.stats.rejected) <= {"ts-length", "ts-pes", "duration", "ts-packet"}
            assert seeder.source.stats.errors["invalid"] >= feeder_segments
            warned = [r for r in caplog.records if r.name == "p2pml_py.hls.guard"]
            assert any(r.getMessage().startswith("segment 0 from origin rejected") for r in warned)
            assert all(r.__dict__.get("event") == "segment_rejected" for r in warned)
            others = [r for r in caplog.records if r.name != "p2pml_py.hls.guard"]
            assert not [r for r in others if r.levelno >= logging.WARNING]  # one line each

            origin.faults.truncate = False
            await store_filled(seeder.streams[0].store, feeder_segments, timeout=30)
            playlist_url = seeder.streams[0].stream.url
            digests = segment_digests(seeder.streams[0].store)
            expected = {sid: origin.segment_sha256(playlist_url, sid) for sid in digests}
            assert digests == expected
            summary, held = await play_to_end(url, options, rendition=0)
    assert summary.p2p_bytes > 0 and summary.p2p_failures.get("invalid", 0) == 0
    assert held and all(expected[sid] == digest for sid, digest in held.items())
    assert origin.faults.counts["truncate"] >= feeder_segments


async def test_a_lying_peer_is_caught_by_the_integrity_list(tmp_path: Path) -> None:
    """A seeder whose store holds wrong bytes (what a hostile or broken peer sends): a viewer
    with the site's integrity list (made by ``p2pml-py hashes``) rejects every such body as a
    failed P2P load, takes the segment over HTTP instead, and ends with only listed bytes."""
    rendition = (Rendition("360p", bandwidth=800_000, width=640, height=360),)
    async with (
        SyntheticOrigin(renditions=rendition, vod_segments=8, segment_size=32 * 1024) as origin,
        TrackerServer() as tracker,
    ):
        listing = tmp_path / "segments-sha256.json"
        code, _, err = await run_cli("hashes", origin.url, "--validate", "length", "-o", listing)
        assert code == 0, err
        assert "8 segments" in err
        integrity = parse_integrity_list(listing.read_bytes())
        assert len(integrity) == 8
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        async with Seeder(origin.url, options, source_config=origin.source_config()) as seeder:
            store = seeder.streams[0].store
            await store_filled(store, 8)
            for sid in store.ids():  # the same lengths, other bytes
                data = bytearray(store.get(sid) or b"")
                data[100] ^= 0xFF
                store.put(sid, bytes(data))
            scheduler = SchedulerConfig(playback_rate=8.0, high_demand_time_window=0.25)
            config = origin.source_config(integrity=str(listing))
            async with Viewer(
                origin.url, options, scheduler=scheduler, source_config=config
            ) as viewer:
                async with asyncio.timeout(60):
                    await viewer.wait_ended()
                assert viewer.swarms is not None
                held = viewer.swarms.store
                ok = all(
                    integrity.check(s.url, s.byte_range, held.get(s.external_id) or b"").ok
                    for s in (viewer.source.followers[0].playlist or ()).segments  # type: ignore[union-attr]
                    if s.external_id in held
                )
                summary = viewer.summary()
                rejected = dict(viewer.source.guard.stats.rejected)
    assert ok and summary.stalls == 0
    assert summary.p2p_failures.get("invalid", 0) >= 1 and rejected.get("digest", 0) >= 1
    assert summary.p2p_bytes == 0  # every peer body was a lie: nothing from peers was kept


async def test_held_vod_segments_are_revalidated_and_replaced_when_the_origin_changed() -> None:
    rendition = (Rendition("360p", bandwidth=800_000, width=640, height=360),)
    async with (
        SyntheticOrigin(renditions=rendition, vod_segments=3, segment_size=4096) as origin,
        TrackerServer() as tracker,
    ):
        options = PeerOptions(trackers=(tracker.url,), rtc=LOOPBACK_CONFIG)
        async with Seeder(
            origin.url, options, source_config=origin.source_config(), revalidate=0.2
        ) as seeder:
            store = seeder.streams[0].store
            await store_filled(store, 3)
            async with asyncio.timeout(20):  # every held segment confirmed unchanged (304)
                await origin.stats.changed.wait_until(lambda: origin.stats.conditional[304] >= 3)
            assert seeder.replaced_segments == 0
            new_body = b"\x47" + bytes(4095)
            origin.override("/360p/1.ts", new_body)
            await store_changed(store, lambda: store.get(1) == new_body)
            assert seeder.source.stats.unchanged >= 3 and seeder.source.stats.revalidations >= 4
            assert seeder.replaced_segments == 1
            assert store.get(0) == origin.expected_segment("360p", 0)


async def store_changed(store: SegmentStore, done: Callable[[], bool], timeout: float = 20) -> None:
    event = asyncio.Event()
    unsubscribe = store.subscribe(lambda: event.set() if done() else None)
    try:
        if not done():
            async with asyncio.timeout(timeout):
                await event.wait()
    finally:
        unsubscribe()


async def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        *map(str, argv),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_hashes_lists_a_real_vod_and_refuses_live(stream: TestStream, tmp_path: Path) -> None:
    """ffmpeg's layout repeats file names across renditions (v0/seg0.ts, v1/seg0.ts): the list
    keys them by path under the master's directory, and a source checks both renditions with
    it -- one rendition's segment served for the other's is a digest mismatch."""
    async with StreamOrigin(stream) as origin:
        listing = tmp_path / "list.json"
        code, _, err = await run_cli("hashes", origin.vod_url(), "-o", listing)
        assert code == 0, err
        listed = json.loads(listing.read_text())
        expected = {p: d for p, d in stream.sha256_by_path().items() if p.endswith(".ts")}
        assert listed == expected and len(listed) == 12
        config = SourceConfig(integrity=str(listing))
        async with HlsSource(origin.vod_url(), config=config) as source:
            bodies = []
            for index in (0, 1):
                playlist = await source.fetch_playlist(source.streams[index].url)
                bodies.append(await source.fetch_segment(playlist.segments[2]))
            # v0/seg2.ts's body checked as v1/seg2.ts (same file name, other rendition)
            verdict = await source.guard.check(playlist.segments[2], bodies[0])
            assert verdict.reason is Reason.DIGEST, verdict
        code, _, err = await run_cli("hashes", origin.live_url())
        assert code != 0 and "hashes lists VOD only" in err
