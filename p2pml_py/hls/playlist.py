"""The HLS playlist model browsers see: streams of a master playlist, segments of a media playlist.

Swarm membership depends on *exactly* what hls.js hands p2p-media-loader, not on what the HLS RFC
says, so this module models hls.js 1.6 rather than a generic parser:

1. **Master playlist** (``src/loader/m3u8-parser.ts parseMasterPlaylist[Media]``): variants are
   read with hls.js's own regular expressions and attribute-list rules; ``bitrate`` is
   ``BANDWIDTH || AVERAGE-BANDWIDTH``; CODECS are split into video/audio/text by their 4-char
   sample entry; levels with unknown codecs are dropped unless that would drop them all. Audio
   renditions borrow the audio codec of the first level in their AUDIO group (else of level 0), and
   ``playlist-loader.ts`` adds a synthetic ``main`` audio track (URL ``""``) when renditions exist,
   none is embedded, and level 0 has an audio codec but no AUDIO group.
2. **MANIFEST_LOADED** listeners: hls.js's level controller runs first and rewrites legacy
   ``avc1.P.L`` video codecs (:func:`p2pml_py.identity.convert_avc1_to_avcoti`); it does not filter
   ``data.levels``, so unsupported-but-known codecs still become PML streams. Its own level list
   -- the numbers a page uses (``hls.currentLevel``) -- is filtered and sorted (height first, not
   playlist order): :attr:`Stream.hlsjs_levels`, :mod:`p2pml_py.hls.levels`.
3. **PML SegmentManager** (``hlsjs/segment-manager.ts processMainManifest``): every level is a
   ``main`` stream, every audio track a ``secondary`` stream, keyed by playlist URL; a URL already
   added is skipped (``Core.addStreamIfNoneExists``). 2.2.x uses the array position as stream
   index, 2.3.x the attribute short id (:func:`p2pml_py.identity.stream_short_id`).
4. **Media playlists** (``parseLevelPlaylist`` + ``SegmentManager.updatePlaylist``): VOD segments
   are numbered by position, live ones by media sequence number; byte ranges without an offset
   continue from the previous segment's range (or 0), whatever its URL.

A manifest that is itself a media playlist becomes one ``main`` stream with bitrate 0.
Not modelled: ``EXT-X-DEFINE`` variable substitution, content steering pathways, delta updates
(``EXT-X-SKIP``), and the browser's ``MediaSource.isTypeSupported`` verdict on codecs hls.js does
not know (pass ``is_type_supported`` to emulate one).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import m3u8

from p2pml_py.base.errors import SourceError
from p2pml_py.hls.levels import SAMPLE_ENTRY_PREFERENCE, LevelFacts, hlsjs_level_numbers
from p2pml_py.identity import (
    ProtocolVersion,
    StreamType,
    convert_avc1_to_avcoti,
    info_hash,
    segment_runtime_id,
    stream_short_id,
    stream_swarm_id,
    swarm_id_from_manifest_url,
)

__all__ = [
    "CodecType",
    "InitSegment",
    "MasterPlaylist",
    "MediaPlaylist",
    "Segment",
    "Stream",
    "StreamIdentity",
    "TypeSupported",
    "is_media_playlist",
    "parse_master_playlist",
    "parse_media_playlist",
    "resolve_url",
    "stream_identities",
]

CodecType = Literal["audio", "video"]
TypeSupported = Callable[[str, CodecType], bool]

# hls.js src/utils/codecs.ts sampleEntryCodesISO (keys; matched on codec[:4], case-sensitive)
_SAMPLE_ENTRIES = {kind: frozenset(table) for kind, table in SAMPLE_ENTRY_PREFERENCE.items()}

# hls.js src/loader/m3u8-parser.ts MASTER_PLAYLIST_REGEX / MASTER_PLAYLIST_MEDIA_REGEX /
# IS_MEDIA_PLAYLIST, and src/utils/attr-list.ts ATTR_LIST_REGEX. JS "." excludes \r, \n, U+2028/9.
_MASTER_RE = re.compile(
    r"#EXT-X-STREAM-INF:([^\r\n]*)(?:[\r\n](?:#[^\r\n]*)?)*([^\r\n]+)"
    r"|#EXT-X-(SESSION-DATA|SESSION-KEY|DEFINE|CONTENT-STEERING|START):([^\r\n]*)[\r\n]+"
)
_MEDIA_RE = re.compile("#EXT-X-MEDIA:([^\r\n\u2028\u2029]*)")
_IS_MEDIA_PLAYLIST_RE = re.compile(r"^#EXT(?:INF|-X-TARGETDURATION):", re.MULTILINE)
_ATTR_RE = re.compile(
    '([^\r\n\u2028\u2029]+?)=("[^\r\n\u2028\u2029]*?"|[^\r\n\u2028\u2029]*?)(?:,|$)'
)
_RESOLUTION_RE = re.compile(r"^(\d+)x(\d+)$")
_JS_INT_PREFIX_RE = re.compile(r"^\s*([+-]?\d+)")
_BYTERANGE_RE = re.compile(r"^\s*(\d+)(?:@(\d+))?\s*$")
_MAX_SAFE_INTEGER = 2**53 - 1


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream (hls.js level or audio track) as p2p-media-loader registers it.

    ``position`` is the index in hls.js's ``levels`` / ``audioTracks`` array (the 2.2.x stream
    index); ``short_id`` is the 2.3.x stream index. ``url`` is the absolute playlist URL, ``""``
    for an audio track carried inside the main stream (it has no playlist and gets no segments).
    ``bitrate`` is ``None`` when neither BANDWIDTH nor AVERAGE-BANDWIDTH parses (hls.js: NaN).
    """

    type: StreamType
    position: int
    url: str
    short_id: str
    bitrate: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None
    video_range: str | None = None
    language: str | None = None
    channels: str | None = None
    name: str | None = None
    group_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    #: The player's numbers for this stream: indexes in hls.js's ``hls.levels`` whose playlist it
    #: is (one, or several when the master lists the URL with different attributes; empty for
    #: audio tracks and for levels hls.js drops). See :mod:`p2pml_py.hls.levels`.
    hlsjs_levels: tuple[int, ...] = ()

    def index(self, version: ProtocolVersion) -> int | str:
        """The stream index that goes into the stream swarm id for ``version``."""
        return self.position if version is ProtocolVersion.V2_2 else self.short_id

    @property
    def has_playlist(self) -> bool:
        return self.url != ""

    @property
    def label(self) -> str:
        """A short human description: ``1280x720 2560 kbps`` or ``English (eng)``."""
        parts: list[str] = []
        if self.type == "main":
            if self.width and self.height:
                parts.append(f"{self.width}x{self.height}")
            if self.bitrate:
                parts.append(f"{round(self.bitrate / 1000)} kbps")
            if not parts and self.name:
                parts.append(self.name)
            return " ".join(parts) or f"level {self.position}"
        if self.name:
            parts.append(self.name)
        if self.language and self.language != self.name:
            parts.append(f"({self.language})")
        return " ".join(parts) or f"audio {self.position}"


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    """The streams of a manifest, in the order PML registers them (main first, then audio)."""

    url: str
    streams: tuple[Stream, ...]
    is_media_playlist: bool = False

    @property
    def main_streams(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.type == "main")

    @property
    def secondary_streams(self) -> tuple[Stream, ...]:
        return tuple(s for s in self.streams if s.type == "secondary")


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """Which swarm a stream joins for one protocol version."""

    version: ProtocolVersion
    type: StreamType
    index: int | str
    stream_swarm_id: str
    info_hash: str
    playlist_url: str
    label: str
    stream: Stream = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class InitSegment:
    """``EXT-X-MAP``: absolute URL and optional ``(start, end_inclusive)`` byte range."""

    url: str
    byte_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment with the ids PML gives it.

    ``external_id`` is the number on the wire (VOD: 0-based position; live: media sequence
    number); ``runtime_id`` is PML's local key (URL, plus ``|start-end`` for byte ranges).
    ``byte_range`` is ``(start, end_inclusive)``.
    """

    url: str
    byte_range: tuple[int, int] | None
    duration: float
    start_time: float
    end_time: float
    sequence_number: int
    external_id: int
    runtime_id: str
    init_segment: InitSegment | None = None


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    url: str
    segments: tuple[Segment, ...]
    target_duration: int | None
    media_sequence: int
    is_live: bool

    def segment_by_external_id(self, external_id: int) -> Segment | None:
        for segment in self.segments:
            if segment.external_id == external_id:
                return segment
        return None

    def segment_by_runtime_id(self, runtime_id: str) -> Segment | None:
        for segment in self.segments:
            if segment.runtime_id == runtime_id:
                return segment
        return None


# --------------------------------------------------------------------------------------------
# URLs


def resolve_url(base: str, ref: str) -> str:
    """Absolute URL of ``ref`` relative to ``base``, dot segments removed (url-toolkit
    ``buildAbsoluteURL(base, ref, {alwaysNormalize: true})`` as used by hls.js)."""
    joined = urljoin(base, ref.strip())
    parts = urlsplit(joined)
    if not parts.scheme:
        raise SourceError(f"cannot resolve {ref!r} against {base!r} to an absolute URL")
    return urlunsplit(parts._replace(path=_remove_dot_segments(parts.path)))


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4; urljoin already does this for relative refs, not for absolute ones.
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                output.append("")
        elif seg == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(seg)
    return "/".join(output)


# --------------------------------------------------------------------------------------------
# Master playlist


def is_media_playlist(text: str) -> bool:
    """hls.js's test for "this manifest is a media playlist" (``M3U8Parser.isMediaPlaylist``)."""
    return _IS_MEDIA_PLAYLIST_RE.search(text) is not None


