"""Orchestrates the benchmark: seeder and receiver processes, measurements, JSON and markdown.

For each *variant* (seeder settings) and each receiver count, a fresh seeder process is started
(so memory numbers start clean), the receivers connect from ``--workers`` other processes, the
idle memory is read, then every receiver downloads for ``--duration`` seconds. The seeder's own
counters (CPU time from ``getrusage``, RSS/peak from ``/proc/self/status``, bytes its sessions
uploaded) are read at the start and end of that fixed window.

Everything is bounded: every wait has a timeout, every loop a count, and every process is
killed if it does not leave when asked.

The native reference (:mod:`benchmarks.native`): for every receiver count, node-datachannel
(libdatachannel, C++) streams the same 2 MiB segments in 64 KiB messages to the same number of
receivers in ``--workers`` other processes, measured the same way. Each row's "ratio to native"
is its aggregate MB/s divided by that native row's (see :data:`RATIO_NOTE`). With Chromium
enabled, one Chromium -> Chromium pair (:func:`benchmarks.chromium.browser_reference`) is an
extra row. ``--no-reference`` skips both.

Python receivers (aiortc) cost about as much CPU per MB as the seeder, so on a small machine they
cap a Python row as much as the seeder does. For every receiver count the last variant's seeder is therefore also
measured with node-datachannel receivers (:func:`benchmarks.native.node_receivers_scenario`,
``benchmarks/node_receivers.mjs``), the same way and in the same table;
``--no-native-receivers`` skips those rows. Every row also reports the receivers' CPU seconds per
MB and the share of the seeder's CPU time spent in the kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import common
from benchmarks.common import instruction_columns, memory_columns
from p2pml_py.rtc.aiortc_backend.speedups import PATCHES

#: Seconds receivers keep downloading after the measured window closes.
TAIL_S = 0.5
MB = 1_000_000  # MB/s as in "25 MB/s = 200 Mbit/s"
RATIO_NOTE = (
    "ratio to native = the row's aggregate MB/s / the aggregate MB/s of the node-datachannel "
    "sender (native row) with the same number of receivers (median of its runs with --repeat); "
    "'-' where that native row is missing or failed."
)
ROOT = Path(__file__).resolve().parent.parent  # where ``python -m benchmarks.*`` finds us


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    name: str
    loop: str  # "asyncio" or "uvloop"
    udp_buffer: int  # 0 = kernel default
    speedups: str = (
        ""  # p2pml_py.rtc.aiortc_backend.speedups patches (comma-separated) for the seeder
    )
    receiver_speedups: str = ""  # ... and for the receivers
    gc_tuning: bool = True  # where there are speedups, also tuning.tune_gc() (as the CLI does)

    def seeder_args(self) -> list[str]:
        args = ["--loop", self.loop, "--udp-buffer", str(self.udp_buffer)]
        return [*args, *self._speedup_args(self.speedups)]

    def receiver_args(self) -> list[str]:
        return self._speedup_args(self.receiver_speedups)

    def _speedup_args(self, patches: str) -> list[str]:
        if not patches:
            return []
        return ["--speedups", patches] + ([] if self.gc_tuning else ["--no-gc-tuning"])


_ALL = ",".join(PATCHES)
#: The first four patches: what "tuned" was before fast_data_path and ice_prompt_complete.
_V1 = "dtls_write_skip,stun_demux,sack_every_second_packet,transmit_scan_skip"
#: Everything but ice_prompt_complete: its share of offer-to-open.
_NO_ICE_WAKE = ",".join(p for p in PATCHES if p != "ice_prompt_complete")
#: Everything but udp_gso: one sendto per datagram.
_NO_GSO = ",".join(p for p in PATCHES if p != "udp_gso")
VARIANTS = {
    "baseline": Variant("baseline", "asyncio", 0),
    "uvloop": Variant("uvloop", "uvloop", 0),
    "buffers": Variant("buffers", "uvloop", 4 * 1024 * 1024),
    "patches-v1": Variant("patches-v1", "uvloop", 4 * 1024 * 1024, _V1, _V1, False),
    "no-ice-wake": Variant("no-ice-wake", "uvloop", 4 * 1024 * 1024, _NO_ICE_WAKE, _NO_ICE_WAKE),
    "no-gso": Variant("no-gso", "uvloop", 4 * 1024 * 1024, _NO_GSO, _NO_GSO),
    "no-gc-tuning": Variant("no-gc-tuning", "uvloop", 4 * 1024 * 1024, _ALL, _ALL, False),
    "tuned": Variant("tuned", "uvloop", 4 * 1024 * 1024, _ALL, _ALL),
    "seeder-speedups": Variant("seeder-speedups", "uvloop", 4 * 1024 * 1024, _ALL, ""),
    "receiver-speedups": Variant("receiver-speedups", "uvloop", 4 * 1024 * 1024, "", _ALL),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    receivers: tuple[int, ...]
    duration: float
    warmup: float
    workers: int
    segment_size: int
    segments: int
    variants: tuple[Variant, ...]
    chromium: bool
    reference: bool
    chromium_receivers: int
    profile: str
    repeat: int = 1
    native_receivers: bool = True  # the Python seeder with node-datachannel receivers
    receiver_loss: float = 0.0  # Python receivers drop this share of incoming datagrams


def _python() -> list[str]:
    return [sys.executable, "-m"]


async def _read_json(stream: asyncio.StreamReader, timeout: float, what: str) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        for _ in range(1000):  # skip stray non-JSON lines, boundedly
            line = await stream.readline()
            if not line:
                raise RuntimeError(f"{what}: process ended without output")
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    raise RuntimeError(f"{what}: no JSON line")


async def _stop(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _ms_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
        "max": round(ordered[-1], 1),
    }


async def _get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as response:
        value: dict[str, Any] = await response.json()
        return value


async def _post(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.post(url) as response:
        value: dict[str, Any] = await response.json()
        return value


@contextlib.asynccontextmanager
async def seeder_process(options: Options, variant: Variant, profile: str = "") -> Any:
    """Start a seeder; yields its base URL. Stops it on exit."""
    args = [
        *_python(),
        "benchmarks.seeder",
        "--segment-size",
        str(options.segment_size),
        "--segments",
        str(options.segments),
        *variant.seeder_args(),
    ]
    if profile:
        args += ["--profile", profile]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        **common.sender_affinity(),  # type: ignore[arg-type]
    )
    try:
        assert process.stdout is not None
        hello = await _read_json(process.stdout, 30, "seeder")
        url = f"http://127.0.0.1:{hello['port']}"
        try:
            yield url, hello
        finally:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with aiohttp.ClientSession() as http, asyncio.timeout(5):
                    await _post(http, f"{url}/quit")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await process.wait()
    finally:
        await _stop(process)


@dataclasses.dataclass(slots=True)
class ReceiverWorkers:
    """How a scenario starts its receiver worker processes and tells them to go.

    ``start(url, count, index)`` returns a worker that prints one JSON line once its receivers
    are connected (``open_ms``, ``errors``) and one when its download window is over (``bytes``,
    ``segments``, ``corrupt``, ``failures``, ``max_gap_s``, ``per_receiver_bytes``, ``cpu_s``);
    ``go(duration)`` is the line that starts the window; ``stop(worker)`` ends one.
    """

    kind: str
    label: str
    start: Callable[[str, int, int], Awaitable[asyncio.subprocess.Process]]
    go: Callable[[float], bytes]
    stop: Callable[[asyncio.subprocess.Process], Awaitable[None]]
    #: Workers print {"loaded": true} once started and connect on a {"type": "connect"} line.
    barrier: bool = False


def python_workers(options: Options, variant: Variant) -> ReceiverWorkers:
    """Python receivers (:mod:`benchmarks.receiver`: aiortc ``PeerSession`` downloads)."""

    async def start(url: str, count: int, index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *_python(),
            "benchmarks.receiver",
            "--url",
            url,
            "--count",
            str(count),
            "--index",
            str(index),
            "--segments",
            str(options.segments),
            "--segment-size",
            str(options.segment_size),
            *variant.receiver_args(),
            *(["--loss", str(options.receiver_loss)] if options.receiver_loss else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            **common.receiver_affinity(),  # type: ignore[arg-type]
        )

    return ReceiverWorkers("python", "", start, lambda d: f"go {d}\n".encode(), _stop, True)


async def python_scenario(options: Options, variant: Variant, receivers: int) -> dict[str, Any]:
    """One seeder, ``receivers`` Python receivers spread over worker processes."""
    return await seeder_scenario(options, variant, receivers, python_workers(options, variant))


async def seeder_scenario(
    options: Options, variant: Variant, receivers: int, kind: ReceiverWorkers
) -> dict[str, Any]:
    """One seeder, ``receivers`` receivers spread over ``--workers`` processes started by ``kind``."""
    load = os.getloadavg()
    suffix = "" if kind.kind == "python" else f".{kind.kind}"
    profile = f"{options.profile}.{variant.name}.{receivers}{suffix}" if options.profile else ""
    async with seeder_process(options, variant, profile) as (url, hello):
        async with aiohttp.ClientSession() as http:
            base = await _get(http, f"{url}/stats")
            workers: list[asyncio.subprocess.Process] = []
            try:
                offset = 0
                for count in _split(receivers, options.workers):
                    workers.append(await kind.start(url, count, offset))
                    offset += count
                if kind.barrier:  # all started: now they may connect
                    for worker in workers:
                        assert worker.stdout is not None
                        await _read_json(worker.stdout, 60, "receiver start")
                    for worker in workers:
                        assert worker.stdin is not None
                        worker.stdin.write(b'{"type": "connect"}\n')
                        await worker.stdin.drain()
                ready = await asyncio.gather(
                    *(
                        _read_json(w.stdout, 30 + 3 * receivers, "receiver")
                        for w in workers
                        if w.stdout
                    )
                )
                for reply in ready:
                    if "open_ms" not in reply:
                        raise RuntimeError(f"receiver worker: {reply.get('error', reply)}")
                idle = await _get(http, f"{url}/stats")
                if os.environ.get("P2PML_BENCH_TRACE"):  # every connection, in order
                    sys.stderr.write(f"seeder offer->open ms: {idle['open_ms']}\n")
                    for index, reply in enumerate(ready):
                        sys.stderr.write(f"worker {index} connect ms: {reply['open_ms']}\n")
                await _post(http, f"{url}/reset_peak")
                # The receivers download for warm-up + window + a tail. The window starts after
                # the warm-up: the seeder counts bytes as it queues them, and its per-receiver
                # queues (up to ~1 MiB each) start empty, so a window opened at "go" would count
                # every queue's fill as delivered bytes.
                for worker in workers:
                    assert worker.stdin is not None
                    worker.stdin.write(kind.go(options.warmup + options.duration + TAIL_S))
                    await worker.stdin.drain()
                await asyncio.sleep(options.warmup)
                start = await _get(http, f"{url}/stats")
                # A fixed measurement window, not a wait for a condition.
                await asyncio.sleep(options.duration)
                end = await _get(http, f"{url}/stats")
                done = await asyncio.gather(
                    *(_read_json(w.stdout, 60, "receiver") for w in workers if w.stdout)
                )
                for reply in done:
                    if "bytes" not in reply:
                        raise RuntimeError(f"receiver worker: {reply.get('error', reply)}")
            finally:
                await asyncio.gather(*(kind.stop(worker) for worker in workers))
    connected = sum(len(r["open_ms"]) for r in ready)
    window = end["time"] - start["time"]
    sent = end["bytes_uploaded"] - start["bytes_uploaded"]
    cpu = end["cpu_s"] - start["cpu_s"]
    sys_cpu = end["sys_cpu_s"] - start["sys_cpu_s"]
    mb = sent / MB
    received_mb = sum(d["bytes"] for d in done) / MB
    # Receivers report CPU for their whole run (warm-up + window + tail): scale to the window.
    receiver_cpu = sum(
        d["cpu_s"] * min(1.0, window / d["elapsed"]) if d.get("elapsed") else d["cpu_s"]
        for d in done
    )
    row: dict[str, Any] = (
        {"kind": kind.kind, "label": kind.label} if kind.label else {"kind": kind.kind}
    )
    row |= {
        "variant": variant.name,
        "receiver_loss": options.receiver_loss if kind.kind == "python" else 0.0,
        "loop": hello.get("loop"),
        "receivers": receivers,
        "workers": len(workers),
        "connected": connected,
        "connect_errors": [e for r in ready for e in r["errors"]],
        "load_before": [round(x, 2) for x in load],
        "window_s": round(window, 3),
        "aggregate_MBps": round(mb / window, 2) if window > 0 else 0.0,
        "seeder_cpu_s": round(cpu, 3),
        "seeder_sys_cpu_s": round(sys_cpu, 3),
        "seeder_sys_share": round(sys_cpu / cpu, 3) if cpu > 0 else None,
        "seeder_cpu_util": round(cpu / window, 3) if window > 0 else 0.0,
        # Datagrams the seeder sent per datagram it received (mostly SACKs) in the window: a
        # busier receiver acknowledges more packets at once, which makes each MB cheaper to send.
        "datagrams_out_per_in": _ratio(
            end.get("datagrams_sent", 0) - start.get("datagrams_sent", 0),
            end.get("datagrams_received", 0) - start.get("datagrams_received", 0),
        ),
        "cpu_s_per_MB": round(cpu / mb, 4) if mb > 0 else None,
        **instruction_columns(start.get("instructions", {}), end.get("instructions", {}), mb),
        "one_core_MBps": round(mb / cpu, 1) if cpu > 0 else None,
        # All receiver workers' CPU (user + system, every thread) over their download window,
        # per MB the seeder delivered in the window -- the same MB as the aggregate MB/s. Not per
        # MB of whole segments the receivers finished: with 30 receivers sharing a few MB/s, a
        # receiver finishes one or two 2 MiB segments in a window, or none.
        "receiver_cpu_s": round(receiver_cpu, 3),
        "receiver_cpu_s_per_MB": round(receiver_cpu / mb, 4) if mb > 0 else None,
        "offer_to_open_ms": _ms_summary(idle["open_ms"]),
        "receiver_open_ms": _ms_summary([v for r in ready for v in r["open_ms"]]),
        **memory_columns(
            base["rss_kib"],
            idle["rss_kib"],
            idle["rss_after_first_kib"],
            end["peak_kib"],
            connected,
        ),
        "max_gap_s": round(max(d["max_gap_s"] for d in done), 3) if done else None,
        "received_MB": round(received_mb, 2),  # whole segments
        "segments_received": sum(d["segments"] for d in done),
        "corrupt_segments": sum(d["corrupt"] for d in done),
        "download_failures": _merge([d["failures"] for d in done]),
        "seeder_closed_sessions": end["closed_reasons"],
        "min_receiver_MB": round(min(b for d in done for b in d["per_receiver_bytes"]) / MB, 2)
        if connected
        else None,
    }
    if done and all("data_bytes" in d for d in done):  # node receivers: partial segments too
        row["received_data_MB"] = round(sum(d["data_bytes"] for d in done) / MB, 2)
    if done and all("sys_cpu_s" in d for d in done):  # node receivers: their kernel time
        row["receiver_sys_cpu_s"] = round(sum(d["sys_cpu_s"] for d in done), 3)
    return row


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for d in dicts:
        for key, value in d.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def native_rates(results: list[dict[str, Any]]) -> dict[int, float]:
    """Receiver count -> the native reference's aggregate MB/s (median over repeated runs)."""
    rates: dict[int, list[float]] = {}
    for r in results:
        if r.get("kind") == "native" and r.get("aggregate_MBps"):
            rates.setdefault(r["receivers"], []).append(r["aggregate_MBps"])
    return {n: statistics.median(values) for n, values in rates.items()}


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator > 0 else None


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        "| sender | receivers | aggregate MB/s | sender CPU s/MB | sender Minstr/MB (user/kernel) "
        "| sender CPU % | seeder sys % "
        "| datagrams out/in "
        "| 1-core MB/s | receiver CPU s/MB | ratio to native | offer→open ms (median/max) "
        "| idle KiB/extra conn | peak KiB/conn | longest gap s | failures | load |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    native = native_rates(results)
    for r in results:
        open_ms = r.get("offer_to_open_ms") or {}
        native_rate = native.get(r.get("receivers", -1))
        ratio = (
            f"{r['aggregate_MBps'] / native_rate:.2f}"
            if native_rate and r.get("aggregate_MBps") is not None
            else "-"
        )
        failures = r.get("download_failures") or {}
        fail_text = ", ".join(f"{k}:{v}" for k, v in sorted(failures.items())) or "0"
        if r.get("error"):
            fail_text = "not measured"
        if r.get("corrupt_segments"):
            fail_text += f", CORRUPT:{r['corrupt_segments']}"
        lines.append(
            "| {sender} | {n} | {agg} | {cpu} | {instr} | {util} | {sys} | {dgram} | {core} | {rcpu} | {ratio} | {open} | {idle} | {peak} | {gap} | {fail} | {load} |".format(
                sender=(r.get("label") or f"python {r.get('variant')} ({r.get('loop')})")
                + (f", {r['receiver_loss'] * 100:g} % loss" if r.get("receiver_loss") else ""),
                n=r.get("receivers", "-"),
                agg=_fmt(r.get("aggregate_MBps")),
                cpu=_fmt(r.get("cpu_s_per_MB")),
                instr=f"{_fmt(r.get('sender_Minstr_per_MB_user'))}/"
                f"{_fmt(r.get('sender_Minstr_per_MB_kernel'))}",
                util=_fmt(
                    r["seeder_cpu_util"] * 100 if r.get("seeder_cpu_util") is not None else None
                ),
                sys=_fmt(
                    r["seeder_sys_share"] * 100 if r.get("seeder_sys_share") is not None else None
                ),
                dgram=_fmt(r.get("datagrams_out_per_in")),
                core=_fmt(r.get("one_core_MBps")),
                rcpu=_fmt(r.get("receiver_cpu_s_per_MB")),
                ratio=ratio,
                open=f"{_fmt(open_ms.get('median'))}/{_fmt(open_ms.get('max'))}"
                if open_ms
                else "-",
                idle=_fmt(r.get("idle_kib_per_extra_conn")),
                peak=_fmt(r.get("peak_kib_per_conn")),
                gap=_fmt(r.get("max_gap_s")),
                fail=fail_text,
                load=_fmt((r.get("load_before") or [None])[0]),
            )
        )
    return "\n".join(lines)


