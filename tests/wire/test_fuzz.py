"""Property-based tests: the decoder and joiner survive any bytes a peer can send.

Any input yields a command or a ``RemoteProtocolError`` (also a ``ValueError``) -- never another
exception. Example counts are recorded and printed at the end of the run; CI runs > 10,000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pml_py.base.errors import RemoteProtocolError
from p2pml_py.wire import (
    CancelSegmentRequest,
    Command,
    CommandJoiner,
    SegmentAbsent,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentRequest,
    SegmentsAnnouncement,
    decode,
    decode_body,
    encode,
    is_command_chunk,
    split_segment_data,
)
from tests.conftest import record_fuzz_example
from tests.wire.browser_model import browser_decode_body, browser_join

FUZZ = settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
request_ids = st.integers(min_value=0, max_value=999)
sizes = st.integers(min_value=0, max_value=2**53 - 1)
id_lists = st.one_of(
    st.lists(ids, max_size=50),
    # dense runs: full 256-blocks and many groups, the upstream bug territory
    st.builds(lambda a, n: list(range(a, a + n)), st.integers(0, 2**40), st.integers(0, 3000)),
    st.lists(st.integers(0, 2**20).map(lambda k: k * 256), max_size=400),
)


def _unique(values: list[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(SegmentsAnnouncement, id_lists.map(_unique), id_lists.map(_unique)),
    st.builds(SegmentRequest, ids, request_ids, sizes),
    st.builds(SegmentData, ids, request_ids, sizes),
    st.builds(SegmentDataSendingCompleted, ids, request_ids),
    st.builds(SegmentAbsent, ids, request_ids),
    st.builds(CancelSegmentRequest, ids, request_ids),
)
max_sizes = st.one_of(st.just(65535), st.integers(min_value=16, max_value=70000))


def _decode_or_protocol_error(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except RemoteProtocolError as exc:
        assert isinstance(exc, ValueError)


@FUZZ
@given(commands, max_sizes)
def test_roundtrip(command: Command, max_size: int) -> None:
    record_fuzz_example()
    chunks = encode(command, max_size)
    decoded = decode(chunks)
    if isinstance(command, SegmentsAnnouncement):
        # Decoding yields values group by group; up to 255 groups survive (the newest).
        assert set(decoded.loaded) <= set(command.loaded)  # type: ignore[union-attr]
        assert set(decoded.http_loading) <= set(command.http_loading)  # type: ignore[union-attr]
        # What we emit decodes the same in the browser's (buggy) decoder.
        browser = browser_decode_body(browser_join(chunks))
        assert sorted(browser.get("l", [])) == sorted(decoded.loaded)  # type: ignore[union-attr]
        assert sorted(browser.get("p", [])) == sorted(decoded.http_loading)  # type: ignore[union-attr]
    else:
        assert decoded == command
    assert all(is_command_chunk(c) for c in chunks)
    if max_size >= 65535:
        assert all(len(c) <= max_size for c in chunks)


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    record_fuzz_example()
    _decode_or_protocol_error(lambda: decode_body(data))
    _decode_or_protocol_error(lambda: decode(data))
    joiner = CommandJoiner(max_command_size=256)
    if is_command_chunk(data):
        _decode_or_protocol_error(lambda: joiner.feed(data))


@FUZZ
@given(commands, st.data())
def test_truncation_and_bit_flips(command: Command, data: st.DataObject) -> None:
    record_fuzz_example()
    chunks = encode(command, data.draw(max_sizes))
    index = data.draw(st.integers(0, len(chunks) - 1))
    chunk = bytearray(chunks[index])
    mutation = data.draw(st.sampled_from(["truncate", "flip", "both"]))
    if mutation in ("truncate", "both"):
        chunk = chunk[: data.draw(st.integers(0, len(chunk)))]
    if mutation in ("flip", "both") and chunk:
        position = data.draw(st.integers(0, len(chunk) - 1))
        chunk[position] ^= 1 << data.draw(st.integers(0, 7))
    mutated = [*chunks[:index], bytes(chunk), *chunks[index + 1 :]]
    _decode_or_protocol_error(lambda: decode(mutated))
    joiner = CommandJoiner()
    for message in mutated:
        if is_command_chunk(message):
            _decode_or_protocol_error(lambda m=message: joiner.feed(m))  # type: ignore[misc]


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=40))
def test_joiner_stays_bounded(messages: list[bytes]) -> None:
    """Any sequence of chunks: the joiner never holds more than its cap."""
    record_fuzz_example()
    joiner = CommandJoiner(max_command_size=300)
    for message in messages:
        framed = b"dstr" + message + b"dend" if message[:1] != b"c" else b"cstr" + message + b"dend"
        _decode_or_protocol_error(lambda m=framed: joiner.feed(m))  # type: ignore[misc]
        assert joiner._size <= 300


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=9, max_value=64), st.data())
def test_segment_data_never_looks_like_a_command(payload: bytes, max_size: int, data: Any) -> None:
    record_fuzz_example()
    # Plant command frames at random places so boundaries land on them.
    frames = [b"cstr", b"dstr", b"cend", b"dend"]
    planted = bytearray(payload)
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(planted)))
        planted[at:at] = data.draw(st.sampled_from(frames))
    chunks = list(split_segment_data(bytes(planted), max_size))
    assert b"".join(bytes(c) for c in chunks) == bytes(planted)
    assert all(0 < len(c) <= max_size for c in chunks)
    assert not any(is_command_chunk(c) for c in chunks)
