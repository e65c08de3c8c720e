"""Does a segment body hold what the playlist promises? A sans-I/O check of origin responses.

Why: browsers hash nothing by default, and hls.js accepts a short segment without complaint --
``utils/level-helper.ts updateFragPTSDTS`` re-times fragments from their media timestamps (a
parsed duration that differs from ``EXTINF`` is adopted, not rejected) and
``remux/mp4-remuxer.ts`` closes the hole to the next fragment by shifting its first sample or
injecting silent audio frames. An origin that answers 200 with half a body and a matching
``Content-Length`` therefore plays as a silent skip, and a seeder that stored it would hand the
same skip to every viewer for as long as it runs. So a body is checked before it is stored or
uploaded:

* **every container** -- not empty; an ``EXT-X-BYTERANGE`` segment is exactly its range's length;
* **MPEG-TS** (first byte 0x47) -- a whole number of 188-byte packets, each starting with the sync
  byte 0x47; no adaptation field running past its packet; every PES that declares its length
  (``PES_packet_length`` != 0, audio in practice) complete; the span of its PES timestamps (PTS,
  90 kHz, 33 bits, wrap handled) within :class:`ValidationPolicy`'s tolerance of ``EXTINF``;
* **fMP4** (an ``EXT-X-MAP`` segment, or a body that starts with an ISO BMFF box) -- top-level
  box sizes that add up to exactly the body's length (``moof``/``mdat`` plus ``styp``, ``sidx``,
  ``ssix``, ``prft``, ``emsg``, ``free``, ``skip``, ``uuid``), at least one ``moof`` and one
  ``mdat``, ``trun`` sample tables inside their boxes, sample sizes that fit in the ``mdat``
  payload, and ``trun`` sample durations (falling back to ``tfhd`` then ``trex`` defaults) that
  sum to ``EXTINF`` within tolerance, in the timescale of the track's ``mdhd`` in the init segment
  (:func:`validate_init` parses it into :class:`InitInfo`);
* **init segments** -- fMP4: ``ftyp`` and ``moov`` with box sizes that add up, every track with a
  ``tkhd`` and an ``mdhd`` timescale > 0; MPEG-TS (``EXT-X-MAP`` of a TS stream): packets only;
* **anything else** (packed audio, WebVTT, an unknown container) -- the length checks only.

The duration tolerance (:class:`ValidationPolicy`): ``|measured - EXTINF| <= 0.5 s + 10 % of
EXTINF`` by default. 0.5 s covers playlists whose ``EXTINF`` is an integer (protocol versions < 3
round it to the nearest integer, RFC 8216 section 4.3.2.1); 10 % covers audio running a frame or
two past the video at a segment boundary and encoders whose cut points drift. hls.js itself
tolerates any difference (see above), so this is our policy, not a browser limit: it rejects the
truncations that matter (half of a 2 s segment; anything that loses more than 0.5 s + 10 %) while
accepting what real packagers write. The measured span follows hls.js: per elementary stream,
first PTS to the end of the last frame (video: last PTS plus the median step between sorted PTS;
audio, whose PES carry runs of frames: the last PES lasts its size at the others' byte rate); the
segment's span is the union of its streams' spans, as ``updateFragPTSDTS`` merges audio and video.
Cost: one pass over the packets, ~1 ms per 100 KB of TS; fMP4 reads only the ``moof`` boxes.

:attr:`Level.LENGTH` skips the container checks; it is what the project's synthetic test origin
(:mod:`p2pml_py.testing.media`: a 0x47 byte followed by random bytes, not real MPEG-TS) can pass.

Everything here is pure: bytes and playlist records in, a :class:`Verdict` out. The verdict's
:attr:`~Verdict.reason` value is short and stable (a metric label); ``detail`` names what failed
and where, for the log line.
"""

from __future__ import annotations

import enum
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from p2pml_py.hls.playlist import InitSegment, Segment

__all__ = [
    "DEFAULT_POLICY",
    "Container",
    "InitInfo",
    "Level",
    "Reason",
    "TrackInfo",
    "ValidationPolicy",
    "Verdict",
    "detect_container",
    "validate_init",
    "validate_segment",
]

