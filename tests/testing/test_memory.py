"""The in-memory transport keeps the real data-channel link's promises (``rtc/aiortc_backend``).

No time passes in these tests: delivery rides on ``call_soon``, so letting the ready callbacks
run (:func:`settle`) is all a step needs.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from p2pml_py.base.errors import (
    LinkClosedError,
    LocalProtocolError,
    RtcError,
    RtcSdpError,
    RtcTimeoutError,
)
from p2pml_py.rtc.config import RtcConfig
from p2pml_py.testing.memory import MemoryLink, MemoryNetwork, MemoryTransport, memory_pair


async def settle(rounds: int = 5) -> None:
    """Run every callback and task that is ready, a few rounds deep (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def recorder(link: MemoryLink) -> list[bytes]:
    got: list[bytes] = []
    link.set_receiver(got.append)
    return got


# -- signalling ---------------------------------------------------------------------------------


async def test_offer_answer_connects_both_ends() -> None:
    network = MemoryNetwork()
    alice, bob = MemoryTransport(network), MemoryTransport(network)
    offer = await alice.create_offer()
    answer = await bob.accept_offer(offer.sdp)
    assert offer.sdp != answer.sdp
    ours = await offer.accept_answer(answer.sdp)
    theirs = await answer.wait_link()
    assert ours.remote is theirs and theirs.remote is ours
    assert ours.label == theirs.label == offer.label
    assert re.fullmatch(r"[0-9a-f]{40}", ours.label)
    assert network.pairs == [(ours, theirs)]
    assert not ours.closed and not theirs.closed


@pytest.mark.parametrize("sdp", ["", "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel"])
async def test_garbage_offer_is_an_sdp_error(sdp: str) -> None:
    with pytest.raises(RtcSdpError):
        await MemoryTransport(MemoryNetwork()).accept_offer(sdp)


async def test_an_offer_of_another_network_is_an_sdp_error() -> None:
    offer = await MemoryTransport(MemoryNetwork()).create_offer()
    with pytest.raises(RtcSdpError):
        await MemoryTransport(MemoryNetwork()).accept_offer(offer.sdp)


async def test_a_bad_answer_is_an_sdp_error_and_closes_the_offer() -> None:
    network = MemoryNetwork()
    alice, bob = MemoryTransport(network), MemoryTransport(network)
    offer = await alice.create_offer()
    other = await alice.create_offer()
    answer_to_other = await bob.accept_offer(other.sdp)
    with pytest.raises(RtcSdpError):
        await offer.accept_answer(answer_to_other.sdp)
    with pytest.raises(LocalProtocolError):
        await offer.accept_answer(answer_to_other.sdp)  # once only
    # The offer is gone: a late answer never connects.
    late = await bob.accept_offer(offer.sdp)
    with pytest.raises(RtcError):
        await late.wait_link()
    # The other offer is untouched.
    assert await other.accept_answer(answer_to_other.sdp) is not None


async def test_an_offer_token_is_not_an_answer() -> None:
    network = MemoryNetwork()
    offer = await MemoryTransport(network).create_offer()
    with pytest.raises(RtcSdpError):
        await offer.accept_answer(offer.sdp)


async def test_withdrawn_offer_fails_its_answers() -> None:
    network = MemoryNetwork()
    alice, bob = MemoryTransport(network), MemoryTransport(network)
    offer = await alice.create_offer()
    answer = await bob.accept_offer(offer.sdp)
    waiting = asyncio.create_task(answer.wait_link())
    await settle()
    assert not waiting.done()
    await offer.aclose()
    with pytest.raises(RtcError, match="offerer closed"):
        await waiting
    with pytest.raises(LocalProtocolError):
        await answer.wait_link()  # once only
    assert network.pairs == []


async def test_an_answerer_that_gave_up_fails_accept_answer() -> None:
    network = MemoryNetwork()
    alice, bob = MemoryTransport(network), MemoryTransport(network)
    offer = await alice.create_offer()
    answer = await bob.accept_offer(offer.sdp)
    await answer.aclose()
    with pytest.raises(RtcError):
        await offer.accept_answer(answer.sdp)
    assert network.pairs == []


async def test_only_one_answer_of_an_offer_connects() -> None:
    network = MemoryNetwork()
    alice, bob, carol = (MemoryTransport(network) for _ in range(3))
    offer = await alice.create_offer()
    to_bob = await bob.accept_offer(offer.sdp)
    to_carol = await carol.accept_offer(offer.sdp)
    link = await offer.accept_answer(to_carol.sdp)
    assert (await to_carol.wait_link()).remote is link
    with pytest.raises(RtcError, match="another answer"):
        await to_bob.wait_link()


async def test_answer_closed_after_connecting_closes_the_offerer_link() -> None:
    network = MemoryNetwork()
    alice, bob = MemoryTransport(network), MemoryTransport(network)
    offer = await alice.create_offer()
    answer = await bob.accept_offer(offer.sdp)
    link = await offer.accept_answer(answer.sdp)
    await answer.aclose()  # before wait_link handed the link over
    await asyncio.wait_for(link.wait_closed(), 1)
    assert link.close_reason == "data channel closed"


async def test_wait_link_times_out() -> None:
    network = MemoryNetwork()
    config = RtcConfig(open_timeout=0.001)
    offer = await MemoryTransport(network).create_offer()
    answer = await MemoryTransport(network, config).accept_offer(offer.sdp)
    with pytest.raises(RtcTimeoutError):
        await answer.wait_link()
    with pytest.raises(RtcError):  # the answer was released on failure
        await offer.accept_answer(answer.sdp)


# -- messages -------------------------------------------------------------------------------------


async def test_messages_arrive_in_order_through_the_event_loop() -> None:
    a, b = await memory_pair()
    got_b, got_a = recorder(b), recorder(a)
    for n in range(5):
        await a.send(b"a%d" % n)
    await b.send(bytearray(b"from b"))
    await a.send(memoryview(b"last"))
    assert got_b == [] and got_a == []  # never inside send()
    await settle()
    assert got_b == [b"a0", b"a1", b"a2", b"a3", b"a4", b"last"]
    assert got_a == [b"from b"]
    assert a.messages_sent == 6 and b.messages_received == 6
    assert a.bytes_sent == b.bytes_received == 14
    assert a.buffered_amount == 0


async def test_messages_before_set_receiver_come_first() -> None:
    a, b = await memory_pair()
    await a.send(b"one")
    await a.send(b"two")
    await settle()  # received, no receiver yet
    await a.send(b"three")  # still in flight
    got: list[bytes] = []
    b.set_receiver(got.append)
    assert got == [b"one", b"two"]  # replayed before set_receiver returns
    await settle()
    assert got == [b"one", b"two", b"three"]


async def test_too_much_before_set_receiver_closes_the_link() -> None:
    a, b = await memory_pair(RtcConfig(early_buffer_bytes=10))
    await a.send(b"x" * 6)
    await a.send(b"y" * 5)
    await settle()
    assert b.closed and isinstance(b.close_reason, LinkClosedError)
    assert a.closed  # the connection goes with it
    with pytest.raises(LinkClosedError):
        await a.send(b"z")


async def test_a_receiver_that_raises_closes_the_link() -> None:
    a, b = await memory_pair()
    boom = ValueError("cannot handle this")
    got: list[bytes] = []

    def receiver(data: bytes) -> None:
        got.append(data)
        raise boom

    b.set_receiver(receiver)
    await a.send(b"first")
    await a.send(b"second")
    await settle()
    assert got == [b"first"]
    assert b.close_reason is boom
    assert a.closed


async def test_max_message_size_is_the_remote_one() -> None:
    network = MemoryNetwork()
    small = MemoryTransport(network, RtcConfig(max_message_size=65536))
    big = MemoryTransport(network, RtcConfig(max_message_size=262144))
    offer = await small.create_offer()
    answer = await big.accept_offer(offer.sdp)
    s = await offer.accept_answer(answer.sdp)
    b = await answer.wait_link()
    got_b, got_s = recorder(b), recorder(s)
    await s.send(b"\0" * 262144)  # the remote accepts that much
    with pytest.raises(LocalProtocolError):
        await s.send(b"\0" * 262145)
    await b.send(b"\1" * 65536)
    with pytest.raises(LocalProtocolError):
        await b.send(b"\1" * 65537)
    await settle()
    assert [len(m) for m in got_b] == [262144] and [len(m) for m in got_s] == [65536]
    assert not s.closed and not b.closed


# -- backpressure -------------------------------------------------------------------------------


async def test_send_waits_above_the_high_watermark_until_half_is_read() -> None:
    a, b = await memory_pair(RtcConfig(high_watermark=1000))
    got: list[bytes] = []

    def receiver(data: bytes) -> None:
        got.append(data)
        if len(got) == 1:
            b.stall()  # read one message, then stop

    b.set_receiver(receiver)
    b.stall()
    await a.send(b"1" * 600)
    await a.send(b"2" * 600)  # 600 unread <= 1000: no wait
    assert a.buffered_amount == 1200
    third = asyncio.create_task(a.send(b"3" * 100))
    await settle()
    assert not third.done()  # 1200 unread > 1000
    b.resume()
    await settle()
    assert got == [b"1" * 600] and a.buffered_amount == 600
    assert not third.done()  # 600 is above half of the watermark (500)
    b.resume()
    await settle()
    assert third.done() and third.exception() is None
    await settle()
    assert got == [b"1" * 600, b"2" * 600, b"3" * 100]
    assert a.buffered_amount == 0


async def test_send_waits_while_too_many_messages_are_in_flight() -> None:
    network = MemoryNetwork()
    alice = MemoryTransport(network, max_queued_messages=3)
    offer = await alice.create_offer()
    answer = await MemoryTransport(network).accept_offer(offer.sdp)
    a = await offer.accept_answer(answer.sdp)
    b = await answer.wait_link()
    got = recorder(b)
    b.stall()
    for n in range(3):
        await a.send(b"%d" % n)
    fourth = asyncio.create_task(a.send(b"3"))
    await settle()
    assert not fourth.done() and a.queued_messages == 3
    b.resume()
    await settle()
    assert fourth.done()
    assert got == [b"0", b"1", b"2", b"3"]


async def test_a_cancelled_blocked_send_sends_nothing() -> None:
    a, b = await memory_pair(RtcConfig(high_watermark=10))
    got = recorder(b)
    b.stall()
    await a.send(b"x" * 11)
    blocked = asyncio.create_task(a.send(b"never"))
    await settle()
    blocked.cancel()
    await settle()
    b.resume()
    await settle()
    assert got == [b"x" * 11]


# -- closing ----------------------------------------------------------------------------------


async def test_closing_one_end_closes_both() -> None:
    a, b = await memory_pair()
    got = recorder(b)
    await a.send(b"in flight")
    await a.aclose()
    assert a.closed and a.close_reason == "closed locally"
    assert not b.closed  # the remote hears on the next loop iteration
    await asyncio.wait_for(b.wait_closed(), 1)
    await asyncio.wait_for(a.wait_closed(), 1)
    assert b.close_reason == "data channel closed"
    assert got == []  # what the remote had not received is lost with the connection
    for link in (a, b):
        with pytest.raises(LinkClosedError):
            await link.send(b"more")
    await a.aclose()  # idempotent
    await b.aclose()
    assert a.close_reason == "closed locally"


async def test_remote_close_wakes_a_blocked_sender() -> None:
    a, b = await memory_pair(RtcConfig(high_watermark=10))
    b.stall()
    await a.send(b"x" * 11)
    blocked = asyncio.create_task(a.send(b"y"))
    await settle()
    assert not blocked.done()
    await b.aclose()
    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(blocked, 1)


async def test_drop_fails_both_ends_at_once() -> None:
    a, b = await memory_pair()
    got = recorder(b)
    await a.send(b"lost")
    b.drop("ICE failed")
    assert a.closed and b.closed
    assert a.close_reason == b.close_reason == "ICE failed"
    await asyncio.wait_for(a.wait_closed(), 1)
    await asyncio.wait_for(b.wait_closed(), 1)
    await settle()
    assert got == []


async def test_a_stalled_end_keeps_the_order_when_it_resumes() -> None:
    a, b = await memory_pair()
    got = recorder(b)
    await a.send(b"1")
    b.stall()
    assert b.stalled
    await a.send(b"2")
    await settle()
    assert got == [] and a.buffered_amount == 2
    b.resume()
    await a.send(b"3")
    await settle()
    assert got == [b"1", b"2", b"3"]


async def test_close_callbacks_run_once_before_waiting_senders_learn_of_it() -> None:
    a, b = await memory_pair(RtcConfig(high_watermark=10))
    order: list[str] = []
    b.on_closed(lambda: order.append("first"))
    b.on_closed(lambda: order.append("second"))
    b.set_receiver(lambda data: None)

    async def sender() -> None:
        with pytest.raises(LinkClosedError):
            while True:  # above the high watermark: waits for room until the close
                await b.send(b"x" * 100)
        order.append("sender")

    sending = asyncio.create_task(sender())
    await asyncio.sleep(0)
    await a.aclose()  # the remote end goes: b closes
    await asyncio.wait_for(b.wait_closed(), 5)
    await asyncio.wait_for(sending, 5)
    assert order == ["first", "second", "sender"]
    b.on_closed(lambda: order.append("late"))  # already closed: soon, from the loop
    assert order[-1] == "sender"
    await asyncio.sleep(0)
    assert order == ["first", "second", "sender", "late"]
    await b.aclose()  # idempotent: nothing runs twice
    await asyncio.sleep(0)
    assert order.count("first") == 1
