"""Upload rate limiting: a token bucket (sans-I/O) and a store wrapper that applies it.

A peer session asks its segment source for a segment's bytes once per request, synchronously
(``session.py _serve``), so the gate decides per request: while the bucket holds tokens the
request is served and its size taken (the bucket may go into debt by one segment); an empty
bucket answers "absent" -- the ``SegmentAbsent`` command browsers already handle by trying
another peer or HTTP (``core/p2p/peer.ts``). Over any long window the bytes served stay at most
``rate * window + burst``. A finer, chunk-by-chunk pacing would need an awaitable hook in the
session's upload loop.

:class:`KeyedLimiter` applies the same bucket per client (the viewer-stats collector's requests
per client, :mod:`p2pml_py.apps.collector`): a bounded table of buckets, least recently used
first out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from p2pml_py.base.bucket import TokenBucket
from p2pml_py.engine.store import SegmentStore

__all__ = ["KeyedLimiter", "UploadGate", "burst_for"]


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


class KeyedLimiter:
    """``rate`` events per second and ``burst`` at once, per key, for at most ``max_keys`` keys
    (time is an argument).

    The table is bounded: a new key beyond ``max_keys`` evicts the least recently seen one, whose
    next event then starts from a full bucket. So the table never grows with the number of
    clients; a client that controls more than ``max_keys`` keys could refill its own buckets that
    way, but it could as well spread its requests over those keys in the first place. Keys are
    kept only here, and only while they are among the ``max_keys`` most recent.
    """

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        TokenBucket(rate, burst, 0.0)  # the bucket's own checks, before any key arrives
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self.refused = 0
        self.evicted = 0

    def allow(self, key: Hashable, now: float) -> bool:
        """Take one token from ``key``'s bucket; False (and counted) when it is empty."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
                self.evicted += 1
        else:
            self._buckets.move_to_end(key)
        if bucket.take(1.0, now):
            return True
        self.refused += 1
        return False

    def __len__(self) -> int:
        return len(self._buckets)
