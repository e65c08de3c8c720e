"""The embedded tracker's swarm logic, driven without sockets (conns are plain strings)."""

from __future__ import annotations

import random

import pytest

from p2pml_py.base.errors import TrackerProtocolError
from p2pml_py.tracker.messages import (
    Announce,
    AnnounceResponse,
    AnswerRelay,
    Offer,
    RelayedAnswer,
    RelayedOffer,
    ScrapeFile,
    ScrapeRequest,
)
from p2pml_py.tracker.registry import RegistryLimits, SwarmRegistry

IH = "i" * 20
IH2 = "j" * 20


def pid(n: int) -> str:
    return f"-PM0203-{n:012d}"


def offers(n: int, tag: str = "o") -> tuple[Offer, ...]:
    return tuple(Offer(f"{tag}{k}".ljust(20, "_"), f"sdp-{tag}-{k}") for k in range(n))


def test_first_announce_gets_counts_and_interval() -> None:
    reg = SwarmRegistry(interval=20)
    out = reg.announce("c1", Announce(IH, pid(1), offers(5), "started", 5, 0, 0), now=0)
    assert [(o.conn, o.message) for o in out] == [
        ("c1", AnnounceResponse(IH, complete=0, incomplete=1, interval=20))
    ]
    assert reg.swarm_count == 1 and reg.peer_count == 1


def test_offers_go_to_distinct_random_other_peers_never_back() -> None:
    reg = SwarmRegistry(rng=random.Random(7))
    for n in range(1, 5):
        reg.announce(f"c{n}", Announce(IH, pid(n), event="started"), now=0)
    out = reg.announce("c9", Announce(IH, pid(9), offers(5), "started"), now=0)
    assert out[0].conn == "c9" and isinstance(out[0].message, AnnounceResponse)
    assert out[0].message.incomplete == 5
    relayed = out[1:]
    # 4 other peers, 5 offers: each other peer gets exactly one, the k-th offer in order.
    assert sorted(str(o.conn) for o in relayed) == ["c1", "c2", "c3", "c4"]
    for k, item in enumerate(relayed):
        assert item.message == RelayedOffer(IH, pid(9), offers(5)[k].offer_id, f"sdp-o-{k}")
    assert reg.offers_relayed == 4


def test_answer_is_forwarded_only_to_its_target() -> None:
    reg = SwarmRegistry()
    reg.announce("a", Announce(IH, pid(1)), now=0)
    reg.announce("b", Announce(IH, pid(2)), now=0)
    out = reg.answer("b", AnswerRelay(IH, pid(2), pid(1), "x" * 20, "answer-sdp"), now=1)
    assert [(o.conn, o.message) for o in out] == [
        ("a", RelayedAnswer(IH, pid(2), "x" * 20, "answer-sdp"))
    ]
    # to an unknown peer: dropped silently (bittorrent-tracker only warns server-side)
    assert reg.answer("b", AnswerRelay(IH, pid(2), pid(3), "x" * 20, "s"), now=1) == []
    assert reg.answers_undeliverable == 1


def test_peer_id_bound_to_first_connection() -> None:
    reg = SwarmRegistry()
    reg.announce("owner", Announce(IH, pid(1)), now=0)
    reg.announce("b", Announce(IH, pid(2)), now=0)
    with pytest.raises(TrackerProtocolError, match="in use"):
        reg.announce("thief", Announce(IH, pid(1), offers(1)), now=1)
    with pytest.raises(TrackerProtocolError, match="in use"):
        reg.answer("thief", AnswerRelay(IH, pid(1), pid(2), "x" * 20, "s"), now=1)
    with pytest.raises(TrackerProtocolError, match="in use"):
        reg.announce("thief", Announce(IH, pid(1), event="stopped"), now=1)
    assert reg.peers_of(IH) == {pid(1), pid(2)}
    # Same peer id in another swarm is a different binding (one peer id per swarm is PML's rule,
    # but the tracker only protects what was claimed).
    reg.announce("thief", Announce(IH2, pid(1)), now=1)
    # Once the owner's socket closes, the id is free again.
    reg.disconnect("owner")
    reg.announce("new", Announce(IH, pid(1)), now=2)
    assert reg.peers_of(IH) == {pid(1), pid(2)}


