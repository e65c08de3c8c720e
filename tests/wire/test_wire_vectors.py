"""The wire codec against the outputs of the real npm packages (commands.json,
serialization_primitives.json, peer_transcript.json)."""

from __future__ import annotations

import ast
import hashlib
from typing import Any

import pytest

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
from p2pml_py.wire.codec import encode_int, encode_similar_int_array, encode_string
from tests.conftest import VectorCounter
from tests.wire.browser_model import BrowserDecodeError, browser_decode_body, browser_join


def command_from_vector(data: dict[str, Any]) -> Command:
    code = data["c"]
    if code == 0:
        return SegmentsAnnouncement(tuple(data.get("l") or ()), tuple(data.get("p") or ()))
    if code == 1:
        return SegmentRequest(data["i"], data["r"], data.get("b", 0))
    if code == 2:
        return SegmentData(data["i"], data["r"], data["s"])
    simple = {3: SegmentDataSendingCompleted, 4: SegmentAbsent, 5: CancelSegmentRequest}
    return simple[code](data["i"], data["r"])


def _ids_from_description(text: str) -> list[int]:
    if text.startswith("65025 ids"):
        return [x for x in range(65280) if x % 256 != 255]
    if text.startswith("300 ids"):
        return [k * 256 for k in range(300)]
    raise AssertionError(f"unknown id description {text!r}")


def _input(case: dict[str, Any]) -> dict[str, Any]:
    raw = case["input"]
    data = ast.literal_eval(raw) if isinstance(raw, str) else dict(raw)
    if isinstance(data.get("l"), str):
        data["l"] = _ids_from_description(data["l"])
    return data


def _expected_values(data: dict[str, Any]) -> dict[str, Any]:
    """The command as browsers decode it when all goes well (groups in first-seen order)."""
    out = dict(data)
    for key in ("l", "p"):
        if key in out:
            values = out.pop(key)
            if values:
                groups: dict[int, list[int]] = {}
                for v in values:
                    groups.setdefault(v - (v & 0xFF), []).append(v)
                out[key] = [v for g in groups.values() for v in g]
    return out


def _cases(vectors: VectorCounter) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = vectors.load("commands.json")["cases"]
    assert cases, "commands.json has no cases"
    return cases


def test_commands_json(vectors: VectorCounter) -> None:
    checked = 0
    for case in _cases(vectors):
        data = _input(case)
        command = command_from_vector(data)
        ours = encode(command, case["max_chunk_size"])
        if "chunks_hex" in case:
            theirs = [bytes.fromhex(h) for h in case["chunks_hex"]]
        else:
            theirs = []
        if case.get("join_error"):
            # Browsers emit bytes they cannot decode themselves: we decode them anyway, and we
            # emit something else that the browser decoder does take.
            assert decode(theirs) == command, case["name"]
            assert ours != theirs
            assert browser_decode_body(browser_join(ours)) == _expected_values(data), case["name"]
            with pytest.raises(BrowserDecodeError):
                browser_decode_body(browser_join(theirs))
        elif "chunks_sha256" in case:
            digests = [hashlib.sha256(c).hexdigest() for c in ours]
            if case["decoded_matches_input"]:
                assert digests == case["chunks_sha256"], case["name"]
                assert [len(c) for c in ours] == case["chunk_lengths"]
                decoded = decode(ours)
                assert isinstance(decoded, SegmentsAnnouncement)
                assert len(decoded.loaded) == case["decoded_l_length"]
            else:
                # > 255 groups: browsers wrap the group count. We keep the newest 255 groups,
                # which the browser decoder reads back exactly.
                assert digests != case["chunks_sha256"]
                got = browser_decode_body(browser_join(ours))
                assert got["l"] == data["l"][-255:]
        else:
            assert [c.hex() for c in ours] == case["chunks_hex"], case["name"]
            assert [len(c) for c in ours] == case["chunk_lengths"]
            assert decode(theirs) == command_from_vector(case["decoded"]), case["name"]
            assert all(is_command_chunk(c) for c in theirs)
        checked += 1
    vectors.checked("commands.json", checked)
    assert checked == len(_cases(vectors))


def test_is_command_chunk_probes(vectors: VectorCounter) -> None:
    probes = vectors.load("commands.json")["is_command_chunk_probes"]
    assert probes
    for probe in probes:
        assert is_command_chunk(bytes.fromhex(probe["hex"])) is probe["isCommandChunk"], probe[
            "note"
        ]
    vectors.checked("commands.json", len(probes))


def test_int_primitives(vectors: VectorCounter) -> None:
    cases = vectors.load("serialization_primitives.json")["int"]
    assert cases
    for case in cases:
        value = int(case["value"])
        encoded = encode_int(value)
        assert encoded.hex() == case["hex"], case["value"]
        assert len(encoded) == case["byte_length"]
        # Decode it as the value of a one-field body.
        body = bytes((1,)) + b"i" + encoded + b"r" + encode_int(0)
        decoded = decode_body(body)
        assert isinstance(decoded, SegmentRequest) and decoded.segment_id == value
    vectors.checked("serialization_primitives.json", len(cases))


