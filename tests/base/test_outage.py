from __future__ import annotations

from p2pml_py.base.outage import Outage


def test_one_line_down_summaries_while_down_one_line_back() -> None:
    outage = Outage("origin playlist http://o/x.m3u8", summary_every=60)
    assert outage.succeeded(0.0) is None and not outage.down
    assert outage.failed(10.0, "HTTP 503") == "origin playlist http://o/x.m3u8 is down: HTTP 503"
    lines = [outage.failed(t, "timeout") for t in (11.0, 30.0, 69.9, 70.0, 100.0, 130.5)]
    assert lines[:3] == [None, None, None] and lines[4] is None
    assert lines[3] == (
        "origin playlist http://o/x.m3u8 still down after 60 s (5 failures; last: timeout)"
    )
    assert lines[5] is not None and "after 120 s (7 failures" in lines[5]
    assert outage.down and outage.current_length(140.0) == 130.0
    back = outage.succeeded(145.25)
    assert back == "origin playlist http://o/x.m3u8 is back after 135.2 s (7 failures)"
    assert (outage.outages, outage.down_seconds, outage.failures) == (1, 135.25, 0)
    assert outage.succeeded(146.0) is None
    assert outage.failed(200.0, "reset") is not None  # a new outage starts a new first line
