"""Edge cases of the playlist model: hls.js quirks PML inherits, URLs, malformed input."""

from __future__ import annotations

import math

import pytest

from p2pml_py.base.errors import SourceError
from p2pml_py.hls.playlist import (
    CodecType,
    parse_master_playlist,
    parse_media_playlist,
    resolve_url,
    stream_identities,
)
from p2pml_py.identity import (
    ProtocolVersion,
    info_hash,
    stream_short_id,
    stream_swarm_id,
)

V22 = ProtocolVersion.V2_2
V23 = ProtocolVersion.V2_3
BASE = "https://cdn.example.com/live/master.m3u8"


def master(*lines: str) -> str:
    return "\n".join(["#EXTM3U", *lines]) + "\n"


# ---------------------------------------------------------------------------------------------
# master playlists


def test_media_playlist_as_manifest_is_one_main_stream() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n"
    url = "https://cdn.example.com/redirected/index.m3u8?session=42"
    m = parse_master_playlist(text, url)
    assert m.is_media_playlist
    (stream,) = m.streams
    assert (stream.type, stream.position, stream.url, stream.bitrate) == ("main", 0, url, 0)
    ids = stream_identities(text, url, [V22, V23])
    swarm = "https://cdn.example.com/redirected/index.m3u8"
    assert [i.stream_swarm_id for i in ids] == [
        f"v2-{swarm}-main-0",
        f"v2-{swarm}-main-{stream_short_id(bitrate=0)}",
    ]
    assert stream_short_id(bitrate=0) == "UYnLxGhQilEV4D0HbCx+kRv0ZF0="
    assert ids[0].info_hash == info_hash(ids[0].stream_swarm_id, V22)


def test_redirected_manifest_url_with_query() -> None:
    text = master(
        "#EXT-X-STREAM-INF:BANDWIDTH=1000",
        "hi/index.m3u8?sig=abc",
        "#EXT-X-STREAM-INF:BANDWIDTH=500",
        "../lo/./index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=200",
        "//other.example.net/x/../abs.m3u8",
    )
    url = "https://edge7.cdn.example.com/live/master.m3u8?token=t#frag"
    m = parse_master_playlist(text, url)
    assert [s.url for s in m.streams] == [
        "https://edge7.cdn.example.com/live/hi/index.m3u8?sig=abc",
        "https://edge7.cdn.example.com/lo/index.m3u8",
        "https://other.example.net/abs.m3u8",
    ]
    ids = stream_identities(text, url, V22)
    assert ids[1].stream_swarm_id == "v2-https://edge7.cdn.example.com/live/master.m3u8-main-1"


def test_swarm_id_override() -> None:
    text = master("#EXT-X-STREAM-INF:BANDWIDTH=1000", "a.m3u8")
    (ident,) = stream_identities(text, BASE, V22, swarm_id="my-custom-swarm")
    assert ident.stream_swarm_id == "v2-my-custom-swarm-main-0"
    # info_hash.json has this id: drGlIgJb7/EckRoauaso for 2.2.2
    assert ident.info_hash == "drGlIgJb7/EckRoauaso"


def test_positions_follow_playlist_order_not_bandwidth() -> None:
    text = master(
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720",
        "720.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360",
        "360.m3u8",
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="iframes.m3u8"',
    )
    m = parse_master_playlist(text, BASE)
    assert [(s.position, s.url.rsplit("/", 1)[1]) for s in m.streams] == [
        (0, "720.m3u8"),
        (1, "360.m3u8"),
    ]
    assert m.streams[0].label == "1280x720 3000 kbps"


def test_missing_attributes() -> None:
    text = master(
        "#EXT-X-STREAM-INF:PROGRAM-ID=1", "a.m3u8", "#EXT-X-STREAM-INF:BANDWIDTH=0", "b.m3u8"
    )
    a, b = parse_master_playlist(text, BASE).streams
    # hls.js: parseInt(undefined) -> NaN, and PML hashes "NaN"
    assert a.bitrate is None
    assert (a.video_codec, a.audio_codec, a.width, a.height) == (None, None, None, None)
    assert a.short_id == stream_short_id(bitrate=math.nan)
    assert a.short_id != stream_short_id(bitrate=0)
    assert a.label == "level 0"
    # BANDWIDTH=0 and no AVERAGE-BANDWIDTH: 0 || NaN is NaN in JS
    assert b.bitrate is None


