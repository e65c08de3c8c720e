"""PeerTube's API objects, versions and swarms (sans-I/O)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from p2pml_py.apps.peertube.model import (
    PeerTubeError,
    Privacy,
    TargetKind,
    UnsupportedInstanceError,
    hex_info_hash,
    known_info_hashes,
    parse_config,
    parse_target,
    parse_video,
    parse_video_list,
    protocol_for_server,
    skip_reason,
)
from p2pml_py.identity import ProtocolVersion

PLAYLIST = "https://tube.example/static/streaming-playlists/hls/9c9de5e8/3ee5-master.m3u8"


def video_json(**changes: Any) -> dict[str, Any]:
    """A ``VideoDetails`` shaped like PeerTube 7's (only the fields we read, plus noise)."""
    obj: dict[str, Any] = {
        "id": 7,
        "uuid": "9c9de5e8-0a1b-4c2d-8e3f-123456789abc",
        "shortUUID": "kkGMgK9ZtnKfYAgnEtQxbv",
        "name": "A video",
        "isLive": False,
        "isLocal": True,
        "privacy": {"id": 1, "label": "Public"},
        "state": {"id": 1, "label": "Published"},
        "account": {"name": "alice", "host": "tube.example"},
        "files": [],
        "trackerUrls": [
            "https://tube.example/tracker/announce",
            "wss://tube.example/tracker/socket",
        ],
        "streamingPlaylists": [
            {
                "id": 3,
                "type": 1,
                "playlistUrl": PLAYLIST,
                "segmentsSha256Url": PLAYLIST.replace("master.m3u8", "segments-sha256.json"),
                "redundancies": [],
                "files": [
                    {"resolution": {"id": 240, "label": "240p"}, "playlistUrl": None, "fps": 25},
                    {"resolution": {"id": 480, "label": "480p"}, "fps": 25},
                ],
            }
        ],
    }
    obj.update(changes)
    return obj


def peertube_hash(text: str) -> str:
    """``generateP2PMediaLoaderHash`` (``packages/node-utils/src/p2p.ts``), written out here."""
    digest = hashlib.md5(text.encode()).digest()[1:]
    return base64.b64encode(digest).hex()


@pytest.mark.parametrize(
    ("url", "kind", "ident"),
    [
        (
            "https://tube.example/w/kkGMgK9ZtnKfYAgnEtQxbv",
            TargetKind.VIDEO,
            "kkGMgK9ZtnKfYAgnEtQxbv",
        ),
        ("https://tube.example/videos/watch/9c9de5e8-0a1b", TargetKind.VIDEO, "9c9de5e8-0a1b"),
        ("https://tube.example/videos/embed/12?start=3", TargetKind.VIDEO, "12"),
        ("https://tube.example/api/v1/videos/12", TargetKind.VIDEO, "12"),
        ("https://tube.example/c/music_channel/videos", TargetKind.CHANNEL, "music_channel"),
        (
            "https://tube.example/video-channels/news@other.example",
            TargetKind.CHANNEL,
            "news@other.example",
        ),
        ("https://tube.example/a/alice", TargetKind.ACCOUNT, "alice"),
        ("https://TUBE.example:8443/", TargetKind.INSTANCE, ""),
    ],
)
def test_targets_are_classified(url: str, kind: TargetKind, ident: str) -> None:
    target = parse_target(url)
    assert (target.kind, target.ident) == (kind, ident)
    assert target.base_url.startswith("https://tube.example")


def test_target_api_paths() -> None:
    assert parse_target("https://t.example/w/abc").api_path == "/api/v1/videos/abc"
    assert parse_target("https://t.example/c/x@y.example").api_path == (
        "/api/v1/video-channels/x@y.example/videos"
    )
    assert parse_target("https://t.example/a/bob").api_path == "/api/v1/accounts/bob/videos"
    assert parse_target("https://t.example").api_path == "/api/v1/videos"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://tube.example/w/abc", "http(s)"),
        ("https://tube.example/w/p/abc", "playlist"),
        ("https://tube.example/about/instance", "not a PeerTube"),
        ("https://tube.example/w/a%2Fb", "not a valid video id"),
    ],
)
def test_bad_targets_say_why(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_target(url)


@pytest.mark.parametrize("version", ["7.1.0", "7.3.0", "8.0.1", "8.1.0-rc.1", "v7.2"])
def test_released_v2_players_speak_2_2(version: str) -> None:
    assert protocol_for_server(version) is ProtocolVersion.V2_2


@pytest.mark.parametrize(
    ("version", "words"),
    [("6.3.3", "0.6"), ("7.0.1", "0.6"), ("9.0.0", "newer"), ("10.1", "newer")],
)
def test_other_versions_are_refused(version: str, words: str) -> None:
    with pytest.raises(UnsupportedInstanceError, match=words):
        protocol_for_server(version)


def test_config_needs_a_version() -> None:
    assert parse_config({"serverVersion": "7.2.1", "instance": {}}) == "7.2.1"
    for bad in ([], {}, {"serverVersion": 7}, {"serverVersion": "seven"}):
        with pytest.raises(PeerTubeError, match=r"serverVersion|not a JSON object"):
            parse_config(bad)


def test_video_fields_are_read() -> None:
    video = parse_video(video_json())
    assert video.playlist_url == PLAYLIST
    assert video.segments_sha256_url is not None
    assert [f.resolution for f in video.files] == [240, 480]
    assert video.ws_trackers == ("wss://tube.example/tracker/socket",)
    assert video.http_trackers == ("https://tube.example/tracker/announce",)
    assert video.privacy == Privacy.PUBLIC and video.state == 1 and video.host == "tube.example"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"uuid": 5}, "uuid"),
        ({"name": None}, "name"),
        ({"privacy": {"label": "Public"}}, "privacy.id"),
        ({"trackerUrls": "wss://x"}, "trackerUrls"),
        ({"streamingPlaylists": {}}, "streamingPlaylists"),
    ],
)
def test_bad_video_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PeerTubeError, match=field):
        parse_video(video_json(**change))


