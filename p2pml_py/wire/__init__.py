"""The P2P Media Loader data-channel protocol, sans-I/O.

* :mod:`p2pml_py.wire.codec` -- typed values and the six commands (bodies).
* :mod:`p2pml_py.wire.framing` -- ``cstr``/``dstr``/``cend``/``dend`` framing, splitting and joining.
* :mod:`p2pml_py.wire.protocol` -- the per-connection state machine (requests, uploads, downloads).

Nothing here does I/O; drivers feed received messages in and send what comes out.
"""

from p2pml_py.wire.codec import (
    CancelSegmentRequest,
    Command,
    CommandType,
    SegmentAbsent,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentRequest,
    SegmentsAnnouncement,
    UnknownCommandError,
    decode_body,
    encode_body,
)
from p2pml_py.wire.framing import (
    DEFAULT_MAX_COMMAND_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    CommandJoiner,
    decode,
    encode,
    frame_body,
    is_command_chunk,
    split_segment_data,
)

__all__ = [
    "DEFAULT_MAX_COMMAND_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CancelSegmentRequest",
    "Command",
    "CommandJoiner",
    "CommandType",
    "SegmentAbsent",
    "SegmentData",
    "SegmentDataSendingCompleted",
    "SegmentRequest",
    "SegmentsAnnouncement",
    "UnknownCommandError",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
    "frame_body",
    "is_command_chunk",
    "split_segment_data",
]
