"""The sans-I/O parts of the Locust load test: options -> watch arguments, the host's JSON lines,
viewer totals -> Locust events, and the viewer host's answers to commands that start no viewer.

Nothing here imports Locust (it would monkey-patch this process for gevent).
"""

from __future__ import annotations

import json

import pytest

from p2pml_py.loadtest.host import ConfigError, ViewerHost, parse_watch
from p2pml_py.loadtest.metrics import LoadSummary, Metric, SessionMetrics, ViewerCounters
from p2pml_py.loadtest.protocol import (
    HostEvent,
    LoadOptions,
    LoadOptionsError,
    parse_command,
    parse_event,
    stop_command,
    watch_command,
)


def options(**given: object) -> LoadOptions:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:8080/master.m3u8",
        "trackers": "ws://127.0.0.1:8000",
        "watch_seconds": 0.0,
        "watch_args": "",
        "report_interval": 1.0,
    }
    values.update(given)
    return LoadOptions.parse(**values)  # type: ignore[arg-type]


# -- options ------------------------------------------------------------------------------------


def test_options_make_watch_arguments() -> None:
    parsed = options(
        trackers="ws://127.0.0.1:8000, ws://127.0.0.1:8001",
        watch_seconds=30,
        watch_args="--validate length --ice-address 127.0.0.1",
    )
    assert parsed.watch_argv() == [
        "http://127.0.0.1:8080/master.m3u8",
        *("--tracker", "ws://127.0.0.1:8000", "--tracker", "ws://127.0.0.1:8001"),
        *("--duration", "30"),
        *("--validate", "length", "--ice-address", "127.0.0.1"),
    ]
    # 0 s: no --duration, the viewer plays to the end of the VOD.
    assert "--duration" not in options().watch_argv()
    # The tracker may come with the watch arguments instead.
    assert options(trackers="", watch_args="--tracker ws://127.0.0.1:9").trackers == ()


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"url": ""}, "--p2pml-url"),
        ({"url": "ftp://x/master.m3u8"}, "--p2pml-url"),
        ({"trackers": "http://127.0.0.1:8000"}, "--p2pml-tracker"),
        ({"trackers": ""}, "--p2pml-tracker: required"),
        ({"watch_seconds": -1.0}, "--p2pml-watch-seconds"),
        ({"watch_seconds": float("nan")}, "--p2pml-watch-seconds"),
        ({"report_interval": 0.0}, "--p2pml-report-interval"),
        ({"report_interval": 61.0}, "--p2pml-report-interval"),
        ({"watch_args": "--validate 'length"}, "--p2pml-watch-args"),
        ({"watch_args": "--duration 5"}, "use --p2pml-watch-seconds"),
        ({"watch_args": "--json"}, "--p2pml-watch-args: --json"),
    ],
)
def test_bad_options_name_the_option(given: dict[str, object], field: str) -> None:
    with pytest.raises(LoadOptionsError) as caught:
        options(**given)
    assert field in str(caught.value)


# -- the host's pipes -----------------------------------------------------------------------------


