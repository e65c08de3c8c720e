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
* A remote ``close()`` reaches us as an SCTP ABORT (the channel closes at once), a DTLS
  close_notify (aiortc closes the whole connection) or an ICE consent failure (~30 s of silence,
  aioice ``CONSENT_FAILURES * CONSENT_INTERVAL``). All three are watched: the channel's ``close``
  and the connection's ``connectionstatechange``/``iceconnectionstatechange`` to failed/closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from p2pml_py.base.errors import LinkClosedError, LocalProtocolError, MessageTooLargeError
from p2pml_py.rtc.config import DEFAULT_HIGH_WATERMARK, DEFAULT_MAX_QUEUED_MESSAGES

__all__ = ["DataChannelLink"]

logger = logging.getLogger(__name__)

Receiver = Callable[[bytes], None]


class DataChannelLink:
    """One data channel to a remote peer, with ordered delivery, backpressure and close tracking.

    Built by :class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory`; the link owns the peer connection and
    closes it when the link closes, from either side.
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
        self._pc = pc
        self._channel = channel
        self._max_message_size = max_message_size
        self._high_watermark = high_watermark
        self._early_buffer_bytes = early_buffer_bytes
        self._max_queued_messages = max_queued_messages
        # Sizes of the messages handed to aiortc, oldest first; trimmed to those still queued.
        self._queued_sizes: deque[int] = deque()
        self._queued_total = 0
        self._receiver: Receiver | None = None
        self._early: deque[bytes] = deque()
        self._early_size = 0
        self._closed = False
        self._close_reason: BaseException | str | None = None
        self._closed_event = asyncio.Event()
        self._opened = asyncio.Event()
        self._settled = asyncio.Event()  # set on open or on close, whichever comes first
        self._writable = asyncio.Event()
        self._writable.set()
        self._shutdown_task: asyncio.Task[None] | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.messages_received = 0

        # Fires when the queue falls to this level after having been above it; half the
        # watermark leaves room to refill before the SCTP layer runs dry.
        channel.bufferedAmountLowThreshold = high_watermark // 2
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._on_buffered_amount_low)
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
    def closed(self) -> bool:
        """True once the link can no longer carry data (closed by either side or failed)."""
        return self._closed

    @property
    def close_reason(self) -> BaseException | str | None:
        """Why the link closed: a short text, or the exception that closed it; None while open."""
        return self._close_reason

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
    def high_watermark(self) -> int:
        return self._high_watermark

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

    def set_receiver(self, callback: Receiver) -> None:
        """Deliver every received message, in order, to ``callback``.

        Messages that arrived earlier are delivered now, before this returns. If the callback
        raises, the link closes with that exception as ``close_reason`` (a peer that sends what
        the session cannot handle is dropped).
        """
        self._receiver = callback
        while self._early and self._receiver is callback and not self._closed:
            data = self._early.popleft()
            self._early_size -= len(data)
            self._deliver(callback, data)
        self._early.clear()
        self._early_size = 0

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
        self.messages_received += 1
        self.bytes_received += len(data)
        receiver = self._receiver
        if receiver is not None:
            self._deliver(receiver, data)
            return
        if self._early_size + len(data) > self._early_buffer_bytes:
            self._fail(
                LinkClosedError(
                    f"more than {self._early_buffer_bytes} bytes arrived before a receiver was set"
                )
            )
            return
        self._early.append(data)
        self._early_size += len(data)

    def _deliver(self, receiver: Receiver, data: bytes) -> None:
        try:
            receiver(data)
        except Exception as exc:
            # The callback runs inside aiortc's SCTP receive path; an exception escaping into
            # pyee would surface as an 'error' event there, so it ends this link instead.
            logger.warning("receiver raised %r; closing link %s", exc, self.label)
            self._fail(exc)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send one binary message, waiting first while too much data is queued.

        Raises :class:`~p2pml_py.base.errors.LinkClosedError` if the link is (or becomes) closed, and
        :class:`~p2pml_py.base.errors.LocalProtocolError` if the message is larger than the remote
        accepts (``a=max-message-size``).
        """
        while True:
            if self._closed:
                raise LinkClosedError(f"link closed: {self._close_reason}")
            amount = self._channel.bufferedAmount
            if amount <= self._high_watermark and self._queued(amount) < self._max_queued_messages:
                break
            # Wake up once the queue has drained to half of what it is (or of the watermark).
            self._channel.bufferedAmountLowThreshold = min(amount, self._high_watermark) // 2
            self._writable.clear()
            await self._writable.wait()
        payload = bytes(data)
        try:
            self._channel.send(payload)
        except ValueError as exc:
            # aiortc checks the remote's a=max-message-size (RTCSctpTransport._data_channel_send).
            raise LocalProtocolError(str(exc)) from exc
        except InvalidStateError as exc:  # the channel closed under us
            self._mark_closed("data channel closed")
            raise LinkClosedError(f"link closed: {self._close_reason}") from exc
        self.messages_sent += 1
        self.bytes_sent += len(payload)
        self._queued_sizes.append(len(payload))
        self._queued_total += len(payload)

    def _queued(self, buffered_amount: int) -> int:
        """How many of our messages aiortc still holds, given its ``bufferedAmount``."""
        sizes = self._queued_sizes
        while sizes and self._queued_total - sizes[0] >= buffered_amount:
            self._queued_total -= sizes.popleft()
        return len(sizes)

    @property
    def queued_messages(self) -> int:
        """Messages handed to aiortc and not yet taken by its SCTP layer."""
        return self._queued(int(self._channel.bufferedAmount))

    def _on_buffered_amount_low(self) -> None:
        self._writable.set()

    # -- opening and closing ----------------------------------------------------------------

    def _on_open(self) -> None:
        self._opened.set()
        self._settled.set()

    async def wait_open(self) -> None:
        """Return when the channel is open; raise LinkClosedError if it closed first.

        Links from :class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory` are already open.
        """
        if not self._opened.is_set() and not self._closed:
            await self._settled.wait()
        if self._closed:
            raise LinkClosedError(f"link closed before it opened: {self._close_reason}")

    def _on_channel_close(self) -> None:
        self._mark_closed("data channel closed")

    def _on_pc_state(self) -> None:
        states = (self._pc.connectionState, self._pc.iceConnectionState)
        if "failed" in states:
            self._mark_closed(f"peer connection failed (connection/ICE state {states})")
        elif "closed" in states:
            self._mark_closed("peer connection closed")

    def _fail(self, reason: BaseException) -> None:
        self._mark_closed(reason)

    def _mark_closed(self, reason: BaseException | str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        logger.debug("link %s closed: %s", self.label, reason)
        self._early.clear()
        self._early_size = 0
        self._closed_event.set()
        self._settled.set()
        self._writable.set()  # wake senders so they raise LinkClosedError
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        self._pc.remove_listener("connectionstatechange", self._on_pc_state)
        self._pc.remove_listener("iceconnectionstatechange", self._on_pc_state)
        if self._channel.readyState not in ("closing", "closed"):
            self._channel.close()
        await self._pc.close()

    async def wait_closed(self) -> None:
        """Return once the link is closed (it does not close it)."""
        await self._closed_event.wait()

    async def aclose(self) -> None:
        """Close the channel and the peer connection; safe to call many times."""
        self._mark_closed("closed locally")
        assert self._shutdown_task is not None
        # shield: a cancelled aclose() must not leave the peer connection half closed.
        await asyncio.shield(self._shutdown_task)

    async def __aenter__(self) -> DataChannelLink:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<DataChannelLink {self.label[:8]}... {state}>"
