"""What ``/healthz`` and ``/readyz`` answer: is the super-peer alive, and is it doing its job.

Kubernetes acts on the two differently, so they ask different things:

* **alive** (``/healthz``, the liveness probe): the parent's event loop answers a request. A
  failing liveness probe restarts the container, which makes every worker leave its swarms --
  so it must not fail for anything the parent repairs by itself (a crashed worker is restarted
  by the supervisor) or that a restart cannot fix (an origin or tracker outage).
* **ready** (``/readyz``, the readiness probe): the configuration is loaded, every worker
  process runs and has reported within :func:`stale_after`, and every stream this member serves
  has joined its swarms with at least one of its trackers connected. A StatefulSet's rolling
  update waits for it before replacing the next pod, the PodDisruptionBudget counts ready pods,
  and a fleet's membership (a headless Service's DNS records) lists only ready pods, so a member
  whose workers are stuck hands its streams to the others.

Deliberately not part of readiness: a stream that is ``retrying`` (its origin or playlist fails)
-- moving it to another member would not help, and with a fleet every member holding it would
drop out of the membership together. It is listed under ``degraded`` instead. One connected
tracker per stream is enough: the seeder reaches through it every browser announcing there.

Pure functions of the supervisor's state and the time, passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from p2pml_py.apps.superpeer.supervisor import SuperPeer

__all__ = ["MAX_REASONS", "Readiness", "readiness", "stale_after"]

#: At most this many reasons are listed (a member serving hundreds of streams whose tracker is
#: down would otherwise answer a probe with a page); the count of the rest follows.
MAX_REASONS = 10


def stale_after(stats_interval: float) -> float:
    """Seconds without a stats report after which a worker counts as stuck: five report
    intervals (a busy worker's loop may delay one or two), and never less than 2 s."""
    return max(2.0, 5 * stats_interval)


def _capped(items: Iterable[str]) -> list[str]:
    out = list(items)
    if len(out) > MAX_REASONS:
        return [*out[:MAX_REASONS], f"... and {len(out) - MAX_REASONS} more"]
    return out


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    #: Why not ready (empty when ready), shortest first: workers, then streams.
    reasons: tuple[str, ...]
    #: Streams that do not block readiness but do not serve either (``retrying``).
    degraded: tuple[str, ...]
    workers: int
    streams: int
    #: Where the running configuration was loaded from (the super-peer starts only with a
    #: valid one, and a reload that fails keeps it).
    config: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "reasons": _capped(self.reasons),
            "degraded": _capped(self.degraded),
            "workers": self.workers,
            "streams": self.streams,
            "config": self.config,
        }


def readiness(superpeer: SuperPeer, now: float) -> Readiness:
    """``now`` is ``time.monotonic()``, the clock of ``WorkerProcess.reported_at``."""
    reasons: list[str] = []
    degraded: list[str] = []
    stale = stale_after(superpeer.config.stats_interval)
    for worker in superpeer.workers:
        if not worker.alive:
            reasons.append(f"worker {worker.index}: not running (being restarted)")
        elif worker.reported_at is None:
            reasons.append(f"worker {worker.index}: started, no report yet")
        elif now - worker.reported_at > stale:
            reasons.append(f"worker {worker.index}: no report for {now - worker.reported_at:.1f} s")
    for state in superpeer.iter_streams():
        name = state.spec.name
        snapshot = state.snapshot
        if snapshot is None or state.state == "starting":
            reasons.append(f"stream {name}: starting")
        elif state.state == "retrying":
            degraded.append(f"stream {name}: retrying ({snapshot.error or 'no detail'})")
        elif state.state == "serving" and not any(t.connected for t in snapshot.trackers.values()):
            reasons.append(f"stream {name}: no tracker connected")
    return Readiness(
        ready=not reasons,
        reasons=tuple(reasons),
        degraded=tuple(degraded),
        workers=len(superpeer.workers),
        streams=len(superpeer.streams),
        config=superpeer.config.source,
    )
