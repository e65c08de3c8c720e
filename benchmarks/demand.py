"""Demand-driven fetching, measured: the seeder's origin egress by rendition, fetch-everything
against demand, with viewers on one rendition of a live ladder (issue 16).

One live stream of ``--renditions`` renditions (synthetic origin, segment sizes = BANDWIDTH x
duration) and one ``p2pml-py seed`` process, run twice -- ``--fetch all`` then ``--fetch demand``,
each against a fresh origin and tracker. In each run the seed is alone for ``--idle`` seconds,
then ``--viewers`` ``p2pml-py watch`` processes join rendition ``--watch`` one ``--stagger``
apart and play for ``--watch-seconds`` with the live tuning INTEROP-NOTES found for browsers
(``highDemandTimeWindow`` 4 s, ``liveSyncDurationCount`` 6: with the browser defaults live P2P
is ~0 whoever seeds). Reported per run: the seed's origin bytes per rendition (its own count,
checked against the origin's per-path byte counters minus the viewers' HTTP bytes), its
estimate of the bytes demand saved, the viewers' stalls and P2P share, and the seed's upload.

Everything runs on 127.0.0.1 (``scripts/bench`` puts it in a private network namespace).

    scripts/bench demand             two runs of about 80 s each
    scripts/bench demand --quick     about 40 s each

Results: ``bench-results/demand-latest.{json,md}`` and a timestamped copy; the table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from p2pml_py.testing.origin import Rendition, SyntheticOrigin
from p2pml_py.tracker.server import TrackerServer

MODES = ("all", "demand")
#: A 4..7-rung ladder (kbit/s); segment bytes = bitrate x duration / 8.
LADDER = (400, 800, 1600, 3200, 4800, 6400, 8000)
#: wt-tracker's announce interval (SPEC a): how fresh the tracker's counts are.
TRACKER_INTERVAL = 20
#: The viewers' live tuning (INTEROP-NOTES; tests/superpeer LIVE_ARGS).
LIVE_ARGS = ("--high-demand-window", "4", "--live-sync-segments", "6")


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
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    ladder = renditions(args.renditions, args.segment_duration)
    async with (
        SyntheticOrigin(
            renditions=ladder, live=True, segment_duration=args.segment_duration, window=10
        ) as origin,
        TrackerServer(interval=TRACKER_INTERVAL) as tracker,
    ):
        common = ["--tracker", tracker.url, "--ice-address", "127.0.0.1", "--json", "--no-status"]
        seed = await _cli("seed", origin.url, *common, "--fetch", mode)
        viewers: list[asyncio.subprocess.Process] = []
        try:
            async with asyncio.timeout(30):
                await tracker.wait_until(lambda: tracker.stats().swarms >= len(ladder))
            started = time.monotonic()
            await asyncio.sleep(args.idle)  # the seed alone: what does it fetch?
            for index in range(args.viewers):
                if index:
                    await asyncio.sleep(args.stagger)
                viewers.append(
                    await _cli(
                        "watch",
                        origin.url,
                        *common,
                        "--rendition",
                        str(args.watch),
                        *LIVE_ARGS,
                        "--duration",
                        f"{args.watch_seconds:g}",
                    )
                )
            watched = [
                await _summary(p, args.watch_seconds + 60, f"viewer {i}")
                for i, p in enumerate(viewers)
            ]
            elapsed = time.monotonic() - started
        finally:
            if seed.returncode is None:
                seed.send_signal(signal.SIGINT)
            for proc in viewers:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGINT)
        seeded = await _summary(seed, 60, "seed")
        names = [r.name for r in ladder]
        fetch = [s["fetch"] for s in seeded["streams"]]
        origin_by_path = {name: origin.stats.bytes_under(f"/{name}/") for name in names}
    viewers_http = sum(v["http_bytes"] for v in watched)
    viewers_p2p = sum(v["p2p_bytes"] for v in watched)
    by_rendition = [
        {
            "rendition": name,
            "kbit": ladder[i].bandwidth // 1000,
            "watched": i == args.watch,
            "seed_origin_bytes": fetch[i]["origin_bytes"],
            "seed_saved_bytes_estimate": fetch[i]["saved_bytes"],
            "state_at_end": fetch[i]["state"],
            "starts": fetch[i]["starts"],
            # The origin's own count: the seed's fetches plus the viewers' (watched rendition).
            "origin_served_bytes": origin_by_path[name],
        }
        for i, name in enumerate(names)
    ]
    return {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "renditions": by_rendition,
        "seed_origin_bytes": seeded["http_bytes"],
        "seed_saved_bytes_estimate": sum(r["seed_saved_bytes_estimate"] for r in by_rendition),
        "seed_uploaded_bytes": seeded["uploaded_bytes"],
        "origin_segment_bytes": sum(origin_by_path.values()),
        "viewers_http_bytes": viewers_http,
        "viewers_p2p_bytes": viewers_p2p,
        "p2p_share": round(viewers_p2p / max(1, viewers_http + viewers_p2p), 4),
        "stalls": [v["stalls"] for v in watched],
        "stall_time": round(sum(v["stall_time"] for v in watched), 3),
        "startup_times": [v["startup_time"] for v in watched],
        # The origin served exactly what the seed and the viewers say they fetched.
        "origin_accounted": sum(origin_by_path.values()) == seeded["http_bytes"] + viewers_http,
    }


def _mb(value: int) -> str:
    return f"{value / 1e6:.2f}"


def format_table(results: list[dict[str, Any]]) -> str:
    names = [
        r["rendition"] + (" (watched)" if r["watched"] else "") for r in results[0]["renditions"]
    ]
    head = ["fetch", *[f"{n} MB" for n in names], "seed origin MB", "saved est. MB"]
    head += ["seed up MB", "viewers P2P", "stalls", "origin MB total"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        cells = [result["mode"]]
        cells += [_mb(r["seed_origin_bytes"]) for r in result["renditions"]]
        cells += [
            _mb(result["seed_origin_bytes"]),
            _mb(result["seed_saved_bytes_estimate"]),
            _mb(result["seed_uploaded_bytes"]),
            f"{result['p2p_share']:.0%}",
            str(sum(result["stalls"])),
            _mb(result["origin_segment_bytes"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    o = report["options"]
    results = report["results"]
    text = [
        f"One live stream, {o['renditions']} renditions, {o['segment_duration']:g} s segments; "
        f"one `p2pml-py seed`; {o['viewers']} viewers on rendition {o['watch']} "
        f"(joining {o['idle']:g} s after the seed, {o['stagger']:g} s apart, "
        f"{o['watch_seconds']:g} s each). Per-rendition columns: the seed's origin bytes.",
        "",
        format_table(results),
    ]
    by_mode = {r["mode"]: r for r in results}
    if set(by_mode) == set(MODES):
        all_, demand = by_mode["all"], by_mode["demand"]
        ratio = demand["seed_origin_bytes"] / max(1, all_["seed_origin_bytes"])
        watched = next(r for r in demand["renditions"] if r["watched"])
        text += [
            "",
            f"demand: the seed fetched {ratio:.0%} of what fetch-everything fetched; "
            f"{_mb(watched['seed_origin_bytes'])} of its {_mb(demand['seed_origin_bytes'])} MB "
            f"were the watched rendition. Its own estimate of the savings: "
            f"{_mb(demand['seed_saved_bytes_estimate'])} MB (measured difference: "
            f"{_mb(all_['seed_origin_bytes'] - demand['seed_origin_bytes'])} MB).",
            f"P2P share: all {all_['p2p_share']:.1%}, demand {demand['p2p_share']:.1%}; "
            f"stalls: all {all_['stalls']}, demand {demand['stalls']}.",
        ]
    for result in results:
        if not result["origin_accounted"]:
            text.append(f"warning ({result['mode']}): origin bytes != seed + viewers' HTTP bytes")
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
    for mode in args.modes:
        sys.stdout.write(f"fetch {mode}: running ({args.idle + args.watch_seconds:g} s)...\n")
        sys.stdout.flush()
        results.append(await run_mode(args, mode))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "options": {
            k: getattr(args, k)
            for k in (
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
        "results": results,
    }


def _modes(text: str) -> tuple[str, ...]:
    values = tuple(x.strip() for x in text.split(",") if x.strip())
    if not values or any(v not in MODES for v in values):
        raise argparse.ArgumentTypeError(f"modes are {','.join(MODES)}, not {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench demand",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--renditions", type=int, default=4, help="ladder rungs, 4..7")
    parser.add_argument("--segment-duration", type=float, default=2.0, help="seconds")
    parser.add_argument("--viewers", type=int, default=3, help="viewers on one rendition")
    parser.add_argument("--watch", type=int, default=1, help="the rendition they watch")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds before the viewers")
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between viewers")
    parser.add_argument("--watch-seconds", type=float, default=60.0, help="each viewer's run")
    parser.add_argument("--modes", type=_modes, default=MODES, help="all,demand")
    parser.add_argument("--quick", action="store_true", help="5 s idle, 30 s of watching")
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    if not 4 <= args.renditions <= len(LADDER):
        parser.error(f"--renditions must be 4..{len(LADDER)}")
    if not 0 <= args.watch < args.renditions:
        parser.error("--watch must be a rendition index")
    if not 1 <= args.viewers <= 20:
        parser.error("--viewers must be 1..20")
    if not 0.5 <= args.segment_duration <= 10:
        parser.error("--segment-duration must be 0.5..10 s")
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
