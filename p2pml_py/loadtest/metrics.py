"""What a load test reports about its virtual viewers, sans-I/O (no Locust, no asyncio).

The viewer host (:mod:`p2pml_py.loadtest.host`) sends each viewer's running totals
(:class:`ViewerCounters`) every report interval; :class:`SessionMetrics` turns successive totals
into Locust request events (:class:`Metric`), each segment, stall and error counted exactly once
however the reports are spaced. The rows a run ends with:

========== ========= ==============================================================
type       name      one event per ...
========== ========= ==============================================================
viewer     startup   viewer session: response time = start-up (first frame), ms;
                     a failure when the viewer could not start (the reason)
viewer     stall     stall (always a failure: the playhead ran out of buffer)
viewer     session   session end: response time = how long it watched, ms; size =
                     bytes it uploaded to other peers
segment    http      segment from the origin: size = its bytes (failures: origin errors)
segment    p2p       segment from a peer: size = its bytes
========== ========= ==============================================================

Segment rows carry counts and bytes only: their response time is not measured (0). The P2P
share is ``p2p bytes / (http + p2p bytes)`` of the segment rows, which Locust sums across
workers; :class:`LoadSummary` is that line, printed by the master at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["LoadSummary", "Metric", "SessionMetrics", "ViewerCounters"]


@dataclass(frozen=True, slots=True)
class ViewerCounters:
    """One viewer's totals since it started (what ``watch --json`` reports at exit, so far)."""

    http_bytes: int = 0
    p2p_bytes: int = 0
    http_segments: int = 0
    p2p_segments: int = 0
    origin_errors: int = 0
    stalls: int = 0
    #: Seconds from start to the first frame; ``None`` until playback started.
    startup_time: float | None = None
    uploaded_bytes: int = 0
    peers: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ViewerCounters:
        """Parse a report; ``ValueError`` names the field that is missing or not a count."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = raw.get(f.name)
            if f.name == "startup_time":
                if value is not None and not _is_seconds(value):
                    raise ValueError(f"startup_time: seconds or null, got {value!r}")
                values[f.name] = None if value is None else float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name}: a count >= 0, got {value!r}")
            else:
                values[f.name] = value
        return cls(**values)


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


@dataclass(frozen=True, slots=True)
class Metric:
    """One Locust request event (``environment.events.request.fire``)."""

    request_type: str
    name: str
    #: Milliseconds.
    response_time: float
    length: int = 0
    #: The failure's reason; ``None`` for a success.
    error: str | None = None


class SessionMetrics:
    """One viewer session's reports -> Locust events, each counted once.

    Totals only grow within a session; a report whose totals went down (a host bug) raises
    ``ValueError`` rather than counting something twice or negatively.
    """

    def __init__(self) -> None:
        self._last = ViewerCounters()
        self._started = False
        self._ended = False

    @property
    def started(self) -> bool:
        """Playback started (the ``startup`` event was sent)."""
        return self._started

    @property
    def ended(self) -> bool:
        return self._ended

    def update(self, counters: ViewerCounters) -> list[Metric]:
        """Events for what happened since the previous report."""
        if self._ended:
            return []
        last, self._last = self._last, counters
        out: list[Metric] = []
        if counters.startup_time is not None and not self._started:
            self._started = True
            out.append(Metric("viewer", "startup", counters.startup_time * 1000))
        out += _segments(
            "http", last.http_segments, counters.http_segments, last.http_bytes, counters.http_bytes
        )
        out += _segments(
            "p2p", last.p2p_segments, counters.p2p_segments, last.p2p_bytes, counters.p2p_bytes
        )
        errors = _grown("origin_errors", last.origin_errors, counters.origin_errors)
        out += [Metric("segment", "http", 0, error="origin error") for _ in range(errors)]
        stalls = _grown("stalls", last.stalls, counters.stalls)
        out += [Metric("viewer", "stall", 0, error="stall") for _ in range(stalls)]
        return out

    def end(
        self,
        counters: ViewerCounters | None,
        duration: float,
        *,
        stopped: bool = False,
        error: str | None = None,
    ) -> list[Metric]:
        """The session's last events: its final totals, then ``session`` -- or a failed
        ``startup`` when it never played: because of ``error``, or because its watch time (or
        the VOD) ran out first. A session ``stopped`` by Locust before its first frame (the run
        ended) is no failure."""
        if self._ended:
            return []
        out = [] if counters is None else self.update(counters)
        self._ended = True
        if not self._started and (error is not None or not stopped):
            reason = error or "no playback before the session ended"
            out.append(Metric("viewer", "startup", duration * 1000, error=reason))
            return out
        uploaded = self._last.uploaded_bytes
        out.append(Metric("viewer", "session", duration * 1000, length=uploaded, error=error))
        return out


def _grown(name: str, before: int, now: int) -> int:
    if now < before:
        raise ValueError(f"{name} went down from {before} to {now}")
    return now - before


def _segments(source: str, count0: int, count: int, size0: int, size: int) -> list[Metric]:
    """One event per new segment; the new bytes are spread over them (a viewer adds a segment
    and its bytes in one step, so the sizes add up to exactly the new bytes)."""
    new_count = _grown(f"{source}_segments", count0, count)
    new_bytes = _grown(f"{source}_bytes", size0, size)
    if new_count == 0:
        if new_bytes:
            raise ValueError(f"{source}_bytes grew by {new_bytes} without a new segment")
        return []
    each, extra = divmod(new_bytes, new_count)
    return [
        Metric("segment", source, 0, length=each + (1 if i < extra else 0))
        for i in range(new_count)
    ]


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """The run in one line, from Locust's (summed) rows."""

    viewers: int
    failed_starts: int
    startup_median_ms: float | None
    stalls: int
    http_segments: int
    http_bytes: int
    p2p_segments: int
    p2p_bytes: int
    origin_errors: int
    sessions: int
    uploaded_bytes: int

    @property
    def p2p_share(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return self.p2p_bytes / total if total else 0.0

    def format(self) -> str:
        startup = (
            "-" if self.startup_median_ms is None else f"{self.startup_median_ms / 1000:.2f} s"
        )
        return (
            f"p2pml: viewers {self.viewers} ({self.failed_starts} failed to start), "
            f"start-up median {startup}, stalls {self.stalls}, "
            f"HTTP {self.http_segments} segments {self.http_bytes / 1e6:.2f} MB "
            f"({self.origin_errors} origin errors), "
            f"P2P {self.p2p_segments} segments {self.p2p_bytes / 1e6:.2f} MB, "
            f"P2P share {self.p2p_share:.1%}, "
            f"uploaded {self.uploaded_bytes / 1e6:.2f} MB in {self.sessions} ended sessions"
        )
