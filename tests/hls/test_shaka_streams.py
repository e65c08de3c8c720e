"""Stream indexes of Shaka Player pages (``p2pml_py.hls.shaka``) against the hls.js 2.2 rule.

The expected orders follow Shaka 4.16's HLS parser and p2p-media-loader-shaka 2.2.2's
``processStreams``; ``tests/interop/test_shaka.py`` checks every case of :data:`CASES` against the
streams a real Shaka page registers with the core.
"""

from __future__ import annotations

import pytest

from p2pml_py.hls.playlist import parse_master_playlist, stream_identities
from p2pml_py.hls.shaka import shaka_stream_identities, shaka_streams
from p2pml_py.identity import ProtocolVersion

BASE = "http://127.0.0.1:8000/vod/x/"
MANIFEST = BASE + "master.m3u8"
AV = 'CODECS="avc1.42c00c,mp4a.40.2"'
V = 'CODECS="avc1.42c00c"'
A = 'CODECS="mp4a.40.2"'


def master(*variants: tuple[str, str], media: tuple[str, ...] = ()) -> str:
    lines = ["#EXTM3U", *media, *(f"#EXT-X-STREAM-INF:{a}\n{uri}" for a, uri in variants)]
    return "\n".join(lines) + "\n"


def rendition(name: str, uri: str | None, group: str = "aac") -> str:
    """An audio rendition whose NAME is its URI (the real-browser test matches streams by it)."""
    where = f',URI="{uri}"' if uri else ""
    return f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{group}",NAME="{name}",LANGUAGE="en"{where}'


