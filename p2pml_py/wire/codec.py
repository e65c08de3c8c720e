"""Command bodies: the typed field values and the six peer commands.

A command body is ``[command code: 1 byte]`` followed by fields ``[name: 1 byte][typed value]``. The
type of a value is the high nibble of its first byte (upstream
``core/p2p/commands/binary-serialization.ts``, ``SerializedItem``):

* ``0`` Int -- ``[0x0n] + |x|`` big-endian in ``n`` bytes, the sign in the top bit of the first
  magnitude byte, ``n = ceil((bitlen(|x|) + 1) / 8)``, at most 15.
* ``1`` SimilarIntArray -- ``[0x10, groups & 0xFF]`` then, per group of values sharing ``x & ~0xFF``,
  ``Int(common + (len & 0xFF))`` and ``len`` low bytes.
* ``2`` String -- 12-bit length and UTF-8 bytes (no current command uses it).

Encoding reproduces the browsers' bytes exactly, except where the browsers' own output cannot be
decoded by the browsers (SPEC d.4): a group of exactly 256 values is emitted as two groups with the
same common part (255 + 1), which the browser decoder accepts, and never more than 255 groups are
emitted (the oldest groups are dropped, so the newest ids survive).

Decoding never trusts a length field: every read is checked against the bytes actually present, so
a hostile body costs at most its own size. All failures raise :class:`DecodeError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from p2pml_py.base.errors import DecodeError, LocalProtocolError


class CommandType(enum.IntEnum):
    """``PeerCommandType`` in ``core/p2p/commands/types.ts``."""

    SEGMENTS_ANNOUNCEMENT = 0
    SEGMENT_REQUEST = 1
    SEGMENT_DATA = 2
    SEGMENT_DATA_SENDING_COMPLETED = 3
    SEGMENT_ABSENT = 4
    CANCEL_SEGMENT_REQUEST = 5


class ItemType(enum.IntEnum):
    """``SerializedItem``: the high nibble of a value's first byte."""

    INT = 0
    SIMILAR_INT_ARRAY = 1
    STRING = 2


# Field names as they appear on the wire (one ASCII byte each).
_SEGMENT_ID: Final = ord("i")
_REQUEST_ID: Final = ord("r")
_SIZE: Final = ord("s")
_BYTE_FROM: Final = ord("b")
_LOADED: Final = ord("l")
_HTTP_LOADING: Final = ord("p")

MAX_INT_BYTES: Final = 15
MAX_STRING_LENGTH: Final = 4095
MAX_GROUPS: Final = 255
# Request ids browsers draw: floor(random() * 1000) (core/p2p/peer.ts).
MAX_REQUEST_ID: Final = 999


@dataclass(frozen=True, slots=True)
class SegmentsAnnouncement:
    """What a peer holds (``loaded``) and is downloading over HTTP (``http_loading``).

    A receiver replaces its view of the sender with these sets (SPEC d.8).
    """

    loaded: tuple[int, ...] = ()
    http_loading: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """Ask for segment ``segment_id`` from byte ``byte_from`` on."""

    segment_id: int
    request_id: int
    byte_from: int = 0


@dataclass(frozen=True, slots=True)
class SegmentData:
    """Announces that exactly ``size`` bytes of raw segment data follow."""

    segment_id: int
    request_id: int
    size: int


@dataclass(frozen=True, slots=True)
class SegmentDataSendingCompleted:
    segment_id: int
    request_id: int


@dataclass(frozen=True, slots=True)
class SegmentAbsent:
    segment_id: int
    request_id: int


@dataclass(frozen=True, slots=True)
class CancelSegmentRequest:
    segment_id: int
    request_id: int


Command: TypeAlias = (
    SegmentsAnnouncement
    | SegmentRequest
    | SegmentData
    | SegmentDataSendingCompleted
    | SegmentAbsent
    | CancelSegmentRequest
)


class UnknownCommandError(DecodeError):
    """The body carries a command code no browser release defines."""

    def __init__(self, code: int) -> None:
        super().__init__(f"unknown command code {code}")
        self.code = code


# --------------------------------------------------------------------------------------------
# Items


def encode_int(value: int) -> bytes:
    """``serializeInt``: sign/magnitude, big-endian, length in the low nibble."""
    magnitude = abs(value)
    length = (max(magnitude.bit_length(), 1) + 1 + 7) // 8
    if length > MAX_INT_BYTES:
        raise LocalProtocolError(f"integer {value} needs {length} bytes; the wire allows 15")
    raw = bytearray(magnitude.to_bytes(length, "big"))
    if value < 0:
        raw[0] |= 0x80
    return bytes((ItemType.INT << 4 | length,)) + bytes(raw)


