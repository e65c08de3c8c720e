"""The soak run (benchmarks/soak.py, issue 17): its pure parts -- schedule, slopes, verdict,
integrity checks, chart -- as unit tests; the origin that aims faults at the super-peer only on a
real aiohttp server; and a 45-second real run (real super-peer, tracker and viewer processes)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.soak import (
    HOUR,
    MB,
    Integrity,
    Schedule,
    SoakOrigin,
    Thresholds,
    check_records,
    check_summary,
    is_fault_error,
    make_schedule,
    memory_report,
    metric_counters,
    nice_ticks,
    parse_options,
    render_svg,
    slope,
    svg_size,
    verdict,
    verdict_line,
)
from p2pml_py.testing.media import segment_bytes
from p2pml_py.testing.origin import OriginFaults
from p2pml_py.testing.stream import TestStream

ROOT = Path(__file__).resolve().parent.parent
KIB_PER_MB = MB / 1024

# -- schedule and slopes ----------------------------------------------------------------------


def test_an_hour_restarts_the_tracker_twice_clear_of_six_truncate_windows() -> None:
    schedule = make_schedule(3600)
    assert schedule.warmup == 300
    assert schedule.tracker_restarts == (1200, 2400)
    assert [start for start, _ in schedule.truncate_windows] == [300, 900, 1500, 2100, 2700, 3300]
    assert all(end - start == 20 for start, end in schedule.truncate_windows)
    for at in schedule.tracker_restarts:
        assert not any(start - 30 <= at <= end + 30 for start, end in schedule.truncate_windows)


def test_a_quick_run_warms_up_a_quarter_and_has_one_window() -> None:
    schedule = make_schedule(120)
    assert schedule.warmup == 30
    assert schedule.tracker_restarts == (40, 80)
    assert schedule.truncate_windows == ((60, 80),)
    with pytest.raises(ValueError, match="duration"):
        make_schedule(0)


def test_slope_is_least_squares_and_needs_three_distinct_times() -> None:
    assert slope([(0, 1), (1, 3), (2, 5), (3, 7)]) == pytest.approx(2.0)
    # Noise around a line: the fit, not the end points.
    assert slope([(0, 0), (1, 2), (2, 1), (3, 3)]) == pytest.approx(0.8)
    assert slope([(0, 1), (1, 2)]) is None
    assert slope([(5, 1), (5, 2), (5, 3)]) is None


def sample(t: float, **procs: tuple[int, float, int]) -> dict[str, Any]:
    """A sample with ``role=(pid, rss MB, fds)`` per process."""
    return {
        "t": t,
        "procs": {
            role: {
                "pid": pid,
                "rss_kb": rss * KIB_PER_MB,
                "anon_kb": rss * KIB_PER_MB / 2,
                "threads": 4,
                "fds": fds,
            }
            for role, (pid, rss, fds) in procs.items()
        },
    }


def test_memory_slopes_after_warmup_per_process_and_total() -> None:
    samples = []
    for minute in range(0, 61):
        t = minute * 60.0
        worker1_pid = 30 if minute < 40 else 31  # restarted at minute 40
        samples.append(
            sample(
                t,
                # a warm-up jump of 50 MB, then flat
                superpeer=(10, 40 + (50 if minute >= 5 else minute * 10), 12),
                # 10 MB/h growth and one more open file every 2 minutes
                worker0=(20, 80 + 10 * t / HOUR, 30 + minute // 2),
                worker1=(worker1_pid, 80 if minute < 40 else 60, 30),
                tracker=(40, 70 + 100 * t / HOUR, 9),  # not part of the super-peer's total
            )
        )
    report = memory_report(samples, warmup=300)
    assert report["window_s"] == 3300
    procs = report["processes"]
    assert list(procs) == ["superpeer", "worker0", "worker1", "tracker"]
    assert procs["superpeer"]["rss_mb_per_hour"] == pytest.approx(0, abs=1e-6)
    assert procs["worker0"]["rss_mb_per_hour"] == pytest.approx(10, rel=1e-3)
    assert procs["worker0"]["heap_mb_per_hour"] == pytest.approx(5, rel=1e-3)
    assert procs["worker0"]["fds_per_hour"] == pytest.approx(30, rel=0.05)
    # The restarted worker is measured over its last incarnation (flat at 60 MB).
    assert procs["worker1"]["pids"] == [30, 31]
    assert procs["worker1"]["rss_mb_per_hour"] == pytest.approx(0, abs=1e-6)
    assert procs["worker1"]["rss_mb"] == {"first": 60, "last": 60, "max": 60}
    assert procs["tracker"]["rss_mb_per_hour"] == pytest.approx(100, rel=1e-3)
    total = report["superpeer_total"]
    assert total["rss_mb"]["first"] == pytest.approx(40 + 80 + 80)
    # 10 MB/h of worker0 plus the 20 MB drop of worker1's restart, fitted over 55 minutes.
    assert 10 - 20 / (55 / 60) * 1.5 < total["rss_mb_per_hour"] < 10
    assert total["fds_per_hour"] == pytest.approx(30, rel=0.05)


# -- verdict --------------------------------------------------------------------------------


def passing_result(window_s: float = 3300) -> dict[str, Any]:
    return {
        "memory": {
            "window_s": window_s,
            "superpeer_total": {"rss_mb_per_hour": 3.0, "fds_per_hour": 4.0},
        },
        "viewers": {"stayer_stalls": 0, "stayers_incomplete": 0},
        "integrity": {**Integrity(checked_segments=500, checked_bytes=5 * MB).to_json()},
        "superpeer": {
            "serving_at_end": True,
            "end_problem": None,
            "exit_code": 0,
            "worker_restarts": 0,
            "unexpected_errors": 0,
        },
        "tracker": {
            "restarts_planned": 2,
            "restarts_done": 2,
            "superpeer_reconnect_s": [8.0, 9.5],
        },
        "origin": {"faults_injected": {"truncate": 40, "fail": 12}},
        "harness_error": None,
    }


def test_a_clean_run_passes() -> None:
    assert verdict(passing_result(), Thresholds()) == []
    assert verdict_line([]) == "SOAK PASS"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("memory", "superpeer_total", "rss_mb_per_hour"), 25.0, "RSS slope 25.0 MB/h"),
        (("memory", "superpeer_total", "rss_mb_per_hour"), None, "RSS slope None"),
        (("memory", "superpeer_total", "fds_per_hour"), 61.0, "open-file slope 61.0/h"),
        (("viewers", "stayer_stalls"), 1, "1 stalls of viewers that stayed"),
        (("viewers", "stayers_incomplete"), 2, "2 stayers did not play"),
        (("integrity", "corrupted_bytes"), 1000, "1000 corrupted bytes"),
        (("integrity", "held_corrupted"), 1, "1 corrupted held segments"),
        (("integrity", "rejected_by_receivers"), 3, "3 segments from peers failed"),
        (("integrity", "unknown_segments"), 1, "never had"),
        (("integrity", "checked_segments"), 0, "no segment from a peer was checked"),
        (("superpeer", "serving_at_end"), False, "not serving at the end"),
        (("superpeer", "exit_code"), -9, "exit code -9"),
        (("superpeer", "worker_restarts"), 1, "1 worker restarts"),
        (("superpeer", "unexpected_errors"), 2, "2 error-level"),
        (("tracker", "restarts_done"), 1, "1/2 tracker restarts"),
        (("tracker", "superpeer_reconnect_s"), [8.0, None], "not reconnected"),
        (("tracker", "superpeer_reconnect_s"), [8.0, 200.0], "not reconnected"),
        (("origin", "faults_injected"), {}, "no origin fault"),
        (("harness_error",), "TimeoutError: x", "harness error: TimeoutError"),
    ],
)
def test_each_criterion_fails_the_run(path: tuple[str, ...], value: Any, reason: str) -> None:
    result = passing_result()
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    reasons = verdict(result, Thresholds())
    assert len(reasons) == 1 and reason in reasons[0], reasons
    assert verdict_line(reasons) == f"SOAK FAIL: {reasons[0]}"


def test_slopes_over_a_short_window_are_not_judged() -> None:
    result = passing_result(window_s=90)
    result["memory"]["superpeer_total"].update(rss_mb_per_hour=400.0, fds_per_hour=900.0)
    assert verdict(result, Thresholds()) == []
    assert verdict(result, Thresholds(min_window_s=60)) != []


def test_only_origin_error_lines_count_as_caused_by_faults() -> None:
    assert is_fault_error({"level": "error", "msg": "origin: segment 7: HTTP 500"})
    assert is_fault_error({"level": "error", "msg": "segment 7 from origin rejected (duration)"})
    assert not is_fault_error({"level": "error", "msg": "worker 0: bad command"})
    assert not is_fault_error({"level": "raw", "msg": "origin: Traceback (most recent call last)"})


# -- integrity ------------------------------------------------------------------------------

PLAYLIST = "http://127.0.0.1:1/viewers/live/a/r0/index.m3u8"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected(playlist: str, segment_id: str) -> str | None:
    if playlist != PLAYLIST or not segment_id.isdigit():
        return None
    return digest(b"segment %s" % segment_id.encode())


def line(**record: Any) -> str:
    return json.dumps(record)


def test_records_are_checked_segment_by_segment_and_by_sender() -> None:
    good = b"segment 101"
    bad = b"segment 102"[:5]
    lines = [
        line(stream=PLAYLIST, peer_ids=["me"]),
        line(sid=101, peer="sp", **{"from": 0}, bytes=len(good), sha256=digest(good)),
        line(sid=102, peer="viewer-x", **{"from": 0}, bytes=len(bad), sha256=digest(bad)),
        line(sid=103, peer="sp", rejected="validation failed"),
        line(sid=104, peer="sp", **{"from": 100}, bytes=10, sha256="0" * 64),
        line(sid="init", peer="sp", **{"from": 0}, bytes=3, sha256="0" * 64),
        '{"sid": 105, "peer": "sp", "fr',  # cut short by SIGKILL
    ]
    out, playlist = check_records(lines, expected, superpeer_ids={"sp"})
    assert playlist == PLAYLIST
    assert (out.checked_segments, out.checked_bytes) == (2, len(good) + len(bad))
    assert (out.corrupted_segments, out.corrupted_bytes) == (1, len(bad))
    assert out.rejected_by_receivers == 1
    assert out.partial_segments == 1 and out.unknown_segments == 1
    assert out.from_superpeer_bytes == len(good) + 10 + 3
    assert out.from_viewers_bytes == len(bad)
    kinds = [e["kind"] for e in out.examples]
    assert kinds == ["corrupted", "rejected_by_receiver", "unknown"]
    total = Integrity()
    total.add(out)
    total.add(out)
    assert total.corrupted_bytes == 2 * len(bad) and len(total.examples) == 5


def test_records_before_the_stream_line_are_unknown() -> None:
    out, playlist = check_records([line(sid=1, bytes=1, sha256="x")], expected, set())
    assert playlist is None and out.unknown_segments == 1 and out.checked_segments == 0


def test_summary_held_digests_and_validation_failures() -> None:
    summary = {
        "segments": {
            PLAYLIST: {"101": digest(b"segment 101"), "102": "f" * 64, "x": "0"},
        },
        "p2p_failures": {"validation failed": 2, "timeout": 5},
    }
    out = check_summary(summary, expected)
    assert (out.held_checked, out.held_corrupted, out.rejected_by_receivers) == (2, 1, 2)


def test_metrics_origin_errors_and_rejections_summed_over_streams() -> None:
    text = "\n".join(
        [
            "# TYPE p2pml_superpeer_origin_errors_total counter",
            'p2pml_superpeer_origin_errors_total{stream="a",kind="http_5xx"} 3.0',
            'p2pml_superpeer_origin_errors_total{stream="b",kind="http_5xx"} 2.0',
            'p2pml_superpeer_origin_errors_total{stream="b",kind="invalid"} 7.0',
            "# TYPE p2pml_superpeer_segments_rejected_total counter",
            'p2pml_superpeer_segments_rejected_total{stream="a",reason="duration"} 4.0',
            'p2pml_superpeer_segments_rejected_total{stream="b",reason="duration"} 1.0',
            "# TYPE p2pml_superpeer_peers gauge",
            'p2pml_superpeer_peers{stream="a",rendition="0",version="2.3"} 4.0',
        ]
    )
    errors, rejected = metric_counters(text + "\n")
    assert errors == {"http_5xx": 5.0, "invalid": 7.0}
    assert rejected == {"segments_rejected{reason=duration}": 5.0}


# -- the chart --------------------------------------------------------------------------------


def test_nice_ticks_cover_the_range_in_round_steps() -> None:
    assert nice_ticks(60, 10) == [0, 10, 20, 30, 40, 50, 60]
    assert nice_ticks(2.0, 10) == pytest.approx([i / 5 for i in range(11)])
    assert nice_ticks(233) == [0, 50, 100, 150, 200, 250]
    assert nice_ticks(0) == [0.0, 1.0]


def test_svg_chart_has_a_panel_per_measure_and_breaks_restarted_lines() -> None:
    samples = [
        sample(
            t,
            superpeer=(10, 40, 12),
            worker0=(20, 80 + t / 60, 30),
            tracker=(40 if t < 60 else 41, 70, 9),
        )
        for t in range(0, 130, 10)
    ]
    del samples[3]["procs"]["worker0"]  # one missed sample: no gap at 2.5x the spacing
    schedule = Schedule(120, 30, (40, 80), ((60, 80),))
    svg = render_svg(samples, schedule, title="soak <1> & co", restarts_at=[40.0, 80.0])
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "soak <1> & co" in texts
    for label in ("RSS (MB)", "open files", "threads", "super-peer total", "tracker"):
        assert label in texts
    # superpeer, worker0 and the total in one piece each; the tracker in two (its pid changed).
    lines = root.findall(f"{ns}polyline")
    assert len(lines) == 3 * (1 + 1 + 2) + 2  # 3 panels; the total in two of them
    dashed = [p for p in lines if p.get("stroke-dasharray")]
    assert len(dashed) == 3 * 2
    assert svg_size(svg) == (int(root.get("width", 0)), int(root.get("height", 0)))


# -- options --------------------------------------------------------------------------------


def test_options_and_errors_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    options = parse_options(["--quick", "--out", "x", "--seed", "7"])
    assert (options.minutes, options.seed, options.out) == (2.0, 7, Path("x"))
    assert parse_options([]).minutes == 60.0
    for argv, name in (
        (["--quick", "--minutes", "5"], "--quick and --minutes"),
        (["--viewers", "-1"], "--viewers"),
        (["--minutes", "0"], "--minutes"),
        (["--truncate-rate", "0.9"], "--truncate-rate"),
        (["--interval", "soon"], "--interval"),
    ):
        with pytest.raises(SystemExit) as exited:
            parse_options(argv)
        assert exited.value.code == 2
        assert name in capsys.readouterr().err


# -- the origin ------------------------------------------------------------------------------


@pytest.fixture
def stream(tmp_path: Path) -> TestStream:
    root = tmp_path / "stream"
    (root / "v0").mkdir(parents=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
    for i in range(3):
        lines += ["#EXTINF:2.000000,", f"seg{i}.ts"]
        (root / "v0" / f"seg{i}.ts").write_bytes(segment_bytes("v0", i, 1000))
    (root / "v0" / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n")
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nv0/index.m3u8\n"
    )
    return TestStream.load(root)


async def test_faults_reach_the_superpeer_path_only(stream: TestStream) -> None:
    async with (
        SoakOrigin(stream, live_base_sequence=100) as origin,
        aiohttp.ClientSession() as http,
    ):
        origin.faults = OriginFaults(truncate=True)
        assert origin.viewer_url("a") == f"{origin.base_url}/viewers/live/a/master.m3u8"
        superpeer = f"{origin.base_url}/live/a/r0/s100.ts"
        viewer = f"{origin.base_url}/viewers/live/a/r0/s100.ts"
        async with http.get(superpeer) as response:
            short = await response.read()
        async with http.get(viewer) as response:
            full = await response.read()
        assert len(short) == 500 and full == segment_bytes("v0", 0, 1000)
        # Playlists are shared: the viewers' follow the same live clock, relative URIs included.
        async with http.get(f"{origin.base_url}/viewers/live/a/r0/index.m3u8") as response:
            assert "s100.ts" in await response.text()
        assert origin.faults.counts == {"truncate": 1}
        assert origin.segment_bytes_to == {"superpeer": 500, "viewers": 1000}
        want = digest(full)
        assert origin.expected(f"{origin.base_url}/viewers/live/a/r0/index.m3u8", "100") == want
        assert origin.expected(f"{origin.base_url}/live/a/r0/index.m3u8", "100") == want
        assert origin.expected(f"{origin.base_url}/viewers/vod/a/v0/index.m3u8", "x") is None


# -- a real run ------------------------------------------------------------------------------


@pytest.mark.realtime
def test_a_45_second_soak_run(tmp_path: Path) -> None:
    """Every part for real, 45 s: the harness runs, measures, checks and judges. Its verdict
    itself rides on a loaded machine's timing, so only what cannot depend on that is asserted."""
    options = ["--minutes", "0.75", "--interval", "5", "--no-png", "--viewers", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "soak", *options, "--stayers", "1", "--out", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout.strip().splitlines()
    assert out and out[-1].startswith("SOAK "), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "soak-latest.json").read_text())
    last = out[-1]
    assert summary["verdict"] == last
    assert done.returncode == (0 if last == "SOAK PASS" else 1)
    assert summary["harness_error"] is None
    assert summary["tracker"]["restarts_done"] == 2
    assert sum(summary["origin"]["faults_injected"].values()) > 0
    assert summary["viewers"]["by_kind"]["stayer"] == 2  # one per stream
    assert summary["integrity"]["checked_segments"] > 0
    assert summary["integrity"]["corrupted_bytes"] == 0
    assert set(summary["memory"]["processes"]) >= {"superpeer", "worker0", "worker1", "tracker"}
    samples = Path(summary["samples_file"]).read_text().splitlines()
    assert len(samples) >= 8 and all(json.loads(s)["procs"] for s in samples)
    assert (tmp_path / "soak-latest.svg").is_file() and (tmp_path / "soak-latest.md").is_file()
