"""SCTP packets with their CRC32c, byte for byte as aiortc's ``serialize_packet`` makes them.

aiortc's ``serialize_packet`` makes three concatenations and computes the CRC32c (RFC 9260
appendix B) over a fourth copy. Here a DATA packet is built with one ``pack`` and one join, its
CRC32c computed in C by google-crc32c over the header and then on over the payload, and the
common header (ports and verification tag) is cached per association. Only public APIs
(``struct``, google-crc32c) and the association's own fields are used, so nothing needs binding.
"""

from __future__ import annotations

from struct import Struct, pack
from typing import Any

import google_crc32c

_ZERO_CHECKSUM = b"\x00\x00\x00\x00"
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # by length % 4
_crc_value = google_crc32c.value
_crc_extend = google_crc32c.extend
_unpack_tag = Struct("!L").unpack_from  # the verification tag, at offset 4
_unpack_checksum = Struct("<L").unpack_from  # the CRC32c, at offset 8 (little-endian)
_unpack_sack = Struct("!BBHLLHH").unpack_from
_unpack_data = Struct("!BBHLHHL").unpack_from
_pack_sack = Struct("!BBHLLHH").pack
_pack_data = Struct("!BBHLHHL").pack
_pack_checksum = Struct("<L").pack
_TSN_MASK = 0xFFFFFFFF
_TSN_HALF = 0x80000000


def _common_header(sctp: Any) -> bytes:
    """Ports and verification tag: the first 8 bytes of every packet of this association."""
    header = getattr(sctp, "_p2pml_header", None)
    tag = sctp._remote_verification_tag
    if header is None or header[0] != tag:
        header = sctp._p2pml_header = (
            tag,
            pack("!HHL", sctp._local_port, sctp._remote_port, tag),
        )
    common: bytes = header[1]
    return common


def _packet(common: bytes, *parts: bytes) -> bytes:
    """``serialize_packet``: the common header, its CRC32c, then the chunk bytes ``parts``."""
    packet = b"".join((common, _ZERO_CHECKSUM, *parts))
    return b"".join((common, _pack_checksum(_crc_value(packet)), packet[12:]))


def _data_packet(common: bytes, chunk: Any) -> bytes:
    """``serialize_packet`` of one DATA chunk, byte for byte, with fewer copies: the CRC32c runs
    over the 28 header bytes, then on over the payload (the CRC extension needs ``bytes``: a
    payload of another type is copied once), and the packet is joined once.
    :func:`.sctp_send._fast_transmit` has the same lines inline (one call less per packet)."""
    user_data = bytes(chunk.user_data)
    length = 16 + len(user_data)
    body = _pack_data(
        0,  # DATA
        chunk.flags,
        length,
        chunk.tsn,
        chunk.stream_id,
        chunk.stream_seq,
        chunk.protocol,
    )
    padding = _PADDING[length & 3]
    crc = _crc_extend(_crc_value(common + _ZERO_CHECKSUM + body), user_data)
    if padding:
        crc = _crc_extend(crc, padding)
    return b"".join((common, _pack_checksum(crc), body, user_data, padding))


def _checked(sctp: Any, plain: bytes) -> bool:
    """The common header of a packet for this association: verification tag and CRC32c."""
    return bool(
        _unpack_tag(plain, 4)[0] == sctp._local_verification_tag
        and _unpack_checksum(plain, 8)[0]
        == _crc_value(b"".join((plain[:8], _ZERO_CHECKSUM, plain[12:])))
    )


def _control_packet(sctp: Any, chunk: bytes) -> bytes:
    """An SCTP packet around one already serialized chunk (``serialize_packet``)."""
    return _packet(_common_header(sctp), chunk)
