"""A closed aiortc connection is cyclic garbage, and the full collection that follows its close
frees it (issue 17: a super-peer worker's memory grew while its thresholds made full
collections rare). Real aiortc on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from p2pml_py.base.gcpace import GcPacer
from p2pml_py.rtc.aiortc_backend import garbage, loopback_pair


class Collections:
    """The pacer's collections as they run: a count and an event set by each."""

    def __init__(self) -> None:
        self.count = 0
        self.ran = asyncio.Event()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.count < count:
                await self.ran.wait()
                self.ran.clear()


def _quick_pacer(monkeypatch: pytest.MonkeyPatch, interval: float) -> Iterator[Collections]:
    """A fresh pacer that collects 0.2 s after a close, with the automatic collector off:
    whatever frees the connections is the pacer's collection."""
    monkeypatch.setattr(garbage, "_pacer", GcPacer(interval=interval, settle=0.2))
    monkeypatch.setattr(garbage, "_scheduled", None)
    collections = Collections()
    collect = garbage._collect

    def counted(loop: asyncio.AbstractEventLoop) -> None:
        collect(loop)
        collections.count += 1
        collections.ran.set()

    monkeypatch.setattr(garbage, "_collect", counted)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield collections
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def quick_pacer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collections]:
    yield from _quick_pacer(monkeypatch, interval=0.0)


@pytest.fixture
def rare_pacer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collections]:
    yield from _quick_pacer(monkeypatch, interval=3600.0)


async def test_a_closed_connection_is_freed_by_the_collection_after_its_close(
    quick_pacer: Collections,
) -> None:
    a, b = await loopback_pair()
    pcs = [weakref.ref(link._pc) for link in (a, b)]
    sctps = [weakref.ref(link._pc.sctp) for link in (a, b)]
    found = garbage.STATS["found"]
    await a.aclose()
    await b.aclose()
    del a, b
    for _ in range(5):
        await asyncio.sleep(0)
    # Closed and unreferenced, yet alive: only the cycle collector can free them.
    assert all(ref() is not None for ref in pcs + sctps)
    await quick_pacer.wait(1)
    assert [ref() for ref in pcs + sctps] == [None] * 4
    assert garbage.STATS["found"] > found


async def test_closes_in_a_burst_cost_one_collection(rare_pacer: Collections) -> None:
    links = [link for _ in range(3) for link in await loopback_pair()]
    for link in links:
        await link.aclose()
    await rare_pacer.wait(1)
    await asyncio.sleep(0.3)  # past another settle time: no second collection came
    assert rare_pacer.count == 1


def test_a_close_outside_an_event_loop_schedules_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(garbage, "_pacer", GcPacer())
    monkeypatch.setattr(garbage, "_scheduled", None)
    garbage.closed()  # aiortc closes inside a loop; this must not raise into it either way
    assert garbage.pacer().due is None
