"""hls.js 1.6 + p2p-media-loader-hlsjs SegmentManager, end to end (tests/vectors/hlsjs_streams.json).

The vector fed a master playlist and two level playlists through the real hls.js parser and the
real PML SegmentManager of 2.2.2 and 2.3.1; every stream id, info hash and segment id must match.
"""

from __future__ import annotations

from typing import Any

import pytest

from p2pml_py.hls.playlist import (
    parse_master_playlist,
    parse_media_playlist,
    stream_identities,
)
from p2pml_py.identity import ProtocolVersion

VECTOR = "hlsjs_streams.json"


@pytest.fixture(scope="module")
def data(vectors: Any) -> Any:
    return vectors.load(VECTOR)


def test_streams_match_hlsjs_and_pml(vectors: Any, data: Any) -> None:
    streams_by_version = data["streams"]
    assert set(streams_by_version) == {"2.2.2", "2.3.1"}
    for npm_version, expected in streams_by_version.items():
        assert expected, f"no streams for {npm_version}"
        version = ProtocolVersion.parse(npm_version)
        got = stream_identities(data["master_playlist"], data["manifest_url"], version)
        assert len(got) == len(expected)
        for ours, exp in zip(got, expected, strict=True):
            assert ours.version is version
            assert ours.playlist_url == exp["runtimeId"]
            assert ours.type == exp["type"]
            assert ours.index == exp["index"]
            assert ours.stream_swarm_id == exp["stream_swarm_id"]
            assert ours.info_hash == exp["info_hash"]
            vectors.checked(VECTOR)


def test_both_versions_in_one_call(vectors: Any, data: Any) -> None:
    got = stream_identities(
        data["master_playlist"],
        data["manifest_url"],
        [ProtocolVersion.V2_2, ProtocolVersion.V2_3],
    )
    expected = data["streams"]["2.2.2"] + data["streams"]["2.3.1"]
    assert [(g.stream_swarm_id, g.info_hash) for g in got] == [
        (e["stream_swarm_id"], e["info_hash"]) for e in expected
    ]
    vectors.checked(VECTOR)


def test_levels_and_tracks_match_manifest_loaded_view(vectors: Any, data: Any) -> None:
    view = data["hls_js_manifest_loaded_view"]
    master = parse_master_playlist(data["master_playlist"], data["manifest_url"])
    assert len(master.main_streams) == len(view["levels"])
    for stream, level in zip(master.main_streams, view["levels"], strict=True):
        assert stream.url == level["url"]
        assert stream.bitrate == level["bitrate"]
        assert stream.width == level["width"]
        assert stream.height == level["height"]
        assert stream.audio_codec == level["audioCodec"]
        assert stream.frame_rate == level.get("attrs.FRAME-RATE")
        assert stream.video_range == level.get("attrs.VIDEO-RANGE")
        # the vector ran hls.js's parser only; its level controller later rewrites legacy avc1
        # ("avc1.66.30" -> "avc1.42001e"), which we model
        assert stream.video_codec in (level["videoCodec"], "avc1.42001e")
        vectors.checked(VECTOR)
    assert len(master.secondary_streams) == len(view["audioTracks"])
    for stream, track in zip(master.secondary_streams, view["audioTracks"], strict=True):
        assert stream.url == track["url"]
        assert stream.audio_codec == track["audioCodec"]
        assert stream.language == track["lang"]
        assert stream.channels == track["channels"]
        assert stream.name == track["name"]
        assert stream.group_id == track["groupId"]
        vectors.checked(VECTOR)


@pytest.mark.parametrize("kind", ["vod", "live"])
def test_segment_ids(vectors: Any, data: Any, kind: str) -> None:
    playlist = parse_media_playlist(data[f"{kind}_playlist"], data["level_playlist_url"])
    by_version = data["segments"][kind]
    assert set(by_version) == {"2.2.2", "2.3.1"}
    for npm_version, expected in by_version.items():
        assert expected["segments"], f"no {kind} segments for {npm_version}"
        assert playlist.is_live is expected["live"]
        assert len(playlist.segments) == len(expected["segments"])
        for ours, exp in zip(playlist.segments, expected["segments"], strict=True):
            assert ours.runtime_id == exp["runtimeId"]
            assert ours.url == exp["url"]
            assert ours.external_id == exp["externalId"]
            br = exp["byteRange"]
            assert ours.byte_range == (None if br is None else (br["start"], br["end"]))
            assert ours.start_time == pytest.approx(exp["startTime"])
            assert ours.end_time == pytest.approx(exp["endTime"])
            vectors.checked(VECTOR)
