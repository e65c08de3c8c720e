"""Upload rate limiting: a token bucket (sans-I/O) and a store wrapper that applies it.

A peer session asks its segment source for a segment's bytes once per request, synchronously
(``session.py _serve``), so the gate decides per request: while the bucket holds tokens the
request is served and its size taken (the bucket may go into debt by one segment); an empty
bucket answers "absent" -- the ``SegmentAbsent`` command browsers already handle by trying
another peer or HTTP (``core/p2p/peer.ts``). Over any long window the bytes served stay at most
``rate * window + burst``. A finer, chunk-by-chunk pacing would need an awaitable hook in the
session's upload loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from p2pml_py.base.bucket import TokenBucket
from p2pml_py.engine.store import SegmentStore

__all__ = ["UploadGate", "burst_for"]


def burst_for(rate: float) -> float:
    """One second of rate, and at least 2 MB so that one large segment fits."""
    return max(rate, 2_000_000.0)


class UploadGate:
    """Stands in for a :class:`SegmentStore` as a swarm's upload source: reads go through the
    bucket, everything else is the store's."""

    def __init__(
        self,
        store: SegmentStore,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._clock = clock
        self.bucket: TokenBucket | None = None
        self.refused = 0
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        """Bytes per second, or ``None`` for no limit."""
        now = self._clock()
        if rate is None:
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(rate, burst_for(rate), now)
        else:
            self.bucket.set_rate(rate, burst_for(rate), now)

    @property
    def rate(self) -> float | None:
        return None if self.bucket is None else self.bucket.rate

    def get(self, segment_id: int) -> bytes | None:
        data = self.store.get(segment_id)
        if data is None or self.bucket is None:
            return data
        if not self.bucket.take(len(data), self._clock()):
            self.refused += 1
            return None
        return data

    # The rest of what a swarm reads from its store.
    def ids(self) -> tuple[int, ...]:
        return self.store.ids()

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self.store

    def __len__(self) -> int:
        return len(self.store)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        return self.store.subscribe(listener)

    @property
    def size(self) -> int:
        return self.store.size
