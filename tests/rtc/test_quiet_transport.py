"""aiortc's fire-and-forget SCTP sends on a transport that died leave no unretrieved task error
(:func:`p2pml_py.rtc.aiortc_backend.tuning.quiet_closed_transport`; seen in the soak run).

Real aiortc on 127.0.0.1: a linked pair, then the DTLS transport under one side stops being
connected while its SCTP association still counts as established (what a vanished remote leaves
behind for a moment), and data is flushed the way aiortc does it on every ``send``:
``asyncio.ensure_future(self._data_channel_flush())``. aiortc's own method raises
``ConnectionError`` there; the wrapped one ends quietly, and the suite's unhandled-exception
fixture (tests/conftest.py) would fail this test if any task error went unretrieved.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from p2pml_py.rtc.aiortc_backend import tuning
from tests.rtc.helpers import linked

#: WebRTC Data Channel binary payload protocol identifier (RFC 8831 section 8).
PPID_BINARY = 53


async def test_a_flush_after_the_dtls_transport_closed_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="p2pml_py.rtc.aiortc_backend.tuning")
    async with linked() as (a, _b):
        assert tuning.quiet_closed_transport()  # the factory installed it: idempotent
        sctp = a.channel.transport
        dtls = sctp.transport
        dtls._state = type(dtls._state).CLOSED  # gone underneath; SCTP has not noticed yet
        assert sctp._association_state == sctp.State.ESTABLISHED

        cls = type(sctp)
        with pytest.MonkeyPatch.context() as unwrapped:  # aiortc's own methods, for a moment
            for name in ("_data_channel_flush", "_transmit"):
                unwrapped.setattr(cls, name, getattr(cls, name).__wrapped__)
            sctp._data_channel_queue.append((a.channel, PPID_BINARY, b"x" * 100))
            with pytest.raises(ConnectionError):
                await sctp._data_channel_flush()  # what aiortc's task would raise, unretrieved

        sctp._data_channel_queue.append((a.channel, PPID_BINARY, b"y" * 100))
        task = asyncio.ensure_future(sctp._data_channel_flush())  # as aiortc does
        await asyncio.wait([task])
        assert task.exception() is None
        assert any("closed transport" in r.getMessage() for r in caplog.records)
        dtls._state = type(dtls._state).CONNECTED  # let the pair close normally
    del task
    gc.collect()