TS_PACKET_SIZE = 188
_TS_SYNC = 0x47
_PTS_MODULUS = 1 << 33  # PTS/DTS are 33-bit counters of a 90 kHz clock (ISO/IEC 13818-1 2.4.3.7)
_PTS_HALF = 1 << 32
_TS_CLOCK = 90_000
_NULL_PID = 0x1FFF
#: PES stream ids whose header carries the optional fields (PTS/DTS): ISO/IEC 13818-1 table 2-22
#: lists the ones without it (program_stream_map, padding, private_stream_2, ECM, EMM, DSMCC,
#: H.222.1 type E, program_stream_directory).
_PES_WITHOUT_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})

#: Top-level boxes a media segment may carry besides moof/mdat (ISO/IEC 14496-12 8.16 styp,
#: sidx, ssix; 8.16.5 prft; ISO/IEC 23009-1 5.10.3.3 emsg; free/skip/uuid anywhere).
_MEDIA_BOXES = frozenset({"styp", "sidx", "ssix", "prft", "emsg", "moof", "mdat", "free", "skip"})
_INIT_BOXES = frozenset({"ftyp", "moov", "free", "skip", "pdin", "meta", "styp"})
_ANY_BOXES = frozenset({"uuid"})


class Level(enum.Enum):
    """How deep :func:`validate_segment` looks."""

    #: Not empty; a byte range's exact length. Nothing about the container.
    LENGTH = "length"
    #: :attr:`LENGTH` plus the MPEG-TS / fMP4 structure and timing checks.
    CONTAINER = "container"


class Container(enum.Enum):
    TS = "ts"
    FMP4 = "fmp4"
    UNKNOWN = "unknown"


class Reason(enum.Enum):
    """Why a body was rejected; the value is a short metric label."""

    EMPTY = "empty"
    LENGTH = "length"  # not the byte range's length
    TS_LENGTH = "ts-length"  # not a whole number of 188-byte packets
    TS_SYNC = "ts-sync"  # a packet without the 0x47 sync byte
    TS_PACKET = "ts-packet"  # an adaptation field longer than its packet
    TS_PES = "ts-pes"  # a PES shorter than its declared length
    NO_TIMESTAMPS = "no-timestamps"  # no PTS (TS) / no samples (fMP4) to time the segment by
    DURATION = "duration"  # the media duration does not match EXTINF
    MP4_BOXES = "mp4-boxes"  # box sizes that do not add up
    MP4_LAYOUT = "mp4-layout"  # a box that does not belong, or a required one missing
    MP4_SAMPLES = "mp4-samples"  # a trun/tfhd that contradicts its box or the mdat
    INIT_MISSING = "init-missing"  # an fMP4 segment checked without its init segment
    INIT_MISMATCH = "init-mismatch"  # a track the init segment does not declare
    DIGEST = "digest"  # SHA-256 differs from the integrity list (p2pml_py.hls.hashes)
    UNLISTED = "unlisted"  # the integrity list has no entry for the segment


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What :func:`validate_segment` checks, and how far a measured duration may stray.

    A duration passes when ``|measured - EXTINF| <= tolerance_seconds + tolerance_ratio *
    EXTINF``; ``EXTINF`` 0 (missing) is not checked. See the module docstring for the defaults.
    """

    level: Level = Level.CONTAINER
    tolerance_seconds: float = 0.5
    tolerance_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.level, Level):
            raise ValueError(f"level must be a Level, got {self.level!r}")
        if not 0 <= self.tolerance_seconds < 3600:
            raise ValueError(
                f"tolerance_seconds must be in [0, 3600), got {self.tolerance_seconds}"
            )
        if not 0 <= self.tolerance_ratio <= 1:
            raise ValueError(f"tolerance_ratio must be in [0, 1], got {self.tolerance_ratio}")

    def allowed_deviation(self, extinf: float) -> float:
        return self.tolerance_seconds + self.tolerance_ratio * extinf


DEFAULT_POLICY = ValidationPolicy()


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One track of an fMP4 init segment: what a media segment's ``traf`` needs to be timed."""

    track_id: int
    timescale: int
    handler: str  # hdlr handler_type: "vide", "soun", ...
    default_duration: int | None = None  # trex default_sample_duration
    default_size: int | None = None  # trex default_sample_size


