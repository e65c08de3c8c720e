"""The super-peer's parent process: worker processes, stream placement, reloads, restarts.

:class:`SuperPeer` starts ``workers`` processes (:mod:`p2pml_py.apps.superpeer.worker`, one asyncio
loop each -- aiortc is pure Python, so one process per core is how a super-peer uses the
machine) and places every stream on the worker with the fewest. It keeps the latest stats each
worker reports and adds them up for ``/metrics`` and ``/status``:

* a worker that exits unasked is reported (log + ``worker_restarts``) and started again at once
  with the same streams (after a back-off if it keeps crashing); counters of the dead process are
  carried over so the totals stay monotonic;
* :meth:`SuperPeer.reload` compares the new stream list with the running one: removed and
  changed streams leave their swarms, new and changed ones start, the others are not touched
  (only their upload share may change, applied live);
* in a fleet (``[fleet]``, :mod:`p2pml_py.apps.superpeer.fleet`) only the streams whose
  rendezvous rank puts this member among their ``replicas`` run here; the membership is re-read
  every ``refresh`` seconds and a change starts and stops streams the way a reload does;
* :meth:`SuperPeer.aclose` asks every worker to stop, which makes each seeder send ``stopped``
  to its trackers, and kills what has not exited after ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from p2pml_py.apps.superpeer.config import StreamConfig, SuperPeerConfig
from p2pml_py.apps.superpeer.fleet import DEFAULT_REFRESH, Membership, owners
from p2pml_py.apps.superpeer.snapshot import StreamSnapshot
from p2pml_py.base.aio import Notifier, TaskGroup
from p2pml_py.base.backoff import Backoff

logger = logging.getLogger(__name__)

#: A crashed worker restarts at once; one that crashed again within ``_CRASH_WINDOW`` seconds
#: waits 1, 2, 4, ... up to 30 s (counting the crashes of the last ``_CRASH_MEMORY``).
_RESTART_BACKOFF = Backoff(initial=1.0, cap=30.0)
_CRASH_MEMORY = 6
_CRASH_WINDOW = 30.0
HISTORY = 600

CounterKey = tuple[str, tuple[str, ...]]


def stream_counters(snapshot: StreamSnapshot | None) -> dict[CounterKey, float]:
    """The monotonic counters of one stream snapshot, by (metric, label values)."""
    out: dict[CounterKey, float] = {}
    if snapshot is None:
        return out

    def add(key: CounterKey, value: float) -> None:
        out[key] = out.get(key, 0.0) + value

    add(("origin_bytes", ()), snapshot.origin_bytes)
    add(("uploads_refused", ()), snapshot.refused)
    for kind, count in snapshot.origin_errors.items():
        add(("origin_errors", (kind,)), count)
    for reason, count in snapshot.segments_rejected.items():
        add(("segments_rejected", (reason,)), count)
    add(("segments_replaced", ()), snapshot.segments_replaced)
    add(("origin_outages", ()), snapshot.origin_outage.outages)
    add(("origin_down_seconds", ()), snapshot.origin_outage.down_seconds)
    for rendition in snapshot.renditions:
        for swarm in rendition.swarms:
            labels = (rendition.label, swarm.version)
            add(("uploaded_bytes", labels), swarm.uploaded)
            add(("peer_connects", labels), swarm.connects)
            add(("peer_connection_errors", labels), swarm.connection_errors)
            add(("offers_refused", labels), swarm.offers_refused)
            for reason, count in swarm.drops.items():
                add(("peer_drops", (*labels, reason)), count)
    for url, tracker in snapshot.trackers.items():
        for kind, count in tracker.errors.items():
            add(("tracker_errors", (url, kind)), count)
        add(("tracker_outages", (url,)), tracker.outage.outages)
        add(("tracker_down_seconds", (url,)), tracker.outage.down_seconds)
    return out


@dataclass(slots=True)
class StreamState:
    spec: StreamConfig
    worker: int
    rate: float | None
    snapshot: StreamSnapshot | None = None
    #: Counters of earlier processes that ran this stream (worker crashes).
    base: dict[CounterKey, float] | None = None
    upload_rate: float = 0.0
    origin_rate: float = 0.0
    _last: tuple[float, float, float] | None = None

    def counters(self) -> dict[CounterKey, float]:
        out = dict(self.base or {})
        for key, value in stream_counters(self.snapshot).items():
            out[key] = out.get(key, 0.0) + value
        return out

    def retire_snapshot(self) -> None:
        self.base = self.counters()
        self.snapshot = None

    def total(self, metric: str) -> float:
        return sum(v for (name, _), v in self.counters().items() if name == metric)

    @property
    def peers(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.peers

    @property
    def state(self) -> str:
        return "starting" if self.snapshot is None else self.snapshot.state


class WorkerProcess:
    """One worker process and the parent's end of its JSON-lines channel."""

    def __init__(self, owner: SuperPeer, index: int) -> None:
        self.owner = owner
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0
        #: ``time.monotonic()`` of the latest stats report of the current process (``/readyz``).
        self.reported_at: float | None = None
        self.last_exit: int | None = None
        self.stopped_sent = 0
        self.stopping = False
        self._crashes: deque[float] = deque(maxlen=_CRASH_MEMORY)
        self._bye = asyncio.Event()
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def streams(self) -> list[StreamState]:
        return [s for s in self.owner.streams.values() if s.worker == self.index]

    async def spawn(self) -> None:
        owner = self.owner
        self._bye = asyncio.Event()
        self.proc = await asyncio.create_subprocess_exec(
            owner.python,
            "-m",
            "p2pml_py.apps.superpeer.worker_main",
            "--index",
            str(self.index),
            "--stats-interval",
            str(owner.config.stats_interval),
            "--max-connections",
            str(owner.config.max_connections),
            "--log-level",
            owner.log_level,
            "--log-format",
            owner.log_format,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        self.started_at = time.monotonic()
        self.reported_at = None
        logger.info(
            "worker %d: started (pid %d)",
            self.index,
            self.proc.pid,
            extra={"event": "worker_started", "worker": self.index, "worker_pid": self.proc.pid},
        )
        for stream in self.streams():
            await self.send({"op": "add", "stream": stream.spec.to_json(), "rate": stream.rate})

    async def send(self, message: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return  # a dead worker gets its streams when it is started again
        async with self._write_lock:
            try:
                proc.stdin.write(json.dumps(message).encode() + b"\n")
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                logger.debug("worker %d: channel closed while sending", self.index)

    async def run(self) -> None:
        """Read the worker's reports; restart it when it dies unasked (until ``stopping``)."""
        while True:
            await self.spawn()
            await self._read()
            assert self.proc is not None
            code = await self.proc.wait()
            self.last_exit = code
            for stream in self.streams():
                stream.retire_snapshot()
            self.owner.notify()
            if self.stopping:
                return
            self.restarts += 1
            now = time.monotonic()
            self._crashes.append(now)
            recent = sum(1 for t in self._crashes if now - t < _CRASH_WINDOW)
            delay = 0.0 if recent <= 1 else _RESTART_BACKOFF.delay(recent - 1)
            logger.error(
                "worker %d (pid %s) exited with status %s; restarting it%s with %d stream(s)",
                self.index,
                self.proc.pid,
                code,
                f" in {delay:.0f} s" if delay else "",
                len(self.streams()),
                extra={
                    "event": "worker_crashed",
                    "worker": self.index,
                    "exit_status": code,
                    "restarts": self.restarts,
                },
            )
            if delay:
                await asyncio.sleep(delay)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                logger.warning("worker %d: not a report: %r", self.index, line[:200])
                continue
            op = message.get("op")
            if op == "stats":
                self.reported_at = time.monotonic()
                for name, data in message["streams"].items():
                    stream = self.owner.streams.get(name)
                    if stream is not None and stream.worker == self.index:
                        try:
                            stream.snapshot = StreamSnapshot.from_json(data)
                        except (KeyError, TypeError, ValueError, AttributeError) as exc:
                            logger.warning("worker %d: bad report of %s: %r", self.index, name, exc)
                self.owner.notify()
            elif op == "bye":
                self.stopped_sent = int(message.get("stopped_sent", 0))
                self._bye.set()
            elif op == "removed":
                self.owner.notify()

    async def stop(self, timeout: float) -> None:
        """Ask the worker to leave its swarms and exit; kill it after ``timeout``."""
        self.stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        await self.send({"op": "stop"})
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            logger.error("worker %d: did not stop within %.0f s, killing it", self.index, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class SuperPeer:
    """``async with SuperPeer(config) as sp: ...``; :meth:`reload` applies a new config."""

    def __init__(
        self,
        config: SuperPeerConfig,
        *,
        log_level: str = "info",
        log_format: str = "text",
        python: str = sys.executable,
        stop_timeout: float = 15.0,
    ) -> None:
        self.config = config
        self.log_level = log_level
        self.log_format = log_format
        self.python = python
        self.stop_timeout = stop_timeout
        self.started = time.time()
        self.streams: dict[str, StreamState] = {}
        self.workers = [WorkerProcess(self, i) for i in range(config.workers)]
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.reloads = 0
        #: ``None`` without ``[fleet]``: every configured stream runs here.
        self.fleet = Membership(config.fleet) if config.fleet is not None else None
        self.rebalances = 0
        #: Reloads and membership changes start and stop streams one at a time.
        self._apply_lock = asyncio.Lock()
        self._changed = Notifier()
        self._closer = TaskGroup(logger)
        self._closed = False

    async def __aenter__(self) -> SuperPeer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.fleet is not None:
            # Know the fleet before starting anything (bounded by the DNS timeout), rather than
            # start every stream and stop most of them a moment later.
            await self.fleet.refresh(time.monotonic())
            logger.info(
                "fleet: this member is %s, one of %d (%s)",
                self.fleet.self_id,
                len(self.fleet.members),
                self.fleet.config.describe(),
                extra={"event": "fleet_joined", "member": self.fleet.self_id},
            )
        assigned = self.assigned()
        rates = self.config.upload_rates([s.name for s in assigned])
        for spec in assigned:
            self._place(spec, rates[spec.name])
        for worker in self.workers:
            self._closer.spawn(worker.run(), f"superpeer-worker-{worker.index}")
        self._closer.spawn(self._sample(), "superpeer-sample")
        self._closer.spawn(self._follow_fleet(), "superpeer-fleet")
        logger.info(
            "super-peer: %d stream(s) on %d worker(s)",
            len(self.streams),
            len(self.workers),
            extra={"event": "superpeer_started"},
        )

    def _place(self, spec: StreamConfig, rate: float | None) -> StreamState:
        counts = {w.index: 0 for w in self.workers}
        for stream in self.streams.values():
            counts[stream.worker] += 1
        worker = min(counts, key=lambda i: (counts[i], i))
        state = StreamState(spec, worker, rate)
        self.streams[spec.name] = state
        return state

    async def reload(self, config: SuperPeerConfig) -> dict[str, list[str]]:
        """Apply a new configuration; returns the names added, removed, restarted, unchanged."""
        if (
            config.workers != self.config.workers
            or config.max_connections != self.config.max_connections
            or (
                (config.listen_host, config.listen_port)
                != (self.config.listen_host, self.config.listen_port)
            )
        ):
            logger.warning(
                "reload: workers, listen and limits.max_connections apply only after a restart"
            )
        async with self._apply_lock:
            fleet_changed = config.fleet != self.config.fleet
            self.config = config
            if fleet_changed:
                self.fleet = Membership(config.fleet) if config.fleet is not None else None
                if self.fleet is not None:
                    await self.fleet.refresh(time.monotonic())
            result = await self._apply()
        self.reloads += 1
        logger.info(
            "reload: %d added, %d removed, %d restarted, %d unchanged",
            len(result["added"]),
            len(result["removed"]),
            len(result["restarted"]),
            len(result["unchanged"]),
            extra={"event": "reloaded", **{k: ",".join(v) for k, v in result.items()}},
        )
        return result

    # -- fleet ----------------------------------------------------------------------------------

    def assigned(self) -> list[StreamConfig]:
        """The configured streams that run here: all of them, or in a fleet those whose
        rendezvous rank puts this member among their ``replicas``."""
        fleet = self.fleet
        if fleet is None:
            return list(self.config.streams)
        members = fleet.members
        return [
            s for s in self.config.streams if fleet.self_id in owners(s.name, members, s.replicas)
        ]

    async def _apply(self) -> dict[str, list[str]]:
        """Run exactly :meth:`assigned`: removed and changed streams leave their swarms (their
        workers send ``stopped``), new and changed ones start, the others keep their peers and
        only get their new upload share. Call with ``_apply_lock`` held."""
        new = {s.name: s for s in self.assigned()}
        old = {name: state.spec for name, state in self.streams.items()}
        removed = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        changed = [n for n in new if n in old and new[n] != old[n]]
        unchanged = [n for n in new if n in old and new[n] == old[n]]
        rates = self.config.upload_rates(new)
        for name in [*removed, *changed]:
            state = self.streams.pop(name)
            await self.workers[state.worker].send({"op": "remove", "name": name})
        for name in [*changed, *added]:
            state = self._place(new[name], rates[name])
            await self.workers[state.worker].send(
                {"op": "add", "stream": state.spec.to_json(), "rate": state.rate}
            )
        for name in unchanged:
            state = self.streams[name]
            state.spec = new[name]  # same settings; keeps the new line number for reports
            if rates[name] != state.rate:
                state.rate = rates[name]
                await self.workers[state.worker].send(
                    {"op": "rate", "name": name, "rate": state.rate}
                )
        self.notify()
        return {"added": added, "removed": removed, "restarted": changed, "unchanged": unchanged}

    async def _follow_fleet(self) -> None:
        """Re-read the membership every ``refresh`` seconds; when it changed, start the streams
        now assigned here and stop the ones that are not."""
        while True:
            fleet = self.fleet
            await asyncio.sleep(fleet.config.refresh if fleet is not None else DEFAULT_REFRESH)
            fleet = self.fleet  # a reload may have replaced it meanwhile
            if fleet is not None and await fleet.refresh(time.monotonic()):
                await self.rebalance()

    async def rebalance(self) -> dict[str, list[str]] | None:
        """Serve what the current membership assigns here (after it changed); ``None`` once
        closing."""
        async with self._apply_lock:
            if self._closed:
                return None
            result = await self._apply()
        self.rebalances += 1
        logger.info(
            "fleet: serving %d of %d stream(s): %d started, %d stopped",
            len(self.streams),
            len(self.config.streams),
            len(result["added"]),
            len(result["removed"]),
            extra={
                "event": "fleet_rebalanced",
                "added": ",".join(result["added"]),
                "removed": ",".join(result["removed"]),
                "serving": ",".join(sorted(self.streams)),
            },
        )
        return result

    def fleet_status(self) -> dict[str, Any] | None:
        """The fleet as this member sees it, for ``/status`` (``None`` without ``[fleet]``)."""
        fleet = self.fleet
        if fleet is None:
            return None
        members = fleet.members
        return {
            **fleet.to_json(),
            "assigned": sorted(self.streams),
            "configured": len(self.config.streams),
            "rebalances": self.rebalances,
            "owners": {
                s.name: list(owners(s.name, members, s.replicas)) for s in self.config.streams
            },
        }

    async def aclose(self) -> None:
        """Stop every worker (their seeders send ``stopped``), then the background tasks."""
        if self._closed:
            return
        self._closed = True
        async with self._apply_lock:  # a rebalance under way finishes first; none starts after
            for worker in self.workers:
                worker.stopping = True
        await asyncio.gather(*(w.stop(self.stop_timeout) for w in self.workers))
        await self._closer.aclose()
        logger.info(
            "super-peer stopped (stopped sent: %d)",
            sum(w.stopped_sent for w in self.workers),
            extra={"event": "superpeer_stopped"},
        )

    # -- observing ------------------------------------------------------------------------------

    def notify(self) -> None:
        self._changed.notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checked after every worker report (bound it)."""
        await self._changed.wait_until(predicate)

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            self.sample(time.monotonic())

    def sample(self, now: float) -> None:
        """Per-stream rates since the previous call, and a history point for the chart."""
        for state in self.streams.values():
            up, origin = state.total("uploaded_bytes"), state.total("origin_bytes")
            if state._last is not None:
                then, up0, origin0 = state._last
                dt = max(now - then, 1e-6)
                state.upload_rate = max(0.0, up - up0) / dt
                state.origin_rate = max(0.0, origin - origin0) / dt
            state._last = (now, up, origin)
        self.history.append(
            {
                "t": round(time.time(), 3),
                "upload_rate": round(sum(s.upload_rate for s in self.streams.values())),
                "origin_rate": round(sum(s.origin_rate for s in self.streams.values())),
                "peers": {name: s.peers for name, s in self.streams.items()},
            }
        )

    def iter_streams(self) -> Iterator[StreamState]:
        return iter(sorted(self.streams.values(), key=lambda s: s.spec.name))

    def status(self) -> dict[str, Any]:
        streams = []
        for state in self.iter_streams():
            snap = state.snapshot or StreamSnapshot(state.spec.name, state.spec.url, state.state)
            streams.append(
                {
                    "name": state.spec.name,
                    "url": state.spec.url,
                    "worker": state.worker,
                    "state": state.state,
                    "error": snap.error,
                    "since": snap.since,
                    "peers": state.peers,
                    "uploaded_bytes": int(state.total("uploaded_bytes")),
                    "origin_bytes": int(state.total("origin_bytes")),
                    "upload_rate": round(state.upload_rate),
                    "origin_rate": round(state.origin_rate),
                    "connects": int(state.total("peer_connects")),
                    "uploads_refused": int(state.total("uploads_refused")),
                    "rate_limit": state.rate,
                    "held_segments": sum(r.held_segments for r in snap.renditions),
                    "held_bytes": sum(r.held_bytes for r in snap.renditions),
                    "renditions": snap.to_json()["renditions"],
                    "trackers": snap.to_json()["trackers"],
                }
            )
        return {
            "uptime": round(time.time() - self.started, 1),
            "config": self.config.source,
            "reloads": self.reloads,
            "fleet": self.fleet_status(),
            "workers": [
                {
                    "index": w.index,
                    "pid": w.pid,
                    "alive": w.alive,
                    "restarts": w.restarts,
                    "last_exit": w.last_exit,
                    "streams": [s.spec.name for s in w.streams()],
                }
                for w in self.workers
            ],
            "streams": streams,
            "totals": {
                "streams": len(streams),
                "peers": sum(s["peers"] for s in streams),
                "uploaded_bytes": sum(s["uploaded_bytes"] for s in streams),
                "origin_bytes": sum(s["origin_bytes"] for s in streams),
                "upload_rate": sum(s["upload_rate"] for s in streams),
                "origin_rate": sum(s["origin_rate"] for s in streams),
            },
            "history": list(self.history),
        }
