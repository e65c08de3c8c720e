"""WebTorrent tracker signalling messages: JSON text <-> frozen dataclasses (sans-I/O).

How it works
------------
Browsers running p2p-media-loader talk to a WebTorrent tracker with JSON text frames over one
WebSocket (npm ``bittorrent-tracker`` 11.2.x, ``lib/client/websocket-tracker.js``; tracker side
``server.js`` + ``lib/server/parse-websocket.js``). Every message is a JSON object; the ``action``
key is ``"announce"`` or ``"scrape"``. What a message *means* depends on which other keys it has:

=========================  ===============================================  =====================
direction                  distinguishing keys                              dataclass
=========================  ===============================================  =====================
client -> tracker          ``offers`` (may be empty), ``event``, counters    :class:`Announce`
client -> tracker          ``answer`` + ``to_peer_id`` + ``offer_id``        :class:`AnswerRelay`
client -> tracker          ``action: "scrape"``                              :class:`ScrapeRequest`
tracker -> client          ``complete``/``incomplete``/``interval``          :class:`AnnounceResponse`
tracker -> client          ``offer`` + ``offer_id`` + ``peer_id``            :class:`RelayedOffer`
tracker -> client          ``answer`` + ``offer_id`` + ``peer_id``           :class:`RelayedAnswer`
tracker -> client          ``action: "scrape"`` + ``files``                  :class:`ScrapeResponse`
tracker -> client          ``failure reason``                                :class:`TrackerFailure`
=========================  ===============================================  =====================

``info_hash``, ``peer_id``, ``to_peer_id`` and ``offer_id`` are JS "binary strings": 20 chars,
each one byte (U+0000..U+00FF). JSON-decoding gives exactly that ``str``; it is kept as-is and
echoed back unchanged (``offer_id`` from browsers is 20 random bytes, so it often holds
non-ASCII chars). :func:`encode` writes them the way ``JSON.stringify`` does (raw UTF-8 for
chars >= U+0080, ``\\u00XX`` for control chars).

:func:`parse_client_message` (what a tracker receives) and :func:`parse_tracker_message` (what a
client receives) validate every field they use and raise
:class:`~p2pml_py.base.errors.TrackerProtocolError` (a ``ValueError``) with a message that names the
field; no other exception escapes them. :func:`encode` raises
:class:`~p2pml_py.base.errors.LocalProtocolError` for a message we could not send validly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from p2pml_py.base.errors import LocalProtocolError, TrackerProtocolError

__all__ = [
    "EVENTS",
    "ID_LENGTH",
    "MAX_MESSAGE_CHARS",
    "MAX_OFFERS",
    "MAX_SDP_CHARS",
    "Announce",
    "AnnounceResponse",
    "AnswerRelay",
    "ClientMessage",
    "Offer",
    "RelayedAnswer",
    "RelayedOffer",
    "ScrapeFile",
    "ScrapeRequest",
    "ScrapeResponse",
    "TrackerFailure",
    "TrackerMessage",
    "encode",
    "is_binary_id",
    "parse_client_message",
    "parse_tracker_message",
]

#: Length of info_hash / peer_id / offer_id (``parse-websocket.js`` requires ``length === 20``).
ID_LENGTH: Final = 20
#: Largest SDP we accept. A non-trickle data-channel SDP with every candidate is a few KiB.
MAX_SDP_CHARS: Final = 32 * 1024
#: Largest number of offers in one announce. Browsers send 5 (``Math.min(numwant, 5)``);
#: wt-tracker's ``maxOffers`` is 20, so 20 is a generous bound that still limits fan-out.
MAX_OFFERS: Final = 20
#: Default cap on one JSON text (20 offers of the largest SDP fit).
MAX_MESSAGE_CHARS: Final = 768 * 1024
#: Longest free-text field (failure reason, warning, tracker id) we keep.
MAX_TEXT_CHARS: Final = 1024
#: Largest scrape request/response (number of info hashes).
MAX_SCRAPE_HASHES: Final = 256
#: Largest integer JS can represent exactly (``Number.MAX_SAFE_INTEGER``).
MAX_SAFE_INT: Final = 2**53 - 1
#: Announce events the bittorrent-tracker server understands (``lib/common-node.js EVENTS``);
#: ``"empty"`` is treated as an update by ``server.js _onAnnounce``.
EVENTS: Final = frozenset({"started", "stopped", "completed", "update", "paused", "empty"})


# --------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True, slots=True)
class Offer:
    """One WebRTC offer inside an announce: ``{"offer": {"type": "offer", "sdp": ...}, "offer_id": ...}``."""

    offer_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Client -> tracker announce (with zero or more offers)."""

    info_hash: str
    peer_id: str
    offers: tuple[Offer, ...] = ()
    event: str | None = None
    numwant: int | None = None
    uploaded: int | None = None
    downloaded: int | None = None
    left: int | None = None
    trackerid: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerRelay:
    """Client -> tracker: our answer to a relayed offer, to be forwarded to ``to_peer_id``."""

    info_hash: str
    peer_id: str
    to_peer_id: str
    offer_id: str
    sdp: str
    trackerid: str | None = None


