"""HlsSource and StreamFollower against the synthetic origin on 127.0.0.1 (real aiohttp both ends)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from p2pml_py.base.errors import (
    LocalProtocolError,
    OriginConnectionError,
    OriginHttpError,
    OriginStallError,
    SourceError,
)
from p2pml_py.hls.fetcher import fetch, fetch_text
from p2pml_py.hls.playlist import Segment
from p2pml_py.hls.source import HlsSource, RetryPolicy, SourceConfig, StreamFollower
from p2pml_py.identity import swarm_id_from_manifest_url
from p2pml_py.testing.origin import LENGTH_ONLY, Rendition, SyntheticOrigin

WAIT = 10.0

FAST = SourceConfig(
    playlist_timeout=3.0,
    segment_timeout=3.0,
    stall_timeout=2.0,
    retry=RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05),
    reload_retry=RetryPolicy(initial_delay=0.01, max_delay=0.05),
    min_reload_interval=0.01,
    validation=LENGTH_ONLY,  # synthetic segments are not media
)


def fast(**changes: object) -> SourceConfig:
    return dataclasses.replace(FAST, **changes)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rendition_of(segment_url: str) -> str:
    return segment_url.split("/")[-2]


async def take(follower: StreamFollower, count: int, **kwargs: bool) -> list[Segment]:
    out: list[Segment] = []
    async with asyncio.timeout(WAIT):
        async for segment in follower.new_segments(**kwargs):
            out.append(segment)
            if len(out) == count:
                break
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def vod() -> AsyncIterator[SyntheticOrigin]:
    async with SyntheticOrigin(segment_size=5000, vod_segments=5, audio=True) as origin:
        yield origin


# ---------------------------------------------------------------------------- VOD


async def test_vod_every_stream_and_segment_sha_verified(vod: SyntheticOrigin) -> None:
    async with HlsSource(vod.url, config=FAST) as source:
        assert source.final_url == vod.url
        assert [s.type for s in source.streams] == ["main", "main", "secondary"]
        verified = 0
        for stream in source.streams:
            async with source.follow(stream) as follower:
                playlist = await follower.wait_loaded(WAIT)
                assert not playlist.is_live and follower.ended
                segments = await take(follower, 99)  # a VOD iterator ends by itself
                assert [s.external_id for s in segments] == [0, 1, 2, 3, 4]
                for segment in segments:
                    data = await source.fetch_segment(segment)
                    expected = vod.expected_segment(
                        rendition_of(segment.url), segment.sequence_number
                    )
                    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(expected).hexdigest()
                    verified += 1
        assert verified == 15
        assert source.stats.segments == 15 and source.stats.segment_bytes == 15 * 5000
        assert source.stats.requests == 1 + 3 + 15 and source.stats.total_errors == 0
        # A VOD playlist is loaded once: the follower's task ended, no reloads happened.
        assert vod.stats.requests["/360p/index.m3u8"] == 1
        assert vod.stats.segment_bytes() == source.stats.segment_bytes


async def test_media_playlist_as_manifest_is_one_stream(vod: SyntheticOrigin) -> None:
    async with HlsSource(vod.playlist_url("720p"), config=FAST) as source:
        assert source.master.is_media_playlist
        (stream,) = source.streams
        assert stream.url == vod.playlist_url("720p")
        follower = source.follow(0)
        playlist = await follower.wait_loaded(WAIT)
        assert len(playlist.segments) == 5


async def test_redirects_change_final_url_and_swarm_id(vod: SyntheticOrigin) -> None:
    url = vod.redirect_url(hops=2) + "?token=abc"
    async with HlsSource(url, config=FAST) as source:
        assert source.manifest_url == url
        assert source.final_url == vod.url + "?token=abc"
        assert source.swarm_id == swarm_id_from_manifest_url(vod.url)
        assert source.streams[0].url == vod.playlist_url("360p")


async def test_byte_ranges_and_init_segment() -> None:
    renditions = [Rendition("br", byte_range=True, init_segment=True, segment_size=1500)]
    async with SyntheticOrigin(renditions=renditions, vod_segments=4, init_size=200) as origin:
        async with HlsSource(origin.url, config=FAST) as source:
            playlist = await source.follow(0).wait_loaded(WAIT)
            for honour_range in (True, False):
                origin.honour_range = honour_range
                for segment in playlist.segments:
                    assert segment.byte_range is not None
                    data = await source.fetch_segment(segment)
                    assert data == origin.expected_segment("br", segment.sequence_number)
            init = playlist.segments[0].init_segment
            assert init is not None
            assert await source.fetch_init(init) == origin.expected_init("br")
            assert await source.fetch_init(init) == origin.expected_init("br")
            assert origin.stats.requests["/br/init.mp4"] == 1  # cached
            # Ignoring Range, the origin sent whole files; we read only up to each range's end.
            assert origin.stats.requests["/br/media.ts"] == 8


# ---------------------------------------------------------------------------- live


async def test_live_follower_sees_new_segments_in_order_real_time() -> None:
    # EXTINF 0.2 s: the follower reloads every 0.2 s (hls.js uses the average segment duration).
    async with (
        SyntheticOrigin(live=True, window=6, segment_duration=0.2, segment_size=500) as origin,
        HlsSource(origin.url, config=FAST) as source,
        source.follow(0) as follower,
    ):
        first = await follower.wait_loaded(WAIT)
        assert first.is_live and len(first.segments) == 6
        segments = await take(follower, 10)
        ids = [s.external_id for s in segments]
        assert ids == list(range(ids[0], ids[0] + 10))
        assert ids[0] == first.segments[0].sequence_number
        playlist = follower.playlist
        assert playlist is not None and len(playlist.segments) == 6
        assert playlist.media_sequence > first.media_sequence  # the window slid
        data = await source.fetch_segment(segments[-1])
        assert data == origin.expected_segment("360p", segments[-1].sequence_number)


async def test_live_follower_with_manual_clock() -> None:
    async with (
        SyntheticOrigin(
            live=True, window=4, segment_duration=6.0, start_sequence=50, time_source=Clock()
        ) as origin,
        HlsSource(origin.url, config=fast(reload_interval=0.02)) as source,
    ):
        follower = source.follow(origin.playlist_url("720p"))
        await follower.wait_loaded(WAIT)
        loads = follower.loads
        origin.advance(3)
        new = await take(follower, 3, from_start=False)
        assert [s.external_id for s in new] == [54, 55, 56]
        assert follower.loads > loads
        playlist = follower.playlist
        assert playlist is not None
        assert [s.external_id for s in playlist.segments] == [53, 54, 55, 56]


async def test_reload_interval_follows_playlist_and_halves_when_unchanged() -> None:
    async with (
        SyntheticOrigin(live=True, segment_duration=0.3, time_source=Clock()) as origin,
        HlsSource(origin.url, config=FAST) as source,
        source.follow(0) as follower,
    ):
        playlist = await follower.wait_loaded(WAIT)
        assert follower._reload_interval(playlist, unchanged=False) == pytest.approx(0.3)
        assert follower._reload_interval(playlist, unchanged=True) == pytest.approx(0.15)
        # The clock is frozen: nothing changes, so reloads come every half interval.
        started = time.monotonic()
        await follower.wait_until(lambda: follower.loads >= 4, timeout=WAIT)
        assert time.monotonic() - started >= 3 * 0.15 * 0.9


async def test_outage_mid_run_counted_follower_survives_and_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pml_py.hls.source")
    async with (
        SyntheticOrigin(live=True, window=3, segment_duration=6.0, time_source=Clock()) as origin,
        HlsSource(origin.url, config=fast(reload_interval=0.02)) as source,
        source.follow(0) as follower,
    ):
        await follower.wait_loaded(WAIT)
        segments = follower.new_segments()
        async with asyncio.timeout(WAIT):
            seen = [await anext(segments) for _ in range(3)]
        origin.outage = True
        await follower.wait_until(lambda: follower.consecutive_failures >= 4, timeout=WAIT)
        assert source.stats.errors["http_5xx"] >= 4
        assert isinstance(follower.last_error, OriginHttpError)
        assert follower.last_error.status == 503
        with pytest.raises(OriginHttpError):
            await source.fetch_segment(seen[0])  # fetch calls do raise
        # During the outage the stream went on; when the origin comes back we catch up.
        origin.advance(2)
        origin.outage = False
        async with asyncio.timeout(WAIT):
            seen += [await anext(segments) for _ in range(2)]
        assert [s.external_id for s in seen] == [0, 1, 2, 3, 4]
        assert follower.consecutive_failures == 0 and follower.failures >= 4
        await segments.aclose()
    # The outage is reported once when it starts and once when it ends, not per failure.
    lines = [r.getMessage() for r in caplog.records if "origin playlist" in r.getMessage()]
    assert len(lines) == 2, lines
    assert " is down: " in lines[0] and "503" in lines[0], lines
    assert " is back after " in lines[1]
    assert follower.outage.outages == 1 and not follower.outage.down


async def test_connection_refused_during_follow_then_origin_returns() -> None:
    port = free_port()
    clock = Clock()
    async with SyntheticOrigin(port=port, live=True, time_source=clock) as origin:
        source = HlsSource(origin.url, config=fast(reload_interval=0.02))
        await source.__aenter__()
    try:
        follower = source.follow(0)
        await follower.wait_until(lambda: follower.consecutive_failures >= 3, timeout=WAIT)
        assert isinstance(follower.last_error, OriginConnectionError)
        assert source.stats.errors["connection"] >= 3
        assert follower.playlist is None
        async with SyntheticOrigin(port=port, live=True, time_source=clock) as back:
            playlist = await follower.wait_loaded(WAIT)
            assert playlist.url == back.playlist_url("360p")
    finally:
        await source.aclose()


async def test_garbage_playlist_in_live_is_survived() -> None:
    async with (
        SyntheticOrigin(live=True, window=2, segment_duration=6.0, time_source=Clock()) as origin,
        HlsSource(origin.url, config=fast(reload_interval=0.02)) as source,
        source.follow(0) as follower,
    ):
        await follower.wait_loaded(WAIT)
        origin.override("/360p/index.m3u8", "#EXTM3U\n#EXTINF:abc,\nx.ts\n")
        await follower.wait_until(lambda: follower.consecutive_failures >= 2, timeout=WAIT)
        assert source.stats.errors["invalid"] >= 2
        origin.clear_override("/360p/index.m3u8")
        origin.advance()
        new = await take(follower, 1, from_start=False)
        assert new[0].external_id == 2


async def test_live_restart_with_lower_sequence_is_followed() -> None:
    async with (
        SyntheticOrigin(
            live=True, window=2, segment_duration=6.0, start_sequence=500, time_source=Clock()
        ) as origin,
        HlsSource(origin.url, config=fast(reload_interval=0.02)) as source,
        source.follow(0) as follower,
    ):
        await follower.wait_loaded(WAIT)
        segments = follower.new_segments()
        async with asyncio.timeout(WAIT):
            assert [(await anext(segments)).external_id for _ in range(2)] == [500, 501]
            origin.override(
                "/360p/index.m3u8",
                "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n"
                "#EXTINF:6,\n0.ts\n#EXTINF:6,\n1.ts\n",
            )
            assert [(await anext(segments)).external_id for _ in range(2)] == [0, 1]
        await segments.aclose()


async def test_iterators_end_when_follower_closes() -> None:
    async with (
        SyntheticOrigin(live=True, window=2, time_source=Clock()) as origin,
        HlsSource(origin.url, config=FAST) as source,
    ):
        follower = source.follow(0)
        seen: list[int] = []

        async def consume() -> None:
            async for segment in follower.new_segments():
                seen.append(segment.external_id)

        async with asyncio.TaskGroup() as group:
            group.create_task(consume())
            await follower.wait_loaded(WAIT)
            await follower.aclose()
        assert seen == [0, 1]
        assert follower not in source.followers
        await follower.aclose()  # idempotent


# ---------------------------------------------------------------------------- fetch errors


async def test_segment_retries_back_off_then_raise(vod: SyntheticOrigin) -> None:
    config = fast(retry=RetryPolicy(attempts=4, initial_delay=0.05, multiplier=2, max_delay=1))
    async with HlsSource(vod.url, config=config) as source:
        playlist = await source.follow(0).wait_loaded(WAIT)
        segment = playlist.segments[0]
        vod.outage = True
        started = time.monotonic()
        with pytest.raises(OriginHttpError) as info:
            await source.fetch_segment(segment)
        elapsed = time.monotonic() - started
        assert info.value.status == 503
        assert elapsed >= (0.05 + 0.1 + 0.2) * 0.9  # three back-offs: 0.05, 0.1, 0.2 s
        assert vod.stats.requests["/360p/0.ts"] == 4
        assert source.stats.retries == 3 and source.stats.errors["http_5xx"] == 4
        vod.outage = False
        assert await source.fetch_segment(segment) == vod.expected_segment("360p", 0)


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(attempts=5, initial_delay=0.5, multiplier=2, max_delay=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_404_is_not_retried(vod: SyntheticOrigin) -> None:
    async with HlsSource(vod.url, config=FAST) as source:
        playlist = await source.follow(0).wait_loaded(WAIT)
        vod.override("/360p/1.ts", b"gone", status=404)
        with pytest.raises(OriginHttpError):
            await source.fetch_segment(playlist.segments[1])
        assert vod.stats.requests["/360p/1.ts"] == 1
        assert source.stats.errors["http_4xx"] == 1 and source.stats.retries == 0


async def test_stalled_body_times_out(vod: SyntheticOrigin) -> None:
    config = fast(stall_timeout=0.2, retry=RetryPolicy(attempts=1))
    async with HlsSource(vod.url, config=config) as source:
        playlist = await source.follow(0).wait_loaded(WAIT)
        vod.stall = True
        with pytest.raises(OriginStallError):
            await source.fetch_segment(playlist.segments[0])
        assert source.stats.errors["stall"] == 1
        assert vod.stats.bytes["/360p/0.ts"] == 2500  # half was sent, then nothing


@pytest.mark.parametrize(
    "body",
    ["", "not a playlist", "#EXTM3U\n#EXT-X-VERSION:3\n", b"#EXTM3U\n\xff\xfe\n"],
)
async def test_bad_manifest_raises_source_error(vod: SyntheticOrigin, body: str | bytes) -> None:
    vod.override("/master.m3u8", body)
    source = HlsSource(vod.url, config=FAST)
    with pytest.raises(SourceError):
        async with source:
            pass
    assert vod.stats.requests["/master.m3u8"] == 1  # garbage is not retried
    assert source.stats.errors == {"invalid": 1} and source.closed


async def test_unreachable_manifest_retried_then_raises() -> None:
    source = HlsSource(f"http://127.0.0.1:{free_port()}/master.m3u8", config=FAST)
    with pytest.raises(OriginConnectionError):
        await source.__aenter__()
    assert source.stats.errors["connection"] == 3 and source.stats.retries == 2
    assert source.closed


async def test_close_is_idempotent_and_leaves_no_tasks(vod: SyntheticOrigin) -> None:
    async with aiohttp.ClientSession() as session:
        source = HlsSource(vod.url, session=session, config=FAST)
        async with source:
            source.follow(0)
            source.follow(1)
            assert len(source.followers) == 2
        await source.aclose()
        assert not session.closed  # not ours to close
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("hls-follow")]
        with pytest.raises(LocalProtocolError):
            source.follow(0)


async def test_fetcher_functions(vod: SyntheticOrigin) -> None:
    text, final_url = await fetch_text(vod.redirect_url())
    assert final_url == vod.url and text == vod.master_playlist()
    async with aiohttp.ClientSession() as session:
        url = f"{vod.base_url}/360p/2.ts"
        fetched = await fetch(session, url, byte_range=(10, 19))
        assert fetched.body == vod.expected_segment("360p", 2)[10:20]
        vod.honour_range = False
        fetched = await fetch(session, url, byte_range=(4990, 5100))  # clipped like a 206 would
        assert fetched.body == vod.expected_segment("360p", 2)[4990:]
        with pytest.raises(SourceError, match="no bytes 6000-6009"):
            await fetch(session, url, byte_range=(6000, 6009))
        with pytest.raises(SourceError, match="exceeds"):
            await fetch(session, url, max_bytes=100)


async def test_live_playlist_that_gets_endlist_stops_reloading() -> None:
    async with (
        SyntheticOrigin(live=True, window=2, start_sequence=7, time_source=Clock()) as origin,
        HlsSource(origin.url, config=fast(reload_interval=0.02)) as source,
        source.follow(0) as follower,
    ):
        await follower.wait_loaded(WAIT)
        ended = origin.media_playlist("360p") + "#EXTINF:2.000,\n9.ts\n#EXT-X-ENDLIST\n"
        origin.override("/360p/index.m3u8", ended)
        segments = await take(follower, 99)  # ends by itself once ENDLIST is seen
        assert [s.sequence_number for s in segments] == [7, 8, 9]
        assert follower.ended
        loads = origin.stats.requests["/360p/index.m3u8"]
        assert follower._task is not None
        async with asyncio.timeout(WAIT):
            await follower._task  # the reload loop returned on its own
        assert origin.stats.requests["/360p/index.m3u8"] == loads
