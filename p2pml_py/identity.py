"""Who we are and which swarm we join: peer ids, swarm ids, stream short ids, info hashes, and
the trackers pages announce to by default.

Everything here is a pure function of strings, mirroring ``p2p-media-loader-core``
(``core/utils/peer.ts``, ``core/utils/stream.ts``) and the bit of hls.js that rewrites codec
strings before PML reads them (``src/utils/codecs.ts convertAVC1ToAVCOTI``, hls.js 1.6).

A swarm is identified by a *stream swarm id*::

    "v2-" + swarm_id + "-" + stream_type + "-" + stream_index

where ``swarm_id`` is the final manifest URL without its query (or a page-configured id),
``stream_type`` is ``main`` (video levels) or ``secondary`` (alternate audio), and
``stream_index`` is the level's array position in 2.2.x or :func:`stream_short_id` in 2.3.x.
The tracker ``info_hash`` is derived from that string by a per-version hash (:func:`info_hash`).
Peers running 2.2.x and 2.3.x therefore never meet in the same swarm.

Because the short id hashes a canonical string built with JavaScript semantics (``Number``,
``parseInt``, ``String(number)``, UTF-16 ordering), this module carries small re-implementations of
those semantics; they are private and only as complete as the canonical string needs.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import math
import random
import re
import secrets
from collections.abc import Iterable
from typing import Literal

from p2pml_py.base.errors import LocalProtocolError

__all__ = [
    "DEFAULT_TRACKERS",
    "PEER_ID_ALPHABET",
    "PEER_ID_LENGTH",
    "PEER_PROTOCOL_VERSION",
    "ProtocolVersion",
    "StreamType",
    "convert_avc1_to_avcoti",
    "default_trackers",
    "generate_peer_id",
    "info_hash",
    "segment_runtime_id",
    "stream_short_id",
    "stream_short_id_canonical",
    "stream_swarm_id",
    "swarm_id_from_manifest_url",
]

# core/utils/peer.ts HASH_SYMBOLS / PEER_ID_LENGTH
PEER_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PEER_ID_LENGTH = 20
# core/utils/stream.ts PEER_PROTOCOL_VERSION (same in 2.2.x and 2.3.x)
PEER_PROTOCOL_VERSION = "v2"

StreamType = Literal["main", "secondary"]

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")


class ProtocolVersion(enum.Enum):
    """The two incompatible swarm-identity generations of p2p-media-loader 2.x."""

    V2_2 = "2.2"
    V2_3 = "2.3"

    @property
    def peer_id_prefix(self) -> str:
        """``TRACKER_CLIENT_VERSION_PREFIX``: ``-PM`` + major(2) + minor(2) + ``-``."""
        major, minor = self.value.split(".")
        return f"-PM{major.zfill(2)}{minor.zfill(2)}-"

    @classmethod
    def parse(cls, text: str) -> ProtocolVersion:
        """Accept ``"2.2"``, ``"2.2.2"``, ``"2.3"``, ``"2.3.1"``, ``"v2.3.0-alpha.1"`` ..."""
        m = _VERSION_RE.match(text.strip())
        if m is not None:
            key = f"{int(m.group(1))}.{int(m.group(2))}"
            for member in cls:
                if member.value == key:
                    return member
        supported = ", ".join(member.value for member in cls)
        raise LocalProtocolError(
            f"unsupported p2p-media-loader version {text!r} (supported: {supported})"
        )

    @property
    def default_trackers(self) -> tuple[str, ...]:
        """The announce URLs a page uses when it sets no ``announceTrackers``."""
        return DEFAULT_TRACKERS[self]


#: ``core/core.ts DEFAULT_STREAM_CONFIG.announceTrackers`` per version. 2.3 dropped
#: ``wss://tracker.webtorrent.dev`` (commit ``814cd3be``). A swarm is only shared with pages that
#: announce to the same URL, so these are what a Python peer must use for pages that keep the
#: defaults -- and nothing else should ever contact them (tests stay on loopback).
DEFAULT_TRACKERS: dict[ProtocolVersion, tuple[str, ...]] = {
    ProtocolVersion.V2_3: ("wss://tracker.novage.com.ua", "wss://tracker.openwebtorrent.com"),
    ProtocolVersion.V2_2: (
        "wss://tracker.novage.com.ua",
        "wss://tracker.openwebtorrent.com",
        "wss://tracker.webtorrent.dev",
    ),
}


def default_trackers(versions: ProtocolVersion | Iterable[ProtocolVersion]) -> tuple[str, ...]:
    """The default announce URLs of every version in ``versions``, in order, without repeats.

    A peer serving both versions' pages joins both populations' swarms, so it needs the union
    (its 2.3 swarms are then also announced to 2.2's extra tracker: useless but harmless, as no
    2.3 page looks there).
    """
    if isinstance(versions, ProtocolVersion):
        versions = (versions,)
    urls: dict[str, None] = {}
    for version in versions:
        urls.update(dict.fromkeys(version.default_trackers))
    return tuple(urls)


def generate_peer_id(
    version: ProtocolVersion,
    *,
    prefix: str | None = None,
    rng: random.Random | None = None,
) -> str:
    """A 20-character tracker peer id: version prefix + random ``[A-Za-z0-9]``.

    Mirrors ``core/utils/peer.ts generatePeerId``. ``prefix`` replaces the version prefix like
    PML's ``trackerClientVersionPrefix`` option; it must be printable ASCII of at most 20 chars
    (upstream would emit an over-long id that trackers reject). ``rng`` makes ids reproducible in
    tests; by default the random part comes from :mod:`secrets`.
    """
    head = version.peer_id_prefix if prefix is None else prefix
    if len(head) > PEER_ID_LENGTH or not all(" " <= ch <= "~" for ch in head):
        raise LocalProtocolError(
            f"peer id prefix must be at most {PEER_ID_LENGTH} printable ASCII chars: {head!r}"
        )
    count = PEER_ID_LENGTH - len(head)
    if rng is None:
        tail = "".join(secrets.choice(PEER_ID_ALPHABET) for _ in range(count))
    else:
        tail = "".join(rng.choice(PEER_ID_ALPHABET) for _ in range(count))
    return head + tail


def swarm_id_from_manifest_url(url: str) -> str:
    """The default swarm id: the final manifest URL cut at the first ``?``.

    ``core/core.ts setManifestResponseUrl`` does ``url.split("?")[0]``; a ``#fragment`` without a
    query survives, which is what browsers do too.
    """
    return url.split("?", 1)[0]


def stream_swarm_id(swarm_id: str, stream_type: StreamType, index: int | str) -> str:
    """``"v2-{swarm_id}-{type}-{index}"`` (``core/utils/stream.ts getStreamSwarmId``)."""
    return f"{PEER_PROTOCOL_VERSION}-{swarm_id}-{stream_type}-{index}"


def info_hash(stream_swarm_id: str, version: ProtocolVersion) -> str:
    """The 20-character tracker info hash of a stream swarm id (``getStreamHash``).

    2.2.x: base64 of MD5 bytes 1..15; 2.3.x: base64 of SHA-1 bytes 0..14. The 20 ASCII chars *are*
    the 20 info-hash bytes on the tracker wire.
    """
    data = stream_swarm_id.encode("utf-8")
    if version is ProtocolVersion.V2_2:
        digest = hashlib.md5(data, usedforsecurity=False).digest()[1:16]
    else:
        digest = hashlib.sha1(data, usedforsecurity=False).digest()[:15]
    return base64.b64encode(digest).decode("ascii")


def segment_runtime_id(url: str, byte_range: tuple[int, int] | None) -> str:
    """PML's local segment key (``hlsjs/utils.ts getSegmentRuntimeId``); never sent on the wire.

    ``byte_range`` is ``(start, end_inclusive)``.
    """
    if byte_range is None:
        return url
    start, end = byte_range
    return f"{url}|{start}-{end}"


# --------------------------------------------------------------------------------------------
# 2.3.x stream short id


def convert_avc1_to_avcoti(video_codecs: str) -> str:
    """hls.js 1.6 ``convertAVC1ToAVCOTI``: legacy ``avc1.P.L`` -> ``avc1.PPCCLL``-ish hex.

    hls.js's level controller applies this to ``level.videoCodec`` on ``MANIFEST_LOADED`` before
    PML's listener (registered later) reads it, so it must be applied to main levels before
    :func:`stream_short_id`. Only exact ``avc1`` (case-sensitive) with more than two dot-parts is
    touched; extra parts are dropped; the profile is not zero-padded and the last four hex digits
    of ``"000" + hex(level)`` form the rest (``avc1.77.030`` -> ``avc1.4d001e``).
    """
    codecs = video_codecs.split(",")
    for i, codec in enumerate(codecs):
        parts = codec.split(".")
        if len(parts) > 2 and parts[0] == "avc1":
            profile = _js_to_hex(_js_parse_int(parts[1]))
            level = ("000" + _js_to_hex(_js_parse_int(parts[2])))[-4:]
            codecs[i] = f"avc1.{profile}{level}"
    return ",".join(codecs)


def stream_short_id_canonical(
    bitrate: float | None = None,
    codecs: str | None = None,
    width: int | None = None,
    height: int | None = None,
    frame_rate: str | float | None = None,
    video_range: str | None = None,
    language: str | None = None,
    channels: str | int | None = None,
    name: str | None = None,
) -> str:
    """The string ``generateStreamShortId`` hashes (core 2.3.x ``core/utils/stream.ts``).

    Fields in hash order: bitrate, codecs, width, height, language, channels, name, frame rate,
    video range, joined with ``-``. ``None`` plays the role of JS ``undefined``/``null``.
    """
    normalized_codecs = ""
    if codecs:
        items = [_normalize_pml_codec(c) for c in codecs.split(",")]
        # JS Array.prototype.sort(): UTF-16 code unit order.
        items.sort(key=lambda s: s.encode("utf-16-be", "surrogatepass"))
        normalized_codecs = ",".join(items)
    normalized_language = ""
    if language and language != "und":
        normalized_language = _js_slice_utf16(language, 2).lower()
    normalized_channels = ""
    if channels:
        normalized_channels = _js_string(channels).split("/", 1)[0]
    normalized_name = name.lower().strip() if name else ""
    normalized_frame_rate = ""
    if frame_rate:
        number = _js_number(frame_rate)
        if not math.isnan(number):
            normalized_frame_rate = _js_number_to_string(number)
    normalized_video_range = video_range.upper().strip() if video_range else ""
    bitrate_text = "0" if bitrate is None else _js_string(bitrate)
    return "-".join(
        [
            bitrate_text,
            normalized_codecs,
            "" if width is None else _js_string(width),
            "" if height is None else _js_string(height),
            normalized_language,
            normalized_channels,
            normalized_name,
            normalized_frame_rate,
            normalized_video_range,
        ]
    )


def stream_short_id(
    bitrate: float | None = None,
    codecs: str | None = None,
    width: int | None = None,
    height: int | None = None,
    frame_rate: str | float | None = None,
    video_range: str | None = None,
    language: str | None = None,
    channels: str | int | None = None,
    name: str | None = None,
) -> str:
    """2.3.x ``generateStreamShortId``: base64(SHA-1(utf8(canonical))), 28 chars with ``=``.

    The inputs are what PML reads from hls.js objects; for main levels pass the codec string
    *after* :func:`convert_avc1_to_avcoti` (``p2pml_py.hls.playlist`` does this for you).
    """
    canonical = stream_short_id_canonical(
        bitrate, codecs, width, height, frame_rate, video_range, language, channels, name
    )
    # TextEncoder turns a lone surrogate (a language cut inside a pair) into U+FFFD.
    data = _LONE_SURROGATE_RE.sub("\ufffd", canonical).encode("utf-8")
    digest = hashlib.sha1(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _normalize_pml_codec(codec: str) -> str:
    # PML's own RFC 4281 -> RFC 6381 rewrite: only for canonical decimal profile/level
    # (String(parseInt(x, 10)) === x), avc1 or avc, exactly three parts, constraint byte "00".
    c = codec.strip().lower()
    parts = c.split(".")
    if len(parts) == 3 and parts[0] in ("avc1", "avc"):
        profile = _canonical_decimal(parts[1])
        level = _canonical_decimal(parts[2])
        if profile is not None and level is not None:
            return (
                f"{parts[0]}.{_js_to_hex(profile).rjust(2, '0')}00{_js_to_hex(level).rjust(2, '0')}"
            )
    return c


# --------------------------------------------------------------------------------------------
# Minimal JavaScript number semantics needed for byte-identical canonical strings.

_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_JS_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_JS_RADIX_RE = re.compile(r"^0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)$")
_JS_PARSE_INT_RE = re.compile(r"^([+-]?)(?:(0[xX])([0-9a-fA-F]+)|(\d+))")


def _canonical_decimal(text: str) -> int | None:
    """``x`` if ``String(parseInt(x, 10)) === x``, else None."""
    m = re.match(r"^[+-]?\d+", text.strip())
    if m is None:
        return None
    value = int(m.group(0))
    return value if _js_number_to_string(float(value)) == text else None


def _js_parse_int(text: str) -> float:
    """``parseInt(text)`` with no radix (hex for a ``0x`` prefix); NaN when nothing parses."""
    m = _JS_PARSE_INT_RE.match(text.strip())
    if m is None:
        return math.nan
    sign = -1 if m.group(1) == "-" else 1
    value = int(m.group(3), 16) if m.group(2) else int(m.group(4))
    return float(sign * value)


def _js_to_hex(value: float) -> str:
    """``Number.prototype.toString(16)`` for integers and NaN (all hls.js/PML ever pass)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    as_int = int(value)
    return f"-{-as_int:x}" if as_int < 0 else f"{as_int:x}"


