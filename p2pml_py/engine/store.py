"""Segment store: the bytes a peer holds for one stream, bounded in bytes.

Ids are the wire's segment external ids (VOD: playlist position; live: media sequence number).
Insertion order is kept because announcements list ``l`` in storage order (SPEC d.8). Every
change notifies listeners, which re-announce to connected peers.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

logger = logging.getLogger(__name__)

Listener = Callable[[], None]

#: Default memory budget for one stream's segments.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class SegmentStore:
    """Segments of one stream in memory: oldest-first eviction beyond ``max_bytes``, and
    :meth:`evict_below` for a live sliding window."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._segments: OrderedDict[int, bytes] = OrderedDict()
        self._size = 0
        self._listeners: list[Listener] = []
        self.evicted = 0

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._segments

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def size(self) -> int:
        return self._size

    def ids(self) -> tuple[int, ...]:
        return tuple(self._segments)

    def get(self, segment_id: int) -> bytes | None:
        return self._segments.get(segment_id)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def put(self, segment_id: int, data: bytes) -> bool:
        """Store a segment; returns False if it alone exceeds the budget (not stored)."""
        if len(data) > self.max_bytes:
            logger.warning("segment %s (%d bytes) exceeds the store budget", segment_id, len(data))
            return False
        old = self._segments.pop(segment_id, None)
        if old is not None:
            self._size -= len(old)
        self._segments[segment_id] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            victim, victim_data = self._segments.popitem(last=False)
            self._size -= len(victim_data)
            self.evicted += 1
            logger.debug("evicted segment %s for space", victim)
        self._changed()
        return True

    def evict_below(self, segment_id: int) -> int:
        """Drop every segment whose id is lower than ``segment_id`` (live window). Returns count."""
        victims = [sid for sid in self._segments if sid < segment_id]
        for sid in victims:
            self._size -= len(self._segments.pop(sid))
        if victims:
            self.evicted += len(victims)
            self._changed()
        return len(victims)

    def clear(self) -> None:
        if self._segments:
            self._segments.clear()
            self._size = 0
            self._changed()
