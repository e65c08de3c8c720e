"""RtcFactory over real aiortc on 127.0.0.1: SDP shape, channel settings, errors, cleanup."""

from __future__ import annotations

import asyncio
import gc
import re
import time
import weakref

import pytest
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from p2pml_py.base.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    RtcError,
    RtcSdpError,
    RtcTimeoutError,
)
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import DataChannelLink, RtcFactory, negotiated
from p2pml_py.rtc.aiortc_backend.addresses import gathering_addresses

from .helpers import LOOPBACK, Collector

CANDIDATE_RE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", re.MULTILINE)


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_offer_sdp_is_complete_non_trickle_on_loopback() -> None:
    before = other_tasks()
    outgoing = await RtcFactory(LOOPBACK).create_offer()
    sdp = outgoing.sdp
    await outgoing.aclose()
    assert outgoing.connection_state == "closed"
    assert other_tasks() <= before

    hosts = CANDIDATE_RE.findall(sdp)
    assert hosts, sdp
    assert {host for host, _ in hosts} == {"127.0.0.1"}
    assert "a=ice-options:trickle" not in sdp
    assert "m=application " in sdp and "webrtc-datachannel" in sdp
    sizes = [int(v) for v in re.findall(r"^a=max-message-size:(\d+)", sdp, re.MULTILINE)]
    assert sizes == [262144]
    assert sdp.endswith("\r\n") and "\n\n" not in sdp
    assert re.fullmatch(r"[0-9a-f]{40}", outgoing.label)


async def test_configured_max_message_size_is_advertised() -> None:
    outgoing = await RtcFactory(
        RtcConfig(ice_addresses=("127.0.0.1",), max_message_size=65536)
    ).create_offer()
    await outgoing.aclose()
    assert re.findall(r"^a=max-message-size:(\d+)", outgoing.sdp, re.MULTILINE) == ["65536"]


async def test_labels_are_random() -> None:
    factory = RtcFactory(LOOPBACK)
    first, second = await asyncio.gather(factory.create_offer(), factory.create_offer())
    await first.aclose()
    await second.aclose()
    assert first.label != second.label


async def test_browser_like_answerer_sees_browser_channel_settings() -> None:
    """A plain aiortc answerer plays the browser: it checks the channel it is handed and, like a
    browser announcing its segments, sends at once -- once as text, which must arrive as bytes."""
    outgoing = await RtcFactory(LOOPBACK).create_offer()
    remote = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got_channel: asyncio.Future[RTCDataChannel] = asyncio.get_running_loop().create_future()

    @remote.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        channel.send(b"announce")
        channel.send("text é")
        got_channel.set_result(channel)

    try:
        await remote.setRemoteDescription(RTCSessionDescription(outgoing.sdp, "offer"))
        with gathering_addresses(("127.0.0.1",)):
            await remote.setLocalDescription(await remote.createAnswer())
        link = await outgoing.accept_answer(remote.localDescription.sdp)
        async with link:
            channel = await asyncio.wait_for(got_channel, 5)
            assert channel.label == outgoing.label == link.label
            assert channel.ordered is True
            assert channel.maxRetransmits is None and channel.maxPacketLifeTime is None
            assert channel.protocol == ""
            assert channel.negotiated is False
            collector = Collector()
            link.set_receiver(collector)
            channel.send(b"after")
            await collector.wait_for(messages=3)
            assert collector.messages == [b"announce", "text é".encode(), b"after"]
    finally:
        await remote.close()


