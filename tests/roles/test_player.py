"""The viewer's player model on a fake clock: plain floats for time, a seeded ``random.Random``.

No network, no sleeps: each test feeds :class:`~p2pml_py.roles.player.Player` playlists, the set of
held segment ids and the peers' state, and checks the events and plans it returns.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from p2pml_py.roles.player import (
    HTTP_RETRY,
    LIVE_HISTORY_SEGMENTS,
    P2P_RETRY_DELAY,
    Player,
    PlayerEvent,
)
from p2pml_py.roles.scheduler import Load, QueueItem, SchedulerConfig


def playlist(
    first_id: int, count: int, duration: float = 2.0, start: float = 0.0
) -> list[QueueItem]:
    """``count`` segments of ``duration`` s from id ``first_id``, on the playlist's own clock."""
    return [
        QueueItem(first_id + i, start + i * duration, start + (i + 1) * duration)
        for i in range(count)
    ]


@dataclass
class FakePeers:
    """The swarm as the model sees it."""

    peer_count: int = 0
    has: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)  # announced, but their holders are downloading
    http_loading: set[int] = field(default_factory=set)

    def peer_has(self, segment_id: int) -> bool:
        return segment_id in self.has

    def peer_can_serve(self, segment_id: int) -> bool:
        return segment_id in self.has and segment_id not in self.busy

    def peer_http_loading(self, segment_id: int) -> bool:
        return segment_id in self.http_loading


def vod_player(count: int = 10, duration: float = 2.0, seed: int = 0, **config: Any) -> Player:
    player = Player(SchedulerConfig(**config), random.Random(seed))
    player.start(100.0)
    player.update_playlist(playlist(0, count, duration), is_live=False)
    return player


def kinds(events: Iterable[PlayerEvent]) -> list[str]:
    return [e.kind for e in events]


# -- start-up, playhead, stalls -----------------------------------------------------------------


def test_vod_starts_at_the_first_segment_once_it_is_held() -> None:
    player = vod_player()
    assert player.position == 0.0
    assert player.advance(100.5, held=set()) == []
    assert not player.playing and player.startup_time is None
    events = player.advance(101.25, held={0})
    assert kinds(events) == ["started"]
    assert player.playing and player.startup_time == pytest.approx(1.25)
    assert player.stalls == 0


@pytest.mark.parametrize("rate", [1.0, 2.0])
def test_playhead_advances_at_the_playback_rate(rate: float) -> None:
    player = vod_player(playback_rate=rate)
    held = set(range(10))
    player.advance(101.0, held)  # starts; the first tick of playback moves nothing
    assert player.position == 0.0
    player.advance(101.5, held)
    assert player.position == pytest.approx(0.5 * rate)
    player.advance(103.0, held)
    assert player.position == pytest.approx(2.0 * rate)
    assert player.stalls == 0


def test_stall_starts_at_the_end_of_the_held_segments_and_ends_when_the_next_arrives() -> None:
    player = vod_player()
    held = {0, 1}
    player.advance(101.0, held)
    assert kinds(player.advance(103.0, held)) == []
    assert player.position == pytest.approx(2.0)
    # 5 s later the playhead stops at the end of segment 1 (4 s): a stall.
    events = player.advance(108.0, held)
    assert kinds(events) == ["stalled"]
    assert player.position == pytest.approx(4.0) and not player.playing and player.stalls == 1
    # Still missing: nothing moves, the stall goes on and is counted once.
    assert player.advance(109.0, held) == []
    assert player.position == pytest.approx(4.0) and player.stalls == 1
    held.add(2)
    events = player.advance(110.5, held)
    assert kinds(events) == ["resumed"]
    assert player.playing and player.stall_time == pytest.approx(2.5)
    player.advance(111.5, held)
    assert player.position == pytest.approx(5.0)


