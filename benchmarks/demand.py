"""Demand-driven fetching, measured: a seeding peer's origin egress by rendition,
fetch-everything against demand, with viewers on one rendition of a live ladder (issue 16).

One live stream of ``--renditions`` renditions (synthetic origin, segment sizes = BANDWIDTH x
duration) and one seeding peer -- the super-peer (``python -m p2pml_py.apps.superpeer``, one
worker, one ``[[stream]]``) and/or ``p2pml-py seed`` (``--peer``) -- run once per ``--modes``
entry (``fetch = "all"``, then ``"demand"``), each against a fresh origin and tracker. In each
run the peer is alone for ``--idle`` seconds, then ``--viewers`` ``p2pml-py watch`` processes
join rendition ``--watch`` one ``--stagger`` apart and play for ``--watch-seconds`` with the live
tuning INTEROP-NOTES found for browsers (``highDemandTimeWindow`` 4 s,
``liveSyncDurationCount`` 6: with the browser defaults live P2P is ~0 whoever seeds).

Reported per run: the peer's origin bytes per rendition from the origin's own per-path byte
counters minus the viewers' HTTP bytes (authoritative), next to the peer's own count (the
seed's ``--json`` summary; the super-peer's ``/status`` and ``/metrics``), its estimate of the
bytes demand saved, the viewers' stalls and P2P share, and the peer's upload. The super-peer's
reports lag by up to ``stats_interval``: its numbers are read once ``/status``, ``/metrics`` and
the origin agree (or after ``SETTLE_SECONDS``, flagged). The origin's live edge stops when the
last viewer ends, so that wait adds no segments: each run covers the same stretch of the stream
(``segments_published`` in the JSON says how many segments of it appeared during the run).

Everything runs on 127.0.0.1 (``scripts/bench`` puts it in a private network namespace).

    scripts/bench demand                   4 runs of about 80 s each (both peers)
    scripts/bench demand --peer superpeer  2 runs
    scripts/bench demand --quick           about 40 s each

Results: ``bench-results/demand-latest.{json,md}`` and a timestamped copy; the table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.testing.processes import SuperPeerProcess
from p2pml_py.tracker.server import TrackerServer

MODES = ("all", "demand", "auto")
DEFAULT_MODES = ("all", "demand")
PEERS = ("superpeer", "seed")
#: A 4..7-rung ladder (kbit/s); segment bytes = bitrate x duration / 8.
LADDER = (400, 800, 1600, 3200, 4800, 6400, 8000)
#: wt-tracker's announce interval (SPEC a): how fresh the tracker's counts are.
TRACKER_INTERVAL = 20
#: The viewers' live tuning (INTEROP-NOTES; tests/superpeer LIVE_ARGS).
LIVE_ARGS = ("--high-demand-window", "4", "--live-sync-segments", "6")
#: The super-peer's report interval: how stale /status and /metrics may be.
STATS_INTERVAL = 0.25
#: How long to wait for the super-peer's /status, /metrics and the origin's counts to agree.
SETTLE_SECONDS = 20.0
#: Bounds on the super-peer's start (HTTP port up) and stop (every swarm left, workers gone).
START_SECONDS = 30.0
STOP_SECONDS = 30.0
#: Log lines kept from the super-peer (the last ones), and warnings/errors.
KEEP_RECORDS = 200


class FreezableClock:
    """The synthetic origin's clock: ``time.monotonic`` until :meth:`freeze`, then still (no new
    live segments while the peer's counts are read)."""

    def __init__(self) -> None:
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return time.monotonic() if self.frozen_at is None else self.frozen_at

    def freeze(self) -> None:
        if self.frozen_at is None:
            self.frozen_at = time.monotonic()


def renditions(count: int, duration: float) -> tuple[Rendition, ...]:
    return tuple(
        Rendition(
            f"r{i}",
            bandwidth=kbit * 1000,
            width=640 + 160 * i,
            height=360 + 90 * i,
            segment_size=round(kbit * 1000 * duration / 8),
        )
        for i, kbit in enumerate(LADDER[:count])
    )


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "p2pml_py",
        "--log-level",
        "warning",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _summary(proc: asyncio.subprocess.Process, timeout: float, what: str) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{what} did not exit within {timeout:g} s: killed") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def _stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGINT (a clean leave), then SIGKILL if it is still there after ``timeout``."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