def test_bad_playlist_fields_are_named() -> None:
    obj = video_json()
    obj["streamingPlaylists"][0]["playlistUrl"] = "javascript:alert(1)"
    with pytest.raises(PeerTubeError, match=r"streamingPlaylists\[0\]: playlistUrl"):
        parse_video(obj)
    obj = video_json()
    obj["streamingPlaylists"][0]["files"][1]["resolution"] = {"id": "480"}
    with pytest.raises(PeerTubeError, match=r"files\[1\]: resolution.id"):
        parse_video(obj)


def test_web_video_only_playlists_are_ignored() -> None:
    obj = video_json()
    obj["streamingPlaylists"][0]["type"] = 2
    assert parse_video(obj).playlist_url is None


def test_listing_pages() -> None:
    total, refs = parse_video_list(
        {"total": 3, "data": [{"uuid": "a", "name": "A"}, {"uuid": "b", "isLocal": False}]}
    )
    assert total == 3 and [(r.uuid, r.is_local) for r in refs] == [("a", True), ("b", False)]
    with pytest.raises(PeerTubeError, match=r"data\[0\]"):
        parse_video_list({"total": 1, "data": [7]})


def test_known_hashes_are_peertubes_recipe() -> None:
    """The set PeerTube's server stores: v2-<playlistUrl>-main-<i> per HLS file, in the hex form
    its tracker filter compares (PeerTube's test ``checkPlaylistInfohash``)."""
    video = parse_video(video_json())
    hashes = known_info_hashes(video)
    assert {hex_info_hash(h) for h in hashes} == {
        peertube_hash(f"v2-{PLAYLIST}-main-0"),
        peertube_hash(f"v2-{PLAYLIST}-main-1"),
    }
    assert all(len(h) == 20 for h in hashes)


def test_audio_only_file_adds_the_secondary_swarm() -> None:
    obj = video_json()
    obj["streamingPlaylists"][0]["files"].append({"resolution": {"id": 0, "label": "Audio only"}})
    hexes = {hex_info_hash(h) for h in known_info_hashes(parse_video(obj))}
    assert peertube_hash(f"v2-{PLAYLIST}-secondary-0") in hexes
    assert len(hexes) == 4


@pytest.mark.parametrize(
    ("change", "named", "credentials", "words"),
    [
        ({}, False, False, None),
        ({"isLocal": False}, True, False, "hosted on tube.example"),
        ({"streamingPlaylists": []}, True, False, "no HLS"),
        ({"trackerUrls": ["https://tube.example/tracker/announce"]}, True, False, "WebSocket"),
        ({"state": {"id": 2}}, True, False, "not published"),
        ({"privacy": {"id": 2}}, False, False, "unlisted"),
        ({"privacy": {"id": 2}}, True, False, None),
        ({"privacy": {"id": 3}}, True, False, "private: give --token"),
        ({"privacy": {"id": 5}}, True, False, "password protected"),
        ({"privacy": {"id": 3}}, True, True, None),
        ({"privacy": {"id": 9}}, True, True, "unknown privacy"),
    ],
)
def test_skip_reasons(
    change: dict[str, Any], named: bool, credentials: bool, words: str | None
) -> None:
    reason = skip_reason(parse_video(video_json(**change)), named=named, credentials=credentials)
    if words is None:
        assert reason is None
    else:
        assert reason is not None and words in reason


def test_missing_sha_file_is_a_skip() -> None:
    obj = video_json()
    obj["streamingPlaylists"][0]["segmentsSha256Url"] = None
    reason = skip_reason(parse_video(obj), named=True, credentials=False)
    assert reason is not None and "segments-sha256" in reason


def test_the_fixture_is_json() -> None:
    # The fixture doubles as documentation of the shape: it must survive a JSON round trip.
    assert parse_video(json.loads(json.dumps(video_json()))) == parse_video(video_json())