def test_bitrate_zero_drops_other_attributes() -> None:
    text = master(
        '#EXT-X-STREAM-INF:BANDWIDTH=0,AVERAGE-BANDWIDTH=0,CODECS="avc1.64001f",'
        "RESOLUTION=1280x720",
        "a.m3u8",
    )
    (s,) = parse_master_playlist(text, BASE).streams
    assert s.bitrate == 0
    assert s.short_id == stream_short_id(bitrate=0)


def test_bandwidth_preferred_over_average_and_frame_rate_raw() -> None:
    text = master(
        "#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=900,BANDWIDTH=1000,FRAME-RATE=29.970,"
        'VIDEO-RANGE=PQ,CODECS="hvc1.2.4.L153.B0, ec-3",RESOLUTION=3840x2160',
        "a.m3u8",
    )
    (s,) = parse_master_playlist(text, BASE).streams
    assert (s.bitrate, s.frame_rate, s.video_range) == (1000, "29.970", "PQ")
    assert (s.video_codec, s.audio_codec) == ("hvc1.2.4.L153.B0", "ec-3")
    assert s.short_id == stream_short_id(
        bitrate=1000,
        codecs="hvc1.2.4.L153.B0",
        width=3840,
        height=2160,
        frame_rate="29.97",
        video_range="PQ",
    )


def test_legacy_avc1_is_rewritten_before_short_id() -> None:
    text = master(
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.77.030,mp4a.40.2"',
        "a.m3u8",
    )
    (s,) = parse_master_playlist(text, BASE).streams
    assert s.video_codec == "avc1.4d001e"
    assert s.short_id == stream_short_id(bitrate=1000, codecs="avc1.4d001e")
    assert s.short_id != stream_short_id(bitrate=1000, codecs="avc1.77.030")


def test_unknown_codec_levels_are_stripped_unless_all_unknown() -> None:
    text = master(
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="xyz1.1,mp4a.40.2"',
        "weird.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=2000,CODECS="avc1.64001f,mp4a.40.2"',
        "good.m3u8",
    )
    (s,) = parse_master_playlist(text, BASE).streams
    assert (s.position, s.url) == (0, "https://cdn.example.com/live/good.m3u8")
    only_unknown = master('#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="xyz1.1"', "weird.m3u8")
    (w,) = parse_master_playlist(only_unknown, BASE).streams
    assert (w.video_codec, w.audio_codec) == (None, None)

    def supported(codec: str, kind: CodecType) -> bool:
        return kind == "video" and codec == "xyz1.1"

    (w2,) = parse_master_playlist(only_unknown, BASE, is_type_supported=supported).streams
    assert w2.video_codec == "xyz1.1"
    assert w2.short_id != w.short_id


def test_audio_codec_borrowed_from_group_else_first_level() -> None:
    text = master(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="ac3",NAME="Dolby",LANGUAGE="en",URI="a/ac3.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="none",LANGUAGE="fr",URI="a/fr.m3u8"',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="S",URI="s.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aac"',
        "v1.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=2000,CODECS="avc1.64001f,ac-3",AUDIO="ac3"',
        "v2.m3u8",
    )
    m = parse_master_playlist(text, BASE)
    ac3, fr = m.secondary_streams
    assert (ac3.position, ac3.audio_codec, ac3.name, ac3.language) == (0, "ac-3", "Dolby", "en")
    assert (fr.position, fr.audio_codec, fr.name) == (1, "mp4a.40.2", "fr")  # NAME falls back
    assert fr.short_id == stream_short_id(bitrate=0, codecs="mp4a.40.2", language="fr", name="fr")
    assert ac3.label == "Dolby (en)"