def superpeer_config(origin_url: str, tracker_url: str, fetch: str) -> str:
    """One worker, one stream; the keys of ``p2pml_py/apps/superpeer/config.py``."""
    return "\n".join(
        [
            "[superpeer]",
            "workers = 1",
            'listen = "127.0.0.1:0"',
            f"stats_interval = {STATS_INTERVAL}",
            "[[stream]]",
            'name = "live"',
            f'url = "{origin_url}"',
            f'trackers = ["{tracker_url}"]',
            'ice_addresses = ["127.0.0.1"]',
            f'fetch = "{fetch}"',
            'validate = "length"',  # synthetic segments are not media
            "",
        ]
    )


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.text()


async def _stop_superpeer(sp: SuperPeerProcess) -> int | None:
    """SIGTERM (every swarm left, ``stopped`` announced), SIGKILL after STOP_SECONDS; its
    exit code."""
    try:
        return await sp.terminate(STOP_SECONDS)
    finally:
        await sp.aclose()


def _log_problems(sp: SuperPeerProcess) -> list[str]:
    """The messages of its first warnings and errors (KEEP_RECORDS at most), shortened."""
    problems = [str(r.get("msg", r))[:300] for r in sp.problems]
    if sp.killed:
        problems.append(f"did not stop within {STOP_SECONDS:g} s: killed")
    return problems


def _metric_by_rendition(text: str, family: str) -> dict[str, int]:
    """``{rendition label: value}`` of one per-rendition family of the super-peer's /metrics."""
    out: dict[str, int] = {}
    for metrics in text_string_to_metric_families(text):
        if metrics.name == family:
            for sample in metrics.samples:
                if sample.name in (family, family + "_total"):
                    out[sample.labels["rendition"]] = int(sample.value)
    return out


