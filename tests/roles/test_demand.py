"""The demand policy (:mod:`p2pml_py.roles.demand`) on a fake clock: when a rendition starts and
stops following, which signals count, and the bytes-saved accounting."""

from __future__ import annotations

import pytest

from p2pml_py.hls.playlist import Segment, Stream
from p2pml_py.roles.demand import (
    DEFAULT_GRACE,
    DemandConfig,
    DemandPolicy,
    DemandSignals,
    FetchAccount,
    FetchMode,
    RenditionState,
    estimate_segment_bytes,
)
from p2pml_py.testing.clock import FakeClock

GRACE = 30.0
NOBODY = DemandSignals(tracker_others=0)


def policy() -> DemandPolicy:
    return DemandPolicy(DemandConfig(grace=GRACE))


def look(p: DemandPolicy, clock: FakeClock, signals: DemandSignals, *, every: float = 1.0) -> bool:
    clock.advance(every)
    return p.update(clock.now(), signals)


def run(p: DemandPolicy, clock: FakeClock, signals: DemandSignals, seconds: float) -> list[float]:
    """Look once a second for ``seconds``; the times at which the state changed."""
    changes = []
    for _ in range(round(seconds)):
        if look(p, clock, signals):
            changes.append(clock.now())
    return changes


def test_the_grace_is_p2p_media_loaders_inactive_loader_timeout() -> None:
    # p2pInactiveLoaderDestroyTimeoutMs = 30000 (core/core.ts DEFAULT_STREAM_CONFIG).
    assert DEFAULT_GRACE == 30.0
    assert DemandConfig().grace == DEFAULT_GRACE


def test_idle_without_other_peers() -> None:
    p, clock = policy(), FakeClock()
    assert p.state is RenditionState.IDLE
    assert run(p, clock, NOBODY, 100) == []
    assert run(p, clock, DemandSignals(), 10) == []  # no count from the tracker yet
    assert p.starts == 0 and p.last_demand is None and p.idle_at() is None


def test_tracker_count_wakes_at_once_and_idles_one_grace_after_it_drops() -> None:
    p, clock = policy(), FakeClock()
    run(p, clock, NOBODY, 5)
    assert look(p, clock, DemandSignals(tracker_others=1))
    assert p.following and p.reason == "tracker" and p.since == 6.0 and p.starts == 1
    # A count that holds keeps it following far beyond the grace.
    assert run(p, clock, DemandSignals(tracker_others=2), 120) == []
    assert p.following
    last = clock.now()
    changes = run(p, clock, NOBODY, 60)
    assert changes == [last + GRACE]
    assert p.state is RenditionState.IDLE and p.since == last + GRACE


def test_an_offer_from_a_new_peer_wakes_and_counts_once() -> None:
    p, clock = policy(), FakeClock()
    assert not look(p, clock, DemandSignals(tracker_others=0, offers=0))
    assert look(p, clock, DemandSignals(tracker_others=0, offers=1))
    assert p.reason == "offer"
    woke = clock.now()
    # The same running total is no new offer: idle one grace later.
    assert run(p, clock, DemandSignals(tracker_others=0, offers=1), 40) == [woke + GRACE]
    # Each new offer renews it.
    assert look(p, clock, DemandSignals(offers=2))
    assert run(p, clock, DemandSignals(offers=2), 20) == []
    assert not look(p, clock, DemandSignals(offers=3))
    assert run(p, clock, DemandSignals(offers=3), 29) == []
    assert p.following
    assert look(p, clock, DemandSignals(offers=3))
    assert not p.following and p.starts == 2


def test_offers_before_the_first_look_count() -> None:
    p, clock = policy(), FakeClock()
    assert look(p, clock, DemandSignals(offers=2))


def test_a_connected_peer_counts_while_it_takes_segments() -> None:
    p, clock = policy(), FakeClock()
    assert look(p, clock, DemandSignals(peers={"viewer": 0}))
    assert p.reason == "peer"
    # It downloads from us every few seconds: following for as long as it does.
    for step in range(1, 30):
        look(p, clock, DemandSignals(peers={"viewer": step * 1000}), every=4.0)
    assert p.following
    stopped = clock.now()
    # It stops downloading but stays connected: idle one grace after its last download.
    changes = run(p, clock, DemandSignals(peers={"viewer": 29_000}), 40)
    assert changes == [stopped + GRACE]


def test_another_seeder_connected_to_us_is_not_demand_for_ever() -> None:
    """A fleet's other replica connects to us and never downloads: one grace of following (we
    cannot tell it from a browser that just joined), then idle while it stays connected."""
    p, clock = policy(), FakeClock()
    assert look(p, clock, DemandSignals(tracker_others=0, peers={"seeder-b": 0}))
    connected = clock.now()
    assert run(p, clock, DemandSignals(tracker_others=0, peers={"seeder-b": 0}), 600) == [
        connected + GRACE
    ]
    assert p.state is RenditionState.IDLE and p.starts == 1


