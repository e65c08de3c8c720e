"""Capacity benchmark: how many real-time viewers ONE seeder process on ONE core can hold.

``scripts/bench capacity`` (or ``python -m benchmarks capacity``). A super-peer's real job is many
viewers, each playing in real time -- one segment every segment duration D -- joining in a burst.
For every (seed, bitrate, K) a fresh seed process is started, pinned to the first CPU:

* ``python``: :mod:`benchmarks.capacity_seed`, the product's code path (a real ``Swarm`` over a
  real ``RtcFactory`` and ``SegmentStore``, tuned as ``p2pml-py seed`` tunes itself), offers
  arriving over HTTP and going to ``Swarm.handle_offer`` as a browser's do through the tracker;
* ``native``: ``benchmarks/capacity_native_seed.mjs``, node-datachannel doing the same job with
  the same HTTP API.

Then K node-datachannel viewers (``benchmarks/capacity_viewers.mjs``, in ``--workers`` processes
on the other CPU(s)) all join at once (after a barrier), each as a browser does (it makes the
offer, the seed answers). Once every viewer is open or gave up (60 s), the seed's heap is read
with K idle connections; then every viewer plays for ``--duration`` seconds: a request every D
seconds from a random phase, strictly one at a time. The segment size is bitrate x D.

A K **holds** when every viewer connected, no segment was late (completed more than D after it
was due, or never), no connection was dropped, nothing arrived corrupt, and the longest wait
for a byte (time to first byte, or a gap between two messages of a download) stayed under 1 s.
``--search`` keeps multiplying K by 1.5 after the fixed list while K holds.

Columns: offer→open (viewers) runs from creating the PeerConnection to the open event; the seed's
own from its handler getting the POST to the connection being open (Python: the peer in
``swarm.peers``; native: libdatachannel's data-channel callback) -- time the request waited in the
listen backlog before the handler ran is not in it. Seed CPU % is the seed's CPU seconds (user +
system, all threads) over the play window divided by its wall seconds; RSS is at the end of the
window; heap KiB/conn is (heap with K idle connections - heap before the first, both after a full
garbage collection) / connections (Python: glibc ``mallinfo2`` in-use bytes + pymalloc's allocated
blocks; native: V8 ``heapUsed + external``, which leaves out libdatachannel's C++ allocations --
compare RSS KiB/conn, the RSS growth from no connection to K idle ones per connection, for those).
Viewers CPU % is the viewer workers' CPU over their play window, as a share of the CPU(s) they are
pinned to: near 100 the viewers, not the seed, limit the row. Connect errors counts viewers that
never opened; "+N retried" are tries that failed before the channel opened and were made again (a
libdatachannel race on the viewer's side, see ``capacity_viewers.mjs``). UDP rcvbuf drops:
datagrams the kernel dropped in the play window because a socket's receive buffer was full (any
process of the row; the private network namespace counts only the benchmark's).
Results: ``bench-results/capacity-latest.{json,md}`` and a timestamped copy.

Every wait is bounded and every process is stopped on exit. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import math
import os
import resource
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import common
from benchmarks.run import ROOT, _read_json, _split, _stop
from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS

SEED_SCRIPT = Path(__file__).resolve().with_name("capacity_native_seed.mjs")
VIEWERS_SCRIPT = Path(__file__).resolve().with_name("capacity_viewers.mjs")
INTEROP = ROOT / "interop"
SEEDS = ("python", "native")
#: The two renditions measured by default: kbit/s -> viewer counts.
DEFAULT_RENDITIONS: tuple[tuple[float, tuple[int, ...]], ...] = (
    (350.0, (50, 200, 400, 800)),
    (1000.0, (50, 200, 300)),
)
MAX_VIEWERS = 5000
SEARCH_STEPS = 8
#: A K holds only if no viewer ever waited this long for a byte.
MAX_WAIT_S = 1.0
CONNECT_TIMEOUT_S = 60.0
MB = 1_000_000
#: Lines of a child's stderr kept (the last ones), for error messages and the report.
TAIL_LINES = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    renditions: tuple[tuple[float, tuple[int, ...]], ...] = DEFAULT_RENDITIONS
    segment_duration: float = 2.0
    duration: float = 20.0
    workers: int = 2
    segments: int = 30
    seeds: tuple[str, ...] = SEEDS
    search: bool = False
    segment_size: int = 0  # bytes; 0: bitrate x segment duration
    connect_timeout: float = CONNECT_TIMEOUT_S

    @property
    def grace(self) -> float:
        """Seconds a download still running at the window's end may take to finish."""
        return 2 * self.segment_duration + 3.0

    def size(self, bitrate_kbit: float) -> int:
        if self.segment_size:
            return self.segment_size
        return max(1, round(bitrate_kbit * 1000 / 8 * self.segment_duration))