def test_a_missing_segment_in_the_middle_stops_the_playhead_before_it() -> None:
    player = vod_player()
    held = {0, 1, 3, 4}  # 2 is missing
    player.advance(101.0, held)
    assert player.buffered_end(0.0, held) == pytest.approx(4.0)
    assert kinds(player.advance(110.0, held)) == ["stalled"]
    assert player.position == pytest.approx(4.0)


def test_a_gap_in_the_timeline_stalls_and_the_playhead_jumps_it() -> None:
    player = Player(SchedulerConfig(), random.Random(0))
    player.update_playlist([QueueItem(0, 0.0, 2.0), QueueItem(1, 3.0, 5.0)], is_live=False)
    held = {0, 1}
    player.advance(1.0, held)
    assert player.buffered_end(0.0, held) == pytest.approx(2.0)
    assert kinds(player.advance(4.0, held)) == ["stalled"]
    assert player.position == pytest.approx(2.0)
    assert kinds(player.advance(4.5, held)) == ["skipped", "resumed"]
    assert player.position == 3.0 and player.skips == 1


def test_vod_ends_after_its_last_segment_and_then_plans_nothing() -> None:
    player = vod_player(count=3)
    held = {0, 1, 2}
    player.advance(101.0, held)
    events = player.advance(120.0, held)
    assert kinds(events) == ["ended"]
    assert player.ended and player.stalls == 0 and player.position == pytest.approx(6.0)
    assert player.advance(121.0, held) == []
    assert not player.plan(121.0, held, FakePeers(peer_count=1))


def test_a_live_playhead_at_the_last_segment_stalls_instead_of_ending() -> None:
    player = Player(SchedulerConfig(), random.Random(0), live_sync_segments=1)
    player.update_playlist(playlist(50, 3), is_live=True)
    held = {52}
    player.advance(1.0, held)
    assert kinds(player.advance(10.0, held)) == ["stalled"]
    assert not player.ended


# -- live edge and sync -------------------------------------------------------------------------


@pytest.mark.parametrize(("sync", "first"), [(3, 107), (6, 104), (20, 100)])
def test_live_starts_live_sync_segments_behind_the_edge(sync: int, first: int) -> None:
    player = Player(SchedulerConfig(), random.Random(0), live_sync_segments=sync)
    player.update_playlist(playlist(100, 10), is_live=True)
    item = player.item(first)
    assert item is not None and player.position == item.start
    assert player.queue()[0].segment_id == first


def test_live_reloads_are_anchored_on_a_known_segment() -> None:
    player = Player(SchedulerConfig(), random.Random(0))
    player.update_playlist(playlist(100, 5), is_live=True)  # 100..104 at 0..10 s
    # The reload restarts its clock at 0 with id 102: 105 and 106 continue at 10 and 12 s.
    player.update_playlist(playlist(102, 5), is_live=True)
    assert [(i.segment_id, i.start) for i in player.timeline] == [
        (100, 0.0),
        (101, 2.0),
        (102, 4.0),
        (103, 6.0),
        (104, 8.0),
        (105, 10.0),
        (106, 12.0),
    ]
    # A reload sharing nothing (the edge moved on during an outage) continues at the end.
    player.update_playlist(playlist(110, 2, start=500.0), is_live=True)
    assert [(i.segment_id, i.start) for i in player.timeline[-2:]] == [(110, 14.0), (111, 16.0)]


def test_the_timeline_stays_sorted_when_a_reload_adds_earlier_segments() -> None:
    player = Player(SchedulerConfig(), random.Random(0), live_sync_segments=1)
    player.update_playlist(playlist(10, 2), is_live=True)  # 10, 11 at 0..4 s
    player.update_playlist(playlist(8, 4, start=50.0), is_live=True)  # 8, 9 come before 10
    assert [i.segment_id for i in player.timeline] == [8, 9, 10, 11]
    assert [i.start for i in player.timeline] == [-4.0, -2.0, 0.0, 2.0]
    assert player.position == 2.0  # the first playlist's live sync point did not move
    assert [i.segment_id for i in player.queue()] == [11]
    item = player.item_at(-1.0)
    assert item is not None and item.segment_id == 9


