"""The collector's settings: the super-peer's ``[collector]`` table and ``p2pml-py collector``'s
options fill the same :class:`CollectorConfig` (defaults and bounds in one place)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CollectorConfig", "normalize_origin"]

#: ``scheme://host[:port]``, what a browser sends as ``Origin`` (RFC 6454 serialization).
_ORIGIN_RE: Final = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)

StreamPolicy = Literal["configured", "any"]


def normalize_origin(value: str) -> str:
    """``"*"`` or a page origin like ``https://www.example.org`` (lower case, no trailing slash);
    ``ValueError`` with the reason otherwise."""
    text = value.strip()
    if text == "*":
        return text
    text = text.removesuffix("/")
    if not _ORIGIN_RE.fullmatch(text):
        raise ValueError(
            f'{value!r} is not an origin: "*" or scheme://host[:port] such as '
            "https://www.example.org (no path)"
        )
    return text.lower()


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """What the collector takes and how much it keeps.

    Every limit bounds memory or what one client can make the numbers say; see
    :mod:`p2pml_py.apps.collector.aggregate` for why each default is what a real viewer needs.
    """

    #: Page origins allowed to post (``Origin`` header, CORS); ``"*"``: any. Empty: only pages
    #: served from the collector's own origin (and clients that send no ``Origin``: not
    #: browsers, which always send it with a cross-origin POST).
    cors_origins: tuple[str, ...] = ()
    #: In the super-peer: ``"configured"`` takes reports for its streams only (matched by
    #: manifest URL or name); ``"any"`` takes any stream id, up to ``max_streams``.
    streams: StreamPolicy = "configured"
    #: Live viewers kept at once (about 0.5 kB each); beyond it the least recently heard goes.
    max_viewers: int = 10_000
    #: Streams with aggregates at once; a new one replaces the least recently reported stream
    #: that has no live viewer, or is refused.
    max_streams: int = 100
    #: Seconds without a report after which a viewer no longer counts as live. Pages report every
    #: 5 s; a hidden tab's timers may fire only once a minute (Chromium's intensive throttling).
    viewer_ttl: float = 150.0
    #: The fastest link a viewer may have, Mbit/s, downloads (HTTP + P2P) and uploads each.
    max_viewer_mbit: float = 1000.0
    #: Reports per second and burst per client address. A page reports every 5 s; an address
    #: may hide a household, an office or a carrier-grade NAT.
    client_rate: float = 5.0
    client_burst: float = 50.0
    #: Client addresses whose rate-limit buckets are kept (least recently seen first out).
    max_clients: int = 10_000
    #: Take the client address from the last ``X-Forwarded-For`` hop (behind a reverse proxy
    #: that sets it), not from the connection.
    forwarded_for: bool = False
    #: Super-peer only: also serve ``/pingback`` and ``pingback.js`` on this ``(host, port)``
    #: alone, so the status server (``/metrics``, ``/status``) can stay private.
    listen: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        for name in ("max_viewers", "max_streams", "max_clients"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("viewer_ttl", "max_viewer_mbit", "client_rate", "client_burst"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name}: must be a finite number > 0, got {value}")
        if self.streams not in ("configured", "any"):
            raise ValueError(f'streams: must be "configured" or "any", got {self.streams!r}')
        for origin in self.cors_origins:
            if normalize_origin(origin) != origin:
                raise ValueError(f"cors_origins: {origin!r} is not normalized")

    @property
    def max_viewer_rate(self) -> float:
        """:attr:`max_viewer_mbit` in bytes per second."""
        return self.max_viewer_mbit * 1e6 / 8
