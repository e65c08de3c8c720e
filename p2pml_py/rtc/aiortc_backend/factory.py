"""Builds aiortc peer connections that look, on the wire, like the browsers' (SPEC (b)).

A browser peer (simple-peer ``lite.js`` under bittorrent-tracker) is non-trickle: it publishes an
offer or answer only once ICE gathering is over, with every candidate inside and the
``a=ice-options:trickle`` line removed (``filterTrickle``); the tracker relays that one SDP and
nothing else. The initiator opens one data channel with ``createDataChannel(label, {})``: a
40-hex-char random label, ordered, reliable, negotiated in band (DCEP), protocol "".

aiortc already gathers before ``setLocalDescription`` returns, so its local description is the
complete SDP. What this module adds:

* ICE servers are always passed explicitly: ``RTCConfiguration(iceServers=None)`` would make aiortc
  use ``stun:stun.l.google.com:19302`` (``RTCIceGatherer.getDefaultIceServers``).
* Host candidates come from ``RtcConfig.ice_addresses`` (see :mod:`.addresses`), on ports of
  ``RtcConfig.ice_port_range`` when it is set (see :mod:`.ports`).
* A remote SDP is complete by protocol, so end-of-candidates is signalled right after applying it
  (unless it says so itself): aioice then reports an ICE failure as soon as the checks are over
  instead of waiting for candidates that will never come.
* A remote SDP is checked (:func:`.sdp.check_remote_sdp`) before anything is created for it: a
  hostile offer costs a parse, not a peer connection, and what would crash aiortc's background
  tasks later (no fingerprint, no SCTP port ...) never reaches aiortc.
* Every failure closes the RTCPeerConnection before the error leaves this module, and only as an
  ``RtcError``: whatever aiortc raises while applying a remote SDP is wrapped.
* Every connection is bounded in time. Setting up: gathering within ``ice_timeout``, then the
  data channel open within ``open_timeout`` of applying the remote SDP, or everything is closed
  (the swarm's slot with it). Browsers have no such bound of their own: bittorrent-tracker
  clears its 50 s ``OFFER_TIMEOUT`` once an answer arrives (``lib/client/
  websocket-tracker.js``) and p2p-media-loader keeps a connecting peer until simple-peer says
  it connected (``core/p2p/tracker-client.ts``), i.e. until ICE fails. Once open: a remote
  that stops answering ICE consent checks is released after ``consent_timeout``
  (:func:`.tuning.set_consent_timeout`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from p2pml_py.base.aio import SlimEvent
from p2pml_py.base.errors import (
    LinkClosedError,
    LocalProtocolError,
    RtcError,
    RtcSdpError,
    RtcTimeoutError,
)
from p2pml_py.rtc.aiortc_backend import garbage
from p2pml_py.rtc.aiortc_backend.addresses import gathering_addresses
from p2pml_py.rtc.aiortc_backend.link import DataChannelLink
from p2pml_py.rtc.aiortc_backend.negotiated import release_negotiation
from p2pml_py.rtc.aiortc_backend.ports import gathering_ports
from p2pml_py.rtc.aiortc_backend.sdp import Kind, check_remote_sdp
from p2pml_py.rtc.aiortc_backend.tuning import quiet_closed_transport, set_consent_timeout
from p2pml_py.rtc.config import RtcConfig

__all__ = ["IncomingConnection", "OutgoingConnection", "RtcFactory", "new_channel_label"]

logger = logging.getLogger(__name__)

_TRICKLE_RE = re.compile(r"^a=ice-options:(.*)$")
_MAX_MESSAGE_SIZE_RE = re.compile(r"^a=max-message-size:\d+$")


def new_channel_label() -> str:
    """40 lowercase hex chars from 20 random bytes, like simple-peer's ``randombytes(20)``."""
    return secrets.token_hex(20)


def _ice_servers(config: RtcConfig) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=server.url(), username=server.username, credential=server.password)
        for server in config.parsed_ice_servers
    ]


def _local_sdp(pc: RTCPeerConnection, config: RtcConfig) -> str:
    """The local description as we publish it: non-trickle, our max-message-size."""
    description = pc.localDescription
    assert description is not None
    lines: list[str] = []
    for line in description.sdp.splitlines():
        trickle = _TRICKLE_RE.match(line)
        if trickle is not None:
            options = [o for o in trickle.group(1).split() if o != "trickle"]
            if not options:
                continue
            line = "a=ice-options:" + " ".join(options)
        elif _MAX_MESSAGE_SIZE_RE.match(line):
            line = f"a=max-message-size:{config.max_message_size}"
        lines.append(line)
    sdp = "\r\n".join(lines) + "\r\n"
    if "\na=candidate:" not in sdp:
        if config.ice_addresses:
            why = f"none of ice_addresses={config.ice_addresses!r} could be bound"
        else:
            why = "aioice found no interface address (it skips 127.0.0.1 and ::1)"
        if config.ice_port_range is not None:
            low, high = config.ice_port_range
            why += f", or no port of ice_port_range {low}-{high} was free"
        raise RtcError(f"ICE gathered no local candidate: {why}")
    return sdp


