"""A receiver worker process: ``--count`` aiortc peers, each a PeerSession downloading from the seeder.

Protocol with :mod:`benchmarks.run` over stdin/stdout, one JSON object per line:

0. prints ``{"loaded": true}`` once started and waits for a line on stdin (the orchestrator
   sends ``{"type": "connect"}`` once every worker has started);
1. connects its receivers one after the other (the seeder offers, we answer), then prints
   ``{"ready": true, "open_ms": [...], "errors": [...]}``;
2. waits for a line ``go SECONDS`` on stdin, downloads the seeder's segments round-robin for
   that long (every segment checked against its SHA-256), cancels what is in flight, then prints
   ``{"done": true, ...}`` with bytes, segments, failures and the longest gap between two data
   messages while a download was waiting for bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks.common import (
    add_speedup_options,
    apply_speedups,
    cpu_seconds,
    loss_share,
    segment_digest,
)
from p2pml_py.base.errors import P2PMLError
from p2pml_py.engine.session import DownloadError, PeerSession, SessionConfig
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import DataChannelLink, RtcFactory, tuning

logger = logging.getLogger(__name__)


class TimedLink:
    """A Link that notes when each message arrives, to find the longest wait for bytes."""

    def __init__(self, link: DataChannelLink) -> None:
        self.link = link
        self.waiting = False
        self.last = 0.0
        self.max_gap = 0.0

    @property
    def closed(self) -> bool:
        return self.link.closed

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        def receive(data: bytes) -> None:
            now = time.perf_counter()
            if self.waiting:
                self.max_gap = max(self.max_gap, now - self.last)
            self.last = now
            callback(data)

        self.link.set_receiver(receive)

    def start_waiting(self) -> None:
        self.waiting = True
        self.last = time.perf_counter()

    def stop_waiting(self, failed: bool) -> None:
        if self.waiting and failed:
            self.max_gap = max(self.max_gap, time.perf_counter() - self.last)
        self.waiting = False

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        await self.link.send(data)

    async def wait_closed(self) -> None:
        await self.link.wait_closed()

    def on_closed(self, callback: Callable[[], None]) -> None:
        self.link.on_closed(callback)

    async def aclose(self) -> None:
        await self.link.aclose()


class NoSegments:
    def get(self, segment_id: int) -> bytes | None:
        return None


class Receiver:
    def __init__(self, session: PeerSession, link: TimedLink) -> None:
        self.session = session
        self.link = link
        self.bytes = 0
        self.segments = 0
        self.corrupt = 0
        self.failures: dict[str, int] = {}

    async def run(self, segments: int, size: int, digests: dict[int, str], offset: int) -> None:
        for n in range(offset, offset + 1_000_000):
            segment_id = n % segments
            self.link.start_waiting()
            try:
                data = await self.session.download(segment_id)
            except DownloadError as exc:
                self.link.stop_waiting(failed=exc.reason != "cancelled")
                self.failures[exc.reason] = self.failures.get(exc.reason, 0) + 1
                if self.session.closed:
                    return
                continue
            except asyncio.CancelledError:
                self.link.stop_waiting(failed=False)
                raise
            self.link.stop_waiting(failed=False)
            if len(data) != size or hashlib.sha256(data).hexdigest() != digests[segment_id]:
                self.corrupt += 1
            self.bytes += len(data)
            self.segments += 1


async def connect(
    http: aiohttp.ClientSession, url: str, factory: RtcFactory, name: str
) -> tuple[PeerSession, TimedLink, float]:
    started = time.perf_counter()
    async with http.post(f"{url}/offer") as response:
        offer = await response.json()
    incoming = await factory.accept_offer(offer["sdp"])
    async with incoming:
        answer = http.post(f"{url}/answer", json={"id": offer["id"], "sdp": incoming.sdp})
        async with answer as response:
            await response.json()
        link = await incoming.wait_link()
    open_ms = (time.perf_counter() - started) * 1000
    timed = TimedLink(link)
    session = PeerSession(timed, "seeder", NoSegments(), config=SessionConfig(receive_timeout=2.0))
    session.start()
    return session, timed, open_ms


def drop_datagrams(link: DataChannelLink, loss: float, rng: random.Random) -> None:
    """Drop each DTLS datagram this link's socket delivers with probability ``loss``, before
    aiortc sees it: a lossy network, for the sender's loss handling (SACKs with gap blocks,
    retransmissions). Loopback loses nothing, and this kernel has no netem."""
    connection = link.channel.transport.transport.transport._connection
    deliver = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if 19 < data[0] < 64 and rng.random() < loss:
            return
        deliver(data, component)

    connection.data_received = data_received  # type: ignore[method-assign]


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def work(args: argparse.Namespace) -> None:
    factory = RtcFactory(RtcConfig(ice_addresses=("127.0.0.1",), open_timeout=20.0))
    receivers: list[Receiver] = []
    open_ms: list[float] = []
    errors: list[str] = []
    digests = {i: segment_digest(i, args.segment_size) for i in range(args.segments)}
    rng = random.Random(args.index)  # --loss: the same drops in every run
    loop = asyncio.get_running_loop()
    # Connect only once every worker has started (imports alone take a CPU for ~0.5 s): the
    # first connections would otherwise time the other workers' start-up, not the connection.
    emit({"loaded": True})
    await loop.run_in_executor(None, sys.stdin.readline)
    try:
        async with aiohttp.ClientSession() as http:
            for index in range(args.count):
                try:
                    async with asyncio.timeout(30):
                        session, timed, ms = await connect(http, args.url, factory, str(index))
                    if args.loss:
                        drop_datagrams(timed.link, args.loss, rng)
                except (P2PMLError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(repr(exc))
                    continue
                receivers.append(Receiver(session, timed))
                open_ms.append(ms)
            emit({"ready": True, "open_ms": open_ms, "errors": errors})
            line = await loop.run_in_executor(None, sys.stdin.readline)
            duration = float(line.split()[1]) if line.startswith("go") else 0.0
            # P2PML_BENCH_PROFILE_RECEIVERS=PREFIX: cProfile the window into PREFIX.<pid>.
            prefix = os.environ.get("P2PML_BENCH_PROFILE_RECEIVERS", "")
            profiler = cProfile.Profile(time.process_time) if prefix else None
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            cpu_started = cpu_seconds()
            tasks = [
                asyncio.create_task(
                    r.run(args.segments, args.segment_size, digests, args.index + i)
                )
                for i, r in enumerate(receivers)
            ]
            try:
                await asyncio.wait(tasks, timeout=duration)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_started
            if os.environ.get("P2PML_BENCH_TRACE"):
                got = sum(r.bytes for r in receivers)
                sys.stderr.write(f"receiver worker: cpu {cpu:.3f} s, {got / 1e6:.1f} MB\n")
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{prefix}.{os.getpid()}")
            failures: dict[str, int] = {}
            for r in receivers:
                for reason, count in r.failures.items():
                    failures[reason] = failures.get(reason, 0) + count
            emit(
                {
                    "done": True,
                    "elapsed": elapsed,
                    "cpu_s": cpu,
                    "bytes": sum(r.bytes for r in receivers),
                    "segments": sum(r.segments for r in receivers),
                    "corrupt": sum(r.corrupt for r in receivers),
                    "failures": failures,
                    "max_gap_s": max((r.link.max_gap for r in receivers), default=0.0),
                    "per_receiver_bytes": [r.bytes for r in receivers],
                    "closed": sum(1 for r in receivers if r.session.closed),
                }
            )
    finally:
        await asyncio.gather(*(r.session.aclose() for r in receivers), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.receiver")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--index", type=int, default=0, help="first segment offset")
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--segment-size", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--udp-buffer", type=int, default=4 * 1024 * 1024)
    add_speedup_options(parser)
    parser.add_argument(
        "--loss", type=loss_share, default=0.0, help="drop this share of incoming datagrams"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tuning.install_uvloop()
    if args.udp_buffer:
        tuning.set_udp_buffer_sizes(args.udp_buffer, args.udp_buffer)
    apply_speedups(args)
    asyncio.run(work(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
