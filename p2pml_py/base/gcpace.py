"""When to run a full garbage collection after peer connections closed (pure: time is passed in).

A closed aiortc connection leaves its whole object graph behind as cyclic garbage (the peer
connection, its ICE, DTLS and SCTP transports and their event emitters point at each other), and
that graph holds native memory too: its SRTP sessions, cffi buffers, OpenSSL objects. Only the
cycle collector frees it. A long-lived connection has been promoted to the oldest generation by
the time it closes, and a seeder's tuned thresholds
(:data:`p2pml_py.rtc.aiortc_backend.tuning.GC_THRESHOLDS`, 20000 x 20 x 100 allocations) make
full collections rare: about one every four hours in a super-peer worker of the soak run (issue
17), which grew ~11 MB/h in the meantime. A full collection of such a worker found 9,691
unreachable objects and gave 2.6 MB back to malloc; it took 3 ms (most of the process is frozen,
:func:`gc.freeze`, and never walked).

So after a connection closes, a full collection runs once its teardown has settled
(:attr:`GcPacer.settle`), and at most once per :attr:`GcPacer.interval`: a burst of closes costs
one collection.
"""

from __future__ import annotations

import math

__all__ = ["GC_INTERVAL", "GC_SETTLE", "GcPacer"]

#: Seconds between two full collections at most (a close during that time waits for the next).
GC_INTERVAL = 30.0
#: Seconds after a close before its collection: aiortc's tasks of that connection end first.
GC_SETTLE = 5.0


class GcPacer:
    """Tells the driver when to run the next full collection; the driver runs it and reports."""

    def __init__(self, interval: float = GC_INTERVAL, settle: float = GC_SETTLE) -> None:
        if not (interval >= 0 and settle >= 0):
            raise ValueError("interval and settle must be >= 0 seconds")
        self.interval = interval
        self.settle = settle
        self._last = -math.inf  # when the last collection ran
        self._due: float | None = None  # when the scheduled collection runs, if one is

    @property
    def due(self) -> float | None:
        return self._due

    def closed(self, now: float) -> float | None:
        """A connection closed at ``now``. Returns when a collection must run if the driver
        must schedule one, or ``None`` when one is already scheduled (it covers this close)."""
        if self._due is not None:
            return None
        self._due = max(now + self.settle, self._last + self.interval)
        return self._due

    def collected(self, now: float) -> None:
        """The scheduled collection ran at ``now``."""
        self._last = now
        self._due = None

    def forget(self) -> None:
        """The scheduled collection will not run (its event loop closed): the next close
        schedules a new one."""
        self._due = None