def test_live_playhead_skips_to_the_window_when_it_fell_out_of_it() -> None:
    player = Player(SchedulerConfig(), random.Random(0), live_sync_segments=3)
    player.update_playlist(playlist(0, 5), is_live=True)
    assert player.position == 4.0  # on segment 2, never loaded
    # Long outage: the playlist is back far ahead, the old ids are forgotten.
    forgotten = player.update_playlist(playlist(LIVE_HISTORY_SEGMENTS + 10, 5), is_live=True)
    assert forgotten == [0, 1, 2, 3, 4]
    events = player.advance(1.0, held=set())
    assert kinds(events) == ["skipped"]
    assert player.skips == 1 and player.position == 10.0  # the new segments continue at 10 s
    assert not player.playing


def test_live_eviction_keeps_the_high_demand_window_behind_the_playhead() -> None:
    player = Player(SchedulerConfig(high_demand_time_window=5.0), random.Random(0))
    player.update_playlist(playlist(0, 10), is_live=True)  # position: segment 7 at 14 s
    # Segments ending before 14 - 5 = 9 s are 0..3 (ends 2, 4, 6, 8).
    assert player.evict_below() == 4
    assert vod_player().evict_below() is None


# -- loads: urgent window vs P2P window ---------------------------------------------------------


def test_window_edges_classify_urgent_and_prefetch_loads() -> None:
    # 5 s segments at 0, 5, 10, 15, 20, 25; the playhead at 0; high-demand window 15 s, so the
    # segment starting exactly at 15 s is urgent and the one at 20 s is a P2P prefetch.
    player = vod_player(count=6, duration=5.0)
    peers = FakePeers(peer_count=1, has=set(range(6)))
    plan = player.plan(101.0, set(), peers)
    assert plan.http == (Load(0, "http", "urgent"), Load(1, "http", "urgent"))
    # Random HTTP found no candidate: the peer has every segment.
    assert plan.p2p == (
        Load(2, "p2p", "urgent"),
        Load(3, "p2p", "urgent"),
        Load(4, "p2p", "prefetch"),
    )
    assert plan.cancel == ()
    assert list(player.http_loading) == [0, 1] and list(player.p2p_loading) == [2, 3, 4]


def test_playback_rate_stretches_the_windows() -> None:
    # At 2x the 7.5 s high-demand window covers 15 s of content: segment 3 (15 s) is urgent.
    player = vod_player(count=6, duration=5.0, playback_rate=2.0, high_demand_time_window=7.5)
    peers = FakePeers(peer_count=1, has=set(range(6)))
    plan = player.plan(101.0, {0, 1}, peers)
    assert [(p.segment_id, p.source, p.reason) for p in (*plan.http, *plan.p2p)] == [
        (2, "http", "urgent"),
        (3, "http", "urgent"),
        (4, "p2p", "prefetch"),
        (5, "p2p", "prefetch"),
    ]


def test_prefetch_stops_at_the_p2p_window_edge() -> None:
    player = vod_player(
        count=6, duration=5.0, high_demand_time_window=0.0, p2p_download_time_window=10.0
    )
    held = {0}  # the one urgent segment (the playhead's) is held
    plan = player.plan(101.0, held, FakePeers(peer_count=1, has=set(range(6))))
    assert plan.http == ()
    assert [p.segment_id for p in plan.p2p] == [1, 2]  # starts 5 and 10 are in, 15 is out


def test_a_peer_busy_or_p2p_blocked_does_not_get_the_request() -> None:
    player = vod_player(count=6, duration=5.0, high_demand_time_window=0.0)
    peers = FakePeers(peer_count=1, has={1, 2, 3}, busy={2})
    plan = player.plan(101.0, {0}, peers)
    assert [p.segment_id for p in plan.p2p] == [1, 3]
    # Segment 1 fails over P2P (a timeout): not asked of peers again for P2P_RETRY_DELAY.
    player.p2p_done(1, 102.0, failure="timeout")
    player.p2p_done(3, 102.0)
    peers.busy.clear()
    assert [p.segment_id for p in player.plan(102.5, {0, 3}, peers).p2p] == [2]
    assert player.plan(102.0 + P2P_RETRY_DELAY - 0.01, {0, 3}, peers).p2p == ()
    assert [p.segment_id for p in player.plan(102.0 + P2P_RETRY_DELAY, {0, 3}, peers).p2p] == [1]


