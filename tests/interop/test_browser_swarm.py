"""Milestone 1: a swarm of Chromium pages only (no Python peer), through our embedded tracker.

Three pages of the same p2p-media-loader version play the same stream; later pages must get
segments from earlier ones over WebRTC, the bytes must be the origin's, playback must not stall.
"""

from __future__ import annotations

import asyncio

import pytest

from p2pml_py.harness.report import format_table
from p2pml_py.harness.scenario import Interop
from p2pml_py.harness.trackers import Tracker
from tests.interop.test_python_peers import vod_and_live

PLAY_SECONDS = 15.0


@pytest.mark.parametrize("version", ["2.3", "2.2"])
async def test_browser_pages_share_segments(
    interop: Interop, embedded_tracker: Tracker, version: str
) -> None:
    """VOD and live at the same time (separate swarms), to halve the wall time."""
    await vod_and_live(lambda live: scenario(interop, embedded_tracker, version, live))


async def scenario(interop: Interop, embedded_tracker: Tracker, version: str, live: bool) -> None:
    first = await interop.open_page(version, [embedded_tracker.url], live=live)
    await first.wait_playing(2.0, timeout=30)
    others = [await interop.open_page(version, [embedded_tracker.url], live=live) for _ in range(2)]
    pages = [first, *others]
    await asyncio.gather(*(page.wait_playing(PLAY_SECONDS, timeout=60) for page in pages))
    stats = [await page.stats() for page in pages]
    rows = interop.record(interop.page_row(p, s) for p, s in zip(pages, stats, strict=True))
    print("\n" + format_table(rows))

    for page, s in zip(pages, stats, strict=True):
        assert s.fatal_errors == (), f"{page.label}: {s.fatal_errors}"
        assert s.stalls == 0, f"{page.label} stalled"
        assert s.peers_seen, f"{page.label} never connected to a peer"
        assert interop.check_p2p_bytes(s) == [], f"{page.label} got wrong bytes over P2P"
    later_p2p = sum(s.p2p_bytes for s in stats[1:])
    assert later_p2p > 0, "the later pages got nothing over P2P"
    assert sum(s.uploaded_bytes for s in stats) > 0
    # Every byte a page counts as P2P was uploaded by another page of the swarm (up to the
    # chunks in flight while the counters are read one page after the other).
    uploaded, downloaded = sum(s.uploaded_bytes for s in stats), sum(s.p2p_bytes for s in stats)
    assert abs(uploaded - downloaded) <= 0.05 * downloaded + 4 * 65535, (uploaded, downloaded)
    if not live:
        total = sum(s.total_bytes for s in stats)
        assert later_p2p / max(1, sum(s.total_bytes for s in stats[1:])) >= 0.3, total
