"""``sack_every_second_packet``: an aiortc receiver acknowledges every second DATA packet.

aiortc acknowledges each received DATA packet with its own SACK (``_handle_data`` ends in
``_send_sack``). RFC 9260 section 6.2 asks for a SACK for at least every second packet, sent
within 200 ms, and browsers' dcSCTP does so. The patch acknowledges every second packet, and at
once any packet after which a gap or a duplicate is reported (fast retransmission needs those);
the SACK of an odd packet waits at most :data:`SACK_DELAY` (20 ms) for the next one. This halves
the SACKs an aiortc *receiver* sends -- which is what a seeder serving aiortc viewers spends a
large share of its time decrypting and processing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, need, target

logger = logging.getLogger(__name__)

#: Seconds after which a deferred SACK is sent even if no further packet arrived.
SACK_DELAY = 0.02


def _make_handle_data(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _handle_data(self: Any, data: bytes) -> None:
        # Every second packet is acknowledged at once, and every packet that leaves a gap or
        # repeats data (the sender needs those SACKs for fast retransmission).
        defer = (
            not getattr(self, "_p2pml_sack_deferred", False)
            and not self._sack_misordered
            and not self._sack_duplicates
        )
        self._p2pml_defer_sack = defer
        try:
            await original(self, data)
        finally:
            self._p2pml_defer_sack = False

    return _handle_data


def _sack_timer_fired(sctp: Any) -> None:
    sctp._p2pml_sack_timer = None
    if sctp._sack_needed and sctp._association_state == sctp.State.ESTABLISHED:
        task = asyncio.ensure_future(sctp._send_sack())
        task.add_done_callback(_consume)


def _defer_sack(sctp: Any) -> None:
    """Leave the SACK to the next packet (``_sack_needed`` stays True), or to the timer."""
    sctp._p2pml_sack_deferred = True
    if getattr(sctp, "_p2pml_sack_timer", None) is None:
        sctp._p2pml_sack_timer = asyncio.get_running_loop().call_later(
            SACK_DELAY, _sack_timer_fired, sctp
        )


def _make_send_sack(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _send_sack(self: Any) -> None:
        if getattr(self, "_p2pml_defer_sack", False):
            _defer_sack(self)
            return
        self._p2pml_sack_deferred = False
        await original(self)

    return _send_sack


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("deferred SACK not sent: %r", task.exception())


def probe(names: Names) -> list[Target]:
    need(names.sctp, "State")
    return [
        target(names.sctp, "_handle_data", _make_handle_data),
        target(names.sctp, "_send_sack", _make_send_sack),
    ]


PATCH = Patch("sack_every_second_packet", probe)