@dataclass(frozen=True, slots=True)
class InitInfo:
    """The tracks of an fMP4 init segment (``moov``), keyed by track id through :meth:`track`."""

    tracks: tuple[TrackInfo, ...]

    def track(self, track_id: int) -> TrackInfo | None:
        for info in self.tracks:
            if info.track_id == track_id:
                return info
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: :attr:`ok`, or a :class:`Reason` with a one-line ``detail``.

    ``duration`` is the measured media duration in seconds when the container was timed;
    ``init`` is the parsed init segment (from :func:`validate_init` only).
    """

    reason: Reason | None
    detail: str = ""
    container: Container = Container.UNKNOWN
    duration: float | None = None
    init: InitInfo | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Reject(Exception):
    """Internal: a check failed (carried up to the public function, never out of this module)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Public entry points


def detect_container(data: bytes, *, url: str = "", fmp4_expected: bool = False) -> Container:
    """The container of ``data``: MPEG-TS if it starts with the sync byte 0x47 (an ISO BMFF box
    starting with 0x47 would be over 1 GiB long); fMP4 if it starts with a known box type, or if
    ``fmp4_expected`` (the playlist has an ``EXT-X-MAP``: RFC 8216 section 3.3 requires one for
    fMP4, so a garbled fMP4 body is still checked as one); MPEG-TS if ``url`` ends in ``.ts``;
    otherwise unknown."""
    if data[:1] == bytes((_TS_SYNC,)):
        return Container.TS
    if fmp4_expected or _starts_with_box(data):
        return Container.FMP4
    if urlsplit(url).path.lower().endswith(".ts"):
        return Container.TS
    return Container.UNKNOWN


def validate_segment(
    segment: Segment,
    data: bytes,
    *,
    init: InitInfo | None = None,
    policy: ValidationPolicy = DEFAULT_POLICY,
) -> Verdict:
    """Check a media segment body against ``segment`` (its ``EXTINF``, byte range, ``EXT-X-MAP``).

    ``init`` is the parsed init segment (:attr:`Verdict.init` of :func:`validate_init`); an fMP4
    segment cannot be timed without it and fails with :attr:`Reason.INIT_MISSING` after its box
    structure was checked.
    """
    container = Container.UNKNOWN
    try:
        _check_length(data, segment.byte_range)
        if policy.level is Level.LENGTH:
            return Verdict(None)
        container = detect_container(
            data, url=segment.url, fmp4_expected=segment.init_segment is not None
        )
        duration: float | None = None
        if container is Container.TS:
            duration = _ts_duration(data)
        elif container is Container.FMP4:
            duration = _fmp4_duration(data, init)
        if duration is not None:
            _check_duration(duration, segment.duration, policy)
        return Verdict(None, container=container, duration=duration)
    except _Reject as exc:
        return Verdict(exc.reason, exc.detail, container=container)


def validate_init(
    data: bytes,
    init_segment: InitSegment | None = None,
    *,
    policy: ValidationPolicy = DEFAULT_POLICY,
) -> Verdict:
    """Check an init segment (``EXT-X-MAP``) body; on success :attr:`Verdict.init` holds its
    tracks (fMP4) for :func:`validate_segment`. ``init_segment`` supplies the byte range."""
    container = Container.UNKNOWN
    try:
        _check_length(data, init_segment.byte_range if init_segment is not None else None)
        if policy.level is Level.LENGTH:
            return Verdict(None)
        url = init_segment.url if init_segment is not None else ""
        container = detect_container(data, url=url)
        if container is Container.TS:
            _ts_scan(data)  # PAT/PMT only: packets and sync bytes, no timing
            return Verdict(None, container=container)
        if container is Container.FMP4:
            return Verdict(None, container=container, init=_parse_init(data))
        return Verdict(None, container=container)
    except _Reject as exc:
        return Verdict(exc.reason, exc.detail, container=container)


