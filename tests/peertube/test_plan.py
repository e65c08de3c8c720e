"""Issue 20: resolving PeerTube URLs against the emulated instance (its real API shape, the npm
tracker behind PeerTube's filter): what is seeded, what is skipped and why, the tracker asked
before any WebSocket announce, the super-peer's ``[[peertube]]`` tables, and a polite client."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from p2pml_py.apps.peertube.client import Credentials
from p2pml_py.apps.peertube.model import hex_info_hash
from p2pml_py.apps.peertube.plan import plan_videos
from p2pml_py.apps.superpeer.config import parse_config
from p2pml_py.apps.superpeer.peertube import expand_peertube
from p2pml_py.base.version import USER_AGENT
from p2pml_py.harness.peertube import emulated_peertube
from p2pml_py.testing.peertube import EmulatedVideo, Privacy
from p2pml_py.testing.peertube_media import PeerTubeMedia, cached_peertube_media


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> PeerTubeMedia:
    return cached_peertube_media(Path(tmp_path_factory.mktemp("peertube")), duration=16)


def videos() -> list[EmulatedVideo]:
    return [
        EmulatedVideo("public one"),
        EmulatedVideo("public two", channel="music"),
        EmulatedVideo("unlisted", privacy=Privacy.UNLISTED),
        EmulatedVideo("private", privacy=Privacy.PRIVATE),
        EmulatedVideo("secret", privacy=Privacy.PASSWORD_PROTECTED, password="s3cret"),
    ]


async def test_the_instance_listing_seeds_public_videos_and_says_why_not_the_rest(
    media: PeerTubeMedia,
) -> None:
    emulated = videos()
    async with emulated_peertube(emulated, media=media) as (peertube, tracker):
        async with aiohttp.ClientSession() as session:
            plan = await plan_videos(
                session,
                [peertube.base_url + "/", peertube.watch_url(emulated[2])],  # + the unlisted link
                limit=10,
            )
            private = await plan_videos(session, [peertube.watch_url(emulated[3])])
            secret = await plan_videos(session, [peertube.watch_url(emulated[4])])
            unlocked = await plan_videos(
                session,
                [peertube.watch_url(emulated[4])],
                credentials=Credentials(video_password="s3cret"),
            )
    seeded = {p.video.name for p in plan.videos}
    assert seeded == {"public one", "public two", "unlisted"}
    for planned in plan.videos:
        video = next(v for v in emulated if v.name == planned.video.name)
        assert planned.confirmed
        assert {hex_info_hash(h) for h in planned.info_hashes} == set(peertube.info_hashes(video))
        assert planned.trackers == (tracker.ws_url,)
        assert planned.integrity_url == peertube.segments_sha256_url(video)
    assert [str(s) for s in private.skipped] and "give --token" in str(private.skipped[0])
    assert "password protected" in str(secret.skipped[0])
    assert [p.video.name for p in unlocked.videos] == ["secret"]
    # Only HTTP probes reached the tracker: no WebSocket announce, nobody blocked.
    assert tracker.blocked_count == 0 and tracker.unknown_announces == 0
    # Polite: our User-Agent on every API request, no 429.
    ours = [r for r in peertube.api_requests if r.path.startswith("/api/")]
    assert ours and all(r.user_agent == USER_AGENT and r.status != 429 for r in ours)


async def test_a_swarm_the_tracker_does_not_know_is_never_planned(
    media: PeerTubeMedia, caplog: pytest.LogCaptureFixture
) -> None:
    video = EmulatedVideo("half known")
    async with emulated_peertube([video], media=media) as (peertube, tracker):
        known = peertube.info_hashes(video)
        await tracker.set_known(known[:1])  # the instance forgot one resolution's swarm
        caplog.set_level(logging.WARNING, logger="p2pml_py.apps.peertube.plan")
        async with aiohttp.ClientSession() as session:
            plan = await plan_videos(session, [peertube.watch_url(video)])
        (planned,) = plan.videos
        assert {hex_info_hash(h) for h in planned.info_hashes} == {known[0]}
        assert any("does not know 1 of the 2" in r.getMessage() for r in caplog.records)
        assert tracker.blocked_count == 0


async def test_an_old_instance_is_refused_with_its_reason(media: PeerTubeMedia) -> None:
    async with emulated_peertube([EmulatedVideo("old")], media=media, server_version="7.0.1") as (
        peertube,
        tracker,
    ):
        async with aiohttp.ClientSession() as session:
            plan = await plan_videos(session, [peertube.base_url])
    assert plan.videos == [] and "p2p-media-loader 0.6" in str(plan.skipped[0])
    assert tracker.announce_count == 0


async def test_rate_limited_api_is_waited_for(media: PeerTubeMedia) -> None:
    emulated = [EmulatedVideo(f"video {i}") for i in range(4)]
    async with emulated_peertube(emulated, media=media, api_window=1.0, api_max=3) as (
        peertube,
        _,
    ):
        async with aiohttp.ClientSession() as session:
            plan = await plan_videos(session, [peertube.base_url], api_rate=50.0)
    assert len(plan.videos) == 4
    statuses = [r.status for r in peertube.api_requests]
    assert 429 in statuses and statuses[-1] == 200


async def test_peertube_tables_become_superpeer_streams(media: PeerTubeMedia) -> None:
    emulated = videos()[:2]
    async with emulated_peertube(emulated, media=media) as (peertube, tracker):
        config = parse_config(
            f'[[peertube]]\nurls = ["{peertube.base_url}/"]\nstore_mb = 32\nmax_peers = 7\n'
        )
        expanded = await expand_peertube(config)
    host = peertube.base_url.split("//", 1)[1]
    assert {s.name for s in expanded.streams} == {f"peertube:{host}:{v.uuid}" for v in emulated}
    for stream in expanded.streams:
        video = next(v for v in emulated if stream.name.endswith(v.uuid))
        assert stream.url == stream.swarm_id == peertube.playlist_url(video)
        assert stream.trackers == (tracker.ws_url,) and stream.protocol == ("2.2",)
        assert stream.integrity == peertube.segments_sha256_url(video)
        assert stream.info_hashes is not None
        assert {hex_info_hash(h) for h in stream.info_hashes} == set(peertube.info_hashes(video))
        assert stream.store_mb == 32 and stream.max_peers == 7
