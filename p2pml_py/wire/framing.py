"""Framing: how command bodies and segment bytes share one data channel.

Every data-channel message is either a *command chunk* or raw segment bytes. A message is a
command chunk iff it starts with ``cstr`` or ``dstr`` and ends with ``cend`` or ``dend``
(``isCommandChunk`` in ``core/p2p/commands/binary-command-creator.ts``). A body that fits is sent as
``cstr + body + cend``; a longer one is cut into ``k`` equal pieces framed ``cstr..dend``,
``dstr..dend``, ..., ``dstr..cend`` (``BinaryCommandCreator.complete``).

Two consequences for a sender of segment bytes: a data chunk that happens to look like a command
chunk is taken as a command by browsers, so :func:`split_segment_data` moves such a boundary by a
byte. And for a receiver: one :class:`CommandJoiner` per connection reassembles split commands,
with a size cap so a peer cannot make it grow forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from p2pml_py.base.errors import FramingError, LocalProtocolError, MessageTooLargeError
from p2pml_py.wire.codec import Command, decode_body, encode_body

COMMAND_START: Final = b"cstr"
COMMAND_END: Final = b"cend"
PART_START: Final = b"dstr"
PART_END: Final = b"dend"
FRAME_LENGTH: Final = 8

#: ``webRtcMaxMessageSize`` (``core/core.ts``): the largest message browsers send.
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 - 1

#: Cap on a reassembled command body (the one limit; the peer protocol enforces it too). The
#: largest legitimate one -- an announcement with 255 full groups in both ``l`` and ``p`` -- is
#: about 135 KB.
DEFAULT_MAX_COMMAND_SIZE: Final = 256 * 1024


def is_command_chunk(message: bytes | memoryview) -> bool:
    """True when browsers would treat ``message`` as (part of) a command."""
    if len(message) < FRAME_LENGTH:
        # Shorter messages cannot hold a start and an end frame without overlap, and the four
        # frame words cannot overlap each other.
        return False
    head = bytes(message[:4])
    tail = bytes(message[-4:])
    return head in (COMMAND_START, PART_START) and tail in (COMMAND_END, PART_END)


def frame_body(body: bytes, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[bytes]:
    """Frame a body exactly as ``BinaryCommandCreator.complete`` does."""
    if not body:
        raise LocalProtocolError("cannot frame an empty command body")
    if max_message_size <= 0:
        raise LocalProtocolError(f"max_message_size must be positive, got {max_message_size}")
    if len(body) + FRAME_LENGTH <= max_message_size:
        return [COMMAND_START + body + COMMAND_END]
    count = -(-len(body) // max_message_size)
    # Upstream bumps the chunk count once only, so chunks may exceed a tiny max (kept for
    # byte-exactness; at the default 65535 one bump always suffices).
    if -(-len(body) // count) + FRAME_LENGTH > max_message_size:
        count += 1
    piece = -(-len(body) // count)
    chunks = []
    for index in range(count):
        start = PART_START if index else COMMAND_START
        end = COMMAND_END if index == count - 1 else PART_END
        chunks.append(start + body[index * piece : (index + 1) * piece] + end)
    return chunks


def encode(command: Command, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[bytes]:
    """The data-channel message(s) that carry ``command``."""
    return frame_body(encode_body(command), max_message_size)


def decode(messages: bytes | list[bytes]) -> Command:
    """Decode one framed command from its message(s); a convenience around :class:`CommandJoiner`."""
    joiner = CommandJoiner()
    parts = [messages] if isinstance(messages, bytes) else messages
    for index, message in enumerate(parts):
        if not is_command_chunk(message):
            raise FramingError("message is not a command chunk")
        body = joiner.feed(message)
        if body is not None:
            if index != len(parts) - 1:
                raise FramingError("messages continue after the command ended")
            return decode_body(body)
    raise FramingError("command did not end")


class CommandJoiner:
    """Reassembles command chunks (``BinaryCommandChunksJoiner``), bounded in size.

    Feed it only messages for which :func:`is_command_chunk` is true. :meth:`feed` returns the
    body when a chunk ending in ``cend`` completes a command, else ``None``. Errors reset it:
    a ``cstr`` while joining discards both the partial command and that chunk, as browsers do
    (``incomplete-joining``); a chunk that is not a ``cstr`` with nothing in progress is discarded
    (``no-first-chunk``).
    """

    def __init__(self, max_command_size: int = DEFAULT_MAX_COMMAND_SIZE) -> None:
        self._max = max_command_size
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def joining(self) -> bool:
        return bool(self._parts)

    def reset(self) -> None:
        self._parts.clear()
        self._size = 0

    def feed(self, chunk: bytes | memoryview) -> bytes | None:
        head = bytes(chunk[:4])
        first = head == COMMAND_START
        if self._parts and first:
            self.reset()
            raise FramingError("a new command started before the previous one ended")
        if not self._parts and not first:
            raise FramingError("command continuation without a first chunk")
        piece = bytes(chunk[4:-4])
        self._size += len(piece)
        if self._size > self._max:
            self.reset()
            raise MessageTooLargeError(f"command exceeds {self._max} bytes")
        self._parts.append(piece)
        if bytes(chunk[-4:]) != COMMAND_END:
            return None
        body = b"".join(self._parts)
        self.reset()
        return body


def split_segment_data(
    data: bytes | memoryview, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> Iterator[memoryview]:
    """Cut segment bytes into messages of at most ``max_message_size`` bytes, without copying.

    Like browsers, every message but the last is full size -- except that a message which would
    look like a command chunk to the receiver is made one byte shorter (SPEC g.8).
    """
    if max_message_size < FRAME_LENGTH + 1:
        raise LocalProtocolError(f"max_message_size too small: {max_message_size}")
    view = memoryview(data).cast("B")
    position = 0
    total = len(view)
    while position < total:
        end = min(position + max_message_size, total)
        while is_command_chunk(view[position:end]):
            end -= 1  # shifting the end changes the last four bytes; at most a few steps
        yield view[position:end]
        position = end
