"""Per-stream aggregates of viewers' reports and the bounded table of live viewers (sans-I/O:
time is an argument).

Reports carry cumulative counters (:mod:`p2pml_py.apps.collector.report`); what a stream adds up
is the difference to the viewer's previous report, so each byte counts once however many reports
are lost or late. That needs the previous report of every live viewer: a table of at most
``max_viewers`` entries, least recently heard first out, and a viewer silent for ``viewer_ttl``
seconds leaves it (and stops counting as live). A viewer the table no longer holds is re-learnt
from its next report, which then only sets the baseline: its bytes since it was dropped are not
counted, rather than counted twice.

How much one report may add is what a real viewer's link delivers in the time it covers: at most
``max_viewer_mbit`` over the report's own elapsed time plus :data:`BURST_SECONDS`, and that
elapsed time may not run ahead of the server's clock by more than :data:`CLOCK_SLACK`. So a
made-up viewer adds at most ``max_viewer_mbit`` per second of real time, like a real one, and a
first report (which has no previous one) covers at most :data:`FIRST_REPORT_MS`.

No address is stored here: viewers are keyed by their random id and stream.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.collector.report import MAX_STALLS_PER_S, Reason, Rejected, Report

__all__ = [
    "BURST_SECONDS",
    "CLOCK_SLACK",
    "FIRST_REPORT_MS",
    "STARTUP_BUCKETS",
    "StreamStats",
    "ViewerStats",
]

#: Start-up time histogram buckets, seconds (upper bounds; the last bucket is +Inf).
STARTUP_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
#: Bytes a report may carry beyond rate x elapsed: chunks are counted when they complete, so one
#: may have started before the previous report (a second of the top rate covers any chunk).
BURST_SECONDS: Final = 1.0
#: How far a report's elapsed time may run ahead of the server's time since the viewer's previous
#: report: the previous report may have spent that long in transit (a slow uplink, a retried
#: connection) while this one arrived at once.
CLOCK_SLACK: Final = 30.0
#: A first report covers at most 10 minutes: the module sends its first after ``intervalMs``
#: (at most 60 s), and a hidden tab's timers still fire once a minute.
FIRST_REPORT_MS: Final = 600_000
#: Chart history: points kept, seconds between points, streams per point (the page's colours).
HISTORY: Final = 600
SAMPLE_INTERVAL: Final = 2.0
CHART_STREAMS: Final = 10


@dataclass(slots=True)
class StreamStats:
    """What the viewers of one stream reported, added up."""

    key: str
    #: Viewers heard within ``viewer_ttl`` (in the live table now).
    viewers: int = 0
    #: Peer connections the live viewers have open, together.
    peers: int = 0
    #: Viewers whose first report arrived (``seq`` 1).
    started: int = 0
    http: int = 0
    p2p: int = 0
    up: int = 0
    stalls: int = 0
    reports: int = 0
    #: Start-up times: per bucket of :data:`STARTUP_BUCKETS` (+Inf last), sum (s) and count.
    startup_buckets: list[int] = field(default_factory=lambda: [0] * (len(STARTUP_BUCKETS) + 1))
    startup_sum: float = 0.0
    startup_count: int = 0
    #: Server time of the last report taken.
    last: float = 0.0

    @property
    def p2p_share(self) -> float | None:
        """P2P bytes / all downloaded bytes; ``None`` before any byte."""
        total = self.http + self.p2p
        return self.p2p / total if total else None

    def observe_startup(self, milliseconds: int) -> None:
        seconds = milliseconds / 1000
        self.startup_buckets[bisect.bisect_left(STARTUP_BUCKETS, seconds)] += 1
        self.startup_sum += seconds
        self.startup_count += 1

    def to_json(self) -> dict[str, Any]:
        share = self.p2p_share
        cumulative = 0
        buckets: dict[str, int] = {}
        for bound, count in zip((*STARTUP_BUCKETS, "+Inf"), self.startup_buckets, strict=True):
            cumulative += count
            buckets[str(bound)] = cumulative
        return {
            "stream": self.key,
            "viewers": self.viewers,
            "peers": self.peers,
            "started": self.started,
            "http_bytes": self.http,
            "p2p_bytes": self.p2p,
            "uploaded_bytes": self.up,
            "p2p_share": None if share is None else round(share, 6),
            "stalls": self.stalls,
            "reports": self.reports,
            "startup": {
                "count": self.startup_count,
                "mean": round(self.startup_sum / self.startup_count, 3)
                if self.startup_count
                else None,
                "buckets": buckets,
            },
        }


@dataclass(slots=True)
class _Viewer:
    stream: StreamStats
    seq: int
    t: int
    http: int
    p2p: int
    up: int
    stalls: int
    peers: int
    startup: int | None
    seen: float


class ViewerStats:
    """The aggregates; :meth:`add` takes a checked report for a stream key, at server time
    ``now`` (monotonic seconds), or raises :class:`Rejected` and changes nothing."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self._viewers: OrderedDict[tuple[str, str], _Viewer] = OrderedDict()
        self._streams: OrderedDict[str, StreamStats] = OrderedDict()
        #: Viewers dropped from a full table before their time, and streams from a full one.
        self.viewers_evicted = 0
        self.streams_evicted = 0
        self.history: list[dict[str, Any]] = []
        self._last_sample: float | None = None
        self._sampled: dict[str, tuple[int, int]] = {}

    # -- sizes (bounded by the config) ---------------------------------------------------------

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def streams(self) -> list[StreamStats]:
        """Every stream's aggregates, by key."""
        return [self._streams[k] for k in sorted(self._streams)]

    def stream(self, key: str) -> StreamStats | None:
        return self._streams.get(key)

    # -- taking reports ------------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Drop the viewers not heard from for ``viewer_ttl`` seconds (oldest first)."""
        horizon = now - self.config.viewer_ttl
        while self._viewers:
            key, viewer = next(iter(self._viewers.items()))
            if viewer.seen >= horizon:
                break
            del self._viewers[key]
            self._left(viewer)

    def _left(self, viewer: _Viewer) -> None:
        viewer.stream.viewers -= 1
        viewer.stream.peers -= viewer.peers

    def add(self, report: Report, key: str, now: float) -> None:
        """Take ``report`` for stream ``key``; :class:`Rejected` when it is stale, goes back,
        adds more than a real link delivers, or finds no room for a new stream."""
        self.expire(now)
        entry = self._viewers.get((key, report.viewer))
        if entry is None:
            counted = self._check_first(report)
        else:
            counted = self._check_next(entry, report, now)
        stream = self._stream_for(key, now)  # the last check: may evict or refuse
        if entry is None:
            entry = _Viewer(stream, 0, 0, 0, 0, 0, 0, 0, None, now)
            if not counted:  # re-learnt: this report is the baseline
                entry.http, entry.p2p, entry.up = report.http, report.p2p, report.up
                entry.stalls, entry.startup = report.stalls, report.startup
            else:
                stream.started += 1
            self._viewers[(key, report.viewer)] = entry
            stream.viewers += 1
            if len(self._viewers) > self.config.max_viewers:
                _, oldest = self._viewers.popitem(last=False)
                self._left(oldest)
                self.viewers_evicted += 1
        else:
            self._viewers.move_to_end((key, report.viewer))
        stream.http += report.http - entry.http
        stream.p2p += report.p2p - entry.p2p
        stream.up += report.up - entry.up
        stream.stalls += report.stalls - entry.stalls
        if entry.startup is None and report.startup is not None:
            stream.observe_startup(report.startup)
        stream.peers += report.peers - entry.peers
        stream.reports += 1
        stream.last = now
        self._streams.move_to_end(key)
        entry.seq, entry.t, entry.seen = report.seq, report.t, now
        entry.http, entry.p2p, entry.up = report.http, report.p2p, report.up
        entry.stalls, entry.startup, entry.peers = report.stalls, report.startup, report.peers

    def _check_first(self, report: Report) -> bool:
        """True: count the report from zero (``seq`` 1); False: only learn it (a viewer the
        table dropped, or whose first report was lost)."""
        if report.seq != 1:
            return False
        if report.t > FIRST_REPORT_MS:
            raise Rejected(
                Reason.IMPLAUSIBLE,
                f"t: a first report covers at most {FIRST_REPORT_MS} ms",
                "t",
            )
        self._check_amounts(report.t / 1000, report.downloaded, report.up, report.stalls)
        return True

    def _check_next(self, entry: _Viewer, report: Report, now: float) -> bool:
        if report.seq <= entry.seq:
            raise Rejected(Reason.STALE, f"seq: {report.seq} follows {entry.seq} already", "seq")
        for name in ("t", "http", "p2p", "up", "stalls"):
            if getattr(report, name) < getattr(entry, name):
                raise Rejected(Reason.NON_MONOTONIC, f"{name}: went down", name)
        if entry.startup is not None and report.startup != entry.startup:
            raise Rejected(Reason.NON_MONOTONIC, "startup: changed", "startup")
        elapsed = (report.t - entry.t) / 1000
        if elapsed > now - entry.seen + CLOCK_SLACK:
            raise Rejected(
                Reason.IMPLAUSIBLE, "t: more time passed than since the previous report", "t"
            )
        self._check_amounts(
            elapsed,
            report.downloaded - (entry.http + entry.p2p),
            report.up - entry.up,
            report.stalls - entry.stalls,
        )
        return True

    def _check_amounts(self, seconds: float, downloaded: int, uploaded: int, stalls: int) -> None:
        most = self.config.max_viewer_rate * (seconds + BURST_SECONDS)
        if downloaded > most:
            raise Rejected(Reason.IMPLAUSIBLE, "http + p2p: more than a real link delivers", "p2p")
        if uploaded > most:
            raise Rejected(Reason.IMPLAUSIBLE, "up: more than a real link delivers", "up")
        if stalls > MAX_STALLS_PER_S * seconds + 1:
            raise Rejected(Reason.IMPLAUSIBLE, "stalls: more than a player reports", "stalls")

    def _stream_for(self, key: str, now: float) -> StreamStats:
        stream = self._streams.get(key)
        if stream is not None:
            return stream
        if len(self._streams) >= self.config.max_streams:
            # The least recently reported stream without live viewers makes room.
            idle = next((k for k, s in self._streams.items() if s.viewers <= 0), None)
            if idle is None:
                raise Rejected(
                    Reason.TOO_MANY_STREAMS,
                    f"stream: {self.config.max_streams} streams have live viewers already",
                    "stream",
                )
            del self._streams[idle]
            self._sampled.pop(idle, None)
            self.streams_evicted += 1
        stream = StreamStats(key, last=now)
        self._streams[key] = stream
        return stream

    # -- reading -------------------------------------------------------------------------------

    def sample(self, now: float, wall: float) -> None:
        """Add a chart point (live viewers and P2P share since the previous point, for the
        :data:`CHART_STREAMS` streams with the most viewers) when :data:`SAMPLE_INTERVAL` has
        passed; called whenever the status is read, so an unwatched page costs nothing."""
        self.expire(now)
        if self._last_sample is not None and now - self._last_sample < SAMPLE_INTERVAL:
            return
        self._last_sample = now
        top = sorted(self._streams.values(), key=lambda s: (-s.viewers, s.key))[:CHART_STREAMS]
        viewers: dict[str, int] = {}
        share: dict[str, float | None] = {}
        for stream in top:
            http0, p2p0 = self._sampled.get(stream.key, (stream.http, stream.p2p))
            dh, dp = stream.http - http0, stream.p2p - p2p0
            viewers[stream.key] = stream.viewers
            share[stream.key] = round(dp / (dh + dp), 4) if dh + dp > 0 else None
        self._sampled = {s.key: (s.http, s.p2p) for s in self._streams.values()}
        self.history.append({"t": round(wall, 3), "viewers": viewers, "p2p_share": share})
        del self.history[:-HISTORY]

    def totals(self) -> dict[str, Any]:
        streams = self._streams.values()
        http, p2p = sum(s.http for s in streams), sum(s.p2p for s in streams)
        return {
            "streams": len(self._streams),
            "viewers": len(self._viewers),
            "http_bytes": http,
            "p2p_bytes": p2p,
            "uploaded_bytes": sum(s.up for s in streams),
            "p2p_share": round(p2p / (http + p2p), 6) if http + p2p else None,
            "stalls": sum(s.stalls for s in streams),
            "reports": sum(s.reports for s in streams),
        }
