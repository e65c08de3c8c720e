"""``transmit_scan_skip``: ``_transmit`` walks the sent queue only when something may be marked.

``RTCSctpTransport._transmit`` runs on every SACK and first walks the whole sent queue looking
for chunks marked for retransmission -- with a full 1 MiB receive window that is ~900 chunks per
SACK, 8-10 % of a seeder's CPU. Chunks are marked only in two places: a SACK with gap blocks
(``_receive_sack_chunk``) and the T3 timer (``_t3_expired``). The patch keeps a per-association
flag raised by those two, and while it is down, runs the original ``_transmit`` against an empty
stand-in sent queue (so the walk is empty) and moves the chunks it sent onto the real queue
afterwards. That is only sound if ``_transmit`` does not suspend, so the fast path is taken only
when the selected ICE pair is a plain UDP socket (``aioice.ice.StunProtocol``: ``send_data`` is
a bare ``sendto``), never through TURN. The flag goes down again once a full walk finds nothing
marked. With ``fast_data_path`` installed, its synchronous transmit is tried first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, target
from p2pml_py.rtc.aiortc_backend.speedups._core import originals as _originals
from p2pml_py.rtc.aiortc_backend.speedups.dtls_records import _udp_pair
from p2pml_py.rtc.aiortc_backend.speedups.sctp_send import _fast_transmit


def _plain_udp(sctp: Any) -> bool:
    """True when sending on this association cannot suspend (selected pair on a UDP socket)."""
    return _udp_pair(sctp.transport) is not None


def _make_transmit(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _transmit(self: Any) -> None:
        if "fast_data_path:_send" in _originals and _fast_transmit(self):
            return
        if getattr(self, "_p2pml_retransmit", True) or not _plain_udp(self):
            await original(self)
            # Lower the flag only once nothing is marked any more.
            self._p2pml_retransmit = any(chunk._retransmit for chunk in self._sent_queue)
            return
        real = self._sent_queue
        self._sent_queue = type(real)()
        try:
            await original(self)
        finally:
            real.extend(self._sent_queue)
            self._sent_queue = real

    return _transmit


def _make_receive_sack_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _receive_sack_chunk(self: Any, chunk: Any) -> None:
        if chunk.gaps:
            self._p2pml_retransmit = True  # chunks may be struck and marked
        await original(self, chunk)

    return _receive_sack_chunk


def _make_t3_expired(original: Callable[..., Any]) -> Callable[..., Any]:
    def _t3_expired(self: Any) -> None:
        self._p2pml_retransmit = True  # every outstanding chunk gets marked
        original(self)

    return _t3_expired


def probe(names: Names) -> list[Target]:
    return [
        target(names.sctp, "_transmit", _make_transmit),
        target(names.sctp, "_receive_sack_chunk", _make_receive_sack_chunk),
        target(names.sctp, "_t3_expired", _make_t3_expired),
    ]


PATCH = Patch("transmit_scan_skip", probe)
