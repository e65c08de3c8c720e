"""Worker reports are typed on both ends of the pipe: a round trip keeps every value, a broken
report is rejected, and the counters the metrics use come from the typed snapshot."""

from __future__ import annotations

import json

import pytest

from p2pml_py.apps.superpeer.snapshot import (
    RenditionSnapshot,
    StreamSnapshot,
    SwarmSnapshot,
    TrackerSnapshot,
)
from p2pml_py.apps.superpeer.supervisor import stream_counters

SNAPSHOT = StreamSnapshot(
    name="live",
    url="http://127.0.0.1/master.m3u8",
    state="serving",
    since=12.5,
    attempts=1,
    rate_limit=None,
    refused=3,
    origin_bytes=1000,
    origin_errors={"timeout": 2},
    renditions=(
        RenditionSnapshot(
            label="720p",
            type="main",
            held_segments=4,
            held_bytes=400,
            swarms=(
                SwarmSnapshot("2.3", "h" * 40, "p" * 20, 2, 500, 3, 1, 0, {"connection closed": 1}),
                SwarmSnapshot("2.2", "g" * 40, "q" * 20, 1, 50, 1, 0, 4, {}),
            ),
        ),
    ),
    trackers={"ws://127.0.0.1:1": TrackerSnapshot(True, {"disconnects": 1})},
)


def test_round_trip_through_json_keeps_everything() -> None:
    wire = json.loads(json.dumps(SNAPSHOT.to_json()))
    assert StreamSnapshot.from_json(wire) == SNAPSHOT
    assert SNAPSHOT.peers == 3


def test_counters_from_a_typed_snapshot() -> None:
    counters = stream_counters(SNAPSHOT)
    assert counters[("uploaded_bytes", ("720p", "2.3"))] == 500
    assert counters[("offers_refused", ("720p", "2.2"))] == 4
    assert counters[("peer_drops", ("720p", "2.3", "connection closed"))] == 1
    assert counters[("tracker_errors", ("ws://127.0.0.1:1", "disconnects"))] == 1
    assert counters[("uploads_refused", ())] == 3
    assert stream_counters(None) == {}


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("state"),
        lambda d: d["renditions"][0]["swarms"][0].update(peers="many"),
        lambda d: d["trackers"].update({"ws://x": {"connected": True}}),
        lambda d: d.update(renditions=[{"label": "x"}]),
    ],
)
def test_a_broken_report_is_rejected(damage: object) -> None:
    data = json.loads(json.dumps(SNAPSHOT.to_json()))
    damage(data)  # type: ignore[operator]
    with pytest.raises((KeyError, TypeError, ValueError)):
        StreamSnapshot.from_json(data)
