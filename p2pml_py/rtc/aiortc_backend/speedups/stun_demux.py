"""``stun_demux``: DTLS and RTP datagrams skip aioice's failed STUN parse.

``aioice.ice.StunProtocol.datagram_received`` tries to parse every datagram as STUN and falls
back to "data" on ``ValueError``. RFC 7983 demultiplexes on the first byte: 20-63 is DTLS,
128-191 RTP/RTCP, 0-3 STUN. The patch hands DTLS/RTP datagrams on without the failed parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, target


def _make_datagram_received(original: Callable[..., Any]) -> Callable[..., Any]:
    def datagram_received(self: Any, data: bytes | str, addr: tuple[Any, ...]) -> None:
        # RFC 7983: 20-63 DTLS, 128-191 RTP/RTCP -- never STUN (0-3).
        if isinstance(data, bytes) and data and (19 < data[0] < 64 or 127 < data[0] < 192):
            self.receiver.data_received(data, self.local_candidate.component)
            return
        original(self, data, addr)

    return datagram_received


def probe(names: Names) -> list[Target]:
    return [target(names.stun_protocol, "datagram_received", _make_datagram_received)]


PATCH = Patch("stun_demux", probe)
