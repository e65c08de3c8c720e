"""Interop with the real npm ``bittorrent-tracker`` 11.2.3 (the tracker code browsers run).

(a) our TrackerClient against the real bittorrent-tracker ``Server`` (``interop/node/tracker-server.mjs``);
(b) the real bittorrent-tracker ``Client`` (``interop/node/tracker-client.mjs``) against our
    TrackerServer. Node has no WebRTC here (``webrtc-polyfill``'s native backend needs a prebuilt
    binary that cannot be downloaded), so that script replaces ``webrtc-polyfill`` by
    ``interop/node/stub-webrtc.mjs``: simple-peer and WebSocketTracker run unchanged and really
    create, send, receive and match offers/answers; only the SDP text is fixed and no
    connection is made.

The node modules are installed from ``interop/package-lock.json`` when missing
(``npm ci --ignore-scripts``); these tests fail, not skip, when node or the modules are missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pml_py.tracker import ReconnectPolicy, TrackerClient, TrackerServer
from tests.nodejs import WAIT, NodeScript

from .helpers import FakeHandler, make_id


def fast_client(url: str, **kwargs: Any) -> TrackerClient:
    return TrackerClient(
        [url], min_interval=0.05, reconnect=ReconnectPolicy(base=0.05, cap=0.3), **kwargs
    )


async def until(client: TrackerClient, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        await client.wait_until(predicate)


async def test_our_clients_meet_through_real_bittorrent_tracker_server(node_modules: Path) -> None:
    async with NodeScript.run("tracker-server.mjs") as server:
        port = (await server.expect(lambda e: "port" in e))["port"]
        url = f"ws://127.0.0.1:{port}"
        ih = make_id("interop-a")
        a_id, b_id = make_id("py-a"), make_id("py-b")
        ha, hb = FakeHandler("a", wanted=0), FakeHandler("b", wanted=3)
        async with fast_client(url) as ca, fast_client(url) as cb:
            await ca.join(ih, a_id, ha)
            await until(ca, lambda: ca.stats().responses >= 1)
            started = await server.expect(lambda e: e.get("event") == "start")
            assert bytes.fromhex(started["peer_id_hex"]).decode("latin-1") == a_id
            await cb.join(ih, b_id, hb)
            await until(cb, lambda: bool(hb.answered_offers()))

            # The real tracker relayed one of B's offers to A and A's answer back to B.
            assert [peer for peer, _ in ha.received] == [b_id]
            ((offer,),) = [hb.answered_offers()]
            assert ha.received[0][1] == offer.sdp
            assert offer.answers == [
                (a_id, f"v=0\r\no=answer-a-to-{offer.sdp.split('o=')[1].strip()}\r\n")
            ]
            state = cb.swarm_state(url, ih)
            # server.js: WebSocket interval = ceil(10 min / 5) = 120 s; no "left" => incomplete.
            assert state is not None and (state.complete, state.incomplete, state.interval) == (
                0,
                2,
                120,
            )
            assert ca.stats().invalid_messages == cb.stats().invalid_messages == 0
            assert ca.stats().failures == cb.stats().failures == 0

            await cb.leave(ih)
            stopped = await server.expect(lambda e: e.get("event") == "stop")
            assert bytes.fromhex(stopped["peer_id_hex"]).decode("latin-1") == b_id
        assert not [e for e in server.events if e.get("event") in ("warning", "error")]


async def test_real_bittorrent_tracker_client_against_our_server(node_modules: Path) -> None:
    async with TrackerServer() as server:
        ih = make_id("interop-b")
        seeder_id, node_id, late_id = make_id("py-seed"), "-PM0203-nodeclient01", make_id("py-late")
        seeder = FakeHandler("seed", wanted=0)
        async with fast_client(server.url) as cs:
            await cs.join(ih, seeder_id, seeder)
            await until(cs, lambda: cs.stats().responses >= 1)
            args = json.dumps(
                {"announce": server.url, "infoHash": ih, "peerId": node_id, "numwant": 5}
            )
            async with NodeScript.run("tracker-client.mjs", args) as node:
                update = await node.expect(lambda e: e.get("event") == "update")
                assert (update["complete"], update["incomplete"], update["interval"]) == (0, 2, 120)
                assert bytes.fromhex(update["info_hash_hex"]).decode("latin-1") == ih

                # The node client's offer (made by simple-peer) reached our seeder ...
                await until(cs, lambda: cs.stats().answers_sent >= 1)
                assert seeder.received[0][0] == node_id
                assert "o=node-stub-offer" in seeder.received[0][1]
                # ... and our answer was matched by offer_id to the right simple-peer instance.
                peer = await node.expect(lambda e: e.get("event") == "peer" and e["initiator"])
                assert peer["peer_id"] == seeder_id
                remote = await node.expect(lambda e: e.get("event") == "remote_description")
                assert remote["type"] == "answer"
                assert remote["sdp"] == seeder.answers_given[0]

                # A Python peer that offers: the node client answers through our tracker.
                late = FakeHandler("late", wanted=2)
                async with fast_client(server.url) as cl:
                    await cl.join(ih, late_id, late)
                    await until(cl, lambda: len(late.answered_offers()) == 2)
                    by_peer = {o.answers[0][0]: o for o in late.answered_offers()}
                    assert set(by_peer) == {node_id, seeder_id}
                    node_answer = by_peer[node_id].answers[0][1]
                    # stub-webrtc.mjs answers name the offer they answer: matched exactly.
                    assert (
                        f"a=x-answer-to:{by_peer[node_id].sdp.split(chr(13) + chr(10))[1]}"
                        in node_answer
                    )
                    offered = await node.expect(
                        lambda e: e.get("event") == "peer" and not e["initiator"]
                    )
                    assert offered["peer_id"] == late_id

                    await node.command("scrape")
                    scrape = await node.expect(lambda e: e.get("event") == "scrape")
                    assert (scrape["complete"], scrape["incomplete"]) == (0, 3)
                    assert bytes.fromhex(scrape["info_hash_hex"]).decode("latin-1") == ih

                await node.command("stop")
                async with asyncio.timeout(WAIT):
                    await server.wait_until(lambda: server.stats().peers == 1)
                assert server.stats().rejects == 0
                assert not [e for e in node.events if e.get("event") in ("warning", "error")]
