"""The hybrid-loader policy (:mod:`p2pml_py.roles.scheduler`) on concrete situations."""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import Any

import pytest

from p2pml_py.roles.scheduler import (
    Load,
    QueueItem,
    Scheduler,
    SchedulerConfig,
    Situation,
    in_window,
)

#: Ten 5 s segments, ids 0..9 at 0, 5, ..., 45 s.
QUEUE = [QueueItem(i, i * 5.0, (i + 1) * 5.0) for i in range(10)]


def situation(
    *,
    position: float = 0.0,
    queue: list[QueueItem] = QUEUE,
    stored: Collection[int] = (),
    http_loading: Collection[int] = (),
    p2p_loading: Collection[int] = (),
    peer_count: int = 1,
    peer_has: Collection[int] = (),
    peer_idle: Collection[int] | None = None,
    peer_http_loading: Collection[int] = (),
    http_blocked: Collection[int] = (),
) -> Situation:
    return Situation(
        position=position,
        queue=queue,
        stored=stored,
        http_loading=http_loading,
        p2p_loading=p2p_loading,
        http_slots_used=len(http_loading),
        p2p_slots_used=len(p2p_loading),
        peer_count=peer_count,
        peer_has=lambda sid: sid in peer_has,
        peer_can_serve=None if peer_idle is None else (lambda sid: sid in peer_idle),
        peer_http_loading=lambda sid: sid in peer_http_loading,
        http_blocked=http_blocked,
    )


def decide(s: Situation, **config: Any) -> list[tuple[int, str, str]]:
    loads = Scheduler(SchedulerConfig(**config), random.Random(0)).decide(s)
    return [(load.segment_id, load.source, load.reason) for load in loads]


# -- windows --------------------------------------------------------------------------------------


def test_in_window_edges() -> None:
    item = QueueItem(7, 15.0, 20.0)
    assert in_window(item, 0.0, 15.0, 1.0)  # starts exactly at the right margin
    assert not in_window(item, 0.0, 14.999, 1.0)
    assert in_window(item, 0.0, 7.5, 2.0)  # the window is wall time times the rate
    assert not in_window(item, 0.0, 7.4, 2.0)
    assert in_window(item, 20.0, 0.0, 1.0)  # the playhead exactly at its end
    assert not in_window(item, 20.001, 100.0, 1.0)  # behind the playhead


# -- the queue's loads ----------------------------------------------------------------------------


def test_urgent_segments_go_to_http_first_then_to_an_idle_peer() -> None:
    s = situation(peer_has=set(range(10)))
    assert decide(s) == [
        (0, "http", "urgent"),
        (1, "http", "urgent"),
        (2, "p2p", "urgent"),
        (3, "p2p", "urgent"),  # starts at 15 s: still inside the 15 s high-demand window
        (4, "p2p", "prefetch"),
    ]


def test_an_urgent_segment_no_peer_has_waits_for_an_http_slot() -> None:
    s = situation(http_loading={0, 1}, peer_has={5})
    assert decide(s) == [(5, "p2p", "prefetch")]


def test_held_and_loading_segments_are_skipped_and_slots_counted() -> None:
    s = situation(stored={0}, http_loading={1}, p2p_loading={2}, peer_has=set(range(10)))
    assert decide(s) == [(3, "http", "urgent"), (4, "p2p", "prefetch"), (5, "p2p", "prefetch")]


def test_an_http_blocked_urgent_segment_falls_back_to_peers() -> None:
    s = situation(http_blocked={0}, peer_has={0})
    assert decide(s)[:2] == [(0, "p2p", "urgent"), (1, "http", "urgent")]
    assert decide(situation(http_blocked={0})) == [(1, "http", "urgent"), (2, "http", "urgent")]


def test_a_busy_holder_is_not_asked() -> None:
    s = situation(peer_has={5, 6}, peer_idle={6})
    assert decide(s, high_demand_time_window=0.0) == [(0, "http", "urgent"), (6, "p2p", "prefetch")]
    # An urgent segment too: with both HTTP slots taken, only an idle holder is asked.
    s = situation(http_loading={8, 9}, peer_has={0, 1}, peer_idle={1})
    assert decide(s) == [(1, "p2p", "urgent")]
    # Without peer_can_serve, announcing the segment is enough.
    s = situation(peer_has={5, 6})
    assert decide(s, high_demand_time_window=0.0) == [
        (0, "http", "urgent"),
        (5, "p2p", "prefetch"),
        (6, "p2p", "prefetch"),
    ]


