"""Which renditions a peer joins: ``--rendition`` / ``renditions`` selectors, resolved against a
manifest's streams.

A *rendition number* is a stream's position in :attr:`MasterPlaylist.streams` (video levels in
playlist order, then audio tracks): what ``p2pml-py swarm-id`` prints. Pages do not know it:
hls.js numbers its levels after filtering and sorting them (lowest resolution first, see
:attr:`~p2pml_py.hls.playlist.Stream.hlsjs_levels`), so a page pinned to "level 0" plays the
lowest rendition, which need not be the first one listed. Hence selectors that speak the page's
language as well as the playlist's:

=================  ==========================================================================
``3``              rendition number 3
``lowest``         the stream of hls.js level 0 (``highest``: of the last hls.js level)
``level:2``        the stream of hls.js level 2
``640x360``        video levels of that RESOLUTION; ``360p``: of that height
``800k``           video levels whose BANDWIDTH is 800 kbit/s, to the precision written:
                   ``800k`` is 799500-800500 bit/s, ``2.5M`` 2.45-2.55 Mbit/s, ``836521bps``
                   exact (``swarm-id`` labels show kbit/s rounded, so they can be typed back)
``all``            every stream with a playlist of its own (seeders only)
=================  ==========================================================================

A selector names a set: a seeder joins every stream each of its selectors matches, a viewer
needs exactly one. Parsing (:func:`parse_selector`) needs no manifest, so configurations are
checked at load; resolving (:func:`select_renditions`, :func:`select_rendition`) happens when
the manifest is loaded and fails with the renditions the manifest does have.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from p2pml_py.base.errors import LocalProtocolError
from p2pml_py.hls.playlist import Stream

__all__ = [
    "SELECTOR_HELP",
    "RenditionSelector",
    "describe_rendition",
    "describe_renditions",
    "parse_selector",
    "select_rendition",
    "select_renditions",
]

SelectorKind = Literal[
    "all", "number", "lowest", "highest", "level", "resolution", "height", "bandwidth"
]
#: One line for help texts and error messages.
SELECTOR_HELP = (
    "a rendition number as listed by 'p2pml-py swarm-id', lowest, highest, level:N (hls.js "
    "level N), a resolution (640x360), a height (360p) or a bandwidth (800k, 2.5M, 836521bps)"
)

_NUMBER_RE = re.compile(r"^\d+$")
_LEVEL_RE = re.compile(r"^level[:=](\d+)$", re.IGNORECASE)
_RESOLUTION_RE = re.compile(r"^(\d+)[xX](\d+)$")
_HEIGHT_RE = re.compile(r"^(\d+)p$", re.IGNORECASE)
_BANDWIDTH_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmM]?)(?:bps|b/s|bit/s)?$")
_UNITS = {"": 1, "k": 1000, "m": 1_000_000}
#: Longer selectors are typing mistakes; keeps error messages short.
_MAX_SELECTOR_CHARS = 64


@dataclass(frozen=True, slots=True)
class RenditionSelector:
    """A parsed selector; ``text`` is its canonical spelling (what configurations store)."""

    kind: SelectorKind
    text: str
    number: int = 0  # rendition number / hls.js level / height
    width: int = 0
    bandwidth: float = 0.0
    tolerance: float = 0.0  # bandwidth: +- half a unit of the last digit written

    def matches(self, streams: Sequence[Stream]) -> list[int]:
        """Rendition numbers of the streams this selector names (any, with or without a
        playlist of their own), in playlist order."""
        numbered = list(enumerate(streams))
        main = [(i, s) for i, s in numbered if s.type == "main"]
        if self.kind == "all":
            return [i for i, s in numbered if s.has_playlist]
        if self.kind == "number":
            return [self.number] if self.number < len(streams) else []
        if self.kind == "level":
            return [i for i, s in main if self.number in s.hlsjs_levels]
        if self.kind in ("lowest", "highest"):
            return _extreme(main, highest=self.kind == "highest")
        if self.kind == "resolution":
            return [i for i, s in main if (s.width, s.height) == (self.width, self.number)]
        if self.kind == "height":
            return [i for i, s in main if s.height == self.number]
        return [
            i
            for i, s in main
            if s.bitrate is not None and abs(s.bitrate - self.bandwidth) <= self.tolerance
        ]


def _extreme(main: list[tuple[int, Stream]], *, highest: bool) -> list[int]:
    """The stream of hls.js's first or last level; by bitrate when hls.js keeps no level."""
    leveled = [(min(s.hlsjs_levels), max(s.hlsjs_levels), i) for i, s in main if s.hlsjs_levels]
    if leveled:
        if highest:
            return [max(leveled, key=lambda t: t[1])[2]]
        return [min(leveled, key=lambda t: t[0])[2]]
    playable = [(s.bitrate or 0, i) for i, s in main if s.has_playlist]
    if not playable:
        return []
    pick = max(playable, key=lambda t: t[0]) if highest else min(playable, key=lambda t: t[0])
    return [pick[1]]


