"""FakeClock drives the sans-I/O code in both of the shapes it takes time."""

from __future__ import annotations

import math

import pytest

from p2pml_py.base.bucket import TokenBucket
from p2pml_py.testing.clock import FakeClock
from p2pml_py.wire.protocol import DownloadFailed, PeerProtocol


def test_moves_only_forward_and_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock.now() == clock() == 100.0
    assert clock.advance(2.5) == 102.5 and clock.now() == 102.5
    assert clock.advance(0) == 102.5
    assert clock.set(110.0) == 110.0 == clock()
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError):
            clock.advance(bad)
    with pytest.raises(ValueError):
        clock.set(109.0)
    assert clock.now() == 110.0


def test_as_a_now_argument_it_times_out_a_download() -> None:
    clock = FakeClock()
    protocol = PeerProtocol(receive_timeout=2.0)
    protocol.start_download(5, clock.now())
    clock.advance(1.9)
    protocol.tick(clock.now())
    assert not [e for e in protocol.events_received() if isinstance(e, DownloadFailed)]
    clock.advance(0.1)
    protocol.tick(clock.now())
    failed = [e for e in protocol.events_received() if isinstance(e, DownloadFailed)]
    assert [(e.segment_id, e.reason) for e in failed] == [(5, "timeout")]


def test_as_a_callable_it_refills_a_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=100.0, now=clock())
    assert bucket.take(100, clock())
    assert not bucket.take(50, clock())
    clock.advance(0.5)
    assert bucket.take(50, clock())
    assert not bucket.take(1, clock())
