"""hls.js level numbers (``Stream.hlsjs_levels``) and rendition selectors (``p2pml_py.hls.select``).

The expected level orders were checked against the real level controller of hls.js 1.6.19
(``interop/node_modules/hls.js``: MANIFEST_LOADED from its own parser, every codec reported
supported, then the ``levels`` of MANIFEST_PARSED).
"""

from __future__ import annotations

import pytest

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.hls.playlist import Stream, parse_master_playlist
from p2pml_py.hls.select import (
    RenditionSelector,
    describe_rendition,
    parse_selector,
    select_rendition,
    select_renditions,
)

BASE = "https://cdn.example.org/live/"
AV = 'CODECS="avc1.4d401f,mp4a.40.2"'


def master(*variants: tuple[str, str], extra: str = "") -> str:
    lines = ["#EXTM3U", *(f"#EXT-X-STREAM-INF:{a}\n{uri}" for a, uri in variants)]
    return "\n".join(lines) + "\n" + extra


def hlsjs_order(text: str) -> list[str]:
    """Playlist URLs (relative to BASE) in hls.js level order."""
    by_level: dict[int, str] = {}
    for stream in parse_master_playlist(text, BASE + "master.m3u8").streams:
        for level in stream.hlsjs_levels:
            by_level[level] = stream.url.removeprefix(BASE)
    assert sorted(by_level) == list(range(len(by_level)))
    return [by_level[i] for i in range(len(by_level))]


@pytest.mark.parametrize(
    ("text", "order"),
    [
        pytest.param(
            master(
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "720.m3u8"),
                (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "360.m3u8"),
            ),
            ["360.m3u8", "720.m3u8"],
            id="not-playlist-order",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=1500000,RESOLUTION=1920x1080,{AV}", "1080.m3u8"),
                (f"BANDWIDTH=3000000,RESOLUTION=1280x720,{AV}", "720hi.m3u8"),
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "720lo.m3u8"),
            ),
            ["720lo.m3u8", "720hi.m3u8", "1080.m3u8"],
            id="height-before-bitrate",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "720.m3u8"),
                ('BANDWIDTH=64000,CODECS="mp4a.40.2"', "audio.m3u8"),
                (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "360.m3u8"),
            ),
            ["360.m3u8", "720.m3u8"],
            id="audio-only-level-dropped",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "a/720.m3u8"),
                (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "a/360.m3u8"),
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "b/720.m3u8"),
                (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "b/360.m3u8"),
            ),
            ["a/360.m3u8", "a/720.m3u8"],
            id="redundant-backups-not-levels",
        ),
        pytest.param(
            master(
                (f'BANDWIDTH=2000000,RESOLUTION=1280x720,PATHWAY-ID="cdn-a",{AV}', "a/720.m3u8"),
                (f'BANDWIDTH=800000,RESOLUTION=640x360,PATHWAY-ID="cdn-a",{AV}', "a/360.m3u8"),
                (f'BANDWIDTH=2000000,RESOLUTION=1280x720,PATHWAY-ID="cdn-b",{AV}', "b/720.m3u8"),
                (f'BANDWIDTH=800000,RESOLUTION=640x360,PATHWAY-ID="cdn-b",{AV}', "b/360.m3u8"),
                extra='#EXT-X-CONTENT-STEERING:SERVER-URI="/s.json",PATHWAY-ID="cdn-b"\n',
            ),
            ["b/360.m3u8", "b/720.m3u8"],
            id="content-steering-pathway",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=3000000,RESOLUTION=1280x720,VIDEO-RANGE=PQ,{AV}", "pq.m3u8"),
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,VIDEO-RANGE=SDR,{AV}", "sdr.m3u8"),
                (f"BANDWIDTH=2500000,RESOLUTION=1280x720,VIDEO-RANGE=HLG,{AV}", "hlg.m3u8"),
                (f"BANDWIDTH=900000,RESOLUTION=1280x720,VIDEO-RANGE=XYZ,{AV}", "bad.m3u8"),
            ),
            ["sdr.m3u8", "pq.m3u8", "hlg.m3u8"],
            id="video-range",
        ),
        pytest.param(
            master(
                ('BANDWIDTH=1500000,RESOLUTION=1280x720,CODECS="hvc1.1.6.L93.B0,mp4a.40.2"', "h"),
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "a"),
                ('BANDWIDTH=1200000,RESOLUTION=1280x720,CODECS="av01.0.05M.08,mp4a.40.2"', "av1"),
            ),
            ["a", "av1", "h"],
            id="codec-preference",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=6000000,RESOLUTION=1920x1080,HDCP-LEVEL=TYPE-1,{AV}", "hd.m3u8"),
                (f"BANDWIDTH=2000000,RESOLUTION=1280x720,HDCP-LEVEL=NONE,{AV}", "720.m3u8"),
                (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "360.m3u8"),
            ),
            ["360.m3u8", "720.m3u8", "hd.m3u8"],
            id="hdcp-level",
        ),
        pytest.param(
            master(
                (f"BANDWIDTH=2000000,FRAME-RATE=30,{AV}", "a.m3u8"),
                (f"BANDWIDTH=800000,FRAME-RATE=60,{AV}", "b.m3u8"),
                (f"BANDWIDTH=900000,FRAME-RATE=30,{AV}", "c.m3u8"),
            ),
            ["c.m3u8", "a.m3u8", "b.m3u8"],
            id="no-resolution-frame-rate-then-bitrate",
        ),
        pytest.param(
            master(
                (f"AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,{AV}", "a.m3u8"),
                (f"AVERAGE-BANDWIDTH=1000000,RESOLUTION=1280x720,{AV}", "b.m3u8"),
                (f"BANDWIDTH=3000000,AVERAGE-BANDWIDTH=500000,RESOLUTION=1280x720,{AV}", "c"),
            ),
            ["c", "b.m3u8", "a.m3u8"],
            id="average-bandwidth",
        ),
    ],
)
def test_hlsjs_numbers_levels_like_hlsjs(text: str, order: list[str]) -> None:
    assert hlsjs_order(text) == order


