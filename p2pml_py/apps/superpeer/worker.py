"""A super-peer worker process: one asyncio loop running the seeders of the streams it was given.

Run by the supervisor as ``python -m p2pml_py.apps.superpeer.worker_main --index N ...``. It talks to the
parent over its stdin/stdout, one JSON object per line (stdout is moved to a private descriptor
first and fd 1 pointed at stderr, so nothing a library prints can corrupt the channel):

parent -> worker  ``{"op": "add", "stream": {...}, "rate": bytes/s|null}``,
                  ``{"op": "remove", "name": ...}``, ``{"op": "rate", "name": ..., "rate": ...}``,
                  ``{"op": "stop"}``
worker -> parent  ``{"op": "stats", "streams": {name: snapshot}}`` every ``--stats-interval``,
                  ``{"op": "removed", "name": ..., "stopped_sent": n}``,
                  ``{"op": "bye", "stopped_sent": n}`` after a clean stop

SIGTERM, ``stop`` and the end of stdin (the parent died) all stop cleanly: every seeder leaves its
swarms, so the trackers get ``stopped``. SIGINT is ignored -- a Ctrl-C in a terminal reaches the
whole process group, and the parent decides.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, cast

from p2pml_py.apps.logs import setup_logging
from p2pml_py.apps.superpeer import memprofile
from p2pml_py.apps.superpeer.config import StreamConfig
from p2pml_py.apps.superpeer.ratelimit import UploadGate
from p2pml_py.apps.superpeer.snapshot import (
    OutageSnapshot,
    RenditionSnapshot,
    StreamSnapshot,
    SwarmSnapshot,
    TrackerSnapshot,
)
from p2pml_py.base.aio import TaskGroup
from p2pml_py.base.backoff import Backoff
from p2pml_py.base.errors import P2PMLError
from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS
from p2pml_py.base.outage import Outage
from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.engine.swarm import ConnectionBudget, SwarmConfig
from p2pml_py.hls.source import SourceConfig
from p2pml_py.hls.validate import Level, ValidationPolicy
from p2pml_py.identity import ProtocolVersion
from p2pml_py.roles.demand import DemandConfig
from p2pml_py.roles.seeder import Seeder
from p2pml_py.rtc.aiortc_backend.tuning import tune_process_unless_disabled
from p2pml_py.rtc.config import RtcConfig

logger = logging.getLogger(__name__)

#: Back-off between attempts to start a stream whose origin or tracker is unusable.
RETRY_BACKOFF = Backoff(initial=1.0, cap=30.0)  # 1, 2, 4, 8, 16, 30, 30 ... s
_TRACKER_ERRORS = (
    "connect_failures",
    "disconnects",
    "failures",
    "warnings",
    "invalid_messages",
    "offer_errors",
)


def peer_options(spec: StreamConfig, connections: ConnectionBudget | None = None) -> PeerOptions:
    return PeerOptions(
        trackers=spec.trackers,
        versions=tuple(ProtocolVersion.parse(v) for v in spec.protocol),
        rtc=RtcConfig(
            ice_servers=spec.ice_servers,
            ice_addresses=spec.ice_addresses,
            ice_port_range=spec.ice_port_range,
        ),
        swarm=SwarmConfig(max_peers=spec.max_peers, connections=connections),
        swarm_id=spec.swarm_id,
        store_bytes=int(spec.store_mb * 1024 * 1024),
        only_info_hashes=None if spec.info_hashes is None else frozenset(spec.info_hashes),
    )


class StreamRunner:
    """One configured stream: its :class:`Seeder`, started again with back-off while its
    origin or settings fail; ``aclose`` leaves its swarms."""

    def __init__(
        self, spec: StreamConfig, rate: float | None, connections: ConnectionBudget | None = None
    ) -> None:
        self.spec = spec
        self.rate = rate
        self.connections = connections
        self.state = "starting"
        self.error: str | None = None
        self.since = time.time()
        self.attempts = 0
        self.seeder: Seeder | None = None
        self.gates: list[UploadGate] = []
        self._closer = TaskGroup(logger)
        self._closed = False

    def start(self) -> None:
        if self.spec.trackers_defaulted:
            # Public servers, and only pages using them too share the swarm: say so once.
            logger.warning(
                "stream %s: no trackers configured: using p2p-media-loader %s's default "
                "trackers: %s (your pages must use them too)",
                self.spec.name,
                "'s and ".join(self.spec.protocol),
                ", ".join(self.spec.trackers),
                extra={"stream": self.spec.name, "event": "default_trackers"},
            )
        self._closer.spawn(self._run(), f"superpeer-stream-{self.spec.name}")

    async def _run(self) -> None:
        while True:
            self.attempts += 1
            seeder = Seeder(
                self.spec.url,
                peer_options(self.spec, self.connections),
                renditions=list(self.spec.renditions) if self.spec.renditions else None,
                fetch=self.spec.fetch,
                source_config=SourceConfig(
                    validation=ValidationPolicy(level=Level(self.spec.validate)),
                    integrity=self.spec.integrity,
                    local_path=self.spec.path,
                ),
                revalidate=self.spec.revalidate,
                # The fleet's other replicas announce every swarm of the stream too: the
                # tracker counts them like viewers (p2pml_py.roles.demand).
                demand=DemandConfig(known_seeders=self.spec.replicas - 1),
            )
            self.seeder = seeder
            try:
                await seeder.start()
            except (P2PMLError, OSError, ValueError) as exc:
                delay = RETRY_BACKOFF.delay(self.attempts)
                self.state, self.error = "retrying", str(exc)
                logger.warning(
                    "stream %s: cannot start (%s); retrying in %.0f s",
                    self.spec.name,
                    exc,
                    delay,
                    extra={"stream": self.spec.name, "event": "stream_failed"},
                )
                await seeder.aclose()
                self.seeder = None
                await asyncio.sleep(delay)
                continue
            self._install_gates(seeder)
            self.state, self.error, self.since = "serving", None, time.time()
            logger.info(
                "stream %s: serving %d rendition(s) of %s",
                self.spec.name,
                len(seeder.streams),
                self.spec.url,
                extra={"stream": self.spec.name, "event": "stream_serving"},
            )
            return

    def _install_gates(self, seeder: Seeder) -> None:
        # The swarms hand their store to each new peer session as its upload source; putting
        # the gate there (and on sessions already open) rate-limits every upload.
        self.gates = []
        for swarms in seeder.streams:
            gate = UploadGate(swarms.store, self.rate)
            self.gates.append(gate)
            for swarm in swarms.swarms:
                swarm.store = cast(SegmentStore, gate)
                for session in swarm.peers.values():
                    session.source = gate

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate
        for gate in self.gates:
            gate.set_rate(rate)

    async def aclose(self) -> int:
        """Leave every swarm; returns how many ``stopped`` announces went out."""
        if self._closed:
            return 0
        self._closed = True
        await self._closer.aclose()
        self.state = "stopped"
        seeder, self.seeder = self.seeder, None
        if seeder is None:
            return 0
        await seeder.aclose()
        return seeder.tracker.stats().stopped_sent if seeder.tracker else 0

    def snapshot(self) -> StreamSnapshot:
        seeder = self.seeder
        head = StreamSnapshot(
            name=self.spec.name,
            url=self.spec.url,
            state=self.state,
            error=self.error,
            since=self.since,
            attempts=self.attempts,
            rate_limit=self.rate,
            refused=sum(g.refused for g in self.gates),
        )
        if seeder is None or self.state != "serving":
            return head
        renditions = tuple(
            RenditionSnapshot(
                label=swarms.label,
                type=swarms.stream.type,
                held_segments=len(swarms.store),
                held_bytes=swarms.store.size,
                fetch=report.mode,
                state=report.state,
                origin_bytes=report.origin_bytes,
                origin_segments=report.origin_segments,
                skipped_segments=report.skipped_segments,
                saved_bytes=report.saved_bytes,
                starts=report.starts,
                tracker_others=report.tracker_others,
                swarms=tuple(
                    SwarmSnapshot(
                        version=swarm.version.value,
                        info_hash=swarm.info_hash,
                        peer_id=swarm.peer_id,
                        peers=len(swarm.peers),
                        uploaded=swarm.stats.uploaded,
                        connects=swarm.stats.connects,
                        connection_errors=swarm.stats.connection_errors,
                        offers_refused=swarm.stats.offers_refused,
                        drops=dict(swarm.stats.drops),
                    )
                    for swarm in swarms.swarms
                ),
            )
            for swarms, report in zip(seeder.streams, seeder.fetch_reports(), strict=True)
        )
        now = time.monotonic()
        trackers: dict[str, TrackerSnapshot] = {}
        tracker = seeder.tracker
        if tracker is not None:
            for url in tracker.urls:
                stats = tracker.stats(url)
                trackers[url] = TrackerSnapshot(
                    connected=tracker.is_connected(url),
                    errors={k: getattr(stats, k) for k in _TRACKER_ERRORS},
                    outage=_outage([tracker.outage(url)], now),
                )
        return dataclasses.replace(
            head,
            origin_bytes=seeder.http_bytes,
            origin_errors=dict(seeder.source.stats.errors),
            origin_outage=_outage([f.outage for f in seeder.source.followers], now),
            segments_rejected=dict(seeder.source.guard.stats.rejected),
            segments_replaced=seeder.replaced_segments,
            renditions=renditions,
            trackers=trackers,
        )


def _outage(records: Sequence[Outage | None], now: float) -> OutageSnapshot:
    present = [r for r in records if r is not None]
    return OutageSnapshot(
        down=any(r.down for r in present),
        outages=sum(r.outages for r in present),
        down_seconds=round(sum(r.down_seconds + r.current_length(now) for r in present), 3),
    )


class Worker:
    """The worker's main object: ``async with Worker(channel) as worker: await worker.wait()``."""

    def __init__(
        self,
        index: int,
        channel: IO[bytes],
        stats_interval: float = 1.0,
        max_connections: int = SERVER_MAX_CONNECTIONS,
    ) -> None:
        self.index = index
        self.channel = channel
        self.stats_interval = stats_interval
        #: One cap on the peer connections of every stream this worker process serves.
        self.connections = ConnectionBudget(max_connections)
        self.runners: dict[str, StreamRunner] = {}
        self.stopped_sent = 0
        self._stop = asyncio.Event()
        self._closer = TaskGroup(logger)
        self._closed = False

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.channel.write(json.dumps(message).encode() + b"\n")
            self.channel.flush()
        except (BrokenPipeError, ValueError):
            self._stop.set()  # the parent is gone

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    def start(self, reader: asyncio.StreamReader) -> None:
        self._closer.spawn(self._read(reader), "worker-read")
        self._closer.spawn(self._report(), "worker-report")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                logger.info("worker %d: parent closed the channel", self.index)
                self._stop.set()
                return
            try:
                message = json.loads(line)
                await self.handle(message)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("worker %d: bad command %r: %s", self.index, line[:200], exc)

    async def handle(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "add":
            spec = StreamConfig.from_json(message["stream"])
            old = self.runners.pop(spec.name, None)
            if old is not None:
                self.stopped_sent += await old.aclose()
            runner = StreamRunner(spec, message.get("rate"), self.connections)
            self.runners[spec.name] = runner
            runner.start()
        elif op == "remove":
            gone = self.runners.pop(message["name"], None)
            sent = await gone.aclose() if gone is not None else 0
            self.stopped_sent += sent
            logger.info(
                "stream %s: removed, left its swarms",
                message["name"],
                extra={"stream": message["name"], "event": "stream_removed", "stopped_sent": sent},
            )
            self.send({"op": "removed", "name": message["name"], "stopped_sent": sent})
        elif op == "rate":
            found = self.runners.get(message["name"])
            if found is not None:
                found.set_rate(message["rate"])
        elif op == "stop":
            self._stop.set()
        else:
            raise ValueError(f"unknown op {op!r}")

    async def _report(self) -> None:
        while True:
            self.send(
                {
                    "op": "stats",
                    "time": time.time(),
                    "streams": {name: r.snapshot().to_json() for name, r in self.runners.items()},
                }
            )
            await asyncio.sleep(self.stats_interval)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._closer.aclose()
        runners = list(self.runners.values())
        self.runners.clear()
        results = await asyncio.gather(*(r.aclose() for r in runners), return_exceptions=True)
        for result in results:
            if isinstance(result, int):
                self.stopped_sent += result
            elif isinstance(result, BaseException):
                logger.error("worker %d: closing a stream failed: %r", self.index, result)
        logger.info(
            "worker %d: stopped, %d swarm(s) left (stopped sent: %d)",
            self.index,
            len(runners),
            self.stopped_sent,
            extra={"event": "worker_stopped", "stopped_sent": self.stopped_sent},
        )
        self.send({"op": "bye", "stopped_sent": self.stopped_sent})


async def _main(
    index: int, stats_interval: float, max_connections: int, channel: IO[bytes]
) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    profile = memprofile.from_environment(index)  # P2PML_MEMORY_PROFILE=DIR: opt-in tracing
    async with Worker(index, channel, stats_interval, max_connections) as worker:
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        worker.start(reader)
        logger.info("worker %d: ready", index, extra={"event": "worker_ready"})
        baseline = None if profile is None else asyncio.create_task(profile.take_baseline())
        try:
            await worker.wait()
        finally:
            if profile is not None:
                assert baseline is not None
                baseline.cancel()
                await asyncio.gather(baseline, return_exceptions=True)
                profile.write()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2pml_py.apps.superpeer.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--stats-interval", type=float, default=1.0)
    parser.add_argument("--max-connections", type=int, default=SERVER_MAX_CONNECTIONS)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The channel gets the real stdout; fd 1 becomes stderr for anything else that writes there.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    setup_logging(args.log_level, args.log_format, f"worker-{args.index}")
    # uvloop, bigger UDP buffers and the aiortc speed-ups, unless P2PML_NO_TUNING=1.
    tune_process_unless_disabled()
    asyncio.run(_main(args.index, args.stats_interval, args.max_connections, channel))
    return 0
