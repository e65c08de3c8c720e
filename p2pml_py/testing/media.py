"""What the test origin serves, without HTTP: renditions, segment bytes and the live clock.

One :class:`Rendition` describes a media playlist of either kind of test stream:

* **synthetic** (:class:`~p2pml_py.testing.origin.SyntheticOrigin`): the rendition's parameters;
  its segments are computed by :func:`segment_bytes` and :func:`init_bytes`, so a test can check
  a downloaded segment without storing anything;
* **recorded** (:class:`~p2pml_py.testing.stream.TestStream`, e.g. made by ffmpeg): the media
  playlist on disk and its segment files (:class:`Segment`, with their SHA-256).

Peers compare SHA-256 digests of what they exchanged with these bytes, so the byte functions
must never change: every test, benchmark and the demo rely on them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LiveClock", "Rendition", "Segment", "init_bytes", "segment_bytes"]

_TS_SYNC_BYTE = 0x47


def segment_bytes(rendition: str, sequence: int, size: int) -> bytes:
    """The bytes of segment ``sequence`` of ``rendition`` (``size`` bytes).

    ``SHAKE-256("p2pml-py segment|<rendition>|<sequence>")`` truncated to ``size``, so a shorter
    segment is a prefix of a longer one, with the first byte forced to 0x47 (the MPEG-TS sync
    byte): no segment starts with the ``cstr``/``dstr`` prefixes the browsers' data channel uses
    for text.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    data = bytearray(
        hashlib.shake_256(f"p2pml-py segment|{rendition}|{sequence}".encode()).digest(size)
    )
    data[0] = _TS_SYNC_BYTE
    return bytes(data)


def init_bytes(rendition: str, size: int = 1024) -> bytes:
    """The bytes of the init segment (``EXT-X-MAP``) of ``rendition``: ``SHAKE-256("p2pml-py
    init|<rendition>")``, first byte 0x00."""
    data = bytearray(hashlib.shake_256(f"p2pml-py init|{rendition}".encode()).digest(size))
    data[0] = 0
    return bytes(data)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment file of a recorded rendition (``index``: 0-based position = VOD id)."""

    index: int
    path: str  # relative to the stream's root directory
    duration: float
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Rendition:
    """One media playlist: a video variant or (``kind="audio"``) an audio rendition.

    ``name`` is the rendition's directory in the origin's URLs (``<name>/index.m3u8``).

    Synthetic renditions: ``segment_size`` overrides the origin's default; ``byte_range`` serves
    all segments from one file with ``EXT-X-BYTERANGE``; ``init_segment`` adds an ``EXT-X-MAP``
    (``init.mp4``). Recorded renditions (:meth:`TestStream.load
    <p2pml_py.testing.stream.TestStream.load>`) carry their media playlist's path, its target
    duration and its segment files instead.
    """

    name: str
    bandwidth: int = 800_000
    width: int | None = None
    height: int | None = None
    kind: Literal["video", "audio"] = "video"
    segment_size: int | None = None
    byte_range: bool = False
    init_segment: bool = False
    playlist_uri: str | None = None
    target_duration: int = 0
    segments: tuple[Segment, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name in {"redirect", "master.m3u8"}:
            raise ValueError(f"invalid rendition name {self.name!r}")
        if self.segment_size is not None and self.segment_size < 1:
            raise ValueError(f"segment_size must be >= 1, got {self.segment_size}")


@dataclass(slots=True)
class LiveClock:
    """Which segments of a live stream are out: ``window`` of them, from ``first_sequence``, at
    ``started``; one more every ``segment_duration`` seconds, plus ``skipped`` (published ahead
    of the clock). Move ``started`` back to jump ahead in time."""

    first_sequence: int
    window: int
    segment_duration: float
    started: float
    skipped: int = 0

    def newest(self, now: float) -> int:
        """Media sequence of the newest published segment at ``now``."""
        elapsed = max(0, math.floor((now - self.started) / self.segment_duration))
        return self.first_sequence + self.window - 1 + elapsed + self.skipped

    def window_at(self, now: float) -> tuple[int, int]:
        """``(first, last)`` media sequences in the playlist at ``now`` (inclusive)."""
        last = self.newest(now)
        return last - self.window + 1, last