def test_one_playlist_listed_twice_is_two_hlsjs_levels() -> None:
    """Apple-style masters pair one video playlist with several audio groups: hls.js makes a
    level of each, PML one stream (by URL), so the stream has two level numbers."""
    text = master(
        ('BANDWIDTH=2400000,RESOLUTION=1280x720,CODECS="avc1.4d401f,ec-3",AUDIO="ec3"', "v1.m3u8"),
        (
            'BANDWIDTH=2100000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2",AUDIO="aac"',
            "v1.m3u8",
        ),
        (
            'BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aac"',
            "v0.m3u8",
        ),
        extra='#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="en",URI="aac.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="ec3",NAME="en",URI="ec3.m3u8"\n',
    )
    streams = parse_master_playlist(text, BASE + "master.m3u8").streams
    assert [s.url.removeprefix(BASE) for s in streams[:2]] == ["v1.m3u8", "v0.m3u8"]
    assert [s.hlsjs_levels for s in streams] == [(1, 2), (0,), (), ()]
    assert describe_rendition(streams, 0) == "0: 1280x720 2400 kbps, hls.js levels 1, 2"
    assert describe_rendition(streams, 2).endswith(", audio track")


def test_a_media_playlist_manifest_is_level_zero() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns0.ts\n"
    (stream,) = parse_master_playlist(text, BASE + "index.m3u8").streams
    assert stream.hlsjs_levels == (0,)
    assert select_rendition([stream], "lowest") == select_rendition([stream], "highest") == 0


# -- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "text"),
    [
        (2, "number", "2"),
        ("02", "number", "2"),
        (" all ", "all", "all"),
        ("Lowest", "lowest", "lowest"),
        ("highest", "highest", "highest"),
        ("level:3", "level", "level:3"),
        ("LEVEL=0", "level", "level:0"),
        ("640x360", "resolution", "640x360"),
        ("1280X720", "resolution", "1280x720"),
        ("720p", "height", "720p"),
        ("800k", "bandwidth", "800k"),
        ("800kbps", "bandwidth", "800k"),
        ("2.5M", "bandwidth", "2.5M"),
        ("2.5mbit/s", "bandwidth", "2.5M"),
        ("836521bps", "bandwidth", "836521bps"),
    ],
)
def test_selectors_parse_to_a_canonical_spelling(spec: int | str, kind: str, text: str) -> None:
    selector = parse_selector(spec)
    assert (selector.kind, selector.text) == (kind, text)
    assert parse_selector(selector.text) == selector  # what configurations store parses back
    assert parse_selector(selector) is selector


def test_bandwidth_precision_is_what_was_written() -> None:
    assert parse_selector("800k").tolerance == 500
    assert parse_selector("2.5M").tolerance == pytest.approx(50_000)
    assert parse_selector("836521bps").tolerance == 0