def format_summary(results: list[dict[str, Any]]) -> str:
    """Medians over repeated runs of each (sender, receivers) pair; empty without repeats."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        if (
            r.get("kind") in ("python", "native", "node-receivers")
            and r.get("aggregate_MBps") is not None
        ):
            name = r["label"] if r["kind"] == "node-receivers" else r["variant"]
            groups.setdefault((name, r["receivers"]), []).append(r)
    if all(len(g) < 2 for g in groups.values()):
        return ""
    lines = [
        "| variant | receivers | runs | aggregate MB/s | sender CPU s/MB "
        "| sender Minstr/MB (user/kernel) | 1-core MB/s | receiver CPU s/MB | longest gap s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (variant, receivers), runs in groups.items():

        def median(key: str, runs: list[dict[str, Any]] = runs) -> float | None:
            values = [r[key] for r in runs if r.get(key) is not None]
            return round(statistics.median(values), 4) if values else None

        lines.append(
            f"| {variant} | {receivers} | {len(runs)} | {_fmt(median('aggregate_MBps'))} "
            f"| {_fmt(median('cpu_s_per_MB'))} "
            f"| {_fmt(median('sender_Minstr_per_MB_user'))}/"
            f"{_fmt(median('sender_Minstr_per_MB_kernel'))} | {_fmt(median('one_core_MBps'))} "
            f"| {_fmt(median('receiver_cpu_s_per_MB'))} "
            f"| {_fmt(max(r['max_gap_s'] or 0 for r in runs))} |"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


async def run(options: Options, out_dir: Path) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    if options.reference and options.chromium:
        from benchmarks import chromium

        try:
            results.append(await chromium.browser_reference(options))
        except Exception as exc:  # a missing browser must not lose the Python numbers
            errors.append(f"Chromium reference: {exc!r}")
    # Variants interleaved (A B A B ...) so that a change in the machine's load hits all alike;
    # the native reference runs next to them, once per receiver count and repeat.
    for receivers in options.receivers:
        for repeat in range(options.repeat):
            if options.reference:
                from benchmarks import native

                sys.stderr.write(f"bench: native, {receivers} receiver(s), run {repeat + 1}...\n")
                row = await native.native_reference(options, receivers)
                results.append(row)
                if row.get("error"):
                    errors.append(f"native/{receivers}: {row['error']}")
            for variant in options.variants:
                sys.stderr.write(
                    f"bench: {variant.name}, {receivers} receiver(s), run {repeat + 1}...\n"
                )
                try:
                    results.append(await python_scenario(options, variant, receivers))
                except Exception as exc:
                    errors.append(f"{variant.name}/{receivers}: {exc!r}")
            if options.native_receivers:
                from benchmarks import native

                variant = options.variants[-1]
                sys.stderr.write(
                    f"bench: {variant.name} -> node-datachannel, {receivers} receiver(s), "
                    f"run {repeat + 1}...\n"
                )
                try:
                    row = await native.node_receivers_scenario(options, variant, receivers)
                    results.append(row)
                    if row.get("error"):
                        errors.append(f"node receivers/{receivers}: {row['error']}")
                except Exception as exc:
                    errors.append(f"{variant.name} -> node receivers/{receivers}: {exc!r}")
    if options.chromium:
        from benchmarks import chromium

        try:
            results.append(await chromium.chromium_receivers(options, options.variants[-1]))
        except Exception as exc:
            errors.append(f"chromium receivers: {exc!r}")
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "load_at_end": list(os.getloadavg())},
        "options": {
            **{k: v for k, v in dataclasses.asdict(options).items() if k != "variants"},
            "variants": [dataclasses.asdict(v) for v in options.variants],
        },
        "results": results,
        "errors": errors,
    }
    write_report(report, out_dir)
    return report


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    table = format_table(report["results"])
    summary = format_summary(report["results"])
    if summary:
        table += "\n\nMedians over the repeated runs (longest gap: the worst run):\n\n" + summary
    errors = report["errors"]
    for name in (f"bench-{stamp}", "latest"):
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / f"{name}.md").write_text(
            f"# p2pml_py seeder benchmark, {report['date']}\n\n{RATIO_NOTE}\n\n{table}\n"
            + ("\nErrors:\n" + "\n".join(f"- {e}" for e in errors) + "\n" if errors else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced run, about 2 minutes")
    parser.add_argument("--receivers", default="", help="comma-separated counts (1,10,30)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds of transfer")
    parser.add_argument(
        "--warmup",
        type=float,
        default=-1.0,
        help="seconds of transfer before the measured window (default 2, --quick 1)",
    )
    parser.add_argument("--workers", type=int, default=3, help="receiver processes")
    parser.add_argument("--segment-size", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument(
        "--variants", default="", help=f"comma-separated seeder variants: {','.join(VARIANTS)}"
    )
    parser.add_argument("--no-chromium", action="store_true", help="skip Chromium receivers")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the native references (node-datachannel; Chromium -> Chromium)",
    )
    parser.add_argument(
        "--no-native-receivers",
        action="store_true",
        help="skip the Python seeder -> node-datachannel receivers rows",
    )
    parser.add_argument("--chromium-receivers", type=int, default=0)
    parser.add_argument("--profile", default="", help="cProfile the seeder into PREFIX.*")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each Python scenario")
    parser.add_argument(
        "--receiver-loss",
        type=common.loss_share,
        default=0.0,
        help="Python receivers drop this share (0-0.5) of incoming datagrams: a lossy network",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place processes (default: the sender alone on the first CPU)",
    )
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    receivers = tuple(int(x) for x in args.receivers.split(",") if x) or (1, 10, 30)
    duration = args.duration or (3.0 if args.quick else 10.0)
    variant_names = [v for v in args.variants.split(",") if v] or (
        ["tuned"] if args.quick else ["baseline", "uvloop", "buffers", "patches-v1", "tuned"]
    )
    unknown = [v for v in variant_names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    options = Options(
        receivers=receivers,
        duration=duration,
        warmup=args.warmup if args.warmup >= 0 else (1.0 if args.quick else 2.0),
        workers=args.workers,
        segment_size=args.segment_size,
        segments=args.segments,
        variants=tuple(VARIANTS[v] for v in variant_names),
        chromium=not args.no_chromium,
        reference=not args.no_reference,
        chromium_receivers=args.chromium_receivers or (3 if args.quick else 10),
        profile=args.profile,
        repeat=max(1, min(args.repeat, 10)),
        native_receivers=not args.no_native_receivers,
        receiver_loss=args.receiver_loss,
    )
    pinning = common.plan_pinning(not args.no_pin)
    sys.stdout.write(f"CPU pinning: {pinning}\n")
    report = asyncio.run(run(options, Path(args.out)))
    sys.stdout.write(format_table(report["results"]) + "\n" + RATIO_NOTE + "\n")
    summary = format_summary(report["results"])
    if summary:
        sys.stdout.write("\nMedians over the repeated runs:\n" + summary + "\n")
    for error in report["errors"]:
        sys.stdout.write(f"error: {error}\n")
    sys.stdout.write(f"results: {Path(args.out) / 'latest.json'} and latest.md\n")
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
