"""Shaka Player 4.16 + p2p-media-loader-shaka 2.2.2 pages in the interop harness (HLS only).

a. Python seeder (``--protocol 2.2``) -> two Shaka pages; b. Shaka page -> Python viewer; both
VOD and live, with the assertions of the hls.js scenarios (``test_python_peers.py``): P2P bytes
both ways, every P2P segment's SHA-256 equal to the origin's, no stall. Each also checks that the
info hashes the pages announce are the swarms :func:`p2pml_py.hls.shaka.shaka_stream_identities`
predicts. The last test checks that prediction on tricky master playlists against the streams a
real Shaka page registers with the core.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from p2pml_py.harness.browser import PlayerConfig
from p2pml_py.harness.scenario import Interop
from p2pml_py.harness.trackers import Tracker
from p2pml_py.hls.shaka import shaka_stream_identities, shaka_streams
from tests.hls.test_shaka_streams import CASES
from tests.interop.test_python_peers import scenario_a, scenario_b, vod_and_live


async def _master_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        response.raise_for_status()
        return await response.text()


async def check_announced_swarms(interop: Interop, live: bool) -> None:
    """The info hashes of the Shaka pages on this mode's channel are predicted swarms."""
    manifest = interop.manifest_url(live)
    predicted = {
        i.info_hash: i.stream
        for i in shaka_stream_identities(await _master_text(manifest), manifest)
    }
    pages = [p for p in interop.pages if p.config.manifest_url == manifest]
    assert pages
    for page in pages:
        announced = set((await page.stats()).own_peer_ids)
        assert announced, f"{page.label} announced nothing"
        assert announced <= set(predicted), f"{page.label}: {announced} not in {predicted}"
        # level=0: the lowest-bandwidth variant, which the test stream lists first.
        assert {predicted[h].index for h in announced} == {0}


def with_swarm_check(
    interop: Interop, scenario: Callable[[bool], Awaitable[None]]
) -> Callable[[bool], Awaitable[None]]:
    async def run(live: bool) -> None:
        await scenario(live)
        await check_announced_swarms(interop, live)

    return run


async def test_shaka_a_python_seeder_feeds_shaka_pages(
    interop: Interop, embedded_tracker: Tracker
) -> None:
    await vod_and_live(
        with_swarm_check(
            interop,
            lambda live: scenario_a(interop, embedded_tracker, "2.2", live, player="shaka"),
        )
    )


async def test_shaka_b_python_viewer_downloads_from_shaka_page(
    interop: Interop, embedded_tracker: Tracker
) -> None:
    await vod_and_live(
        with_swarm_check(
            interop,
            lambda live: scenario_b(interop, embedded_tracker, "2.2", live, player="shaka"),
        )
    )


@pytest_asyncio.fixture
async def masters(interop: Interop) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 with the master playlists of CASES at ``/<case>/master.m3u8``;
    every media playlist is the test stream's lowest rendition, segments on the origin."""
    rendition = interop.origin.stream.by_level(0)
    segments = "".join(
        f"#EXTINF:{s.duration:.3f},\n{interop.origin.base_url}/vod/{interop.channel}/{s.path}\n"
        for s in rendition.segments
    )
    media = (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{rendition.target_duration}\n"
        f"#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n{segments}#EXT-X-ENDLIST\n"
    )

    async def serve(request: web.Request) -> web.Response:
        case, _, rest = request.match_info["tail"].partition("/")
        if case not in CASES:
            raise web.HTTPNotFound()
        text = CASES[case][0] if rest == "master.m3u8" else media
        return web.Response(
            text=text,
            content_type="application/vnd.apple.mpegurl",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


_REGISTERED = """() => [...window.p2pmlPlayer.engine.core.streams.values()].map((s) =>
  [s.type, s.index, s.shakaStream.type, s.shakaStream.originalId])"""


@pytest.mark.parametrize("case", sorted(CASES))
async def test_shaka_registers_the_predicted_streams(
    interop: Interop, embedded_tracker: Tracker, masters: str, case: str
) -> None:
    url = f"{masters}/{case}/master.m3u8"
    config = PlayerConfig(
        version="2.2", manifest_url=url, trackers=(embedded_tracker.url,), player="shaka"
    )
    page = await interop.chromium.open_player(
        interop.origin.page_url("2.2", "shaka"), config, f"{case}"
    )
    # processStreams registers every stream at once, right after Shaka parsed the master.
    await page.page.wait_for_function(
        "() => window.p2pmlPlayer?.engine.core.streams.size > 0", timeout=20_000
    )
    registered = await page.page.evaluate(_REGISTERED)
    # originalId: the verbatim URI of a variant stream, the NAME of a rendition (= its URI in
    # CASES); a URI-less rendition has no playlist.
    expected = [
        [s.type, s.index, s.content, s.uri or None] for s in shaka_streams(CASES[case][0], url)
    ]
    got = [
        [t, i, kind, original if "/" in (original or "") else None]
        for t, i, kind, original in registered
    ]
    assert got == expected, json.dumps(registered)
