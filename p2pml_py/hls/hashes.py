"""Per-site integrity lists: SHA-256 digests of segments, in PeerTube's ``segments-sha256.json``.

PeerTube publishes one JSON file per streaming playlist and its player rejects any segment, from
the origin or from a peer, whose SHA-256 differs. We read and write the same format so a
PeerTube instance's lists work as they are, and ``p2pml-py hashes`` can publish lists that
PeerTube's player would accept too. Two shapes, both a JSON object keyed by file name:

* **VOD** (server ``server/core/lib/hls.ts updateSha256VODSegments``): PeerTube serves every
  resolution as one fragmented MP4 file addressed with ``EXT-X-BYTERANGE``, so each file maps
  byte ranges to digests: ``{"<file>": {"<start>-<endInclusive>": "<sha256 hex>"}}``. The ranges
  are the playlist's ``#EXT-X-BYTERANGE:<length>@<offset>`` lines, keyed
  ``offset-(offset+length-1)`` (the ``EXT-X-MAP`` init range is not listed);
* **live** (server ``server/core/lib/live/live-segment-sha-store.ts``): one digest per segment
  file, ``{"<segment file>": "<sha256 hex>"}``, rewritten as segments come and go.

Lookup follows the player (client ``client/src/assets/player/shared/p2p-media-loader/
segment-validator.ts``): the key is the last path component of the segment URL without its query
(``removeQueryParams(url).split('/').pop()``, not percent-decoded); a string value is the digest
whatever the range; an object value is indexed by ``"<start>-<end>"`` of the segment's byte
range (from the HTTP ``Range: bytes=<start>-<end>`` PML sends). Digests are compared as lowercase
hex strings, so we accept only lowercase hex. A file name is unique only within one playlist's
list: publish one list per media playlist.

Bounded parsing (:func:`parse_integrity_list`): PeerTube's player fetches the list with no limit,
so ours follow from the largest list a PeerTube server writes -- one entry per segment per
resolution, VOD segments of 4 s (``packages/ffmpeg/src/ffmpeg-vod.ts``: ``-hls_time 4``), up to 9
resolutions (audio-only and 144p to 2160p): a 24-hour video is 194,400 entries of ~90 bytes,
17.5 MB. :data:`MAX_LIST_ENTRIES` (250,000) and :data:`MAX_LIST_BYTES` (32 MiB) allow that and
no more; anything else (wrong types, malformed digests or ranges, duplicate keys, deep nesting)
raises :class:`IntegrityListError` naming the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from p2pml_py.base.errors import SourceError
from p2pml_py.hls.validate import Reason, Verdict

__all__ = [
    "MAX_LIST_BYTES",
    "MAX_LIST_ENTRIES",
    "IntegrityList",
    "IntegrityListBuilder",
    "IntegrityListError",
    "parse_integrity_list",
    "segment_file_name",
    "segment_path",
    "sha256_hex",
]

#: Largest list accepted, in bytes (module docstring).
MAX_LIST_BYTES = 32 * 1024 * 1024
#: Most keys accepted, file names and byte ranges together (module docstring).
MAX_LIST_ENTRIES = 250_000
#: Longest file name key: a path component (255 bytes on common file systems), percent-encoded.
MAX_NAME_LENGTH = 1024

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# Canonical decimals only: the player builds its key from the Range header's numbers.
_RANGE_RE = re.compile(r"(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})")

ByteRange = tuple[int, int]


class IntegrityListError(SourceError):
    """An integrity list is malformed, too large, or contradicts itself."""


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data``, as the lists store it."""
    return hashlib.sha256(data).hexdigest()