@dataclass(frozen=True, slots=True)
class ScrapeRequest:
    """Client -> tracker scrape. An empty tuple asks for every swarm (``server.js _onScrape``)."""

    info_hashes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    """Tracker -> client reply to an announce (counts and re-announce interval)."""

    info_hash: str
    complete: int | None = None
    incomplete: int | None = None
    interval: int | None = None
    min_interval: int | None = None
    tracker_id: str | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class RelayedOffer:
    """Tracker -> client: ``peer_id`` (the offerer) offers a connection."""

    info_hash: str
    peer_id: str
    offer_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class RelayedAnswer:
    """Tracker -> client: ``peer_id`` (the answerer) answered our offer ``offer_id``."""

    info_hash: str
    peer_id: str
    offer_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class ScrapeFile:
    """Counts for one swarm in a scrape response."""

    info_hash: str
    complete: int
    incomplete: int
    downloaded: int


@dataclass(frozen=True, slots=True)
class ScrapeResponse:
    """Tracker -> client scrape result."""

    files: tuple[ScrapeFile, ...]
    min_request_interval: int | None = None


@dataclass(frozen=True, slots=True)
class TrackerFailure:
    """Tracker -> client error (``"failure reason"``); ``info_hash``/``action`` when the tracker said."""

    reason: str
    info_hash: str | None = None
    action: str | None = None


ClientMessage = Announce | AnswerRelay | ScrapeRequest
TrackerMessage = AnnounceResponse | RelayedOffer | RelayedAnswer | ScrapeResponse | TrackerFailure


# --------------------------------------------------------------------------------------------
# validation helpers


def is_binary_id(value: object) -> bool:
    """True if ``value`` is a 20-char JS binary string (every char <= U+00FF)."""
    return (
        isinstance(value, str) and len(value) == ID_LENGTH and all(ord(ch) <= 0xFF for ch in value)
    )


def _fail(text: str) -> TrackerProtocolError:
    return TrackerProtocolError(text)


def _binary_id(obj: dict[str, Any], key: str) -> str:
    if key not in obj:
        raise _fail(f"missing {key}")
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(f"invalid {key}: expected a string, got {type(value).__name__}")
    if len(value) != ID_LENGTH:
        raise _fail(f"invalid {key}: expected {ID_LENGTH} chars, got {len(value)}")
    if any(ord(ch) > 0xFF for ch in value):
        raise _fail(f"invalid {key}: chars above U+00FF are not a binary string")
    return value


def _opt_int(obj: dict[str, Any], key: str, *, maximum: int = MAX_SAFE_INT) -> int | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    # bool is an int subclass in Python; JSON true/false is not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"invalid {key}: expected a number, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise _fail(f"invalid {key}: {value!r} is not an integer")
        value = int(value)
    if value < 0 or value > maximum:
        raise _fail(f"invalid {key}: {value} out of range 0..{maximum}")
    return value