def _group(values: tuple[int, ...] | list[int]) -> list[tuple[int, bytearray]]:
    groups: dict[int, bytearray] = {}
    for value in values:
        low = value & 0xFF
        groups.setdefault(value - low, bytearray()).append(low)
    return list(groups.items())


def encode_similar_int_array(values: tuple[int, ...] | list[int]) -> bytes:
    """``serializeSimilarIntArray`` with the two upstream bugs worked around (SPEC d.4)."""
    groups: list[tuple[int, bytearray]] = []
    for common, lows in _group(values):
        # 256 values would be written as length 0, which browsers cannot decode: split 255 + 1.
        for start in range(0, len(lows), 255):
            groups.append((common, lows[start : start + 255]))
    if len(groups) > MAX_GROUPS:
        groups = groups[-MAX_GROUPS:]
    out = bytearray((ItemType.SIMILAR_INT_ARRAY << 4, len(groups)))
    for common, lows in groups:
        out += encode_int(common + len(lows))
        out += lows
    return bytes(out)


def encode_string(value: str) -> bytes:
    """UTF-8 with a 12-bit byte length (the fixed 2.3 form; ASCII-only is safe for 2.2 too)."""
    raw = value.encode("utf-8")
    if len(raw) > MAX_STRING_LENGTH:
        raise LocalProtocolError(f"string of {len(raw)} bytes exceeds the wire limit of 4095")
    return bytes((ItemType.STRING << 4 | (len(raw) >> 8) & 0x0F, len(raw) & 0xFF)) + raw