#: name -> (master playlist, expected (type, index, Shaka kind, URI or rendition NAME)).
CASES: dict[str, tuple[str, list[tuple[str, int, str, str]]]] = {
    # Listed highest first: indexes follow the playlist, not the bitrate (like hls.js 2.2).
    "ladder": (
        master(
            (f"BANDWIDTH=900000,RESOLUTION=426x240,{AV}", "hi/index.m3u8"),
            (f"BANDWIDTH=300000,RESOLUTION=256x144,{AV}", "lo/index.m3u8"),
        ),
        [("main", 0, "video", "hi/index.m3u8"), ("main", 1, "video", "lo/index.m3u8")],
    ),
    # One playlist listed twice: one Shaka stream; hls.js 2.2 counts both positions.
    "repeated-uri": (
        master(
            (f"BANDWIDTH=300000,RESOLUTION=256x144,{AV}", "lo/index.m3u8"),
            (f"BANDWIDTH=350000,RESOLUTION=256x144,{AV}", "lo/index.m3u8"),
            (f"BANDWIDTH=900000,RESOLUTION=426x240,{AV}", "hi/index.m3u8"),
        ),
        [("main", 0, "video", "lo/index.m3u8"), ("main", 1, "video", "hi/index.m3u8")],
    ),
    # An audio-only variant is "main" but counted with the audio streams: main-0 again.
    "audio-only-variant": (
        master(
            (f"BANDWIDTH=300000,RESOLUTION=256x144,{AV}", "lo/index.m3u8"),
            (f"BANDWIDTH=900000,RESOLUTION=426x240,{AV}", "hi/index.m3u8"),
            (f"BANDWIDTH=64000,{A}", "audio/index.m3u8"),
        ),
        [
            ("main", 0, "video", "lo/index.m3u8"),
            ("main", 1, "video", "hi/index.m3u8"),
            ("main", 0, "audio", "audio/index.m3u8"),
        ],
    ),
    # Renditions: every (rendition, video) pair is a variant; audio numbered on first use.
    "audio-renditions": (
        master(
            (f'BANDWIDTH=300000,RESOLUTION=256x144,{V},AUDIO="aac"', "lo/index.m3u8"),
            (f'BANDWIDTH=900000,RESOLUTION=426x240,{V},AUDIO="aac"', "hi/index.m3u8"),
            media=(
                rendition("en/index.m3u8", "en/index.m3u8"),
                rendition("de/a.m3u8", "de/a.m3u8"),
            ),
        ),
        [
            ("main", 0, "video", "lo/index.m3u8"),
            ("secondary", 0, "audio", "en/index.m3u8"),
            ("secondary", 1, "audio", "de/a.m3u8"),
            ("main", 1, "video", "hi/index.m3u8"),
        ],
    ),
    # Without CODECS Shaka assumes avc1 + mp4a muxed: video streams.
    "no-codecs": (
        master(("BANDWIDTH=300000", "lo/index.m3u8"), ("BANDWIDTH=900000", "hi/index.m3u8")),
        [("main", 0, "video", "lo/index.m3u8"), ("main", 1, "video", "hi/index.m3u8")],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shaka_stream_order(name: str) -> None:
    text, expected = CASES[name]
    streams = shaka_streams(text, MANIFEST)
    assert [(s.type, s.index, s.content, s.uri) for s in streams] == expected
    assert all(s.url == BASE + s.uri for s in streams)


def _hlsjs_main(text: str) -> dict[str, int]:
    return {
        s.url: s.position for s in parse_master_playlist(text, MANIFEST).streams if s.type == "main"
    }


def _shaka_main(text: str) -> dict[str, int]:
    return {s.url: s.index for s in shaka_streams(text, MANIFEST) if s.type == "main"}


def test_ordinary_ladders_get_the_hlsjs_indexes() -> None:
    for name in ("ladder", "no-codecs"):
        text = CASES[name][0]
        assert _shaka_main(text) == _hlsjs_main(text), name


def test_where_shaka_and_hlsjs_differ() -> None:
    repeated = CASES["repeated-uri"][0]
    assert _hlsjs_main(repeated)[BASE + "hi/index.m3u8"] == 2
    assert _shaka_main(repeated)[BASE + "hi/index.m3u8"] == 1
    audio_only = CASES["audio-only-variant"][0]
    assert _hlsjs_main(audio_only)[BASE + "audio/index.m3u8"] == 2
    assert _shaka_main(audio_only)[BASE + "audio/index.m3u8"] == 0  # the swarm of lo/


def test_identities_are_the_22_swarms_of_the_same_streams() -> None:
    text = CASES["ladder"][0]
    shaka = {
        i.stream.url: (i.stream_swarm_id, i.info_hash)
        for i in shaka_stream_identities(text, MANIFEST)
    }
    hlsjs = {
        i.playlist_url: (i.stream_swarm_id, i.info_hash)
        for i in stream_identities(text, MANIFEST + "?token=1", ProtocolVersion.V2_2)
    }
    assert shaka == hlsjs
    assert shaka[BASE + "hi/index.m3u8"][0] == f"v2-{MANIFEST}-main-0"
    custom = shaka_stream_identities(text, MANIFEST, swarm_id="my-swarm")
    assert [i.stream_swarm_id for i in custom] == ["v2-my-swarm-main-0", "v2-my-swarm-main-1"]


def test_muxed_rendition_is_a_new_stream_per_variant_tag() -> None:
    # A rendition without URI (audio inside the video) is created again for every variant tag
    # naming its group; the second variant tag pairs its video with both copies.
    text = master(
        (f'BANDWIDTH=300000,RESOLUTION=256x144,{AV},AUDIO="aac"', "lo/index.m3u8"),
        (f'BANDWIDTH=900000,RESOLUTION=426x240,{AV},AUDIO="aac"', "hi/index.m3u8"),
        media=(rendition("main", None),),
    )
    streams = shaka_streams(text, MANIFEST)
    assert [(s.type, s.index, s.content, s.uri) for s in streams] == [
        ("main", 0, "video", "lo/index.m3u8"),
        ("secondary", 0, "audio", ""),
        ("main", 1, "video", "hi/index.m3u8"),
        ("secondary", 1, "audio", ""),
    ]


def test_media_playlist_manifest_is_one_main_stream() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns0.ts\n#EXT-X-ENDLIST\n"
    [stream] = shaka_streams(text, MANIFEST)
    assert (stream.type, stream.index, stream.url) == ("main", 0, MANIFEST)