async def superpeer_numbers(
    sp: SuperPeerProcess, origin_counts: Callable[[], list[int]], viewers_http: int, watch: int
) -> dict[str, Any]:
    """The super-peer's per-rendition numbers from /status and /metrics, read again until they
    agree with each other and with the origin's counts (``origin_counts()``, less the viewers'
    HTTP bytes on the watched rendition), or SETTLE_SECONDS passed (``agree`` False). The
    origin is read before and after the two requests: equal readings that match mean /status
    was not behind (a report can lag, never lead)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            before = origin_counts()
            status = await sp.status(http)
            metrics = await _get(http, sp.url + "/metrics")
            after = origin_counts()
            stream = status["streams"][0]
            reported = stream["renditions"]
            own = [r["origin_bytes"] for r in reported]
            by_label = _metric_by_rendition(metrics, "p2pml_superpeer_rendition_origin_bytes")
            from_metrics = [by_label.get(r["label"]) for r in reported]
            expected = [b - (viewers_http if i == watch else 0) for i, b in enumerate(before)]
            agree = before == after and own == expected and from_metrics == own
            if agree or time.monotonic() > deadline:
                saved = _metric_by_rendition(metrics, "p2pml_superpeer_origin_saved_bytes")
                return {
                    "agree": agree,
                    "stream": stream,
                    "origin_by_rendition": after,
                    "metrics_origin_bytes": from_metrics,
                    "metrics_saved_bytes": [saved.get(r["label"]) for r in reported],
                }
            await asyncio.sleep(STATS_INTERVAL)


async def _watch_all(
    args: argparse.Namespace, origin_url: str, common: list[str]
) -> list[dict[str, Any]]:
    """The viewers: join one ``--stagger`` apart, play ``--watch-seconds``, their summaries."""
    viewers: list[asyncio.subprocess.Process] = []
    try:
        for index in range(args.viewers):
            if index:
                await asyncio.sleep(args.stagger)
            viewers.append(
                await _cli(
                    "watch",
                    origin_url,
                    *common,
                    "--rendition",
                    str(args.watch),
                    *LIVE_ARGS,
                    "--duration",
                    f"{args.watch_seconds:g}",
                )
            )
        return [
            await _summary(p, args.watch_seconds + 60, f"viewer {i}") for i, p in enumerate(viewers)
        ]
    finally:
        for proc in viewers:
            await _stop(proc, 10)


async def run_mode(args: argparse.Namespace, peer: str, mode: str) -> dict[str, Any]:
    ladder = renditions(args.renditions, args.segment_duration)
    names = [r.name for r in ladder]
    clock = FreezableClock()
    async with (
        SyntheticOrigin(
            renditions=ladder,
            live=True,
            segment_duration=args.segment_duration,
            window=10,
            time_source=clock,
        ) as origin,
        TrackerServer(interval=TRACKER_INTERVAL) as tracker,
    ):

        def origin_counts() -> list[int]:
            return [origin.stats.bytes_under(f"/{name}/") for name in names]

        common = ["--tracker", tracker.url, "--ice-address", "127.0.0.1", "--json", "--no-status"]
        common += ["--validate", "length"]  # synthetic segments are not media
        with tempfile.TemporaryDirectory(prefix="p2pml-demand-") as tmp:
            sp: SuperPeerProcess | None = None
            seed: asyncio.subprocess.Process | None = None
            try:
                if peer == "superpeer":
                    config = Path(tmp) / "superpeer.toml"
                    config.write_text(superpeer_config(origin.url, tracker.url, mode))
                    sp = SuperPeerProcess(
                        config, keep_records=KEEP_RECORDS, start_timeout=START_SECONDS
                    )
                    await sp.start()
                else:
                    seed = await _cli("seed", origin.url, *common, "--fetch", mode)
                async with asyncio.timeout(30):
                    await tracker.wait_until(lambda: tracker.stats().swarms >= len(ladder))
                started, newest = time.monotonic(), origin.sequence_range[1]
                await asyncio.sleep(args.idle)  # the peer alone: what does it fetch?
                watched = await _watch_all(args, origin.url, common)
                clock.freeze()  # the live edge stops: no more segments to fetch
                elapsed = time.monotonic() - started
                published = origin.sequence_range[1] - newest
                viewers_http = sum(v["http_bytes"] for v in watched)
                if sp is not None:
                    numbers = await superpeer_numbers(sp, origin_counts, viewers_http, args.watch)
                settle = time.monotonic() - started - elapsed
            except BaseException:
                if seed is not None:
                    await _stop(seed, 10)
                raise
            finally:
                exit_code = None if sp is None else await _stop_superpeer(sp)
            if seed is not None:
                if seed.returncode is None:
                    seed.send_signal(signal.SIGINT)
                seeded = await _summary(seed, 60, "seed")
                served = origin_counts()
        problems = [] if sp is None else _log_problems(sp)
    if sp is not None:
        stream = numbers["stream"]
        served = numbers["origin_by_rendition"]
        reported = stream["renditions"]
        own_total = stream["origin_bytes"]
        uploaded = stream["uploaded_bytes"]
        accounted = numbers["agree"] and sum(r["origin_bytes"] for r in reported) == own_total
        metrics_origin = numbers["metrics_origin_bytes"]
        metrics_saved = numbers["metrics_saved_bytes"]
    else:
        reported = [{**s["fetch"], "label": s.get("label")} for s in seeded["streams"]]
        own_total = seeded["http_bytes"]
        uploaded = seeded["uploaded_bytes"]
        accounted = sum(served) == own_total + viewers_http
        metrics_origin = metrics_saved = [None] * len(names)
    if len(reported) != len(names):
        raise RuntimeError(f"{peer}: {len(reported)} renditions reported, {len(names)} expected")
    viewers_p2p = sum(v["p2p_bytes"] for v in watched)
    by_rendition = [
        {
            "rendition": name,
            "label": reported[i].get("label"),
            "kbit": ladder[i].bandwidth // 1000,
            "watched": i == args.watch,
            # The origin's own count: the peer's fetches plus the viewers' (watched rendition).
            "origin_served_bytes": served[i],
            "origin_bytes": served[i] - (viewers_http if i == args.watch else 0),
            "own_origin_bytes": reported[i]["origin_bytes"],
            "metrics_origin_bytes": metrics_origin[i],
            "saved_bytes_estimate": reported[i]["saved_bytes"],
            "metrics_saved_bytes": metrics_saved[i],
            "state_at_end": reported[i]["state"],
            "starts": reported[i]["starts"],
        }
        for i, name in enumerate(names)
    ]
    # Per rendition too: the peer's own count is what the origin served it.
    accounted = accounted and all(r["own_origin_bytes"] == r["origin_bytes"] for r in by_rendition)
    return {
        "peer": peer,
        "mode": mode,
        "seconds": round(elapsed, 1),
        "segments_published": published,
        "settle_seconds": round(settle, 1),
        "renditions": by_rendition,
        "peer_origin_bytes": sum(r["origin_bytes"] for r in by_rendition),
        "own_origin_bytes": own_total,
        "saved_bytes_estimate": sum(r["saved_bytes_estimate"] for r in by_rendition),
        "uploaded_bytes": uploaded,
        "origin_segment_bytes": sum(served),
        "viewers_http_bytes": viewers_http,
        "viewers_p2p_bytes": viewers_p2p,
        "p2p_share": round(viewers_p2p / max(1, viewers_http + viewers_p2p), 4),
        "stalls": [v["stalls"] for v in watched],
        "stall_time": round(sum(v["stall_time"] for v in watched), 3),
        "startup_times": [v["startup_time"] for v in watched],
        # The origin served exactly what the peer and the viewers say they fetched.
        "origin_accounted": accounted,
        "exit_code": exit_code,
        "log_problems": problems[:20],
    }


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def format_table(results: list[dict[str, Any]]) -> str:
    names = [
        r["rendition"] + (" (watched)" if r["watched"] else "") for r in results[0]["renditions"]
    ]
    head = ["peer", "fetch", "run s (new segments)", *[f"{n} MB" for n in names]]
    head += ["peer origin MB", "saved est. MB"]
    head += ["peer up MB", "viewers P2P", "stalls", "origin MB total", "counts agree"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        cells = [
            result["peer"],
            result["mode"],
            f"{result['seconds']:g} ({result['segments_published']})",
        ]
        cells += [_mb(r["origin_bytes"]) for r in result["renditions"]]
        cells += [
            _mb(result["peer_origin_bytes"]),
            _mb(result["saved_bytes_estimate"]),
            _mb(result["uploaded_bytes"]),
            f"{result['p2p_share']:.0%}",
            str(sum(result["stalls"])),
            _mb(result["origin_segment_bytes"]),
            "yes" if result["origin_accounted"] else "NO",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_detail(results: list[dict[str, Any]]) -> str:
    """Per rendition: the origin's count next to the peer's own (/status, /metrics, summary)."""
    head = ["peer", "fetch", "rendition", "origin's count MB", "own count MB", "/metrics MB"]
    head += ["saved est. MB", "/metrics saved MB", "state at end", "starts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        for r in result["renditions"]:
            cells = [
                result["peer"],
                result["mode"],
                r["rendition"] + (" (watched)" if r["watched"] else ""),
                _mb(r["origin_bytes"]),
                _mb(r["own_origin_bytes"]),
                _mb(r["metrics_origin_bytes"]),
                _mb(r["saved_bytes_estimate"]),
                _mb(r["metrics_saved_bytes"]),
                r["state_at_end"],
                str(r["starts"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _compare(peer: str, all_: dict[str, Any], other: dict[str, Any]) -> list[str]:
    ratio = other["peer_origin_bytes"] / max(1, all_["peer_origin_bytes"])
    watched = next(r for r in other["renditions"] if r["watched"])
    one = next(r for r in all_["renditions"] if r["watched"])
    return [
        f"{peer}, fetch {other['mode']}: fetched {ratio:.0%} of what fetch-everything fetched "
        f"({_mb(other['peer_origin_bytes'])} MB against {_mb(all_['peer_origin_bytes'])}); "
        f"{_mb(watched['origin_bytes'])} MB of it the watched rendition, which alone cost "
        f"{_mb(one['origin_bytes'])} MB with fetch-everything. Its own estimate of the "
        f"savings: {_mb(other['saved_bytes_estimate'])} MB (measured difference: "
        f"{_mb(all_['peer_origin_bytes'] - other['peer_origin_bytes'])} MB). "
        f"P2P share: all {all_['p2p_share']:.1%}, {other['mode']} {other['p2p_share']:.1%}; "
        f"stalls: all {all_['stalls']}, {other['mode']} {other['stalls']}.",
    ]


def format_report(report: dict[str, Any]) -> str:
    o = report["options"]
    results = report["results"]
    text = [
        f"One live stream, {o['renditions']} renditions, {o['segment_duration']:g} s segments; "
        f"one seeding peer (superpeer: `python -m p2pml_py.apps.superpeer`, 1 worker; seed: "
        f"`p2pml-py seed`); {o['viewers']} viewers on rendition {o['watch']} "
        f"(joining {o['idle']:g} s after the peer, {o['stagger']:g} s apart, "
        f"{o['watch_seconds']:g} s each). Per-rendition columns: the peer's origin bytes, "
        "from the origin's own counters (less the viewers' HTTP bytes). `counts agree`: the "
        "peer's own count (seed: its summary; superpeer: /status and /metrics) matches.",
        "",
        format_table(results),
        "",
        format_detail(results),
    ]
    for peer in PEERS:
        by_mode = {r["mode"]: r for r in results if r["peer"] == peer}
        if "all" in by_mode:
            for mode in ("demand", "auto"):
                if mode in by_mode:
                    text += ["", *_compare(peer, by_mode["all"], by_mode[mode])]
    for result in results:
        where = f"{result['peer']}, fetch {result['mode']}"
        if not result["origin_accounted"]:
            text.append(f"warning ({where}): the peer's own count != the origin's")
        if result["exit_code"] not in (None, 0):
            text.append(f"warning ({where}): the super-peer exited with {result['exit_code']}")
        if result["log_problems"]:
            text.append(f"warning ({where}): logged {result['log_problems'][:3]}")
    return "\n".join(text)


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = format_report(report)
    for name in (f"demand-{stamp}", "demand-latest"):
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / f"{name}.md").write_text(
            f"# p2pml_py demand-driven fetching, {report['date']}\n\n{text}\n"
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    for peer in args.peers:
        for mode in args.modes:
            sys.stdout.write(
                f"{peer}, fetch {mode}: running ({args.idle + args.watch_seconds:g} s)...\n"
            )
            sys.stdout.flush()
            results.append(await run_mode(args, peer, mode))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "options": {
            k: getattr(args, k)
            for k in (
                "peers",
                "modes",
                "renditions",
                "segment_duration",
                "viewers",
                "watch",
                "idle",
                "stagger",
                "watch_seconds",
            )
        },
        "tracker_interval": TRACKER_INTERVAL,
        "superpeer_stats_interval": STATS_INTERVAL,
        "results": results,
    }


def _modes(text: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not values or any(v not in MODES for v in values):
        raise argparse.ArgumentTypeError(
            f"a comma-separated list of {', '.join(MODES)}, not {text!r}"
        )
    return values


def _peers(text: str) -> tuple[str, ...]:
    if text == "both":
        return PEERS
    if text not in PEERS:
        raise argparse.ArgumentTypeError(f"superpeer, seed or both, not {text!r}")
    return (text,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench demand",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--peer",
        dest="peers",
        type=_peers,
        default=PEERS,
        metavar="superpeer|seed|both",
        help="the seeding peer (default: both, the super-peer first)",
    )
    parser.add_argument("--renditions", type=int, default=4, help="ladder rungs, 4..7")
    parser.add_argument("--segment-duration", type=float, default=2.0, help="seconds")
    parser.add_argument("--viewers", type=int, default=3, help="viewers on one rendition")
    parser.add_argument("--watch", type=int, default=1, help="the rendition they watch")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds before the viewers")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between viewers")
    parser.add_argument("--watch-seconds", type=float, default=60.0, help="each viewer's run")
    parser.add_argument(
        "--modes", type=_modes, default=DEFAULT_MODES, help="fetch modes, default all,demand"
    )
    parser.add_argument("--quick", action="store_true", help="5 s idle, 30 s of watching")
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    if not 4 <= args.renditions <= len(LADDER):
        parser.error(f"--renditions must be 4..{len(LADDER)}, got {args.renditions}")
    if not 0 <= args.watch < args.renditions:
        parser.error(f"--watch must be a rendition index 0..{args.renditions - 1}")
    if not 1 <= args.viewers <= 20:
        parser.error(f"--viewers must be 1..20, got {args.viewers}")
    if not 0.5 <= args.segment_duration <= 10:
        parser.error(f"--segment-duration must be 0.5..10 s, got {args.segment_duration:g}")
    if args.quick:
        args.idle, args.watch_seconds = 5.0, 30.0
    if args.idle < 0 or args.stagger < 0 or not 5 <= args.watch_seconds <= 3600:
        parser.error("--idle/--stagger must be >= 0 and --watch-seconds 5..3600")
    report = asyncio.run(run(args))
    out = Path(args.out)
    write_report(report, out)
    sys.stdout.write(format_report(report) + "\n")
    sys.stdout.write(f"results: {out / 'demand-latest.json'} and demand-latest.md\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