def _js_number(value: str | float) -> float:
    """``Number(value)`` for strings and numbers."""
    if not isinstance(value, str):
        return float(value)
    text = value.strip()
    if text == "":
        return 0.0
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    if _JS_RADIX_RE.match(text):
        return float(int(text, 0))
    if _JS_DECIMAL_RE.match(text):
        return float(text)
    return math.nan


def _js_string(value: str | float) -> str:
    """``String(value)`` for strings and numbers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _js_number_to_string(float(value))
    return _js_number_to_string(value)


def _js_number_to_string(x: float) -> str:
    """ECMAScript Number::toString(10): shortest round-trip digits, JS exponent rules."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _js_number_to_string(-x)
    # repr() gives the shortest round-trip digits; re-lay them out per ECMA-262 6.1.6.1.20.
    mantissa, _, exp_text = f"{x!r}".partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # n = position of the decimal point relative to the first significant digit
    exponent = int(exp_text) if exp_text else 0
    leading_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) - leading_zeros + exponent
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    if k == 1:
        return f"{digits}e{sign}{abs(e)}"
    return f"{digits[0]}.{digits[1:]}e{sign}{abs(e)}"


def _js_slice_utf16(text: str, length: int) -> str:
    """``text.slice(0, length)`` counting UTF-16 code units, as JS does."""
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * length]
    return units.decode("utf-16-le", "surrogatepass")
