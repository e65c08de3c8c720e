"""hls.js's own level list: which variants a page's player keeps, and the numbers it gives them.

p2p-media-loader registers a stream for every variant hls.js *parses*, in playlist order
(:mod:`p2pml_py.hls.playlist`). The player then builds ``hls.levels`` -- the numbers a page uses
in ``hls.currentLevel`` / ``startLevel`` and ``LEVEL_SWITCHED`` events -- from the same variants
in ``level-controller.ts onManifestLoaded`` and ``filterAndSortMediaOptions`` (hls.js 1.6):

* a level with codecs hls.js does not know is dropped (the browser's own verdict on codecs hls.js
  knows is not modelled: every one counts as supported);
* a level repeating another's bitrate, RESOLUTION, FRAME-RATE, CODECS, VIDEO-RANGE, HDCP-LEVEL
  and PATHWAY-ID is merged into it when its URL is the same or it names a PATHWAY-ID, else it
  becomes a redundant copy on pathway ``..``, ``...``;
* with video (a video codec or a RESOLUTION on some level) and audio codecs signalled, levels
  without video and levels with an unknown VIDEO-RANGE are dropped;
* the rest is sorted by HDCP-LEVEL, **height** (when any level has a RESOLUTION), frame rate,
  video range, video codec preference, codec set (same URL only), and average bitrate --
  V8's stable sort with a comparator where NaN means "equal";
* the content steering controller keeps only the initial pathway (``EXT-X-CONTENT-STEERING``
  PATHWAY-ID, else ``.``; the first sorted level's when no level is on it).

So level 0 is the lowest *resolution* -- the lowest bitrate for usual ladders -- and need not be
the first variant listed. Checked against hls.js 1.6.19's real level controller
(``tests/hls/test_select.py``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["SAMPLE_ENTRY_PREFERENCE", "LevelFacts", "hlsjs_level_numbers"]

#: hls.js ``src/utils/codecs.ts sampleEntryCodesISO``: the codec types hls.js knows (matched on
#: the codec's first 4 chars, case-sensitive), with its selection preference (lower wins).
SAMPLE_ENTRY_PREFERENCE: dict[str, dict[str, float]] = {
    "video": {
        **dict.fromkeys(
            "avc1 avc2 avc3 avc4 avcp drac dva1 dvav encv mjp2 mp4v mvc1 mvc2 mvc3 mvc4 resv rv60 "
            "s263 svc1 svc2 vc-1 vp08".split(),
            1.0,
        ),
        **{"av01": 0.8, "dav1": 0.8, "dvh1": 0.7, "dvhe": 0.7, "hev1": 0.75, "hvc1": 0.75},
        "vp09": 0.9,
    },
    "audio": {
        **dict.fromkeys(
            "a3ds ac-4 alaw dra1 dts+ dts- dtsc dtse dtsh enca g719 g726 m4ae mha1 mha2 mhm1 mhm2 "
            "mlpa mp4a Opus opus samr sawb sawp sevc sqcp ssmv twos ulaw".split(),
            1.0,
        ),
        "raw ": 1.0,
        **{"ac-3": 0.95, "alac": 0.9, "ec-3": 0.9, "fLaC": 0.9, "flac": 0.9, "FLAC": 0.9},
    },
    "text": {"stpp": 1.0, "wvtt": 1.0},
}
_VIDEO_RANGES = ("SDR", "PQ", "HLG")  # types/level.ts VideoRangeValues
_REDUNDANT_KEY_ATTRS = ("RESOLUTION", "FRAME-RATE", "CODECS", "VIDEO-RANGE", "HDCP-LEVEL")
_JS_FLOAT_RE = re.compile(r"^\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


@dataclass(frozen=True, slots=True)
class LevelFacts:
    """What hls.js's parser hands over for one variant (``LevelParsed``).

    ``bitrate`` / ``average_bandwidth`` are JS numbers (NaN where hls.js gets NaN);
    ``video_codec`` is after hls.js's ``convertAVC1ToAVCOTI`` (only its first 4 chars matter).
    """

    url: str
    attrs: Mapping[str, str]
    bitrate: float
    average_bandwidth: float
    width: int
    height: int
    video_codec: str | None
    audio_codec: str | None
    unknown_codecs: bool


@dataclass(frozen=True, slots=True)
class _Level:
    """An hls.js ``Level`` (``types/level.ts``): the fields its level controller sorts on."""

    facts: LevelFacts
    pathway: str
    frame_rate: float
    codec_set: str

    @property
    def video_range(self) -> str:
        return self.facts.attrs.get("VIDEO-RANGE") or "SDR"

    @property
    def average_bitrate(self) -> float:
        # _avgBitrate || realBitrate (0 before playback) || bitrate
        average = self.facts.average_bandwidth
        return average if average and not math.isnan(average) else self.facts.bitrate


def _js_parse_float(text: str) -> float:
    m = _JS_FLOAT_RE.match(text)
    return math.nan if m is None else float(m.group(1).replace("Infinity", "inf"))


def _js_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(int(value)) if value == int(value) else repr(value)


def _js_compare(a: float, b: float) -> int | None:
    """None when equal (go on to the next key), else the sign of ``a - b``; NaN ends the
    comparison as "equal" (``Array.prototype.sort`` treats a NaN result as +0)."""
    if a == b:
        return None
    diff = a - b
    return 0 if math.isnan(diff) else (1 if diff > 0 else -1)


def _codec_set_preference(codec_set: str) -> float:
    # codecs.ts codecsSetSelectionPreferenceValue (without the Windows-Firefox HEVC penalty)
    num = 0.0
    for fourcc in codec_set.split(","):
        video = SAMPLE_ENTRY_PREFERENCE["video"].get(fourcc)
        if video:
            num = (video * 2 + num) / (3 if num else 2)
        else:
            audio = SAMPLE_ENTRY_PREFERENCE["audio"].get(fourcc, math.nan)
            num = (audio + num) / (2 if num else 1)
    return num


def _compare(a: _Level, b: _Level, resolution_found: bool) -> int:
    # level-controller.ts filterAndSortMediaOptions: levels.sort((a, b) => ...)
    hdcp_a, hdcp_b = a.facts.attrs.get("HDCP-LEVEL"), b.facts.attrs.get("HDCP-LEVEL")
    if hdcp_a != hdcp_b:
        return 1 if (hdcp_a or "") > (hdcp_b or "") else -1
    keys: list[tuple[float, float]] = []
    if resolution_found:
        keys.append((a.facts.height, b.facts.height))
    keys.append((a.frame_rate, b.frame_rate))
    ranges = [_VIDEO_RANGES.index(r) if r in _VIDEO_RANGES else -1 for r in (a.video_range, b.video_range)]  # fmt: skip
    keys.append((ranges[0], ranges[1]))
    for x, y in keys:
        result = _js_compare(x, y)
        if result is not None:
            return result
    if a.facts.video_codec != b.facts.video_codec:
        # videoCodecPreferenceValue: 2 without a video codec, undefined for an unknown one
        pa, pb = (
            SAMPLE_ENTRY_PREFERENCE["video"].get(c[:4]) if c else 2.0
            for c in (a.facts.video_codec, b.facts.video_codec)
        )
        if pa != pb:
            return 0 if pa is None or pb is None else (1 if pb > pa else -1)
    if a.facts.url == b.facts.url and a.codec_set != b.codec_set:
        result = _js_compare(_codec_set_preference(b.codec_set), _codec_set_preference(a.codec_set))
        if result is not None:
            return result
    return _js_compare(a.average_bitrate, b.average_bitrate) or 0


def hlsjs_level_numbers(levels: Sequence[LevelFacts], pathway: str = ".") -> list[int | None]:
    """Per parsed variant: its index in ``hls.levels``, or None where hls.js drops it.

    ``pathway`` is the manifest's initial content steering pathway (``EXT-X-CONTENT-STEERING``
    PATHWAY-ID, ``.`` without one).
    """
    resolution_found = video_found = audio_found = False
    made: list[_Level] = []
    by_key: dict[str, _Level] = {}
    copies: dict[str, int] = {}
    owner: dict[int, _Level] = {}  # parsed variant -> the hls.js level playing it
    for source, facts in enumerate(levels):
        resolution_found = resolution_found or bool(facts.width and facts.height)
        video_found = video_found or bool(facts.video_codec)
        audio_found = audio_found or bool(facts.audio_codec)
        if facts.unknown_codecs:
            continue
        attrs = facts.attrs
        given_pathway = attrs.get("PATHWAY-ID")
        key = "-".join(
            [
                given_pathway or ".",
                _js_number(facts.bitrate),
                *(attrs.get(name, "undefined") for name in _REDUNDANT_KEY_ATTRS),
            ]
        )
        if key in by_key and (by_key[key].facts.url == facts.url or given_pathway):
            owner[source] = by_key[key]  # the same level (addGroupId)
            continue
        copies[key] = copies.get(key, 0) + 1
        frame_rate = attrs.get("FRAME-RATE")
        level = _Level(
            facts=facts,
            pathway=given_pathway or "." * copies[key],
            frame_rate=_js_parse_float(frame_rate) if frame_rate else 0.0,
            codec_set=",".join(c[:4] for c in (facts.video_codec, facts.audio_codec) if c),
        )
        by_key[key] = owner[source] = level
        made.append(level)
    kept = made
    if (resolution_found or video_found) and audio_found:
        kept = [
            level
            for level in made
            if (level.facts.video_codec or (level.facts.width and level.facts.height))
            and level.video_range in _VIDEO_RANGES
        ]

    def compare(a: _Level, b: _Level) -> int:
        return _compare(a, b, resolution_found)

    ordered = sorted(kept, key=functools.cmp_to_key(compare))  # stable, like V8's TimSort
    if ordered and not any(level.pathway == pathway for level in ordered):
        pathway = ordered[0].pathway
    number = {
        id(level): i for i, level in enumerate(lvl for lvl in ordered if lvl.pathway == pathway)
    }
    return [number.get(id(owner[i])) if i in owner else None for i in range(len(levels))]