# --------------------------------------------------------------------------------------------
# Length and duration


def _check_length(data: bytes, byte_range: tuple[int, int] | None) -> None:
    if not data:
        raise _Reject(Reason.EMPTY, "empty body")
    if byte_range is not None:
        expected = byte_range[1] - byte_range[0] + 1
        if len(data) != expected:
            raise _Reject(
                Reason.LENGTH,
                f"{len(data)} bytes for byte range {byte_range[0]}-{byte_range[1]} "
                f"({expected} bytes)",
            )


def _check_duration(measured: float, extinf: float, policy: ValidationPolicy) -> None:
    if extinf <= 0:
        return
    allowed = policy.allowed_deviation(extinf)
    if abs(measured - extinf) > allowed:
        raise _Reject(
            Reason.DURATION,
            f"media spans {measured:.3f} s, EXTINF says {extinf:.3f} s (allowed +-{allowed:.3f} s)",
        )


# --------------------------------------------------------------------------------------------
# MPEG-TS (ISO/IEC 13818-1)


@dataclass(slots=True)
class _Pes:
    start_packet: int
    stream_id: int
    expected: int | None  # 6 + PES_packet_length, None when unbounded (0)
    collected: int
    pts: int | None


@dataclass(slots=True)
class _Stream:
    """The timed PES of one PID: ``(pts, bytes)`` in stream order."""

    video: bool
    pes: list[tuple[int, int]] = field(default_factory=list)


def _ts_scan(data: bytes) -> dict[int, _Stream]:
    """Check the packet layer and bounded PES lengths; return each PID's timed PES."""
    size = len(data)
    if size % TS_PACKET_SIZE:
        raise _Reject(
            Reason.TS_LENGTH,
            f"{size} bytes is not a whole number of {TS_PACKET_SIZE}-byte packets "
            f"({size // TS_PACKET_SIZE} packets + {size % TS_PACKET_SIZE} bytes)",
        )
    count = size // TS_PACKET_SIZE
    syncs = data[::TS_PACKET_SIZE]
    if syncs.count(_TS_SYNC) != count:
        bad = next(i for i, b in enumerate(syncs) if b != _TS_SYNC)
        raise _Reject(
            Reason.TS_SYNC, f"packet {bad} (offset {bad * TS_PACKET_SIZE}) has no 0x47 sync byte"
        )
    open_pes: dict[int, _Pes] = {}
    streams: dict[int, _Stream] = {}
    for index in range(count):
        offset = index * TS_PACKET_SIZE
        header = data[offset + 1]
        pid = ((header & 0x1F) << 8) | data[offset + 2]
        if pid == _NULL_PID:
            continue
        control = (data[offset + 3] >> 4) & 0x3
        payload = offset + 4
        end = offset + TS_PACKET_SIZE
        if control & 0x2:
            payload += 1 + data[offset + 4]
            if payload > end:
                raise _Reject(
                    Reason.TS_PACKET,
                    f"packet {index} (PID {pid}): adaptation field of {data[offset + 4]} bytes "
                    "runs past the packet",
                )
        if not control & 0x1 or payload == end:
            continue
        if header & 0x40:  # payload_unit_start_indicator
            _close_pes(pid, open_pes.pop(pid, None), streams)
            if data[payload : payload + 3] == b"\x00\x00\x01" and end - payload >= 6:
                length = (data[payload + 4] << 8) | data[payload + 5]
                open_pes[pid] = _Pes(
                    start_packet=index,
                    stream_id=data[payload + 3],
                    expected=6 + length if length else None,
                    collected=end - payload,
                    pts=_pes_pts(data, payload, end),
                )
        elif (pes := open_pes.get(pid)) is not None:
            pes.collected += end - payload
    for pid, pes in open_pes.items():
        _close_pes(pid, pes, streams)
    return streams


