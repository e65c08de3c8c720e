"""The streams a Shaka Player page registers with p2p-media-loader 2.2.2, and their stream indexes.

``p2p-media-loader-shaka`` is published at 2.2.2 only, so Shaka pages always use the 2.2 swarm
rules (``"v2-" + swarm_id + "-" + type + "-" + index``, MD5 info hash: :mod:`p2pml_py.identity`).
Only the index differs from hls.js pages. The integration numbers the streams of Shaka's
*variant list* (``src/manifest-parser-decorator.ts processStreams``): walking the variants in
order, a video stream not seen before gets the next ``main`` index, an audio stream not seen
before the next index of a second counter -- ``secondary`` when its variant has video, else
``main`` (so an audio-only variant shares ``main`` indexes with the video streams).

Shaka 4.16's HLS parser (``lib/hls/hls_parser.js createVariantsForTags_``) builds that list:

* ``EXT-X-STREAM-INF`` tags in playlist order, identical tags (attributes and URI) merged;
* one stream per distinct verbatim URI + codecs, reused by every variant that names it;
* CODECS decide the kind: video and audio codecs without audio renditions = one muxed video
  stream, audio codecs only = an audio stream, missing CODECS = ``avc1.42E01E,mp4a.40.2``;
* a variant with an ``AUDIO`` group gets one variant per rendition of the group (renditions in
  ``EXT-X-MEDIA`` order, created when a variant first names the group); a rendition without URI
  (audio muxed into the video) becomes a new stream every time a variant tag names its group;
* a variant repeating another's video URI, audio URI and codecs is dropped.

For an ordinary ladder (one stream per ``EXT-X-STREAM-INF``, distinct URIs) the ``main`` indexes
are the playlist positions, the hls.js 2.2 rule (:attr:`p2pml_py.hls.playlist.Stream.position`),
so a ``--protocol 2.2`` peer shares swarms with hls.js and Shaka pages alike. They differ when
the master repeats a URI (hls.js keeps counting), lists an audio-only variant, or has audio
renditions (hls.js numbers ``audioTracks``). Not modelled: ``EXT-X-MEDIA TYPE=VIDEO`` groups,
content steering, ``SUPPLEMENTAL-CODECS`` copies, DRM-incompatible variants, player config other
than the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from p2pml_py.base.errors import SourceError
from p2pml_py.hls.playlist import is_media_playlist, resolve_url
from p2pml_py.identity import (
    ProtocolVersion,
    StreamType,
    info_hash,
    stream_swarm_id,
    swarm_id_from_manifest_url,
)

__all__ = ["ShakaStream", "ShakaStreamIdentity", "shaka_stream_identities", "shaka_streams"]

# lib/util/manifest_parser_utils.js VIDEO_CODEC_REGEXPS / AUDIO_CODEC_REGEXPS
_VIDEO_CODEC = re.compile(r"^(?:avc|hev|hvc|vvc|vvi|vp0?[89]|av0[12]|mp2v|dvh|dva|dav)")
_AUDIO_CODEC = re.compile(
    r"^(?:vorbis$|Opus$|opus$|fLaC$|flac$|mp4a|[ae]c-3$|ac-4|dts[cehx]?$|iamf|mhm[12]|ac3$"
    r"|eac3$|apac$)"
)
#: Shaka's ``hls.defaultVideoCodec`` / ``hls.defaultAudioCodec``, used when CODECS is missing.
_DEFAULT_CODECS = ("avc1.42E01E", "mp4a.40.2")
_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')

Content = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class ShakaStream:
    """A stream p2p-media-loader-shaka registers: its PML ``type`` and 2.2 ``index``.

    ``content`` is Shaka's kind (a muxed audio+video variant is ``video``); ``uri`` the verbatim
    playlist URI and ``url`` the absolute one, both ``""`` for audio carried in the video.
    """

    type: StreamType
    index: int
    content: Content
    uri: str
    url: str


@dataclass(frozen=True, slots=True)
class ShakaStreamIdentity:
    """The 2.2 swarm a Shaka page joins for one stream."""

    stream: ShakaStream
    stream_swarm_id: str
    info_hash: str


@dataclass(eq=False, slots=True)
class _Stream:
    content: Content
    uri: str  # verbatim; "" when muxed into the video
    url: str
    codecs: tuple[str, ...] = field(default=())


def _attributes(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for m in _ATTR.finditer(text):
        value = m.group(2)
        attrs.setdefault(m.group(1), value[1:-1] if value.startswith('"') else value)
    return attrs


def _tags(text: str) -> tuple[list[tuple[str, dict[str, str], str]], list[dict[str, str]]]:
    """``(variant tags as (line, attributes, URI), EXT-X-MEDIA attributes)`` in playlist order."""
    lines = [line.strip() for line in text.splitlines()]
    variants: list[tuple[str, dict[str, str], str]] = []
    media: list[dict[str, str]] = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            uri = next((u for u in lines[i + 1 :] if u and not u.startswith("#")), None)
            if uri is None:
                raise SourceError(f"EXT-X-STREAM-INF without a URI: {line!r}")
            variants.append((line, _attributes(line.partition(":")[2]), uri))
        elif line.startswith("#EXT-X-MEDIA:"):
            media.append(_attributes(line.partition(":")[2]))
    return variants, media


def _codecs(attrs: dict[str, str]) -> tuple[str, ...]:
    # getCodecsForVariantTag_: split on commas; the defaults when CODECS is missing or empty
    given = [c.strip() for c in (attrs.get("CODECS") or "").split(",") if c.strip()]
    return tuple(dict.fromkeys(given or _DEFAULT_CODECS))


def shaka_streams(master_text: str, manifest_url: str) -> tuple[ShakaStream, ...]:
    """The streams a Shaka page registers for an HLS manifest, in registration order."""
    if is_media_playlist(master_text):
        return (ShakaStream("main", 0, "video", manifest_url, manifest_url),)
    variant_tags, media_tags = _tags(master_text)
    if not variant_tags:
        raise SourceError("no EXT-X-STREAM-INF in the master playlist")
    audio_media = [m for m in media_tags if m.get("TYPE") == "AUDIO"]

    by_key: dict[tuple[str, tuple[str, ...]], _Stream] = {}  # uriToStreamInfosMap_
    by_group: dict[str, list[_Stream]] = {}  # groupIdToStreamInfosMap_
    media_made: set[tuple[str, str]] = set()
    variant_keys: set[tuple[str, str, tuple[str, ...]]] = set()  # variantUriSet_
    variants: list[tuple[_Stream | None, _Stream | None]] = []

    # Identical tags (attributes and URI) are one group (getTagKey without content steering).
    groups = {f"{line}\n{uri}": (attrs, uri) for line, attrs, uri in variant_tags}
    for attrs, uri in groups.values():
        group = attrs.get("AUDIO")
        if group is not None and media_tags:
            for media in audio_media:
                if media.get("GROUP-ID") != group:
                    continue
                media_uri = media.get("URI") or ""
                if media_uri and (media_uri, group) in media_made:
                    continue  # already created for another variant
                media_made.add((media_uri, group))
                url = resolve_url(manifest_url, media_uri) if media_uri else ""
                by_group.setdefault(group, []).append(_Stream("audio", media_uri, url))
        audio = list(by_group.get(group, [])) if group is not None else []
        codecs = _codecs(attrs)
        has_video = any(_VIDEO_CODEC.match(c) for c in codecs)
        has_audio = any(_AUDIO_CODEC.match(c) for c in codecs)
        ignore = False
        content: Content
        if has_audio and not has_video:
            content = "audio"
            ignore = bool(audio) and not any(not a.uri for a in audio)
        elif not audio and has_audio and has_video:
            content = "video"  # muxed
        elif audio and any(a.url == uri for a in audio):
            content, ignore = "audio", True  # the variant URI is one of its renditions
        else:
            content = "video"
        video: list[_Stream] = []
        if not ignore:
            key = (uri, tuple(sorted(codecs)))
            stream = by_key.get(key)
            if stream is None:
                stream = by_key[key] = _Stream(content, uri, resolve_url(manifest_url, uri), codecs)
            if stream.content == "audio":
                audio = [stream]
            else:
                video = [stream]
        # createVariants_: every audio x every video, [null] standing in for a missing kind
        audio_or_none: list[_Stream | None] = [*audio] or [None]
        video_or_none: list[_Stream | None] = [*video] or [None]
        for a in audio_or_none:
            for v in video_or_none:
                uri_key = (_uri_key(v), _uri_key(a), tuple(sorted(codecs)))
                if uri_key in variant_keys:
                    continue
                variant_keys.add(uri_key)
                variants.append((a, v))
    return _number(variants)


def _uri_key(stream: _Stream | None) -> str:
    if stream is None:
        return ""
    # A rendition without URI gets a fake URL of its own (FAKE_MUXED_URL_ + id): never equal.
    return stream.uri or f"muxed:{id(stream)}"


def _number(variants: Sequence[tuple[_Stream | None, _Stream | None]]) -> tuple[ShakaStream, ...]:
    # manifest-parser-decorator.ts processStreams
    seen: set[int] = set()
    counts = {"video": 0, "audio": 0}
    result: list[ShakaStream] = []
    for audio, video in variants:
        for stream in (video, audio):
            if stream is None or id(stream) in seen:
                continue
            seen.add(id(stream))
            kind: StreamType = "main" if stream is video or video is None else "secondary"
            result.append(
                ShakaStream(kind, counts[stream.content], stream.content, stream.uri, stream.url)
            )
            counts[stream.content] += 1
    return tuple(result)


def shaka_stream_identities(
    master_text: str, manifest_url: str, swarm_id: str | None = None
) -> list[ShakaStreamIdentity]:
    """The 2.2 swarm of every stream a Shaka page registers (``swarm_id`` like PML's
    ``config.swarmId``, else the manifest URL without its query)."""
    base = swarm_id if swarm_id is not None else swarm_id_from_manifest_url(manifest_url)
    result = []
    for stream in shaka_streams(master_text, manifest_url):
        swarm = stream_swarm_id(base, stream.type, stream.index)
        result.append(ShakaStreamIdentity(stream, swarm, info_hash(swarm, ProtocolVersion.V2_2)))
    return result