async def test_link_opens_both_ways_and_reports_addresses() -> None:
    offerer = RtcFactory(RtcConfig(ice_addresses=("127.0.0.1",)))
    answerer = RtcFactory(RtcConfig(ice_addresses=("127.0.0.2",)))
    started = time.perf_counter()
    outgoing = await offerer.create_offer()
    incoming = await answerer.accept_offer(outgoing.sdp)
    assert {h for h, _ in CANDIDATE_RE.findall(incoming.sdp)} == {"127.0.0.2"}
    assert "a=ice-options:trickle" not in incoming.sdp
    assert "a=setup:active" in incoming.sdp  # like Chromium's answers (INTEROP-NOTES)
    a = await outgoing.accept_answer(incoming.sdp)
    b = await incoming.wait_link()
    print(f"\noffer-to-open latency: {(time.perf_counter() - started) * 1000:.1f} ms")
    async with a, b:
        assert not a.closed and not b.closed
        assert a.remote_address is not None and a.remote_address[0] == "127.0.0.2"
        assert b.remote_address is not None and b.remote_address[0] == "127.0.0.1"
        assert a.label == b.label
        # the connection objects handed their peer connection over: closing them is a no-op
        await outgoing.aclose()
        await incoming.aclose()
        assert not a.closed and not b.closed


async def test_concurrent_gatherings_keep_their_own_addresses() -> None:
    by_address = {
        f"127.0.0.{n}": RtcFactory(RtcConfig(ice_addresses=(f"127.0.0.{n}",))) for n in (1, 2, 3)
    }
    jobs = [factory.create_offer() for factory in by_address.values() for _ in range(3)]
    offers = await asyncio.gather(*jobs)
    try:
        for index, offer in enumerate(offers):
            expected = list(by_address)[index // 3]
            assert {h for h, _ in CANDIDATE_RE.findall(offer.sdp)} == {expected}
    finally:
        for offer in offers:
            await offer.aclose()


async def test_unbindable_address_is_a_clear_error() -> None:
    before = other_tasks()
    factory = RtcFactory(RtcConfig(ice_addresses=("192.0.2.1",)))  # TEST-NET-1, not ours
    with pytest.raises(RtcError, match="no local candidate"):
        await factory.create_offer()
    assert other_tasks() <= before


def _valid_answer_without(line_prefix: str, answer: str) -> str:
    return "".join(x + "\r\n" for x in answer.splitlines() if not x.startswith(line_prefix))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda answer, offer: "garbage",
        lambda answer, offer: "",
        lambda answer, offer: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        lambda answer, offer: _valid_answer_without("a=ice-ufrag", answer),
        lambda answer, offer: offer,  # an offer (setup:actpass) is not a valid answer
        lambda answer, offer: answer.replace("m=application", "m=audio"),
        lambda answer, offer: answer[: len(answer) // 2],
    ],
    ids=["garbage", "empty", "no-media", "no-ufrag", "offer-as-answer", "audio", "truncated"],
)
async def test_bad_answer_is_a_clean_error(mangle: object) -> None:
    before = other_tasks()
    outgoing = await RtcFactory(LOOPBACK).create_offer()
    other = await RtcFactory(LOOPBACK).accept_offer(outgoing.sdp)
    await other.aclose()
    bad = mangle(other.sdp, outgoing.sdp)  # type: ignore[operator]
    started = time.perf_counter()
    with pytest.raises(RtcSdpError) as info:
        await outgoing.accept_answer(bad)
    assert time.perf_counter() - started < 2
    assert isinstance(info.value, RemoteProtocolError) and isinstance(info.value, ValueError)
    assert outgoing.connection_state == "closed"
    assert other_tasks() <= before
    with pytest.raises(LocalProtocolError):
        await outgoing.accept_answer(other.sdp)


@pytest.mark.parametrize("bad", ["garbage", "", "v=0\r\n", 42])
async def test_bad_offer_is_a_clean_error(bad: object) -> None:
    before = other_tasks()
    with pytest.raises(RtcSdpError):
        await RtcFactory(LOOPBACK).accept_offer(bad)  # type: ignore[arg-type]
    assert other_tasks() <= before