def _close_pes(pid: int, pes: _Pes | None, streams: dict[int, _Stream]) -> None:
    if pes is None:
        return
    # hls.js tsdemuxer.ts parsePES drops a PES shorter than its PES_packet_length ("PES might be
    # truncated"): a cut body loses its last audio frames silently. Packagers cut segments at PES
    # boundaries, so a short bounded PES means lost bytes.
    if pes.expected is not None and pes.collected < pes.expected:
        raise _Reject(
            Reason.TS_PES,
            f"PES on PID {pid} from packet {pes.start_packet} has {pes.collected} of its "
            f"{pes.expected} bytes",
        )
    if pes.pts is not None:
        stream = streams.setdefault(pid, _Stream(video=0xE0 <= pes.stream_id <= 0xEF))
        stream.pes.append((pes.pts, pes.collected))


def _pes_pts(data: bytes, start: int, end: int) -> int | None:
    """The PTS of the PES header at ``start`` (ISO/IEC 13818-1 2.4.3.7), if it has one and it
    lies within this packet."""
    if data[start + 3] in _PES_WITHOUT_HEADER or end - start < 14:
        return None
    if data[start + 6] & 0xC0 != 0x80 or not data[start + 7] & 0x80:  # '10' marker, PTS flag
        return None
    b = data[start + 9 : start + 14]
    return ((b[0] >> 1) & 0x7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _ts_duration(data: bytes) -> float:
    """The media duration of a TS segment: the union of its streams' spans (module doc)."""
    streams = _ts_scan(data)
    if not streams:
        raise _Reject(Reason.NO_TIMESTAMPS, "no PES with a PTS")
    reference = next(iter(streams.values())).pes[0][0]
    start: float | None = None
    stop: float | None = None
    for stream in streams.values():
        # Relative to one reference, folded into [-2^32, 2^32): a segment that crosses the 33-bit
        # wrap stays contiguous (hls.js remux/mp4-remuxer.ts normalizePts unwraps the same way
        # against its initPTS).
        pes = [(((t - reference + _PTS_HALF) % _PTS_MODULUS) - _PTS_HALF, n) for t, n in stream.pes]
        first, last = _stream_span(pes, stream.video)
        start = first if start is None else min(start, first)
        stop = last if stop is None else max(stop, last)
    assert start is not None and stop is not None
    return (stop - start) / _TS_CLOCK


def _stream_span(pes: list[tuple[int, int]], video: bool) -> tuple[float, float]:
    """First PTS and the end of the last PES of one stream.

    Video: the last frame lasts the median step between sorted PTS (a PES is a frame; sorting
    undoes B-frame reordering). Audio and the rest: a PES holds a run of frames (ffmpeg packs
    ~0.1-0.7 s of AAC into one), so the last PES lasts its size at the bit rate of the others.
    """
    times = sorted(t for t, _ in pes)
    if len(times) < 2:
        return times[0], times[0]
    if video:
        steps = [b - a for a, b in itertools.pairwise(times) if b > a]
        return times[0], times[-1] + (statistics.median(steps) if steps else 0)
    earlier = sum(n for _, n in pes[:-1])
    rate = (pes[-1][0] - pes[0][0]) / earlier if earlier else 0
    return times[0], max(times[-1], pes[-1][0] + pes[-1][1] * rate)


# --------------------------------------------------------------------------------------------
# ISO BMFF (ISO/IEC 14496-12)


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def _u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 8], "big")


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def _starts_with_box(data: bytes) -> bool:
    if len(data) < 8:
        return False
    known = _MEDIA_BOXES | _INIT_BOXES | _ANY_BOXES
    return _box_type(data[4:8]) in known


def _boxes(data: bytes, start: int, end: int, where: str) -> Iterator[tuple[str, int, int]]:
    """``(type, payload_start, box_end)`` of the boxes that exactly fill ``data[start:end]``."""
    pos = start
    while pos < end:
        if end - pos < 8:
            raise _Reject(Reason.MP4_BOXES, f"{end - pos} stray bytes at offset {pos} in {where}")
        size = _u32(data, pos)
        kind = _box_type(data[pos + 4 : pos + 8])
        header = 8
        if size == 1:  # 64-bit largesize follows the type
            if end - pos < 16:
                raise _Reject(Reason.MP4_BOXES, f"box {kind!r} at offset {pos} cut in its header")
            size = _u64(data, pos + 8)
            header = 16
        elif size == 0:  # extends to the end of its container
            size = end - pos
        if size < header:
            raise _Reject(Reason.MP4_BOXES, f"box {kind!r} at offset {pos} declares {size} bytes")
        if pos + size > end:
            raise _Reject(
                Reason.MP4_BOXES,
                f"box {kind!r} at offset {pos} declares {size} bytes, {end - pos} left in {where}",
            )
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: str, where: str) -> tuple[int, int] | None:
    for child, payload, box_end in _boxes(data, start, end, where):
        if child == kind:
            return payload, box_end
    return None