def _remote_error(exc: Exception, kind: Kind) -> RtcError:
    """What aiortc raised while it used a remote SDP, as the error this module documents."""
    # aiortc's parser and validator raise builtin errors, and errors of its own module
    # (InvalidStateError ...), for input it cannot use.
    if isinstance(
        exc, (ValueError, LookupError, TypeError, AttributeError, AssertionError)
    ) or type(exc).__module__.startswith("aiortc"):
        return RtcSdpError(f"unusable {kind} SDP: {exc!r}")
    # Anything else (an OSError setting up mDNS resolution, say) is not the remote's fault,
    # but it still must not escape as an exception the transport seam does not document.
    return RtcError(f"applying the remote {kind} failed: {exc!r}")


async def _apply_remote(pc: RTCPeerConnection, sdp: str, kind: Kind) -> None:
    """setRemoteDescription + end-of-candidates; any failure becomes an RtcError."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        # Idempotent: aiortc ignores it after an a=end-of-candidates of the SDP itself.
        await pc.addIceCandidate(None)
    except Exception as exc:
        raise _remote_error(exc, kind) from exc


def _check_remote_candidates(pc: RTCPeerConnection, kind: Kind) -> None:
    """After the remote SDP is applied: it left aioice a candidate to check (its mDNS names,
    say, may not have resolved); else the connection could never be made."""
    sctp = pc.sctp
    if sctp is not None and not sctp.transport.transport.getRemoteCandidates():
        raise RtcSdpError(
            f"{kind} SDP has no candidate we can reach (its mDNS names did not resolve?)"
        )


async def _gather(
    pc: RTCPeerConnection,
    config: RtcConfig,
    make: Callable[[], Awaitable[RTCSessionDescription]],
) -> str:
    """Create the offer or answer, gather within ice_timeout, return the SDP we publish."""
    try:
        async with asyncio.timeout(config.ice_timeout):
            with gathering_addresses(config.ice_addresses), gathering_ports(config.ice_port_range):
                await pc.setLocalDescription(await make())
    except TimeoutError:
        raise RtcTimeoutError(
            f"ICE gathering did not complete within ice_timeout={config.ice_timeout} s"
        ) from None
    return _local_sdp(pc, config)


class RtcFactory:
    """Creates outgoing (offer) and incoming (answer) connections with one configuration."""

    def __init__(self, config: RtcConfig | None = None) -> None:
        self.config = config if config is not None else RtcConfig()
        # One for all our connections: aiortc only reads it (rtcpeerconnection.py, 1.16).
        self._configuration = RTCConfiguration(iceServers=_ice_servers(self.config))
        quiet_closed_transport()  # once per process: no unretrieved errors from dead transports

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._configuration)
        garbage.watch(pc)  # its object graph is cyclic garbage once closed
        return pc

    def _new_link(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> DataChannelLink:
        return DataChannelLink(
            pc,
            channel,
            max_message_size=self.config.max_message_size,
            high_watermark=self.config.high_watermark,
            early_buffer_bytes=self.config.early_buffer_bytes,
        )

    async def create_offer(self) -> OutgoingConnection:
        """A new connection with one data channel and a complete offer SDP in ``.sdp``."""
        pc = self._new_pc()
        channel = pc.createDataChannel(new_channel_label(), ordered=True, protocol="")
        set_consent_timeout(pc, self.config.consent_timeout)  # before ICE can complete
        link = self._new_link(pc, channel)
        try:
            sdp = await _gather(pc, self.config, pc.createOffer)
        except BaseException:
            await link.aclose()
            raise
        return OutgoingConnection(self.config, pc, link, sdp)

    async def accept_offer(self, sdp: str) -> IncomingConnection:
        """Answer a remote offer; ``.sdp`` of the result is the complete answer SDP.

        Raises :class:`~p2pml_py.base.errors.RtcSdpError` for an unusable offer.
        """
        offer = check_remote_sdp(sdp, "offer")  # before anything is created for it
        pc = self._new_pc()
        incoming = IncomingConnection(self, pc)
        try:
            await _apply_remote(pc, offer.sdp, "offer")
            _check_remote_candidates(pc, "offer")  # before we bind sockets for an answer
            # ICE cannot complete before the offerer has our answer (it nominates).
            set_consent_timeout(pc, self.config.consent_timeout)
            try:
                incoming.sdp = await _gather(pc, self.config, pc.createAnswer)
            except RtcError:
                raise
            except Exception as exc:  # aiortc answering what the offer set up
                raise _remote_error(exc, "offer") from exc
        except BaseException:
            await incoming.aclose()
            raise
        return incoming


class OutgoingConnection:
    """Our offer, waiting for the remote answer. Use ``accept_answer`` once, or ``aclose``."""

    def __init__(
        self, config: RtcConfig, pc: RTCPeerConnection, link: DataChannelLink, sdp: str
    ) -> None:
        self._config = config
        self._pc = pc
        self._link = link
        self._handed_over = False
        self._answered = False
        #: The complete offer SDP, to publish through the tracker.
        self.sdp = sdp

    @property
    def label(self) -> str:
        """The data-channel label, 40 hex chars."""
        return self._link.label

    @property
    def connection_state(self) -> str:
        """aiortc's ``RTCPeerConnection.connectionState`` ("closed" once released)."""
        return str(self._pc.connectionState)

    async def accept_answer(self, sdp: str) -> DataChannelLink:
        """Apply the remote answer and return the link once the data channel is open.

        From then on the link owns the peer connection. Raises ``RtcSdpError`` (bad answer),
        ``RtcTimeoutError`` (not open within ``open_timeout``) or ``RtcError`` (ICE/DTLS
        failed); in each case the peer connection is closed.
        """
        if self._answered:
            raise LocalProtocolError("accept_answer() was already called on this offer")
        self._answered = True
        try:
            answer = check_remote_sdp(sdp, "answer")
            await _apply_remote(self._pc, answer.sdp, "answer")
            _check_remote_candidates(self._pc, "answer")
            await _wait_open(self._link, self._config.open_timeout)
        except BaseException:
            await self._link.aclose()
            raise
        release_negotiation(self._pc)
        self._handed_over = True
        return self._link

    async def aclose(self) -> None:
        """Close the peer connection unless ``accept_answer`` handed it to a link. Idempotent."""
        if not self._handed_over:
            await self._link.aclose()

    async def __aenter__(self) -> OutgoingConnection:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


