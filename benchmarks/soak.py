"""The soak run (issue 17): a super-peer under an hour of churn, faults and tracker restarts.

Everything is real and on 127.0.0.1: the super-peer
(:class:`~p2pml_py.testing.processes.SuperPeerProcess`, two worker processes, two live
channels of the ffmpeg-made MPEG-TS test stream), our tracker (``p2pml-py tracker`` in its own
process, SIGKILLed and started again on the same port twice), an origin
(:class:`~p2pml_py.testing.origin.StreamOrigin`, in this process) and ``p2pml-py watch`` viewers
playing in real time:

* **stayers** (``--stayers`` per stream, on alternating renditions) play from the start to the
  end and must never stall;
* **churners** (at most ``--viewers`` at a time, a new one every few seconds on a random stream
  and rendition) either leave cleanly after a random 20-120 s (``--duration``) or are SIGKILLed
  (no ``stopped`` announce, no closed data channel: a browser tab that crashed).

Viewers use ``--high-demand-window 4 --live-sync-segments 6`` (as ``tests/superpeer`` does): with
the browsers' defaults (15 s window, 3 segments behind the edge) a live viewer loads every segment
over HTTP and the super-peer would upload nothing to check.

**Faults.** The super-peer fetches from the origin at ``/live/<channel>/...``; there
``origin.faults`` injects ``--truncate-rate`` truncated bodies (200, half the bytes, a matching
``Content-Length``) and ``--fail-rate`` 500s, plus a 20 s window every 10 minutes in which every
segment is truncated. The viewers fetch the same channels through ``/viewers/live/<channel>/...``
(the same live clock, no faults) and join the super-peer's swarms through ``swarm_id``: faults
aimed at the viewers would only measure how a viewer copes with a bad origin, and a viewer that
stored a bad body would hide the super-peer's own record. So any wrong byte a viewer receives
from a peer started at the super-peer -- which must reject truncated bodies, refetch them, and
never store or upload them.

**Integrity, on the receiving side.** Each viewer runs the real ``watch`` command inside
``python -m benchmarks soak viewer RECORD ...``, which first wraps
:meth:`PeerSession.download <p2pml_py.engine.session.PeerSession.download>` to append one line
per segment received from a peer to ``RECORD`` (segment id, sending peer, length, SHA-256;
line-buffered, so a SIGKILLed viewer's record is complete up to its death). Every line is
checked against the SHA-256 the origin serves for that segment
(:meth:`StreamOrigin.segment_sha256`); a clean exit's ``--json`` summary (its held segments'
digests, ``p2p_failures``) is checked too.

**Sampling**, every ``--interval`` s (10) into ``soak-<timestamp>.jsonl``: for the super-peer's
parent, each worker (pids from ``/status``) and the tracker, from ``/proc/<pid>/status`` the RSS
(``VmRSS``), the heap (``RssAnon``: anonymous resident memory -- the Python heap, malloc
arenas, thread stacks; the super-peer exposes no Python heap figure of its own) and the threads,
and the open files (entries of ``/proc/<pid>/fd``); plus viewers alive, the super-peer's upload,
origin and held bytes, origin errors by kind and any ``reject``/``invalid`` counter of
``/metrics``, and the origin's bytes and injected faults.

**Verdict** (``SOAK PASS`` or ``SOAK FAIL: <reasons>``, exit code 0 or 1):

* memory: the least-squares slope of the super-peer's total RSS (parent + workers) after the
  warm-up (the first 5 minutes; a quarter of a shorter run) below :attr:`Thresholds.rss_mb_per_hour`;
  open files below :attr:`Thresholds.fds_per_hour`. Slopes are judged only over at least
  :attr:`Thresholds.min_window_s` (10 minutes): over a 90 s window a few MB of warm-up read as
  a leak of hundreds of MB an hour. Shorter runs report them as "not judged";
* every stayer played to the end with 0 stalls;
* 0 corrupted bytes: every segment a viewer got from a peer has the origin's SHA-256, and no
  receiver dropped a peer for a segment that failed its validation;
* the super-peer is serving at the end (both streams ``serving``, connected to the tracker,
  uploads grew over the last quarter) and leaves with exit code 0 on SIGTERM; no worker restart;
* no error-level line (``error``, ``critical``, or a line that is not JSON: a traceback) in the
  super-peer's log, except those about an origin response (:data:`FAULT_PATTERNS`): a flaky
  origin is what this run injects, not a bug. Warnings (origin retries, tracker reconnects) are
  counted and listed, not judged;
* the run did what it says: both tracker restarts happened and the super-peer reconnected after
  each one, faults were injected, and at least one segment from a peer was checked.

Results: ``--out`` (``bench-results/``): the samples ``soak-<timestamp>.jsonl``, the summary
``soak-latest.{json,md}`` (and a timestamped copy), the chart ``soak-latest.svg`` and
``soak-latest.png`` (the SVG drawn by headless Chromium through Playwright; without Chromium only
the SVG is written, and the summary says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import hashlib
import html
import itertools
import json
import math
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from p2pml_py.testing.origin import OriginFaults, StreamOrigin
from p2pml_py.testing.processes import SuperPeerProcess
from p2pml_py.testing.stream import TestStream

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000  # as the other benchmarks: "MB" is 10^6 bytes
HOUR = 3600.0
#: The warm-up excluded from the slopes: 5 minutes, or a quarter of a shorter run.
WARMUP_S = 300.0
#: Length of each window in which every segment the super-peer fetches is truncated ...
TRUNCATE_WINDOW_S = 20.0
#: ... and one window per this many seconds of the run.
TRUNCATE_EVERY_S = 600.0
#: The tracker stays down this long at each restart.
TRACKER_DOWN_S = 2.0
#: How long the super-peer may take to be connected to the tracker again after a restart (its
#: reconnect back-off is capped at 30 s; two attempts and a stats report fit).
RECONNECT_LIMIT_S = 90.0
#: Channel names of the two live streams (``origin.live_url(name)``).
CHANNELS = ("a", "b")
#: Where the viewers reach the origin without faults (see the module doc).
VIEWER_PREFIX = "/viewers"
#: Viewer settings that make a live viewer load from peers at all (see the module doc).
VIEWER_ARGS = ("--high-demand-window", "4", "--live-sync-segments", "6")
#: Error-level super-peer lines that are about an origin response, i.e. caused by the faults.
FAULT_PATTERNS = (
    re.compile(r"^origin\b", re.IGNORECASE),
    re.compile(r"\b(truncat\w*|segment (is )?invalid|validation failed|rejected)\b", re.I),
)
#: Stderr kept of a viewer that failed (bytes from its end).
STDERR_TAIL = 2000


# ------------------------------------------------------------------------------------- pure parts


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """What the verdict accepts (see the module doc)."""

    #: Super-peer RSS (parent + workers) growth after the warm-up. A real leak of one segment
    #: (~100 KB) per minute is 6 MB/h; 20 MB/h leaves room for allocator noise over one hour.
    rss_mb_per_hour: float = 20.0
    #: Open-file growth: one leaked socket a minute is 60/h.
    fds_per_hour: float = 60.0
    #: Slopes are judged only over a post-warm-up window at least this long.
    min_window_s: float = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """When things happen, in seconds from the start of the soak."""

    duration: float
    warmup: float
    tracker_restarts: tuple[float, ...]
    truncate_windows: tuple[tuple[float, float], ...]


def make_schedule(duration: float) -> Schedule:
    """Tracker restarts at a third and two thirds of the run; a truncate window in the middle of
    every ``TRUNCATE_EVERY_S`` (at 5, 15, ... 55 minutes of an hour, clear of the restarts at 20
    and 40)."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    windows = max(1, round(duration / TRUNCATE_EVERY_S))
    length = min(TRUNCATE_WINDOW_S, duration / 6)
    starts = [duration * (k + 0.5) / windows for k in range(windows)]
    return Schedule(
        duration=duration,
        warmup=min(WARMUP_S, duration / 4),
        tracker_restarts=(duration / 3, 2 * duration / 3),
        truncate_windows=tuple((round(s, 3), round(s + length, 3)) for s in starts),
    )


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(t, value)`` points, per unit of ``t``; ``None`` below 3 points
    or when every ``t`` is the same."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def _per_hour(value: float | None) -> float | None:
    return None if value is None else round(value * HOUR, 3)


