"""What every :class:`~p2pml_py.rtc.transport.Link` implementation shares, whatever moves its
bytes: receiving (early messages kept and replayed in order, a receiver that raises closes the
link), backpressure on send (wait above the high watermark or ``max_queued_messages``, wake at
half of what was queued) and close tracking.

A backend subclasses :class:`LinkBase` and provides :meth:`LinkBase._backlog` and
:meth:`LinkBase._wake_when_below`, calls :meth:`LinkBase._receive` for each message that
arrives and :meth:`LinkBase._wait_room` before it queues one, and releases its connection in
:meth:`LinkBase._on_closed`. The aiortc backend and the in-memory test transport do, so the
fake cannot drift from the real link on these rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Self

from p2pml_py.base.aio import SlimEvent
from p2pml_py.base.errors import LinkClosedError
from p2pml_py.rtc.config import DEFAULT_HIGH_WATERMARK, DEFAULT_MAX_QUEUED_MESSAGES

__all__ = ["LinkBase", "Receiver"]

logger = logging.getLogger(__name__)

Receiver = Callable[[bytes], None]


class LinkBase:
    def __init__(
        self,
        *,
        high_watermark: int = DEFAULT_HIGH_WATERMARK,
        early_buffer_bytes: int = 1024 * 1024,
        max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES,
    ) -> None:
        self._high_watermark = high_watermark
        self._early_buffer_bytes = early_buffer_bytes
        self._max_queued_messages = max_queued_messages
        self._receiver: Receiver | None = None
        # Messages that arrived before a receiver was set; made only if one does (an empty
        # deque is a 528-byte block, and most links get their receiver before any message).
        self._early: deque[bytes] | None = None
        self._early_size = 0
        self._closed = False
        self._close_reason: BaseException | str | None = None
        self._closed_event = SlimEvent()
        self._close_callbacks: list[Callable[[], None]] | None = None
        self._writable = SlimEvent()
        self._writable.set()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.messages_received = 0

    # -- to provide -------------------------------------------------------------------------

    @property
    def label(self) -> str:
        raise NotImplementedError

    def _backlog(self) -> tuple[int, int]:
        """(bytes, messages) we sent that the transport has not taken yet."""
        raise NotImplementedError

    def _wake_when_below(self, amount: int) -> None:
        """Call :meth:`_writable_again` once the queued bytes fall to ``amount``."""
        raise NotImplementedError

    def _on_closed(self) -> None:
        """The link just closed (once): release the connection under it."""

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
    def high_watermark(self) -> int:
        return self._high_watermark

    # -- receiving --------------------------------------------------------------------------

    def set_receiver(self, callback: Receiver) -> None:
        """Deliver every received message, in order, to ``callback``.

        Messages that arrived earlier are delivered now, before this returns. If the callback
        raises, the link closes with that exception as ``close_reason`` (a peer that sends what
        the session cannot handle is dropped).
        """
        self._receiver = callback
        early = self._early
        while early and self._receiver is callback and not self._closed:
            data = early.popleft()
            self._early_size -= len(data)
            self._deliver(callback, data)
        if self._early is early:  # a receiver set from inside a delivery drained it already
            self._early = None
            self._early_size = 0

    def _receive(self, data: bytes) -> None:
        """One message arrived: to the receiver, or kept (bounded) until there is one."""
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
        if self._early is None:
            self._early = deque()
        self._early.append(data)
        self._early_size += len(data)

    def _deliver(self, receiver: Receiver, data: bytes) -> None:
        try:
            receiver(data)
        except Exception as exc:
            # The callback runs inside the transport's receive path (aiortc: pyee's emit); an
            # exception escaping there would surface somewhere else, so it ends this link.
            logger.warning("receiver raised %r; closing link %s", exc, self.label)
            self._fail(exc)

    # -- sending ----------------------------------------------------------------------------

    async def _wait_room(self) -> None:
        """Return when a message may be queued: at most ``high_watermark`` bytes and fewer than
        ``max_queued_messages`` messages wait. Raises ``LinkClosedError`` once closed."""
        while True:
            if self._closed:
                raise LinkClosedError(f"link closed: {self._close_reason}")
            amount, messages = self._backlog()
            if amount <= self._high_watermark and messages < self._max_queued_messages:
                return
            # Wake up once the queue has drained to half of what it is (or of the watermark).
            self._wake_when_below(min(amount, self._high_watermark) // 2)
            self._writable.clear()
            await self._writable.wait()

    def _writable_again(self) -> None:
        self._writable.set()

    def _sent(self, size: int) -> None:
        self.messages_sent += 1
        self.bytes_sent += size

    # -- closing ----------------------------------------------------------------------------

    def _fail(self, reason: BaseException) -> None:
        self._mark_closed(reason)

    def _mark_closed(self, reason: BaseException | str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        logger.debug("link %s closed: %s", self.label, reason)
        self._early = None
        self._early_size = 0
        # Close callbacks first, then waiters, then senders: whoever learns of the close from
        # on_closed (the session: why the peer went) runs before a sender's LinkClosedError.
        callbacks, self._close_callbacks = self._close_callbacks, None
        if callbacks:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # closed outside the loop (at exit): nothing could run them
                pass
            else:
                for callback in callbacks:
                    loop.call_soon(callback)
        self._closed_event.set()
        self._writable.set()  # wake senders so they raise LinkClosedError
        self._on_closed()

    async def wait_closed(self) -> None:
        """Return once the link is closed (it does not close it)."""
        await self._closed_event.wait()

    def on_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the link is closed, from the event loop (soon, if it already
        is). Callbacks run in the order they were given, each once."""
        if self._closed:
            asyncio.get_running_loop().call_soon(callback)
        elif self._close_callbacks is None:
            self._close_callbacks = [callback]
        else:
            self._close_callbacks.append(callback)

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.label[:8]}... {state}>"
