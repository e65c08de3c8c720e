"""The synthetic HLS origin, driven by a plain aiohttp client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from p2pml_py.hls.playlist import parse_master_playlist, parse_media_playlist
from p2pml_py.testing.origin import Rendition, SyntheticOrigin, init_bytes, segment_bytes

WAIT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        return response.status, await response.read(), dict(response.headers)


def test_segment_bytes_are_deterministic_and_distinct() -> None:
    a = segment_bytes("360p", 7, 5000)
    assert a == segment_bytes("360p", 7, 5000)
    assert len(a) == 5000 and a[0] == 0x47
    assert a != segment_bytes("360p", 8, 5000) != segment_bytes("720p", 7, 5000)
    assert segment_bytes("360p", 7, 100) == a[:100]  # a prefix: sizes do not reshuffle content
    assert init_bytes("360p")[:4] not in (b"cstr", b"dstr")
    for seq in range(200):
        assert segment_bytes("x", seq, 4)[:4] not in (b"cstr", b"dstr")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        SyntheticOrigin(segment_duration=0)
    with pytest.raises(ValueError):
        SyntheticOrigin(renditions=[Rendition("a"), Rendition("a")])
    with pytest.raises(ValueError):
        SyntheticOrigin(renditions=[Rendition("a", kind="audio")])
    with pytest.raises(ValueError):
        Rendition("a/b")


async def test_vod_master_media_and_segments(http: aiohttp.ClientSession) -> None:
    async with SyntheticOrigin(segment_size=3000, vod_segments=4, audio=True) as origin:
        status, body, _ = await get(http, origin.url)
        assert status == 200
        master = parse_master_playlist(body.decode(), origin.url)
        assert [s.url for s in master.main_streams] == [
            origin.playlist_url("360p"),
            origin.playlist_url("720p"),
        ]
        assert [s.url for s in master.secondary_streams] == [origin.playlist_url("audio")]
        assert master.main_streams[1].width == 1280 and master.main_streams[1].bitrate == 2_400_000

        for stream in master.streams:
            name = stream.url.split("/")[-2]
            status, body, _ = await get(http, stream.url)
            playlist = parse_media_playlist(body.decode(), stream.url)
            assert not playlist.is_live and len(playlist.segments) == 4
            assert playlist.target_duration == 2
            for segment in playlist.segments:
                status, data, _ = await get(http, segment.url)
                assert status == 200
                expected = origin.expected_segment(name, segment.sequence_number)
                assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest()
                assert len(data) == 3000

        # 1 master + 3 playlists + 12 segments, each path counted with its body bytes.
        assert origin.stats.total_requests == 16
        assert origin.stats.requests["/720p/3.ts"] == 1
        assert origin.stats.bytes["/720p/3.ts"] == 3000
        assert origin.stats.segment_bytes() == 12 * 3000
        assert origin.stats.statuses[200] == 16
        status, _, _ = await get(http, f"{origin.base_url}/720p/4.ts")  # past the end
        assert status == 404
        status, _, _ = await get(http, f"{origin.base_url}/nope/0.ts")
        assert status == 404


async def test_range_requests_and_ignoring_range(http: aiohttp.ClientSession) -> None:
    async with SyntheticOrigin(segment_size=1000, vod_segments=2) as origin:
        url = f"{origin.base_url}/360p/1.ts"
        full = origin.expected_segment("360p", 1)
        status, body, headers = await get(http, url, Range="bytes=100-199")
        assert status == 206 and body == full[100:200]
        assert headers["Content-Range"] == "bytes 100-199/1000"
        status, _, _ = await get(http, url, Range="bytes=5000-5001")
        assert status == 416
        origin.honour_range = False
        status, body, _ = await get(http, url, Range="bytes=100-199")
        assert status == 200 and body == full


async def test_byte_range_rendition_with_init_segment(http: aiohttp.ClientSession) -> None:
    rendition = Rendition("br", byte_range=True, init_segment=True, segment_size=700)
    async with SyntheticOrigin(
        renditions=[rendition], vod_segments=3, start_sequence=5, init_size=300
    ) as origin:
        _, body, _ = await get(http, origin.playlist_url("br"))
        text = body.decode()
        assert '#EXT-X-MAP:URI="init.mp4"' in text
        assert "#EXT-X-BYTERANGE:700@0\n" in text and text.count("#EXT-X-BYTERANGE:700\n") == 2
        playlist = parse_media_playlist(text, origin.playlist_url("br"))
        assert [s.byte_range for s in playlist.segments] == [(0, 699), (700, 1399), (1400, 2099)]
        assert [s.sequence_number for s in playlist.segments] == [5, 6, 7]
        init = playlist.segments[0].init_segment
        assert init is not None and init.url == f"{origin.base_url}/br/init.mp4"
        _, data, _ = await get(http, init.url)
        assert data == origin.expected_init("br") and len(data) == 300
        for segment in playlist.segments:
            assert segment.byte_range is not None
            start, end = segment.byte_range
            status, data, _ = await get(http, segment.url, Range=f"bytes={start}-{end}")
            assert status == 206
            assert data == origin.expected_segment("br", segment.sequence_number)
        _, whole, _ = await get(http, f"{origin.base_url}/br/media.ts")
        assert whole == b"".join(origin.expected_segment("br", n) for n in (5, 6, 7))
        assert origin.media_file("br", 650, 750) == whole[650:750]


async def test_live_window_slides_with_clock_and_advance(http: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with SyntheticOrigin(
        live=True, window=3, segment_duration=4.0, start_sequence=10, time_source=clock
    ) as origin:
        url = origin.playlist_url("360p")

        async def sequences() -> list[int]:
            _, body, _ = await get(http, url)
            playlist = parse_media_playlist(body.decode(), url)
            assert playlist.is_live and "#EXT-X-ENDLIST" not in body.decode()
            return [s.external_id for s in playlist.segments]

        assert await sequences() == [10, 11, 12]
        clock.now += 3.9
        assert await sequences() == [10, 11, 12]
        clock.now += 0.1
        assert await sequences() == [11, 12, 13]
        origin.advance(2)
        assert await sequences() == [13, 14, 15]
        assert origin.sequence_range == (13, 15)
        status, _, _ = await get(http, f"{origin.base_url}/360p/16.ts")
        assert status == 404  # not published yet
        status, data, _ = await get(http, f"{origin.base_url}/360p/10.ts")
        assert status == 200 and data == origin.expected_segment("360p", 10)  # left the window


async def test_outage_override_and_redirects(http: aiohttp.ClientSession) -> None:
    async with SyntheticOrigin() as origin:
        origin.outage = True
        status, _, _ = await get(http, origin.url)
        assert status == 503
        status, _, _ = await get(http, f"{origin.base_url}/360p/0.ts")
        assert status == 503
        assert origin.stats.statuses[503] == 2 and origin.stats.total_bytes == 0
        origin.outage = False

        origin.override("/360p/index.m3u8", "garbage", status=200)
        assert (await get(http, origin.playlist_url("360p")))[1] == b"garbage"
        origin.clear_override("/360p/index.m3u8")
        assert (await get(http, origin.playlist_url("360p")))[1].startswith(b"#EXTM3U")

        status, _, headers = await get(http, origin.redirect_url(hops=2))
        assert status == 302 and headers["Location"] == "/redirect/1/master.m3u8"
        async with http.get(origin.redirect_url(hops=2)) as response:
            assert str(response.url) == origin.url
            assert len(response.history) == 2


async def test_stall_holds_the_body_until_released(http: aiohttp.ClientSession) -> None:
    async with SyntheticOrigin(segment_size=4000) as origin:
        origin.stall = True
        expected = origin.expected_segment("360p", 0)
        async with asyncio.timeout(WAIT):
            async with http.get(f"{origin.base_url}/360p/0.ts") as response:
                assert response.status == 200
                first = await response.content.readexactly(2000)
                assert first == expected[:2000]
                assert origin.stats.bytes["/360p/0.ts"] == 2000
                origin.stall = False
                rest = await response.read()
        assert first + rest == expected


async def test_close_releases_stalled_responses_and_is_idempotent(
    http: aiohttp.ClientSession,
) -> None:
    origin = SyntheticOrigin(segment_size=4000)
    await origin.start()
    origin.stall = True
    async with asyncio.timeout(WAIT):
        async with http.get(f"{origin.base_url}/360p/0.ts") as response:
            await response.content.readexactly(2000)
            await origin.aclose()
            with pytest.raises(aiohttp.ClientError):
                await response.read()
    await origin.aclose()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, origin.url)