def process_roles(samples: Iterable[Mapping[str, Any]]) -> list[str]:
    """Process roles sampled, in chart order: ``superpeer``, ``worker<N>``..., ``tracker``."""
    roles: set[str] = set()
    for sample in samples:
        roles.update(sample.get("procs", {}))
    workers = sorted(r for r in roles if r.startswith("worker"))
    return [r for r in ("superpeer", *workers, "tracker") if r in roles]


def _series(
    samples: Sequence[Mapping[str, Any]], role: str, key: str, scale: float = 1.0
) -> list[tuple[float, float, int]]:
    """``(t, value / scale, pid)`` of ``role`` wherever it was sampled."""
    out = []
    for sample in samples:
        proc = sample.get("procs", {}).get(role)
        if proc is not None and proc.get(key) is not None:
            out.append((float(sample["t"]), proc[key] / scale, int(proc["pid"])))
    return out


def _total_series(
    samples: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0
) -> list[tuple[float, float]]:
    """The super-peer's parent + workers, at the samples where every one of them was read."""
    roles = [r for r in process_roles(samples) if r != "tracker"]
    out = []
    for sample in samples:
        procs = sample.get("procs", {})
        if roles and all(procs.get(r, {}).get(key) is not None for r in roles):
            out.append((float(sample["t"]), sum(procs[r][key] for r in roles) / scale))
    return out