def test_no_peer_is_not_a_p2p_failure_that_blocks() -> None:
    player = vod_player(count=6, duration=5.0, high_demand_time_window=0.0)
    peers = FakePeers(peer_count=1, has={1})
    assert [p.segment_id for p in player.plan(101.0, {0}, peers).p2p] == [1]
    player.p2p_done(1, 101.5, failure="no-peer")
    assert [p.segment_id for p in player.plan(101.5, {0}, peers).p2p] == [1]


def test_origin_failures_back_off_and_fall_back_to_peers() -> None:
    player = vod_player(count=2, duration=5.0)
    peers = FakePeers(peer_count=1, has={1})
    first = player.plan(101.0, set(), peers)
    assert first.http == (Load(0, "http", "urgent"), Load(1, "http", "urgent"))
    assert player.http_done(0, 101.0, failed=True) == HTTP_RETRY.delay(1) == 0.5
    assert player.http_done(1, 101.0, failed=True) == 0.5
    # Segment 0 is blocked for HTTP and no peer has it; segment 1 falls back to the peer.
    plan = player.plan(101.2, set(), peers)
    assert plan.http == () and plan.p2p == (Load(1, "p2p", "urgent"),)
    assert player.plan(101.5, set(), peers).http == (Load(0, "http", "urgent"),)
    assert player.http_done(0, 102.0, failed=True) == 1.0  # the second failure doubles it
    assert player.plan(102.9, set(), peers).http == ()
    assert player.plan(103.0, set(), peers).http == (Load(0, "http", "urgent"),)
    assert player.http_done(0, 103.5) is None
    assert player.http_done(0, 103.6, failed=True) is None  # not loading: ignored


# -- random HTTP ----------------------------------------------------------------------------------


def random_rounds(peers: FakePeers, candidates: int, rounds: int, seed: int) -> list[int]:
    """How many random-HTTP loads each of ``rounds`` rounds started (the urgent window held)."""
    player = vod_player(count=1 + candidates, duration=5.0, seed=seed, high_demand_time_window=0)
    held = {0}
    counts = []
    for _ in range(rounds):
        now = player.next_random_round
        plan = player.plan(now, held, peers)
        assert plan.p2p == () and all(load.reason == "random" for load in plan.http)
        counts.append(len(plan.http))
        for load in plan.http:
            player.http_done(load.segment_id, now)
    return counts


@pytest.mark.parametrize(("peer_count", "expected"), [(1, 1 / 2), (3, 1 / 4), (9, 1 / 10)])
def test_random_http_fetches_a_new_segment_with_probability_one_in_peers_plus_one(
    peer_count: int, expected: float
) -> None:
    counts = random_rounds(FakePeers(peer_count=peer_count), candidates=1, rounds=4000, seed=7)
    assert sum(counts) / len(counts) == pytest.approx(expected, abs=0.03)


def test_random_http_budget_is_candidates_over_peers_plus_one_capped_by_slots() -> None:
    # 1 peer, 3 candidates: budget min(3, 2 * 2) / 2 = 1.5 -> one certain, a second half the time.
    counts = random_rounds(FakePeers(peer_count=1), candidates=3, rounds=4000, seed=3)
    assert min(counts) == 1 and max(counts) == 2
    assert sum(counts) / len(counts) == pytest.approx(1.5, abs=0.03)
    # 1 peer, 8 candidates: budget 2 >= the 2 HTTP slots -> always exactly 2.
    assert set(random_rounds(FakePeers(peer_count=1), candidates=8, rounds=50, seed=3)) == {2}