class MachineryError(RuntimeError):
    """A process of the benchmark failed: the row has no numbers."""


# -- what goes on the wire, encoded by the product ------------------------------------------------
def wire_material(segments: int, size: int) -> dict[str, Any]:
    """Every message the viewers and the native seed exchange, encoded by :mod:`p2pml_py.wire`:
    per segment its ``SegmentRequest`` (request id = segment % 1000), the seed's ``SegmentData``
    / ``SegmentDataSendingCompleted`` / ``SegmentAbsent`` answers, the sizes of its data messages
    (:func:`~p2pml_py.wire.split_segment_data`) and its SHA-256; the seed's announcement of every
    segment and a viewer's own (empty) one."""
    from p2pml_py.wire import (
        SegmentAbsent,
        SegmentData,
        SegmentDataSendingCompleted,
        SegmentRequest,
        SegmentsAnnouncement,
        encode,
        split_segment_data,
    )

    per_segment = []
    for segment in range(segments):
        request_id = segment % 1000
        data = common.segment_bytes(segment, size)
        per_segment.append(
            {
                "segment": segment,
                "request": encode(SegmentRequest(segment, request_id))[0].hex(),
                "data": encode(SegmentData(segment, request_id, size))[0].hex(),
                "done": encode(SegmentDataSendingCompleted(segment, request_id))[0].hex(),
                "absent": encode(SegmentAbsent(segment, request_id))[0].hex(),
                "digest": common.segment_digest(segment, size),
                "chunks": [len(chunk) for chunk in split_segment_data(data)],
            }
        )
    return {
        "segments": per_segment,
        "seed_announce": [m.hex() for m in encode(SegmentsAnnouncement(tuple(range(segments))))],
        "viewer_announce": encode(SegmentsAnnouncement())[0].hex(),
    }


# -- processes ------------------------------------------------------------------------------------
def _node() -> str:
    from benchmarks import native

    try:
        return native._node()
    except native.NativeUnavailable as exc:
        raise MachineryError(str(exc)) from exc


async def _drain(stream: asyncio.StreamReader | None, tail: collections.deque[str]) -> None:
    """Keeps reading a child's stderr (a full pipe would block it); the last lines are kept."""
    if stream is None:
        return
    for _ in range(10_000_000):
        line = await stream.readline()
        if not line:
            return
        tail.append(line.decode(errors="replace").rstrip())