def memory_report(samples: Sequence[Mapping[str, Any]], warmup: float) -> dict[str, Any]:
    """Per process and for the super-peer in total: first/last/max values and the slopes after
    ``warmup`` (RSS and heap in MB/hour, open files and threads per hour).

    A process whose pid changed (a restarted worker, the restarted tracker) is measured over its
    last incarnation after the warm-up: a restart resets its memory, which is no slope.
    """
    kib = MB / 1024  # /proc reports KiB
    end = max((float(s["t"]) for s in samples), default=0.0)
    report: dict[str, Any] = {"warmup_s": warmup, "window_s": round(max(0.0, end - warmup), 1)}
    processes: dict[str, Any] = {}
    for role in process_roles(samples):
        rss = _series(samples, role, "rss_kb", kib)
        if not rss:
            continue
        pids = list(dict.fromkeys(pid for _, _, pid in rss))
        last_pid = pids[-1]

        def after(
            key: str, scale: float = 1.0, pid: int = last_pid, role: str = role
        ) -> list[tuple[float, float]]:
            return [(t, v) for t, v, p in _series(samples, role, key, scale) if p == pid]

        def judged(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
            return [(t, v) for t, v in points if t >= warmup]

        fds = after("fds")
        processes[role] = {
            "pids": pids,
            "rss_mb": _summary(after("rss_kb", kib)),
            "rss_mb_per_hour": _per_hour(slope(judged(after("rss_kb", kib)))),
            "heap_mb_per_hour": _per_hour(slope(judged(after("anon_kb", kib)))),
            "fds": _summary(fds),
            "fds_per_hour": _per_hour(slope(judged(fds))),
            "threads": _summary(after("threads")),
            "threads_per_hour": _per_hour(slope(judged(after("threads")))),
        }
    report["processes"] = processes
    total_rss = _total_series(samples, "rss_kb", kib)
    total_fds = _total_series(samples, "fds")
    report["superpeer_total"] = {
        "rss_mb": _summary(total_rss),
        "rss_mb_per_hour": _per_hour(slope([p for p in total_rss if p[0] >= warmup])),
        "heap_mb_per_hour": _per_hour(
            slope([p for p in _total_series(samples, "anon_kb", kib) if p[0] >= warmup])
        ),
        "fds": _summary(total_fds),
        "fds_per_hour": _per_hour(slope([p for p in total_fds if p[0] >= warmup])),
    }
    return report


def _summary(points: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    if not points:
        return None
    values = [v for _, v in points]
    return {
        "first": round(values[0], 2),
        "last": round(values[-1], 2),
        "max": round(max(values), 2),
    }


@dataclasses.dataclass(slots=True)
class Integrity:
    """What viewers received from peers, checked against the origin's SHA-256."""

    checked_segments: int = 0
    checked_bytes: int = 0
    corrupted_segments: int = 0
    corrupted_bytes: int = 0
    #: Received from a peer but not a segment the origin knows (should stay 0).
    unknown_segments: int = 0
    #: Resumed (``byte_from`` > 0) downloads: a partial body, not hashable against the origin.
    partial_segments: int = 0
    #: A receiver's validator refused the segment and dropped the peer that sent it.
    rejected_by_receivers: int = 0
    #: Bytes received from the super-peer's peer ids, and from other viewers.
    from_superpeer_bytes: int = 0
    from_viewers_bytes: int = 0
    #: Held segments in clean-exit summaries, and those whose digest was wrong.
    held_checked: int = 0
    held_corrupted: int = 0
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, other: Integrity) -> None:
        for field in dataclasses.fields(self):
            if field.name == "examples":
                self.examples.extend(other.examples[: 5 - len(self.examples)])
            else:
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Expected = Callable[[str, str], str | None]


def check_records(
    lines: Iterable[str], expected: Expected, superpeer_ids: set[str]
) -> tuple[Integrity, str | None]:
    """Check a viewer's record (see :func:`install_recorder`): every received segment against
    ``expected(playlist_url, segment_id)``. Returns the counts and the viewer's playlist URL.
    A line that does not parse (the last one of a killed viewer) is skipped."""
    out = Integrity()
    playlist: str | None = None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if "stream" in record:
            playlist = str(record["stream"])
            continue
        if "rejected" in record:
            out.rejected_by_receivers += 1
            _example(out, {"kind": "rejected_by_receiver", **record})
            continue
        size = int(record.get("bytes", 0))
        if record.get("peer") in superpeer_ids:
            out.from_superpeer_bytes += size
        else:
            out.from_viewers_bytes += size
        if int(record.get("from", 0)) != 0:
            out.partial_segments += 1
            continue
        want = None if playlist is None else expected(playlist, str(record.get("sid")))
        if want is None:
            out.unknown_segments += 1
            _example(out, {"kind": "unknown", "playlist": playlist, **record})
            continue
        out.checked_segments += 1
        out.checked_bytes += size
        if record.get("sha256") != want:
            out.corrupted_segments += 1
            out.corrupted_bytes += size
            _example(out, {"kind": "corrupted", "playlist": playlist, "want": want, **record})
    return out, playlist


def check_summary(summary: Mapping[str, Any], expected: Expected) -> Integrity:
    """A clean exit's ``--json`` summary: its held segments' digests, and its P2P downloads that
    failed validation (the record has those too; the larger count is kept)."""
    out = Integrity()
    for playlist, digests in summary.get("segments", {}).items():
        for sid, digest in digests.items():
            want = expected(playlist, str(sid))
            if want is None:
                continue  # not a segment of this origin's live channels (none expected)
            out.held_checked += 1
            if digest != want:
                out.held_corrupted += 1
                _example(out, {"kind": "held_corrupted", "playlist": playlist, "sid": sid})
    failures = summary.get("p2p_failures", {})
    out.rejected_by_receivers = sum(v for k, v in failures.items() if "validation" in k)
    return out


def _example(out: Integrity, item: dict[str, Any]) -> None:
    if len(out.examples) < 5:
        out.examples.append(item)


def is_fault_error(record: Mapping[str, Any]) -> bool:
    """An error-level super-peer line about an origin response (see :data:`FAULT_PATTERNS`)."""
    if record.get("level") == "raw":
        return False  # a traceback is never an expected consequence of a fault
    text = str(record.get("msg", ""))
    return any(p.search(text) for p in FAULT_PATTERNS)


def verdict(result: Mapping[str, Any], thresholds: Thresholds) -> list[str]:
    """The reasons the run failed (empty: it passed). ``result`` is :meth:`Soak.result`'s."""
    reasons: list[str] = []
    memory = result["memory"]
    total = memory["superpeer_total"]
    if memory["window_s"] >= thresholds.min_window_s:
        rss = total["rss_mb_per_hour"]
        fds = total["fds_per_hour"]
        if rss is None or rss >= thresholds.rss_mb_per_hour:
            reasons.append(
                f"super-peer RSS slope {rss} MB/h >= {thresholds.rss_mb_per_hour:g} MB/h"
            )
        if fds is None or fds >= thresholds.fds_per_hour:
            reasons.append(f"super-peer open-file slope {fds}/h >= {thresholds.fds_per_hour:g}/h")
    viewers = result["viewers"]
    if viewers["stayer_stalls"]:
        reasons.append(f"{viewers['stayer_stalls']} stalls of viewers that stayed")
    if viewers["stayers_incomplete"]:
        reasons.append(f"{viewers['stayers_incomplete']} stayers did not play to the end")
    integrity = result["integrity"]
    if integrity["corrupted_bytes"] or integrity["corrupted_segments"]:
        reasons.append(
            f"{integrity['corrupted_bytes']} corrupted bytes "
            f"({integrity['corrupted_segments']} segments) received from peers"
        )
    if integrity["held_corrupted"]:
        reasons.append(f"{integrity['held_corrupted']} corrupted held segments")
    if integrity["rejected_by_receivers"]:
        reasons.append(
            f"{integrity['rejected_by_receivers']} segments from peers failed the receiver's "
            "validation"
        )
    if integrity["unknown_segments"]:
        reasons.append(f"{integrity['unknown_segments']} segments from peers the origin never had")
    if integrity["checked_segments"] == 0:
        reasons.append("no segment from a peer was checked (nothing was uploaded?)")
    superpeer = result["superpeer"]
    if not superpeer["serving_at_end"]:
        reasons.append(f"super-peer not serving at the end: {superpeer['end_problem']}")
    if superpeer["exit_code"] != 0:
        reasons.append(f"super-peer exit code {superpeer['exit_code']} on SIGTERM")
    if superpeer["worker_restarts"]:
        reasons.append(f"{superpeer['worker_restarts']} worker restarts")
    if superpeer["unexpected_errors"]:
        reasons.append(f"{superpeer['unexpected_errors']} error-level super-peer log lines")
    tracker = result["tracker"]
    if tracker["restarts_done"] != tracker["restarts_planned"]:
        reasons.append(
            f"{tracker['restarts_done']}/{tracker['restarts_planned']} tracker restarts done"
        )
    late = [r for r in tracker["superpeer_reconnect_s"] if r is None or r > RECONNECT_LIMIT_S]
    if late:
        reasons.append(f"super-peer not reconnected within {RECONNECT_LIMIT_S:g} s of a restart")
    if not sum(result["origin"]["faults_injected"].values()):
        reasons.append("no origin fault was injected")
    if result.get("harness_error"):
        reasons.append(f"harness error: {result['harness_error']}")
    return reasons


def verdict_line(reasons: Sequence[str]) -> str:
    return "SOAK PASS" if not reasons else "SOAK FAIL: " + "; ".join(reasons)


# ------------------------------------------------------------------------------------- the chart

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2", "#17becf")
_TRACKER_COLOR = "#9467bd"  # red marks the tracker restarts
_CHART_W = 1000
_PANEL_H = 210
_LEFT, _RIGHT, _TOP, _GAP = 70, 190, 56, 46


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 and round steps up to at least ``high`` (1, 2, 2.5 or 5 times a power of ten)."""
    if not high > 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.3g}"


def render_svg(
    samples: Sequence[Mapping[str, Any]],
    schedule: Schedule,
    *,
    title: str,
    restarts_at: Sequence[float] = (),
) -> str:
    """RSS (MB), open files and threads over time (minutes) for every sampled process, the
    super-peer's total in black; the warm-up, truncate windows and tracker restarts marked."""
    kib = MB / 1024
    roles = process_roles(samples)
    colors = {role: _COLORS[i % len(_COLORS)] for i, role in enumerate(roles)}
    colors["tracker"] = _TRACKER_COLOR
    panels: list[tuple[str, str, float, bool]] = [
        ("RSS (MB)", "rss_kb", kib, True),
        ("open files", "fds", 1.0, True),
        ("threads", "threads", 1.0, False),
    ]
    t_max = max([schedule.duration, *(float(s["t"]) for s in samples)]) / 60
    x_ticks = nice_ticks(t_max, 10)
    plot_w = _CHART_W - _LEFT - _RIGHT
    height = _TOP + len(panels) * (_PANEL_H + _GAP) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_W}" height="{height}" '
        f'viewBox="0 0 {_CHART_W} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_CHART_W}" height="{height}" fill="white"/>',
        f'<text x="{_LEFT}" y="24" font-size="16" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{_LEFT}" y="42" fill="#555">minutes since the start; shaded: warm-up (grey) '
        "and truncate windows (orange); red lines: tracker restarts</text>",
    ]

    def x_of(minutes: float) -> float:
        return _LEFT + plot_w * minutes / x_ticks[-1]

    for index, (label, key, scale, with_total) in enumerate(panels):
        top = _TOP + index * (_PANEL_H + _GAP) + 10
        # (label, colour, (minutes, value, pid) points, dashed)
        lines: list[tuple[str, str, list[tuple[float, float, int]], bool]] = []
        for role in roles:
            points = [(t / 60, v, pid) for t, v, pid in _series(samples, role, key, scale)]
            lines.append((role, colors[role], points, role == "tracker"))
        if with_total and len(roles) > 1:
            total = [(t / 60, v, 0) for t, v in _total_series(samples, key, scale)]
            lines.append(("super-peer total", "#000000", total, False))
        values = [value for line in lines for _, value, _ in line[2]]
        y_ticks = nice_ticks(max(values or [1.0]) * 1.05)

        def y_of(value: float, top: float = top, y_ticks: list[float] = y_ticks) -> float:
            return top + _PANEL_H - _PANEL_H * value / y_ticks[-1]

        bottom = top + _PANEL_H
        out.append(
            f'<rect x="{x_of(0):.1f}" y="{top}" width="{x_of(schedule.warmup / 60) - _LEFT:.1f}" '
            f'height="{_PANEL_H}" fill="#eeeeee"/>'
        )
        for start, end in schedule.truncate_windows:
            out.append(
                f'<rect x="{x_of(start / 60):.1f}" y="{top}" '
                f'width="{max(1.0, x_of(end / 60) - x_of(start / 60)):.1f}" '
                f'height="{_PANEL_H}" fill="#ffd8a8"/>'
            )
        for value in y_ticks:
            y = y_of(value)
            out.append(
                f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#dddddd"/>'
            )
            out.append(
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>'
            )
        for value in x_ticks:
            x = x_of(value)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#000"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{_fmt(value)}</text>'
            )
        for at in restarts_at:
            x = x_of(at / 60)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#d62728" '
                'stroke-dasharray="4 3"/>'
            )
        out.append(
            f'<rect x="{_LEFT}" y="{top}" width="{plot_w}" height="{_PANEL_H}" fill="none" '
            'stroke="#000"/>'
        )
        out.append(
            f'<text x="{_LEFT}" y="{top - 6}" font-weight="bold">{html.escape(label)}</text>'
        )
        for number, (name, color, points, dashed) in enumerate(lines):
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            for run in _runs(points, gap=_gap(samples) / 60):
                if len(run) == 1:
                    x, y = x_of(run[0][0]), y_of(run[0][1])
                    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}"/>')
                    continue
                coords = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in run)
                out.append(
                    f'<polyline points="{coords}" fill="none" stroke="{color}" '
                    f'stroke-width="1.6"{dash}/>'
                )
            ly = top + 14 + number * 18
            lx = _LEFT + plot_w + 12
            out.append(
                f'<line x1="{lx}" x2="{lx + 22}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" '
                f'stroke-width="2"{dash}/>'
            )
            out.append(f'<text x="{lx + 28}" y="{ly}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _gap(samples: Sequence[Mapping[str, Any]]) -> float:
    """A gap between samples longer than 2.5 of their median spacing breaks a line."""
    times = sorted(float(s["t"]) for s in samples)
    steps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    return 2.5 * steps[len(steps) // 2] if steps else math.inf


def _runs(
    points: Sequence[tuple[float, float, int]], gap: float
) -> list[list[tuple[float, float]]]:
    """Points split where a process was not sampled for a while or its pid changed (a restart
    is not a line from the old process to the new one)."""
    runs: list[list[tuple[float, float]]] = []
    last: tuple[float, float, int] | None = None
    for point in points:
        if last is not None and point[0] - last[0] <= gap and point[2] == last[2]:
            runs[-1].append(point[:2])
        else:
            runs.append([point[:2]])
        last = point
    return runs


def svg_size(svg: str) -> tuple[int, int]:
    match = re.search(r'<svg[^>]*width="(\d+)"[^>]*height="(\d+)"', svg)
    if match is None:
        raise ValueError("not an SVG written by render_svg")
    return int(match.group(1)), int(match.group(2))


async def svg_to_png(svg: str, png: Path) -> str | None:
    """Draw ``svg`` with headless Chromium (Playwright, the harness's flags) into ``png``.
    Returns ``None``, or why there is no PNG."""
    executable = os.environ.get("P2PML_CHROMIUM", "/usr/bin/chromium")
    if not os.access(executable, os.X_OK):
        return f"no Chromium at {executable}"
    try:
        from playwright.async_api import async_playwright

        from p2pml_py.harness.browser import CHROMIUM_FLAGS
    except ImportError as exc:
        return f"Playwright unavailable: {exc}"
    width, height = svg_size(svg)
    try:
        async with asyncio.timeout(60), async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS)
            )
            try:
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.set_content(
                    f'<!doctype html><body style="margin:0">{svg}</body>', wait_until="load"
                )
                await page.screenshot(
                    path=str(png), clip={"x": 0, "y": 0, "width": width, "height": height}
                )
            finally:
                await browser.close()
    except Exception as exc:  # Chromium failing to start is a missing chart, not a failed soak
        return f"Chromium could not draw the chart: {exc!r}"[:500]
    return None


