"""Per-stream aggregates and the bounded live-viewer table, with time passed in."""

from __future__ import annotations

from typing import Any

import pytest

from p2pml_py.apps.collector.aggregate import (
    BURST_SECONDS,
    CLOCK_SLACK,
    FIRST_REPORT_MS,
    HISTORY,
    SAMPLE_INTERVAL,
    ViewerStats,
)
from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.collector.report import Reason, Rejected, Report
from p2pml_py.testing.clock import FakeClock

A, B = "a" * 32, "b" * 32
RATE = CollectorConfig().max_viewer_rate


def rep(viewer: str = A, **fields: Any) -> Report:
    base: dict[str, Any] = {
        "viewer": viewer,
        "stream": "s",
        "seq": 1,
        "t": 5000,
        "http": 1000,
        "p2p": 3000,
        "up": 500,
        "peers": 2,
        "stalls": 0,
        "startup": 800,
    }
    base.update(fields)
    return Report(**base)


def rejected(stats: ViewerStats, report: Report, now: float, key: str = "s") -> Reason:
    before = [s.to_json() for s in stats.streams()], stats.viewer_count
    with pytest.raises(Rejected) as info:
        stats.add(report, key, now)
    # A refused report changes nothing.
    assert ([s.to_json() for s in stats.streams()], stats.viewer_count) == before
    return info.value.reason


def test_two_viewers_add_up_by_differences() -> None:
    clock = FakeClock(100.0)
    stats = ViewerStats(CollectorConfig())
    stats.add(rep(A), "s", clock())
    stats.add(rep(B, http=2000, p2p=0, up=0, peers=1, startup=None), "s", clock())
    clock.advance(5)
    # A's second report: cumulative counters; only the difference is added.
    stats.add(rep(A, seq=2, t=10_000, http=1500, p2p=7000, up=900, stalls=1), "s", clock())
    s = stats.stream("s")
    assert s is not None
    assert (s.viewers, s.started, s.reports, s.peers) == (2, 2, 3, 3)
    assert (s.http, s.p2p, s.up, s.stalls) == (3500, 7000, 900, 1)
    assert s.p2p_share == pytest.approx(7000 / 10_500)
    assert (s.startup_count, s.startup_sum) == (1, 0.8)
    # B starts playing later: its start-up time is counted once, when it first appears.
    clock.advance(5)
    stats.add(rep(B, seq=2, t=10_000, http=2000, p2p=0, up=0, peers=1, startup=4000), "s", clock())
    stats.add(rep(B, seq=3, t=12_000, http=2000, p2p=0, up=0, peers=1, startup=4000), "s", clock())
    assert s.startup_count == 2 and s.startup_sum == pytest.approx(4.8)
    assert s.to_json()["startup"]["buckets"]["1.0"] == 1
    assert s.to_json()["startup"]["buckets"]["5.0"] == 2
    assert s.to_json()["startup"]["buckets"]["+Inf"] == 2
    assert stats.totals()["viewers"] == 2


def test_stale_backwards_and_changed_reports_are_refused() -> None:
    clock = FakeClock()
    stats = ViewerStats(CollectorConfig())
    stats.add(rep(seq=3, t=20_000, http=10, p2p=10), "s", clock())  # re-learnt: baseline only
    clock.advance(10)
    assert rejected(stats, rep(seq=3, t=25_000), clock()) is Reason.STALE
    assert rejected(stats, rep(seq=2, t=25_000), clock()) is Reason.STALE
    assert rejected(stats, rep(seq=4, t=19_000), clock()) is Reason.NON_MONOTONIC
    assert rejected(stats, rep(seq=4, t=25_000, http=9, p2p=10), clock()) is Reason.NON_MONOTONIC
    assert rejected(stats, rep(seq=4, t=25_000, http=10, p2p=10, up=499), clock()) is (
        Reason.NON_MONOTONIC
    )
    assert rejected(stats, rep(seq=4, t=25_000, http=10, p2p=10, startup=900), clock()) is (
        Reason.NON_MONOTONIC
    )
    stats.add(rep(seq=4, t=25_000, http=10, p2p=10), "s", clock())


