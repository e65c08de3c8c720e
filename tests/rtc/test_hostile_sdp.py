"""Hostile SDP: mutated offers and answers never escape as anything but ``RtcError``, never leave a
peer connection, a socket or a task behind, and cost little before they are refused.

Most cases are sans-I/O (:func:`check_remote_sdp` on mutations of a real aiortc offer/answer, on
arbitrary text, and on browser-shaped SDPs it must accept); a few hundred go through real aiortc
on 127.0.0.1 with a live remote, so that what the checker lets through is applied, answered and
connected (or fails) for real. Example counts are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest
from aiortc.sdp import SessionDescription
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from p2pml_py.base.errors import RtcError, RtcSdpError
from p2pml_py.rtc.aiortc_backend import RtcFactory
from p2pml_py.rtc.aiortc_backend.factory import IncomingConnection, OutgoingConnection
from p2pml_py.rtc.aiortc_backend.sdp import (
    MAX_CANDIDATES,
    MAX_MDNS_NAMES,
    MAX_SDP_CHARS,
    RemoteSdp,
    check_remote_sdp,
)
from p2pml_py.tracker import messages
from tests.conftest import record_fuzz_example

from .sdp_mutations import (
    CATALOGUE,
    LOOPBACK_FAST,
    Op,
    apply,
    browser_sdp,
    forget_mdns_state,
    live_mutations,
    mutations,
    open_sockets,
    other_tasks,
    real_sdps,
    recording_pcs,
)

#: Big inputs (1 MB SDPs, 10,000 candidates) are the point, so are slow draws. The function-scoped
#: fixture is the autouse mDNS reset below, which is right to run once per test, not per example.
SLOW_OK = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.function_scoped_fixture,
]
SANS_IO = settings(max_examples=3000, deadline=None, suppress_health_check=SLOW_OK)
LIVE = settings(max_examples=125, deadline=None, suppress_health_check=SLOW_OK)
LIVE_ANSWERS = settings(LIVE, max_examples=100)


@pytest.fixture(autouse=True)
def _fresh_mdns_state() -> Iterator[None]:
    forget_mdns_state()
    yield
    forget_mdns_state()


def checked(sdp: object, kind: Any) -> RemoteSdp | RtcSdpError:
    """The checker's verdict; any exception but RtcSdpError fails the test."""
    try:
        result = check_remote_sdp(sdp, kind)
    except RtcSdpError as exc:
        assert str(exc).startswith(f"{kind} SDP "), exc
        return exc
    assert isinstance(sdp, str)
    assert len(result.sdp) <= len(sdp) + 2  # only lines dropped (and a final CRLF)
    description = SessionDescription.parse(result.sdp)  # aiortc can parse what we pass
    assert len(description.media) == 1 and description.media[0].kind == "application"
    assert result.candidates <= MAX_CANDIDATES
    assert result.sdp.count("a=candidate:") == result.candidates
    return result


# -- sans-I/O: the checker ------------------------------------------------------------------------


@SANS_IO
@given(mutations)
def test_checker_on_mutated_offers(mutation: list[Op]) -> None:
    record_fuzz_example()
    checked(apply(real_sdps()[0], mutation), "offer")


@SANS_IO
@given(mutations)
def test_checker_on_mutated_answers(mutation: list[Op]) -> None:
    record_fuzz_example()
    checked(apply(real_sdps()[1], mutation), "answer")


@settings(max_examples=2000, deadline=None, suppress_health_check=SLOW_OK)
@given(st.one_of(st.text(), st.text().map(lambda t: "v=0\r\n" + t), st.binary(), st.integers()))
def test_checker_on_arbitrary_input(data: object) -> None:
    record_fuzz_example()
    assert isinstance(checked(data, "offer"), RtcSdpError) or isinstance(data, str)


@settings(max_examples=2000, deadline=None, suppress_health_check=SLOW_OK)
@given(st.integers(0, 2**32), st.booleans(), st.sampled_from(["offer", "answer"]))
def test_browser_shaped_sdps_pass_unchanged(seed: int, firefox: bool, kind: str) -> None:
    record_fuzz_example()
    sdp = browser_sdp(seed, kind=kind, firefox=firefox)
    result = checked(sdp, kind)
    assert isinstance(result, RemoteSdp), result
    assert result.sdp == sdp and result.dropped_candidates == 0


def test_real_sdps_pass_unchanged() -> None:
    offer, answer = real_sdps()
    assert check_remote_sdp(offer, "offer").sdp == offer
    assert check_remote_sdp(answer, "answer").sdp == answer
    with pytest.raises(RtcSdpError, match="actpass"):
        check_remote_sdp(offer, "answer")  # an offer is no answer


