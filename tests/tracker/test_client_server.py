"""Our TrackerClient against our TrackerServer, and the server against hostile raw sockets.

Everything runs on 127.0.0.1 with real sockets; swarm handlers return fixed SDP strings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import bencode
import pytest
import yarl
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from p2pml_py.tracker import ReconnectPolicy, TrackerClient, TrackerServer
from p2pml_py.tracker.registry import RegistryLimits

from .helpers import FakeHandler, make_id

WAIT = 10.0


def fast_client(urls: list[str], **kwargs: object) -> TrackerClient:
    opts: dict[str, object] = {
        "min_interval": 0.05,
        "reconnect": ReconnectPolicy(base=0.05, cap=0.3, jitter=0.5),
        "connect_timeout": 2.0,
    }
    opts.update(kwargs)
    return TrackerClient(urls, **opts)  # type: ignore[arg-type]


async def until(client: TrackerClient, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        await client.wait_until(predicate)


async def settle(server: TrackerServer, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        await server.wait_until(predicate)


@pytest.fixture
async def server() -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as srv:
        yield srv


async def recv_json(ws: ClientConnection) -> dict[str, object]:
    async with asyncio.timeout(WAIT):
        data = json.loads(await ws.recv())
    assert isinstance(data, dict)
    return data


async def test_two_swarms_share_one_socket_and_answers_match_offers(server: TrackerServer) -> None:
    ih1, ih2 = make_id("swarm-one"), make_id("swarm-two")
    a1, a2, b1, b2 = (make_id(n) for n in ("a1", "a2", "b1", "b2"))
    ha1, ha2, hb1, hb2 = (FakeHandler(n) for n in ("a1", "a2", "b1", "b2"))
    async with fast_client([server.url]) as ca, fast_client([server.url]) as cb:
        await ca.join(ih1, a1, ha1)
        await ca.join(ih2, a2, ha2)
        await until(ca, lambda: ca.stats().responses >= 2)
        await cb.join(ih1, b1, hb1)
        await cb.join(ih2, b2, hb2)
        await until(cb, lambda: bool(hb1.answered_offers()) and bool(hb2.answered_offers()))

        assert server.stats().connections == 2  # one socket per client, both swarms on it
        assert server.stats().swarms == 2 and server.stats().peers == 4
        # Demultiplexed by info hash: each of A's handlers only saw B's peer of its own swarm.
        assert {p for p, _ in ha1.received} == {b1}
        assert {p for p, _ in ha2.received} == {b2}
        for handler, answerer, name in ((hb1, a1, "a1"), (hb2, a2, "a2")):
            for offer in handler.answered_offers():
                ((peer, sdp),) = offer.answers
                assert peer == answerer
                # The answer was made for exactly this offer: matched by offer_id.
                tag = offer.sdp.split("o=")[1].strip()
                assert sdp == f"v=0\r\no=answer-{name}-to-{tag}\r\n"
        state = cb.swarm_state(server.url, ih1)
        assert state is not None and state.incomplete == 2
    # Leaving on close sends "stopped"; the server forgets both clients' peers.
    await settle(server, lambda: server.stats().peers == 0)
    assert ca.stats().stopped_sent == 2


async def test_declined_offer_and_offers_from_several_peers(server: TrackerServer) -> None:
    ih = make_id("swarm-decline")
    seeds = [FakeHandler(f"s{n}", wanted=0, decline=(n == 0)) for n in range(3)]
    newcomer = FakeHandler("new", wanted=5)
    clients = [fast_client([server.url]) for _ in range(4)]
    async with clients[0], clients[1], clients[2], clients[3]:
        for client, handler in zip(clients, seeds, strict=False):
            await client.join(ih, make_id("seed"), handler)
            await until(client, lambda c=client: c.stats().responses >= 1)  # type: ignore[misc]
        await clients[3].join(ih, make_id("new"), newcomer)
        await until(clients[3], lambda: len(newcomer.answered_offers()) == 2)
        # All three seeds got one offer each (5 offers, 3 other peers); one declined.
        await until(clients[0], lambda: clients[0].stats().offers_declined == 1)
        assert [len(h.received) for h in seeds] == [1, 1, 1]
        assert clients[3].stats().answers_received == 2


async def test_leave_releases_offers_and_stops(server: TrackerServer) -> None:
    ih = make_id("swarm-leave")
    handler = FakeHandler("x", wanted=3)
    async with fast_client([server.url]) as client:
        await client.join(ih, make_id("leaver"), handler)
        await until(client, lambda: client.stats().responses >= 1)
        assert server.stats().peers == 1
        assert client.pending_offers(ih) == 3
        await client.leave(ih)
        assert all(o.closed for o in handler.offers)
        assert client.stats().stopped_sent == 1
        await settle(server, lambda: server.stats().peers == 0)
        await client.leave(ih)  # idempotent
    await client.aclose()  # idempotent


async def test_unanswered_offers_expire(server: TrackerServer) -> None:
    handler = FakeHandler("lonely", wanted=2)
    async with fast_client([server.url], offer_timeout=0.2) as client:
        await client.join(make_id("swarm-expire"), make_id("lonely"), handler)
        await until(client, lambda: client.stats().offers_expired >= 2)
        assert all(o.closed for o in handler.offers[:2])
        assert not any(o.answers for o in handler.offers)


async def test_tracker_restart_client_reconnects_and_reannounces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pml_py.tracker.client")
    ih = make_id("swarm-restart")
    ha, hb = FakeHandler("a", wanted=0), FakeHandler("b")
    first = TrackerServer()
    await first.start()
    port = first.port
    try:
        async with fast_client([first.url]) as ca:
            await ca.join(ih, make_id("survivor"), ha)
            await until(ca, lambda: ca.stats().responses >= 1)
            await first.aclose()
            await until(ca, lambda: ca.stats().disconnects >= 1)
            assert not ca.is_connected(first.url)
            async with TrackerServer(port=port) as second:
                # The client comes back on its own and announces its swarm again ...
                await until(ca, lambda: ca.stats().connects >= 2)
                await settle(second, lambda: second.stats().peers == 1)
                # ... so a newcomer on the restarted tracker finds it.
                async with fast_client([second.url]) as cb:
                    await cb.join(ih, make_id("newcomer"), hb)
                    await until(cb, lambda: bool(hb.answered_offers()))
                assert ha.received
    finally:
        await first.aclose()
    # One line when the tracker went away (however many reconnects failed), one when back (and
    # one more when the second tracker closed before the client).
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tracker ")]
    assert len(lines) == 3, lines
    assert " is down: lost" in lines[0] and " is back after " in lines[1], lines


async def test_several_trackers_one_down(server: TrackerServer) -> None:
    # A dead tracker URL must not stop the live one from working.
    dead = "ws://127.0.0.1:9"
    handler = FakeHandler("multi", wanted=1)
    async with fast_client([dead, server.url + "/", server.url]) as client:
        assert client.urls == (dead, server.url)
        await client.join(make_id("swarm-multi"), make_id("multi"), handler)
        await until(client, lambda: client.stats(server.url).responses >= 1)
        await until(client, lambda: client.stats(dead).connect_failures >= 2)
        assert client.stats(dead).announces_sent == 0


async def test_hostile_inputs_are_rejected_and_others_unaffected() -> None:
    ih = make_id("swarm-hostile")
    victim_id = make_id("victim")
    limits = RegistryLimits(max_offers=5)
    async with TrackerServer(limits=limits, max_message_size=64 * 1024) as server:
        victim = FakeHandler("victim", wanted=0)
        async with fast_client([server.url]) as cv:
            await cv.join(ih, victim_id, victim)
            await until(cv, lambda: cv.stats().responses >= 1)

            async with connect(server.url, proxy=None) as ws:
                bad: list[tuple[str | bytes, str]] = [
                    ("{not json", "invalid JSON"),
                    (
                        json.dumps(
                            {"action": "announce", "info_hash": "short", "peer_id": "p" * 20}
                        ),
                        "info_hash",
                    ),
                    (
                        json.dumps({"action": "announce", "info_hash": ih, "peer_id": "p" * 21}),
                        "peer_id",
                    ),
                    (
                        json.dumps(
                            {
                                "action": "announce",
                                "info_hash": ih,
                                "peer_id": "p" * 20,
                                "event": "boom",
                            }
                        ),
                        "event",
                    ),
                    (
                        json.dumps(
                            {
                                "action": "announce",
                                "info_hash": ih,
                                "peer_id": "p" * 20,
                                "offers": [
                                    {"offer": {"type": "offer", "sdp": "x"}, "offer_id": "o" * 20}
                                ]
                                * 6,
                            }
                        ),
                        "too many offers",
                    ),
                    (
                        # peer_id hijack: the victim's id from another socket, carrying an offer
                        json.dumps(
                            {
                                "action": "announce",
                                "info_hash": ih,
                                "peer_id": victim_id,
                                "offers": [
                                    {
                                        "offer": {"type": "offer", "sdp": "evil"},
                                        "offer_id": "o" * 20,
                                    }
                                ],
                            }
                        ),
                        "in use by another connection",
                    ),
                    (
                        json.dumps(
                            {
                                "action": "announce",
                                "info_hash": ih,
                                "peer_id": victim_id,
                                "to_peer_id": victim_id,
                                "offer_id": "o" * 20,
                                "answer": {"type": "answer", "sdp": "evil"},
                            }
                        ),
                        "in use by another connection",
                    ),
                    (b"\xff binary frame", "not UTF-8"),
                ]
                for text, needle in bad:
                    await ws.send(text)
                    reply = await recv_json(ws)
                    assert needle in str(reply["failure reason"]), (text, reply)
                # The same socket can still announce validly afterwards.
                await ws.send(
                    json.dumps({"action": "announce", "info_hash": ih, "peer_id": "p" * 20})
                )
                reply = await recv_json(ws)
                assert reply["incomplete"] == 2 and reply["interval"] == 120

            assert server.stats().rejects == len(bad)
            # Oversized message: the connection is closed (1009), the server keeps serving.
            async with connect(server.url, proxy=None, max_size=None) as ws:
                await ws.send("x" * (64 * 1024 + 1))
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), WAIT)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009

            # The victim never saw the hijacker's offer and still takes part in the swarm.
            newcomer = FakeHandler("newcomer", wanted=1)
            async with fast_client([server.url]) as cn:
                await cn.join(ih, make_id("newcomer"), newcomer)
                await until(cn, lambda: bool(newcomer.answered_offers()))
            assert [sdp for _, sdp in victim.received] == [newcomer.offers[0].sdp]
            assert cv.stats().failures == 0 and cv.stats().invalid_messages == 0


async def test_closed_and_silent_peers_are_forgotten() -> None:
    async with TrackerServer(interval=1, expire_every=0.1) as server:
        ih = make_id("swarm-silent")
        async with connect(server.url, proxy=None) as ws:
            await ws.send(json.dumps({"action": "announce", "info_hash": ih, "peer_id": "s" * 20}))
            await recv_json(ws)
            async with connect(server.url, proxy=None) as ws2:
                await ws2.send(
                    json.dumps({"action": "announce", "info_hash": ih, "peer_id": "t" * 20})
                )
                await recv_json(ws2)
                assert server.stats().peers == 2
            await settle(server, lambda: server.stats().peers == 1)  # socket closed -> forgotten
            # The remaining socket stays open but silent for more than 2 x interval.
            await settle(server, lambda: server.stats().peers == 0)
            assert server.stats().peers_expired == 1


async def test_http_announce_and_scrape(server: TrackerServer) -> None:
    ih = bytes(range(200, 220))  # non-ASCII info hash, %-escaped as BitTorrent clients do
    base = f"http://127.0.0.1:{server.port}"

    def q(raw: bytes) -> str:
        return "".join(f"%{b:02X}" for b in raw)

    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> dict[bytes, object]:
            async with session.get(yarl.URL(base + path, encoded=True)) as resp:
                assert resp.status == 200
                decoded = bencode.Bencode(encoding=None).decode(await resp.read())
            assert isinstance(decoded, dict)
            return decoded

        first = await get(
            f"/announce?info_hash={q(ih)}&peer_id={q(b'A' * 20)}&port=6881&left=0&compact=1"
        )
        assert first == {b"complete": 1, b"incomplete": 0, b"interval": 120, b"peers": b""}
        second = await get(
            f"/announce?info_hash={q(ih)}&peer_id={q(b'B' * 20)}&port=6882&event=started"
        )
        assert second[b"complete"] == 1 and second[b"incomplete"] == 1
        assert second[b"peers"] == [{b"peer id": b"A" * 20, b"ip": b"127.0.0.1", b"port": 6881}]
        compact = await get(
            f"/announce?info_hash={q(ih)}&peer_id={q(b'B' * 20)}&port=6882&compact=1"
        )
        assert compact[b"peers"] == bytes([127, 0, 0, 1]) + (6881).to_bytes(2, "big")

        scrape = await get(f"/scrape?info_hash={q(ih)}")
        assert scrape == {
            b"files": {ih: {b"complete": 1, b"incomplete": 1, b"downloaded": 0}},
            b"flags": {b"min_request_interval": 120},
        }

        for bad in (
            f"/announce?info_hash={q(ih[:19])}&peer_id={q(b'C' * 20)}&port=1",
            f"/announce?info_hash={q(ih)}&peer_id={q(b'C' * 20)}",
            f"/announce?info_hash={q(ih)}&peer_id={q(b'C' * 20)}&port=99999",
            f"/announce?info_hash={q(ih)}&peer_id={q(b'C' * 20)}&port=1&event=bogus",
            "/scrape?info_hash=short",
        ):
            reply = await get(bad)
            assert b"failure reason" in reply, bad
        async with session.get(base + "/elsewhere") as resp:
            assert resp.status == 404
        # A bare scrape would list every site's info hashes: refused unless asked for.
        assert await get("/scrape") == {
            b"failure reason": b"full scrape is disabled: name the info hashes"
        }


async def test_full_scrape_only_when_enabled() -> None:
    ih = make_id("h")
    for full_scrape in (True, False):
        async with (
            TrackerServer(full_scrape=full_scrape) as server,
            TrackerClient([server.url]) as client,
            aiohttp.ClientSession() as session,
        ):
            await client.join(ih, make_id("p"), FakeHandler("p", wanted=0))
            await settle(server, lambda s=server: s.stats().peers == 1)
            async with session.get(f"http://127.0.0.1:{server.port}/scrape") as resp:
                body = bencode.Bencode(encoding=None).decode(await resp.read())
            if full_scrape:
                assert list(body[b"files"]) == [ih.encode("latin-1")], body
            else:
                assert b"files" not in body and b"failure reason" in body, body


async def test_run_tracker_logs_its_url_and_stops_on_cancel() -> None:
    from p2pml_py.tracker import run_tracker

    found: asyncio.Queue[str] = asyncio.Queue()

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = re.search(r"ws://127\.0\.0\.1:\d+", record.getMessage())
            if match:
                found.put_nowait(match.group(0))

    log = logging.getLogger("p2pml_py.tracker.server")
    grab = Grab()
    log.addHandler(grab)
    old_level = log.level
    log.setLevel(logging.INFO)
    task = asyncio.create_task(run_tracker("127.0.0.1", 0))
    try:
        async with asyncio.timeout(WAIT):
            url = await found.get()
        handler = FakeHandler("cli", wanted=0)
        async with fast_client([url]) as client:
            await client.join(make_id("swarm-cli"), make_id("cli"), handler)
            await until(client, lambda: client.stats().responses >= 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(client, lambda: client.stats().disconnects >= 1)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    finally:
        task.cancel()
        log.removeHandler(grab)
        log.setLevel(old_level)
