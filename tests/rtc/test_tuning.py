"""p2pml_py.rtc.aiortc_backend.tuning: the UDP buffer patch reaches aioice's sockets, data still flows intact,
and the patch can be undone; uvloop installation reports what it did; the consent policy gives a
silent remote up within its timeout and never an answering one, and the consent patch marks
every connection or, on an unchecked aioice, stays out with one warning."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import random
from collections.abc import Iterator
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import pytest

from p2pml_py.rtc.aiortc_backend import DataChannelLink, tuning
from p2pml_py.rtc.config import MIN_CONSENT_TIMEOUT

from .helpers import LOOPBACK, linked, send_all


def _sockets(link: DataChannelLink) -> list[object]:
    # Reaching aioice's sockets needs aiortc/aioice private attributes; a test may.
    connection = link.channel.transport.transport.transport.iceGatherer._connection
    return [p.transport.get_extra_info("socket") for p in connection._protocols]


@pytest.fixture
def restore_buffers() -> object:
    yield None
    tuning.reset_udp_buffer_sizes()


@pytest.mark.usefixtures("restore_buffers")
async def test_udp_buffer_sizes_reach_every_ice_socket_and_data_is_intact() -> None:
    size = 3 * 1024 * 1024
    assert tuning.set_udp_buffer_sizes(size, size)
    async with linked() as (a, b):
        for link in (a, b):
            sockets = _sockets(link)
            assert sockets
            for sock in sockets:
                rcvbuf, sndbuf = tuning.udp_buffer_sizes(sock)  # type: ignore[arg-type]
                # Linux doubles the value; without the patch aioice leaves 2 x 256 KiB.
                assert rcvbuf >= size and sndbuf >= size
        await send_all(a, b, os.urandom(3 * 1024 * 1024))


@pytest.mark.usefixtures("restore_buffers")
async def test_reset_restores_aioice() -> None:
    original = aioice.ice.Connection.gather_candidates
    assert tuning.set_udp_buffer_sizes(2 * 1024 * 1024, 0)
    assert aioice.ice.Connection.gather_candidates is not original
    tuning.set_udp_buffer_sizes(2 * 1024 * 1024, 0)  # a second call does not wrap twice
    tuning.reset_udp_buffer_sizes()
    assert aioice.ice.Connection.gather_candidates is original
    async with linked() as (a, _):
        rcvbuf, _snd = tuning.udp_buffer_sizes(_sockets(a)[0])  # type: ignore[arg-type]
        assert rcvbuf < 2 * 1024 * 1024


def test_unchecked_aioice_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice, "__version__", "9.9.0", raising=False)
    original = aioice.ice.Connection.gather_candidates
    assert not tuning.set_udp_buffer_sizes()
    assert aioice.ice.Connection.gather_candidates is original


def test_negative_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        tuning.set_udp_buffer_sizes(-1, 0)


def test_install_uvloop_sets_the_policy() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        installed = tuning.install_uvloop()
        assert installed == tuning.uvloop_available()
        if installed:
            loop = asyncio.new_event_loop()
            try:
                assert type(loop).__module__.startswith("uvloop")
            finally:
                loop.close()
    finally:
        asyncio.set_event_loop_policy(before)


@dataclasses.dataclass(frozen=True)
class _Before:
    policy: asyncio.AbstractEventLoopPolicy
    gc_thresholds: tuple[int, int, int]


@pytest.fixture
def undo_tune_process() -> Iterator[_Before]:
    """What tune_process changes process-wide, as it was; restored after the test."""
    from p2pml_py.rtc.aiortc_backend import speedups

    before = _Before(asyncio.get_event_loop_policy(), gc.get_threshold())
    yield before
    gc.unfreeze()
    gc.set_threshold(*before.gc_thresholds)
    asyncio.set_event_loop_policy(before.policy)
    speedups.uninstall()
    tuning.reset_udp_buffer_sizes()


def test_tune_process_reports_what_it_did(undo_tune_process: _Before) -> None:
    from p2pml_py.rtc.aiortc_backend import speedups
    from p2pml_py.rtc.aiortc_backend.speedups import shared_certificate

    thresholds = undo_tune_process.gc_thresholds
    done = tuning.tune_process(udp_buffer=1024 * 1024)
    assert done["uvloop"] == tuning.uvloop_available()
    assert done["udp_buffer"] == 1024 * 1024
    assert done["speedups"] == speedups.PATCHES
    # The warm-up made the process's shared DTLS certificate and its OpenSSL context.
    assert isinstance(done["warm_up_ms"], float)
    (certificate,) = shared_certificate._certificates.values()
    assert len(certificate._p2pml_contexts) == 1
    # The collector runs less often and no longer walks what start-up made.
    assert done["gc_thresholds"] == gc.get_threshold() == tuning.GC_THRESHOLDS
    assert gc.get_freeze_count() > 1000
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    nothing = tuning.tune_process(uvloop=False, udp_buffer=0, speedups=False, gc_thresholds=None)
    assert nothing == {"uvloop": False, "udp_buffer": 0, "speedups": ()}
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


def test_no_tuning_environment_variable_disables_it(
    monkeypatch: pytest.MonkeyPatch, undo_tune_process: _Before
) -> None:
    from p2pml_py.rtc.aiortc_backend import speedups

    monkeypatch.setenv(tuning.NO_TUNING_ENV, "1")
    assert tuning.tune_process_unless_disabled() is None
    assert speedups.installed() == ()
    assert asyncio.get_event_loop_policy() is undo_tune_process.policy
    monkeypatch.setenv(tuning.NO_TUNING_ENV, "0")
    done = tuning.tune_process_unless_disabled()
    assert done is not None and done["speedups"] == speedups.PATCHES


def test_warm_up_failure_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import aiortc.rtcdtlstransport

    def broken(cls: type) -> None:
        raise RuntimeError("no entropy today")

    monkeypatch.setattr(
        aiortc.rtcdtlstransport.RTCCertificate, "generateCertificate", classmethod(broken)
    )
    assert tuning.warm_up() >= 0.0
    assert "no entropy today" in caplog.text


def test_warm_up_opens_sends_and_closes_one_loopback_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from p2pml_py.rtc.aiortc_backend import loopback

    made: list[tuple[DataChannelLink, DataChannelLink]] = []
    real = loopback.loopback_pair

    async def recording_pair() -> tuple[DataChannelLink, DataChannelLink]:
        pair = await real()
        made.append(pair)
        return pair

    monkeypatch.setattr(loopback, "loopback_pair", recording_pair)
    caplog.set_level("DEBUG", logger=tuning.__name__)
    assert tuning.warm_up() > 0.0
    assert "failed" not in caplog.text
    ((first, second),) = made  # a real aiortc connection on 127.0.0.1
    assert (first.messages_sent, second.messages_received) == (1, 1)
    assert second.bytes_received == len(b"warm-up")
    assert first.closed and second.closed
    # Without the connection, or inside a running event loop, no connection is made.
    tuning.warm_up(connection=False)

    async def inside_a_loop() -> None:
        tuning.warm_up()

    asyncio.run(inside_a_loop())
    assert len(made) == 1
    assert "warm-up connection skipped" in caplog.text


def test_warm_up_connection_failure_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from p2pml_py.rtc.aiortc_backend import loopback

    async def no_loopback() -> None:
        raise OSError("no loopback interface")

    monkeypatch.setattr(loopback, "loopback_pair", no_loopback)
    assert tuning.warm_up() >= 0.0
    assert "warm-up connection failed" in caplog.text
    assert "no loopback interface" in caplog.text


# -- consent: when a silent remote is given up (sans-I/O), and the patch itself -----------------

#: How long one check waits: sent at 0, again after aioice's RTO, given up after twice that.
_CHECK_WINDOW = aioice.stun.RETRY_RTO * (2 ** (tuning.CONSENT_RETRANSMISSIONS + 1) - 1)


def _given_up_at(
    seed: int, dies_at: float, *, timeout: float = 7.5, rtt: float = 0.05, until: float = 600.0
) -> float | None:
    """Drive a ConsentClock as the check loop does (sleep to ``wake_at``, expired?, check) for a
    remote that answers every check within ``rtt`` until it dies at ``dies_at`` and nothing
    after; when it is given up, None if not by ``until``."""
    clock = tuning.ConsentClock(timeout, 0.0, random.Random(seed))
    now = 0.0
    while now < until:
        now = max(now, clock.wake_at())
        if clock.expired(now):
            return now
        if now < clock.next_check:
            continue
        sent = now
        clock.check_sent(sent)
        if sent + rtt <= dies_at:
            now = sent + rtt
            clock.answered(now)
        else:
            give_up = clock.give_up_at()
            now = sent + _CHECK_WINDOW if give_up is None else min(sent + _CHECK_WINDOW, give_up)
            clock.missed(sent)
    return None


def test_checks_are_randomized_and_never_overlap() -> None:
    clock = tuning.ConsentClock(7.5, 100.0, random.Random(1))
    gaps = []
    for _ in range(200):
        before = clock.next_check
        clock.check_sent(before)
        gaps.append(clock.next_check - before)
    interval = tuning.CONSENT_INTERVAL
    assert 0.8 * interval <= min(gaps) < max(gaps) <= 1.2 * interval  # RFC 7675 section 5.1
    assert 0.8 * interval > _CHECK_WINDOW  # one check is over before the next starts


@pytest.mark.parametrize("seed", range(20))
def test_a_dead_remote_is_given_up_within_the_timeout_of_its_last_answer(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        dies_at = rng.uniform(0.0, 30.0)
        given_up = _given_up_at(seed, dies_at)
        assert given_up is not None
        # Never before two checks in a row went unanswered, never later than the timeout
        # after the last answer (which came before it died).
        assert dies_at + 0.8 * tuning.CONSENT_INTERVAL <= given_up <= dies_at + 7.5 + 0.05
    # A longer timeout is a longer wait, to the same rule.
    given_up = _given_up_at(seed, 10.0, timeout=20.0)
    assert given_up is not None and 20.0 < given_up <= 30.05


def test_a_remote_that_answers_is_never_given_up_however_idle() -> None:
    assert _given_up_at(3, dies_at=float("inf"), rtt=1.0, until=3600.0) is None


def test_expiry_needs_both_the_silence_and_two_missed_checks() -> None:
    clock = tuning.ConsentClock(7.5, 0.0, random.Random(0))
    # Our own event loop stalled for a minute: no check went out, nothing is concluded.
    assert not clock.expired(60.0) and clock.give_up_at() is None
    assert clock.wake_at() == clock.next_check < 60.0  # the loop checks at once instead
    for sent in (60.0, 63.0):
        clock.check_sent(sent)
        assert not clock.expired(sent + 1.5)  # one missed check is not enough ...
        clock.missed(sent)
    assert clock.expired(64.5)  # ... two in a row, 7.5 s after the last answer, are
    assert clock.give_up_at() == 7.5 and clock.wake_at() == 7.5
    clock.answered(64.6)  # a late answer restores consent
    assert not clock.expired(65.0) and clock.misses == 0 and clock.answers == 1
    # A check that was sent before the latest answer and failed tells nothing new.
    clock.missed(64.0)
    clock.missed(64.5)
    assert clock.misses == 0
    assert clock.silent_for(70.0) == pytest.approx(5.4)


@pytest.fixture
def fresh_consent_patch() -> Iterator[None]:
    tuning.reset_consent_timeout()
    yield
    tuning.reset_consent_timeout()


@pytest.mark.usefixtures("fresh_consent_patch")
async def test_each_connection_gets_the_configured_consent_timeout() -> None:
    config = dataclasses.replace(LOOPBACK, consent_timeout=12.0)
    async with linked(config) as (a, b):
        assert aioice.ice.Connection.query_consent is tuning._query_consent
        for link in (a, b):
            connection = tuning.ice_connection(link._pc)
            assert connection._p2pml_consent_timeout == 12.0
            assert tuning.consent_expired(link._pc) is None
        await send_all(a, b, b"x" * 100_000)
    assert tuning.consent_expired(object()) is None  # no ICE connection: nothing to tell


@pytest.mark.usefixtures("fresh_consent_patch")
async def test_unchecked_aioice_keeps_its_own_consent_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aioice, "__version__", "9.9.0", raising=False)
    original = aioice.ice.Connection.query_consent
    caplog.set_level("WARNING", logger=tuning.__name__)
    async with linked() as (a, b):  # connections are still made, as before
        await send_all(a, b, b"y" * 100_000)
        assert not hasattr(tuning.ice_connection(a._pc), "_p2pml_consent_timeout")
    assert not tuning.enable_consent_timeout()
    assert aioice.ice.Connection.query_consent is original
    warnings = [r for r in caplog.records if "consent_timeout" in r.getMessage()]
    assert len(warnings) == 1 and "aioice 9.9.0" in warnings[0].getMessage()


@pytest.mark.usefixtures("fresh_consent_patch")
def test_a_missing_aioice_name_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aioice.ice.Connection, "build_request")
    assert not tuning.enable_consent_timeout()
    assert "build_request" in str(tuning._consent_refused)


@pytest.mark.usefixtures("fresh_consent_patch")
async def test_an_answering_remote_keeps_consent_and_no_task_waits_between_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checks go out again and again (a faster interval here), every one answered; the link
    stays up; between two checks the connection's consent task is over (a timer waits)."""
    monkeypatch.setattr(tuning, "CONSENT_INTERVAL", 0.02)
    original = tuning._consent_check
    answers: list[bool | None] = []
    enough = asyncio.Event()
    owned: list[bool] = []  # is a running check the task aioice's close() cancels?

    async def counting(connection: Any) -> bool | None:
        owned.append(connection._query_consent_task is asyncio.current_task())
        result = await original(connection)
        answers.append(result)
        if len(answers) >= 20:
            enough.set()
        return result

    monkeypatch.setattr(tuning, "_consent_check", counting)
    config = dataclasses.replace(LOOPBACK, consent_timeout=MIN_CONSENT_TIMEOUT)
    async with linked(config) as (a, b):
        await asyncio.wait_for(enough.wait(), 10)
        assert all(answers) and all(owned)
        assert not a.closed and not b.closed
        connection = tuning.ice_connection(a._pc)
        task = connection._query_consent_task
        await asyncio.wait({task}, timeout=5)  # a check in flight ends by itself ...
        assert task.done()  # ... and no task waits for the next one (a timer does)
        await send_all(a, b, b"x" * 10_000)
    for link in (a, b):
        assert tuning.consent_expired(link._pc) is None
