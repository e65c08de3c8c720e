"""Which peer a segment is asked of: p2p-media-loader 2.3's weights (``core/p2p/loader.ts
downloadSegment``), as :func:`p2pml_py.engine.swarm.download_weights` computes them."""

from __future__ import annotations

import pytest

from p2pml_py.engine.swarm import download_weights


def test_nothing_measured_is_a_uniform_pick() -> None:
    assert download_weights([0.0, 0.0, 0.0]) is None
    assert download_weights([]) is None


def test_unmeasured_peers_weigh_a_tenth_of_the_fastest() -> None:
    # a loopback seeder at 50 MB/s and two pages never asked yet
    assert download_weights([50e6, 0.0, 0.0]) == [50e6, 5e6, 5e6]


def test_slow_measured_peers_are_floored_like_unmeasured_ones() -> None:
    assert download_weights([100.0, 5.0, 0.0, 40.0]) == [100.0, 10.0, 10.0, 40.0]


def test_many_unproven_peers_share_no_more_than_the_proven_weigh() -> None:
    weights = download_weights([100.0] + [0.0] * 20)
    assert weights == [100.0] + [5.0] * 20  # 20 x 10 would outweigh 100: 100 / 20 each


def test_the_floor_is_at_least_one() -> None:
    assert download_weights([5.0, 0.0]) == [5.0, 1.0]


@pytest.mark.parametrize("rates", [[10.0, 20.0], [3e6, 2.5e6, 1e6]])
def test_proven_peers_weigh_their_rate(rates: list[float]) -> None:
    assert download_weights(rates) == rates
