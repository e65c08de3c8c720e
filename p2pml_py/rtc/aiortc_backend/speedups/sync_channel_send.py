"""``sync_channel_send``: a data-channel message becomes SCTP chunks, and is sent, in the call to
``send`` instead of in a task of its own.

aiortc's ``RTCSctpTransport._data_channel_send`` queues the message and starts
``asyncio.ensure_future(self._data_channel_flush())`` for every message: a task created,
scheduled and run (and wrapped by :func:`~p2pml_py.rtc.aiortc_backend.tuning.quiet_closed_transport`)
to do what can be done at once. At 400 real-time viewers those tasks were ~5 % of the seed's
CPU (py-spy, capacity benchmark). The patch does aiortc's checks and bookkeeping (payload
protocol, the remote's ``max-message-size``, the buffered amount), then, on an established
association, flushes the channels synchronously with :func:`~.sctp_receive._flush_channels` --
the same code the SACK path uses to refill, aiortc's ``_data_channel_flush`` without its
suspensions. What that cannot finish (a channel without a stream id yet, a DCEP message, a
transmit that must wait, a stream reset) is left to a task running aiortc's own follow-up, as
before; an association not established yet keeps aiortc's task, which waits for it. Messages
leave in the order they were sent either way: both paths take them from the one queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups import sctp_receive
from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, get, need, target

# aiortc's payload protocol identifiers (RFC 8831 section 8), bound by probe().
_STRING = _BINARY = _STRING_EMPTY = _BINARY_EMPTY = 0
#: The follow-up tasks running (a task needs a reference).
_pending: set[asyncio.Future[None]] = set()


def _spawn(coroutine: Any) -> None:
    task = asyncio.ensure_future(coroutine)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _follow_up(sctp: Any) -> None:
    """aiortc's flush and transmit, for what the synchronous flush could not finish."""
    try:
        await sctp_receive._sack_follow_up(sctp)
    except ConnectionError:
        pass  # the DTLS transport closed meanwhile: the association is going away


def _make_data_channel_send(original: Callable[..., Any]) -> Callable[..., Any]:
    def _data_channel_send(self: Any, channel: Any, data: bytes | str) -> None:
        if data == "":
            pp_id, user_data = _STRING_EMPTY, b"\x00"
        elif isinstance(data, str):
            pp_id, user_data = _STRING, data.encode("utf8")
        elif data == b"":
            pp_id, user_data = _BINARY_EMPTY, b"\x00"
        else:
            pp_id, user_data = _BINARY, data
        limit = self._remote_max_message_size
        if limit and len(user_data) > limit:  # aiortc's check and message, word for word
            raise ValueError(
                f"Cannot send message of {len(user_data)} bytes, the remote party "
                f"only supports messages up to {limit} bytes"
            )
        channel._addBufferedAmount(len(user_data))
        self._data_channel_queue.append((channel, pp_id, user_data))
        if self._association_state is sctp_receive._ESTABLISHED:
            try:
                if sctp_receive._flush_channels(self):
                    return
            except ConnectionError:
                return  # the DTLS transport closed under us: the association is going away
            _spawn(_follow_up(self))
            return
        _spawn(self._data_channel_flush())

    return _data_channel_send


def probe(names: Names) -> list[Target]:
    global _STRING, _BINARY, _STRING_EMPTY, _BINARY_EMPTY
    module = names.sctp_module
    _STRING = get(module, "WEBRTC_STRING")
    _BINARY = get(module, "WEBRTC_BINARY")
    _STRING_EMPTY = get(module, "WEBRTC_STRING_EMPTY")
    _BINARY_EMPTY = get(module, "WEBRTC_BINARY_EMPTY")
    need(names.sctp, "_data_channel_flush", "_send", "_transmit")
    return [target(names.sctp, "_data_channel_send", _make_data_channel_send)]


PATCH = Patch("sync_channel_send", probe)
