"""What a peer connection no longer needs once its data channel is open, given back.

A P2PML connection is negotiated once -- one offer, one answer, every candidate inside them
(no trickle, no renegotiation: SPEC, tracker signalling) -- and then lives for as long as two
peers trade segments, on a super-peer hundreds at a time. aiortc keeps what the negotiation
parsed for the connection's whole life, though nothing reads it after that:

* ``RTCPeerConnection`` keeps both descriptions as parsed ``aiortc.sdp.SessionDescription``
  objects (media, candidates, fingerprints, groups: ~100 small objects, ~5 KiB per connection,
  measured with ``P2PML_CAPACITY_TRACEMALLOC`` on the capacity seed). They are read by
  ``localDescription``/``remoteDescription``, ``createOffer``/``createAnswer``, a later
  ``setLocalDescription``/``setRemoteDescription`` and ``addIceCandidate`` (aiortc 1.16
  ``rtcpeerconnection.py``), none of which this backend calls on an open connection;
* ``RTCPeerConnection`` also keeps the remote's ICE and DTLS parameters per transport (the
  ``__remoteIce`` and ``__remoteDtls`` dicts: credentials, fingerprints), which only its
  ``__connect`` reads, once, to start the transports -- done by the time the channel is open;
* every ``RTCDtlsTransport`` has an ``RtpRouter`` (a set and four dicts, ~0.6 KiB) for the RTP
  of media transceivers; a connection without one never registers anything in it, and routing
  a stray RTP packet through empty tables changes nothing (``route_rtp``/``route_rtcp``,
  aiortc 1.16 ``rtcdtlstransport.py``): such transports share one empty router;
* aioice's ``Connection._early_checks`` (checks that arrived before ``connect()``) is a bounded
  deque that ``connect()`` empties but keeps (a 528-byte block); it is read only while
  ``_early_checks_done`` is false, and ``connect()`` sets it once for good (aioice 0.13
  ``ice.py``).

:func:`release_negotiation` drops them (after that ``pc.localDescription`` is ``None``). It
reads those names only on the aiortc/aioice versions they were checked against
(``negotiated`` in :data:`p2pml_py.rtc.aiortc_backend.versions.CHECKED`); elsewhere it does
nothing -- the connection keeps what aiortc keeps -- and says why once, at debug level (memory,
not behaviour, is at stake).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from p2pml_py.rtc.aiortc_backend import versions

__all__ = ["release_negotiation"]

logger = logging.getLogger(__name__)

#: ``RTCPeerConnection``'s private description attributes (name-mangled).
DESCRIPTIONS = tuple(
    f"_RTCPeerConnection__{state}{side}Description"
    for state in ("current", "pending")
    for side in ("Local", "Remote")
)

#: ``RTCPeerConnection``'s dicts of the remote's ICE and DTLS parameters (name-mangled).
REMOTE_PARAMETERS = ("_RTCPeerConnection__remoteIce", "_RTCPeerConnection__remoteDtls")

#: The one empty ``RtpRouter`` the DTLS transports of data-channel-only connections share.
_EMPTY_ROUTERS: dict[type, Any] = {}
_ROUTER_TABLES = ("receivers", "senders", "mid_table", "ssrc_table", "payload_type_table")


@functools.cache
def _unsupported() -> str | None:
    """Why not (once per process, then cached), or None on the checked versions."""
    reason = versions.unsupported("negotiated")
    if reason is not None:
        logger.debug("negotiation state kept as aiortc keeps it: %s", reason)
    return reason


def _unused(router: Any) -> bool:
    return all(not getattr(router, table, True) for table in _ROUTER_TABLES)


def release_negotiation(pc: Any) -> bool:
    """Drop ``pc``'s parsed descriptions, remote parameters and RTP router and its ICE
    connection's early-check buffer; call it once the data channel is open. Returns whether
    anything was released."""
    if _unsupported() is not None:
        return False
    released = False
    for name in DESCRIPTIONS:
        if getattr(pc, name, None) is not None:
            setattr(pc, name, None)
            released = True
    for name in REMOTE_PARAMETERS:
        parameters = getattr(pc, name, None)
        if isinstance(parameters, dict) and parameters:
            parameters.clear()
            released = True
    sctp = getattr(pc, "sctp", None)
    dtls: Any = getattr(sctp, "transport", None)
    router = getattr(dtls, "_rtp_router", None)
    if router is not None and not pc.getTransceivers() and _unused(router):
        shared = _EMPTY_ROUTERS.setdefault(type(router), type(router)())
        if router is not shared and _unused(shared):
            dtls._rtp_router = shared
            released = True
    ice: Any = getattr(dtls, "transport", None)
    connection: Any = getattr(getattr(ice, "iceGatherer", None), "_connection", None)
    if getattr(connection, "_early_checks_done", False) is True:
        connection._early_checks = ()
        released = True
    return released
