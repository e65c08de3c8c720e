"""The Python seeder of the capacity benchmark (:mod:`benchmarks.capacity`): the product's own
code path -- a real :class:`~p2pml_py.engine.swarm.Swarm` over a real
:class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory` and :class:`~p2pml_py.engine.store.SegmentStore`, in a
process tuned exactly as ``p2pml-py seed`` tunes itself
(:func:`p2pml_py.rtc.aiortc_backend.tuning.tune_process_unless_disabled`, what :func:`p2pml_py.apps.cli.main` calls:
uvloop, UDP buffers, speedups, warm-up, GC thresholds).

The swarm's tracker is a stand-in that does nothing: offers arrive over HTTP instead, and go to
:meth:`Swarm.handle_offer` -- exactly what the tracker client does with a browser's offer.

* ``POST /offer {"peer_id", "sdp"}`` -> ``{"sdp": answer}``, ``{"declined": true}`` (the swarm
  does not want that peer) or ``{"error": "..."}``. The seeder's offer->open time of that
  connection runs from the POST arriving to the peer appearing in ``swarm.peers``.
* ``GET /stats[?heap=1][&connected=N]``: CPU seconds (user + system), RSS and peak RSS (KiB),
  connected peers (``len(swarm.peers)``), drops by reason (``swarm.stats.drops``), bytes
  uploaded, offer->open times; with ``heap=1`` (after a ``gc.collect()``) the heap bytes
  (:func:`heap_bytes`); with ``connected=N`` once N peers are in the swarm (or 10 s passed).
* ``POST /quit``: leave.

Prints one JSON line ``{"port": N, ...}`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import sys
import tempfile
import time
import tracemalloc
from typing import Any

from aiohttp import web

from benchmarks.common import cpu_seconds, memory_kib, segment_bytes
from p2pml_py.apps.superpeer.memprofile import malloc_info
from p2pml_py.base.errors import P2PMLError
from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS, SERVER_MAX_PEERS
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.swarm import ConnectionBudget, Swarm, SwarmConfig
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import RtcFactory, tuning

logger = logging.getLogger(__name__)

#: The swarm's info hash: any 40 hex chars (no tracker sees it).
INFO_HASH = "c0ffee" + "0" * 34


# -- heap bytes -----------------------------------------------------------------------------------
_MALLINFO2 = malloc_info() is not None  # glibc >= 2.33
_PYMALLOC_RE = re.compile(rb"# bytes in allocated blocks\s*=\s*([\d,]+)")


def pymalloc_bytes() -> int | None:
    """pymalloc's "# bytes in allocated blocks" (``sys._debugmallocstats()`` writes it to the C
    stderr, fd 2, which is pointed at a temporary file around the call)."""
    debug = getattr(sys, "_debugmallocstats", None)
    if debug is None:
        return None
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                debug()
            finally:
                os.dup2(saved, 2)
            capture.seek(0)
            text = capture.read(4 * 1024 * 1024)
    finally:
        os.close(saved)
    match = _PYMALLOC_RE.search(text)
    return int(match.group(1).replace(b",", b"")) if match else None


def heap_bytes() -> int | None:
    """Bytes in use on the heap: glibc's ``mallinfo2()`` (``uordblks`` + ``hblkhd``: the bytes
    of in-use chunks of every arena and of mmapped chunks) plus pymalloc's allocated blocks
    (its arenas are mmapped by Python, not malloc'ed, so nothing is counted twice). ``None``
    without ``mallinfo2``."""
    info = malloc_info()
    if info is None:
        return None
    return info["in_use"] + (pymalloc_bytes() or 0)


#: P2PML_CAPACITY_TRACEMALLOC=FILE: the seed traces Python allocations (``tracemalloc``, which
#: slows it: for where the heap goes, not for the other columns) and writes to FILE, per source
#: line, what the Python heap grew by per connection between the two heap measurements
#: (before and after the join burst).
TRACE_ENV = "P2PML_CAPACITY_TRACEMALLOC"
_trace_first: list[tuple[Any, int]] = []


def _trace_heap(connected: int) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path or not tracemalloc.is_tracing():
        return
    snapshot = tracemalloc.take_snapshot()
    if not _trace_first:
        _trace_first.append((snapshot, connected))
        return
    first, before = _trace_first[0]
    conns = max(1, connected - before)
    diff = snapshot.compare_to(first, "lineno")
    total = sum(d.size_diff for d in diff)
    lines = [f"{connected - before} connections; Python heap {total / conns / 1024:.1f} KiB/conn"]
    lines.append("by file:")
    for d in snapshot.compare_to(first, "filename")[:25]:
        lines.append(
            f"{d.size_diff / conns / 1024:7.2f} KiB {d.count_diff / conns:6.1f} blocks"
            f"  {d.traceback[0].filename}"
        )
    lines.append("by line:")
    for d in diff[:120]:
        frame = d.traceback[0]
        lines.append(
            f"{d.size_diff / conns / 1024:7.2f} KiB {d.count_diff / conns:6.1f} blocks"
            f"  {frame.filename}:{frame.lineno}"
        )
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


# -- the seeder -----------------------------------------------------------------------------------
class NoTracker:
    """The swarm's tracker: offers come over HTTP (``POST /offer``) instead."""

    async def join(self, info_hash: str, peer_id: str, handler: object) -> None:
        return None

    async def leave(self, info_hash: str) -> None:
        return None


class Seeder:
    def __init__(self, swarm: Swarm, lifetime: float) -> None:
        self.swarm = swarm
        self.lifetime = lifetime
        self.pending: dict[str, float] = {}  # peer id -> when its offer arrived
        self.open_ms: list[float] = []
        self.declined = 0
        self.offer_errors: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def offer(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        # One request per connection: a viewer's HTTP connection must not stay open (aiohttp's
        # keep-alive, 75 s) and count in the heap per peer connection -- in the product an
        # offer comes over the tracker's one WebSocket, not a connection of its own.
        response.force_close()
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        try:
            body = await request.json()
            peer_id, sdp = str(body["peer_id"]), str(body["sdp"])
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc!r}"}, status=400)
        self.pending[peer_id] = arrived
        try:
            answer = await self.swarm.handle_offer(peer_id, sdp)
        except P2PMLError as exc:
            self.pending.pop(peer_id, None)
            key = type(exc).__name__
            self.offer_errors[key] = self.offer_errors.get(key, 0) + 1
            return web.json_response({"error": f"{key}: {exc}"})
        if answer is None:
            self.pending.pop(peer_id, None)
            self.declined += 1
            return web.json_response({"declined": True})
        return web.json_response({"sdp": answer})

    async def watch_opens(self) -> None:
        """Offer->open per connection: from the POST to the peer being in ``swarm.peers``.

        One task for all connections: it wakes on every swarm change (``wait_until``) and looks
        at the pending offers only when a peer connected.
        """
        swarm = self.swarm
        seen = swarm.stats.connects
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.lifetime):
                for _ in range(100_000_000):  # bounded: one turn per connection at most
                    await swarm.wait_until(lambda seen=seen: swarm.stats.connects != seen)
                    seen = swarm.stats.connects
                    now = time.perf_counter()
                    for peer_id in [p for p in self.pending if p in swarm.peers]:
                        self.open_ms.append((now - self.pending.pop(peer_id)) * 1000)

    def stats(self, heap: bool) -> dict[str, Any]:
        swarm = self.swarm
        values: dict[str, Any] = {
            "time": time.perf_counter(),
            "cpu_s": cpu_seconds(),
            **memory_kib(),
            "connected": len(swarm.peers),
            "drops": dict(swarm.stats.drops),
            "bytes_uploaded": swarm.stats.uploaded,
            "segments_uploaded": sum(p.stats.segments_uploaded for p in swarm.peers.values()),
            "open_ms": [round(v, 2) for v in self.open_ms],
            "offers_answered": swarm.stats.offers_answered,
            "connection_errors": swarm.stats.connection_errors,
            "declined": self.declined,
            "offer_errors": dict(self.offer_errors),
        }
        if heap:
            started = time.perf_counter()
            gc.collect()
            # what a full collection costs with this many connections (the one that follows
            # closed connections, p2pml_py.rtc.aiortc_backend.garbage, is the same)
            values["full_collection_ms"] = round((time.perf_counter() - started) * 1000, 2)
            values["heap_bytes"] = heap_bytes()
            _trace_heap(len(swarm.peers))
        return values