def test_synthetic_main_audio_track() -> None:
    text = master(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="alt",NAME="Director",LANGUAGE="en",URI="alt/en.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.64001f,mp4a.40.2"',
        "v1.m3u8",
    )
    m = parse_master_playlist(text, BASE)
    main_audio, director = m.secondary_streams
    assert (main_audio.position, main_audio.url, main_audio.name) == (0, "", "main")
    assert not main_audio.has_playlist
    assert main_audio.short_id == stream_short_id(bitrate=0, name="main")
    assert (director.position, director.url) == (1, "https://cdn.example.com/live/alt/en.m3u8")
    ids = stream_identities(text, BASE, V22)
    assert [i.stream_swarm_id for i in ids][1:] == [
        stream_swarm_id(BASE, "secondary", 0),
        stream_swarm_id(BASE, "secondary", 1),
    ]


def test_no_synthetic_track_when_embedded_or_grouped() -> None:
    embedded = master(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Main",DEFAULT=YES',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Also embedded"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Alt",URI="alt.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="a"',
        "v1.m3u8",
    )
    tracks = parse_master_playlist(embedded, BASE).secondary_streams
    # PML keys streams by playlist URL: the second URL-less track is skipped, positions go on
    assert [(t.position, t.url, t.name) for t in tracks] == [
        (0, "", "Main"),
        (2, "https://cdn.example.com/live/alt.m3u8", "Alt"),
    ]
    grouped = embedded.replace('NAME="Main",DEFAULT=YES', 'NAME="Main",URI="m.m3u8"').replace(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Also embedded"\n', ""
    )
    assert [t.name for t in parse_master_playlist(grouped, BASE).secondary_streams] == [
        "Main",
        "Alt",
    ]


def test_duplicate_playlist_urls_are_registered_once() -> None:
    text = master(
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Same",URI="v1.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO="a"',
        "v1.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO="b"',
        "v1.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=2000",
        "v2.m3u8",
    )
    m = parse_master_playlist(text, BASE)
    assert [(s.type, s.position, s.url.rsplit("/", 1)[1]) for s in m.streams] == [
        ("main", 0, "v1.m3u8"),
        ("main", 2, "v2.m3u8"),
    ]


def test_stream_inf_without_attributes_is_ignored_like_hlsjs() -> None:
    text = master("#EXT-X-STREAM-INF:", "ghost.m3u8", "#EXT-X-STREAM-INF:BANDWIDTH=5", "b.m3u8")
    (s,) = parse_master_playlist(text, BASE).streams
    assert (s.position, s.url) == (0, "https://cdn.example.com/live/b.m3u8")


def test_comments_between_stream_inf_and_uri_and_crlf() -> None:
    text = (
        '#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1000,NAME="low"\r\n# comment\r\n'
        "#EXT-X-SOMETHING\r\nlow.m3u8\r\n"
    )
    (s,) = parse_master_playlist(text, BASE).streams
    assert (s.url, s.name, s.bitrate) == ("https://cdn.example.com/live/low.m3u8", "low", 1000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "#EXTM3U"),
        ("<html>nope</html>", "#EXTM3U"),
        (" #EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n", "#EXTM3U"),
        ("#EXTM3U\n#EXT-X-VERSION:3\n", "no levels"),
        ('#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="a.m3u8"\n', "no levels"),
    ],
)
def test_bad_master_playlists(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_master_playlist(text, BASE)


def test_master_rejects_bytes_and_relative_base() -> None:
    with pytest.raises(SourceError):
        parse_master_playlist(b"#EXTM3U\n", BASE)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="absolute"):
        parse_master_playlist(master("#EXT-X-STREAM-INF:BANDWIDTH=1", "a.m3u8"), "master.m3u8")


def test_resolve_url() -> None:
    base = "https://h.example/a/b/index.m3u8?q=1"
    assert resolve_url(base, "s.ts") == "https://h.example/a/b/s.ts"
    assert resolve_url(base, "/root.ts?x=1") == "https://h.example/root.ts?x=1"
    assert resolve_url(base, "?only=query") == "https://h.example/a/b/index.m3u8?only=query"
    assert resolve_url(base, "https://o.example/x/./y/../z.ts") == "https://o.example/x/z.ts"
    assert resolve_url(base, " s.ts ") == "https://h.example/a/b/s.ts"


