"""The seeder process: one RtcFactory, PeerSessions serving fixed segments, and a small HTTP API.

Signalling goes through this process's HTTP server on 127.0.0.1 instead of a tracker, so that
the numbers measure the data path (the tracker relays SDP only once per connection):

* ``POST /offer``  -> ``{"id", "sdp"}``: the seeder creates an offer (like a peer announcing).
* ``POST /answer`` ``{"id", "sdp"}`` -> ``{"open_ms"}``: applies the answer, waits for the open
  data channel and starts a :class:`~p2pml_py.engine.session.PeerSession` on it. ``open_ms`` is the
  seeder's offer-to-open latency: from ``create_offer()`` to the link being open.
* ``GET /stats``: this process's CPU seconds, instructions (user/kernel), memory, bytes uploaded
  by all sessions.
* ``POST /reset_peak``: reset the peak-memory counter; ``POST /quit``: stop.
* ``GET /``: an empty page, so Chromium receivers can call the API from the same origin.

Started by :mod:`benchmarks.run`; prints one JSON line ``{"port": N}`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import logging
import os
import sys
import time
from typing import Any

from aiohttp import web

from benchmarks.common import (
    InstructionCounter,
    add_speedup_options,
    apply_speedups,
    cpu_seconds,
    memory_kib,
    reset_peak_memory,
    segment_bytes,
    system_cpu_seconds,
)
from p2pml_py.engine.session import PeerSession, SessionConfig
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import OutgoingConnection, RtcFactory, tuning

logger = logging.getLogger(__name__)


class Store:
    def __init__(self, segments: dict[int, bytes]) -> None:
        self.segments = segments

    def get(self, segment_id: int) -> bytes | None:
        return self.segments.get(segment_id)


class Seeder:
    def __init__(self, store: Store, config: RtcConfig) -> None:
        self.store = store
        self.factory = RtcFactory(config)
        self.instructions = InstructionCounter()
        self.pending: dict[str, tuple[float, OutgoingConnection]] = {}
        self.sessions: list[PeerSession] = []
        self.open_ms: list[float] = []
        self.closed_reasons: dict[str, int] = {}
        self.rss_after_first_kib = 0  # RSS once the first connection is up (lazy imports done)
        self.stop = asyncio.Event()
        self._ids = itertools.count()

    async def offer(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        outgoing = await self.factory.create_offer()
        key = str(next(self._ids))
        self.pending[key] = (started, outgoing)
        return web.json_response({"id": key, "sdp": outgoing.sdp})

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        started, outgoing = self.pending.pop(str(body["id"]))
        link = await outgoing.accept_answer(str(body["sdp"]))
        open_ms = (time.perf_counter() - started) * 1000
        self.open_ms.append(open_ms)
        session = PeerSession(
            link,
            f"receiver-{body['id']}",
            self.store,
            config=SessionConfig(upload_stall_timeout=10.0),
            on_closed=self._on_closed,
        )
        session.start(loaded=tuple(sorted(self.store.segments)))
        self.sessions.append(session)
        if len(self.sessions) == 1:
            self.rss_after_first_kib = memory_kib()["rss_kib"]
        return web.json_response({"open_ms": open_ms})

    def _on_closed(self, session: PeerSession) -> None:
        reason = str(session.close_reason or "?")
        self.closed_reasons[reason] = self.closed_reasons.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        uploaded = sum(s.stats.bytes_uploaded for s in self.sessions)
        if os.environ.get("P2PML_BENCH_TRACE"):  # CPU user/system split, for profiling work
            sys.stderr.write(
                f"seeder stats: cpu {cpu_seconds():.3f} sys {system_cpu_seconds():.3f}"
                f" uploaded {uploaded}\n"
            )
        return {
            "time": time.perf_counter(),
            "cpu_s": cpu_seconds(),
            "sys_cpu_s": system_cpu_seconds(),
            "instructions": self.instructions.read(),
            **memory_kib(),
            "bytes_uploaded": uploaded,
            "segments_uploaded": sum(s.stats.segments_uploaded for s in self.sessions),
            "uploads_cancelled": sum(s.stats.uploads_cancelled for s in self.sessions),
            "sessions": len(self.sessions),
            "sessions_open": sum(1 for s in self.sessions if not s.closed),
            "closed_reasons": dict(self.closed_reasons),
            "open_ms": list(self.open_ms),
            "rss_after_first_kib": self.rss_after_first_kib,
            **self.datagrams(),
        }

    def datagrams(self) -> dict[str, int]:
        """DTLS datagrams sent and received over every connection (aiortc's counters).

        The seeder's CPU per MB depends on how many packets each SACK acknowledges, which is up
        to the receivers (a busy receiver acknowledges more at once), so the report shows it.
        """
        sent = received = 0
        for session in self.sessions:
            sctp = getattr(getattr(session.link, "_pc", None), "sctp", None)
            dtls = getattr(sctp, "transport", None)
            sent += getattr(dtls, "_RTCDtlsTransport__tx_packets", 0)
            received += getattr(dtls, "_RTCDtlsTransport__rx_packets", 0)
        return {"datagrams_sent": sent, "datagrams_received": received}

    async def aclose(self) -> None:
        for _, outgoing in self.pending.values():
            await outgoing.aclose()
        self.pending.clear()
        await asyncio.gather(*(s.aclose() for s in self.sessions), return_exceptions=True)


PAGE = "<!doctype html><html><head><title>bench</title></head><body></body></html>"


async def serve(args: argparse.Namespace) -> None:
    segments = {i: segment_bytes(i, args.segment_size) for i in range(args.segments)}
    config = RtcConfig(ice_addresses=("127.0.0.1",), open_timeout=20.0)
    seeder = Seeder(Store(segments), config)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(seeder.stats())

    async def reset_peak(request: web.Request) -> web.Response:
        return web.json_response({"reset": reset_peak_memory()})

    async def quit_(request: web.Request) -> web.Response:
        seeder.stop.set()
        return web.json_response({})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/offer", seeder.offer)
    app.router.add_post("/answer", seeder.answer)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset_peak", reset_peak)
    app.router.add_post("/quit", quit_)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        sys.stdout.write(
            json.dumps({"port": port, "loop": type(asyncio.get_running_loop()).__module__}) + "\n"
        )
        sys.stdout.flush()
        try:
            async with asyncio.timeout(args.lifetime):
                await seeder.stop.wait()
        except TimeoutError:
            logger.warning("seeder lifetime %s s over", args.lifetime)
        finally:
            await seeder.aclose()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeder")
    parser.add_argument("--segment-size", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--udp-buffer", type=int, default=0, help="bytes; 0 = kernel default")
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--profile", default="", help="write cProfile stats to this file")
    add_speedup_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.loop == "uvloop" and not tuning.install_uvloop():
        sys.stderr.write("uvloop not installed; using asyncio\n")
    if args.udp_buffer:
        tuning.set_udp_buffer_sizes(args.udp_buffer, args.udp_buffer)
    apply_speedups(args)
    # CPU time, not wall time: on a shared machine wall time mostly measures the other tenants.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