def _decode_int(body: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(body):
        raise DecodeError("integer expected, body ended")
    meta = body[offset]
    if meta >> 4 != ItemType.INT:
        raise DecodeError(f"integer expected, found item type {meta >> 4}")
    length = meta & 0x0F
    if length == 0:
        raise DecodeError("integer with zero length")
    end = offset + 1 + length
    if end > len(body):
        raise DecodeError(f"integer of {length} bytes truncated")
    magnitude = int.from_bytes(body[offset + 1 : end], "big")
    sign_bit = 1 << (8 * length - 1)
    value = -(magnitude & ~sign_bit) if magnitude & sign_bit else magnitude
    return value, end


def _decode_similar_int_array(body: bytes, offset: int) -> tuple[tuple[int, ...], int]:
    if offset + 2 > len(body):
        raise DecodeError("int array header truncated")
    group_count = body[offset + 1]
    offset += 2
    values: list[int] = []
    for _ in range(group_count):
        common_with_length, offset = _decode_int(body, offset)
        length = common_with_length & 0xFF
        common = common_with_length - length
        # Browsers write a 256-value group as length 0 (SPEC d.4); nothing else produces an empty
        # group, so read it as full instead of failing the whole announcement as browsers do.
        count = length or 256
        end = offset + count
        if end > len(body):
            raise DecodeError("int array group truncated")
        values.extend(common + low for low in body[offset:end])
        offset = end
    return tuple(values), offset


def _decode_string(body: bytes, offset: int) -> tuple[str, int]:
    if offset + 2 > len(body):
        raise DecodeError("string header truncated")
    length = (body[offset] & 0x0F) << 8 | body[offset + 1]
    end = offset + 2 + length
    if end > len(body):
        raise DecodeError("string truncated")
    return body[offset + 2 : end].decode("utf-8", errors="replace"), end


# --------------------------------------------------------------------------------------------
# Commands


def _int_field(name: int, value: int) -> bytes:
    return bytes((name,)) + encode_int(value)


def encode_body(command: Command) -> bytes:
    """The unframed body of ``command``, field order as in ``core/p2p/commands/commands.ts``."""
    match command:
        case SegmentsAnnouncement(loaded=loaded, http_loading=http_loading):
            out = bytearray((CommandType.SEGMENTS_ANNOUNCEMENT,))
            if loaded:
                out += bytes((_LOADED,)) + encode_similar_int_array(loaded)
            if http_loading:
                out += bytes((_HTTP_LOADING,)) + encode_similar_int_array(http_loading)
            return bytes(out)
        case SegmentRequest(segment_id=segment_id, request_id=request_id, byte_from=byte_from):
            if byte_from < 0:
                raise LocalProtocolError(f"byte_from must be >= 0, got {byte_from}")
            out = bytearray((CommandType.SEGMENT_REQUEST,))
            out += _int_field(_SEGMENT_ID, segment_id) + _int_field(_REQUEST_ID, request_id)
            if byte_from:  # browsers omit b:0
                out += _int_field(_BYTE_FROM, byte_from)
            return bytes(out)
        case SegmentData(segment_id=segment_id, request_id=request_id, size=size):
            if size < 0:
                raise LocalProtocolError(f"size must be >= 0, got {size}")
            return (
                bytes((CommandType.SEGMENT_DATA,))
                + _int_field(_SEGMENT_ID, segment_id)
                + _int_field(_SIZE, size)
                + _int_field(_REQUEST_ID, request_id)
            )
        case (
            SegmentDataSendingCompleted(segment_id=segment_id, request_id=request_id)
            | SegmentAbsent(segment_id=segment_id, request_id=request_id)
            | CancelSegmentRequest(segment_id=segment_id, request_id=request_id)
        ):
            return (
                bytes((_SIMPLE_CODES[type(command)],))
                + _int_field(_SEGMENT_ID, segment_id)
                + _int_field(_REQUEST_ID, request_id)
            )
    raise LocalProtocolError(f"not a peer command: {command!r}")


_SIMPLE_CODES: Final[dict[type, CommandType]] = {
    SegmentDataSendingCompleted: CommandType.SEGMENT_DATA_SENDING_COMPLETED,
    SegmentAbsent: CommandType.SEGMENT_ABSENT,
    CancelSegmentRequest: CommandType.CANCEL_SEGMENT_REQUEST,
}

_FieldValue: TypeAlias = int | tuple[int, ...] | str


def decode_fields(body: bytes) -> tuple[int, dict[int, _FieldValue]]:
    """Split a body into its command code and fields, as ``deserializeCommand`` does.

    Later duplicates of a field replace earlier ones; unknown field names are kept.
    """
    if not body:
        raise DecodeError("empty command body")
    fields: dict[int, _FieldValue] = {}
    offset = 1
    while offset < len(body):
        name = body[offset]
        offset += 1
        if offset >= len(body):
            raise DecodeError(f"field {name:#04x} has no value")
        item_type = body[offset] >> 4
        value: _FieldValue
        if item_type == ItemType.INT:
            value, offset = _decode_int(body, offset)
        elif item_type == ItemType.SIMILAR_INT_ARRAY:
            value, offset = _decode_similar_int_array(body, offset)
        elif item_type == ItemType.STRING:
            value, offset = _decode_string(body, offset)
        else:
            raise DecodeError(f"field {name:#04x} has unknown item type {item_type}")
        fields[name] = value
    return body[0], fields


def _get_int(fields: dict[int, _FieldValue], name: int, default: int | None = None) -> int:
    value = fields.get(name, default)
    if value is None:
        raise DecodeError(f"required field {chr(name)!r} is missing")
    if not isinstance(value, int):
        raise DecodeError(f"field {chr(name)!r} must be an integer")
    return value


def _get_ids(fields: dict[int, _FieldValue], name: int) -> tuple[int, ...]:
    value = fields.get(name, ())
    if not isinstance(value, tuple):
        raise DecodeError(f"field {chr(name)!r} must be an int array")
    return value


def decode_body(body: bytes) -> Command:
    """Decode one complete (unframed) command body. Raises :class:`DecodeError`."""
    code, fields = decode_fields(body)
    if code == CommandType.SEGMENTS_ANNOUNCEMENT:
        return SegmentsAnnouncement(_get_ids(fields, _LOADED), _get_ids(fields, _HTTP_LOADING))
    if code > CommandType.CANCEL_SEGMENT_REQUEST:
        raise UnknownCommandError(code)
    segment_id = _get_int(fields, _SEGMENT_ID)
    request_id = _get_int(fields, _REQUEST_ID)
    if code == CommandType.SEGMENT_REQUEST:
        byte_from = _get_int(fields, _BYTE_FROM, 0)
        if byte_from < 0:
            raise DecodeError(f"negative byte offset {byte_from}")
        return SegmentRequest(segment_id, request_id, byte_from)
    if code == CommandType.SEGMENT_DATA:
        size = _get_int(fields, _SIZE)
        if size < 0:
            raise DecodeError(f"negative segment size {size}")
        return SegmentData(segment_id, request_id, size)
    if code == CommandType.SEGMENT_DATA_SENDING_COMPLETED:
        return SegmentDataSendingCompleted(segment_id, request_id)
    if code == CommandType.SEGMENT_ABSENT:
        return SegmentAbsent(segment_id, request_id)
    return CancelSegmentRequest(segment_id, request_id)
