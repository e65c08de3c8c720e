"""p2pml_py.rtc.aiortc_backend.tuning: the UDP buffer patch reaches aioice's sockets, data still flows intact,
and the patch can be undone; uvloop installation reports what it did."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
from collections.abc import Iterator

import aioice
import aioice.ice
import pytest

from p2pml_py.rtc.aiortc_backend import DataChannelLink, tuning

from .helpers import linked, send_all


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