async def test_answer_never_used_times_out_both_sides() -> None:
    config = RtcConfig(ice_addresses=("127.0.0.1",), open_timeout=0.5)
    outgoing = await RtcFactory(config).create_offer()
    incoming = await RtcFactory(config).accept_offer(outgoing.sdp)
    await outgoing.aclose()  # the offerer goes away without ever reading the answer
    started = time.perf_counter()
    with pytest.raises(RtcTimeoutError):
        await incoming.wait_link()
    assert time.perf_counter() - started < 2
    assert incoming.connection_state == "closed"


async def test_answer_from_a_vanished_peer_times_out() -> None:
    config = RtcConfig(ice_addresses=("127.0.0.1",), open_timeout=0.5)
    outgoing = await RtcFactory(config).create_offer()
    incoming = await RtcFactory(config).accept_offer(outgoing.sdp)
    await incoming.aclose()  # its sockets are gone: ICE checks get no answer
    before = other_tasks()
    started = time.perf_counter()
    with pytest.raises(RtcTimeoutError):
        await outgoing.accept_answer(incoming.sdp)
    assert time.perf_counter() - started < 2
    assert outgoing.connection_state == "closed"
    assert other_tasks() <= before


async def test_extra_data_channels_from_the_remote_are_refused() -> None:
    """Browsers open exactly one channel; a second one is closed, the first keeps working."""
    incoming_factory = RtcFactory(LOOPBACK)
    remote = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    first = remote.createDataChannel("a" * 40)
    second = remote.createDataChannel("b" * 40)
    second_closed = asyncio.Event()
    second.on("close", second_closed.set)
    try:
        with gathering_addresses(("127.0.0.1",)):
            await remote.setLocalDescription(await remote.createOffer())
        incoming = await incoming_factory.accept_offer(remote.localDescription.sdp)
        await remote.setRemoteDescription(RTCSessionDescription(incoming.sdp, "answer"))
        link: DataChannelLink = await incoming.wait_link()
        async with link:
            assert link.label == "a" * 40
            await asyncio.wait_for(second_closed.wait(), 5)
            collector = Collector()
            link.set_receiver(collector)
            first.send(b"still here")
            await collector.wait_for(messages=1)
            assert collector.messages == [b"still here"]
    finally:
        await remote.close()


async def test_an_open_connection_keeps_no_negotiation_state() -> None:
    """Once open: no parsed descriptions, no early-check buffer, no IncomingConnection (and its
    answer SDP) kept alive by aiortc's listeners -- and a channel the remote opens later is
    still closed while the first keeps working."""
    remote = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    first = remote.createDataChannel("a" * 40)
    try:
        with gathering_addresses(("127.0.0.1",)):
            await remote.setLocalDescription(await remote.createOffer())
        incoming = await RtcFactory(LOOPBACK).accept_offer(remote.localDescription.sdp)
        await remote.setRemoteDescription(RTCSessionDescription(incoming.sdp, "answer"))
        link: DataChannelLink = await incoming.wait_link()
        async with link:
            gone = weakref.ref(incoming)
            del incoming
            gc.collect()
            assert gone() is None
            pc = link._pc
            assert pc.localDescription is None and pc.remoteDescription is None
            assert not pc._RTCPeerConnection__remoteIce and not pc._RTCPeerConnection__remoteDtls
            router = pc.sctp.transport._rtp_router  # the one empty router, shared
            assert router is negotiated._EMPTY_ROUTERS[type(router)] and negotiated._unused(router)
            assert pc.sctp.transport.transport.iceGatherer._connection._early_checks == ()
            later = remote.createDataChannel("c" * 40)  # in-band (DCEP), after the hand-over
            later_closed = asyncio.Event()
            later.on("close", later_closed.set)
            await asyncio.wait_for(later_closed.wait(), 5)
            collector = Collector()
            link.set_receiver(collector)
            first.send(b"still here")
            await link.send(b"and back")
            await collector.wait_for(messages=1)
            assert collector.messages == [b"still here"]
    finally:
        await remote.close()
