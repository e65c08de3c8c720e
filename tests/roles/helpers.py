"""What role tests share: waiting for a store to fill, and a viewer that plays a VOD to its end
fast (8x) and reports what it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from p2pml_py.engine.store import SegmentStore
from p2pml_py.engine.streams import PeerOptions
from p2pml_py.roles.base import segment_digests
from p2pml_py.roles.scheduler import SchedulerConfig
from p2pml_py.roles.summary import ViewerSummary
from p2pml_py.roles.viewer import Viewer

#: Eight times real time, with a high-demand window scaled to match (2 s of media).
FAST_PLAY = SchedulerConfig(playback_rate=8.0, high_demand_time_window=2.0 / 8)


async def store_filled(store: SegmentStore, count: int, timeout: float = 20) -> None:
    await stores_reach([store], lambda: len(store) >= count, timeout)


async def stores_reach(
    stores: Sequence[SegmentStore], condition: Callable[[], bool], timeout: float = 20
) -> None:
    """Until ``condition()`` holds, re-checked whenever one of ``stores`` changes."""
    reached = asyncio.Event()

    def check() -> None:
        if condition():
            reached.set()

    unsubscribes = [store.subscribe(check) for store in stores]
    try:
        check()
        async with asyncio.timeout(timeout):
            await reached.wait()
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()


async def play_to_end(
    url: str, options: PeerOptions, *, timeout: float = 60, **viewer: Any
) -> tuple[ViewerSummary, dict[str, str]]:
    """Play ``url`` to its end at :data:`FAST_PLAY`: the summary and the SHA-256 of every
    segment the viewer holds at the end, by segment id."""
    viewer.setdefault("scheduler", FAST_PLAY)
    async with Viewer(url, options, **viewer) as player:
        async with asyncio.timeout(timeout):
            await player.wait_ended()
        summary = player.summary()
        assert player.swarms is not None
        held = segment_digests(player.swarms.store)
    return summary, held
