"""``[[peertube]]`` tables: checked at load (names the field and its line), turned into streams
whose only announceable swarms are the instance's."""

from __future__ import annotations

import pytest

from p2pml_py.apps.peertube.model import Video
from p2pml_py.apps.peertube.plan import PlannedVideo
from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.apps.superpeer.peertube import peertube_stream
from p2pml_py.base.errors import ConfigError
from p2pml_py.identity import ProtocolVersion

CONFIG = """\
[defaults]
max_peers = 300
trackers = ["wss://ignored.example.org"]

[[peertube]]
urls = ["https://tube.example/c/news", "https://tube.example/w/kkGMgK9ZtnKfYAgnEtQxbv"]
limit = 5
store_mb = 64
"""


def test_a_config_of_peertube_tables_alone_is_valid() -> None:
    config = parse_config(CONFIG)
    assert config.streams == ()
    (source,) = config.peertube
    assert source.urls[0] == "https://tube.example/c/news" and source.limit == 5 and source.probe
    # Stream settings of the table and of [defaults]; [defaults] trackers do not apply.
    assert source.template.store_mb == 64 and source.template.max_peers == 300
    assert source.line == 5


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("limit = 5", "limit = 0"), ":7: peertube[1].limit: must be"),
        (("limit = 5", "limit = 5000"), "peertube[1].limit: must be at most 1000"),
        (("limit = 5", 'probe = "yes"'), "peertube[1].probe: must be true or false"),
        (("store_mb = 64", "trackers = []"), ":8: peertube[1].trackers: unknown key"),
        (("store_mb = 64", 'fetch = "sometimes"'), "peertube[1].fetch: must be"),
        (('"https://tube.example/c/news", ', '"https://tube.example/w/p/x", '), "playlist"),
        (("urls = [", "url = ["), "peertube[1].url: unknown key"),
    ],
)
def test_bad_tables_name_the_field(edit: tuple[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace(*edit))
    assert words in str(caught.value)


def test_no_stream_and_no_peertube_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"\[\[stream\]\] \(or \[\[peertube\]\]\)"):
        parse_config("[defaults]\nmax_peers = 3\n")


def test_a_planned_video_becomes_a_stream_limited_to_its_swarms() -> None:
    template = parse_config(CONFIG).peertube[0].template
    video = Video(
        uuid="9c9de5e8",
        short_uuid="kk",
        name="A",
        privacy=1,
        state=1,
        is_live=False,
        is_local=True,
        host="tube.example",
        playlist_url="https://tube.example/hls/9c9de5e8/master.m3u8",
        segments_sha256_url="https://tube.example/hls/9c9de5e8/sha.json",
        files=(),
        tracker_urls=("https://tube.example/tracker/announce", "wss://tube.example/tracker/socket"),
    )
    planned = PlannedVideo(
        video, "https://tube.example", ProtocolVersion.V2_2, frozenset({"b" * 20, "a" * 20}), True
    )
    stream = peertube_stream(planned, template)
    assert stream.name == "peertube:tube.example:9c9de5e8"
    assert stream.url == stream.swarm_id == video.playlist_url
    assert stream.trackers == ("wss://tube.example/tracker/socket",)
    assert stream.protocol == ("2.2",) and stream.integrity == video.segments_sha256_url
    assert stream.info_hashes == ("a" * 20, "b" * 20) and stream.store_mb == 64
    # Workers get streams as JSON: the allowed set survives the trip.
    assert StreamConfig.from_json(stream.to_json()).info_hashes == stream.info_hashes
