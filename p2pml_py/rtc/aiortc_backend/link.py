"""The data-channel driver: one open RTCDataChannel and the RTCPeerConnection under it.

The peer-session code sees bytes in (``set_receiver``), bytes out (``send``) and a closed flag;
it never touches aiortc. Three aiortc facts shape this module:

* aiortc emits ``message`` synchronously from its SCTP receive path (pyee), as soon as the channel
  is open; a browser sends its announcement right after ``connect`` (SPEC g.14). The listener is
  therefore attached the moment the channel object exists, and messages that arrive before the
  session installs its receiver are kept (bounded) and replayed in order.
* ``RTCDataChannel.send`` never blocks: it queues in Python and adds to ``bufferedAmount``. The
  queue drains when the SCTP layer has taken the previous data
  (``RTCSctpTransport._data_channel_flush``), which emits ``bufferedamountlow`` when the amount
  falls to ``bufferedAmountLowThreshold``. ``send`` waits on that event above a high watermark,
  as simple-peer does at 64 KiB with ``drain`` (``MAX_BUFFERED_AMOUNT``) -- and also while more
  than ``max_queued_messages`` messages wait: each queued message costs aiortc a tuple and a
  task whatever its size, so a megabyte of 17-byte commands to a peer that reads nothing would
  hold ~60,000 of them. aiortc flushes its queue in order, whole messages at a time, so the
  messages still queued are the newest ones whose sizes add up to ``bufferedAmount``.
* A remote ``close()`` reaches us as an SCTP ABORT (the channel closes at once) or a DTLS
  close_notify (aiortc closes the whole connection). A remote that vanishes without closing
  (killed, unplugged) stops answering ICE consent checks, and the connection fails once
  ``RtcConfig.consent_timeout`` passed (:func:`.tuning.set_consent_timeout`; aioice alone
  waits ~30 s). All are watched: the channel's ``close`` and the connection's
  ``connectionstatechange``/``iceconnectionstatechange`` to failed/closed. A consent expiry
  closes the link with :class:`~p2pml_py.base.errors.PeerUnresponsiveError`, so that the
  session above reports the peer as unresponsive rather than closed.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from p2pml_py.base.aio import SlimEvent
from p2pml_py.base.errors import (
    LinkClosedError,
    LocalProtocolError,
    MessageTooLargeError,
    PeerUnresponsiveError,
)
from p2pml_py.rtc.aiortc_backend.tuning import consent_expired
from p2pml_py.rtc.config import DEFAULT_HIGH_WATERMARK, DEFAULT_MAX_QUEUED_MESSAGES
from p2pml_py.rtc.linkbase import LinkBase

__all__ = ["DataChannelLink"]


class DataChannelLink(LinkBase):
    """One data channel to a remote peer, with ordered delivery, backpressure and close tracking
    (the rules every link shares are in :class:`~p2pml_py.rtc.linkbase.LinkBase`).

    Built by :class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory`; the link owns the peer
    connection and closes it when the link closes, from either side.
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        channel: RTCDataChannel,
        *,
        max_message_size: int = 262144,
        high_watermark: int = DEFAULT_HIGH_WATERMARK,
        early_buffer_bytes: int = 1024 * 1024,
        max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
    ) -> None:
        super().__init__(
            high_watermark=high_watermark,
            early_buffer_bytes=early_buffer_bytes,
            max_queued_messages=max_queued_messages,
        )
        self._pc = pc
        self._channel = channel
        self._max_message_size = max_message_size
        # Sizes of the messages handed to aiortc, oldest first; trimmed to those still queued.
        # A list (an empty deque is a 528-byte block): at most max_queued_messages long.
        self._queued_sizes: list[int] = []
        self._queued_total = 0
        self._opened = SlimEvent()
        self._settled = SlimEvent()  # set on open or on close, whichever comes first
        self._shutdown_task: asyncio.Task[None] | None = None

        # Fires when the queue falls to this level after having been above it; half the
        # watermark leaves room to refill before the SCTP layer runs dry.
        channel.bufferedAmountLowThreshold = high_watermark // 2
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._writable_again)
        channel.on("open", self._on_open)
        channel.on("close", self._on_channel_close)
        pc.on("connectionstatechange", self._on_pc_state)
        pc.on("iceconnectionstatechange", self._on_pc_state)
        if channel.readyState == "open":
            self._on_open()
        elif channel.readyState in ("closing", "closed"):
            self._mark_closed("data channel closed")

    # -- properties -------------------------------------------------------------------------

    @property
    def channel(self) -> RTCDataChannel:
        """The aiortc channel underneath, for diagnostics and tests; send through the link."""
        return self._channel

    @property
    def label(self) -> str:
        return str(self._channel.label)

    @property
    def buffered_amount(self) -> int:
        """Bytes queued in the data channel and not yet handed to SCTP."""
        return int(self._channel.bufferedAmount)

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The remote (ip, port) of the selected ICE pair, if known.

        Best effort: aiortc exposes no selected pair, so this reads aioice's nominated pair
        through private attributes and returns None if they are not there.
        """
        try:
            ice_connection = self._channel.transport.transport.transport.iceGatherer._connection
            pair = ice_connection._nominated.get(1)
            if pair is None:
                return None
            host, port = pair.remote_addr
            return (str(host), int(port))
        except (AttributeError, TypeError, ValueError):
            return None

    # -- receiving --------------------------------------------------------------------------

    def _on_message(self, message: bytes | str) -> None:
        if self._closed:
            return
        # Browsers set binaryType = 'arraybuffer' and treat a text message as data (SPEC b).
        data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        if len(data) > self._max_message_size:
            self._fail(
                MessageTooLargeError(
                    f"received a {len(data)}-byte message, more than max_message_size "
                    f"{self._max_message_size}"
                )
            )
            return
        self._receive(data)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send one binary message, waiting first while too much data is queued.

        Raises :class:`~p2pml_py.base.errors.LinkClosedError` if the link is (or becomes)
        closed, and :class:`~p2pml_py.base.errors.LocalProtocolError` if the message is larger
        than the remote accepts (``a=max-message-size``).
        """
        await self._wait_room()
        payload = bytes(data)
        try:
            self._channel.send(payload)
        except ValueError as exc:
            # aiortc checks the remote's a=max-message-size (RTCSctpTransport._data_channel_send).
            raise LocalProtocolError(str(exc)) from exc
        except InvalidStateError as exc:  # the channel closed under us
            self._went_down("data channel closed")
            raise LinkClosedError(f"link closed: {self._close_reason}") from exc
        self._sent(len(payload))
        self._queued_sizes.append(len(payload))
        self._queued_total += len(payload)

    def _backlog(self) -> tuple[int, int]:
        amount = int(self._channel.bufferedAmount)
        return amount, self._queued(amount)

    def _wake_when_below(self, amount: int) -> None:
        self._channel.bufferedAmountLowThreshold = amount

    def _queued(self, buffered_amount: int) -> int:
        """How many of our messages aiortc still holds, given its ``bufferedAmount``."""
        sizes = self._queued_sizes
        taken = 0
        total = self._queued_total
        while taken < len(sizes) and total - sizes[taken] >= buffered_amount:
            total -= sizes[taken]
            taken += 1
        if taken:
            del sizes[:taken]
            self._queued_total = total
        return len(sizes)

    @property
    def queued_messages(self) -> int:
        """Messages handed to aiortc and not yet taken by its SCTP layer."""
        return self._queued(int(self._channel.bufferedAmount))

    # -- opening and closing ----------------------------------------------------------------

    def _on_open(self) -> None:
        self._opened.set()
        self._settled.set()
        # A channel opens once: the listener (and the emitter's dict for "open") can go.
        self._channel.remove_listener("open", self._on_open)

    async def wait_open(self) -> None:
        """Return when the channel is open; raise LinkClosedError if it closed first.

        Links from :class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory` are already open.
        """
        if not self._opened.is_set() and not self._closed:
            await self._settled.wait()
        if self._closed:
            raise LinkClosedError(f"link closed before it opened: {self._close_reason}")

    def _went_down(self, reason: str) -> None:
        """The channel or the connection closed under us. When our consent checks gave the
        remote up, that is the reason, whichever layer noticed first (SCTP/DTLS see the ICE
        transport end before the connection state changes)."""
        silence = consent_expired(self._pc)
        if silence is None:
            self._mark_closed(reason)
        else:
            self._mark_closed(
                PeerUnresponsiveError(
                    f"the remote answered no ICE consent check for {silence:.1f} s"
                )
            )

    def _on_channel_close(self) -> None:
        self._went_down("data channel closed")

    def _on_pc_state(self) -> None:
        states = (self._pc.connectionState, self._pc.iceConnectionState)
        if "failed" in states:
            self._went_down(f"peer connection failed (connection/ICE state {states})")
        elif "closed" in states:
            self._went_down("peer connection closed")

    def _on_closed(self) -> None:
        self._settled.set()
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        self._pc.remove_listener("connectionstatechange", self._on_pc_state)
        self._pc.remove_listener("iceconnectionstatechange", self._on_pc_state)
        if self._channel.readyState not in ("closing", "closed"):
            self._channel.close()
        await self._pc.close()

    async def aclose(self) -> None:
        """Close the channel and the peer connection; safe to call many times."""
        self._mark_closed("closed locally")
        assert self._shutdown_task is not None
        # shield: a cancelled aclose() must not leave the peer connection half closed.
        await asyncio.shield(self._shutdown_task)
