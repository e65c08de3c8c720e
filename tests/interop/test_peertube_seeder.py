"""Issue 20: ``p2pml-py peertube`` seeds an (emulated) PeerTube instance's video to PeerTube pages.

The instance is built from PeerTube's documented behaviour and real parts
(:mod:`p2pml_py.testing.peertube`): its REST API, ffmpeg-made fragmented MP4 served as byte
ranges with ``segments-sha256.json``, and the npm bittorrent-tracker with PeerTube's filter (an
unknown info hash closes the socket and blocks the IP). Two pages configured the way PeerTube's
player configures p2p-media-loader 2.2.2 (swarm id = ``playlistUrl``, the instance's tracker,
every P2P segment through the SHA-256 validator) play the video, one pinned to each resolution;
our seeder is the ``peertube`` command in its own process, given only the video's watch URL.

Shown: every segment a page took over P2P passed the page's validator, some came from our
seeder, no stall; the tracker never blocked anyone; the set of swarms our seeder announced is
exactly the set the two pages (one per resolution) announced, and within the instance's set;
the API saw a handful of requests, all with our User-Agent.
"""

from __future__ import annotations

from p2pml_py.base.version import USER_AGENT
from p2pml_py.harness.peers import PythonPeerConfig
from p2pml_py.harness.peertube import (
    PeerTubePageConfig,
    emulated_peertube,
    open_peertube_page,
    peertube_stats,
)
from p2pml_py.harness.report import format_table
from p2pml_py.harness.scenario import Interop
from p2pml_py.testing.peertube import EmulatedVideo


def _hex(peer_id: str) -> str:
    return peer_id.encode("latin-1").hex()


async def test_peertube_seeder_feeds_validating_pages(interop: Interop) -> None:
    video = EmulatedVideo("seeded")
    async with emulated_peertube([video]) as (peertube, tracker):
        config = PythonPeerConfig(
            "peertube", peertube.watch_url(video), trackers=(), protocol="2.2", duration=90
        )
        seeder = await interop.start_python(config, "peertube-seeder")
        assert await seeder.wait_joined(30), seeder.log_tail()
        # Both resolutions announced (the seeder joins every swarm the player builds).
        for _ in range(2):
            await tracker.wait_event(
                lambda e: (
                    e.get("event") == "announce"
                    and e.get("peer_id_hex") in {_hex(p) for p in seeder.peer_ids}
                    and len({_hex(p) for p in seeder.peer_ids}) >= 2
                ),
                timeout=30,
            )

        base = interop.origin.base_url
        pages = []
        for level in (0, 1):
            page_config = PeerTubePageConfig.for_video(peertube.api_url(video), level=level)
            pages.append(
                await open_peertube_page(interop.chromium, base, page_config, f"pt{level}")
            )
        for page in pages:
            await page.wait_for("s.peertube.validatedP2P >= 3 && s.position >= 8", timeout=40)
        stats = [await page.stats() for page in pages]
        checks = [await peertube_stats(page) for page in pages]
        result = await seeder.stop()

        ours = {_hex(p) for p in seeder.peer_ids}
        rows = [interop.page_row(p, s, seeder.peer_ids) for p, s in zip(pages, stats, strict=True)]
        interop.record([*rows, interop.peer_row(seeder, result)])
        print("\n" + format_table(rows))

        listed = peertube.media.integrity_list()
        for page, s, check in zip(pages, stats, checks, strict=True):
            assert check.swarm_id == peertube.playlist_url(video), page.label
            assert s.fatal_errors == () and s.stalls == 0, f"{page.label}: {s}"
            assert check.failures == () and check.failed_p2p == check.failed_http == 0, check
            assert check.validated_p2p >= s.segments_p2p, (page.label, check, s.segments_p2p)
            assert s.bytes_from(seeder.peer_ids) > 0, f"{page.label}: nothing from our seeder: {s}"
            for key, digest in s.p2p_segments.items():
                url, _, byte_range = key.partition("|")
                start, _, end = byte_range.partition("-")
                assert listed.expected_digest(url, (int(start), int(end))) == digest, key
        assert result.uploaded_bytes > 0

        # Announced swarms: ours == the two pages' (one per resolution) <= the instance's.
        def announced_by(peer_hexes: set[str]) -> set[str]:
            return {
                str(e["info_hash_hex"])
                for e in tracker.events
                if e.get("event") == "announce" and e.get("peer_id_hex") in peer_hexes
            }

        page_peers = {_hex(p) for s in stats for p in s.own_peer_ids.values()}
        assert page_peers and not page_peers & ours
        assert announced_by(ours) == announced_by(page_peers) == set(peertube.info_hashes(video))
        assert tracker.blocked_count == 0 and tracker.unknown_announces == 0

        # A polite client: config + the video, our User-Agent on every request.
        ours_api = [r for r in peertube.api_requests if r.user_agent == USER_AGENT]
        assert ours_api and len(ours_api) <= 4, peertube.api_requests
        assert {r.path for r in ours_api} >= {
            "/api/v1/config",
            f"/api/v1/videos/{video.short_uuid}",
        }