class IncomingConnection:
    """Our answer to a remote offer, waiting for the remote to open its data channel."""

    def __init__(self, factory: RtcFactory, pc: RTCPeerConnection) -> None:
        self._factory = factory
        self._pc = pc
        self._link: DataChannelLink | None = None
        self._handed_over = False
        self._waited = False
        self._closed = False
        self._changed = SlimEvent()  # a channel arrived, or the connection failed/closed
        #: The complete answer SDP, to send back through the tracker.
        self.sdp = ""
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    @property
    def connection_state(self) -> str:
        """aiortc's ``RTCPeerConnection.connectionState`` ("closed" once released)."""
        return str(self._pc.connectionState)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        # Runs inside aiortc's emit, before the first message can be dispatched: the link's
        # listeners are in place for a browser announcement sent right after open.
        if self._link is not None:
            _close_extra_channel(channel)
            return
        self._link = self._factory._new_link(self._pc, channel)
        self._changed.set()

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._changed.set()

    async def wait_link(self) -> DataChannelLink:
        """Return the link once the remote opened its data channel (within ``open_timeout`` in
        all: the connection holds a swarm slot until then).

        From then on the link owns the peer connection. Raises ``RtcTimeoutError`` or
        ``RtcError``; in each case the peer connection is closed.
        """
        if self._waited:
            raise LocalProtocolError("wait_link() was already called on this connection")
        self._waited = True
        timeout = self._factory.config.open_timeout
        try:
            try:
                async with asyncio.timeout(timeout):
                    while self._link is None:
                        if self._closed or self._pc.connectionState in ("failed", "closed"):
                            raise RtcError(
                                f"peer connection {self._pc.connectionState} before the remote "
                                "opened a data channel"
                            )
                        self._changed.clear()
                        await self._changed.wait()
                    link = self._link
                    await link.wait_open()  # aiortc emits an incoming channel already open
            except TimeoutError:
                raise RtcTimeoutError(
                    f"no data channel from the remote within open_timeout={timeout} s"
                ) from None
            except LinkClosedError as exc:
                raise RtcError(f"connection failed: {link.close_reason}") from exc
        except BaseException:
            await self.aclose()
            raise
        pc = self._pc
        pc.remove_listener("connectionstatechange", self._on_state)
        # The remote may still open more channels; they are closed without this object (and
        # the answer SDP it holds), which nothing needs once the link is handed over.
        pc.remove_listener("datachannel", self._on_datachannel)
        pc.on("datachannel", _close_extra_channel)
        release_negotiation(pc)
        self._handed_over = True
        return self._link

    async def aclose(self) -> None:
        """Close the peer connection unless ``wait_link`` handed it to a link. Idempotent."""
        if self._handed_over:
            return
        self._closed = True
        self._changed.set()
        if self._link is not None:
            await self._link.aclose()
        else:
            await self._pc.close()

    async def __aenter__(self) -> IncomingConnection:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


def _close_extra_channel(channel: RTCDataChannel) -> None:
    """A connection carries one data channel (SPEC, peer protocol); any other is closed."""
    logger.debug("closing extra data channel %r", channel.label)
    channel.close()


async def _wait_open(link: DataChannelLink, open_timeout: float) -> None:
    try:
        async with asyncio.timeout(open_timeout):
            await link.wait_open()
    except TimeoutError:
        raise RtcTimeoutError(
            f"data channel not open within open_timeout={open_timeout} s"
        ) from None
    except LinkClosedError as exc:
        raise RtcError(f"connection failed: {link.close_reason}") from exc
