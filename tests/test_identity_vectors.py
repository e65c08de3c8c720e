"""Identity functions against the outputs of the real npm packages (tests/vectors)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.identity import (
    PEER_ID_ALPHABET,
    PEER_ID_LENGTH,
    ProtocolVersion,
    convert_avc1_to_avcoti,
    generate_peer_id,
    info_hash,
    segment_runtime_id,
    stream_short_id,
    stream_short_id_canonical,
    stream_swarm_id,
    swarm_id_from_manifest_url,
)

# vector keys are npm versions; ProtocolVersion.parse must map them
NPM_VERSIONS = ("2.2.2", "2.3.1")


def _cases(data: dict[str, Any]) -> list[Any]:
    cases = data["cases"]
    assert cases, "vector file has no cases"
    return list(cases)


def test_info_hash_vectors(vectors: Any) -> None:
    data = vectors.load("info_hash.json")
    for case in _cases(data):
        swarm = case["stream_swarm_id"]
        assert set(case["results"]) == set(NPM_VERSIONS)
        for npm_version, result in case["results"].items():
            version = ProtocolVersion.parse(npm_version)
            got = info_hash(swarm, version)
            assert got == result["info_hash_string"], (swarm, npm_version)
            assert got == result["wire_info_hash_json_value"]
            assert got.encode("ascii").hex() == result["info_hash_bytes_hex"]
            assert len(got) == 20
            vectors.checked("info_hash.json")


def test_peer_id_vectors(vectors: Any) -> None:
    data = vectors.load("peer_id.json")
    assert set(data["versions"]) == set(NPM_VERSIONS)
    for npm_version, info in data["versions"].items():
        version = ProtocolVersion.parse(npm_version)
        assert version.peer_id_prefix == info["TRACKER_CLIENT_VERSION_PREFIX"]
        assert info["peer_id_length"] == PEER_ID_LENGTH
        assert info["random_alphabet"] == PEER_ID_ALPHABET
        regex = re.compile(info["regex"])
        samples = info["sample_peer_ids_random"]
        assert samples
        for sample, sample_hex in zip(samples, info["sample_peer_ids_hex"], strict=True):
            # our ids have the same shape as the browser's samples
            ours = generate_peer_id(version)
            assert regex.match(ours), ours
            assert regex.match(sample)
            assert ours[:8] == sample[:8]
            assert len(ours.encode("ascii")) == len(bytes.fromhex(sample_hex)) == 20
            vectors.checked("peer_id.json")
        custom = info["custom_prefix_example"]
        ours = generate_peer_id(version, prefix=custom["input_prefix"])
        assert ours.startswith(custom["input_prefix"])
        assert len(ours) == len(custom["output_sample"])
        assert set(ours[len(custom["input_prefix"]) :]) <= set(PEER_ID_ALPHABET)
        vectors.checked("peer_id.json")


def test_stream_short_id_vectors(vectors: Any) -> None:
    data = vectors.load("stream_short_id.json")
    for case in _cases(data):
        inp = case["input"]
        kwargs = {
            "bitrate": inp.get("bitrate"),
            "codecs": inp.get("codecs"),
            "width": inp.get("width"),
            "height": inp.get("height"),
            "frame_rate": inp.get("frameRate"),
            "video_range": inp.get("videoRange"),
            "language": inp.get("language"),
            "channels": inp.get("channels"),
            "name": inp.get("name"),
        }
        assert stream_short_id_canonical(**kwargs) == case["recipe_canonical_string"], case["note"]
        assert stream_short_id(**kwargs) == case["stream_short_id"], case["note"]
        vectors.checked("stream_short_id.json")


# ---------------------------------------------------------------------------------------------
# edge cases beyond the vectors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.2", ProtocolVersion.V2_2),
        ("2.2.2", ProtocolVersion.V2_2),
        ("v2.2.0", ProtocolVersion.V2_2),
        ("2.3", ProtocolVersion.V2_3),
        ("2.3.1", ProtocolVersion.V2_3),
        (" 02.03.0-alpha.1 ", ProtocolVersion.V2_3),
    ],
)
def test_protocol_version_parse(text: str, expected: ProtocolVersion) -> None:
    assert ProtocolVersion.parse(text) is expected


@pytest.mark.parametrize("text", ["", "2", "2.1", "2.4.0", "3.2", "x.y", "2.3x"])
def test_protocol_version_parse_rejects(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        ProtocolVersion.parse(text)


def test_peer_id_rng_is_reproducible_and_uniformish() -> None:
    a = generate_peer_id(ProtocolVersion.V2_3, rng=random.Random(7))
    b = generate_peer_id(ProtocolVersion.V2_3, rng=random.Random(7))
    assert a == b
    assert a.startswith("-PM0203-")
    rng = random.Random(1)
    seen = {ch for _ in range(200) for ch in generate_peer_id(ProtocolVersion.V2_2, rng=rng)[8:]}
    assert seen == set(PEER_ID_ALPHABET)


@pytest.mark.parametrize("prefix", ["x" * 21, "-PMé01-", "-PM\n01-"])
def test_peer_id_bad_prefix(prefix: str) -> None:
    with pytest.raises(LocalProtocolError):
        generate_peer_id(ProtocolVersion.V2_2, prefix=prefix)


def test_peer_id_full_length_prefix_has_no_random_part() -> None:
    assert generate_peer_id(ProtocolVersion.V2_2, prefix="A" * 20) == "A" * 20


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x/master.m3u8?token=1?b=2", "https://a.example/x/master.m3u8"),
        ("https://a.example/master.m3u8#frag", "https://a.example/master.m3u8#frag"),
        ("https://a.example/master.m3u8#frag?x", "https://a.example/master.m3u8#frag"),
        ("https://a.example/master.m3u8", "https://a.example/master.m3u8"),
    ],
)
def test_swarm_id_from_manifest_url(url: str, expected: str) -> None:
    assert swarm_id_from_manifest_url(url) == expected


def test_stream_swarm_id_and_runtime_id() -> None:
    assert stream_swarm_id("s", "main", 0) == "v2-s-main-0"
    assert stream_swarm_id("s", "secondary", "ab+/=") == "v2-s-secondary-ab+/="
    assert segment_runtime_id("https://a/b.ts", None) == "https://a/b.ts"
    assert segment_runtime_id("https://a/b.ts", (10, 19)) == "https://a/b.ts|10-19"


@pytest.mark.parametrize(
    ("codecs", "expected"),
    [
        ("avc1.66.30", "avc1.42001e"),
        ("avc1.77.030", "avc1.4d001e"),  # SPEC c.3: seen in Chromium with hls.js
        ("avc1.77.30,avc1.66.30", "avc1.4d001e,avc1.42001e"),
        ("avc1.100.40.7", "avc1.640028"),  # extra parts dropped
        ("avc1.64001f", "avc1.64001f"),  # only two parts: untouched
        ("avc.66.30", "avc.66.30"),  # hls.js only rewrites avc1
        ("AVC1.66.30", "AVC1.66.30"),  # case-sensitive
        ("avc1.x.30", "avc1.NaN001e"),  # parseInt -> NaN, as hls.js would produce
        ("avc1.0x42.30", "avc1.42001e"),  # parseInt without radix honours 0x
        ("hvc1.2.4.L153.B0", "hvc1.2.4.L153.B0"),
    ],
)
def test_convert_avc1_to_avcoti(codecs: str, expected: str) -> None:
    assert convert_avc1_to_avcoti(codecs) == expected


def test_short_id_hlsjs_rewrite_changes_swarm_for_leading_zero() -> None:
    # PML alone keeps "avc1.77.030"; after hls.js's rewrite it is the same as avc1.4d001e.
    raw = stream_short_id(bitrate=1, codecs="avc1.77.030")
    rewritten = stream_short_id(bitrate=1, codecs=convert_avc1_to_avcoti("avc1.77.030"))
    assert raw != rewritten
    assert rewritten == stream_short_id(bitrate=1, codecs="avc1.4d001e")


@pytest.mark.parametrize(
    ("kwargs", "canonical"),
    [
        ({"bitrate": float("nan")}, "NaN--------"),
        ({"bitrate": float("inf")}, "Infinity--------"),
        ({"bitrate": 1, "frame_rate": "0x1e"}, "1-------30-"),
        ({"bitrate": 1, "frame_rate": "inf"}, "1--------"),
        ({"bitrate": 1, "frame_rate": " 25.50 "}, "1-------25.5-"),
        ({"bitrate": 1, "frame_rate": "1e-7"}, "1-------1e-7-"),
        ({"bitrate": 1, "codecs": "avc1.-5.30"}, "1-avc1.-5001e-------"),
        ({"bitrate": 1, "codecs": "avc1.66.+30"}, "1-avc1.66.+30-------"),
        (
            {"bitrate": 1, "codecs": "mp4a.40.2,avc1.42001e,MP4A.40.5"},
            "1-avc1.42001e,mp4a.40.2,mp4a.40.5-------",
        ),
        ({"channels": 0, "width": 0, "height": 0}, "0--0-0-----"),
        ({"language": "und-x"}, "0----un----"),
        ({"language": "\U0001f600x"}, "0----\U0001f600----"),
    ],
)
def test_short_id_canonical_js_semantics(kwargs: dict[str, Any], canonical: str) -> None:
    assert stream_short_id_canonical(**kwargs) == canonical


def test_short_id_survives_cut_surrogate_pair() -> None:
    # "x\U0001f600" sliced to two UTF-16 units leaves a lone surrogate; TextEncoder gives U+FFFD.
    canonical = stream_short_id_canonical(language="x\U0001f600")
    assert canonical == "0----x\ud83d----"
    assert stream_short_id(language="x\U0001f600") == stream_short_id(language="x\ufffd")
