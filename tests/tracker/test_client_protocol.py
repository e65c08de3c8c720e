"""TrackerClient's exact wire behaviour, checked against a scripted tracker on 127.0.0.1.

The scripted tracker is a bare ``websockets`` server: the test reads what the client sent and
writes whatever tracker messages it wants, including invalid ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from p2pml_py.tracker import ReconnectPolicy, TrackerClient

from .helpers import FakeHandler

WAIT = 10.0
IH = "-info-hash-01234567-"
ME = "-PM0203-pythonpeer01"
THEM = "-PM0203-browserpeer1"
# 20 random bytes as a browser sends them (chars U+0000..U+00FF).
BROWSER_OFFER_ID = "\x01\x9f\xe9" + "".join(chr(c) for c in range(0xE0, 0xF1))


@dataclass
class ScriptedTracker:
    url: str = ""
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sockets: list[ServerConnection] = field(default_factory=list)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self.inbox.get()

    async def send(self, obj: object) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        await self.sockets[-1].send(text)


@pytest.fixture
async def tracker() -> AsyncIterator[ScriptedTracker]:
    scripted = ScriptedTracker()

    async def handler(ws: ServerConnection) -> None:
        scripted.sockets.append(ws)
        async for text in ws:
            scripted.inbox.put_nowait(json.loads(text))

    async with serve(handler, "127.0.0.1", 0) as server:
        scripted.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        yield scripted


def client_for(tracker: ScriptedTracker, **kwargs: object) -> TrackerClient:
    opts: dict[str, object] = {
        "min_interval": 0.05,
        "reconnect": ReconnectPolicy(base=0.05, cap=0.2),
    }
    opts.update(kwargs)
    return TrackerClient([tracker.url], **opts)  # type: ignore[arg-type]


async def until(client: TrackerClient, predicate: object) -> None:
    async with asyncio.timeout(WAIT):
        await client.wait_until(predicate)  # type: ignore[arg-type]


async def test_announce_shape_reannounce_and_relays(tracker: ScriptedTracker) -> None:
    handler = FakeHandler("py", wanted=2)
    async with client_for(tracker, max_interval=0.2) as client:
        await client.join(IH, ME, handler)
        first = await tracker.next()
        # SPEC a.2: started, numwant = offers count, counters 0, no "left", fresh offers.
        assert {k: v for k, v in first.items() if k != "offers"} == {
            "numwant": 2,
            "uploaded": 0,
            "downloaded": 0,
            "event": "started",
            "action": "announce",
            "info_hash": IH,
            "peer_id": ME,
        }
        offers = first["offers"]
        assert isinstance(offers, list) and len(offers) == 2
        first_ids = [o["offer_id"] for o in offers]
        for offer, made in zip(offers, handler.offers, strict=True):
            assert offer["offer"] == {"type": "offer", "sdp": made.sdp}
            assert len(offer["offer_id"]) == 20 and offer["offer_id"].isascii()

        await tracker.send(
            {"complete": 0, "incomplete": 1, "action": "announce", "info_hash": IH, "interval": 120}
        )
        second = await tracker.next()  # max_interval caps the tracker's 120 s
        assert "event" not in second and second["numwant"] == 2
        second_ids = [o["offer_id"] for o in second["offers"]]
        assert not set(first_ids) & set(second_ids)

        # Noise the client must survive and count, never act on.
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": ME,
                "offer_id": "x" * 20,
                "offer": {"type": "offer", "sdp": "own"},
            }
        )
        await tracker.send(
            {
                "action": "announce",
                "info_hash": "-some-other-swarm---",
                "peer_id": THEM,
                "offer_id": "x" * 20,
                "offer": {"type": "offer", "sdp": "x"},
            }
        )
        await tracker.send("{broken")
        await tracker.send({"action": "announce", "info_hash": IH[:19], "complete": 1})
        await tracker.send({"failure reason": "invalid peer_id"})
        await tracker.send(
            {"action": "announce", "info_hash": IH, "warning message": "be nice", "interval": 120}
        )
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": THEM,
                "offer_id": "n" * 20,
                "answer": {"type": "answer", "sdp": "late"},
            }
        )
        await until(client, lambda: client.stats().answers_unmatched == 1)
        stats = client.stats()
        assert (stats.invalid_messages, stats.failures, stats.warnings) == (2, 1, 1)
        assert stats.offers_received == 0 and handler.received == []

        # A relayed answer for one of our pending offers goes to that offer only.
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": THEM,
                "offer_id": second_ids[1],
                "answer": {"type": "answer", "sdp": "v=0\r\nanswer\r\n"},
            }
        )
        await until(client, lambda: bool(handler.answered_offers()))
        assert handler.answered_offers() == [handler.offers[3]]
        assert handler.offers[3].answers == [(THEM, "v=0\r\nanswer\r\n")]

        # A relayed offer with a raw-bytes offer_id: our answer echoes it exactly.
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": THEM,
                "offer_id": BROWSER_OFFER_ID,
                "offer": {"type": "offer", "sdp": "v=0\r\no=browser\r\n"},
            }
        )
        while True:
            reply = await tracker.next()
            if "answer" in reply:
                break
        assert reply == {
            "action": "announce",
            "info_hash": IH,
            "peer_id": ME,
            "to_peer_id": THEM,
            "answer": {"type": "answer", "sdp": "v=0\r\no=answer-py-to-browser\r\n"},
            "offer_id": BROWSER_OFFER_ID,
        }
        assert handler.received == [(THEM, "v=0\r\no=browser\r\n")]

        await client.leave(IH)
        while True:
            stopped = await tracker.next()
            if stopped.get("event") == "stopped":
                break
        assert "offers" not in stopped and stopped["peer_id"] == ME
        # Offers still pending when we left were released.
        unanswered = [o for o in handler.offers if not o.answers]
        assert unanswered and all(o.closed for o in unanswered)


async def test_tracker_interval_is_followed(tracker: ScriptedTracker) -> None:
    handler = FakeHandler("py", wanted=0)
    async with client_for(tracker, default_interval=60) as client:
        await client.join(IH, ME, handler)
        first = await tracker.next()
        assert first["offers"] == [] and first["numwant"] == 0
        loop = asyncio.get_running_loop()
        await tracker.send({"action": "announce", "info_hash": IH, "interval": 1})
        sent_at = loop.time()
        await tracker.next()
        elapsed = loop.time() - sent_at
        assert 0.8 < elapsed < 5.0  # 1 s from the response, not the 60 s default
        state = client.swarm_state(tracker.url, IH)
        assert state is not None and state.interval == 1


async def test_drop_releases_offers_then_reconnect_reannounces(tracker: ScriptedTracker) -> None:
    handler = FakeHandler("py", wanted=1)
    async with client_for(tracker) as client:
        await client.join(IH, ME, handler)
        first = await tracker.next()
        assert first["event"] == "started"
        await tracker.sockets[-1].close()
        again = await tracker.next()
        # Same tracker session continues: no second "started" (upstream re-announces without it).
        assert "event" not in again and len(tracker.sockets) == 2
        assert handler.offers[0].closed
        assert client.stats().connects == 2 and client.stats().disconnects == 1


async def test_handler_errors_are_contained(tracker: ScriptedTracker) -> None:
    class Broken(FakeHandler):
        async def make_offer(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no WebRTC today")

        async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
            raise RuntimeError("cannot answer")

    async with client_for(tracker) as client:
        await client.join(IH, ME, Broken("broken", wanted=3))
        first = await tracker.next()
        assert first["offers"] == [] and first["numwant"] == 0
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": THEM,
                "offer_id": "z" * 20,
                "offer": {"type": "offer", "sdp": "x"},
            }
        )
        await until(client, lambda: client.stats().handler_errors == 1)
        assert client.stats().offer_errors == 3
        assert client.is_connected(tracker.url)


async def send_offers(tracker: ScriptedTracker, tag: str, count: int) -> None:
    """``count`` relayed offers from peers ``-PM0203-<tag>NNNNNNN``, offer ids 0, 1, ..."""
    for n in range(count):
        await tracker.send(
            {
                "action": "announce",
                "info_hash": IH,
                "peer_id": f"-PM0203-{tag}{n:07d}",
                "offer_id": f"{n:020d}",
                "offer": {"type": "offer", "sdp": f"v=0\r\no={tag}-{n}\r\n"},
            }
        )


class SlowHandler(FakeHandler):
    """Answers every offer, but only as fast as the test lets it: the concurrency is recorded."""

    def __init__(self) -> None:
        super().__init__("slow", wanted=0)
        self.running = 0
        self.most = 0
        self.gate = asyncio.Semaphore(0)
        self.entered = asyncio.Event()  # set whenever a call enters the handler

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.entered.set()
        try:
            await self.gate.acquire()
            return await super().handle_offer(peer_id, sdp)
        finally:
            self.running -= 1


async def test_an_offer_burst_is_answered_in_order_none_dropped(tracker: ScriptedTracker) -> None:
    """300 offers arrive at once (peers joining in a burst): every one is answered, oldest
    first, with at most max_concurrent_answers in the handler at a time."""
    handler = SlowHandler()
    async with client_for(tracker, max_concurrent_answers=4) as client:
        await client.join(IH, ME, handler)
        await tracker.next()
        await send_offers(tracker, "burst", 300)
        await until(client, lambda: client.stats().offers_received == 300)
        # The calls the client started enter the handler on their first step, which may come
        # after the last offer was counted: wait for them, not for a number of loop turns.
        async with asyncio.timeout(WAIT):
            while handler.running < 4:
                handler.entered.clear()
                await handler.entered.wait()
        for _ in range(20):
            await asyncio.sleep(0)
        assert handler.running == 4  # the rest wait in the queue, not in tasks
        handler.gate.release()
        for _ in range(299):
            handler.gate.release()
        answers = [await tracker.next() for _ in range(300)]
        assert [a["offer_id"] for a in answers] == [f"{n:020d}" for n in range(300)]
        assert [peer for peer, _ in handler.received] == [
            f"-PM0203-burst{n:07d}" for n in range(300)
        ]
        assert handler.most == 4
        assert client.stats().offers_skipped == 0


async def test_offers_that_waited_past_offer_timeout_are_skipped(tracker: ScriptedTracker) -> None:
    handler = SlowHandler()
    now = [1000.0]
    client = client_for(tracker, max_concurrent_answers=1, offer_timeout=50.0, clock=lambda: now[0])
    async with client:
        await client.join(IH, ME, handler)
        await tracker.next()
        await send_offers(tracker, "stale", 3)
        await until(client, lambda: client.stats().offers_received == 3)
        now[0] += 50.5  # the two queued offers are now older than offer_timeout
        handler.gate.release()
        answer = await tracker.next()
        assert answer["offer_id"] == f"{0:020d}"
        await until(client, lambda: client.stats().offers_skipped == 2)
        assert len(handler.received) == 1


class StubbornHandler(FakeHandler):
    """Answers no offer; a cancelled ``handle_offer`` keeps running until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__("stubborn", wanted=0)
        self.entered = 0
        self.cancelled = 0
        self.release = asyncio.Event()
        self.progress = asyncio.Condition()

    async def _count(self, attr: str) -> None:
        async with self.progress:
            setattr(self, attr, getattr(self, attr) + 1)
            self.progress.notify_all()

    async def reached(self, attr: str, value: int) -> None:
        async with asyncio.timeout(WAIT), self.progress:
            await self.progress.wait_for(lambda: getattr(self, attr) >= value)

    async def handle_offer(self, peer_id: str, sdp: str) -> str | None:
        await self._count("entered")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self._count("cancelled")
            while not self.release.is_set():
                try:
                    await self.release.wait()
                except asyncio.CancelledError:
                    pass
            raise
        return None


async def test_cancelling_aclose_propagates_to_its_caller(tracker: ScriptedTracker) -> None:
    """aclose() waits for the swarm's handler calls to finish; if its caller is cancelled
    meanwhile, the caller gets the CancelledError at once -- it is not swallowed while aclose
    goes on waiting for the next stubborn task."""
    handler = StubbornHandler()
    client = client_for(tracker)
    await client.__aenter__()
    await client.join(IH, ME, handler)
    await tracker.next()
    await send_offers(tracker, "stubb", 2)
    await handler.reached("entered", 2)

    closer = asyncio.create_task(client.aclose())
    try:
        await handler.reached("cancelled", 2)  # aclose cancelled both and now waits for them
        closer.cancel()
        await asyncio.wait([closer], timeout=WAIT)
        assert closer.done() and closer.cancelled()
    finally:
        handler.release.set()
    await client.aclose()  # finishes the job the cancelled call left
    assert not client.is_connected(tracker.url)