async def serve(args: argparse.Namespace) -> None:
    store = SegmentStore(max_bytes=max(1, args.segments * args.segment_size * 2))
    for segment in range(args.segments):
        store.put(segment, segment_bytes(segment, args.segment_size))
    factory = RtcFactory(RtcConfig(ice_addresses=("127.0.0.1",)))
    swarm = Swarm(
        INFO_HASH,
        NoTracker(),  # type: ignore[arg-type]
        factory,
        store,
        # What `p2pml-py seed` builds (cli._peer_options): the server-sized per-swarm cap and
        # one process-wide budget, whose handshake slots pace the join burst.
        config=SwarmConfig(
            max_peers=max(SERVER_MAX_PEERS, args.max_connections),
            connections=ConnectionBudget(args.max_connections),
        ),
        name="capacity",
    )
    seeder = Seeder(swarm, args.lifetime)

    async def stats(request: web.Request) -> web.Response:
        # ?connected=N: first wait (at most 10 s) for N peers in the swarm -- a viewer's channel
        # may open a moment before the swarm has taken its peer in.
        wanted = int(request.query.get("connected", "0") or 0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await swarm.wait_until(lambda: len(swarm.peers) >= wanted)
        return web.json_response(seeder.stats(request.query.get("heap") == "1"))

    async def quit_(request: web.Request) -> web.Response:
        seeder.stop.set()
        return web.json_response({})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/offer", seeder.offer)
    app.router.add_get("/stats", stats)
    app.router.add_post("/quit", quit_)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    watcher: asyncio.Task[None] | None = None
    try:
        await swarm.start()
        watcher = asyncio.create_task(seeder.watch_opens())
        # A join burst is hundreds of connections at once: the default backlog (128) would drop
        # SYNs, which the clients only resend after a second.
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = runner.addresses[0][1]
        sys.stdout.write(
            json.dumps(
                {
                    "port": port,
                    "loop": type(asyncio.get_running_loop()).__module__,
                    "tuning": args.tuning,
                    "mallinfo2": _MALLINFO2,
                }
            )
            + "\n"
        )
        sys.stdout.flush()
        try:
            async with asyncio.timeout(args.lifetime):
                await seeder.stop.wait()
        except TimeoutError:
            logger.warning("capacity seeder: lifetime %s s over", args.lifetime)
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                await swarm.aclose()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity_seed")
    parser.add_argument("--segment-size", type=int, required=True)
    parser.add_argument("--segments", type=int, default=30)
    parser.add_argument("--lifetime", type=float, default=900.0)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=SERVER_MAX_CONNECTIONS,
        help="the process-wide cap, as `p2pml-py seed --max-connections` (default: the same)",
    )
    args = parser.parse_args(argv)
    # P2PML_CAPACITY_LOG=INFO (or DEBUG): the product's log on stderr (its last lines are in
    # the row's seed_stderr_tail).
    level = os.environ.get("P2PML_CAPACITY_LOG", "WARNING").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING),
        stream=sys.stderr,
        format="%(relativeCreated)d %(levelname)s %(name)s: %(message)s",
    )
    # Exactly what p2pml-py seed does before its event loop starts (p2pml_py.apps.cli.main).
    done = tuning.tune_process_unless_disabled()
    args.tuning = {k: list(v) if isinstance(v, tuple) else v for k, v in (done or {}).items()}
    if os.environ.get(TRACE_ENV):
        tracemalloc.start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