def test_size_bound_is_the_trackers() -> None:
    assert MAX_SDP_CHARS == messages.MAX_SDP_CHARS


#: What the checker says about each named mutation of a real offer: refused with a message that
#: contains the text, or accepted (``None``) with this many candidates dropped.
VERDICTS: dict[str, str | int] = {
    "missing-fingerprint": "no a=fingerprint",
    "unknown-fingerprint-hash": "no a=fingerprint",
    "wrong-fingerprint": 0,  # well formed; DTLS finds out
    "10000-candidates": "longer than 32768",
    "300-short-candidates": f"more than {MAX_CANDIDATES} candidates",
    "17-mdns-names": f"more than {MAX_MDNS_NAMES} mDNS",
    "1MB-sdp": "longer than 32768",
    "1MB-line": "longer than 32768",
    "setup-active": 0,
    "setup-passive": 0,
    "setup-holdconn": "cannot be parsed",
    "no-setup": "a=setup:(none)",
    "bogus-addresses": 7,
    "bad-port": "bad port",
    "no-m-section": "no data-channel",
    "two-m-sections": "more than one m=",
    "audio-section": "no data-channel",
    "video-section-too": "got 'm=video",
    "rtp-protocol": "no data-channel",
    "garbage-lines": "not '<letter>=<value>'",
    "non-ascii-ufrag": "a=ice-ufrag",
    "non-ascii-session-name": 0,
    "no-ice-credentials": "no a=ice-ufrag",
    "sctp-port-70000": "SCTP port",
    "no-sctp-port": "SCTP port",
    "huge-mid": "a=mid",
    "nul-byte": "control character",
    "lf-endings": 0,
}


def test_every_catalogue_entry_has_a_verdict() -> None:
    assert set(VERDICTS) == set(CATALOGUE)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_catalogue_verdicts(name: str) -> None:
    result = checked(apply(real_sdps()[0], CATALOGUE[name]), "offer")
    expected = VERDICTS[name]
    if isinstance(expected, str):
        assert isinstance(result, RtcSdpError) and expected in str(result), result
    else:
        assert isinstance(result, RemoteSdp), result
        assert result.dropped_candidates == expected


def test_mdns_names_up_to_the_limit_pass() -> None:
    result = check_remote_sdp(apply(real_sdps()[0], [("mdns", MAX_MDNS_NAMES)]), "offer")
    assert result.candidates == MAX_MDNS_NAMES + 1


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The traced allocation peak inside the block, in bytes (appended on exit)."""
    peak: list[int] = []
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        yield peak
        peak.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["1MB-sdp", "1MB-line", "10000-candidates"])
def test_oversized_sdp_is_refused_without_copies(name: str) -> None:
    sdp = apply(real_sdps()[0], CATALOGUE[name])
    assert len(sdp) > 300_000
    with peak_memory() as peak, pytest.raises(RtcSdpError, match="longer than"):
        check_remote_sdp(sdp, "offer")
    assert peak[0] < 16 * 1024, peak


def test_largest_acceptable_sdp_costs_little_memory() -> None:
    """The most a hostile offer can make the checker hold: a 32 KiB SDP at the candidate limit."""
    offer = real_sdps()[0]
    candidate = "a=candidate:1 1 udp 2130706431 10.0.0.1 9 typ host generation 0 network-id 1"
    sdp = apply(offer, [("candidates", MAX_CANDIDATES - 1, candidate, True)])
    sdp += "a=x-pad:" + "p" * (MAX_SDP_CHARS - len(sdp) - 10) + "\r\n"
    assert MAX_SDP_CHARS - 20 < len(sdp) <= MAX_SDP_CHARS
    with peak_memory() as peak:
        result = check_remote_sdp(sdp, "offer")
    assert result.candidates == MAX_CANDIDATES
    assert peak[0] < 1024 * 1024, peak


# -- through aiortc -------------------------------------------------------------------------------


class Watch:
    """Per case: nothing may outlive it -- peer connections, sockets, tasks, loop errors."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    async def __aenter__(self) -> Watch:
        gc.collect()
        self.sockets = open_sockets()
        self.tasks = other_tasks()
        loop = asyncio.get_running_loop()
        self._handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self._pcs = recording_pcs()
        self.pcs = self._pcs.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pcs.__exit__(exc_type, exc, tb)
        try:
            if exc_type is not None:
                return
            # A connection aiortc still closes in the background would show here.
            for _ in range(3):
                await asyncio.sleep(0)
            gc.collect()  # a task that died with an exception reports it when collected
            assert not self.errors, [c.get("exception") or c.get("message") for c in self.errors]
            assert [pc.connectionState for pc in self.pcs].count("closed") == len(self.pcs)
            assert other_tasks() <= self.tasks, other_tasks() - self.tasks
            assert open_sockets() <= self.sockets
        finally:
            asyncio.get_running_loop().set_exception_handler(self._handler)


