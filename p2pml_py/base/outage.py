"""Outage reporting for a source (an origin playlist, a tracker), sans-I/O with time passed in.

One line when the source goes down, a summary every ``summary_every`` seconds while it stays
down (failures so far, the last error), and one line when it recovers with the outage's length.
The driver logs the texts :class:`Outage` returns; the counters are what metrics read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Outage"]


@dataclass(slots=True)
class Outage:
    #: What is down, as the log lines name it ("origin playlist https://...", "tracker wss://...").
    source: str
    #: Seconds between summary lines while down.
    summary_every: float = 60.0
    down_since: float | None = None
    #: Failures in the current outage.
    failures: int = 0
    last_error: str = ""
    #: Outages that ended, and how long they lasted in total.
    outages: int = 0
    down_seconds: float = 0.0
    _next_summary: float = field(default=0.0, repr=False)

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, now: float, error: object) -> str | None:
        """A failure at ``now``: the line to log (the first of an outage, or a periodic
        summary), else None."""
        self.last_error = str(error)
        self.failures += 1
        if self.down_since is None:
            self.down_since = now
            self._next_summary = now + self.summary_every
            return f"{self.source} is down: {self.last_error}"
        if now >= self._next_summary:
            self._next_summary = now + self.summary_every
            return (
                f"{self.source} still down after {now - self.down_since:.0f} s "
                f"({self.failures} failures; last: {self.last_error})"
            )
        return None

    def succeeded(self, now: float) -> str | None:
        """A success at ``now``: the recovery line when an outage just ended, else None."""
        if self.down_since is None:
            return None
        length = max(0.0, now - self.down_since)
        line = f"{self.source} is back after {length:.1f} s ({self.failures} failures)"
        self.outages += 1
        self.down_seconds += length
        self.down_since = None
        self.failures = 0
        return line

    def current_length(self, now: float) -> float:
        return 0.0 if self.down_since is None else max(0.0, now - self.down_since)
