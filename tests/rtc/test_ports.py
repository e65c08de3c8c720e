"""``RtcConfig.ice_port_range`` over real aiortc on 127.0.0.1: the host candidates are bound to
ports of the range (on asyncio's loop and on uvloop), an exhausted range fails with a clear error,
and gatherings without a range keep the kernel's ports."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import re
import socket

import pytest
import uvloop

from p2pml_py.base.errors import RtcError
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import RtcFactory, loopback_pair, versions
from p2pml_py.rtc.config import parse_port_range, port_range_size

from .helpers import LOOPBACK, Collector

CANDIDATE_RE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", re.MULTILINE)
#: Below the kernel's ephemeral range (32768-60999 by default), so no socket the kernel numbers
#: itself can take one of these ports during the test.
RANGE = (21000, 21009)


def ports(sdp: str) -> list[int]:
    return [int(port) for _, port in CANDIDATE_RE.findall(sdp)]


def port_taken(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
        return True
    finally:
        probe.close()
    return False


def test_port_range_forms_and_errors() -> None:
    assert parse_port_range([40000, 40999]) == (40000, 40999)
    assert parse_port_range("40000-40999") == (40000, 40999)
    assert parse_port_range((5000, 5000)) == (5000, 5000)
    assert port_range_size((40000, 40999)) == 1000
    for bad, message in (
        ([40999, 40000], "1024 <= LOW <= HIGH <= 65535, got 40999-40000"),
        ([80, 90], "got 80-90"),
        ([40000, 70000], "got 40000-70000"),
        ([40000], "two integers"),
        ([True, 40000], "two integers"),
        ("40000:40999", '"LOW-HIGH"'),
        (40000, "two integers"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)) as caught:
            parse_port_range(bad)
        assert str(caught.value).startswith("ice_port_range: ")
    assert RtcConfig(ice_port_range=[21000, 21009]).ice_port_range == RANGE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ice_port_range"):
        RtcConfig(ice_port_range=(2, 1))


async def test_connection_uses_ports_of_the_range() -> None:
    config = dataclasses.replace(LOOPBACK, ice_port_range=RANGE)
    offerer, answerer = RtcFactory(config), RtcFactory(config)
    outgoing = await offerer.create_offer()
    async with outgoing:
        incoming = await answerer.accept_offer(outgoing.sdp)
        async with incoming:
            offered, answered = ports(outgoing.sdp), ports(incoming.sdp)
            a = await outgoing.accept_answer(incoming.sdp)
            b = await incoming.wait_link()
    try:
        assert len(offered) == len(answered) == 1, (outgoing.sdp, incoming.sdp)
        used = offered + answered
        assert all(RANGE[0] <= port <= RANGE[1] for port in used), used
        assert len(set(used)) == 2
        # The kernel agrees: both ports are bound while the connection is open ...
        assert all(port_taken(port) for port in used)
        got = Collector()
        b.set_receiver(got)
        await a.send(b"through the range")
        await got.wait_for(messages=1)
        assert got.messages == [b"through the range"]
    finally:
        await a.aclose()
        await b.aclose()
    # ... and free again once it is closed.
    assert not any(port_taken(port) for port in used)


async def test_full_range_fails_clearly_and_frees_on_close() -> None:
    single = dataclasses.replace(LOOPBACK, ice_port_range=(RANGE[0], RANGE[0]))
    factory = RtcFactory(single)
    first = await factory.create_offer()
    assert ports(first.sdp) == [RANGE[0]]
    with pytest.raises(RtcError, match=f"no port of ice_port_range {RANGE[0]}-{RANGE[0]}"):
        await factory.create_offer()
    await first.aclose()
    again = await factory.create_offer()
    assert ports(again.sdp) == [RANGE[0]]
    # A gathering without a range, on the same (now wrapped) loop, keeps the kernel's ports.
    plain = await RtcFactory(LOOPBACK).create_offer()
    assert all(port >= 32768 for port in ports(plain.sdp)), plain.sdp
    await again.aclose()
    await plain.aclose()


async def test_range_on_an_unchecked_aioice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(versions.CHECKED, "port_range", {"aioice": ("0.0",)})
    config = dataclasses.replace(LOOPBACK, ice_port_range=RANGE)
    with pytest.raises(RtcError, match="ice_port_range cannot be honoured: aioice"):
        await RtcFactory(config).create_offer()


def test_range_on_uvloop() -> None:
    """The seeders run on uvloop (``tuning.install_uvloop``), whose loop is not asyncio's."""

    async def pair() -> list[int]:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        config = dataclasses.replace(LOOPBACK, ice_port_range=RANGE)
        a, b = await loopback_pair(config)
        try:
            got = Collector()
            b.set_receiver(got)
            await a.send(b"uvloop")
            await got.wait_for(messages=1)
            # Each side's selected remote port is the other side's local port.
            remotes = [link.remote_address for link in (a, b)]
            return [address[1] for address in remotes if address is not None]
        finally:
            await a.aclose()
            await b.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        used = runner.run(pair())
    assert len(used) == 2 and all(RANGE[0] <= port <= RANGE[1] for port in used), used