def _need(data: bytes, start: int, end: int, size: int, what: str) -> None:
    if end - start < size:
        raise _Reject(Reason.MP4_SAMPLES, f"{what} is {end - start} bytes, needs {size}")


def _parse_init(data: bytes) -> InitInfo:
    kinds: list[str] = []
    moov: tuple[int, int] | None = None
    for kind, payload, end in _boxes(data, 0, len(data), "init segment"):
        if kind not in _INIT_BOXES | _ANY_BOXES:
            raise _Reject(Reason.MP4_LAYOUT, f"box {kind!r} does not belong in an init segment")
        kinds.append(kind)
        if kind == "moov":
            moov = (payload, end)
    if "ftyp" not in kinds or moov is None:
        raise _Reject(Reason.MP4_LAYOUT, f"init segment without ftyp and moov (boxes: {kinds})")
    defaults: dict[int, tuple[int, int]] = {}
    traks: list[tuple[int, int]] = []
    for kind, payload, end in _boxes(data, moov[0], moov[1], "moov"):
        if kind == "trak":
            traks.append((payload, end))
        elif kind == "mvex":
            for sub, p, e in _boxes(data, payload, end, "mvex"):
                if sub == "trex":
                    _need(data, p, e, 24, "trex")
                    defaults[_u32(data, p + 4)] = (_u32(data, p + 12), _u32(data, p + 16))
    if not traks:
        raise _Reject(Reason.MP4_LAYOUT, "moov without a trak")
    tracks: list[TrackInfo] = []
    for payload, end in traks:
        tkhd = _child(data, payload, end, "tkhd", "trak")
        mdia = _child(data, payload, end, "mdia", "trak")
        mdhd = _child(data, *mdia, "mdhd", "mdia") if mdia else None
        if tkhd is None or mdhd is None or mdia is None:
            raise _Reject(Reason.MP4_LAYOUT, "trak without tkhd or mdia/mdhd")
        _need(data, *tkhd, 16, "tkhd")
        v1 = data[tkhd[0]] == 1
        _need(data, *tkhd, 24 if v1 else 16, "tkhd")
        track_id = _u32(data, tkhd[0] + (20 if v1 else 12))
        _need(data, *mdhd, 16, "mdhd")
        v1 = data[mdhd[0]] == 1
        _need(data, *mdhd, 24 if v1 else 16, "mdhd")
        timescale = _u32(data, mdhd[0] + (20 if v1 else 12))
        if timescale == 0:
            raise _Reject(Reason.MP4_LAYOUT, f"track {track_id}: mdhd timescale 0")
        hdlr = _child(data, *mdia, "hdlr", "mdia")
        handler = ""
        if hdlr is not None and hdlr[1] - hdlr[0] >= 12:
            handler = _box_type(data[hdlr[0] + 8 : hdlr[0] + 12])
        duration, size = defaults.get(track_id, (0, 0))
        tracks.append(TrackInfo(track_id, timescale, handler, duration or None, size or None))
    return InitInfo(tuple(tracks))


@dataclass(slots=True)
class _Fragment:
    ticks: dict[int, int] = field(default_factory=dict)  # track id -> summed sample durations
    sample_bytes: int = 0
    sizes_known: bool = True