class Child:
    """A child process with its stderr drained into a short tail."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._drain = asyncio.create_task(_drain(process.stderr, self.tail))

    async def read(self, timeout: float, what: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            value = await _read_json(self.process.stdout, timeout, f"{self.name}: {what}")
        except (RuntimeError, TimeoutError) as exc:
            raise MachineryError(f"{self.name}: {what}: {exc!r}; stderr: {self.stderr()}") from exc
        if "error" in value:
            raise MachineryError(f"{self.name}: {value['error']}; stderr: {self.stderr()}")
        return value

    def write(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write((json.dumps(message) + "\n").encode())

    def stderr(self) -> str:
        return " | ".join(self.tail) or "-"

    async def stop(self) -> None:
        # Closing stdin lets a node worker close its peers and join libdatachannel's threads.
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.process.wait()
        await _stop(self.process)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._drain
        self._drain.cancel()
        await asyncio.gather(self._drain, return_exceptions=True)


async def _get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with asyncio.timeout(60), http.get(url) as response:
        value: dict[str, Any] = await response.json()
        return value


@contextlib.asynccontextmanager
async def seed_process(
    seed: str,
    options: Options,
    size: int,
    material: dict[str, Any],
    workdir: Path,
    viewers: int = 0,
) -> Any:
    """Start a seed on the sender CPU; yields (child, base URL, hello). Stops it on exit."""
    lifetime = options.connect_timeout + options.duration + options.grace + 300
    if seed == "python":
        args = [
            sys.executable,
            "-m",
            "benchmarks.capacity_seed",
            "--segment-size",
            str(size),
            "--segments",
            str(options.segments),
            "--lifetime",
            str(lifetime),
            # the CLI's process-wide cap (1000), raised only when a row has more viewers
            "--max-connections",
            str(max(SERVER_MAX_CONNECTIONS, viewers)),
        ]
    elif seed == "native":
        segments_file = workdir / "segments.bin"
        with segments_file.open("wb") as out:
            for segment in range(options.segments):
                out.write(common.segment_bytes(segment, size))
        config = {
            "segments_file": str(segments_file),
            "size": size,
            "announce": material["seed_announce"],
            "requests": material["segments"],
            "lifetime": lifetime,
        }
        config_file = workdir / "native-seed.json"
        config_file.write_text(json.dumps(config))
        args = [
            _node(),
            "--expose-gc",
            str(SEED_SCRIPT),
            "--config",
            str(config_file),
            "--interop",
            str(INTEROP),
        ]
    else:
        raise MachineryError(f"unknown seed {seed!r}")
    # P2PML_CAPACITY_SEED_WRAPPER="heaptrack -o /tmp/seed" (or "py-spy record -o f --"): the
    # seed runs under that command, for a profile of the same run.
    args = shlex.split(os.environ.get("P2PML_CAPACITY_SEED_WRAPPER", "")) + args
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        **common.sender_affinity(),  # type: ignore[arg-type]
    )
    child = Child(process, f"{seed} seed")
    try:
        hello = await child.read(60, "start")
        url = f"http://127.0.0.1:{hello['port']}"
        try:
            yield child, url, hello
        finally:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                async with aiohttp.ClientSession() as http, asyncio.timeout(10):
                    async with http.post(f"{url}/quit") as response:
                        await response.read()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await process.wait()
    finally:
        await child.stop()


async def start_viewers(
    url: str, count: int, index: int, size: int, options: Options, material: dict[str, Any]
) -> Child:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(VIEWERS_SCRIPT),
        "--interop",
        str(INTEROP),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        **common.receiver_affinity(),  # type: ignore[arg-type]
    )
    child = Child(process, f"viewer worker {index}")
    child.write(
        {
            "type": "config",
            "url": url,
            "count": count,
            "index": index,
            "size": size,
            "segment_duration": options.segment_duration,
            "segments": [
                {k: s[k] for k in ("request", "data", "done", "absent", "digest")}
                for s in material["segments"]
            ],
            "announce": material["viewer_announce"],
            "connect_timeout": options.connect_timeout,
            "grace": options.grace,
        }
    )
    return child


# -- one measurement ------------------------------------------------------------------------------
def udp_counters() -> dict[str, int]:
    """This network namespace's UDP counters (``/proc/net/snmp``): every process of a row shares
    it (scripts/bench runs in its own), so ``RcvbufErrors`` counts the datagrams any of them lost
    to a full socket receive buffer -- each one an SCTP retransmission, after a timeout at worst.
    """
    try:
        with open("/proc/net/snmp", encoding="ascii") as snmp:
            rows = [line.split() for line in snmp if line.startswith("Udp:")]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=False) if v.isdigit()}


def _udp_delta(before: dict[str, int], after: dict[str, int], key: str) -> int | None:
    return after[key] - before[key] if key in before and key in after else None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))])


def _summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for d in dicts:
        for key, value in d.items():
            merged[key] = merged.get(key, 0) + int(value)
    return merged


async def scenario(
    options: Options, seed: str, bitrate_kbit: float, viewers: int
) -> dict[str, Any]:
    """One seed process, ``viewers`` viewers joining in a burst then playing: one result row.

    Raises :class:`MachineryError` when a process failed (no numbers)."""
    size = options.size(bitrate_kbit)
    material = wire_material(options.segments, size)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="p2pml-capacity-") as tmp:
        async with (
            seed_process(seed, options, size, material, Path(tmp), viewers) as (
                seed_child,
                url,
                hello,
            ),
            aiohttp.ClientSession() as http,
        ):
            base = await _get(http, f"{url}/stats?heap=1")
            workers: list[Child] = []
            try:
                offset = 0
                for count in _split(viewers, options.workers):
                    workers.append(await start_viewers(url, count, offset, size, options, material))
                    offset += count
                for worker in workers:  # started and warmed up: nothing of that is timed
                    await worker.read(60, "start")
                for worker in workers:  # the barrier: everybody joins now
                    worker.write({"type": "connect"})
                joined = await asyncio.gather(
                    *(w.read(options.connect_timeout + 60, "join") for w in workers)
                )
                if not any(j["open_ms"] for j in joined):  # nothing to measure: not a result
                    errors = _merge([j["errors"] for j in joined])
                    raise MachineryError(f"no viewer connected: {errors}")
                connected = sum(len(j["open_ms"]) for j in joined)
                idle = await _get(http, f"{url}/stats?heap=1&connected={connected}")
                udp_start = udp_counters()
                start = await _get(http, f"{url}/stats")
                for worker in workers:
                    worker.write({"type": "play", "duration": options.duration})
                # A fixed measurement window, not a wait for a condition.
                await asyncio.sleep(options.duration)
                end = await _get(http, f"{url}/stats")
                udp_end = udp_counters()
                played = await asyncio.gather(
                    *(w.read(options.grace + 60, "play") for w in workers)
                )
                final = await _get(http, f"{url}/stats")
            finally:
                await asyncio.gather(*(w.stop() for w in workers))
            seed_stderr = list(seed_child.tail)
    return _row(
        seed, bitrate_kbit, viewers, size, options, hello, load,
        base, idle, start, end, final, joined, played, seed_stderr, udp_start, udp_end,
    )  # fmt: skip


def _row(
    seed: str,
    bitrate_kbit: float,
    viewers: int,
    size: int,
    options: Options,
    hello: dict[str, Any],
    load: tuple[float, ...],
    base: dict[str, Any],
    idle: dict[str, Any],
    start: dict[str, Any],
    end: dict[str, Any],
    final: dict[str, Any],
    joined: list[dict[str, Any]],
    played: list[dict[str, Any]],
    seed_stderr: list[str],
    udp_start: dict[str, int],
    udp_end: dict[str, int],
) -> dict[str, Any]:
    open_ms = [v for j in joined for v in j["open_ms"]]
    connected = len(open_ms)
    connect_errors = _merge([j["errors"] for j in joined])
    seeder_connected = int(idle["connected"])
    ttfb = [v for p in played for v in p["ttfb_ms"]]
    completion = [v for p in played for v in p["completion_ms"]]
    total = sum(p["total"] for p in played)
    late = sum(p["late"] for p in played)
    corrupt = sum(p["corrupt"] for p in played)
    drops = {str(k): int(v) for k, v in final["drops"].items()}
    longest_wait = max((p["max_wait_ms"] for p in played), default=0.0) / 1000
    wall = end["time"] - start["time"]
    cpu = end["cpu_s"] - start["cpu_s"]
    heap_base, heap_idle = base.get("heap_bytes"), idle.get("heap_bytes")
    heap_per_conn = (
        round((heap_idle - heap_base) / 1024 / seeder_connected, 1)
        if heap_base is not None and heap_idle is not None and seeder_connected
        else None
    )
    if seed == "native":
        label = (
            f"native (node-datachannel {hello.get('node_datachannel')}, "
            f"libdatachannel {hello.get('libdatachannel')})"
        )
    else:
        label = f"python ({hello.get('loop', '?').split('.')[0]})"
    holds = (
        connected == viewers
        and total > 0
        and late == 0
        and sum(drops.values()) == 0
        and corrupt == 0
        and longest_wait < MAX_WAIT_S
    )
    return {
        "seed": seed,
        "label": label,
        "bitrate_kbit": bitrate_kbit,
        "viewers": viewers,
        "segment_size": size,
        "segment_duration_s": options.segment_duration,
        "window_s": round(wall, 3),
        "workers": len(joined),
        "load_before": [round(x, 2) for x in load],
        "connected": connected,
        "seeder_connected": seeder_connected,
        "connect_errors": connect_errors,
        "connect_error_count": sum(connect_errors.values()),
        # Tries of a viewer that failed before its channel opened and were made again (see
        # capacity_viewers.mjs connect(): libdatachannel's race on the viewer's side).
        "connect_retries": _merge([j.get("retries", {}) for j in joined]),
        "offer_to_open_ms": _summary(open_ms),
        "seeder_offer_to_open_ms": _summary([float(v) for v in idle["open_ms"]]),
        "seeder_connection_errors": idle.get("connection_errors"),
        "seeder_offer_errors": idle.get("offer_errors", {}),
        "segments_total": total,
        "segments_completed": sum(p["completed"] for p in played),
        "segments_late": late,
        "segments_missed": sum(p["missed"] for p in played),
        "download_failures": _merge([p["failures"] for p in played]),
        "longest_wait_s": round(longest_wait, 3),
        "ttfb_ms": _summary(ttfb),
        "completion_ms": _summary(completion),
        "seeder_cpu_s": round(cpu, 3),
        "seeder_cpu_pct": round(cpu / wall * 100, 1) if wall > 0 else None,
        "uploaded_MB_in_window": round((end["bytes_uploaded"] - start["bytes_uploaded"]) / MB, 2),
        "received_MB": round(sum(p["bytes"] for p in played) / MB, 2),
        "rss_mb": round(end["rss_kib"] / 1024, 1),
        "peak_rss_mb": round(final["peak_kib"] / 1024, 1),
        "rss_base_mb": round(base["rss_kib"] / 1024, 1),
        "rss_kib_per_conn": round((idle["rss_kib"] - base["rss_kib"]) / seeder_connected, 1)
        if seeder_connected
        else None,
        "heap_base_bytes": heap_base,
        "heap_idle_bytes": heap_idle,
        "heap_kib_per_conn": heap_per_conn,
        "seed_full_collection_ms": idle.get("full_collection_ms"),
        "drops": drops,
        "corrupt": corrupt,
        "viewers_closed": sum(p["closed"] for p in played),
        "viewers_not_announced": sum(p["not_announced"] for p in played),
        # Datagrams lost to full socket receive buffers (any process) in the play window.
        "udp_rcvbuf_errors": _udp_delta(udp_start, udp_end, "RcvbufErrors"),
        "udp_datagrams_in_window": _udp_delta(udp_start, udp_end, "InDatagrams"),
        "viewer_cpu_s": round(sum(p["cpu_s"] for p in played), 3),
        # The viewers' share of their CPU(s) while playing: near 100 the viewers, not the seed,
        # limit the row.
        "viewer_cpu_pct": round(
            sum(p["cpu_s"] for p in played)
            / max(max(p["elapsed"] for p in played), 1e-3)
            / (len(common.RECEIVER_CPUS) or os.cpu_count() or 1)
            * 100,
            1,
        )
        if played
        else None,
        "holds": holds,
        "seed_stderr_tail": seed_stderr[-5:],
    }


async def measure(options: Options, seed: str, bitrate_kbit: float, viewers: int) -> dict[str, Any]:
    """:func:`scenario`, or a row with an ``error`` when the machinery failed."""
    sys.stderr.write(f"capacity: {seed} seed, {bitrate_kbit:g} kbit/s, {viewers} viewers...\n")
    try:
        row = await scenario(options, seed, bitrate_kbit, viewers)
    except Exception as exc:  # one failed row must not lose the others' numbers
        error = " ".join(str(exc).split())[:600] or repr(exc)
        sys.stderr.write(f"capacity: {seed}/{bitrate_kbit:g}/{viewers}: FAILED: {error}\n")
        return {
            "seed": seed,
            "label": seed,
            "bitrate_kbit": bitrate_kbit,
            "viewers": viewers,
            "error": error,
            "holds": False,
        }
    sys.stderr.write(
        f"capacity: {seed}/{bitrate_kbit:g}/{viewers}: connected {row['connected']}, "
        f"late {row['segments_late']}/{row['segments_total']}, "
        f"longest wait {row['longest_wait_s']} s, cpu {row['seeder_cpu_pct']} %, "
        f"holds {'yes' if row['holds'] else 'no'}\n"
    )
    return row


async def run(options: Options) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    largest: dict[str, dict[str, int | None]] = {}
    for bitrate, counts in options.renditions:
        # Seeds interleaved per K, so that a change in the machine's load hits both alike.
        for viewers in counts:
            for seed in options.seeds:
                results.append(await measure(options, seed, bitrate, viewers))
        if options.search:
            for seed in options.seeds:
                rows = [r for r in results if r["seed"] == seed and r["bitrate_kbit"] == bitrate]
                k = counts[-1]
                for _ in range(SEARCH_STEPS):
                    if not rows or not rows[-1]["holds"] or k >= MAX_VIEWERS:
                        break
                    k = min(MAX_VIEWERS, math.ceil(k * 1.5))
                    row = await measure(options, seed, bitrate, k)
                    row["search"] = True
                    results.append(row)
                    rows.append(row)
    for seed in options.seeds:
        for bitrate, _ in options.renditions:
            held = [
                r["viewers"]
                for r in results
                if r["seed"] == seed and r["bitrate_kbit"] == bitrate and r["holds"]
            ]
            largest.setdefault(seed, {})[f"{bitrate:g}"] = max(held) if held else None
    errors = [
        f"{r['seed']}/{r['bitrate_kbit']:g} kbit/s/{r['viewers']}: {r['error']}"
        for r in results
        if r.get("error")
    ]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "load_at_end": list(os.getloadavg())},
        "options": dataclasses.asdict(options) | {"grace_s": options.grace},
        "results": results,
        "largest_holding": largest,
        "errors": errors,
    }


# -- output ---------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _drops_text(drops: dict[str, int]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(drops.items())) or "0"


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        "| seed | kbit/s | K | connected | connect errors | offer→open ms p50/p99/max "
        "| seed offer→open ms p50/p99 | late/total segments | longest wait for a byte s "
        "| TTFB p99 ms | seed CPU % | RSS MB | heap KiB/idle conn | RSS KiB/conn | drops "
        "| corrupt | holds | viewers CPU % | UDP rcvbuf drops |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        seed = r["seed"] + (" (search)" if r.get("search") else "")
        if r.get("error"):
            lines.append(
                f"| {seed} | {r['bitrate_kbit']:g} | {r['viewers']} | NOT MEASURED: "
                f"{r['error'][:160].replace('|', '/')} |" + "  |" * 12 + " no |  |  |"
            )
            continue
        o, so, t = r["offer_to_open_ms"], r["seeder_offer_to_open_ms"], r["ttfb_ms"]
        lines.append(
            "| "
            + " | ".join(
                [
                    seed,
                    f"{r['bitrate_kbit']:g}",
                    str(r["viewers"]),
                    str(r["connected"]),
                    str(r["connect_error_count"])
                    + (
                        f" (+{sum(r['connect_retries'].values())} retried)"
                        if r.get("connect_retries")
                        else ""
                    ),
                    f"{_fmt(o['p50'])}/{_fmt(o['p99'])}/{_fmt(o['max'])}",
                    f"{_fmt(so['p50'])}/{_fmt(so['p99'])}",
                    f"{r['segments_late']}/{r['segments_total']}",
                    _fmt(r["longest_wait_s"], 2),
                    _fmt(t["p99"]),
                    _fmt(r["seeder_cpu_pct"], 1),
                    _fmt(r["rss_mb"], 0),
                    _fmt(r["heap_kib_per_conn"], 1),
                    _fmt(r["rss_kib_per_conn"], 0),
                    _drops_text(r["drops"]),
                    str(r["corrupt"]),
                    "yes" if r["holds"] else "no",
                    _fmt(r["viewer_cpu_pct"], 0),
                    _fmt(r.get("udp_rcvbuf_errors")),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    options = report["options"]
    text = [
        f"{len(report['results'])} row(s); D = {options['segment_duration']:g} s segments, "
        f"{options['duration']:g} s play window, {options['workers']} viewer worker(s); "
        f"holds = all connected, 0 late, 0 drops, 0 corrupt, longest wait < {MAX_WAIT_S:g} s",
        "",
        format_table(report["results"]),
        "",
        "Largest K that held: "
        + "; ".join(
            f"{seed} {bitrate} kbit/s: {k if k is not None else 'none'}"
            for seed, by_bitrate in report["largest_holding"].items()
            for bitrate, k in by_bitrate.items()
        ),
    ]
    for error in report["errors"]:
        text.append(f"error: {error}")
    return "\n".join(text)


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = format_report(report)
    for name in (f"capacity-{stamp}", "capacity-latest"):
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / f"{name}.md").write_text(
            f"# p2pml_py capacity benchmark, {report['date']}\n\n{text}\n"
        )


def _counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(x) for x in text.split(",") if x.strip())
    if not counts or any(not 1 <= k <= MAX_VIEWERS for k in counts):
        raise argparse.ArgumentTypeError(f"viewer counts must be 1..{MAX_VIEWERS}, not {text!r}")
    return counts


def _bitrates(text: str) -> tuple[float, ...]:
    values = tuple(float(x) for x in text.split(",") if x.strip())
    if not values or any(not 1 <= v <= 1_000_000 for v in values):
        raise argparse.ArgumentTypeError(f"bitrates must be 1..1000000 kbit/s, not {text!r}")
    return values


def _seeds(text: str) -> tuple[str, ...]:
    values = tuple(x.strip() for x in text.split(",") if x.strip())
    if not values or any(v not in SEEDS for v in values):
        raise argparse.ArgumentTypeError(f"seeds are {','.join(SEEDS)}, not {text!r}")
    return values


def _raise_file_limit() -> None:
    """Hundreds of peers are hundreds of sockets in every process: the soft limit up to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--viewers", type=_counts, default=None, help="comma-separated K values")
    parser.add_argument("--bitrate-kbit", type=_bitrates, default=None, help="kbit/s (comma list)")
    parser.add_argument("--segment-duration", type=float, default=2.0, help="D, seconds")
    parser.add_argument("--duration", type=float, default=0.0, help="play window, s (20)")
    parser.add_argument("--workers", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--segments", type=int, default=30, help="segments the seed holds")
    parser.add_argument("--seeds", type=_seeds, default=SEEDS, help="python,native")
    parser.add_argument("--search", action="store_true", help="after the list: K x 1.5 while held")
    parser.add_argument("--quick", action="store_true", help="K = 20 only, 6 s window")
    parser.add_argument("--segment-size", type=int, default=0, help="bytes (default bitrate x D)")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args(argv)
    if not 0.1 <= args.segment_duration <= 60:
        parser.error("--segment-duration must be 0.1..60 s")
    if not 0 <= args.duration <= 3600:
        parser.error("--duration must be 0..3600 s")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be 1..64")
    if not 1 <= args.segments <= 1000:
        parser.error("--segments must be 1..1000")
    viewers = args.viewers or ((20,) if args.quick else None)
    if args.bitrate_kbit is None and viewers is None:
        renditions = DEFAULT_RENDITIONS
    else:
        defaults = dict(DEFAULT_RENDITIONS)
        bitrates = args.bitrate_kbit or tuple(defaults)
        renditions = tuple(
            (b, viewers or defaults.get(b, DEFAULT_RENDITIONS[0][1])) for b in bitrates
        )
    options = Options(
        renditions=renditions,
        segment_duration=args.segment_duration,
        duration=args.duration or (6.0 if args.quick else 20.0),
        workers=args.workers,
        segments=args.segments,
        seeds=args.seeds,
        search=args.search,
        segment_size=max(0, args.segment_size),
    )
    _raise_file_limit()
    sys.stdout.write(f"CPU pinning: {common.plan_pinning(not args.no_pin)}\n")
    sys.stdout.flush()
    report = asyncio.run(run(options))
    out = Path(args.out)
    write_report(report, out)
    sys.stdout.write(format_report(report) + "\n")
    sys.stdout.write(f"results: {out / 'capacity-latest.json'} and capacity-latest.md\n")
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