def test_random_http_rounds_come_every_one_plus_random_times_peers_seconds() -> None:
    player = vod_player(count=8, duration=5.0, high_demand_time_window=0)
    peers = FakePeers(peer_count=4)
    held = {0}
    assert len(player.plan(101.0, held, peers).http) >= 1  # the first round is due at once
    for load in list(player.http_loading):
        player.http_done(load, 101.0)
    due = player.next_random_round
    assert 101.0 + 1.0 <= due <= 101.0 + 1.0 + 4
    assert player.plan(due - 0.001, held, peers).http == ()
    # 4 peers, at least 5 candidates: budget >= 5 / 5, so the first pick is certain.
    assert len(player.plan(due, held, peers).http) >= 1


def test_random_http_applies_only_where_upstream_applies_it() -> None:
    def picked(peers: FakePeers, held: set[int], **config: Any) -> set[int]:
        """Every segment the first random round picks, over 20 seeds."""
        out: set[int] = set()
        for seed in range(20):
            player = vod_player(5, 5.0, seed, high_demand_time_window=0, **config)
            plan = player.plan(101.0, held, peers)
            assert all(load.reason == "random" for load in plan.http)
            out.update(load.segment_id for load in plan.http)
        return out

    # Segments 0..4 start at 0, 5, 10, 15 and 20 s; 0 (at the playhead) is held.
    held = {0}
    # Only with a peer connected.
    assert picked(FakePeers(peer_count=0), held) == set()
    # Never a segment we hold, a peer has (P2P gets it), or a peer is loading over HTTP.
    peers = FakePeers(peer_count=1, has={1}, http_loading={2})
    assert picked(peers, held | {3, 4}) == set()
    assert picked(FakePeers(peer_count=1, http_loading={1, 2}), held) == {3, 4}
    # Only inside the HTTP window: a 10 s window holds segments 1 (5 s) and 2 (10 s).
    assert picked(FakePeers(peer_count=1), held, http_download_time_window=10.0) == {1, 2}


def test_a_random_round_sees_the_http_slots_the_queue_took() -> None:
    # The 2 urgent segments take both HTTP slots; the random round due in the same tick must not
    # start a third origin download, nor fetch an urgent segment a second time.
    player = vod_player(count=8, high_demand_time_window=2.0)
    plan = player.plan(101.0, set(), FakePeers(peer_count=1))
    assert plan.http == (Load(0, "http", "urgent"), Load(1, "http", "urgent"))
    assert player.next_random_round > 101.0  # the round did run
    # With one slot left, the round may add one load, never one of the urgent segments.
    player = vod_player(count=8, high_demand_time_window=0.0, simultaneous_http_downloads=2)
    plan = player.plan(101.0, set(), FakePeers(peer_count=1))
    ids = [load.segment_id for load in plan.http]
    assert ids[0] == 0 and plan.http[0].reason == "urgent"
    assert len(set(ids)) == len(ids) == 2 and plan.http[1].reason == "random"


# -- cancellation -------------------------------------------------------------------------------


def test_loads_of_forgotten_segments_are_cancelled() -> None:
    player = Player(SchedulerConfig(), random.Random(0), live_sync_segments=2)
    player.update_playlist(playlist(0, 4), is_live=True)
    plan = player.plan(1.0, set(), FakePeers(peer_count=1, has={3}))
    assert [load.segment_id for load in plan.http] == [2, 3]
    player.http_done(2, 1.5)
    assert player.plan(1.6, {2}, FakePeers(peer_count=1, has={3})).cancel == ()
    forgotten = player.update_playlist(playlist(LIVE_HISTORY_SEGMENTS + 4, 4), is_live=True)
    assert 3 in forgotten
    assert 3 not in player.http_loading
    assert player.plan(2.0, set(), FakePeers(peer_count=1)).cancel == (3,)
    # The cancelled task's late report changes nothing.
    assert player.http_done(3, 2.1, failed=True) is None
    assert player.plan(2.2, set(), FakePeers(peer_count=1)).cancel == ()
