"""JSON <-> dataclass round trips and rejections of tracker signalling messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pml_py.base.errors import LocalProtocolError, RemoteProtocolError, TrackerProtocolError
from p2pml_py.tracker.messages import (
    MAX_SDP_CHARS,
    Announce,
    AnnounceResponse,
    AnswerRelay,
    Offer,
    RelayedAnswer,
    RelayedOffer,
    ScrapeFile,
    ScrapeRequest,
    ScrapeResponse,
    TrackerFailure,
    encode,
    parse_client_message,
    parse_tracker_message,
)

IH = "v2-hash-0123456789ab"[:20]
PEER = "-PM0203-AbCdEfGhIjKl"
OTHER = "-PM0203-ZyXwVuTsRqPo"
# A browser offer_id: 20 random bytes as a binary string (websocket-tracker.js hex2bin).
RAW_OFFER_ID = "\x00\x1f\x7f\x80\xff" + "é" * 5 + "abcdefghij"
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"

binary_ids = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=255), min_size=20, max_size=20
)


def test_browser_announce_as_emitted_by_bittorrent_tracker() -> None:
    # Key order and shape exactly as SPEC a.2 (Object.assign({}, opts, {action, ...})).
    text = json.dumps(
        {
            "numwant": 5,
            "uploaded": 0,
            "downloaded": 0,
            "event": "started",
            "action": "announce",
            "info_hash": IH,
            "peer_id": PEER,
            "offers": [{"offer": {"type": "offer", "sdp": SDP}, "offer_id": RAW_OFFER_ID}] * 5,
        },
        ensure_ascii=False,
    )
    msg = parse_client_message(text)
    assert msg == Announce(
        info_hash=IH,
        peer_id=PEER,
        offers=(Offer(RAW_OFFER_ID, SDP),) * 5,
        event="started",
        numwant=5,
        uploaded=0,
        downloaded=0,
    )
    assert encode(msg) == text.replace(", ", ",").replace(": ", ":")


def test_encode_writes_binary_strings_like_json_stringify() -> None:
    msg = RelayedOffer(info_hash=IH, peer_id=PEER, offer_id=RAW_OFFER_ID, sdp=SDP)
    text = encode(msg)
    # JSON.stringify: control chars as lowercase \u00XX, DEL and >= U+0080 raw (UTF-8 on the wire).
    assert '"offer_id":"\\u0000\\u001f\x7f\x80\xffééééé' in text
    assert parse_tracker_message(text.encode("utf-8")) == msg


@pytest.mark.parametrize(
    "msg",
    [
        Announce(IH, PEER, (Offer(RAW_OFFER_ID, SDP),), "started", 1, 0, 0),
        Announce(IH, PEER, (), None, 0, 0, 0, trackerid="abc"),
        Announce(IH, PEER, (), "stopped", 0, 0, 0),
        Announce(IH, PEER, left=0, event="completed"),
        AnswerRelay(IH, PEER, OTHER, RAW_OFFER_ID, SDP),
        AnswerRelay(IH, PEER, OTHER, RAW_OFFER_ID, SDP, trackerid="t"),
        ScrapeRequest((IH, OTHER)),
        ScrapeRequest(),
    ],
)
def test_client_message_round_trip(msg: object) -> None:
    assert parse_client_message(encode(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg",
    [
        AnnounceResponse(IH, complete=0, incomplete=3, interval=120),
        AnnounceResponse(IH, interval=20, min_interval=10, tracker_id="x", warning="slow down"),
        RelayedOffer(IH, OTHER, RAW_OFFER_ID, SDP),
        RelayedAnswer(IH, OTHER, RAW_OFFER_ID, SDP),
        ScrapeResponse((ScrapeFile(IH, 1, 2, 3), ScrapeFile(OTHER, 0, 0, 0)), 600),
        TrackerFailure("invalid info_hash"),
        TrackerFailure("no", info_hash=IH, action="announce"),
    ],
)
def test_tracker_message_round_trip(msg: object) -> None:
    assert parse_tracker_message(encode(msg)) == msg  # type: ignore[arg-type]


def test_stopped_announce_carries_no_offers() -> None:
    obj = json.loads(encode(Announce(IH, PEER, (Offer(RAW_OFFER_ID, SDP),), "stopped")))
    assert "offers" not in obj  # websocket-tracker.js: no offers with stopped/completed
    assert obj["event"] == "stopped"


def test_single_string_scrape_and_bittorrent_tracker_scrape_response() -> None:
    assert parse_client_message(f'{{"action":"scrape","info_hash":"{IH}"}}') == ScrapeRequest((IH,))
    text = json.dumps(
        {
            "action": "scrape",
            "files": {IH: {"complete": 0, "incomplete": 2, "downloaded": 0}},
            "flags": {"min_request_interval": 600},
        }
    )
    assert parse_tracker_message(text) == ScrapeResponse((ScrapeFile(IH, 0, 2, 0),), 600)


@given(info_hash=binary_ids, peer_id=binary_ids, offer_id=binary_ids)
def test_any_binary_ids_round_trip(info_hash: str, peer_id: str, offer_id: str) -> None:
    msg = AnswerRelay(info_hash, peer_id, peer_id, offer_id, SDP)
    assert parse_client_message(encode(msg).encode("utf-8")) == msg
    relayed = RelayedOffer(info_hash, peer_id, offer_id, SDP)
    assert parse_tracker_message(encode(relayed)) == relayed


def _announce(**overrides: object) -> str:
    obj: dict[str, object] = {
        "numwant": 1,
        "uploaded": 0,
        "downloaded": 0,
        "action": "announce",
        "info_hash": IH,
        "peer_id": PEER,
        "offers": [{"offer": {"type": "offer", "sdp": SDP}, "offer_id": "o" * 20}],
    }
    for key, value in overrides.items():
        if value is _DELETE:
            del obj[key]
        else:
            obj[key] = value
    return json.dumps(obj)


_DELETE = object()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"announce"', "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
        (_announce(action="connect"), "invalid action"),
        (_announce(action=_DELETE), "invalid action"),
        (_announce(info_hash="short"), "invalid info_hash: expected 20 chars, got 5"),
        (_announce(info_hash="x" * 21), "invalid info_hash"),
        (_announce(info_hash=12345), "invalid info_hash: expected a string"),
        (_announce(info_hash=_DELETE), "missing info_hash"),
        (_announce(peer_id="\u0100" + "x" * 19), "binary string"),
        (_announce(peer_id="😀" * 10), "invalid peer_id"),
        (_announce(numwant=-1), "invalid numwant"),
        (_announce(numwant=True), "invalid numwant"),
        (_announce(numwant=1.5), "invalid numwant"),
        (_announce(numwant="5"), "invalid numwant"),
        (_announce(uploaded=2**60), "invalid uploaded"),
        (_announce(numwant=1).replace("1,", "NaN,", 1), "invalid JSON"),
        (_announce(event="exploded"), "invalid event"),
        (_announce(offers={"a": 1}), "invalid offers"),
        (_announce(offers=[1]), "invalid offers[0]"),
        (_announce(offers=[{"offer_id": "o" * 20}]), "invalid offers[0]: invalid offer"),
        (
            _announce(offers=[{"offer": {"type": "answer", "sdp": SDP}, "offer_id": "o" * 20}]),
            "type",
        ),
        (_announce(offers=[{"offer": {"type": "offer", "sdp": ""}, "offer_id": "o" * 20}]), "sdp"),
        (
            _announce(
                offers=[
                    {
                        "offer": {"type": "offer", "sdp": "x" * (MAX_SDP_CHARS + 1)},
                        "offer_id": "o" * 20,
                    }
                ]
            ),
            "sdp longer",
        ),
        (
            _announce(offers=[{"offer": {"type": "offer", "sdp": SDP}, "offer_id": "o" * 19}]),
            "offer_id",
        ),
        (
            _announce(offers=[{"offer": {"type": "offer", "sdp": SDP}, "offer_id": "o" * 20}] * 21),
            "too many offers",
        ),
        (_announce(answer={"type": "answer", "sdp": SDP}, offer_id="o" * 20), "missing to_peer_id"),
        (_announce(answer={"type": "answer", "sdp": SDP}, to_peer_id=OTHER), "missing offer_id"),
        (
            _announce(answer={"type": "offer", "sdp": SDP}, to_peer_id=OTHER, offer_id="o" * 20),
            "type",
        ),
        ('{"action":"scrape","info_hash":["short"]}', "invalid info_hash"),
        ('{"action":"scrape","info_hash":{"a":1}}', "invalid info_hash"),
        ('{{"action":"scrape","info_hash":[{}]}}'.format(",".join([f'"{IH}"'] * 257)), "more than"),
    ],
)
def test_client_message_rejections(text: str, needle: str) -> None:
    with pytest.raises(TrackerProtocolError, match=None) as info:
        parse_client_message(text)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RemoteProtocolError)


def test_oversized_and_undecodable_messages_are_rejected() -> None:
    with pytest.raises(TrackerProtocolError, match="larger than 100"):
        parse_client_message(_announce(), max_chars=100)
    with pytest.raises(TrackerProtocolError, match="larger than 100"):
        parse_tracker_message(b"x" * 101, max_chars=100)
    with pytest.raises(TrackerProtocolError, match="not UTF-8"):
        parse_tracker_message(b"\xff\xfe{}")
    with pytest.raises(TrackerProtocolError, match="too many offers: 2 > 1"):
        parse_client_message(
            _announce(offers=[{"offer": {"type": "offer", "sdp": SDP}, "offer_id": "o" * 20}] * 2),
            max_offers=1,
        )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f'{{"action":"bogus","info_hash":"{IH}"}}', "invalid action"),
        ('{"action":"announce"}', "missing info_hash"),
        (f'{{"action":"announce","info_hash":"{IH}","interval":-5}}', "invalid interval"),
        (f'{{"action":"announce","info_hash":"{IH}","complete":"3"}}', "invalid complete"),
        (
            f'{{"action":"announce","info_hash":"{IH}","offer":{{"type":"offer","sdp":"x"}}}}',
            "missing peer_id",
        ),
        (
            f'{{"action":"announce","info_hash":"{IH}","peer_id":"{PEER}","offer":{{"type":"offer","sdp":"x"}}}}',
            "missing offer_id",
        ),
        (
            '{{"action":"announce","info_hash":"{}","peer_id":"{}","offer_id":"{}","answer":"x"}}'.format(
                IH, PEER, "o" * 20
            ),
            "invalid answer",
        ),
        ('{"action":"scrape","files":[]}', "invalid files"),
        ('{"action":"scrape","files":{"short":{}}}', "invalid info_hash"),
        ('{{"failure reason":{}}}'.format(json.dumps("x" * 5000)), "failure reason"),
    ],
)
def test_tracker_message_rejections(text: str, needle: str) -> None:
    with pytest.raises(TrackerProtocolError) as info:
        parse_tracker_message(text)
    assert needle in str(info.value)


def test_bittorrent_tracker_failure_shapes() -> None:
    # server.js: parse errors carry only the reason; announce errors also action + info_hash.
    assert parse_tracker_message('{"failure reason":"invalid info_hash"}') == TrackerFailure(
        "invalid info_hash"
    )
    text = f'{{"action":"announce","failure reason":"invalid event","info_hash":"{IH}"}}'
    assert parse_tracker_message(text) == TrackerFailure("invalid event", IH, "announce")


@pytest.mark.parametrize(
    "msg",
    [
        Announce("short", PEER),
        Announce(IH, PEER, event="exploded"),
        Announce(IH, PEER, (Offer("x" * 20, ""),)),
        Announce(IH, PEER, (Offer("x" * 20, "x" * (MAX_SDP_CHARS + 1)),)),
        AnswerRelay(IH, PEER, "\u0100" * 20, "x" * 20, SDP),
        RelayedOffer(IH, PEER, "x" * 19, SDP),
    ],
)
def test_encode_refuses_what_a_peer_would_reject(msg: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode(msg)  # type: ignore[arg-type]