def test_prefetch_only_inside_the_p2p_window() -> None:
    s = situation(stored={0}, peer_has=set(range(10)))
    config = {"high_demand_time_window": 0.0, "p2p_download_time_window": 10.0}
    assert decide(s, **config) == [(1, "p2p", "prefetch"), (2, "p2p", "prefetch")]


def test_the_queue_is_read_from_the_playhead() -> None:
    s = situation(position=22.0, queue=QUEUE[4:], peer_has=set(range(10)))
    # From 22 s the 15 s window reaches 37 s: segments 4 (20 s) to 7 (35 s) are urgent.
    assert decide(s, simultaneous_p2p_downloads=4) == [
        (4, "http", "urgent"),
        (5, "http", "urgent"),
        (6, "p2p", "urgent"),
        (7, "p2p", "urgent"),
        (8, "p2p", "prefetch"),
        (9, "p2p", "prefetch"),
    ]


def test_nothing_starts_when_every_slot_is_used() -> None:
    s = situation(http_loading={8, 9}, p2p_loading={5, 6, 7}, peer_has=set(range(10)))
    assert decide(s) == []


# -- random HTTP ----------------------------------------------------------------------------------


def random_http(s: Situation, seed: int = 0, **config: Any) -> list[Load]:
    return Scheduler(SchedulerConfig(**config), random.Random(seed)).random_http(s)


def test_random_http_needs_a_peer_and_a_free_http_slot() -> None:
    assert random_http(situation(peer_count=0)) == []
    assert random_http(situation(http_loading={8, 9})) == []
    assert len(random_http(situation())) == 2  # 10 candidates, budget min(10, 4) / 2 = 2


def test_random_http_candidates() -> None:
    s = situation(
        stored={0},
        http_loading={1},
        p2p_loading={2},
        peer_has={3},
        peer_http_loading={4},
        http_blocked={5},
        queue=QUEUE[:8],
    )
    picked = set()
    for seed in range(30):
        picked.update(load.segment_id for load in random_http(s, seed))
    assert picked == {6, 7}
    # The HTTP window bounds the candidates too (20 s: segments up to the one at 20 s).
    picked = set()
    for seed in range(30):
        loads = random_http(situation(), seed, http_download_time_window=20.0)
        picked.update(load.segment_id for load in loads)
    assert picked == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("peers", "candidates", "expected"), [(1, 1, 0.5), (4, 1, 0.2), (1, 3, 1.5)]
)
def test_random_http_expected_loads(peers: int, candidates: int, expected: float) -> None:
    rng = random.Random(11)
    scheduler = Scheduler(rng=rng)
    s = situation(peer_count=peers, queue=QUEUE[:candidates])
    counts = [len(scheduler.random_http(s)) for _ in range(4000)]
    assert sum(counts) / len(counts) == pytest.approx(expected, abs=0.03)
    assert max(counts) <= 2  # never more than the HTTP slots


def test_random_http_picks_are_shuffled_and_marked_random() -> None:
    firsts = {random_http(situation(), seed)[0].segment_id for seed in range(40)}
    assert len(firsts) > 3  # not always the queue's first segments
    assert all(load == Load(load.segment_id, "http", "random") for load in random_http(situation()))


def test_random_http_delay_is_one_plus_random_times_peers() -> None:
    scheduler = Scheduler(rng=random.Random(5))
    assert scheduler.random_http_delay(0) == 1.0
    delays = [scheduler.random_http_delay(4) for _ in range(1000)]
    assert min(delays) >= 1.0 and max(delays) < 5.0
    assert sum(delays) / len(delays) == pytest.approx(3.0, abs=0.2)


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"simultaneous_http_downloads": 0},
        {"simultaneous_p2p_downloads": 0},
        {"high_demand_time_window": -1.0},
        {"p2p_download_time_window": -1.0},
        {"playback_rate": 0.0},
    ],
)
def test_invalid_config_is_rejected(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SchedulerConfig(**config)
