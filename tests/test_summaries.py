"""The typed summaries keep the ``--json`` shape scripts read: the same keys, in the same order."""

from __future__ import annotations

import json

from p2pml_py.engine.streams import PeerSummary
from p2pml_py.roles.summary import DemoSummary, SeederSummary, ViewerSummary

PEERS = {
    "a" * 20: PeerSummary(10, 0, "2.3", True),
    "b" * 20: PeerSummary(5, 7, "2.2", False, "protocol violation: not-reading"),
}


def _seeder() -> SeederSummary:
    return SeederSummary(
        manifest_url="http://127.0.0.1/m.m3u8",
        duration=1.5,
        http_bytes=100,
        uploaded_bytes=15,
        origin_errors=0,
        peers=PEERS,
        drops={"protocol violation: not-reading": 1},
        streams=[],
        segments={"http://127.0.0.1/v.m3u8": {"1": "00"}},
    )


def _viewer(http: int, p2p: int, stalls: int = 0) -> ViewerSummary:
    return ViewerSummary(
        manifest_url="http://127.0.0.1/m.m3u8",
        duration=2.0,
        http_bytes=http,
        p2p_bytes=p2p,
        uploaded_bytes=0,
        stalls=stalls,
        stall_time=0.0,
        startup_time=None,
        skips=0,
        position=12.0,
        ended=True,
        http_segments={"urgent": 1},
        p2p_segments=2,
        p2p_failures={},
        origin_errors=0,
        peers={},
        drops={},
        streams=[],
        segments={},
    )


def test_seeder_json_keys_in_order_and_peers_as_before() -> None:
    data = _seeder().to_json()
    assert list(data) == [
        "role", "manifest_url", "duration", "http_bytes", "p2p_bytes", "uploaded_bytes",
        "origin_errors", "peers_seen", "peers", "drops", "streams", "segments",
    ]  # fmt: skip
    assert data["role"] == "seeder" and data["p2p_bytes"] == 0 and data["peers_seen"] == 2
    assert data["peers"]["a" * 20] == {
        "uploaded": 10, "downloaded": 0, "version": "2.3", "connected": True
    }  # fmt: skip
    assert data["peers"]["b" * 20]["close_reason"] == "protocol violation: not-reading"
    json.dumps(data)


def test_viewer_json_keys_in_order_and_share_rounded() -> None:
    data = _viewer(http=2, p2p=1).to_json()
    assert list(data) == [
        "role", "manifest_url", "duration", "http_bytes", "p2p_bytes", "p2p_share",
        "uploaded_bytes", "stalls", "stall_time", "startup_time", "skips", "position", "ended",
        "http_segments", "p2p_segments", "p2p_failures", "origin_errors", "peers_seen", "peers",
        "drops", "streams", "segments",
    ]  # fmt: skip
    assert data["p2p_share"] == 0.3333 and data["role"] == "viewer"


def test_demo_totals_come_from_the_viewers() -> None:
    demo = DemoSummary(
        stream="VOD",
        duration=3.0,
        seeder=_seeder(),
        viewers=[_viewer(100, 300, stalls=1), _viewer(0, 0, stalls=2)],
        origin_segment_bytes=200,
        origin_copies=2.0,
    )
    assert demo.p2p_share == 0.75 and demo.stalls == 3
    data = demo.to_json()
    assert data["origin"] == {"segment_bytes": 200, "copies": 2.0}
    assert data["viewers"][0]["p2p_share"] == 0.75 and data["seeder"]["role"] == "seeder"
    json.dumps(data)