def test_commands_round_trip() -> None:
    assert parse_command(watch_command("7", ["URL", "--tracker", "ws://x"])) == (
        "watch",
        "7",
        ["URL", "--tracker", "ws://x"],
    )
    assert parse_command(stop_command("7")) == ("stop", "7", [])
    for bad, reason in [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"op": "watch", "id": ""}', "id"),
        ('{"op": "kill", "id": "1"}', "op"),
        ('{"op": "watch", "id": "1", "argv": [1]}', "argv"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_command(bad)


def test_events_round_trip() -> None:
    counters = ViewerCounters(http_bytes=10, http_segments=1, startup_time=0.5)
    for event in [
        HostEvent("1", "progress", counters),
        HostEvent("1", "ended", counters, 3.5, stopped=True),
        HostEvent("2", "ended", None, 0.0, error="config: --tracker: required"),
    ]:
        assert parse_event(event.to_line()) == event
    zero = ViewerCounters().to_json()

    def progress(**counters: object) -> str:
        return json.dumps({"id": "1", "event": "progress", "counters": {**zero, **counters}})

    for bad, reason in [
        ('{"id": "1", "event": "progress", "counters": null}', "counters: required"),
        ('{"id": "1", "event": "progress", "counters": {}}', "http_bytes"),
        (progress(http_bytes=-1), "http_bytes"),
        (progress(stalls=True), "stalls"),
        (progress(startup_time="soon"), "startup_time"),
        ('{"id": "1", "event": "ended", "counters": null, "duration": "x"}', "duration"),
        ('{"id": "1", "event": "ended", "counters": null, "error": 3}', "error"),
        ('{"id": "1", "event": "started"}', "event"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_event(bad)


# -- totals -> Locust events ----------------------------------------------------------------------


def test_each_segment_stall_and_error_is_counted_once() -> None:
    session = SessionMetrics()
    assert session.update(ViewerCounters(http_bytes=0)) == []
    first = session.update(
        ViewerCounters(http_bytes=301, http_segments=3, startup_time=0.25, peers=1)
    )
    assert first[0] == Metric("viewer", "startup", 250.0)
    http = [m for m in first if m.name == "http"]
    # The new bytes spread over the new segments, adding up exactly.
    assert [m.length for m in http] == [101, 100, 100]
    assert session.started
    second = session.update(
        ViewerCounters(
            http_bytes=301,
            http_segments=3,
            p2p_bytes=200,
            p2p_segments=2,
            origin_errors=1,
            stalls=2,
            startup_time=0.25,
        )
    )
    assert second == [
        Metric("segment", "p2p", 0, length=100),
        Metric("segment", "p2p", 0, length=100),
        Metric("segment", "http", 0, error="origin error"),
        Metric("viewer", "stall", 0, error="stall"),
        Metric("viewer", "stall", 0, error="stall"),
    ]
    # The same totals again: nothing new. No second start-up either.
    assert session.update(ViewerCounters(http_bytes=301, http_segments=3, p2p_bytes=200,
                                         p2p_segments=2, origin_errors=1, stalls=2,
                                         startup_time=0.25)) == []  # fmt: skip
    last = session.end(
        ViewerCounters(
            http_bytes=301,
            http_segments=3,
            p2p_bytes=300,
            p2p_segments=3,
            origin_errors=1,
            stalls=2,
            startup_time=0.25,
            uploaded_bytes=4096,
        ),
        12.5,
    )
    assert last == [
        Metric("segment", "p2p", 0, length=100),
        Metric("viewer", "session", 12500.0, length=4096),
    ]
    assert session.ended and session.update(ViewerCounters(stalls=9)) == []
    assert session.end(None, 1.0) == []


def test_a_session_that_never_played_is_a_failed_start() -> None:
    failed = SessionMetrics()
    assert failed.end(None, 2.0, error="start: SourceError: 404") == [
        Metric("viewer", "startup", 2000.0, error="start: SourceError: 404")
    ]
    out_of_time = SessionMetrics()
    assert out_of_time.end(ViewerCounters(), 30.0) == [
        Metric("viewer", "startup", 30000.0, error="no playback before the session ended")
    ]
    # Stopped by Locust (the run ended) before its first frame: no failure.
    stopped = SessionMetrics()
    assert stopped.end(ViewerCounters(), 0.5, stopped=True) == [Metric("viewer", "session", 500.0)]
    # Failing after it played is a failed session, not a failed start.
    broke = SessionMetrics()
    broke.update(ViewerCounters(startup_time=1.0))
    assert broke.end(None, 5.0, error="viewer host exited with status -9") == [
        Metric("viewer", "session", 5000.0, error="viewer host exited with status -9")
    ]


def test_totals_that_go_down_are_refused() -> None:
    session = SessionMetrics()
    session.update(ViewerCounters(http_bytes=10, http_segments=1))
    with pytest.raises(ValueError, match="http_segments went down"):
        session.update(ViewerCounters())
    with pytest.raises(ValueError, match="without a new segment"):
        SessionMetrics().update(ViewerCounters(p2p_bytes=5))


def test_summary_line() -> None:
    summary = LoadSummary(
        viewers=4,
        failed_starts=1,
        startup_median_ms=850.0,
        stalls=2,
        http_segments=30,
        http_bytes=6_000_000,
        p2p_segments=10,
        p2p_bytes=2_000_000,
        origin_errors=0,
        sessions=3,
        uploaded_bytes=2_000_000,
    )
    assert summary.p2p_share == 0.25
    line = summary.format()
    assert line.startswith("p2pml: viewers 4 (1 failed to start), start-up median 0.85 s")
    assert "stalls 2," in line and "P2P share 25.0%" in line
    assert "HTTP 30 segments 6.00 MB" in line and "P2P 10 segments 2.00 MB" in line


# -- the viewer host: commands that start no viewer -------------------------------------------------


def test_watch_arguments_are_checked_like_the_cli() -> None:
    assert parse_watch(["http://127.0.0.1:1/m.m3u8", "--tracker", "ws://127.0.0.1:2"]).tracker
    with pytest.raises(ConfigError, match="--tracker: required"):
        parse_watch(["http://127.0.0.1:1/m.m3u8"])
    with pytest.raises(ConfigError, match="--validate: invalid choice"):
        parse_watch(["http://127.0.0.1:1/m.m3u8", "--validate", "bytes"])
    # --help would print on the protocol pipe: caught like any other exit.
    with pytest.raises(ConfigError):
        parse_watch(["--help"])


async def test_host_ends_every_watch_it_cannot_start() -> None:
    lines: list[str] = []
    host = ViewerHost(lines.append)
    url = "http://127.0.0.1:1/m.m3u8"
    host.handle(watch_command("1", [url]))  # no tracker
    host.handle(watch_command("2", [url, "--tracker", "ws://127.0.0.1:2", "--protocol", "both"]))
    host.handle(b"not json")  # logged, ignored
    host.handle(stop_command("99"))  # unknown: ignored
    await host.aclose()
    events = [parse_event(line) for line in lines]
    assert [(e.viewer_id, e.kind) for e in events] == [("1", "ended"), ("2", "ended")]
    assert (
        events[0].error
        == "config: --tracker: required (a load test never uses the public trackers)"
    )
    assert events[1].error is not None and "--protocol" in events[1].error
    assert host.running == 0


async def test_host_refuses_viewers_past_its_bound() -> None:
    lines: list[str] = []
    host = ViewerHost(lines.append, max_viewers=0)
    host.handle(watch_command("1", ["http://127.0.0.1:1/m.m3u8"]))
    await host.aclose()
    assert json.loads(lines[0])["error"] == "the host already runs its maximum of 0 viewers"
