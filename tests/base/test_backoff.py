from __future__ import annotations

import random

import pytest

from p2pml_py.base.backoff import Backoff


def test_doubles_from_the_first_failure_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, cap=30.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.delay(0) == 1.0
    assert backoff.delay(10_000) == 30.0  # no overflow for a failure count that keeps growing


def test_jitter_stays_within_its_share_and_is_reproducible() -> None:
    backoff = Backoff(initial=2.0, cap=300.0, jitter=0.5)
    first = [backoff.delay(n, random.Random(7)) for n in range(1, 6)]
    again = [backoff.delay(n, random.Random(7)) for n in range(1, 6)]
    assert first == again
    for n, delay in enumerate(first, start=1):
        raw = min(2.0 * 2 ** (n - 1), 300.0)
        assert raw <= delay < raw * 1.5
    assert backoff.delay(3) == 8.0  # no generator: no jitter


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1, "cap": 1}, {"initial": 1, "cap": 1, "multiplier": 0.5}]
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