def test_a_peer_that_reconnects_is_new_again() -> None:
    p, clock = policy(), FakeClock()
    look(p, clock, DemandSignals(peers={"a": 0}))
    run(p, clock, DemandSignals(peers={"a": 0}), 40)
    assert not p.following
    look(p, clock, DemandSignals())  # it left
    assert look(p, clock, DemandSignals(peers={"a": 0}))  # and came back
    assert p.starts == 2


def test_peer_memory_is_bounded_by_the_connected_peers() -> None:
    p, clock = policy(), FakeClock()
    for i in range(1000):
        look(p, clock, DemandSignals(peers={f"peer{i}": 0}))
    assert len(p._peers) == 1


def test_zero_grace_idles_at_the_first_look_without_demand() -> None:
    p, clock = DemandPolicy(DemandConfig(grace=0.0)), FakeClock()
    assert look(p, clock, DemandSignals(tracker_others=3))
    assert look(p, clock, NOBODY)
    assert not p.following


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="grace"):
        DemandConfig(grace=-1.0)
    with pytest.raises(ValueError, match="grace"):
        DemandConfig(grace=float("nan"))
    with pytest.raises(ValueError, match="tick"):
        DemandConfig(tick=0.0)
    with pytest.raises(ValueError, match="known_seeders"):
        DemandConfig(known_seeders=-1)


def test_fetch_modes() -> None:
    assert FetchMode.parse("demand") is FetchMode.DEMAND
    assert FetchMode.parse(FetchMode.ALL) is FetchMode.ALL
    assert FetchMode.AUTO.resolve(live=True) is FetchMode.DEMAND
    assert FetchMode.AUTO.resolve(live=False) is FetchMode.ALL
    assert FetchMode.DEMAND.resolve(live=False) is FetchMode.DEMAND
    assert FetchMode.ALL.resolve(live=True) is FetchMode.ALL
    for bad in ("everything", "", None, 1):
        with pytest.raises(ValueError, match=r'^stream\[2\]\.fetch: must be "auto", "all"'):
            FetchMode.parse(bad, "stream[2].fetch")


# -- bytes saved ------------------------------------------------------------------------------

STREAM = Stream(
    type="main", position=0, url="http://127.0.0.1/a/index.m3u8", short_id="x", bitrate=800_000
)


def segment(
    sid: int, *, duration: float = 2.0, byte_range: tuple[int, int] | None = None
) -> Segment:
    return Segment(
        url=f"http://127.0.0.1/a/{sid}.ts",
        byte_range=byte_range,
        duration=duration,
        start_time=sid * duration,
        end_time=(sid + 1) * duration,
        sequence_number=sid,
        external_id=sid,
        runtime_id=str(sid),
    )


def test_segment_size_estimates() -> None:
    # An exact byte range first, then what the rendition's segments weighed, then BANDWIDTH.
    assert estimate_segment_bytes(segment(1, byte_range=(100, 1099)), STREAM, 5.0) == 1000
    assert estimate_segment_bytes(segment(1), STREAM, 123_456.4) == 123_456
    assert estimate_segment_bytes(segment(1), STREAM, None) == 800_000 * 2 // 8
    audio = Stream(type="secondary", position=0, url="http://127.0.0.1/au/i.m3u8", short_id="y")
    assert estimate_segment_bytes(segment(1), audio, None) is None


def test_account_saved_bytes() -> None:
    account = FetchAccount(STREAM)
    for sid in range(5):
        account.skipped(segment(sid))
    account.skipped(segment(4))  # seen twice: counted once
    assert account.skipped_segments == 5 and account.saved_bytes == 5 * 200_000
    # Waking fetches the newest: it is no longer saved.
    account.fetched(4, 150_000)
    assert account.skipped_segments == 4 and account.saved_bytes == 4 * 200_000
    assert account.origin_bytes == 150_000 and account.origin_segments == 1
    # The window slides: what left it stays saved; the next skip uses the measured size.
    account.forget_outside(3, 4)
    account.fetched(2, 150_000)  # left the window: cannot be taken back
    assert account.saved_bytes == 4 * 200_000
    account.skipped(segment(5))
    assert account.saved_bytes == 4 * 200_000 + 150_000
    assert len(account._pending) == 2  # 3 and 5: bounded by the window


def test_a_quiet_peer_is_not_new_again_when_the_count_drops() -> None:
    p, clock = policy(), FakeClock()
    quiet = {"seeder-b": 0}
    look(p, clock, DemandSignals(tracker_others=1, peers=quiet))
    run(p, clock, DemandSignals(tracker_others=1, peers=quiet), 100)
    last = clock.now()
    assert run(p, clock, DemandSignals(tracker_others=0, peers=quiet), 40) == [last + GRACE]


def test_account_forgets_a_window_that_restarted() -> None:
    account = FetchAccount(STREAM)
    for sid in range(100, 110):
        account.skipped(segment(sid))
    account.forget_outside(0, 5)  # the live stream restarted at 0: the old window is gone
    assert account._pending == {} and account.skipped_segments == 10
