"""What passes between a Locust process and its viewer host, sans-I/O: the load test's options,
the ``p2pml-py watch`` arguments they make, and the JSON lines of the host's pipes.

Commands, one JSON object a line on the host's stdin::

    {"op": "watch", "id": "7", "argv": ["URL", "--tracker", "ws://...", ...]}
    {"op": "stop", "id": "7"}

Events, one a line on its stdout::

    {"id": "7", "event": "progress", "counters": {...}}          # every report interval
    {"id": "7", "event": "ended", "counters": {...} | null, "duration": 31.2,
     "stopped": false, "error": null | "start: ..."}             # exactly once per watch

``counters`` is :class:`~p2pml_py.loadtest.metrics.ViewerCounters`. The host ends every viewer
and exits when its stdin closes.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from p2pml_py.base.errors import P2PMLError
from p2pml_py.loadtest.metrics import ViewerCounters

__all__ = [
    "HostEvent",
    "LoadOptions",
    "LoadOptionsError",
    "parse_command",
    "parse_event",
    "stop_command",
    "watch_command",
]

#: ``watch`` options the load test sets itself (``--p2pml-watch-seconds``) or that would write on
#: the host's protocol pipe.
_OWNED_WATCH_OPTIONS = ("--duration", "--json", "--status", "--no-status", "--help", "-h")
#: Longest report interval: Locust's stats reach the master every 3 s and its console table
#: every 2 s, so a viewer silent for longer than a minute looks dead in every view.
MAX_REPORT_INTERVAL = 60.0


class LoadOptionsError(P2PMLError):
    """A bad ``--p2pml-*`` option; the message names it."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The ``--p2pml-*`` options of a Locust run (``p2pml_py.loadtest.users``)."""

    url: str
    trackers: tuple[str, ...]
    watch_seconds: float = 0.0
    watch_args: tuple[str, ...] = ()
    report_interval: float = 1.0

    @classmethod
    def parse(
        cls,
        *,
        url: str,
        trackers: str,
        watch_seconds: float,
        watch_args: str,
        report_interval: float,
    ) -> LoadOptions:
        """From the options as Locust parsed them (strings and numbers)."""
        url = url.strip()
        if not re.match(r"https?://[^\s/]", url):
            raise LoadOptionsError(
                f"--p2pml-url: the HLS manifest URL the viewers play (http:// or https://), "
                f"got {url!r}"
            )
        tracker_urls = tuple(t for t in re.split(r"[,\s]+", trackers.strip()) if t)
        for tracker in tracker_urls:
            if not tracker.startswith(("ws://", "wss://")):
                raise LoadOptionsError(
                    f"--p2pml-tracker: WebSocket tracker URLs (ws:// or wss://), got {tracker!r}"
                )
        try:
            extra = tuple(shlex.split(watch_args))
        except ValueError as exc:
            raise LoadOptionsError(f"--p2pml-watch-args: {exc} in {watch_args!r}") from None
        for arg in extra:
            if arg.split("=", 1)[0] in _OWNED_WATCH_OPTIONS:
                raise LoadOptionsError(
                    f"--p2pml-watch-args: {arg} is set by the load test"
                    + (" (use --p2pml-watch-seconds)" if arg.startswith("--duration") else "")
                )
        if not tracker_urls and not any(a.split("=", 1)[0] == "--tracker" for a in extra):
            # watch's default is p2p-media-loader's public trackers: no load test goes there.
            raise LoadOptionsError(
                "--p2pml-tracker: required: the tracker your pages announce to (a load test "
                "never announces to the public default trackers)"
            )
        if not math.isfinite(watch_seconds) or watch_seconds < 0:
            raise LoadOptionsError(
                f"--p2pml-watch-seconds: seconds >= 0 (0 = until the VOD ends), got {watch_seconds}"
            )
        if not math.isfinite(report_interval) or not 0 < report_interval <= MAX_REPORT_INTERVAL:
            raise LoadOptionsError(
                f"--p2pml-report-interval: seconds in (0, {MAX_REPORT_INTERVAL:g}], "
                f"got {report_interval}"
            )
        return cls(url, tracker_urls, float(watch_seconds), extra, float(report_interval))

    def watch_argv(self) -> list[str]:
        """The ``p2pml-py watch`` arguments of one virtual viewer."""
        argv = [self.url]
        for tracker in self.trackers:
            argv += ["--tracker", tracker]
        if self.watch_seconds:
            argv += ["--duration", f"{self.watch_seconds:g}"]
        return [*argv, *self.watch_args]


# -- the host's pipes -----------------------------------------------------------------------------


def watch_command(viewer_id: str, argv: Sequence[str]) -> str:
    return json.dumps({"op": "watch", "id": viewer_id, "argv": list(argv)})


def stop_command(viewer_id: str) -> str:
    return json.dumps({"op": "stop", "id": viewer_id})


def parse_command(line: str | bytes) -> tuple[Literal["watch", "stop"], str, list[str]]:
    """``(op, id, argv)`` of a command line; ``ValueError`` says what is wrong."""
    raw = _object(line)
    op, viewer_id, argv = raw.get("op"), raw.get("id"), raw.get("argv", [])
    if not isinstance(viewer_id, str) or not viewer_id:
        raise ValueError(f"id: a non-empty string, got {viewer_id!r}")
    if op == "stop":
        return "stop", viewer_id, []
    if op != "watch":
        raise ValueError(f"op: 'watch' or 'stop', got {op!r}")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv: a list of strings")
    return "watch", viewer_id, argv


@dataclass(frozen=True, slots=True)
class HostEvent:
    """One line of the host's stdout."""

    viewer_id: str
    kind: Literal["progress", "ended"]
    counters: ViewerCounters | None
    duration: float = 0.0
    stopped: bool = False
    error: str | None = None

    def to_line(self) -> str:
        data: dict[str, Any] = {
            "id": self.viewer_id,
            "event": self.kind,
            "counters": None if self.counters is None else self.counters.to_json(),
        }
        if self.kind == "ended":
            data.update(duration=self.duration, stopped=self.stopped, error=self.error)
        return json.dumps(data)


def parse_event(line: str | bytes) -> HostEvent:
    """A line of the host's stdout; ``ValueError`` says what is wrong."""
    raw = _object(line)
    viewer_id, kind = raw.get("id"), raw.get("event")
    if not isinstance(viewer_id, str):
        raise ValueError(f"id: a string, got {viewer_id!r}")
    counters_raw = raw.get("counters")
    if counters_raw is not None and not isinstance(counters_raw, Mapping):
        raise ValueError("counters: an object or null")
    counters = None if counters_raw is None else ViewerCounters.from_json(counters_raw)
    if kind == "progress":
        if counters is None:
            raise ValueError("counters: required in a progress event")
        return HostEvent(viewer_id, "progress", counters)
    if kind != "ended":
        raise ValueError(f"event: 'progress' or 'ended', got {kind!r}")
    duration, error = raw.get("duration", 0.0), raw.get("error")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        raise ValueError(f"duration: seconds, got {duration!r}")
    if error is not None and not isinstance(error, str):
        raise ValueError(f"error: a string or null, got {error!r}")
    return HostEvent(viewer_id, "ended", counters, float(duration), bool(raw.get("stopped")), error)


def _object(line: str | bytes) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return raw
