"""One report alone: schema, types, bounds; every hostile body is refused with its reason."""

from __future__ import annotations

import json

import pytest

from p2pml_py.apps.collector.report import (
    MAX_BODY,
    MAX_BYTES,
    MAX_PEERS,
    MAX_STREAM_ID,
    Reason,
    Rejected,
    parse_report,
)
from tests.collector.helpers import STREAM, body, report


def reason_of(data: bytes) -> Reason:
    with pytest.raises(Rejected) as info:
        parse_report(data)
    return info.value.reason


def test_a_good_report_parses() -> None:
    parsed = parse_report(body())
    assert parsed.stream == STREAM and parsed.viewer == "a" * 32
    assert (parsed.http, parsed.p2p, parsed.up, parsed.downloaded) == (
        1_000_000,
        3_000_000,
        500_000,
        4_000_000,
    )
    assert parsed.startup == 800 and parsed.peers == 2
    assert parse_report(body(startup=None)).startup is None
    # The largest values a page can send are taken.
    top = parse_report(body(http=MAX_BYTES, peers=MAX_PEERS, stream="s" * MAX_STREAM_ID))
    assert top.http == MAX_BYTES


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x" * (MAX_BODY + 1), Reason.TOO_LARGE),
        (b"{not json", Reason.MALFORMED),
        (b"\xff\xfe{}", Reason.MALFORMED),  # not UTF-8
        (b"[1, 2]", Reason.MALFORMED),
        (b'"a string"', Reason.MALFORMED),
        (b"[" * 2000 + b"]" * 2000, Reason.MALFORMED),  # deep nesting: RecursionError inside
        (body().replace(b'"http": 1000000', b'"http": NaN'), Reason.MALFORMED),
        (body().replace(b'"http": 1000000', b'"http": Infinity'), Reason.MALFORMED),
        (body().replace(b'"http": 1000000', b'"http": -Infinity'), Reason.MALFORMED),
        (body()[:-1] + b', "http": 5}', Reason.MALFORMED),  # duplicate key
        (json.dumps({k: v for k, v in report().items() if k != "p2p"}).encode(), Reason.SCHEMA),
        (body(extra=1), Reason.SCHEMA),
        (body(v=2), Reason.SCHEMA),
        (body(v=True), Reason.SCHEMA),
        (body(v=1.0), Reason.SCHEMA),
        (body(http="1000"), Reason.TYPE),
        (body(http=1.5), Reason.TYPE),
        (body(http=True), Reason.TYPE),
        (body(peers=None), Reason.TYPE),
        (body(stream=7), Reason.TYPE),
        (body(startup="fast"), Reason.TYPE),
        (body(http=-1), Reason.RANGE),
        (body(up=-5), Reason.RANGE),
        (body(p2p=MAX_BYTES + 1), Reason.RANGE),
        (body(p2p=10**400), Reason.RANGE),
        (body(seq=0), Reason.RANGE),
        (body(peers=MAX_PEERS + 1), Reason.RANGE),
        (body(startup=6000, t=5000), Reason.RANGE),  # started after the report was made
        (body(viewer="short"), Reason.RANGE),
        (body(viewer="a" * 31 + "/"), Reason.RANGE),
        (body(viewer="a" * 65), Reason.RANGE),
        (body(stream=""), Reason.RANGE),
        (body(stream="s" * (MAX_STREAM_ID + 1)), Reason.RANGE),
        (body(stream="news\n"), Reason.RANGE),
    ],
)
def test_hostile_bodies_are_refused_with_their_reason(data: bytes, reason: Reason) -> None:
    assert reason_of(data) is reason


def test_the_refusal_names_the_field() -> None:
    with pytest.raises(Rejected) as info:
        parse_report(body(up=-5))
    assert info.value.field == "up"
    assert info.value.to_json() == {"reason": "range", "field": "up", "message": str(info.value)}
    assert "up" in info.value.message