def _opt_text(obj: dict[str, Any], key: str) -> str | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(f"invalid {key}: expected a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise _fail(f"invalid {key}: longer than {MAX_TEXT_CHARS} chars")
    return value


def _sdp(obj: dict[str, Any], key: str, expected_type: str) -> str:
    """``obj[key]`` must be ``{"type": expected_type, "sdp": "<bounded string>"}``."""
    desc = obj.get(key)
    if not isinstance(desc, dict):
        raise _fail(f"invalid {key}: expected an object")
    if desc.get("type") != expected_type:
        raise _fail(f"invalid {key}: type must be {expected_type!r}")
    sdp = desc.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise _fail(f"invalid {key}: sdp must be a non-empty string")
    if len(sdp) > MAX_SDP_CHARS:
        raise _fail(f"invalid {key}: sdp longer than {MAX_SDP_CHARS} chars")
    return sdp


def _reject_constant(name: str) -> Any:
    raise _fail(f"invalid JSON number {name}")


def _load_object(text: str | bytes, max_chars: int) -> dict[str, Any]:
    if isinstance(text, bytes | bytearray):
        if len(text) > max_chars:
            raise _fail(f"message larger than {max_chars} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail("message is not UTF-8") from exc
    if not isinstance(text, str):
        raise _fail("message is not text")
    if len(text) > max_chars:
        raise _fail(f"message larger than {max_chars} chars")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except TrackerProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _fail(f"invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise _fail("message is not a JSON object")
    return obj


def _info_hash_list(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("info_hash")
    if value is None:
        return ()
    if isinstance(value, str):
        return (_binary_id(obj, "info_hash"),)
    if not isinstance(value, list):
        raise _fail("invalid info_hash: expected a string or a list of strings")
    if len(value) > MAX_SCRAPE_HASHES:
        raise _fail(f"invalid info_hash: more than {MAX_SCRAPE_HASHES} entries")
    return tuple(_binary_id({"info_hash": item}, "info_hash") for item in value)


# --------------------------------------------------------------------------------------------
# parsing


def parse_client_message(
    text: str | bytes, *, max_chars: int = MAX_MESSAGE_CHARS, max_offers: int = MAX_OFFERS
) -> ClientMessage:
    """Parse what a tracker receives from a client; raise :class:`TrackerProtocolError`."""
    obj = _load_object(text, max_chars)
    action = obj.get("action")
    if action == "scrape":
        return ScrapeRequest(info_hashes=_info_hash_list(obj))
    if action != "announce":
        raise _fail(f"invalid action {action!r}")
    info_hash = _binary_id(obj, "info_hash")
    peer_id = _binary_id(obj, "peer_id")
    trackerid = _opt_text(obj, "trackerid")
    if obj.get("answer") is not None:
        return AnswerRelay(
            info_hash=info_hash,
            peer_id=peer_id,
            to_peer_id=_binary_id(obj, "to_peer_id"),
            offer_id=_binary_id(obj, "offer_id"),
            sdp=_sdp(obj, "answer", "answer"),
            trackerid=trackerid,
        )
    event = obj.get("event")
    if event is not None and event not in EVENTS:
        raise _fail(f"invalid event {event!r}")
    raw_offers = obj.get("offers")
    offers: list[Offer] = []
    if raw_offers is not None:
        if not isinstance(raw_offers, list):
            raise _fail("invalid offers: expected a list")
        if len(raw_offers) > max_offers:
            raise _fail(f"too many offers: {len(raw_offers)} > {max_offers}")
        for index, item in enumerate(raw_offers):
            if not isinstance(item, dict):
                raise _fail(f"invalid offers[{index}]: expected an object")
            try:
                offers.append(
                    Offer(offer_id=_binary_id(item, "offer_id"), sdp=_sdp(item, "offer", "offer"))
                )
            except TrackerProtocolError as exc:
                raise _fail(f"invalid offers[{index}]: {exc}") from None
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        offers=tuple(offers),
        event=event,
        numwant=_opt_int(obj, "numwant"),
        uploaded=_opt_int(obj, "uploaded"),
        downloaded=_opt_int(obj, "downloaded"),
        left=_opt_int(obj, "left"),
        trackerid=trackerid,
    )


def parse_tracker_message(
    text: str | bytes, *, max_chars: int = MAX_MESSAGE_CHARS
) -> TrackerMessage:
    """Parse what a client receives from a tracker; raise :class:`TrackerProtocolError`."""
    obj = _load_object(text, max_chars)
    action = obj.get("action")
    if "failure reason" in obj:
        reason = _opt_text(obj, "failure reason") or ""
        info_hash = _binary_id(obj, "info_hash") if "info_hash" in obj else None
        if action is not None and action not in ("announce", "scrape"):
            raise _fail(f"invalid action {action!r}")
        return TrackerFailure(reason=reason, info_hash=info_hash, action=action)
    if action == "scrape":
        return _parse_scrape_response(obj)
    if action != "announce":
        # websocket-tracker.js _onSocketData: any other action is an error.
        raise _fail(f"invalid action {action!r}")
    info_hash = _binary_id(obj, "info_hash")
    if obj.get("offer") is not None:
        return RelayedOffer(
            info_hash=info_hash,
            peer_id=_binary_id(obj, "peer_id"),
            offer_id=_binary_id(obj, "offer_id"),
            sdp=_sdp(obj, "offer", "offer"),
        )
    if obj.get("answer") is not None:
        return RelayedAnswer(
            info_hash=info_hash,
            peer_id=_binary_id(obj, "peer_id"),
            offer_id=_binary_id(obj, "offer_id"),
            sdp=_sdp(obj, "answer", "answer"),
        )
    return AnnounceResponse(
        info_hash=info_hash,
        complete=_opt_int(obj, "complete"),
        incomplete=_opt_int(obj, "incomplete"),
        interval=_opt_int(obj, "interval"),
        min_interval=_opt_int(obj, "min interval"),
        tracker_id=_opt_text(obj, "tracker id"),
        warning=_opt_text(obj, "warning message"),
    )


def _parse_scrape_response(obj: dict[str, Any]) -> ScrapeResponse:
    files = obj.get("files")
    if not isinstance(files, dict):
        raise _fail("invalid files: expected an object")
    if len(files) > MAX_SCRAPE_HASHES:
        raise _fail(f"invalid files: more than {MAX_SCRAPE_HASHES} entries")
    parsed: list[ScrapeFile] = []
    for key, counts in files.items():
        info_hash = _binary_id({"info_hash": key}, "info_hash")
        if not isinstance(counts, dict):
            raise _fail("invalid files entry: expected an object")
        parsed.append(
            ScrapeFile(
                info_hash=info_hash,
                complete=_opt_int(counts, "complete") or 0,
                incomplete=_opt_int(counts, "incomplete") or 0,
                downloaded=_opt_int(counts, "downloaded") or 0,
            )
        )
    flags = obj.get("flags")
    min_request_interval = None
    if isinstance(flags, dict):
        min_request_interval = _opt_int(flags, "min_request_interval")
    return ScrapeResponse(files=tuple(parsed), min_request_interval=min_request_interval)


# --------------------------------------------------------------------------------------------
# encoding


def _check_id(name: str, value: str) -> str:
    if not is_binary_id(value):
        raise LocalProtocolError(f"{name} must be a 20-char binary string, got {value!r}")
    return value


def _check_sdp(sdp: str) -> str:
    if not sdp or len(sdp) > MAX_SDP_CHARS:
        raise LocalProtocolError(f"sdp must be 1..{MAX_SDP_CHARS} chars, got {len(sdp)}")
    return sdp


def _to_object(msg: ClientMessage | TrackerMessage) -> dict[str, Any]:
    # Key order follows what bittorrent-tracker emits (irrelevant to parsers, handy in logs).
    out: dict[str, Any]
    if isinstance(msg, Announce):
        if msg.event is not None and msg.event not in EVENTS:
            raise LocalProtocolError(f"unknown event {msg.event!r}")
        out = {}
        for key in ("numwant", "uploaded", "downloaded", "left"):
            value = getattr(msg, key)
            if value is not None:
                out[key] = value
        if msg.event is not None:
            out["event"] = msg.event
        out["action"] = "announce"
        out["info_hash"] = _check_id("info_hash", msg.info_hash)
        out["peer_id"] = _check_id("peer_id", msg.peer_id)
        if msg.trackerid is not None:
            out["trackerid"] = msg.trackerid
        # websocket-tracker.js omits offers only for stopped/completed.
        if msg.event not in ("stopped", "completed"):
            out["offers"] = [
                {
                    "offer": {"type": "offer", "sdp": _check_sdp(o.sdp)},
                    "offer_id": _check_id("offer_id", o.offer_id),
                }
                for o in msg.offers
            ]
        return out
    if isinstance(msg, AnswerRelay):
        out = {
            "action": "announce",
            "info_hash": _check_id("info_hash", msg.info_hash),
            "peer_id": _check_id("peer_id", msg.peer_id),
            "to_peer_id": _check_id("to_peer_id", msg.to_peer_id),
            "answer": {"type": "answer", "sdp": _check_sdp(msg.sdp)},
            "offer_id": _check_id("offer_id", msg.offer_id),
        }
        if msg.trackerid is not None:
            out["trackerid"] = msg.trackerid
        return out
    if isinstance(msg, ScrapeRequest):
        hashes = [_check_id("info_hash", h) for h in msg.info_hashes]
        return {"action": "scrape", "info_hash": hashes}
    if isinstance(msg, AnnounceResponse):
        out = {}
        for key, value in (
            ("complete", msg.complete),
            ("incomplete", msg.incomplete),
        ):
            if value is not None:
                out[key] = value
        out["action"] = "announce"
        out["info_hash"] = _check_id("info_hash", msg.info_hash)
        for key, value in (
            ("interval", msg.interval),
            ("min interval", msg.min_interval),
            ("tracker id", msg.tracker_id),
            ("warning message", msg.warning),
        ):
            if value is not None:
                out[key] = value
        return out
    if isinstance(msg, RelayedOffer):
        return {
            "action": "announce",
            "offer": {"type": "offer", "sdp": _check_sdp(msg.sdp)},
            "offer_id": _check_id("offer_id", msg.offer_id),
            "peer_id": _check_id("peer_id", msg.peer_id),
            "info_hash": _check_id("info_hash", msg.info_hash),
        }
    if isinstance(msg, RelayedAnswer):
        return {
            "action": "announce",
            "answer": {"type": "answer", "sdp": _check_sdp(msg.sdp)},
            "offer_id": _check_id("offer_id", msg.offer_id),
            "peer_id": _check_id("peer_id", msg.peer_id),
            "info_hash": _check_id("info_hash", msg.info_hash),
        }
    if isinstance(msg, ScrapeResponse):
        out = {
            "action": "scrape",
            "files": {
                _check_id("info_hash", f.info_hash): {
                    "complete": f.complete,
                    "incomplete": f.incomplete,
                    "downloaded": f.downloaded,
                }
                for f in msg.files
            },
        }
        if msg.min_request_interval is not None:
            out["flags"] = {"min_request_interval": msg.min_request_interval}
        return out
    if isinstance(msg, TrackerFailure):
        out = {}
        if msg.action is not None:
            out["action"] = msg.action
        out["failure reason"] = msg.reason
        if msg.info_hash is not None:
            out["info_hash"] = _check_id("info_hash", msg.info_hash)
        return out
    raise LocalProtocolError(f"not a tracker message: {msg!r}")


def encode(msg: ClientMessage | TrackerMessage) -> str:
    """Serialize a message to JSON text as ``JSON.stringify`` would (compact, raw non-ASCII)."""
    return json.dumps(_to_object(msg), ensure_ascii=False, separators=(",", ":"))