def segment_file_name(url: str) -> str:
    """The key of a segment in a list: the last path component of ``url``, query dropped."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


def segment_path(url: str, base_url: str) -> str | None:
    """``url``'s path relative to the directory of ``base_url`` (the master playlist), when it
    lies under it on the same origin: the key of our extension for stream layouts whose
    renditions repeat file names (ffmpeg's ``v0/seg0.ts``, ``v1/seg0.ts``). PeerTube never
    repeats a name, so its lists keep plain file names; both kinds of key are looked up."""
    target, base = urlsplit(url), urlsplit(base_url)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        return None
    directory = base.path.rsplit("/", 1)[0] + "/"
    if not target.path.startswith(directory):
        return None
    return target.path[len(directory) :] or None


@dataclass(frozen=True, slots=True)
class IntegrityList:
    """Parsed ``segments-sha256.json``: whole-file digests and per-byte-range digests.

    Build one with :func:`parse_integrity_list` or :class:`IntegrityListBuilder`.
    """

    files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ranges: Mapping[str, Mapping[ByteRange, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __len__(self) -> int:
        return len(self.files) + sum(len(r) for r in self.ranges.values())

    def expected_digest(
        self, url: str, byte_range: ByteRange | None = None, *, path: str | None = None
    ) -> str | None:
        """The digest listed for the segment at ``url`` (``byte_range`` inclusive), or None;
        ``path`` (:func:`segment_path`) is tried before the file name."""
        for name in (path, segment_file_name(url)):
            if name is None:
                continue
            digest = self.files.get(name)
            if digest is not None:
                return digest
            by_range = self.ranges.get(name)
            if by_range is not None and byte_range is not None and byte_range in by_range:
                return by_range[byte_range]
        return None

    def check(
        self, url: str, byte_range: ByteRange | None, data: bytes, *, path: str | None = None
    ) -> Verdict:
        """Whether ``data`` is what the list promises for the segment: :attr:`Reason.UNLISTED`
        when it has no entry (a live list may lag behind the playlist: the caller refetches it),
        :attr:`Reason.DIGEST` when the digest differs."""
        expected = self.expected_digest(url, byte_range, path=path)
        where = segment_file_name(url) + (
            f" bytes {byte_range[0]}-{byte_range[1]}" if byte_range is not None else ""
        )
        if expected is None:
            return Verdict(Reason.UNLISTED, f"{where} is not in the integrity list")
        actual = sha256_hex(data)
        if actual != expected:
            return Verdict(Reason.DIGEST, f"{where}: SHA-256 {actual}, list says {expected}")
        return Verdict(None)

    def entries(self) -> Iterator[tuple[str, ByteRange | None, str]]:
        """Every ``(file name, byte range or None, digest)``."""
        for name, digest in self.files.items():
            yield name, None, digest
        for name, by_range in self.ranges.items():
            for byte_range, digest in by_range.items():
                yield name, byte_range, digest

    def to_json(self) -> str:
        """The list in PeerTube's format (compact; whole-file entries first)."""
        document: dict[str, Any] = dict(self.files)
        for name, by_range in self.ranges.items():
            document[name] = {f"{a}-{b}": digest for (a, b), digest in by_range.items()}
        return json.dumps(document, separators=(",", ":"))


class IntegrityListBuilder:
    """Collects digests of segments (``p2pml-py hashes``) into an :class:`IntegrityList`.

    A segment with a byte range goes under its file name and range (PeerTube's VOD shape), one
    without under its file name (the live shape). The same key twice with another digest, or one
    file name in both shapes, raises :class:`IntegrityListError`: a list is per media playlist.
    """

    def __init__(self, *, max_entries: int = MAX_LIST_ENTRIES) -> None:
        self._files: dict[str, str] = {}
        self._ranges: dict[str, dict[ByteRange, str]] = {}
        self._entries = 0
        self._max_entries = max_entries

    def add(
        self, url: str, byte_range: ByteRange | None, data: bytes, *, name: str | None = None
    ) -> str:
        """Record the digest of ``data`` for the segment (under ``name``, by default its file
        name); returns it."""
        digest = sha256_hex(data)
        self.add_digest(name or segment_file_name(url), byte_range, digest)
        return digest

    def add_digest(self, name: str, byte_range: ByteRange | None, digest: str) -> None:
        _check_name(name)
        _check_digest(digest, name)
        if byte_range is not None:
            _check_range(byte_range, name)
        if byte_range is None:
            if name in self._ranges:
                raise IntegrityListError(f"{name!r} is listed both whole and by byte range")
            previous = self._files.get(name)
            if previous is None:
                self._count()
                self._files[name] = digest
        else:
            if name in self._files:
                raise IntegrityListError(f"{name!r} is listed both whole and by byte range")
            by_range = self._ranges.setdefault(name, {})
            previous = by_range.get(byte_range)
            if previous is None:
                self._count()
                by_range[byte_range] = digest
        if previous is not None and previous != digest:
            raise IntegrityListError(f"{name!r} {byte_range}: two different digests")

    def _count(self) -> None:
        self._entries += 1
        if self._entries > self._max_entries:
            raise IntegrityListError(f"more than {self._max_entries} entries")

    def build(self) -> IntegrityList:
        return IntegrityList(
            files=MappingProxyType(dict(self._files)),
            ranges=MappingProxyType(
                {name: MappingProxyType(dict(r)) for name, r in self._ranges.items()}
            ),
        )


def parse_integrity_list(
    data: bytes | str,
    *,
    max_bytes: int = MAX_LIST_BYTES,
    max_entries: int = MAX_LIST_ENTRIES,
) -> IntegrityList:
    """Parse a ``segments-sha256.json`` body; :class:`IntegrityListError` if it is not one."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise IntegrityListError(f"integrity list of {len(raw)} bytes, limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrityListError(f"integrity list is not UTF-8: {exc}") from exc
    counter = _PairCounter(max_entries)
    try:
        document = json.loads(text, object_pairs_hook=counter, parse_constant=_no_constant)
    except IntegrityListError:
        raise
    except RecursionError as exc:
        raise IntegrityListError("integrity list is nested too deeply") from exc
    except ValueError as exc:
        raise IntegrityListError(f"integrity list is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise IntegrityListError(
            f"integrity list must be a JSON object, got {type(document).__name__}"
        )
    builder = IntegrityListBuilder(max_entries=max_entries)
    for name, value in document.items():
        if isinstance(value, str):
            builder.add_digest(name, None, value)
        elif isinstance(value, dict):
            _check_name(name)  # an empty map (a file without ranges) lists nothing
            for key, digest in value.items():
                if not isinstance(digest, str):
                    raise IntegrityListError(
                        f"{name!r} {key!r}: digest must be a string, got {type(digest).__name__}"
                    )
                builder.add_digest(name, _parse_range(key, name), digest)
        else:
            raise IntegrityListError(
                f"{name!r}: value must be a digest or a byte range map, got {type(value).__name__}"
            )
    return builder.build()


class _PairCounter:
    """``object_pairs_hook`` that counts keys as objects are decoded and refuses duplicates."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.count += len(pairs)
        if self.count > self.limit:
            raise IntegrityListError(f"integrity list has more than {self.limit} entries")
        result: dict[str, Any] = {}
        for key, value in pairs:
            # JSON.parse keeps the last of repeated keys; a list that repeats one is not
            # PeerTube's output, and which digest it means is ambiguous.
            if key in result:
                raise IntegrityListError(f"integrity list repeats the key {key[:80]!r}")
            result[key] = value
        return result


def _no_constant(name: str) -> Any:
    raise IntegrityListError(f"integrity list contains {name}, which is not JSON")


def _check_name(name: str) -> None:
    """A file name, or a relative path of them (:func:`segment_path`): no empty, ``.`` or
    ``..`` component, so a key can never name something outside the stream."""
    parts = name.split("/")
    if len(name) > MAX_NAME_LENGTH or any(p in ("", ".", "..") for p in parts):
        raise IntegrityListError(f"invalid file name {name[:80]!r} in integrity list")


def _check_digest(digest: str, name: str) -> None:
    if not _DIGEST_RE.fullmatch(digest):
        raise IntegrityListError(f"{name!r}: digest {digest[:80]!r} is not 64 lowercase hex digits")


def _check_range(byte_range: ByteRange, name: str) -> None:
    start, end = byte_range
    if not 0 <= start <= end:
        raise IntegrityListError(f"{name!r}: invalid byte range {start}-{end}")


def _parse_range(key: str, name: str) -> ByteRange:
    m = _RANGE_RE.fullmatch(key)
    if m is None:
        raise IntegrityListError(f"{name!r}: byte range {key[:80]!r} is not <start>-<end>")
    byte_range = (int(m.group(1)), int(m.group(2)))
    _check_range(byte_range, name)
    return byte_range