ALLOWED = (RtcError,)  # RtcSdpError, RtcTimeoutError, LinkClosedError are all RtcErrors


async def _outcome(awaitable: Any) -> Any:
    try:
        return await awaitable
    except ALLOWED as exc:
        return exc


async def _connect(outgoing: OutgoingConnection, incoming: IncomingConnection, answer: str) -> int:
    """Finish both ends; close whatever opened. How many links opened (0-2)."""
    results = await asyncio.gather(
        _outcome(outgoing.accept_answer(answer)), _outcome(incoming.wait_link())
    )
    opened = 0
    for result in results:
        if not isinstance(result, RtcError):
            opened += 1
            await result.aclose()
    return opened


@pytest.mark.parametrize("name", list(CATALOGUE))
async def test_catalogue_through_accept_offer(name: str) -> None:
    """A refused offer creates no RTCPeerConnection; an accepted one is answered and connects
    or fails cleanly. The oversized ones hold no copy of themselves while refused."""
    factory = RtcFactory(LOOPBACK_FAST)
    async with Watch() as watch:
        outgoing = await factory.create_offer()
        first_pc = len(watch.pcs)
        sdp = apply(outgoing.sdp, CATALOGUE[name])
        refused = isinstance(VERDICTS[name], str)
        with peak_memory() as peak:
            result = await _outcome(factory.accept_offer(sdp))
        if refused:
            assert isinstance(result, RtcSdpError), result
            assert len(watch.pcs) == first_pc, "a refused offer created an RTCPeerConnection"
            assert peak[0] < 64 * 1024, peak
            await outgoing.aclose()
        else:
            assert isinstance(result, IncomingConnection), result
            await _connect(outgoing, result, result.sdp)
            await outgoing.aclose()
            await result.aclose()


@LIVE
@given(live_mutations)
async def test_mutated_offers_live(mutation: list[Op]) -> None:
    """A live aiortc offerer whose offer is mutated on the way: our answerer refuses it, or
    answers it and both ends connect or fail -- and close."""
    record_fuzz_example()
    factory = RtcFactory(LOOPBACK_FAST)
    async with Watch():
        outgoing = await factory.create_offer()
        try:
            incoming = await _outcome(factory.accept_offer(apply(outgoing.sdp, mutation)))
            if isinstance(incoming, IncomingConnection):
                opened = await _connect(outgoing, incoming, incoming.sdp)
                event(f"answered, {opened} of 2 links opened")
                await incoming.aclose()
            else:
                event(f"refused: {type(incoming).__name__}")
        finally:
            await outgoing.aclose()


@LIVE_ANSWERS
@given(live_mutations)
async def test_mutated_answers_live(mutation: list[Op]) -> None:
    """A live aiortc answerer whose answer is mutated on the way: our offerer refuses it, or
    applies it and both ends connect or fail -- and close."""
    record_fuzz_example()
    factory = RtcFactory(LOOPBACK_FAST)
    async with Watch():
        outgoing = await factory.create_offer()
        try:
            incoming = await factory.accept_offer(outgoing.sdp)
            try:
                opened = await _connect(outgoing, incoming, apply(incoming.sdp, mutation))
                event(f"{opened} of 2 links opened")
            finally:
                await incoming.aclose()
        finally:
            await outgoing.aclose()


@pytest.mark.parametrize("with_address", [False, True])
async def test_unresolvable_mdns_candidates_cost_a_second_at_most(with_address: bool) -> None:
    """mDNS names nobody answers (no LAN here) are given up within aioice's 1 s resolution
    timeout: an offer with nothing else is refused before we gather, one with an IP address
    candidate too connects through that."""
    factory = RtcFactory(LOOPBACK_FAST)
    async with Watch() as watch:
        outgoing = await factory.create_offer()
        mutation: list[Op] = [("mdns", MAX_MDNS_NAMES)]
        if not with_address:
            mutation.insert(0, ("drop-prefix", "a=candidate"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await _outcome(factory.accept_offer(apply(outgoing.sdp, mutation)))
        assert loop.time() - started < 3
        assert len(watch.pcs) == 2
        if with_address:
            assert isinstance(result, IncomingConnection), result
            await _connect(outgoing, result, result.sdp)
            await result.aclose()
        else:
            assert isinstance(result, RtcSdpError) and "no candidate we can reach" in str(result)
        await outgoing.aclose()
