"""Issue 20: a byte range the instance serves wrong is never stored, announced or uploaded.

Real parts on loopback: the emulated PeerTube instance (its API, ffmpeg-made fMP4 byte ranges,
``segments-sha256.json``, the npm tracker behind PeerTube's filter), the ``peertube`` plan and
seeder, real aiortc, and a Python viewer that checks every P2P segment against the same list.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import aiohttp
import pytest

from p2pml_py.apps.peertube.plan import build_seeder, plan_videos
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.harness.peertube import emulated_peertube
from p2pml_py.hls.source import SourceConfig
from p2pml_py.identity import ProtocolVersion
from p2pml_py.rtc.aiortc_backend.loopback import LOOPBACK_CONFIG
from p2pml_py.testing.peertube import EmulatedVideo
from p2pml_py.testing.peertube_media import PeerTubeMedia, cached_peertube_media
from tests.roles.helpers import play_to_end, stores_reach


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> PeerTubeMedia:
    return cached_peertube_media(Path(tmp_path_factory.mktemp("peertube")), duration=16)


async def test_a_mismatching_byte_range_is_never_announced_or_uploaded(
    media: PeerTubeMedia, caplog: pytest.LogCaptureFixture
) -> None:
    video = EmulatedVideo("corrupted")
    caplog.set_level(logging.WARNING, logger="p2pml_py.hls.guard")
    async with emulated_peertube([video], media=media) as (peertube, tracker):
        file_name, start, end = peertube.corrupt(media.files[0].resolution, 2, tail=64)
        async with aiohttp.ClientSession() as session:
            plan = await plan_videos(session, [peertube.watch_url(video)])
        (planned,) = plan.videos
        assert planned.confirmed and planned.version is ProtocolVersion.V2_2
        async with build_seeder(planned, rtc=LOOPBACK_CONFIG, fetch="all") as seeder:
            guard = seeder.source.guard
            assert len(seeder.streams) == 2
            expected = {f.playlist_name: len(f.segments) for f in media.files}

            stores = [s.store for s in seeder.streams]
            total = sum(expected.values())
            await stores_reach(stores, lambda: sum(len(store) for store in stores) == total - 1, 30)
            # The one missing was tried first (fetched in order) and rejected by its digest: the
            # boxes and sample durations are intact, only the media bytes differ.
            assert guard.stats.rejected["digest"] >= 1, guard.stats
            bad = next(s for s in seeder.streams if len(s.store) < expected[_name(s.stream.url)])
            missing = set(range(expected[_name(bad.stream.url)])) - set(bad.store.ids())
            assert len(missing) == 1
            (missing_id,) = missing
            # Said once, naming the segment, the file and the range.
            lines = [r.getMessage() for r in caplog.records if " rejected (" in r.getMessage()]
            assert lines and all(f"{file_name} bytes {start}-{end}" in m for m in lines), lines
            assert lines[0].startswith(f"segment {missing_id} from origin rejected (digest)")
            # Never uploaded: a viewer checking every P2P segment against the list gets the
            # rest from the seeder and this one over HTTP -- once the origin is right again.
            assert seeder.uploaded == 0

            peertube.clear_corruption()
            # The seeder's retry (1 s back-off, doubling) fetches it now.
            await stores_reach([bad.store], lambda: missing_id in bad.store, 30)
            listed = peertube.media.integrity_list()
            good = bad.store.get(missing_id) or b""
            digest = hashlib.sha256(good).hexdigest()
            assert listed.expected_digest(f"http://x/{file_name}", (start, end)) == digest

            options = PeerOptions(
                trackers=planned.trackers,
                versions=(planned.version,),
                rtc=LOOPBACK_CONFIG,
                swarm_id=planned.manifest_url,
                only_info_hashes=planned.info_hashes,
            )
            level = seeder.streams.index(bad)
            summary, held = await play_to_end(
                planned.manifest_url,
                options,
                rendition=level,
                source_config=SourceConfig(integrity=planned.integrity_url),
            )
        assert summary.p2p_bytes > 0 and summary.p2p_failures.get("invalid", 0) == 0, summary
        assert held[str(missing_id)] == digest
    assert tracker.blocked_count == 0 and tracker.unknown_announces == 0


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]
