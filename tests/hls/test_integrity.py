"""Segment checks (:mod:`p2pml_py.hls.validate`) and integrity lists (:mod:`p2pml_py.hls.hashes`).

Real media: ffmpeg writes a few 2-second HLS renditions into a temporary directory once per module
(MPEG-TS, fMP4 with EXT-X-MAP, single-file byte ranges of both, audio only, and a TS stream whose
33-bit PTS wraps inside its first segment). Without ffmpeg the fixture fails, it never skips.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pml_py.hls.hashes import (
    MAX_LIST_ENTRIES,
    IntegrityList,
    IntegrityListBuilder,
    IntegrityListError,
    parse_integrity_list,
    segment_file_name,
    sha256_hex,
)
from p2pml_py.hls.playlist import MediaPlaylist, Segment, parse_media_playlist
from p2pml_py.hls.validate import (
    Container,
    InitInfo,
    Level,
    Reason,
    TrackInfo,
    ValidationPolicy,
    Verdict,
    detect_container,
    validate_init,
    validate_segment,
)
from p2pml_py.testing.media import segment_bytes
from tests.conftest import record_fuzz_example

BASE = "http://127.0.0.1:8080"
PTS_WRAP = 1 << 33
#: Start of the wrap rendition's output timeline: ffmpeg's TS muxer adds 1.4 s, so the first
#: segment's PTS cross 2^33 (95443.7 s at 90 kHz) about one second in.
WRAP_OFFSET = 95441.3

_AV_INPUT = [
    "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=4",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
    "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
    "-c:a", "aac", "-b:a", "32k", "-ac", "1",
]  # fmt: skip
_HLS = ["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
RENDITIONS: dict[str, list[str]] = {
    "ts": [*_AV_INPUT, *_HLS, "-hls_segment_filename", "ts/seg%d.ts", "ts/index.m3u8"],
    "fmp4": [
        *_AV_INPUT, *_HLS, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", "fmp4/seg%d.m4s", "fmp4/index.m3u8",
    ],
    "fmp4-single": [
        *_AV_INPUT, *_HLS, "-hls_segment_type", "fmp4", "-hls_flags", "single_file",
        "fmp4-single/index.m3u8",
    ],
    "ts-single": [*_AV_INPUT, *_HLS, "-hls_flags", "single_file", "ts-single/index.m3u8"],
    "wrap": [
        *_AV_INPUT, "-output_ts_offset", str(WRAP_OFFSET), *_HLS,
        "-hls_segment_filename", "wrap/seg%d.ts", "wrap/index.m3u8",
    ],
    "video": [
        "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=4",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", *_HLS,
        "-hls_segment_filename", "video/seg%d.ts", "video/index.m3u8",
    ],
    "audio": [
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
        "-c:a", "aac", "-b:a", "32k", "-ac", "1", *_HLS,
        "-hls_segment_filename", "audio/seg%d.ts", "audio/index.m3u8",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class Rendition:
    root: Path
    playlist: MediaPlaylist

    def body(self, segment: Segment) -> bytes:
        return _read(self.root, segment.url, segment.byte_range)

    def init_body(self, segment: Segment) -> bytes:
        assert segment.init_segment is not None
        return _read(self.root, segment.init_segment.url, segment.init_segment.byte_range)

    def init(self) -> InitInfo:
        verdict = validate_init(self.init_body(self.playlist.segments[0]))
        assert verdict.ok, verdict
        assert verdict.init is not None
        return verdict.init


def _read(root: Path, url: str, byte_range: tuple[int, int] | None) -> bytes:
    data = (root / segment_file_name(url)).read_bytes()
    return data if byte_range is None else data[byte_range[0] : byte_range[1] + 1]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendition]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail(
            "ffmpeg is needed to generate real HLS media for these tests (interop/setup.sh)"
        )
    work = tmp_path_factory.mktemp("media")
    result: dict[str, Rendition] = {}
    for name, args in RENDITIONS.items():
        (work / name).mkdir()
        run = subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if run.returncode != 0:
            pytest.fail(f"ffmpeg failed for {name} ({run.returncode}): {run.stderr[-2000:]}")
        text = (work / name / "index.m3u8").read_text()
        playlist = parse_media_playlist(text, f"{BASE}/{name}/index.m3u8")
        assert len(playlist.segments) >= 2, text
        result[name] = Rendition(work / name, playlist)
    return result


def first(r: Rendition) -> tuple[Segment, bytes]:
    segment = r.playlist.segments[0]
    return segment, r.body(segment)


def ts_packets_with_pes(data: bytes) -> list[tuple[int, int, int, int | None]]:
    """``(packet index, pid, PES_packet_length, PTS)`` of every packet that starts a PES.

    Written independently of the validator: ISO/IEC 13818-1 2.4.3.2 and 2.4.3.7, nothing else.
    """
    found = []
    for index in range(len(data) // 188):
        p = data[index * 188 : (index + 1) * 188]
        if not p[1] & 0x40:
            continue
        pid = ((p[1] & 0x1F) << 8) | p[2]
        start = 4 + (1 + p[4] if p[3] & 0x20 else 0)
        pes = p[start:]
        if pes[:3] != b"\x00\x00\x01":
            continue
        pts = None
        if pes[7] & 0x80:
            b = pes[9:14]
            pts = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
        found.append((index, pid, (pes[4] << 8) | pes[5], pts))
    return found


# ---------------------------------------------------------------------------------------------
# real media passes


@pytest.mark.parametrize("name", ["ts", "wrap", "video", "audio", "ts-single"])
def test_real_ts_segments_pass_and_are_timed(media: dict[str, Rendition], name: str) -> None:
    r = media[name]
    for segment in r.playlist.segments:
        verdict = validate_segment(segment, r.body(segment))
        assert verdict.ok, verdict
        assert verdict.container is Container.TS
        assert verdict.duration is not None
        if segment.duration > 0.5:  # the audio rendition ends with a 23 ms segment of one PES
            assert verdict.duration == pytest.approx(segment.duration, abs=0.1), segment


def test_video_only_ts_is_timed_to_the_frame(media: dict[str, Rendition]) -> None:
    # 25 fps, 2 s GOPs: 50 frames, first PTS to last PTS is 49 frames, plus the last one's 40 ms.
    for segment in media["video"].playlist.segments:
        verdict = validate_segment(segment, media["video"].body(segment))
        assert verdict.duration == pytest.approx(2.0, abs=0.005), verdict


@pytest.mark.parametrize("name", ["fmp4", "fmp4-single"])
def test_real_fmp4_segments_pass_and_are_timed(media: dict[str, Rendition], name: str) -> None:
    r = media[name]
    init = r.init()
    for segment in r.playlist.segments:
        verdict = validate_segment(segment, r.body(segment), init=init)
        assert verdict.ok, verdict
        assert verdict.container is Container.FMP4
        assert verdict.duration == pytest.approx(segment.duration, abs=0.1)


def test_fmp4_init_segment_tracks(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    init_segment = r.playlist.segments[0].init_segment
    assert init_segment is not None
    verdict = validate_init(r.init_body(r.playlist.segments[0]), init_segment)
    assert verdict.ok and verdict.container is Container.FMP4
    assert verdict.init is not None
    handlers = {t.handler: t for t in verdict.init.tracks}
    assert set(handlers) == {"vide", "soun"}
    assert handlers["soun"].timescale == 44100
    assert handlers["vide"].timescale > 0
    assert verdict.init.track(handlers["vide"].track_id) is handlers["vide"]
    assert verdict.init.track(12345) is None


# ---------------------------------------------------------------------------------------------
# truncated bodies


def test_truncated_ts_fails(media: dict[str, Rendition]) -> None:
    segment, data = first(media["ts"])
    half = data[: len(data) // 2 // 188 * 188]  # whole packets: only the timing can tell
    verdict = validate_segment(segment, half)
    assert verdict.reason in {Reason.DURATION, Reason.TS_PES}, verdict
    assert not verdict.ok
    cut = validate_segment(segment, data[: len(data) // 2 + 7])
    assert cut.reason is Reason.TS_LENGTH, cut
    assert "packets" in cut.detail


def test_ts_cut_inside_a_bounded_pes_fails(media: dict[str, Rendition]) -> None:
    segment, data = first(media["ts"])
    bounded = [(i, pid, n) for i, pid, n, _ in ts_packets_with_pes(data) if n > 184]
    assert bounded, "the audio PES of ffmpeg's TS muxer declare their length"
    index, pid, _ = bounded[-1]
    verdict = validate_segment(segment, data[: (index + 1) * 188])
    assert verdict.reason is Reason.TS_PES, verdict
    assert f"PID {pid}" in verdict.detail


def test_truncated_fmp4_fails(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    segment, data = first(r)
    verdict = validate_segment(segment, data[: len(data) // 2], init=r.init())
    assert verdict.reason is Reason.MP4_BOXES, verdict
    assert "mdat" in verdict.detail
    # Cut exactly at a box boundary: the sizes add up, but the media data is gone.
    boxes = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        boxes.append((data[pos + 4 : pos + 8], pos))
        pos += size
    assert boxes[-1][0] == b"mdat"
    no_mdat = validate_segment(segment, data[: boxes[-1][1]], init=r.init())
    assert no_mdat.reason is Reason.MP4_LAYOUT, no_mdat


def test_truncated_byte_range_fails(media: dict[str, Rendition]) -> None:
    for name in ("fmp4-single", "ts-single"):
        r = media[name]
        init = r.init() if name == "fmp4-single" else None
        segment, data = first(r)
        assert segment.byte_range is not None
        for body in (data[:-1], data + b"\x00", data[: len(data) // 2]):
            verdict = validate_segment(segment, body, init=init)
            assert verdict.reason is Reason.LENGTH, (name, verdict)
        assert validate_segment(segment, data, init=init).ok


def test_truncated_init_fails(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    init = r.init_body(r.playlist.segments[0])
    assert validate_init(init[: len(init) - 10]).reason is Reason.MP4_BOXES
    single = media["fmp4-single"]
    init_segment = single.playlist.segments[0].init_segment
    assert init_segment is not None and init_segment.byte_range is not None
    body = single.init_body(single.playlist.segments[0])
    assert validate_init(body, init_segment).ok
    assert validate_init(body[:-1], init_segment).reason is Reason.LENGTH


# ---------------------------------------------------------------------------------------------
# EXTINF


@pytest.mark.parametrize("name", ["ts", "fmp4"])
def test_wrong_extinf_fails(media: dict[str, Rendition], name: str) -> None:
    r = media[name]
    init = r.init() if name == "fmp4" else None
    segment, data = first(r)
    for extinf in (4.0, 1.0, 6.0):
        verdict = validate_segment(replace(segment, duration=extinf), data, init=init)
        assert verdict.reason is Reason.DURATION, (extinf, verdict)
        assert f"EXTINF says {extinf:.3f}" in verdict.detail
    # Within the default tolerance (0.5 s + 10 %): an integer EXTINF rounded from 2.4 s.
    assert validate_segment(replace(segment, duration=2.4), data, init=init).ok
    # EXTINF 0 (missing) is not checked.
    assert validate_segment(replace(segment, duration=0.0), data, init=init).ok


def test_tolerance_is_configurable(media: dict[str, Rendition]) -> None:
    segment, data = first(media["ts"])
    shifted = replace(segment, duration=2.3)
    assert validate_segment(shifted, data).ok
    strict = ValidationPolicy(tolerance_seconds=0.1, tolerance_ratio=0.0)
    verdict = validate_segment(shifted, data, policy=strict)
    assert verdict.reason is Reason.DURATION and "+-0.100 s" in verdict.detail
    assert ValidationPolicy().allowed_deviation(10.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="tolerance_seconds"):
        ValidationPolicy(tolerance_seconds=-1.0)
    with pytest.raises(ValueError, match="tolerance_ratio"):
        ValidationPolicy(tolerance_ratio=1.5)
    with pytest.raises(ValueError, match="level"):
        ValidationPolicy(level="container")  # type: ignore[arg-type]


def test_pts_wrap_inside_a_segment(media: dict[str, Rendition]) -> None:
    segment, data = first(media["wrap"])
    pts = [p for *_, p in ts_packets_with_pes(data) if p is not None]
    # The test data really crosses the wrap: PTS near 2^33 and PTS near 0 in one segment.
    assert max(pts) > PTS_WRAP - 90_000 * 3 and min(pts) < 90_000 * 3, (min(pts), max(pts))
    verdict = validate_segment(segment, data)
    assert verdict.ok, verdict
    assert verdict.duration == pytest.approx(2.0, abs=0.1)


# ---------------------------------------------------------------------------------------------
# corrupted structure


def test_ts_sync_byte_and_adaptation_field(media: dict[str, Rendition]) -> None:
    segment, data = first(media["ts"])
    broken = bytearray(data)
    broken[188 * 7] = 0x48
    verdict = validate_segment(segment, bytes(broken))
    assert verdict.reason is Reason.TS_SYNC and "packet 7" in verdict.detail
    broken = bytearray(data)
    broken[188 * 3 + 3] |= 0x30  # adaptation field + payload
    broken[188 * 3 + 4] = 190  # longer than the packet
    assert validate_segment(segment, bytes(broken)).reason is Reason.TS_PACKET


def test_ts_without_timestamps(media: dict[str, Rendition]) -> None:
    segment, data = first(media["ts"])
    psi_only = b"".join(
        data[i * 188 : (i + 1) * 188]
        for i in range(len(data) // 188)
        if ((data[i * 188 + 1] & 0x1F) << 8 | data[i * 188 + 2]) in (0, 0x1000)  # PAT, PMT
    )
    assert psi_only
    assert validate_segment(segment, psi_only).reason is Reason.NO_TIMESTAMPS


def test_fmp4_needs_its_init_segment(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    segment, data = first(r)
    assert validate_segment(segment, data).reason is Reason.INIT_MISSING
    other = InitInfo((TrackInfo(track_id=99, timescale=1000, handler="vide"),))
    verdict = validate_segment(segment, data, init=other)
    assert verdict.reason is Reason.INIT_MISMATCH and "track" in verdict.detail
    # A timescale twice the real one halves the measured duration.
    doubled = InitInfo(tuple(replace(t, timescale=t.timescale * 2) for t in r.init().tracks))
    assert validate_segment(segment, data, init=doubled).reason is Reason.DURATION


def test_fmp4_sample_table_past_its_box(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    segment, data = first(r)
    at = data.index(b"trun") + 4 + 4  # type, then version/flags: sample_count follows
    broken = data[:at] + (10**6).to_bytes(4, "big") + data[at + 4 :]
    verdict = validate_segment(segment, broken, init=r.init())
    assert verdict.reason is Reason.MP4_SAMPLES, verdict
    assert "trun of 1000000 samples" in verdict.detail


def test_fmp4_samples_larger_than_mdat(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    segment, data = first(r)
    at = data.index(b"trun") + 4
    flags = int.from_bytes(data[at + 1 : at + 4], "big")
    assert flags & 0x200, "ffmpeg writes per-sample sizes"
    first_sample = at + 8 + 4 * bool(flags & 0x1) + 4 * bool(flags & 0x4)
    size_at = first_sample + 4 * bool(flags & 0x100)
    size = int.from_bytes(data[size_at : size_at + 4], "big")
    broken = data[:size_at] + (size + 10**6).to_bytes(4, "big") + data[size_at + 4 :]
    verdict = validate_segment(segment, broken, init=r.init())
    assert verdict.reason is Reason.MP4_SAMPLES and "mdat holds" in verdict.detail, verdict


def test_init_segment_layout(media: dict[str, Rendition]) -> None:
    r = media["fmp4"]
    _, media_segment = first(r)
    assert validate_init(media_segment).reason is Reason.MP4_LAYOUT  # moof is no init
    free = (16).to_bytes(4, "big") + b"free" + bytes(8)
    assert validate_init(free).reason is Reason.MP4_LAYOUT  # neither ftyp nor moov
    _, ts_data = first(media["ts"])
    pat = ts_data[:188]
    ts_init = validate_init(pat)
    assert ts_init.ok and ts_init.container is Container.TS and ts_init.init is None
    assert validate_init(pat[:100]).reason is Reason.TS_LENGTH


# ---------------------------------------------------------------------------------------------
# levels and other containers


def test_synthetic_segments_pass_only_the_length_level() -> None:
    data = segment_bytes("v0", 3, 10_000)
    segment = parse_media_playlist(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg3.ts\n#EXT-X-ENDLIST\n",
        f"{BASE}/v0/index.m3u8",
    ).segments[0]
    verdict = validate_segment(segment, data)
    assert verdict.reason is Reason.TS_LENGTH and verdict.container is Container.TS
    aligned = segment_bytes("v0", 3, 188 * 50)
    assert validate_segment(segment, aligned).reason is Reason.TS_SYNC
    length_only = ValidationPolicy(level=Level.LENGTH)
    assert validate_segment(segment, data, policy=length_only) == Verdict(None)
    assert validate_segment(segment, b"", policy=length_only).reason is Reason.EMPTY


def test_unknown_container_gets_length_checks_only() -> None:
    playlist = parse_media_playlist(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n#EXT-X-BYTERANGE:20@0\nsubs.vtt\n",
        f"{BASE}/subs/index.m3u8",
    )
    segment = playlist.segments[0]
    body = b"WEBVTT\n\n00:00.000 -->"[:20]
    verdict = validate_segment(segment, body)
    assert verdict.ok and verdict.container is Container.UNKNOWN and verdict.duration is None
    assert validate_segment(segment, body[:-1]).reason is Reason.LENGTH
    assert validate_segment(segment, b"").reason is Reason.EMPTY


def test_detect_container() -> None:
    assert detect_container(b"\x47\x40\x00") is Container.TS
    assert detect_container(b"\x00\x00\x00\x18styp") is Container.FMP4
    assert detect_container(b"garbage", fmp4_expected=True) is Container.FMP4
    assert detect_container(b"garbage", url=f"{BASE}/a/seg1.TS?x=1") is Container.TS
    assert detect_container(b"ID3\x04", url=f"{BASE}/a/seg1.aac") is Container.UNKNOWN


# ---------------------------------------------------------------------------------------------
# integrity lists (PeerTube segments-sha256.json)


def test_vod_list_round_trip(media: dict[str, Rendition]) -> None:
    r = media["fmp4-single"]
    builder = IntegrityListBuilder()
    for segment in r.playlist.segments:
        builder.add(segment.url, segment.byte_range, r.body(segment))
    text = builder.build().to_json()
    document = json.loads(text)
    # PeerTube's VOD shape: {"<file>": {"<start>-<endInclusive>": "<sha256 hex>"}}
    assert list(document) == ["index.m4s"]
    for segment in r.playlist.segments:
        assert segment.byte_range is not None
        key = f"{segment.byte_range[0]}-{segment.byte_range[1]}"
        assert document["index.m4s"][key] == hashlib.sha256(r.body(segment)).hexdigest()
    parsed = parse_integrity_list(text)
    assert len(parsed) == len(r.playlist.segments)
    assert parsed.to_json() == text
    for segment in r.playlist.segments:
        data = r.body(segment)
        assert parsed.expected_digest(segment.url, segment.byte_range) == sha256_hex(data)
        assert parsed.check(segment.url, segment.byte_range, data).ok
        bad = parsed.check(segment.url, segment.byte_range, data[:-1] + b"\x00")
        assert bad.reason is Reason.DIGEST and "index.m4s bytes" in bad.detail
    segment = r.playlist.segments[0]
    assert parsed.expected_digest(segment.url, None) is None  # ranged file, no range
    unlisted = parsed.check(segment.url, (0, 9), b"x")
    assert unlisted.reason is Reason.UNLISTED


def test_live_list_lookup() -> None:
    a, b = b"segment a", b"segment b"
    text = json.dumps({"720-000041.ts": sha256_hex(a), "720-000042.ts": sha256_hex(b)})
    parsed = parse_integrity_list(text.encode())
    url = f"{BASE}/live/720-000041.ts?token=secret&x=1"
    assert parsed.expected_digest(url) == sha256_hex(a)
    assert parsed.expected_digest(url, (0, 99)) == sha256_hex(a)  # a whole-file digest
    assert parsed.check(url, None, a).ok
    assert parsed.check(url, None, b).reason is Reason.DIGEST
    assert parsed.check(f"{BASE}/live/720-000043.ts", None, a).reason is Reason.UNLISTED
    assert sorted(parsed.entries()) == sorted(
        [("720-000041.ts", None, sha256_hex(a)), ("720-000042.ts", None, sha256_hex(b))]
    )
    builder = IntegrityListBuilder()
    builder.add(f"{BASE}/live/720-000041.ts", None, a)
    builder.add(f"{BASE}/live/720-000042.ts", None, b)
    assert json.loads(builder.build().to_json()) == json.loads(text)


def test_peertube_vod_document_parses() -> None:
    digest = "a" * 64
    document = {
        "f1d5-720-fragmented.mp4": {"1234-5677": digest, "5678-9999": "b" * 64},
        "f1d5-0-fragmented.mp4": {},
    }
    parsed = parse_integrity_list(json.dumps(document))
    url = f"{BASE}/static/streaming-playlists/hls/uuid/f1d5-720-fragmented.mp4"
    assert parsed.expected_digest(url, (1234, 5677)) == digest
    assert parsed.expected_digest(url, (1234, 5678)) is None
    assert parsed.expected_digest(f"{BASE}/x/other.mp4", (1234, 5677)) is None
    assert len(parsed) == 2


_D = "0" * 64


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "JSON object"),
        ('"x"', "JSON object"),
        ("{", "not JSON"),
        ('{"a.ts": 5}', "value must be"),
        ('{"a.ts": null}', "value must be"),
        ('{"a.ts": ["x"]}', "value must be"),
        ('{"a.mp4": {"0-9": 7}}', "digest must be a string"),
        ('{"a.ts": "' + "A" * 64 + '"}', "lowercase hex"),
        ('{"a.ts": "' + "0" * 63 + '"}', "lowercase hex"),
        ('{"a.mp4": {"0-": "' + _D + '"}}', "not <start>-<end>"),
        ('{"a.mp4": {"01-9": "' + _D + '"}}', "not <start>-<end>"),
        ('{"a.mp4": {"9-3": "' + _D + '"}}', "invalid byte range"),
        ('{"a.mp4": {"0-99999999999999999": "' + _D + '"}}', "not <start>-<end>"),
        ('{"": "' + _D + '"}', "invalid file name"),
        ('{"../a.ts": "' + _D + '"}', "invalid file name"),
        ('{"a.ts": "' + _D + '", "a.ts": "' + _D + '"}', "repeats the key"),
        ('{"a.ts": NaN}', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_hostile_lists_are_rejected(document: str, message: str) -> None:
    with pytest.raises(IntegrityListError, match=message):
        parse_integrity_list(document)


def test_list_limits() -> None:
    big = json.dumps({f"seg{i}.ts": _D for i in range(1000)})
    assert len(parse_integrity_list(big)) == 1000
    with pytest.raises(IntegrityListError, match="bytes, limit"):
        parse_integrity_list(big, max_bytes=len(big) - 1)
    with pytest.raises(IntegrityListError, match="more than 999 entries"):
        parse_integrity_list(big, max_entries=999)
    # Keys are counted while decoding, file names and byte ranges together: 1 + 500 > 500.
    nested = json.dumps({"a.mp4": {f"{i}-{i}": _D for i in range(500)}})
    with pytest.raises(IntegrityListError, match="list has more than 500 entries"):
        parse_integrity_list(nested, max_entries=500)
    assert len(parse_integrity_list(nested, max_entries=501)) == 500
    with pytest.raises(IntegrityListError, match="not UTF-8"):
        parse_integrity_list(b'{"\xff": "x"}')
    assert MAX_LIST_ENTRIES >= 194_400  # a 24-hour PeerTube VOD at 4 s, 9 resolutions


def test_builder_refuses_contradictions() -> None:
    builder = IntegrityListBuilder()
    builder.add(f"{BASE}/v0/seg0.ts", None, b"a")
    builder.add(f"{BASE}/v0/seg0.ts", None, b"a")  # the same again is fine
    with pytest.raises(IntegrityListError, match="two different digests"):
        builder.add(f"{BASE}/v1/seg0.ts", None, b"b")  # same file name, other playlist
    with pytest.raises(IntegrityListError, match="both whole and by byte range"):
        builder.add(f"{BASE}/v0/seg0.ts", (0, 0), b"a")
    builder.add(f"{BASE}/v0/all.mp4", (0, 9), b"0123456789")
    with pytest.raises(IntegrityListError, match="both whole and by byte range"):
        builder.add(f"{BASE}/v0/all.mp4", None, b"x")
    with pytest.raises(IntegrityListError, match="invalid byte range"):
        builder.add(f"{BASE}/v0/all.mp4", (9, 0), b"x")
    built = builder.build()
    assert isinstance(built, IntegrityList) and len(built) == 2
    limited = IntegrityListBuilder(max_entries=1)
    limited.add(f"{BASE}/a.ts", None, b"a")
    with pytest.raises(IntegrityListError, match="more than 1 entries"):
        limited.add(f"{BASE}/b.ts", None, b"b")


# ---------------------------------------------------------------------------------------------
# property-based: no input makes a check raise

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
edits = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=12)
cuts = st.one_of(st.none(), st.integers(0, 2**31))


def _mutate(data: bytes, header: int, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    """Overwrite bytes (half of them in the first ``header`` bytes, where the structure is),
    then optionally cut the body."""
    body = bytearray(data)
    for n, (position, value) in enumerate(changes):
        body[position % (header if n % 2 else len(body))] = value
    return bytes(body if cut is None else body[: cut % (len(body) + 1)])


@FUZZ
@given(changes=edits, cut=cuts)
def test_mutated_ts_never_raises(
    media: dict[str, Rendition], changes: list[tuple[int, int]], cut: int | None
) -> None:
    record_fuzz_example()
    for name in ("ts", "wrap"):
        segment, data = first(media[name])
        verdict = validate_segment(segment, _mutate(data, 188 * 4, changes, cut))
        assert isinstance(verdict, Verdict)
        assert verdict.ok or (verdict.reason is not None and verdict.detail)


@FUZZ
@given(changes=edits, cut=cuts)
def test_mutated_fmp4_never_raises(
    media: dict[str, Rendition], changes: list[tuple[int, int]], cut: int | None
) -> None:
    record_fuzz_example()
    r = media["fmp4"]
    segment, data = first(r)
    init_body = r.init_body(segment)
    init_verdict = validate_init(_mutate(init_body, len(init_body), changes, cut))
    assert init_verdict.ok == (init_verdict.reason is None)
    for init in (r.init(), init_verdict.init, None):
        verdict = validate_segment(segment, _mutate(data, 2048, changes, cut), init=init)
        assert verdict.ok or (verdict.reason is not None and verdict.detail)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
list_like = st.dictionaries(
    st.text(max_size=12),
    st.one_of(
        st.sampled_from([_D, "f" * 64]),
        st.dictionaries(st.from_regex(r"[0-9]{1,3}-[0-9]{1,3}", fullmatch=True), st.just(_D)),
        json_values,
    ),
)


@settings(max_examples=300, deadline=None)
@given(document=st.one_of(json_values, list_like), raw=st.binary(max_size=64))
def test_any_list_document_parses_or_is_rejected(document: object, raw: bytes) -> None:
    record_fuzz_example()
    for body in (json.dumps(document).encode(), raw):
        try:
            parsed = parse_integrity_list(body)
        except IntegrityListError:
            continue
        assert parse_integrity_list(parsed.to_json()) == parsed
