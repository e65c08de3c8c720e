"""Issue 20: the emulated PeerTube instance behaves like one towards real players.

Two PeerTube watch pages (hls.js + p2p-media-loader 2.2.2 configured as PeerTube's player does,
from the video's API object) play one emulated video: they share segments over WebRTC through
the instance's tracker, and every segment a page got over P2P passed its SHA-256 validator (the
instance's ``segments-sha256.json``). Then a raw WebSocket client announcing an info hash the
instance does not know is closed and, on its next connection, refused with 403 -- PeerTube's
tracker filter.
"""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from p2pml_py.harness.peertube import (
    PeerTubePageConfig,
    emulated_peertube,
    open_peertube_page,
    peertube_stats,
)
from p2pml_py.harness.report import format_table
from p2pml_py.harness.scenario import Interop
from p2pml_py.testing.peertube import EmulatedVideo


async def test_peertube_pages_share_validated_segments(interop: Interop) -> None:
    video = EmulatedVideo("interop")
    async with emulated_peertube([video]) as (peertube, tracker):
        config = PeerTubePageConfig.for_video(peertube.api_url(video), level=0)
        base = interop.origin.base_url
        first = await open_peertube_page(interop.chromium, base, config, "peertube1")
        await first.wait_playing(2.0, timeout=20)
        second = await open_peertube_page(interop.chromium, base, config, "peertube2")
        await second.wait_for("s.peertube.validatedP2P >= 3 && s.position >= 4", timeout=20)

        pages = [first, second]
        stats = [await page.stats() for page in pages]
        checks = [await peertube_stats(page) for page in pages]
        rows = interop.record(interop.page_row(p, s) for p, s in zip(pages, stats, strict=True))
        print("\n" + format_table(rows))
        print("\n".join(f"{p.label}: {c}" for p, c in zip(pages, checks, strict=True)))

        listed = peertube.media.integrity_list()
        for page, s, check in zip(pages, stats, checks, strict=True):
            assert check.swarm_id == peertube.playlist_url(video), page.label
            assert check.announce_trackers == (tracker.ws_url,), page.label
            assert s.fatal_errors == () and s.stalls == 0, f"{page.label}: {s}"
            assert check.failures == () and check.failed_p2p == check.failed_http == 0, check
            # Every segment that arrived over P2P went through the validator and passed it.
            assert check.validated_p2p >= s.segments_p2p, (page.label, check, s.segments_p2p)
            for key, digest in s.p2p_segments.items():
                url, _, byte_range = key.partition("|")
                start, _, end = byte_range.partition("-")
                assert listed.expected_digest(url, (int(start), int(end))) == digest, key
        assert stats[1].p2p_bytes > 0 and checks[1].validated_p2p >= 3
        assert stats[0].uploaded_bytes > 0
        # The pages announced only what the instance knows; nobody was blocked.
        assert tracker.announced_info_hashes <= tracker.known
        assert tracker.blocked_count == 0 and tracker.unknown_announces == 0

        # A client announcing an unknown hash: closed, its IP blocked, its next upgrade refused.
        async with websockets.connect(tracker.ws_url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "action": "announce",
                        "info_hash": "x" * 20,
                        "peer_id": "-PM0202-rawclient000",
                        "numwant": 0,
                        "event": "started",
                        "offers": [],
                    }
                )
            )
            assert "Unknown infoHash" in json.loads(await ws.recv())["failure reason"]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(tracker.ws_url)
        assert refused.value.response.status_code == 403
        assert tracker.blocked_count == 1 and tracker.refused_count == 1