# ---------------------------------------------------------------------------------------------
# media playlists

PLAYLIST_URL = "https://cdn.example.com/live/v1/index.m3u8?token=abc"


def test_fmp4_init_segment_and_byte_ranges() -> None:
    text = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n"
        '#EXT-X-MAP:URI="init.mp4",BYTERANGE="720@0"\n'
        "#EXTINF:4,\n#EXT-X-BYTERANGE:1000@720\nmedia.mp4\n"
        "#EXTINF:4,\n#EXT-X-BYTERANGE:500\nmedia.mp4\n"
        "#EXTINF:4,\nplain.m4s\n"
        "#EXTINF:2.5,\n#EXT-X-BYTERANGE:300\nother.mp4\n"
        "#EXTINF:2.5,\n#EXT-X-BYTERANGE:0@10\nempty.mp4\n"
        "#EXT-X-ENDLIST\n"
    )
    p = parse_media_playlist(text, PLAYLIST_URL)
    assert (p.is_live, p.target_duration, p.media_sequence) == (False, 4, 7)
    base = "https://cdn.example.com/live/v1/"
    assert [(s.external_id, s.sequence_number, s.byte_range) for s in p.segments] == [
        (0, 7, (720, 1719)),
        (1, 8, (1720, 2219)),
        (2, 9, None),
        # implicit offset after a segment without range: hls.js starts at 0
        (3, 10, (0, 299)),
        # zero-length range: PML's getByteRange drops it, runtime id is the bare URL
        (4, 11, None),
    ]
    assert p.segments[1].runtime_id == base + "media.mp4|1720-2219"
    assert p.segments[4].runtime_id == base + "empty.mp4"
    init = p.segments[0].init_segment
    assert init is not None
    assert (init.url, init.byte_range) == (base + "init.mp4", (0, 719))
    assert p.segments[3].start_time == pytest.approx(12.0)
    assert p.segments[4].end_time == pytest.approx(17.0)
    assert p.segment_by_external_id(2) is p.segments[2]
    assert p.segment_by_external_id(9) is None
    assert p.segment_by_runtime_id(base + "plain.m4s") is p.segments[2]


def test_live_playlist_uses_sequence_numbers() -> None:
    text = "#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-MEDIA-SEQUENCE:41\r\n" + "".join(
        f"#EXTINF:2.0,\r\nseg{n}.ts?part=1\r\n" for n in range(41, 44)
    )
    p = parse_media_playlist(text, PLAYLIST_URL)
    assert p.is_live
    assert [s.external_id for s in p.segments] == [41, 42, 43]
    assert p.segments[0].url == "https://cdn.example.com/live/v1/seg41.ts?part=1"


def test_playlist_type_vod_without_endlist_is_live_for_hlsjs() -> None:
    text = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:2,\na.ts\n"
    p = parse_media_playlist(text, PLAYLIST_URL)
    assert p.is_live
    assert p.segments[0].external_id == 5


def test_empty_media_playlist() -> None:
    p = parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n", PLAYLIST_URL)
    assert (p.segments, p.is_live, p.media_sequence) == ((), False, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "#EXTM3U"),
        ("#EXTM3U\n#EXTINF:abc,\na.ts\n", "malformed media playlist"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:x\n", "malformed media playlist"),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n", "malformed media playlist"),
        ("#EXTM3U\n#EXTINF:4,\n#EXT-X-BYTERANGE:abc\na.ts\n", "BYTERANGE"),
        ("#EXTM3U\n#EXTINF:4,\n#EXT-X-BYTERANGE:-5@1\na.ts\n", "BYTERANGE"),
        ("#EXTM3U\n#EXTINF:-4,\na.ts\n", "duration"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n", "master playlist"),
    ],
)
def test_bad_media_playlists(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_media_playlist(text, PLAYLIST_URL)