def test_similar_int_array_primitives(vectors: VectorCounter) -> None:
    cases = vectors.load("serialization_primitives.json")["similar_int_array"]
    assert cases
    for case in cases:
        encoded = encode_similar_int_array(case["values"])
        decoded = decode_body(b"\x00l" + encoded)
        assert isinstance(decoded, SegmentsAnnouncement)
        if case["roundtrip_ok"]:
            assert encoded.hex() == case["hex"]
            assert len(encoded) == case["byte_length"]
            assert list(decoded.loaded) == case["roundtrip"]
        else:
            # Browser bytes are broken here; ours must round-trip in the browser model.
            assert encoded.hex() != case["hex"]
            assert sorted(browser_decode_body(b"\x00l" + encoded)["l"]) == sorted(case["values"])
            theirs = decode_body(b"\x00l" + bytes.fromhex(case["hex"]))
            assert isinstance(theirs, SegmentsAnnouncement)
            assert sorted(theirs.loaded) == sorted(case["values"])
    vectors.checked("serialization_primitives.json", len(cases))


def test_similar_int_array_decoder_acceptance(vectors: VectorCounter) -> None:
    cases = vectors.load("serialization_primitives.json")["similar_int_array_decoder_acceptance"]
    assert cases
    for case in cases:
        raw = bytes.fromhex(case["hex"])
        assert len(raw) == case["byte_length_consumed"]
        decoded = decode_body(b"\x00l" + raw)
        assert isinstance(decoded, SegmentsAnnouncement)
        ids = decoded.loaded
        assert len(ids) == case["decoded_count"]
        assert (ids[0], ids[-1]) == (case["decoded_first"], case["decoded_last"])
        # This is exactly what our encoder emits for such a block.
        assert encode_similar_int_array(list(range(ids[0], ids[-1] + 1))) == raw
    vectors.checked("serialization_primitives.json", len(cases))


def test_string_primitives(vectors: VectorCounter) -> None:
    cases = vectors.load("serialization_primitives.json")["string"]
    assert cases
    for case in cases:
        ours = encode_string(case["value"])
        if case["utf16_length"] == case["utf8_length"]:
            assert ours.hex() == case["hex"]
        # Our length is the UTF-8 byte length, so every string round-trips.
        decoded = decode_body(bytes((0,)) + b"x" + ours)
        assert decoded == SegmentsAnnouncement()  # an unknown field is read and ignored
    vectors.checked("serialization_primitives.json", len(cases))


@pytest.mark.parametrize("version", ["2.2.2", "2.3.1"])
def test_peer_transcript(vectors: VectorCounter, version: str) -> None:
    transcript = vectors.load("peer_transcript.json")["versions"][version]
    inbound = [bytes.fromhex(h) for h in transcript["inbound_request_hex"]]
    (expected_request,) = transcript["onSegmentRequested_called_with"]
    request = decode(inbound)
    assert request == SegmentRequest(
        expected_request["i"], expected_request["r"], expected_request["b"]
    )
    outbound = transcript["outbound_messages"]
    commands = [m for m in outbound if m["kind"] == "command"]
    data_messages = [m for m in outbound if m["kind"] == "segment-bytes"]
    for message in commands:
        decoded_vector = command_from_vector(message["decoded"])
        assert encode(decoded_vector) == [bytes.fromhex(message["hex"])]
    data_command = command_from_vector(commands[1]["decoded"])
    assert isinstance(data_command, SegmentData)
    payload = bytes(k & 0xFF for k in range(data_command.size))
    chunks = list(split_segment_data(payload))
    assert len(chunks) == len(data_messages)
    for chunk, message in zip(chunks, data_messages, strict=True):
        assert len(chunk) == message["length"]
        assert bytes(chunk[:8]).hex() == message["first8_hex"]
        assert hashlib.sha256(chunk).hexdigest() == message["sha256"]
    vectors.checked("peer_transcript.json", len(outbound) + len(inbound))


def test_joiner_matches_vectors_at_small_sizes(vectors: VectorCounter) -> None:
    """Feed every split case chunk by chunk through one long-lived joiner."""
    joiner = CommandJoiner()
    count = 0
    for case in _cases(vectors):
        if "chunks_hex" not in case or case.get("join_error"):
            continue
        chunks = [bytes.fromhex(h) for h in case["chunks_hex"]]
        results = [joiner.feed(c) for c in chunks]
        assert all(r is None for r in results[:-1])
        assert results[-1] is not None
        assert decode_body(results[-1]) == command_from_vector(case["decoded"])
        count += 1
    assert count > 0
    vectors.checked("commands.json", count)