# ------------------------------------------------------------------------------ the viewer process


def install_recorder(path: Path) -> TextIO:
    """In a viewer process: record every segment received from a peer (see the module doc).

    Wraps ``PeerSession.download`` (every P2P download ends there) and ``StreamSwarms.start``
    (to name the playlist and the viewer's own peer ids first). Returns the open record file.
    """
    from p2pml_py.engine.session import DownloadError, PeerSession
    from p2pml_py.engine.streams import StreamSwarms

    sink = path.open("a", encoding="utf-8", buffering=1)  # line-buffered: a kill loses no line

    def write(record: dict[str, Any]) -> None:
        sink.write(json.dumps(record, separators=(",", ":")) + "\n")

    download = PeerSession.download

    async def recording_download(
        self: PeerSession, segment_id: int, *, byte_from: int = 0, total_size: int | None = None
    ) -> bytes:
        try:
            data = await download(self, segment_id, byte_from=byte_from, total_size=total_size)
        except DownloadError as exc:
            if "validation" in exc.reason:
                write({"sid": segment_id, "peer": self.remote_peer_id, "rejected": exc.reason})
            raise
        write(
            {
                "sid": segment_id,
                "peer": self.remote_peer_id,
                "from": byte_from,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        return data

    start = StreamSwarms.start

    async def recording_start(self: StreamSwarms) -> None:
        write({"stream": self.stream.url, "peer_ids": [s.peer_id for s in self.swarms]})
        await start(self)

    PeerSession.download = recording_download  # type: ignore[method-assign]
    StreamSwarms.start = recording_start  # type: ignore[method-assign]
    return sink


def viewer_main(argv: Sequence[str]) -> int:
    """``python -m benchmarks soak viewer RECORD URL [watch options]``: ``p2pml-py watch`` with
    the recorder installed."""
    if len(argv) < 2:
        print("usage: python -m benchmarks soak viewer RECORD URL [watch options]", file=sys.stderr)
        return 2
    from p2pml_py.apps.cli import main as cli_main

    sink = install_recorder(Path(argv[0]))
    try:
        return cli_main(["--log-format", "json", "watch", *argv[1:]])
    finally:
        sink.close()


# ------------------------------------------------------------------------------------- the parts

_FOR_VIEWERS: contextvars.ContextVar[bool] = contextvars.ContextVar("soak_viewers", default=False)


class SoakOrigin(StreamOrigin):
    """The stream origin with faults for the super-peer only (see the module doc).

    ``/viewers/<path>`` serves ``/<path>`` (same channels, same live clocks) with no faults:
    while such a request is answered, :attr:`faults` reads as an empty :class:`OriginFaults`
    (a context variable, so concurrent requests of the super-peer still get theirs).
    """

    def __init__(self, stream: TestStream, **kwargs: Any) -> None:
        self._faults = OriginFaults()
        self._no_faults = OriginFaults()
        super().__init__(stream, **kwargs)
        #: Segment body bytes by audience: ``superpeer`` and ``viewers``.
        self.segment_bytes_to: Counter[str] = Counter()

    @property
    def faults(self) -> OriginFaults:
        return self._no_faults if _FOR_VIEWERS.get() else self._faults

    @faults.setter
    def faults(self, value: OriginFaults) -> None:
        self._faults = value

    def viewer_url(self, channel: str) -> str:
        return self.base_url + VIEWER_PREFIX + self.channel_prefix(True, channel) + "master.m3u8"

    def expected(self, playlist_url: str, segment_id: str) -> str | None:
        """The origin's SHA-256 of a segment of a viewer's (``/viewers/...``) or the
        super-peer's playlist."""
        base = self.base_url + VIEWER_PREFIX + "/"
        if playlist_url.startswith(base):
            playlist_url = self.base_url + "/" + playlist_url[len(base) :]
        return self.segment_sha256(playlist_url, segment_id)

    async def _respond(self, request: web.Request, path: str) -> web.StreamResponse:
        audience, token = "superpeer", None
        if path.startswith(VIEWER_PREFIX + "/"):
            path = path[len(VIEWER_PREFIX) :]
            audience, token = "viewers", _FOR_VIEWERS.set(True)
        try:
            response = await super()._respond(request, path)
        finally:
            if token is not None:
                _FOR_VIEWERS.reset(token)
        body = getattr(response, "body", None)
        if not path.endswith(".m3u8") and response.status in (200, 206) and body is not None:
            self.segment_bytes_to[audience] += len(body)
        return response


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TrackerProcess:
    """``python -m p2pml_py tracker --port PORT``, restartable on the same port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.returncode is not None else self.proc.pid

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "p2pml_py",
                "tracker",
                "--port",
                str(self.port),
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        self.starts += 1
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the tracker exited with {self.proc.returncode}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()


@dataclasses.dataclass(slots=True)
class ViewerRun:
    """One ``watch`` process and what it reported."""

    number: int
    kind: str  # stayer, leaver or killed
    channel: str
    rendition: int
    joined: float  # soak time
    lifetime: float  # seconds until it leaves (--duration) or is killed
    workdir: Path
    proc: asyncio.subprocess.Process | None = None
    left: float | None = None
    result: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def record(self) -> Path:
        return self.workdir / f"viewer-{self.number}.record"

    @property
    def stdout(self) -> Path:
        return self.workdir / f"viewer-{self.number}.out"

    @property
    def stderr(self) -> Path:
        return self.workdir / f"viewer-{self.number}.err"


def read_proc(pid: int | None) -> dict[str, int] | None:
    """RSS, heap (RssAnon) and threads from ``/proc/<pid>/status``, open files from
    ``/proc/<pid>/fd``; ``None`` if the process is gone."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def number(key: str) -> int:
        return int(fields.get(key, "0").split()[0] or 0)

    return {
        "pid": pid,
        "rss_kb": number("VmRSS"),
        "anon_kb": number("RssAnon"),
        "threads": number("Threads"),
        "fds": fds,
    }


def metric_counters(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """From ``/metrics``: origin errors by kind, and every sample of a metric whose name says
    ``reject``, ``invalid`` or ``validation`` (the segment validation's counters, by name and
    labels), each summed over streams."""
    from prometheus_client.parser import text_string_to_metric_families

    errors: dict[str, float] = {}
    rejected: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        name = family.name.removeprefix("p2pml_superpeer_").removesuffix("_total")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if name == "origin_errors":
                kind = sample.labels.get("kind", "?")
                errors[kind] = errors.get(kind, 0.0) + sample.value
            elif re.search(r"reject|invalid|validation", name):
                labels = ",".join(
                    f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "stream"
                )
                key = f"{name}{{{labels}}}" if labels else name
                rejected[key] = rejected.get(key, 0.0) + sample.value
    return errors, rejected


# ------------------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    minutes: float
    churners: int
    stayers: int
    out: Path
    seed: int
    interval: float
    truncate_rate: float
    fail_rate: float
    workers: int
    png: bool
    thresholds: Thresholds = Thresholds()


class Soak:
    """One run (see the module doc): ``await Soak(options, stream, workdir).run()`` returns the
    result; ``workdir`` holds the viewers' and the tracker's files meanwhile."""

    def __init__(self, options: Options, stream: TestStream, workdir: Path) -> None:
        self.options = options
        self.stream = stream
        self.workdir = workdir
        self.duration = options.minutes * 60
        self.schedule = make_schedule(self.duration)
        self.rng = random.Random(options.seed)
        self.stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.samples_path = options.out / f"soak-{self.stamp}.jsonl"
        self.samples: list[dict[str, Any]] = []
        self.origin = SoakOrigin(stream, live_window=10)
        self.origin.faults = OriginFaults(
            truncate_rate=0.0, fail_rate=0.0, seed=options.seed
        )  # rates on once the streams serve
        self.tracker = TrackerProcess(free_port(), workdir / "tracker.log")
        self.sp: SuperPeerProcess | None = None
        self.t0 = 0.0
        self.running: dict[int, ViewerRun] = {}
        self.finished: list[ViewerRun] = []
        self.superpeer_ids: set[str] = set()
        self.restarts_at: list[float] = []
        self.reconnect_s: list[float | None] = []
        self.windows_done: list[tuple[float, float]] = []
        self.last_status: dict[str, Any] | None = None
        self.harness_error: str | None = None
        self._numbers = 0
        self._reapers: set[asyncio.Task[None]] = set()
        self._sink: TextIO | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """The whole run; a failure of the harness itself (a part that would not start) ends it
        early and is reported in the result (``harness_error``), never raised."""
        self.options.out.mkdir(parents=True, exist_ok=True)
        end: dict[str, Any] = {}
        try:
            async with self.origin:
                try:
                    await self._run(end)
                finally:
                    await self._kill_viewers()
                    await self.tracker.stop()
        except Exception as exc:
            self.harness_error = self.harness_error or f"{type(exc).__name__}: {exc}"[:500]
        return self.result(end)

    async def _run(self, end: dict[str, Any]) -> None:
        await self.tracker.start()
        self.sp = SuperPeerProcess(self._write_config(), start_timeout=90.0)
        async with self.sp, aiohttp.ClientSession() as http:
            for channel in CHANNELS:
                await self.sp.wait_log(_serving(channel), 90)
            self._start_clock()
            try:
                await self._soak(http)
            except Exception as exc:  # still check and stop the super-peer, then report
                self.harness_error = f"{type(exc).__name__}: {exc}"[:500]
            end.update(await self._end_check(http))
            await self._stop_viewers()
            end["exit_code"] = await self.sp.terminate(60)

    def _start_clock(self) -> None:
        self.t0 = time.monotonic()
        faults = self.origin.faults
        faults.truncate_rate = self.options.truncate_rate
        faults.fail_rate = self.options.fail_rate

    def _write_config(self) -> Path:
        lines = [
            "[superpeer]",
            f"workers = {self.options.workers}",
            'listen = "127.0.0.1:0"',
            "stats_interval = 1.0",
            "[defaults]",
            f'trackers = ["{self.tracker.url}"]',
            'ice_addresses = ["127.0.0.1"]',
            "store_mb = 64",
        ]
        for channel in CHANNELS:
            lines += [
                "[[stream]]",
                f'name = "{channel}"',
                f'url = "{self.origin.live_url(channel)}"',
                f'swarm_id = "soak-{channel}"',
            ]
        path = self.workdir / "superpeer.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def _soak(self, http: aiohttp.ClientSession) -> None:
        for index in range(self.options.stayers):
            for channel in CHANNELS:
                await self._spawn("stayer", channel, index % 2, self.duration + 120)
        tasks = [
            asyncio.create_task(self._sampler(http), name="soak-sampler"),
            asyncio.create_task(self._churn(), name="soak-churn"),
            asyncio.create_task(self._tracker_restarts(http), name="soak-tracker"),
            asyncio.create_task(self._truncate_windows(), name="soak-truncate"),
        ]
        try:
            done, _ = await asyncio.wait(
                tasks,
                timeout=max(0.0, self.duration - self.now()),
                return_when=asyncio.FIRST_EXCEPTION,
            )
            for task in done:
                failure = None if task.cancelled() else task.exception()
                if failure is not None:
                    raise failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._sample(http)  # the last point, at the end of the run

    # -- viewers ---------------------------------------------------------------------------------

    async def _spawn(self, kind: str, channel: str, rendition: int, lifetime: float) -> ViewerRun:
        self._numbers += 1
        run = ViewerRun(self._numbers, kind, channel, rendition, self.now(), lifetime, self.workdir)
        args = [
            sys.executable,
            "-m",
            "benchmarks",
            "soak",
            "viewer",
            str(run.record),
            self.origin.viewer_url(channel),
            "--tracker",
            self.tracker.url,
            "--ice-address",
            "127.0.0.1",
            "--swarm-id",
            f"soak-{channel}",
            "--rendition",
            str(rendition),
            "--json",
            "--no-status",
            *VIEWER_ARGS,
        ]
        if kind != "killed":
            args += ["--duration", f"{lifetime:.1f}"]
        with run.stdout.open("wb") as out, run.stderr.open("wb") as err:
            run.proc = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=err, cwd=ROOT)
        self.running[run.number] = run
        task = asyncio.create_task(self._reap(run), name=f"soak-viewer-{run.number}")
        self._reapers.add(task)
        task.add_done_callback(self._reaped)
        return run

    def _reaped(self, task: asyncio.Task[None]) -> None:
        self._reapers.discard(task)
        if not task.cancelled() and task.exception() is not None and not self.harness_error:
            self.harness_error = f"viewer bookkeeping failed: {task.exception()!r}"[:500]

    async def _reap(self, run: ViewerRun) -> None:
        assert run.proc is not None
        try:
            if run.kind == "killed":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(run.lifetime):
                        await run.proc.wait()
                if run.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        run.proc.kill()
            elif run.kind == "leaver":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(run.lifetime + 60):
                        await run.proc.wait()
                if run.proc.returncode is None:
                    run.result["hung"] = True
                    with contextlib.suppress(ProcessLookupError):
                        run.proc.kill()
            await run.proc.wait()
        finally:
            run.left = self.now()
            self._collect(run)
            self.running.pop(run.number, None)
            self.finished.append(run)

    def _collect(self, run: ViewerRun) -> None:
        """Check what the viewer reported and recorded, then delete its files."""
        assert run.proc is not None
        code = run.proc.returncode
        result = run.result
        result.update(
            number=run.number,
            kind=run.kind,
            channel=run.channel,
            rendition=run.rendition,
            joined=round(run.joined, 1),
            left=None if run.left is None else round(run.left, 1),
            exit=code,
        )
        try:
            lines = run.record.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        integrity, playlist = check_records(lines, self.origin.expected, self.superpeer_ids)
        result["playlist"] = playlist
        summary: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            parsed = json.loads(run.stdout.read_text(encoding="utf-8"))
            summary = parsed if isinstance(parsed, dict) else None
        if summary is not None:
            held = check_summary(summary, self.origin.expected)
            integrity.held_checked += held.held_checked
            integrity.held_corrupted += held.held_corrupted
            integrity.rejected_by_receivers = max(
                integrity.rejected_by_receivers, held.rejected_by_receivers
            )
            integrity.examples.extend(held.examples[: 5 - len(integrity.examples)])
            for key in ("stalls", "stall_time", "startup_time", "http_bytes", "p2p_bytes"):
                result[key] = summary.get(key)
            result["uploaded_bytes"] = summary.get("uploaded_bytes")
            result["p2p_failures"] = summary.get("p2p_failures")
        elif run.kind != "killed":
            with contextlib.suppress(OSError):
                result["stderr_tail"] = run.stderr.read_bytes()[-STDERR_TAIL:].decode(
                    errors="replace"
                )
        result["integrity"] = integrity.to_json()
        for path in (run.record, run.stdout, run.stderr):
            with contextlib.suppress(OSError):
                path.unlink()

    async def _churn(self) -> None:
        """A new churner every few seconds while fewer than ``--viewers`` run; 40 % of them are
        killed, the others leave by themselves."""
        longest = min(120.0, max(20.0, self.duration / 2))
        shortest = min(20.0, longest / 2)
        while self.now() < self.duration - shortest:
            await asyncio.sleep(self.rng.uniform(3.0, 8.0))
            churners = [r for r in self.running.values() if r.kind != "stayer"]
            if len(churners) >= self.options.churners:
                continue
            kind = "killed" if self.rng.random() < 0.4 else "leaver"
            lifetime = self.rng.uniform(shortest, longest)
            await self._spawn(kind, self.rng.choice(CHANNELS), self.rng.randrange(2), lifetime)

    async def _stop_viewers(self) -> None:
        """SIGTERM every viewer still running (stayers, churners of the last minutes): they
        leave cleanly and print their summaries."""
        for run in list(self.running.values()):
            if run.proc is not None and run.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    run.proc.terminate()
        if self._reapers:
            await asyncio.wait(list(self._reapers), timeout=60)

    async def _kill_viewers(self) -> None:
        for run in list(self.running.values()):
            if run.proc is not None and run.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    run.proc.kill()
        if self._reapers:
            await asyncio.wait(list(self._reapers), timeout=10)

    # -- faults ----------------------------------------------------------------------------------

    async def _tracker_restarts(self, http: aiohttp.ClientSession) -> None:
        for at in self.schedule.tracker_restarts:
            await asyncio.sleep(max(0.0, at - self.now()))
            lost_before = _tracker_losses(self.last_status or {})
            await self.tracker.kill()
            self.restarts_at.append(round(self.now(), 1))
            await asyncio.sleep(TRACKER_DOWN_S)
            for attempt in range(20):  # the port may take a moment to be free again
                try:
                    await self.tracker.start()
                    break
                except (RuntimeError, TimeoutError):
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
            self.reconnect_s.append(
                await self._reconnected(http, self.restarts_at[-1], lost_before)
            )

    async def _reconnected(
        self, http: aiohttp.ClientSession, since: float, lost_before: int
    ) -> float | None:
        """Seconds from the kill until every stream's tracker shows connected again in
        ``/status``, once the super-peer noticed the loss (a disconnected state, or its
        disconnect counters above ``lost_before``); after 20 s connected without such evidence
        the time is taken as it is (an upper bound). ``None``: not within the limit."""
        assert self.sp is not None
        saw_down = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RECONNECT_LIMIT_S + 30):
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with asyncio.timeout(5):
                            status = await self.sp.status(http)
                        saw_down = saw_down or not _trackers_up(status)
                        noticed = saw_down or _tracker_losses(status) > lost_before
                        if _trackers_up(status) and (noticed or self.now() - since > 20):
                            return round(self.now() - since, 1)
                    await asyncio.sleep(0.5)
        return None

    async def _truncate_windows(self) -> None:
        faults = self.origin.faults
        for start, end in self.schedule.truncate_windows:
            await asyncio.sleep(max(0.0, start - self.now()))
            faults.truncate = True
            try:
                await asyncio.sleep(max(0.0, end - self.now()))
            finally:
                faults.truncate = False
            self.windows_done.append((start, end))

    # -- sampling --------------------------------------------------------------------------------

    async def _sampler(self, http: aiohttp.ClientSession) -> None:
        with self.samples_path.open("w", encoding="utf-8") as sink:
            self._sink = sink
            try:
                while True:
                    await self._sample(http)
                    next_at = len(self.samples) * self.options.interval
                    await asyncio.sleep(max(0.0, next_at - self.now()))
            finally:
                self._sink = None

    async def _sample(self, http: aiohttp.ClientSession) -> None:
        assert self.sp is not None
        sample: dict[str, Any] = {"t": round(self.now(), 2)}
        status: dict[str, Any] | None = None
        errors: dict[str, float] = {}
        rejected: dict[str, float] = {}
        try:
            async with asyncio.timeout(5):
                status = await self.sp.status(http)
                async with http.get(self.sp.url + "/metrics") as response:
                    errors, rejected = metric_counters(await response.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            sample["status_error"] = repr(exc)[:200]
        procs: dict[str, Any] = {}
        if self.sp.proc is not None:
            procs["superpeer"] = read_proc(self.sp.proc.pid)
        if status is not None:
            self.last_status = status
            for worker in status["workers"]:
                procs[f"worker{worker['index']}"] = read_proc(worker.get("pid"))
            for stream in status["streams"]:
                for rendition in stream.get("renditions", []):
                    for swarm in rendition.get("swarms", []):
                        self.superpeer_ids.add(str(swarm["peer_id"]))
            totals = status["totals"]
            sample["superpeer"] = {
                "uploaded_bytes": totals["uploaded_bytes"],
                "origin_bytes": totals["origin_bytes"],
                "peers": totals["peers"],
                "held_bytes": sum(s["held_bytes"] for s in status["streams"]),
                "serving": sum(1 for s in status["streams"] if s["state"] == "serving"),
                "trackers_connected": sum(
                    1 for s in status["streams"] for t in s["trackers"].values() if t["connected"]
                ),
                "worker_restarts": sum(w["restarts"] for w in status["workers"]),
                "origin_errors": errors,
                "rejected": rejected,
            }
        procs["tracker"] = read_proc(self.tracker.pid)
        sample["procs"] = {k: v for k, v in procs.items() if v is not None}
        sample["viewers"] = {
            "alive": len(self.running),
            "stayers": sum(1 for r in self.running.values() if r.kind == "stayer"),
            "finished": len(self.finished),
        }
        sample["origin"] = {
            "to_superpeer": self.origin.segment_bytes_to["superpeer"],
            "to_viewers": self.origin.segment_bytes_to["viewers"],
            "faults": dict(self.origin.faults.counts),
            "truncating": self.origin.faults.truncate,
        }
        self.samples.append(sample)
        line = json.dumps(sample, separators=(",", ":")) + "\n"
        if self._sink is not None:
            self._sink.write(line)
            self._sink.flush()
        else:  # the final sample, after the sampler stopped
            with self.samples_path.open("a", encoding="utf-8") as tail:
                tail.write(line)

    async def _end_check(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """Is the super-peer still serving: both streams ``serving``, connected to the tracker,
        and did its uploads grow over the last quarter of the run?"""
        assert self.sp is not None
        problems: list[str] = []
        status = None
        try:
            async with asyncio.timeout(10):
                status = await self.sp.status(http)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            problems.append(f"/status failed: {exc!r}")
        if status is not None:
            for stream in status["streams"]:
                if stream["state"] != "serving":
                    problems.append(f"stream {stream['name']} is {stream['state']}")
                if not all(t["connected"] for t in stream["trackers"].values()):
                    problems.append(f"stream {stream['name']} not connected to the tracker")
        uploads = [
            (float(s["t"]), s["superpeer"]["uploaded_bytes"])
            for s in self.samples
            if "superpeer" in s
        ]
        before = [u for t, u in uploads if t <= 0.75 * self.duration]
        if not uploads or not before or uploads[-1][1] <= before[-1]:
            problems.append("no upload over the last quarter of the run")
        return {"serving_at_end": not problems, "end_problem": "; ".join(problems) or None}

    # -- the result ------------------------------------------------------------------------------

    def result(self, end: Mapping[str, Any]) -> dict[str, Any]:
        if len(self.restarts_at) > len(self.reconnect_s):  # the run ended during a restart
            self.reconnect_s.append(None)
        integrity = Integrity()
        viewers = sorted(self.finished, key=lambda r: r.number)
        for run in viewers:
            part = Integrity(**{**run.result["integrity"], "examples": []})
            part.examples = list(run.result["integrity"]["examples"])
            integrity.add(part)
        stayers = [r for r in viewers if r.kind == "stayer"]
        incomplete = [
            r.number
            for r in stayers
            if r.result.get("stalls") is None
            or r.result.get("exit") != 0
            or (r.left or 0) - r.joined < 0.95 * self.duration
        ]
        sp = self.sp
        errors = sp.errors() if sp is not None else []
        unexpected = [e for e in errors if not is_fault_error(e)]
        warnings = Counter(
            re.sub(r"\d+", "N", str(p.get("msg", "")))[:90]
            for p in (sp.problems if sp is not None else [])
            if p.get("level") == "warning"
        )
        last = self.samples[-1] if self.samples else {}
        restarts = (last.get("superpeer") or {}).get("worker_restarts", 0)
        result: dict[str, Any] = {
            "issue": 17,
            "stamp": self.stamp,
            "minutes": self.options.minutes,
            "seed": self.options.seed,
            "interval_s": self.options.interval,
            "schedule": dataclasses.asdict(self.schedule),
            "thresholds": dataclasses.asdict(self.options.thresholds),
            "heap_source": (
                "/proc/<pid>/status RssAnon (anonymous resident memory: Python heap, malloc "
                "arenas, thread stacks); the super-peer's /status and /metrics expose no Python "
                "heap figure"
            ),
            "memory": memory_report(self.samples, self.schedule.warmup),
            "viewers": {
                "total": len(viewers),
                "by_kind": dict(Counter(r.kind for r in viewers)),
                "stayer_stalls": sum(r.result.get("stalls") or 0 for r in stayers),
                "stayers_incomplete": len(incomplete),
                "stayers": [_viewer_brief(r.result) for r in stayers],
                "churner_stalls": sum(
                    r.result.get("stalls") or 0 for r in viewers if r.kind != "stayer"
                ),
                "failed_exits": [
                    _viewer_brief(r.result)
                    for r in viewers
                    if r.kind != "killed" and r.result.get("exit") != 0
                ][:10],
            },
            "integrity": integrity.to_json(),
            "superpeer": {
                "serving_at_end": bool(end.get("serving_at_end")),
                "end_problem": end.get("end_problem"),
                "exit_code": end.get("exit_code"),
                "killed_on_exit": bool(sp and sp.killed),
                "worker_restarts": restarts,
                "uploaded_bytes": (last.get("superpeer") or {}).get("uploaded_bytes"),
                "origin_bytes": (last.get("superpeer") or {}).get("origin_bytes"),
                "origin_errors": (last.get("superpeer") or {}).get("origin_errors", {}),
                "rejected": (last.get("superpeer") or {}).get("rejected", {}),
                "error_lines": len(errors),
                "fault_error_lines": len(errors) - len(unexpected),
                "unexpected_errors": len(unexpected),
                "unexpected_examples": [str(e.get("msg", e))[:300] for e in unexpected[:5]],
                "warning_lines": sum(warnings.values()) + (sp.problems_dropped if sp else 0),
                "top_warnings": dict(warnings.most_common(10)),
            },
            "tracker": {
                "restarts_planned": len(self.schedule.tracker_restarts),
                "restarts_done": len(self.restarts_at),
                "restarts_at": self.restarts_at,
                "superpeer_reconnect_s": self.reconnect_s,
            },
            "origin": {
                "faults_injected": dict(self.origin.faults.counts),
                "truncate_windows": [list(w) for w in self.windows_done],
                "segment_bytes_to_superpeer": self.origin.segment_bytes_to["superpeer"],
                "segment_bytes_to_viewers": self.origin.segment_bytes_to["viewers"],
                "truncate_rate": self.options.truncate_rate,
                "fail_rate": self.options.fail_rate,
            },
            "harness_error": self.harness_error,
            "samples_file": str(self.samples_path),
        }
        return result


def _serving(channel: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda r: r.get("event") == "stream_serving" and r.get("stream") == channel


def _trackers_up(status: Mapping[str, Any]) -> bool:
    return all(t["connected"] for s in status.get("streams", []) for t in s["trackers"].values())


def _tracker_losses(status: Mapping[str, Any]) -> int:
    """Disconnects and failed connects the super-peer's streams counted so far."""
    return sum(
        t["errors"].get(kind, 0)
        for s in status.get("streams", [])
        for t in s["trackers"].values()
        for kind in ("disconnects", "connect_failures")
    )


def _viewer_brief(result: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("number", "kind", "channel", "rendition", "joined", "left", "exit", "stalls")
    brief = {k: result.get(k) for k in keys}
    brief["p2p_bytes"] = result.get("p2p_bytes")
    if result.get("stderr_tail"):
        brief["stderr_tail"] = result["stderr_tail"][-500:]
    return brief


# ------------------------------------------------------------------------------------- reporting


def _n(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_report(result: Mapping[str, Any], reasons: Sequence[str]) -> str:
    memory = result["memory"]
    judged = memory["window_s"] >= result["thresholds"]["min_window_s"]
    lines = [
        f"# Soak run {result['stamp']} ({result['minutes']:g} min, seed {result['seed']})",
        "",
        f"Slopes after the first {memory['warmup_s']:g} s, over {memory['window_s']:g} s"
        + ("" if judged else " (too short to judge: reported only)")
        + f". Heap: {result['heap_source']}.",
        "",
        "| process | pids | RSS MB first/last/max | RSS MB/h | heap MB/h | fds first/last/max "
        "| fds/h | threads last | threads/h |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def three(summary: Mapping[str, float] | None) -> str:
        if summary is None:
            return "-"
        return f"{summary['first']:g}/{summary['last']:g}/{summary['max']:g}"

    for role, proc in memory["processes"].items():
        lines.append(
            f"| {role} | {len(proc['pids'])} | {three(proc['rss_mb'])} | "
            f"{_n(proc['rss_mb_per_hour'])} | {_n(proc['heap_mb_per_hour'])} | "
            f"{three(proc['fds'])} | {_n(proc['fds_per_hour'])} | "
            f"{_n((proc['threads'] or {}).get('last'))} | {_n(proc['threads_per_hour'])} |"
        )
    total = memory["superpeer_total"]
    lines.append(
        f"| **super-peer total** | | {three(total['rss_mb'])} | **{_n(total['rss_mb_per_hour'])}**"
        f" | {_n(total['heap_mb_per_hour'])} | {three(total['fds'])} | "
        f"**{_n(total['fds_per_hour'])}** | | |"
    )
    viewers = result["viewers"]
    integrity = result["integrity"]
    sp = result["superpeer"]
    tracker = result["tracker"]
    origin = result["origin"]
    lines += [
        "",
        f"- viewers: {viewers['total']} ({', '.join(f'{v} {k}' for k, v in sorted(viewers['by_kind'].items()))}); "
        f"stayer stalls **{viewers['stayer_stalls']}**, stayers incomplete "
        f"{viewers['stayers_incomplete']}, churner stalls {viewers['churner_stalls']}",
        f"- integrity: {integrity['checked_segments']} segments / "
        f"{integrity['checked_bytes'] / MB:.1f} MB from peers checked "
        f"({integrity['from_superpeer_bytes'] / MB:.1f} MB from the super-peer, "
        f"{integrity['from_viewers_bytes'] / MB:.1f} MB from viewers); corrupted bytes "
        f"**{integrity['corrupted_bytes']}**, rejected by receivers "
        f"{integrity['rejected_by_receivers']}, unknown {integrity['unknown_segments']}; held "
        f"segments checked {integrity['held_checked']}, corrupted {integrity['held_corrupted']}",
        f"- origin faults injected: {origin['faults_injected']} (rates: truncate "
        f"{origin['truncate_rate']:g}, fail {origin['fail_rate']:g}; truncate windows "
        f"{origin['truncate_windows']}); segment MB to the super-peer "
        f"{origin['segment_bytes_to_superpeer'] / MB:.1f}, to viewers "
        f"{origin['segment_bytes_to_viewers'] / MB:.1f}",
        f"- super-peer: uploaded {(sp['uploaded_bytes'] or 0) / MB:.1f} MB, origin "
        f"{(sp['origin_bytes'] or 0) / MB:.1f} MB; origin errors {sp['origin_errors']}; "
        f"rejected/invalid counters {sp['rejected'] or 'none exposed'}; serving at the end "
        f"{sp['serving_at_end']} ({sp['end_problem'] or 'ok'}); exit code {sp['exit_code']}; "
        f"worker restarts {sp['worker_restarts']}",
        f"- super-peer log: {sp['error_lines']} error-level lines ({sp['fault_error_lines']} "
        f"about origin faults, {sp['unexpected_errors']} others), {sp['warning_lines']} warnings",
        f"- tracker restarts: {tracker['restarts_done']}/{tracker['restarts_planned']} at "
        f"{tracker['restarts_at']} s; super-peer connected again after "
        f"{tracker['superpeer_reconnect_s']} s",
    ]
    if sp["unexpected_examples"]:
        lines.append("- error lines: " + " | ".join(sp["unexpected_examples"]))
    if sp["top_warnings"]:
        lines.append("- most frequent warnings:")
        lines += [f"  - {count} x `{msg}`" for msg, count in sp["top_warnings"].items()]
    if integrity["examples"]:
        lines.append(f"- integrity examples: {json.dumps(integrity['examples'])[:1500]}")
    if result.get("chart_note"):
        lines.append(f"- chart: {result['chart_note']}")
    if result.get("harness_error"):
        lines.append(f"- harness error: {result['harness_error']}")
    lines += ["", verdict_line(reasons), ""]
    return "\n".join(lines)


async def write_outputs(
    result: dict[str, Any], schedule: Schedule, samples: list[Any], out: Path, png: bool
) -> list[str]:
    reasons = verdict(result, Thresholds(**result["thresholds"]))
    title = f"p2pml_py soak {result['stamp']}: {verdict_line(reasons)}"[:110]
    svg = render_svg(samples, schedule, title=title, restarts_at=result["tracker"]["restarts_at"])
    (out / "soak-latest.svg").write_text(svg, encoding="utf-8")
    note = await svg_to_png(svg, out / "soak-latest.png") if png else "PNG disabled (--no-png)"
    result["chart"] = str(out / ("soak-latest.svg" if note else "soak-latest.png"))
    result["chart_note"] = note and f"{note}; only the SVG was written"
    result["verdict"] = verdict_line(reasons)
    text = format_report(result, reasons)
    for name in (f"soak-{result['stamp']}", "soak-latest"):
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out / f"{name}.md").write_text(text, encoding="utf-8")
    return reasons


# ------------------------------------------------------------------------------------- the CLI


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    return parse


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Soak run: a super-peer with 2 live streams under viewer churn, origin faults "
        "and tracker restarts; RSS, heap, open files and threads sampled; ends with SOAK PASS or "
        "SOAK FAIL (see benchmarks/soak.py).",
    )
    parser.add_argument(
        "--minutes",
        type=_bounded(float, 0.25, 24 * 60),
        default=None,
        help="length of the run (default: 60)",
    )
    parser.add_argument("--quick", action="store_true", help="a 2-minute run")
    parser.add_argument(
        "--viewers",
        type=_bounded(int, 0, 32),
        default=4,
        help="churning viewers running at once at most (default: 4)",
    )
    parser.add_argument(
        "--stayers",
        type=_bounded(int, 1, 8),
        default=2,
        help="viewers per stream that stay for the whole run (default: 2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench-results",
        help="results directory (default: bench-results/)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--interval",
        type=_bounded(float, 1, 60),
        default=10.0,
        help="seconds between samples (default: 10)",
    )
    parser.add_argument(
        "--truncate-rate",
        type=_bounded(float, 0, 0.5),
        default=0.02,
        help="share of the super-peer's segment responses truncated (0.02)",
    )
    parser.add_argument(
        "--fail-rate",
        type=_bounded(float, 0, 0.5),
        default=0.02,
        help="share of the super-peer's segment responses answered 500 (0.02)",
    )
    parser.add_argument(
        "--workers",
        type=_bounded(int, 1, 4),
        default=2,
        help="super-peer worker processes (default: 2)",
    )
    parser.add_argument("--no-png", action="store_true", help="write the SVG chart only")
    args = parser.parse_args(argv)
    if args.quick and args.minutes is not None:
        parser.error("--quick and --minutes: give one (--quick is --minutes 2)")
    minutes = 2.0 if args.quick else (60.0 if args.minutes is None else args.minutes)
    return Options(
        minutes=minutes,
        churners=args.viewers,
        stayers=args.stayers,
        out=args.out,
        seed=args.seed,
        interval=args.interval,
        truncate_rate=args.truncate_rate,
        fail_rate=args.fail_rate,
        workers=args.workers,
        png=not args.no_png,
    )  # fmt: skip


async def soak(options: Options) -> int:
    from p2pml_py.harness.stream import ensure_stream

    stream = ensure_stream()
    workdir = Path(tempfile.mkdtemp(prefix="p2pml-soak-"))
    try:
        run = Soak(options, stream, workdir)
        print(
            f"soak: {options.minutes:g} min, {options.stayers} stayers per stream, up to "
            f"{options.churners} churners; samples in {run.samples_path}",
            flush=True,
        )
        result = await run.run()
        reasons = await write_outputs(result, run.schedule, run.samples, options.out, options.png)
        print(f"results: {options.out / 'soak-latest.json'} (.md, .svg, .png)", flush=True)
        print(format_report(result, reasons).rstrip("\n"), flush=True)  # the verdict last
        return 0 if not reasons else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["viewer"]:
        return viewer_main(args[1:])
    return asyncio.run(soak(parse_options(args)))
