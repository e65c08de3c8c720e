"""The harness origin on its own (no browser): VOD files, the live sliding window, hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from p2pml_py.harness.origin import InteropOrigin
from p2pml_py.testing.stream import TestStream


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(URL(url, encoded=True)) as response:
        return response.status, await response.read()


def test_stream_has_two_renditions_sorted_like_hlsjs(interop_stream: TestStream) -> None:
    count = len(interop_stream.renditions)
    assert count >= 2
    levels = [interop_stream.by_level(level) for level in range(count)]
    assert {r.name for r in levels} == {f"r{n}" for n in range(count)}
    assert [r.bandwidth for r in levels] == sorted(r.bandwidth for r in levels)
    for rendition in interop_stream.renditions:
        assert len(rendition.segments) >= 10
        assert all(s.duration <= rendition.target_duration for s in rendition.segments)
    assert interop_stream.duration >= 40


async def test_vod_files_and_counters(
    interop_origin: InteropOrigin, interop_stream: TestStream, http: aiohttp.ClientSession
) -> None:
    status, master = await get(http, interop_origin.vod_url("a"))
    assert status == 200 and master.decode() == interop_stream.master_text
    rendition = interop_stream.renditions[1]
    segment = rendition.segments[3]
    url = f"{interop_origin.base_url}/vod/a/{segment.path}"
    status, body = await get(http, url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == segment.sha256
    assert interop_origin.expected_sha256(url) == segment.sha256
    assert interop_origin.stats.segment_bytes() == len(body)
    assert interop_origin.stats.bytes_under("/vod/a/") == len(body)
    assert interop_origin.stats.segment_paths() == [urlsplit(url).path]
    status, playlist = await get(http, f"{interop_origin.base_url}/vod/a/{rendition.playlist_uri}")
    assert status == 200 and b"#EXT-X-ENDLIST" in playlist


@pytest.mark.parametrize(
    "path",
    [
        "/vod/a/%2e%2e/%2e%2e/pages/pml-2.3.html",  # traversal, not normalised by the client
        "/node_modules/bittorrent-tracker/package.json",
        "/node_modules/hls.js/%2e%2e/bittorrent-tracker/package.json",  # out of a served package
        "/vod/a/nothing.ts",
        "/live/a/r9/index.m3u8",
        "/live/a/r0/s99.ts",  # before the first live sequence
        "/other/x",
    ],
)
async def test_not_found(
    interop_origin: InteropOrigin, http: aiohttp.ClientSession, path: str
) -> None:
    status, _ = await get(http, interop_origin.base_url + path)
    assert status == 404


async def test_pages_and_packages_are_served(
    interop_origin: InteropOrigin, http: aiohttp.ClientSession
) -> None:
    for version in ("2.3", "2.2"):
        status, page = await get(http, interop_origin.page_url(version))
        assert status == 200
        imports = re.findall(rb'"(/node_modules/[^"]+)"', page)
        assert len(imports) == 3
        for path in imports:
            async with http.get(interop_origin.base_url + path.decode()) as response:
                assert response.status == 200, path
                assert response.content_type == "text/javascript"


async def test_shaka_page_and_its_packages_are_served(
    interop_origin: InteropOrigin, http: aiohttp.ClientSession
) -> None:
    status, page = await get(http, interop_origin.page_url("2.2", "shaka"))
    assert status == 200
    # Two import map entries (core and Shaka integration) and shaka-player's classic script.
    paths = re.findall(rb'"(/node_modules/[^"]+)"', page)
    assert sorted(p.split(b"/")[2] for p in paths) == [
        b"pml-core-2.2",
        b"pml-shaka-2.2",
        b"shaka-player",
    ]
    for path in [*paths, b"/pages/shaka.mjs", b"/pages/common.mjs"]:
        async with http.get(interop_origin.base_url + path.decode()) as response:
            assert response.status == 200, path
            assert response.content_type == "text/javascript"


def _media_sequence(playlist: str) -> int:
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    assert match is not None
    return int(match.group(1))


async def test_live_window_slides(
    interop_origin: InteropOrigin, interop_stream: TestStream, http: aiohttp.ClientSession
) -> None:
    status, master = await get(http, interop_origin.live_url("b"))
    assert status == 200
    assert re.findall(r"^r\d+/index\.m3u8$", master.decode(), re.M) == [
        "r0/index.m3u8",
        "r1/index.m3u8",
    ]
    playlist_url = f"{interop_origin.base_url}/live/b/r0/index.m3u8"
    _, first = await get(http, playlist_url)
    text = first.decode()
    base = interop_origin.live_base_sequence
    assert "#EXT-X-ENDLIST" not in text
    assert _media_sequence(text) == base
    assert re.findall(r"^s(\d+)\.ts$", text, re.M) == [
        str(base + i) for i in range(interop_origin.live_window)
    ]
    newest = base + interop_origin.live_window - 1
    status, _ = await get(http, f"{interop_origin.base_url}/live/b/r0/s{newest + 1}.ts")
    assert status == 404, "a future segment must not exist yet"

    seconds = interop_stream.renditions[0].target_duration
    interop_origin.fast_forward("b", 5 * seconds)
    _, later = await get(http, playlist_url)
    assert _media_sequence(later.decode()) == base + 5
    status, body = await get(http, f"{interop_origin.base_url}/live/b/r0/s{newest + 5}.ts")
    assert status == 200
    # Sequence n carries file (n - base) % count; its hash is what expected_sha256 says.
    rendition = interop_stream.renditions[0]
    file = rendition.segments[(newest + 5 - base) % len(rendition.segments)]
    assert hashlib.sha256(body).hexdigest() == file.sha256
    url = f"{interop_origin.base_url}/live/b/r0/s{newest + 5}.ts"
    assert interop_origin.expected_sha256(url) == file.sha256
    # An old segment that left the window stays downloadable.
    status, _ = await get(http, f"{interop_origin.base_url}/live/b/r0/s{base}.ts")
    assert status == 200


async def test_live_loop_wraps_with_discontinuity(
    interop_origin: InteropOrigin, interop_stream: TestStream, http: aiohttp.ClientSession
) -> None:
    rendition = interop_stream.renditions[0]
    count = len(rendition.segments)
    base = interop_origin.live_base_sequence
    # Put the loop point (sequence base + count) in the middle of the window.
    interop_origin.fast_forward("c", (count - 3) * rendition.target_duration)
    _, playlist = await get(http, f"{interop_origin.base_url}/live/c/r0/index.m3u8")
    lines = playlist.decode().splitlines()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0" in lines
    marker = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[marker + 2] == f"s{base + count}.ts"
    # Once the loop point left the window, the discontinuity sequence counts it.
    interop_origin.fast_forward("c", count * rendition.target_duration)
    _, playlist = await get(http, f"{interop_origin.base_url}/live/c/r0/index.m3u8")
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in playlist.decode().splitlines()