@pytest.mark.parametrize("spec", ["", "fast", "-1", -1, "level:", "640x", "0k", "1.5", True, 1.5])
def test_bad_selectors_say_what_is_expected(spec: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_selector(spec)  # type: ignore[arg-type]
    assert "rendition number" in str(info.value) or ">" in str(info.value)


# A master in the order a real site may list it: not sorted, two 720p levels, an audio track.
LADDER = master(
    (f'BANDWIDTH=2000000,RESOLUTION=1280x720,{AV},AUDIO="a"', "720.m3u8"),
    (f'BANDWIDTH=836521,RESOLUTION=640x360,{AV},AUDIO="a"', "360.m3u8"),
    (f'BANDWIDTH=3000000,RESOLUTION=1280x720,{AV},AUDIO="a"', "720hi.m3u8"),
    (f'BANDWIDTH=5000000,RESOLUTION=1920x1080,{AV},AUDIO="a"', "1080.m3u8"),
    extra='#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="English",LANGUAGE="en",URI="en.m3u8"\n',
)


@pytest.fixture
def ladder() -> tuple[Stream, ...]:
    return parse_master_playlist(LADDER, BASE + "master.m3u8").streams


def names(streams: list[Stream]) -> list[str]:
    return [s.url.removeprefix(BASE) for s in streams]


@pytest.mark.parametrize(
    ("selectors", "chosen"),
    [
        (None, ["720.m3u8", "360.m3u8", "720hi.m3u8", "1080.m3u8", "en.m3u8"]),
        (["all", "0"], ["720.m3u8", "360.m3u8", "720hi.m3u8", "1080.m3u8", "en.m3u8"]),
        (["lowest"], ["360.m3u8"]),
        (["highest"], ["1080.m3u8"]),
        (["level:1"], ["720.m3u8"]),
        (["640x360"], ["360.m3u8"]),
        (["360p", "4"], ["360.m3u8", "en.m3u8"]),
        (["720p"], ["720.m3u8", "720hi.m3u8"]),
        (["837k"], ["360.m3u8"]),
        (["836521bps"], ["360.m3u8"]),
        (["3M", "2M", 2], ["720hi.m3u8", "720.m3u8"]),  # in the order selected, each once
    ],
)
def test_seeder_selection(
    ladder: tuple[Stream, ...], selectors: list[int | str] | None, chosen: list[str]
) -> None:
    assert names(select_renditions(ladder, selectors)) == chosen


def test_selection_errors_list_the_renditions(ladder: tuple[Stream, ...]) -> None:
    with pytest.raises(LocalProtocolError) as info:
        select_renditions(ladder, ["480p"])
    message = str(info.value)
    assert "'480p' matches nothing" in message
    assert "1: 640x360 837 kbps, hls.js level 0" in message
    assert "4: English (en), audio track" in message
    with pytest.raises(LocalProtocolError, match="'7' matches nothing"):
        select_renditions(ladder, [7])
    with pytest.raises(LocalProtocolError, match="'836k' matches nothing"):
        select_renditions(ladder, ["836k"])  # 836521 is 837 kbit/s to the nearest kbit/s


def test_viewer_selection(ladder: tuple[Stream, ...]) -> None:
    assert select_rendition(ladder, None) == 0  # the first video level listed, as before
    assert select_rendition(ladder, "lowest") == 1  # the page's hls.js level 0
    assert select_rendition(ladder, "level:3") == 3
    assert select_rendition(ladder, RenditionSelector("number", "4", number=4)) == 4
    with pytest.raises(LocalProtocolError) as info:
        select_rendition(ladder, "1280x720")
    assert "matches 2 renditions" in str(info.value) and "0: 1280x720 2000 kbps" in str(info.value)
    with pytest.raises(LocalProtocolError, match="not 'all'"):
        select_rendition(ladder, "all")


def test_a_stream_without_playlist_cannot_be_joined() -> None:
    """hls.js's synthetic "main" audio track (muxed audio) has no playlist of its own."""
    text = master(
        (f"BANDWIDTH=800000,RESOLUTION=640x360,{AV}", "360.m3u8"),
        extra='#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="x",NAME="dub",URI="dub.m3u8"\n',
    )
    streams = parse_master_playlist(text, BASE + "master.m3u8").streams
    assert [s.url for s in streams].count("") == 1
    muxed = [s.url for s in streams].index("")
    with pytest.raises(LocalProtocolError, match="no playlist of its own"):
        select_rendition(streams, muxed)
    assert "" not in [s.url for s in select_renditions(streams, None)]


def test_without_hlsjs_levels_lowest_falls_back_to_bitrate() -> None:
    """Every level has a codec hls.js does not know: hls.js would refuse the manifest; a seeder
    asked for the lowest still gets the lowest bitrate."""
    text = master(
        ('BANDWIDTH=2000000,CODECS="zzzz.1"', "hi.m3u8"),
        ('BANDWIDTH=500000,CODECS="zzzz.1"', "lo.m3u8"),
    )
    streams = parse_master_playlist(text, BASE + "master.m3u8").streams
    assert all(s.hlsjs_levels == () for s in streams)
    assert names(select_renditions(streams, ["lowest"])) == ["lo.m3u8"]
    assert names(select_renditions(streams, ["highest"])) == ["hi.m3u8"]
    assert describe_rendition(streams, 0).endswith("not an hls.js level")