def test_answer_from_non_member_is_refused() -> None:
    reg = SwarmRegistry()
    reg.announce("a", Announce(IH, pid(1)), now=0)
    with pytest.raises(TrackerProtocolError, match="not announced"):
        reg.answer("z", AnswerRelay(IH, pid(5), pid(1), "x" * 20, "s"), now=0)
    with pytest.raises(TrackerProtocolError, match="no swarm"):
        reg.answer("z", AnswerRelay(IH2, pid(5), pid(1), "x" * 20, "s"), now=0)


def test_stopped_disconnect_and_expiry_forget_peers() -> None:
    reg = SwarmRegistry(interval=10)
    reg.announce("a", Announce(IH, pid(1)), now=0)
    reg.announce("b", Announce(IH, pid(2)), now=0)
    reg.announce("b", Announce(IH2, pid(3)), now=0)
    out = reg.announce("a", Announce(IH, pid(1), event="stopped"), now=1)
    assert out[0].message == AnnounceResponse(IH, complete=0, incomplete=1, interval=10)
    reg.disconnect("b")
    assert reg.swarm_count == 0 and reg.peer_count == 0
    reg.announce("c", Announce(IH, pid(4)), now=0)
    reg.announce("d", Announce(IH, pid(5)), now=15)
    assert reg.expire(now=20) == 0  # silent for exactly 2 x interval: kept
    assert reg.expire(now=20.5) == 1
    assert reg.peers_of(IH) == {pid(5)}


def test_limits() -> None:
    reg = SwarmRegistry(
        limits=RegistryLimits(
            max_swarms=2, max_peers_per_swarm=2, max_swarms_per_conn=2, max_offers=3
        )
    )
    reg.announce("a", Announce(IH, pid(1)), now=0)
    reg.announce("b", Announce(IH, pid(2)), now=0)
    with pytest.raises(TrackerProtocolError, match="swarm is full"):
        reg.announce("c", Announce(IH, pid(3)), now=0)
    reg.announce("a", Announce(IH2, pid(1)), now=0)
    with pytest.raises(TrackerProtocolError, match="too many swarms"):
        reg.announce("a", Announce("k" * 20, pid(1)), now=0)
    with pytest.raises(TrackerProtocolError, match="tracker is full"):
        reg.announce("c", Announce("k" * 20, pid(1)), now=0)
    with pytest.raises(TrackerProtocolError, match="too many offers"):
        reg.announce("a", Announce(IH, pid(1), offers(4)), now=0)
    with pytest.raises(TrackerProtocolError, match="already has a peer id"):
        reg.announce("a", Announce(IH2, pid(7)), now=0)
    assert reg.peer_count == 3


def test_scrape_counts_and_completed() -> None:
    reg = SwarmRegistry(interval=10)
    reg.announce("a", Announce(IH, pid(1)), now=0)
    reg.announce("b", Announce(IH, pid(2), left=0), now=0)
    reg.announce("a", Announce(IH, pid(1), event="completed"), now=0)
    # downloaded counts completions seen by the tracker; pid(2) joined as a seeder.
    assert reg.scrape(ScrapeRequest((IH, IH2))).files == (
        ScrapeFile(IH, 2, 0, 1),
        ScrapeFile(IH2, 0, 0, 0),
    )
    # A full scrape (no info hash named) lists every swarm: refused unless enabled.
    with pytest.raises(TrackerProtocolError, match="full scrape is disabled"):
        reg.scrape(ScrapeRequest())
    reg.full_scrape = True
    assert reg.scrape(ScrapeRequest()).files == (ScrapeFile(IH, 2, 0, 1),)


def test_http_peers_are_listed_to_http_peers_and_never_get_offers() -> None:
    reg = SwarmRegistry()
    reg.http_announce(IH, pid(1), "10.0.0.1", 6881, event="started", left=5, numwant=50, now=0)
    complete, incomplete, peers = reg.http_announce(
        IH, pid(2), "10.0.0.2", 6882, event=None, left=0, numwant=50, now=0
    )
    assert (complete, incomplete) == (1, 1)
    assert [(p.peer_id, p.ip, p.port) for p in peers] == [(pid(1), "10.0.0.1", 6881)]
    out = reg.announce("ws", Announce(IH, pid(3), offers(5)), now=0)
    assert len(out) == 1  # only the response: no WebSocket peer to relay to
    with pytest.raises(TrackerProtocolError, match="in use"):
        reg.http_announce(IH, pid(3), "10.0.0.3", 1, event=None, left=None, numwant=5, now=0)