def test_more_bytes_than_a_link_delivers_are_refused() -> None:
    clock = FakeClock()
    stats = ViewerStats(CollectorConfig(max_viewer_mbit=100))
    rate = 100e6 / 8
    # A first report: at most rate x its own elapsed time (plus the burst), t bounded.
    most = int(rate * (5 + BURST_SECONDS))
    assert rejected(stats, rep(t=5000, http=most, p2p=1), clock()) is Reason.IMPLAUSIBLE
    assert rejected(stats, rep(t=5000, up=most + 1), clock()) is Reason.IMPLAUSIBLE
    assert rejected(stats, rep(t=FIRST_REPORT_MS + 1, http=0, p2p=0), clock()) is (
        Reason.IMPLAUSIBLE
    )
    assert rejected(stats, rep(t=1000, stalls=50), clock()) is Reason.IMPLAUSIBLE
    stats.add(rep(t=5000, http=most, p2p=0), "s", clock())
    # Later: the report's elapsed time may not run ahead of the server's clock ...
    clock.advance(5)
    ahead = 5000 + int((5 + CLOCK_SLACK + 1) * 1000)
    assert rejected(stats, rep(seq=2, t=ahead, http=most, p2p=0), clock()) is Reason.IMPLAUSIBLE
    # ... and the bytes follow from that elapsed time.
    assert rejected(stats, rep(seq=2, t=10_000, http=most * 2 + 1, p2p=0), clock()) is (
        Reason.IMPLAUSIBLE
    )
    stats.add(rep(seq=2, t=10_000, http=most * 2, p2p=0), "s", clock())
    s = stats.stream("s")
    assert s is not None and s.http == most * 2


def test_silent_viewers_expire_and_a_full_table_drops_the_oldest() -> None:
    clock = FakeClock()
    config = CollectorConfig(max_viewers=3, viewer_ttl=60)
    stats = ViewerStats(config)
    for i in range(3):
        stats.add(rep(f"{i:032d}", peers=1), "s", clock())
        clock.advance(1)
    s = stats.stream("s")
    assert s is not None and (s.viewers, s.peers) == (3, 3)
    stats.add(rep("3" * 32, peers=1), "s", clock())  # the fourth: the oldest goes
    assert stats.viewer_count == 3 and stats.viewers_evicted == 1
    assert (s.viewers, s.peers, s.started) == (3, 3, 4)
    # The dropped viewer comes back: re-learnt from its report, its bytes not counted twice.
    http_before = s.http
    stats.add(rep("0" * 32, seq=2, t=10_000, http=5000, peers=1), "s", clock())
    assert s.http == http_before and s.started == 4
    clock.advance(config.viewer_ttl + 1)
    stats.expire(clock())
    assert stats.viewer_count == 0 and (s.viewers, s.peers) == (0, 0)
    assert s.http == http_before  # what they reported stays counted


def test_the_stream_table_is_bounded() -> None:
    clock = FakeClock()
    stats = ViewerStats(CollectorConfig(max_streams=2, viewer_ttl=10))
    stats.add(rep(A), "one", clock())
    stats.add(rep(B), "two", clock())
    assert rejected(stats, rep("c" * 32), clock(), key="three") is Reason.TOO_MANY_STREAMS
    clock.advance(11)  # "one" and "two" have no live viewer now: the older makes room
    stats.add(rep("c" * 32), "three", clock())
    assert [s.key for s in stats.streams()] == ["three", "two"]
    assert stats.streams_evicted == 1


def test_ten_thousand_bogus_viewers_and_streams_stay_within_the_bounds() -> None:
    clock = FakeClock()
    config = CollectorConfig(max_viewers=500, max_streams=50, viewer_ttl=600)
    stats = ViewerStats(config)
    refused = 0
    for i in range(10_000):
        try:
            stats.add(rep(f"{i:032x}"), f"stream-{i}", clock())
        except Rejected as exc:
            assert exc.reason is Reason.TOO_MANY_STREAMS
            refused += 1
        clock.advance(0.001)
    assert stats.viewer_count <= 500 and stats.stream_count == 50
    assert refused == 10_000 - 50  # every stream keeps its live viewer: no room is made
    # A stream's viewers all in one stream: the viewer table holds its bound.
    for i in range(10_000):
        stats.add(rep(f"{i + 10_000:032x}"), "stream-0", clock())
    assert stats.viewer_count == 500


def test_history_is_sampled_and_bounded() -> None:
    clock = FakeClock()
    stats = ViewerStats(CollectorConfig())
    stats.add(rep(A, http=1000, p2p=0), "s", clock())
    stats.sample(clock(), 1000.0)
    stats.sample(clock() + SAMPLE_INTERVAL / 2, 1000.5)  # too soon: no point
    assert len(stats.history) == 1
    clock.advance(SAMPLE_INTERVAL)
    stats.add(rep(A, seq=2, t=7000, http=2000, p2p=3000), "s", clock())
    stats.sample(clock(), 1002.0)
    # The share over the interval: 3000 of the 4000 bytes since the previous point.
    assert stats.history[-1]["p2p_share"] == {"s": 0.75}
    assert stats.history[-1]["viewers"] == {"s": 1}
    for _ in range(HISTORY + 10):
        clock.advance(SAMPLE_INTERVAL)
        stats.sample(clock(), 0.0)
    assert len(stats.history) == HISTORY