def _parse_attributes(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for m in _ATTR_RE.finditer(text):
        name = m.group(1).strip()
        value = m.group(2)
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        attrs[name] = value
    return attrs


def _decimal_integer(attrs: dict[str, str], name: str) -> int | None:
    """``AttrList.decimalInteger``: ``parseInt(value, 10)``; None where JS gets NaN."""
    m = _JS_INT_PREFIX_RE.match(attrs.get(name, ""))
    return None if m is None else int(m.group(1))


def _js_value(value: int | None) -> float:
    # decimalInteger returns Infinity above Number.MAX_SAFE_INTEGER
    if value is None:
        return math.nan
    return math.inf if value > _MAX_SAFE_INTEGER else float(value)


@dataclass(slots=True)
class _Level:
    attrs: dict[str, str]
    url: str
    bitrate: int | None  # BANDWIDTH || AVERAGE-BANDWIDTH; None = NaN in hls.js
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    unknown_codecs: list[str] = field(default_factory=list)


def _set_codecs(level: _Level, codecs_value: str | None) -> None:
    # m3u8-parser.ts setCodecs: split on spaces/commas; a codec's type is its 4-char prefix.
    codecs = [c for c in re.split(r"[ ,]+", codecs_value or "") if c]
    for codec_type in ("video", "audio", "text"):
        entries = _SAMPLE_ENTRIES[codec_type]
        matched = [c for c in codecs if c[:4] in entries]
        if matched:
            joined = ",".join(c.split("/", 1)[0] for c in matched)
            if codec_type == "video":
                level.video_codec = joined
            elif codec_type == "audio":
                level.audio_codec = joined
            codecs = [c for c in codecs if c not in matched]
    level.unknown_codecs = codecs


def _parse_levels(text: str, url: str, is_type_supported: TypeSupported | None) -> list[_Level]:
    levels: list[_Level] = []
    for m in _MASTER_RE.finditer(text):
        if not m.group(1):
            # SESSION-DATA, DEFINE, ...: nothing PML looks at. hls.js tests `result[1]`, so a
            # STREAM-INF with an empty attribute list is ignored as well.
            continue
        attrs = _parse_attributes(m.group(1))
        # `BANDWIDTH || AVERAGE-BANDWIDTH`: 0 and NaN are both falsy in JS
        bitrate = _decimal_integer(attrs, "BANDWIDTH") or _decimal_integer(
            attrs, "AVERAGE-BANDWIDTH"
        )
        level = _Level(attrs=attrs, url=resolve_url(url, m.group(2)), bitrate=bitrate)
        res = _RESOLUTION_RE.match(attrs.get("RESOLUTION", ""))
        if res is not None:
            level.width, level.height = int(res.group(1)), int(res.group(2))
        _set_codecs(level, attrs.get("CODECS"))
        levels.append(level)
    known = [lvl for lvl in levels if not lvl.unknown_codecs]
    if 0 < len(known) < len(levels):
        levels = known  # parseMasterPlaylist: strip unknown-codec levels unless all are unknown
    if not levels:
        raise SourceError("no levels found in manifest")
    if is_type_supported is not None:
        # playlist-loader.ts handleMasterPlaylist: unknown codecs the browser supports are adopted
        # (walked from the last one, appended).
        for lvl in levels:
            for codec in reversed(list(lvl.unknown_codecs)):
                if is_type_supported(codec, "audio"):
                    lvl.audio_codec = f"{lvl.audio_codec},{codec}" if lvl.audio_codec else codec
                    lvl.unknown_codecs.remove(codec)
                elif is_type_supported(codec, "video"):
                    lvl.video_codec = f"{lvl.video_codec},{codec}" if lvl.video_codec else codec
                    lvl.unknown_codecs.remove(codec)
    return levels


def _main_stream(level: _Level, position: int, hlsjs_levels: tuple[int, ...] = ()) -> Stream:
    attrs = level.attrs
    video_codec = convert_avc1_to_avcoti(level.video_codec) if level.video_codec else None
    frame_rate = attrs.get("FRAME-RATE")
    video_range = attrs.get("VIDEO-RANGE")
    b = _js_value(level.bitrate)
    if b == 0:  # PML: isMissingMetadata -> every other field undefined
        short_id = stream_short_id(bitrate=0)
    else:
        short_id = stream_short_id(
            bitrate=b,
            codecs=video_codec,
            width=level.width,
            height=level.height,
            frame_rate=frame_rate,
            video_range=video_range,
        )
    return Stream(
        type="main",
        position=position,
        url=level.url,
        short_id=short_id,
        bitrate=level.bitrate,
        video_codec=video_codec,
        audio_codec=level.audio_codec,
        width=level.width,
        height=level.height,
        frame_rate=frame_rate,
        video_range=video_range,
        name=attrs.get("NAME"),
        group_id=attrs.get("AUDIO"),
        attributes=tuple(attrs.items()),
        hlsjs_levels=hlsjs_levels,
    )


def _audio_tracks(text: str, url: str, levels: Sequence[_Level]) -> list[Stream]:
    tracks: list[Stream] = []
    for m in _MEDIA_RE.finditer(text):
        attrs = _parse_attributes(m.group(1))
        if attrs.get("TYPE") != "AUDIO":
            continue
        group_id = attrs.get("GROUP-ID") or ""
        # parseMasterPlaylistMedia: codec of the first level in this AUDIO group, else level 0.
        source = next((lvl for lvl in levels if lvl.attrs.get("AUDIO") == group_id), levels[0])
        audio_codec = source.audio_codec or None
        language = attrs.get("LANGUAGE")
        channels = attrs.get("CHANNELS") or None
        name = attrs.get("NAME") or language or ""
        uri = attrs.get("URI")
        track_url = resolve_url(url, uri) if uri else ""
        tracks.append(
            Stream(
                type="secondary",
                position=0,  # fixed below, after the synthetic track may be inserted
                url=track_url,
                short_id=stream_short_id(
                    bitrate=0, codecs=audio_codec, language=language, channels=channels, name=name
                ),
                bitrate=0,
                audio_codec=audio_codec,
                language=language,
                channels=channels,
                name=name,
                group_id=group_id,
                attributes=tuple(attrs.items()),
            )
        )
    if (
        tracks
        and all(t.url for t in tracks)
        and levels[0].audio_codec
        and not levels[0].attrs.get("AUDIO")
    ):
        # playlist-loader.ts: audio is muxed into the levels but not signalled as a rendition.
        tracks.insert(
            0,
            Stream(
                type="secondary",
                position=0,
                url="",
                short_id=stream_short_id(bitrate=0, name="main"),
                bitrate=0,
                name="main",
                group_id="main",
            ),
        )
    return [dataclasses.replace(t, position=i) for i, t in enumerate(tracks)]


def _level_facts(level: _Level) -> LevelFacts:
    return LevelFacts(
        url=level.url,
        attrs=level.attrs,
        bitrate=_js_value(level.bitrate),
        average_bandwidth=_js_value(_decimal_integer(level.attrs, "AVERAGE-BANDWIDTH")),
        width=level.width or 0,
        height=level.height or 0,
        video_codec=level.video_codec,
        audio_codec=level.audio_codec,
        unknown_codecs=bool(level.unknown_codecs),
    )


def _steering_pathway(text: str) -> str:
    """The initial pathway (m3u8-parser.ts: ``EXT-X-CONTENT-STEERING`` PATHWAY-ID or ``.``)."""
    for m in _MASTER_RE.finditer(text):
        if m.group(3) == "CONTENT-STEERING":
            return _parse_attributes(m.group(4)).get("PATHWAY-ID") or "."
    return "."


def _check_header(text: str, what: str, *, strict: bool) -> str:
    if not isinstance(text, str):
        raise SourceError(f"{what} must be text, got {type(text).__name__}")
    text = text.removeprefix("\ufeff")
    # hls.js: a manifest must start with #EXTM3U (startsWith); a level playlist's first
    # non-blank token must be it (LEVEL_PLAYLIST_REGEX_FAST skips blank lines).
    if not (text if strict else text.lstrip()).startswith("#EXTM3U"):
        raise SourceError(f"{what} does not start with #EXTM3U")
    return text


def parse_master_playlist(
    text: str, url: str, *, is_type_supported: TypeSupported | None = None
) -> MasterPlaylist:
    """The streams PML registers for a manifest at ``url`` (its final URL, after redirects).

    Relative variant/rendition URIs are resolved against ``url`` (query included). A media
    playlist given as manifest yields a single ``main`` stream at ``url``. Streams whose playlist
    URL was already registered are omitted, like ``Core.addStreamIfNoneExists``; their
    ``position`` keeps counting. Raises :class:`SourceError` for anything hls.js would reject.
    """
    text = _check_header(text, "manifest", strict=True)
    if is_media_playlist(text):
        stream = Stream(
            type="main",
            position=0,
            url=url,
            short_id=stream_short_id(bitrate=0),
            bitrate=0,
            hlsjs_levels=(0,),
        )
        return MasterPlaylist(url=url, streams=(stream,), is_media_playlist=True)
    levels = _parse_levels(text, url, is_type_supported)
    numbers: dict[str, list[int]] = {}  # playlist URL -> hls.js levels playing it
    facts = [_level_facts(lvl) for lvl in levels]
    for lvl, number in zip(
        levels, hlsjs_level_numbers(facts, _steering_pathway(text)), strict=True
    ):
        if number is not None and number not in numbers.setdefault(lvl.url, []):
            numbers[lvl.url].append(number)
    candidates = [
        _main_stream(lvl, i, tuple(sorted(numbers.get(lvl.url, ()))))
        for i, lvl in enumerate(levels)
    ]
    candidates += _audio_tracks(text, url, levels)
    seen: set[str] = set()
    streams: list[Stream] = []
    for stream in candidates:
        if stream.url in seen:
            continue
        seen.add(stream.url)
        streams.append(stream)
    return MasterPlaylist(url=url, streams=tuple(streams))


def stream_identities(
    master_text: str,
    manifest_url: str,
    versions: ProtocolVersion | Iterable[ProtocolVersion],
    swarm_id: str | None = None,
) -> list[StreamIdentity]:
    """Swarm ids and info hashes of every stream, per version (versions in the order given).

    ``swarm_id`` replaces the URL-derived swarm id like PML's ``config.swarmId``.
    """
    if isinstance(versions, ProtocolVersion):
        versions = (versions,)
    master = parse_master_playlist(master_text, manifest_url)
    base = swarm_id if swarm_id is not None else swarm_id_from_manifest_url(manifest_url)
    result: list[StreamIdentity] = []
    for version in versions:
        for stream in master.streams:
            index = stream.index(version)
            swarm = stream_swarm_id(base, stream.type, index)
            result.append(
                StreamIdentity(
                    version=version,
                    type=stream.type,
                    index=index,
                    stream_swarm_id=swarm,
                    info_hash=info_hash(swarm, version),
                    playlist_url=stream.url,
                    label=stream.label,
                    stream=stream,
                )
            )
    return result


# --------------------------------------------------------------------------------------------
# Media playlist


def _byte_range(value: Any, previous_end: int | None, what: str) -> tuple[int, int]:
    """``Fragment.setByteRange``: ``len[@start]``; no start -> previous range's end, else 0.

    Returns ``(start, end_exclusive)``.
    """
    m = _BYTERANGE_RE.match(str(value))
    if m is None:
        raise SourceError(f"malformed BYTERANGE {value!r} for {what}")
    length = int(m.group(1))
    start = int(m.group(2)) if m.group(2) is not None else (previous_end or 0)
    return start, start + length


def _pml_byte_range(start: int, end_exclusive: int) -> tuple[int, int] | None:
    # hlsjs/utils.ts getByteRange(start, end - 1): dropped when empty.
    return (start, end_exclusive - 1) if start <= end_exclusive - 1 else None


def parse_media_playlist(text: str, url: str) -> MediaPlaylist:
    """Segments of the media playlist at ``url`` (its final URL) with PML's ids.

    Raises :class:`SourceError` when the text is not a media playlist or a tag is malformed.
    """
    text = _check_header(text, "media playlist", strict=False)
    if _MEDIA_RE.search(text) or "#EXT-X-STREAM-INF:" in text:
        raise SourceError(f"{url} is a master playlist, not a media playlist")
    try:
        parsed = m3u8.loads(text)
    except Exception as exc:  # m3u8 raises bare ValueError/IndexError/... on malformed tags
        raise SourceError(f"malformed media playlist {url}: {exc}") from exc
    target = parsed.target_duration
    target_duration = None if target is None else int(target)
    media_sequence = int(parsed.media_sequence or 0)
    is_live = not parsed.is_endlist
    segments: list[Segment] = []
    previous_end: int | None = None
    position = 0.0
    for i, seg in enumerate(parsed.segments):
        if not seg.uri:
            raise SourceError(f"segment {i} of {url} has no URI")
        seg_url = resolve_url(url, seg.uri)
        duration = float(seg.duration or 0.0)
        if not math.isfinite(duration) or duration < 0:
            raise SourceError(f"segment {i} of {url} has an invalid duration {seg.duration!r}")
        byte_range: tuple[int, int] | None = None
        if seg.byterange is not None:
            start, end = _byte_range(seg.byterange, previous_end, f"segment {i} of {url}")
            previous_end = end
            byte_range = _pml_byte_range(start, end)
        else:
            previous_end = None
        init: InitSegment | None = None
        section = seg.init_section
        if section is not None and section.uri:
            init_range: tuple[int, int] | None = None
            if section.byterange:
                start, end = _byte_range(section.byterange, None, f"EXT-X-MAP of {url}")
                init_range = _pml_byte_range(start, end)
            init = InitSegment(url=resolve_url(url, section.uri), byte_range=init_range)
        sn = media_sequence + i
        segments.append(
            Segment(
                url=seg_url,
                byte_range=byte_range,
                duration=duration,
                start_time=position,
                end_time=position + duration,
                sequence_number=sn,
                external_id=sn if is_live else i,
                runtime_id=segment_runtime_id(seg_url, byte_range),
                init_segment=init,
            )
        )
        position += duration
    return MediaPlaylist(
        url=url,
        segments=tuple(segments),
        target_duration=target_duration,
        media_sequence=media_sequence,
        is_live=is_live,
    )