def _fmp4_duration(data: bytes, init: InitInfo | None) -> float | None:
    counts: dict[str, int] = {}
    moofs: list[tuple[int, int]] = []
    mdat_bytes = 0
    for kind, payload, end in _boxes(data, 0, len(data), "segment"):
        if kind not in _MEDIA_BOXES | _ANY_BOXES:
            raise _Reject(Reason.MP4_LAYOUT, f"box {kind!r} does not belong in a media segment")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "moof":
            moofs.append((payload, end))
        elif kind == "mdat":
            mdat_bytes += end - payload
    if not moofs or "mdat" not in counts:
        raise _Reject(Reason.MP4_LAYOUT, f"media segment without moof and mdat (boxes: {counts})")
    # Box sizes are consistent: check the nesting of every moof before asking for the init.
    fragment = _Fragment()
    for payload, end in moofs:
        for kind, p, e in _boxes(data, payload, end, "moof"):
            if kind == "traf":
                _read_traf(data, p, e, init, fragment)
    if fragment.sizes_known and fragment.sample_bytes > mdat_bytes:
        raise _Reject(
            Reason.MP4_SAMPLES,
            f"samples of {fragment.sample_bytes} bytes, mdat holds {mdat_bytes}",
        )
    if init is None:
        raise _Reject(Reason.INIT_MISSING, "fMP4 segment checked without its init segment")
    if not fragment.ticks:
        raise _Reject(Reason.NO_TIMESTAMPS, "no traf with samples")
    seconds = 0.0
    for track_id, ticks in fragment.ticks.items():
        info = init.track(track_id)
        assert info is not None  # _read_traf rejected unknown tracks
        seconds = max(seconds, ticks / info.timescale)
    return seconds


def _read_traf(
    data: bytes, start: int, end: int, init: InitInfo | None, fragment: _Fragment
) -> None:
    tfhd = _child(data, start, end, "tfhd", "traf")
    if tfhd is None:
        raise _Reject(Reason.MP4_LAYOUT, "traf without tfhd")
    p, e = tfhd
    _need(data, p, e, 8, "tfhd")
    flags = _u32(data, p) & 0xFFFFFF
    track_id = _u32(data, p + 4)
    offset = p + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    default_duration: int | None = None
    default_size: int | None = None
    if flags & 0x08:
        _need(data, p, e, offset + 4 - p, "tfhd")
        default_duration = _u32(data, offset)
        offset += 4
    if flags & 0x10:
        _need(data, p, e, offset + 4 - p, "tfhd")
        default_size = _u32(data, offset)
    info = init.track(track_id) if init is not None else None
    if init is not None and info is None:
        raise _Reject(Reason.INIT_MISMATCH, f"traf for track {track_id}, not in the init segment")
    if info is not None:
        default_duration = (
            default_duration if default_duration is not None else info.default_duration
        )
        default_size = default_size if default_size is not None else info.default_size
    if flags & 0x010000:  # duration-is-empty
        default_duration = 0
    ticks = 0
    for kind, tp, te in _boxes(data, start, end, "traf"):
        if kind != "trun":
            continue
        _need(data, tp, te, 8, "trun")
        tflags = _u32(data, tp) & 0xFFFFFF
        count = _u32(data, tp + 4)
        at = tp + 8 + (4 if tflags & 0x001 else 0) + (4 if tflags & 0x004 else 0)
        fields = [bool(tflags & bit) for bit in (0x100, 0x200, 0x400, 0x800)]
        stride = 4 * sum(fields)
        _need(data, tp, te, at - tp + count * stride, f"trun of {count} samples")
        if fields[0]:
            ticks += sum(_u32(data, at + i * stride) for i in range(count))
        elif default_duration is not None:
            ticks += count * default_duration
        elif count and init is not None:  # without the init, trex defaults are unknown
            raise _Reject(
                Reason.MP4_SAMPLES, f"track {track_id}: trun without durations and no default"
            )
        if fields[1]:
            size_at = at + 4 * fields[0]
            fragment.sample_bytes += sum(_u32(data, size_at + i * stride) for i in range(count))
        elif default_size is not None:
            fragment.sample_bytes += count * default_size
        elif count:
            fragment.sizes_known = False
    if ticks:
        fragment.ticks[track_id] = fragment.ticks.get(track_id, 0) + ticks
