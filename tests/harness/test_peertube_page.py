"""The PeerTube page's files and query (no browser)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.harness import paths
from p2pml_py.harness.pages import peertube_page_name
from p2pml_py.harness.peertube import (
    PeerTubePageConfig,
    PeerTubeValidation,
    peertube_tracker_script,
)


def test_page_module_and_tracker_script_are_shipped() -> None:
    page = (paths.pages_dir() / peertube_page_name("2.2")).read_text()
    assert '<script src="stats.js">' in page and 'from "./peertube.mjs"' in page
    assert "/node_modules/pml-core-2.2/" in page and "/node_modules/pml-hlsjs-2.2/" in page
    module = (paths.pages_dir() / "peertube.mjs").read_text()
    # PeerTube's VOD settings and validator are what the page promises.
    for text in (
        "highDemandTimeWindow: 15",
        "segmentMemoryStorageLimit: 1024",
        "capLevelToPlayerSize: true",
        "liveSyncDurationCount: 5",
        'startsWith("ws")',
        "validateP2PSegment",
        "MAX_RETRIES = 10",
    ):
        assert text in module, text
    assert peertube_tracker_script().is_file()
    with pytest.raises(LocalProtocolError, match="no PeerTube page"):
        peertube_page_name("2.3")


def test_config_query_carries_the_api_url_and_overrides() -> None:
    config = PeerTubePageConfig.for_video(
        "http://127.0.0.1:1/api/v1/videos/u",
        level=None,
        password="p w",
        validate_http=False,
        p2p=False,
        core={"highDemandTimeWindow": 4},
        hls={"maxBufferLength": 10},
    )
    assert parse_qsl(config.query()) == [
        ("video", "http://127.0.0.1:1/api/v1/videos/u"),
        ("password", "p w"),
        ("validateHttp", "0"),
        ("p2p", "0"),
        ("core.highDemandTimeWindow", "4"),
        ("hls.maxBufferLength", "10"),
    ]
    assert config.label == "2.2.2"
    default = PeerTubePageConfig.for_video("http://127.0.0.1:1/api/v1/videos/u")
    assert parse_qsl(default.query()) == [
        ("video", "http://127.0.0.1:1/api/v1/videos/u"),
        ("level", "0"),
    ]


def test_validation_stats_from_the_page() -> None:
    raw = {
        "swarmId": "s",
        "announceTrackers": ["ws://t"],
        "validatedP2P": 3,
        "failedHttp": 1,
        "failures": [{"source": "http", "file": "f.mp4", "range": "0-9", "reason": "bad"}],
    }
    stats = PeerTubeValidation.from_js(raw)
    assert stats.validated_p2p == 3 and stats.failed_http == 1 and stats.failed_p2p == 0
    assert stats.announce_trackers == ("ws://t",)
    assert stats.failures == ("http f.mp4 0-9: bad",)
