"""A test-only model of the *browser's* decoder, bugs included (SPEC d.4, d.6).

Used to prove that what we emit decodes correctly in a browser, including the cases where our
encoder deliberately differs from the browsers' (256-value groups, more than 255 groups). It follows
``deserializeCommand``/``deserializeSimilarIntArray`` literally: a group length of 0 means no values,
and a wrong item code is an error.
"""

from __future__ import annotations

from typing import Any


class BrowserDecodeError(Exception):
    pass


def _int(body: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(body) or body[offset] >> 4 != 0:
        raise BrowserDecodeError("Trying to deserialize integer with invalid serialized item code")
    n = body[offset] & 0x0F
    raw = body[offset + 1 : offset + 1 + n]
    value = int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big") if raw else 0
    if raw and raw[0] & 0x80:
        value = -value
    return value, n + 1


def browser_decode_body(body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"c": body[0]}
    offset = 1
    while offset < len(body):
        name = chr(body[offset])
        offset += 1
        kind = body[offset] >> 4
        if kind == 0:
            out[name], used = _int(body, offset)
            offset += used
        elif kind == 1:
            groups = body[offset + 1]
            offset += 2
            values = []
            for _ in range(groups):
                common_len, used = _int(body, offset)
                offset += used
                length = common_len & 0xFF
                values.extend(common_len - length + b for b in body[offset : offset + length])
                offset += length
            out[name] = values
        else:
            raise BrowserDecodeError("Not existing type")
    return out


def browser_join(chunks: list[bytes]) -> bytes:
    body = b""
    for index, chunk in enumerate(chunks):
        if (index == 0) != chunk.startswith(b"cstr"):
            raise BrowserDecodeError("joining error")
        body += chunk[4:-4]
    if not chunks[-1].endswith(b"cend"):
        raise BrowserDecodeError("not completed")
    return body
