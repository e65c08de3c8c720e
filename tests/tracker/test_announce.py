"""The tracker client's sans-I/O state machines on a fake clock: plain floats, seeded Random.

No sockets, no sleeps, no event loop: every rule of :mod:`p2pml_py.tracker.announce` is a method
call with ``now`` passed in and a value out.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.tracker.announce import (
    AnnounceConfig,
    AnnounceSession,
    OfferQueue,
    Reconnect,
    ReconnectPolicy,
    new_offer_id,
)
from p2pml_py.tracker.messages import AnnounceResponse, RelayedOffer

IH = "-info-hash-01234567-"
ME = "-PM0203-pythonpeer01"
THEM = "-PM0203-browserpeer1"
T0 = 1000.0


@dataclass(frozen=True)
class Offer:
    sdp: str


def offers(n: int, tag: str = "o") -> list[Offer]:
    return [Offer(f"v=0\r\no={tag}-{k}\r\n") for k in range(n)]


def session(**config: Any) -> AnnounceSession[Offer]:
    return AnnounceSession(IH, ME, AnnounceConfig(**config), random.Random(7))


def response(**fields: Any) -> AnnounceResponse:
    return AnnounceResponse(info_hash=IH, **fields)


def do_announce(s: AnnounceSession[Offer], now: float, made: list[Offer]) -> dict[str, Any]:
    """One full announce at ``now`` that reached the tracker; returns the decoded message."""
    assert s.announce_due(now)
    s.begin_announce(len(made))
    text = s.announce(now, made)
    s.announce_sent(now)
    message = json.loads(text)
    assert isinstance(message, dict)
    return message


# -- first announce and events ---------------------------------------------------------------


def test_nothing_is_due_until_connected_then_the_first_announce_is_due_at_once() -> None:
    s = session()
    assert not s.announce_due(T0) and s.next_announce_at is None
    s.connected(T0)
    assert s.next_announce_at == T0 and s.announce_due(T0)


def test_first_announce_carries_started_later_ones_and_reconnects_do_not() -> None:
    s = session()
    s.connected(T0)
    first = do_announce(s, T0, offers(2))
    assert first["event"] == "started"
    assert first["numwant"] == 2 and (first["uploaded"], first["downloaded"]) == (0, 0)
    assert [o["offer"]["sdp"] for o in first["offers"]] == [o.sdp for o in offers(2)]
    second = do_announce(s, T0 + 30, offers(1))
    assert "event" not in second
    s.disconnected()
    s.connected(T0 + 40)
    assert "event" not in do_announce(s, T0 + 40, [])


def test_started_is_repeated_until_an_announce_reaches_the_tracker() -> None:
    s = session()
    s.connected(T0)
    s.begin_announce(0)
    assert json.loads(s.announce(T0, []))["event"] == "started"
    s.disconnected()  # the send failed: the socket was gone
    s.connected(T0 + 5)
    assert do_announce(s, T0 + 5, [])["event"] == "started"


def test_offer_count_is_what_the_swarm_wants_capped_by_max_offers_and_five() -> None:
    s = session()
    s.connected(T0)
    assert s.begin_announce(7) == 5
    capped = session(max_offers=3)
    capped.connected(T0)
    assert capped.begin_announce(4) == 3
    assert capped.begin_announce(-2) == 0


def test_tracker_id_is_echoed_in_announces_answers_and_stopped() -> None:
    s = session()
    s.connected(T0)
    assert "trackerid" not in do_announce(s, T0, [])
    s.on_response(T0 + 1, response(tracker_id="tid-1"))
    s.on_response(T0 + 2, response(interval=60))  # absent: the previous one is kept
    assert do_announce(s, T0 + 62, [])["trackerid"] == "tid-1"
    relayed = RelayedOffer(info_hash=IH, peer_id=THEM, offer_id="x" * 20, sdp="v=0\r\n")
    assert json.loads(s.answer(relayed, "v=0\r\nanswer\r\n"))["trackerid"] == "tid-1"
    stopped, _ = s.leave()
    assert stopped is not None and json.loads(stopped)["trackerid"] == "tid-1"


def test_leave_sends_stopped_without_offers_and_releases_pending_ones() -> None:
    s = session()
    s.connected(T0)
    made = offers(3)
    do_announce(s, T0, made)
    stopped, released = s.leave()
    assert stopped is not None
    assert json.loads(stopped) == {
        "numwant": 0,
        "uploaded": 0,
        "downloaded": 0,
        "event": "stopped",
        "action": "announce",
        "info_hash": IH,
        "peer_id": ME,
    }
    assert released == made and s.pending_count == 0
    # Nothing more happens after leaving: no announce, no relays accepted.
    assert not s.announce_due(T0 + 1000) and s.next_announce_at is None
    assert not s.accepts_from(THEM)
    with pytest.raises(LocalProtocolError):
        s.begin_announce(1)
    s.connected(T0 + 2000)
    assert not s.announce_due(T0 + 2000)


def test_leave_before_started_went_out_sends_nothing() -> None:
    s = session()
    s.connected(T0)
    s.begin_announce(1)
    made = offers(1)
    s.announce(T0, made)  # built, never sent
    stopped, released = s.leave()
    assert stopped is None and released == made


def test_completed_carries_no_offers() -> None:
    s = session()
    s.connected(T0)
    do_announce(s, T0, offers(2))
    completed = json.loads(s.completed())
    assert completed["event"] == "completed" and completed["numwant"] == 0
    assert "offers" not in completed and completed["peer_id"] == ME
    assert s.pending_count == 2  # completing does not withdraw the offers already out


# -- interval and min interval ---------------------------------------------------------------


def test_default_interval_counts_from_our_announce() -> None:
    s = session(default_interval=30.0, min_interval=5.0)
    s.connected(T0)
    do_announce(s, T0, [])
    assert s.next_announce_at == T0 + 30
    assert not s.announce_due(T0 + 29.9) and s.announce_due(T0 + 30)
    # Built at T0 + 30 but the send took 3 s: the next one counts from when it went out.
    s.begin_announce(0)
    s.announce(T0 + 30, [])
    s.announce_sent(T0 + 33)
    assert s.next_announce_at == T0 + 63


def test_interval_counts_from_the_latest_response() -> None:
    s = session(default_interval=30.0, min_interval=5.0)
    s.connected(T0)
    do_announce(s, T0, [])
    s.on_response(T0 + 2, response(interval=120))
    assert s.interval == 120 and s.next_announce_at == T0 + 122
    s.on_response(T0 + 50, response(interval=120))  # every response restarts the timer
    assert s.next_announce_at == T0 + 170
    assert not s.announce_due(T0 + 169.9) and s.announce_due(T0 + 170)


def test_min_interval_field_is_used_when_interval_is_missing() -> None:
    s = session(default_interval=30.0, min_interval=5.0)
    s.connected(T0)
    do_announce(s, T0, [])
    s.on_response(T0 + 1, response(min_interval=45))
    assert s.interval == 45 and s.next_announce_at == T0 + 46
    s.on_response(T0 + 2, response(interval=60, min_interval=45))  # interval wins
    assert s.next_announce_at == T0 + 62
    s.on_response(T0 + 3, response(complete=1))  # neither: keep the last one
    assert s.interval == 60 and s.next_announce_at == T0 + 63


def test_our_min_and_max_interval_bound_what_the_tracker_asks() -> None:
    s = session(min_interval=5.0, max_interval=100.0)
    s.connected(T0)
    do_announce(s, T0, [])
    s.on_response(T0, response(interval=1))
    assert s.interval == 1 and s.next_announce_at == T0 + 5
    s.on_response(T0, response(interval=3600))
    assert s.next_announce_at == T0 + 100


def test_a_response_while_offers_are_being_made_does_not_start_another_announce() -> None:
    s = session(default_interval=30.0, min_interval=5.0)
    s.connected(T0)
    do_announce(s, T0, [])
    s.begin_announce(2)  # due at T0 + 30; making offers takes a while
    assert s.next_announce_at is None
    s.on_response(T0 + 31, response(interval=10))
    assert not s.announce_due(T0 + 1000)
    s.announce(T0 + 33, offers(2))
    assert s.next_announce_at == T0 + 43  # the new interval, from this announce


def test_swarm_counts_are_kept_from_responses() -> None:
    s = session()
    s.connected(T0)
    s.on_response(T0, response(complete=2, incomplete=5))
    s.on_response(T0, response(interval=60))
    assert (s.complete, s.incomplete) == (2, 5)


def test_an_announce_that_cannot_be_encoded_leaves_nothing_pending_and_retries_later() -> None:
    s = session(default_interval=30.0)
    s.connected(T0)
    s.begin_announce(2)
    with pytest.raises(LocalProtocolError):
        s.announce(T0, [Offer("v=0\r\n"), Offer("")])  # an empty SDP cannot be sent
    assert s.pending_count == 0
    assert s.next_announce_at == T0 + 30
    assert do_announce(s, T0 + 30, [])["event"] == "started"


def test_disconnect_releases_pending_offers_and_stops_announcing() -> None:
    s = session()
    s.connected(T0)
    made = offers(2)
    do_announce(s, T0, made)
    assert s.disconnected() == made and s.pending_count == 0
    assert s.next_announce_at is None and not s.announce_due(T0 + 10_000)
    with pytest.raises(LocalProtocolError):
        s.begin_announce(1)


# -- offers: ids, expiry, answers ------------------------------------------------------------


def test_offer_ids_are_20_printable_chars_drawn_from_the_given_rng() -> None:
    ids = [new_offer_id(random.Random(3)) for _ in range(2)]
    assert ids[0] == ids[1]  # same seed, same id: the rng is really used
    assert len(ids[0]) == 20 and ids[0].isascii() and ids[0].isalnum()
    assert new_offer_id() != new_offer_id()
    s = session()
    s.connected(T0)
    sent = do_announce(s, T0, offers(5))
    sent_ids = [o["offer_id"] for o in sent["offers"]]
    assert len(set(sent_ids)) == 5


def test_offers_expire_after_offer_timeout() -> None:
    s = session(offer_timeout=50.0)
    s.connected(T0)
    first = offers(2, "first")
    do_announce(s, T0, first)
    second = offers(1, "second")
    do_announce(s, T0 + 30, second)
    assert s.next_expiry_at == T0 + 50
    assert s.expire(T0 + 49.9) == []
    assert s.expire(T0 + 50) == first
    assert s.pending_count == 1 and s.next_expiry_at == T0 + 80
    assert s.expire(T0 + 80) == second
    assert s.next_expiry_at is None and s.expire(T0 + 1000) == []


def test_answers_are_matched_to_their_offer_once() -> None:
    s = session(offer_timeout=50.0)
    s.connected(T0)
    made = offers(3)
    sent = do_announce(s, T0, made)
    ids = [o["offer_id"] for o in sent["offers"]]
    assert s.match_answer(ids[1]) is made[1]
    assert s.match_answer(ids[1]) is None  # already answered
    assert s.match_answer("n" * 20) is None  # not ours
    assert s.expire(T0 + 50) == [made[0], made[2]]  # the answered one never expires
    assert s.match_answer(ids[0]) is None  # too late: it expired


def test_relays_from_our_own_peer_id_are_not_ours_to_handle() -> None:
    s = session()
    assert s.accepts_from(THEM) and not s.accepts_from(ME)


def test_answer_echoes_to_peer_id_and_a_raw_bytes_offer_id() -> None:
    s = session()
    raw_id = "\x01\x9f\xe9" + "".join(chr(c) for c in range(0xE0, 0xF1))
    relayed = RelayedOffer(info_hash=IH, peer_id=THEM, offer_id=raw_id, sdp="v=0\r\no=b\r\n")
    assert json.loads(s.answer(relayed, "v=0\r\nanswer\r\n")) == {
        "action": "announce",
        "info_hash": IH,
        "peer_id": ME,
        "to_peer_id": THEM,
        "answer": {"type": "answer", "sdp": "v=0\r\nanswer\r\n"},
        "offer_id": raw_id,
    }
    with pytest.raises(LocalProtocolError):
        s.answer(relayed, "")


# -- relayed offers waiting for an answer ----------------------------------------------------


def test_offer_queue_answers_in_order_up_to_the_concurrency_limit() -> None:
    q: OfferQueue[str] = OfferQueue(max_queued=10, max_concurrent=2, max_age=50.0)
    for name in "abcde":
        assert q.push(T0, name) == 0
    assert q.take(T0) == (["a", "b"], 0)
    assert q.take(T0) == ([], 0)  # both slots busy
    q.finished()
    assert q.take(T0) == (["c"], 0)
    q.finished()
    q.finished()
    assert q.take(T0) == (["d", "e"], 0)
    assert len(q) == 0 and q.answering == 2


def test_offer_queue_skips_offers_older_than_max_age() -> None:
    q: OfferQueue[str] = OfferQueue(max_queued=10, max_concurrent=1, max_age=50.0)
    q.push(T0, "old")
    q.push(T0 + 10, "newer")
    q.push(T0 + 20, "newest")
    assert q.take(T0 + 50) == (["old"], 0)  # exactly max_age old: still answered
    q.finished()
    assert q.take(T0 + 60.5) == (["newest"], 1)  # "newer" waited 50.5 s: skipped


def test_offer_queue_drops_the_oldest_when_full_and_nothing_after_close() -> None:
    q: OfferQueue[str] = OfferQueue(max_queued=2, max_concurrent=5, max_age=50.0)
    assert q.push(T0, "a") == 0 and q.push(T0, "b") == 0
    assert q.push(T0, "c") == 1
    assert q.take(T0) == (["b", "c"], 0)
    q.push(T0, "d")
    q.close()
    assert len(q) == 0 and q.push(T0, "e") == 0 and q.take(T0) == ([], 0)


# -- reconnect back-off ----------------------------------------------------------------------


def test_back_off_doubles_up_to_the_cap_without_jitter() -> None:
    policy = ReconnectPolicy(base=2.0, cap=20.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in range(6)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert policy.delay(10_000, rng) == 20.0  # huge attempt counts do not overflow


def test_back_off_jitter_is_drawn_from_the_rng_and_stays_in_bounds() -> None:
    policy = ReconnectPolicy(base=2.0, cap=20.0, jitter=0.5)
    delays = [policy.delay(n, random.Random(42)) for n in range(6)]
    u = random.Random(42).random()
    nominal = [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert delays == pytest.approx([d * (1 + 0.5 * u) for d in nominal])
    rng = random.Random(5)
    spread = [policy.delay(9, rng) for _ in range(200)]
    assert all(20.0 <= d < 30.0 for d in spread)
    assert max(spread) - min(spread) > 5.0  # really randomised, not a constant factor


def test_reconnect_counts_attempts_and_resets_on_success() -> None:
    policy = ReconnectPolicy(base=1.0, cap=8.0, jitter=0.0)
    r = Reconnect(policy, random.Random(0))
    assert [r.lost(T0) - T0 for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert r.attempt == 5
    r.connected()
    assert r.attempt == 0 and r.lost(T0 + 100) == T0 + 101


def test_reconnect_deadlines_are_jittered_per_client() -> None:
    policy = ReconnectPolicy(base=2.0, cap=300.0, jitter=0.5)
    a, b = Reconnect(policy, random.Random(1)), Reconnect(policy, random.Random(2))
    first_a, first_b = a.lost(T0), b.lost(T0)
    assert first_a != first_b  # two peers that lost the same tracker do not come back together
    assert T0 + 2.0 <= first_a < T0 + 3.0 and T0 + 2.0 <= first_b < T0 + 3.0
