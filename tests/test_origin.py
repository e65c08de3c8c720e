"""The test origin (synthetic renditions and a recorded stream), driven by a plain aiohttp
client on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from p2pml_py.base.errors import HarnessError
from p2pml_py.hls.playlist import parse_master_playlist, parse_media_playlist
from p2pml_py.testing.origin import (
    Rendition,
    StreamOrigin,
    SyntheticOrigin,
    init_bytes,
    segment_bytes,
)
from p2pml_py.testing.stream import TestStream

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


# ------------------------------------------------------------------------ a recorded stream

#: Two variants listed highest bitrate first, so hls.js levels are not master positions.
MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240,CODECS="avc1.42c01e,mp4a.40.2"
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=256x144
lo/index.m3u8
"""


def media(durations: list[float]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for i, duration in enumerate(durations):
        lines += [f"#EXTINF:{duration:.6f},", f"seg{i}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


@pytest.fixture
def stream(tmp_path: Path) -> TestStream:
    root = tmp_path / "stream"
    for name, count in (("hi", 4), ("lo", 3)):
        (root / name).mkdir(parents=True)
        (root / name / "index.m3u8").write_text(media([2.0] * (count - 1) + [1.5]))
        for i in range(count):
            (root / name / f"seg{i}.ts").write_bytes(segment_bytes(name, i, 500 + i))
    (root / "master.m3u8").write_text(MASTER)
    (tmp_path / "secret.ts").write_text("outside the stream")
    (root / "lo" / "link.ts").symlink_to(tmp_path / "secret.ts")
    return TestStream.load(root)


def test_stream_loads_renditions_in_master_order(stream: TestStream) -> None:
    hi, lo = stream.renditions
    assert (hi.name, hi.bandwidth, hi.width, hi.height) == ("r0", 400_000, 426, 240)
    assert (lo.name, lo.playlist_uri, lo.target_duration) == ("r1", "lo/index.m3u8", 2)
    assert stream.by_level(0) is lo and stream.by_level(1) is hi  # hls.js sorts by bitrate
    with pytest.raises(HarnessError):
        stream.by_level(2)
    assert [s.path for s in lo.segments] == ["lo/seg0.ts", "lo/seg1.ts", "lo/seg2.ts"]
    assert lo.segments[2].sha256 == hashlib.sha256(segment_bytes("lo", 2, 502)).hexdigest()
    assert stream.duration == 5.5
    (stream.root / "lo" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-BYTERANGE:10@0\nseg0.ts\n")
    with pytest.raises(HarnessError):
        TestStream.load(stream.root)


async def test_stream_vod_files_ranges_and_waiting(
    stream: TestStream, http: aiohttp.ClientSession
) -> None:
    async with StreamOrigin(stream) as origin:
        status, master, _ = await get(http, origin.vod_url("a"))
        assert status == 200 and master.decode() == MASTER
        waiting = asyncio.create_task(origin.wait_segment_requests("/vod/a/", 2))
        lo = stream.renditions[1]
        url = f"{origin.base_url}/vod/a/lo/seg1.ts"
        status, body, headers = await get(http, url)
        assert status == 200 and hashlib.sha256(body).hexdigest() == lo.segments[1].sha256
        assert headers["Content-Type"] == "video/mp2t"
        assert origin.expected_sha256(url) == lo.segments[1].sha256
        assert not waiting.done()  # one distinct segment path so far
        status, part, headers = await get(http, url, Range="bytes=10-19")
        assert status == 206 and part == body[10:20]
        assert headers["Content-Range"] == "bytes 10-19/501"
        assert not waiting.done()  # the same path again
        assert (await get(http, f"{origin.base_url}/vod/a/hi/seg0.ts"))[0] == 200
        await asyncio.wait_for(waiting, WAIT)
        assert origin.stats.bytes_under("/vod/a/") == 501 + 10 + 500
        assert origin.stats.segment_paths("/vod/") == ["/vod/a/lo/seg1.ts", "/vod/a/hi/seg0.ts"]
        playlist = f"{origin.base_url}/vod/a/lo/index.m3u8"
        assert origin.segment_sha256(playlist, "2") == lo.segments[2].sha256
        assert origin.segment_sha256(playlist, "3") is None
        for path in ("/vod/a/nothing.ts", "/vod/a!/lo/seg0.ts", "/x/a/b", "/vod/a/lo/link.ts"):
            assert (await get(http, origin.base_url + path))[0] == 404, path
        escape = URL(f"{origin.base_url}/vod/a/%2e%2e/secret.ts", encoded=True)  # not normalised
        async with http.get(escape) as response:
            assert response.status == 404
        origin.outage = True  # the core's fault switches work for every content
        assert (await get(http, url))[0] == 503


async def test_stream_live_window_loops_with_discontinuities(
    stream: TestStream, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    async with StreamOrigin(
        stream, live_window=3, live_base_sequence=50, time_source=clock
    ) as origin:
        status, master, _ = await get(http, origin.live_url("b"))
        assert status == 200 and "\nr0/index.m3u8\n" in master.decode()
        assert master.decode().endswith("\nr1/index.m3u8\n")
        playlist_url = f"{origin.base_url}/live/b/r1/index.m3u8"

        async def window() -> list[str]:
            _, body, _ = await get(http, playlist_url)
            text = body.decode()
            assert "#EXT-X-ENDLIST" not in text
            return [line for line in text.splitlines()[3:] if not line.startswith("#EXTINF")]

        assert await window() == [
            "#EXT-X-MEDIA-SEQUENCE:50",
            "#EXT-X-DISCONTINUITY-SEQUENCE:0",
            "s50.ts",
            "s51.ts",
            "s52.ts",
        ]
        assert (await get(http, f"{origin.base_url}/live/b/r1/s53.ts"))[0] == 404  # future
        clock.now += 2.0  # one segment duration (the shortest target duration)
        assert await window() == [
            "#EXT-X-MEDIA-SEQUENCE:51",
            "#EXT-X-DISCONTINUITY-SEQUENCE:0",
            "s51.ts",
            "s52.ts",
            "#EXT-X-DISCONTINUITY",  # r1 has 3 files: sequence 53 is file 0 again
            "s53.ts",
        ]
        origin.fast_forward("b", 2 * 2.0)
        assert origin.live_edge("b") == 55
        assert (await window())[:2] == [
            "#EXT-X-MEDIA-SEQUENCE:53",
            "#EXT-X-DISCONTINUITY-SEQUENCE:1",
        ]
        lo = stream.renditions[1]
        url = f"{origin.base_url}/live/b/r1/s54.ts"
        status, body, _ = await get(http, url)
        assert status == 200 and hashlib.sha256(body).hexdigest() == lo.segments[1].sha256
        assert origin.expected_sha256(url) == lo.segments[1].sha256
        assert origin.segment_sha256(playlist_url, "54") == lo.segments[1].sha256
        assert (await get(http, f"{origin.base_url}/live/b/r1/s50.ts"))[0] == 200  # left the window
        for path in ("/live/b/r1/s49.ts", "/live/b/r2/index.m3u8", "/live/b/r1/50.ts"):
            assert (await get(http, origin.base_url + path))[0] == 404, path
        assert origin.live_edge("other") == 52  # every channel has its own clock