def parse_selector(spec: int | str | RenditionSelector) -> RenditionSelector:
    """Parse one selector; :class:`ValueError` says what was expected."""
    if isinstance(spec, RenditionSelector):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ValueError(f"expected {SELECTOR_HELP}, got {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"a rendition number is >= 0, got {spec}")
        return RenditionSelector("number", str(spec), number=spec)
    text = spec.strip()
    lower = text.lower()
    if len(text) > _MAX_SELECTOR_CHARS:
        raise ValueError(f"expected {SELECTOR_HELP}, got {text[:_MAX_SELECTOR_CHARS]!r}...")
    if lower in ("all", "lowest", "highest"):
        kind: SelectorKind = lower  # type: ignore[assignment]
        return RenditionSelector(kind, lower)
    if _NUMBER_RE.match(text):
        return RenditionSelector("number", str(int(text)), number=int(text))
    if m := _LEVEL_RE.match(text):
        return RenditionSelector("level", f"level:{int(m.group(1))}", number=int(m.group(1)))
    if m := _RESOLUTION_RE.match(text):
        width, height = int(m.group(1)), int(m.group(2))
        return RenditionSelector("resolution", f"{width}x{height}", number=height, width=width)
    if m := _HEIGHT_RE.match(text):
        return RenditionSelector("height", f"{int(m.group(1))}p", number=int(m.group(1)))
    m = _BANDWIDTH_RE.match(text)
    if m is not None and (m.group(2) or text[m.end(2) :]):
        # A unit (k, M) or a "bps" suffix: a bare number is a rendition number.
        try:
            value = Decimal(m.group(1))
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"expected {SELECTOR_HELP}, got {text!r}") from None
        unit = _UNITS[m.group(2).lower()]
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        step = Decimal(10) ** exponent * unit  # one unit of the last digit written
        bandwidth = value * unit
        if bandwidth <= 0:
            raise ValueError(f"a bandwidth is > 0, got {text!r}")
        suffix = {"": "bps", "k": "k", "m": "M"}[m.group(2).lower()]
        return RenditionSelector(
            "bandwidth",
            f"{m.group(1)}{suffix}",
            bandwidth=float(bandwidth),
            tolerance=float(step / 2) if step > 1 else 0.0,
        )
    raise ValueError(f"expected {SELECTOR_HELP}, got {text!r}")


def describe_rendition(streams: Sequence[Stream], number: int) -> str:
    """``1: 640x360 800 kbps, hls.js level 0`` -- how errors and logs name a rendition."""
    stream = streams[number]
    text = f"{number}: {stream.label}"
    if stream.type == "secondary":
        text += ", audio track"
    elif stream.hlsjs_levels:
        levels = ", ".join(str(n) for n in stream.hlsjs_levels)
        text += f", hls.js level{'s' if len(stream.hlsjs_levels) > 1 else ''} {levels}"
    else:
        text += ", not an hls.js level"
    if not stream.has_playlist:
        text += ", no playlist of its own"
    return text


def describe_renditions(streams: Sequence[Stream]) -> str:
    return "; ".join(describe_rendition(streams, i) for i in range(len(streams)))


def _resolve(streams: Sequence[Stream], selector: RenditionSelector) -> list[int]:
    found = selector.matches(streams)
    if not found:
        raise LocalProtocolError(
            f"rendition {selector.text!r} matches nothing in this manifest; its renditions: "
            f"{describe_renditions(streams)}"
        )
    playable = [i for i in found if streams[i].has_playlist]
    if not playable:
        raise LocalProtocolError(
            f"rendition {selector.text!r} is carried inside another stream (no playlist of its "
            f"own): {describe_rendition(streams, found[0])}"
        )
    return playable


def select_renditions(
    streams: Sequence[Stream],
    selectors: Sequence[int | str | RenditionSelector] | None,
) -> list[Stream]:
    """What a seeder joins: every stream with a playlist for ``None`` (or ``all``), else the
    streams any selector matches, in the order first selected, each once."""
    parsed = [parse_selector(s) for s in selectors or ()]
    if not parsed or any(s.kind == "all" for s in parsed):
        return [s for s in streams if s.has_playlist]
    chosen: dict[int, None] = {}
    for selector in parsed:
        chosen.update(dict.fromkeys(_resolve(streams, selector)))
    return [streams[i] for i in chosen]


def select_rendition(
    streams: Sequence[Stream], selector: int | str | RenditionSelector | None
) -> int:
    """The rendition number a viewer plays: the first video level with a playlist for ``None``
    (where hls.js starts too, unless the page sets ``startLevel``), else the one stream the
    selector matches."""
    if selector is None:
        for i, stream in enumerate(streams):
            if stream.type == "main" and stream.has_playlist:
                return i
        raise LocalProtocolError("the manifest has no playable main stream")
    parsed = parse_selector(selector)
    if parsed.kind == "all":
        raise LocalProtocolError("a viewer plays one rendition, not 'all'")
    found = _resolve(streams, parsed)
    if len(found) > 1:
        listed = "; ".join(describe_rendition(streams, i) for i in found)
        raise LocalProtocolError(
            f"rendition {parsed.text!r} matches {len(found)} renditions ({listed}): "
            "give one by number"
        )
    return found[0]
