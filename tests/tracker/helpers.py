"""Test doubles for the swarm side of the tracker client (fixed SDP strings, no WebRTC)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

_counter = itertools.count()


def make_id(prefix: str) -> str:
    """A 20-char ASCII id, unique per call."""
    return (prefix + "-" + str(next(_counter))).ljust(20, "x")[:20]


@dataclass
class FakeOffer:
    """A PendingOffer whose SDP is a fixed string; records the answer it got."""

    sdp: str
    answers: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def accept_answer(self, peer_id: str, sdp: str) -> None:
        self.answers.append((peer_id, sdp))
        self.answered.set()

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeHandler:
    """A SwarmHandler that offers ``name``-tagged SDP and answers every offer."""

    name: str
    wanted: int = 5
    decline: bool = False
    offers: list[FakeOffer] = field(default_factory=list)
    received: list[tuple[str, str]] = field(default_factory=list)
    answers_given: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def offers_wanted(self) -> int:
        return self.wanted

    async def make_offer(self) -> FakeOffer:
        offer = FakeOffer(sdp=f"v=0\r\no=offer-{self.name}-{len(self.offers)}\r\n")
        self.offers.append(offer)
        return offer

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
        self.received.append((peer_id, sdp))
        self.changed.set()
        if self.decline:
            return None
        answer = f"v=0\r\no=answer-{self.name}-to-{sdp.split('o=')[1].strip()}\r\n"
        self.answers_given.append(answer)
        return answer

    def answered_offers(self) -> list[FakeOffer]:
        return [o for o in self.offers if o.answers]
