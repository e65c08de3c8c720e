"""The pacer of full collections after closed connections (sans-I/O, times passed in)."""

from __future__ import annotations

import pytest

from p2pml_py.base.gcpace import GC_INTERVAL, GC_SETTLE, GcPacer


def test_first_close_waits_for_the_teardown_to_settle() -> None:
    pacer = GcPacer()
    assert pacer.closed(100.0) == 100.0 + GC_SETTLE
    assert pacer.due == 100.0 + GC_SETTLE


def test_closes_while_one_is_scheduled_share_it() -> None:
    pacer = GcPacer(interval=30, settle=5)
    assert pacer.closed(0.0) == 5.0
    for now in (1.0, 2.0, 4.9):
        assert pacer.closed(now) is None  # covered by the collection at 5.0
    assert pacer.due == 5.0


def test_collections_are_at_least_an_interval_apart() -> None:
    pacer = GcPacer(interval=30, settle=5)
    pacer.closed(0.0)
    pacer.collected(5.0)
    assert pacer.due is None
    # a close soon after waits for the interval, not just the settle time
    assert pacer.closed(6.0) == 35.0
    pacer.collected(35.0)
    # a close long after needs only to settle
    assert pacer.closed(500.0) == 505.0


def test_forget_lets_the_next_close_schedule_again() -> None:
    pacer = GcPacer(interval=GC_INTERVAL, settle=GC_SETTLE)
    pacer.closed(0.0)
    pacer.forget()
    assert pacer.due is None
    assert pacer.closed(1.0) == 1.0 + GC_SETTLE


@pytest.mark.parametrize(("interval", "settle"), [(-1.0, 0.0), (0.0, -1.0), (float("nan"), 1.0)])
def test_negative_or_nan_times_are_refused(interval: float, settle: float) -> None:
    with pytest.raises(ValueError, match="interval and settle"):
        GcPacer(interval=interval, settle=settle)
