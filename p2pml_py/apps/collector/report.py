"""A viewer's report (what ``p2pml_py/web/pingback.js`` posts), parsed and checked on its own.

Sans-I/O: bytes in, a :class:`Report` or :class:`Rejected` out. What needs the viewer's previous
report (monotonic counters, bytes per second of real time) is checked in
:mod:`p2pml_py.apps.collector.aggregate`.

A report (schema version 1; exactly these keys, nothing else)::

    {"v": 1, "viewer": "4f0c...", "stream": "https://cdn.example.org/news/master.m3u8",
     "seq": 3, "t": 15012, "http": 1843200, "p2p": 5529600, "up": 2211840,
     "peers": 2, "stalls": 0, "startup": 812}

``viewer``   a random id the page drew (not the peer id, nothing about the person);
``stream``   the stream id: the manifest URL without query and fragment, or the page's own;
``seq``      1 for the viewer's first report, +1 for each later one;
``t``        milliseconds since the module was attached (``performance.now()``, monotonic);
``http``, ``p2p``, ``up``   bytes since attach: downloaded over HTTP, over P2P, uploaded to peers
             (the core's ``onChunkDownloaded`` / ``onChunkUploaded`` events, ``core/src/types.ts``
             ``CoreEventMap`` of p2p-media-loader 2.2 and 2.3);
``peers``    peer connections open now (``onPeerConnect`` minus ``onPeerClose``);
``stalls``   ``waiting`` events of the <video> after it first played (seeks excluded);
``startup``  milliseconds from attach (or the first ``play``, if later) to the first ``playing``;
             ``null`` until then.

Counters are cumulative, so a lost report loses nothing and a late one is merely stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "MAX_BODY",
    "MAX_BYTES",
    "MAX_ELAPSED_MS",
    "MAX_PEERS",
    "MAX_STALLS_PER_S",
    "MAX_STREAM_ID",
    "Reason",
    "Rejected",
    "Report",
    "parse_report",
]


class Reason(StrEnum):
    """Why a report was not taken; every value is counted (``reports_rejected{reason}``)."""

    #: The body is larger than :data:`MAX_BODY` (HTTP 413).
    TOO_LARGE = "too_large"
    #: Not UTF-8 JSON, a bare ``NaN``/``Infinity``, duplicate keys, nested too deep, not an object.
    MALFORMED = "malformed"
    #: Keys missing or unknown, or another schema version.
    SCHEMA = "schema"
    #: A value of the wrong JSON type (a string for a number, a float for a counter, ...).
    TYPE = "type"
    #: A number or a string outside its bounds.
    RANGE = "range"
    #: More bytes (or stalls) than a real viewer's link delivers in the time the report covers.
    IMPLAUSIBLE = "implausible"
    #: A counter went down, or the start-up time changed, since the viewer's previous report.
    NON_MONOTONIC = "non_monotonic"
    #: ``seq`` not above the viewer's previous report (a late or replayed report; answered 204).
    STALE = "stale"
    #: A stream the collector does not take reports for (only configured streams).
    UNKNOWN_STREAM = "unknown_stream"
    #: The stream table is full of streams that have live viewers.
    TOO_MANY_STREAMS = "too_many_streams"
    #: The client sent more reports than its rate limit (HTTP 429).
    RATE_LIMITED = "rate_limited"
    #: The page's ``Origin`` is not one of the allowed origins (HTTP 403).
    ORIGIN = "origin"
    #: Not ``POST`` with a ``text/plain`` or ``application/json`` body (HTTP 415).
    CONTENT_TYPE = "content_type"


class Rejected(Exception):
    """A report that is not taken: ``reason``, and ``field``/``message`` for the 400 answer."""

    def __init__(self, reason: Reason, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, str]:
        out = {"reason": self.reason.value, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


#: A report is about 250 bytes with a 100-character stream URL; 4 KiB leaves room for a
#: :data:`MAX_STREAM_ID` stream id and stops anything bigger before it is parsed.
MAX_BODY: Final = 4096
#: JS numbers are exact integers up to 2**53 - 1 (``Number.MAX_SAFE_INTEGER``): the page cannot
#: count bytes beyond that, so no honest report carries more.
MAX_BYTES: Final = 2**53 - 1
#: A page that ran for 30 days; longer-lived pages (kiosks) start a new viewer id after a reload.
MAX_ELAPSED_MS: Final = 30 * 86_400_000
#: Reports of one viewer: one per second (the module's shortest interval) for 30 days.
MAX_SEQ: Final = 30 * 86_400
#: p2p-media-loader keeps no fixed cap on peer connections (``core/src/p2p/tracker-client.ts``
#: keeps every peer the tracker introduces), but its tracker client offers at most 5 connections
#: per announce (bittorrent-tracker ``lib/client/websocket-tracker.js``); 1000 open at once is far
#: above any real page.
MAX_PEERS: Final = 1000
#: Manifest URLs without their query; longer ones are cut by the module before sending.
MAX_STREAM_ID: Final = 1024
#: A ``waiting`` event needs the player to have been playing since the previous one; ten a
#: second is already far beyond what a player does (hls.js nudges a stall at most every 100 ms).
MAX_STALLS_PER_S: Final = 10
#: Random ids: the module sends 32 hex digits; other clients may use base64url.
_VIEWER_RE: Final = re.compile(r"[0-9A-Za-z_-]{16,64}")
_KEYS: Final = ("v", "viewer", "stream", "seq", "t", "http", "p2p", "up", "peers", "stalls")
_ALL_KEYS: Final = frozenset((*_KEYS, "startup"))
VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Report:
    """A report that passed :func:`parse_report` (types and bounds of each value alone)."""

    viewer: str
    stream: str
    seq: int
    t: int
    http: int
    p2p: int
    up: int
    peers: int
    stalls: int
    startup: int | None

    @property
    def downloaded(self) -> int:
        return self.http + self.p2p


def _no_constant(name: str) -> Any:
    # json.loads takes NaN, Infinity and -Infinity by default; JSON (RFC 8259) has none of them.
    raise Rejected(Reason.MALFORMED, f"{name} is not a JSON number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Rejected(Reason.MALFORMED, f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data[key]
    # bool is an int in Python; JSON true/false is not a number.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise Rejected(Reason.TYPE, f"{key}: must be an integer, got a non-integer number", key)
        raise Rejected(Reason.TYPE, f"{key}: must be an integer, got {type(value).__name__}", key)
    if not low <= value <= high:
        raise Rejected(Reason.RANGE, f"{key}: must be in [{low}, {high}]", key)
    return value


def _string(data: dict[str, Any], key: str, high: int) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise Rejected(Reason.TYPE, f"{key}: must be a string, got {type(value).__name__}", key)
    if not 1 <= len(value) <= high:
        raise Rejected(Reason.RANGE, f"{key}: must be 1 to {high} characters", key)
    # Printable only: the id becomes a Prometheus label and a cell of the status page.
    if not value.isprintable():
        raise Rejected(Reason.RANGE, f"{key}: must be printable text", key)
    return value


def parse_report(body: bytes) -> Report:
    """Parse and check one report body; :class:`Rejected` says why not."""
    if len(body) > MAX_BODY:
        raise Rejected(Reason.TOO_LARGE, f"the body is larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except Rejected:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: json's decoder on deeply nested arrays ("[[[[..."), which a 4 KiB
        # body can hold; a report is one flat object.
        raise Rejected(Reason.MALFORMED, "the body is not a JSON object") from None
    if not isinstance(data, dict):
        raise Rejected(Reason.MALFORMED, "the body is not a JSON object")
    unknown = sorted(set(data) - _ALL_KEYS)
    if unknown:
        raise Rejected(Reason.SCHEMA, f"unknown key {unknown[0][:40]!r}", unknown[0][:40])
    missing = [key for key in (*_KEYS, "startup") if key not in data]
    if missing:
        raise Rejected(Reason.SCHEMA, f"{missing[0]} is missing", missing[0])
    if type(data["v"]) is not int or data["v"] != VERSION:
        raise Rejected(Reason.SCHEMA, f"v: only version {VERSION} is known", "v")
    viewer = _string(data, "viewer", 64)
    if not _VIEWER_RE.fullmatch(viewer):
        raise Rejected(Reason.RANGE, "viewer: must be 16 to 64 of [0-9A-Za-z_-]", "viewer")
    stream = _string(data, "stream", MAX_STREAM_ID)
    t = _integer(data, "t", 0, MAX_ELAPSED_MS)
    startup: int | None = None
    if data["startup"] is not None:
        startup = _integer(data, "startup", 0, t)
    return Report(
        viewer=viewer,
        stream=stream,
        seq=_integer(data, "seq", 1, MAX_SEQ),
        t=t,
        http=_integer(data, "http", 0, MAX_BYTES),
        p2p=_integer(data, "p2p", 0, MAX_BYTES),
        up=_integer(data, "up", 0, MAX_BYTES),
        peers=_integer(data, "peers", 0, MAX_PEERS),
        stalls=_integer(data, "stalls", 0, MAX_ELAPSED_MS // 1000 * MAX_STALLS_PER_S),
        startup=startup,
    )
