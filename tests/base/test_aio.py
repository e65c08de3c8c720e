"""The shared asyncio primitives: task ownership, cancellation that never swallows the caller's,
change notification, and ``async with`` services."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from p2pml_py.base import aio
from p2pml_py.base.aio import (
    Notifier,
    Service,
    SlimEvent,
    SlimQueue,
    TaskGroup,
    cancel_and_wait,
)
from p2pml_py.base.errors import P2PMLError


async def test_cancel_and_wait_does_not_swallow_the_callers_cancellation() -> None:
    """The bug of ``with suppress(CancelledError): await task``: the caller, cancelled while it
    waits for a task to stop, went on as if nothing happened."""
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.set()
            await asyncio.sleep(3600)  # takes its time to clean up
            raise

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    after_wait = []

    async def closer() -> None:
        await cancel_and_wait([child])
        after_wait.append("went on")

    outer = asyncio.create_task(closer())
    await stopping.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert after_wait == []
    child.cancel()  # the child's own clean-up, cancelled again, finishes
    await asyncio.wait([child])


async def test_cancel_and_wait_retrieves_the_tasks_outcomes() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    failing = asyncio.create_task(fails())
    sleeping = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait([failing, sleeping])
    assert failing.done() and sleeping.cancelled()


async def test_task_group_logs_failures_and_closes_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = TaskGroup(logging.getLogger("test.group"))

    async def fail(exc: Exception) -> None:
        raise exc

    sleeper = group.spawn(asyncio.sleep(3600), "sleeper")
    with caplog.at_level(logging.WARNING, logger="test.group"):
        group.spawn(fail(P2PMLError("expected")), "soft")
        group.spawn(fail(RuntimeError("bug")), "hard")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
    assert levels == {"task soft failed": logging.WARNING, "task hard failed": logging.ERROR}
    assert len(group) == 1
    await group.aclose()
    assert sleeper.cancelled() and len(group) == 0


async def test_a_task_spawned_after_close_never_runs() -> None:
    group = TaskGroup()
    await group.aclose()
    ran = []

    async def work() -> None:
        ran.append(1)

    task = group.spawn(work(), "late")
    await asyncio.wait([task])
    assert task.cancelled() and ran == []


async def test_a_task_may_close_its_own_group() -> None:
    group = TaskGroup()
    other = group.spawn(asyncio.sleep(3600), "other")

    async def close_from_inside() -> str:
        await group.aclose()
        return "closed"

    task = group.spawn(close_from_inside(), "closer")
    assert await task == "closed"
    assert other.cancelled()


async def test_notifier_wakes_every_waiter_and_wait_until_rechecks() -> None:
    notifier = Notifier()
    state = {"n": 0}
    waiters = [asyncio.create_task(notifier.wait_until(lambda: state["n"] >= 2)) for _ in range(3)]
    await asyncio.sleep(0)
    state["n"] = 1
    notifier.notify()
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    state["n"] = 2
    notifier.notify()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


async def test_notifier_next_sees_a_change_made_before_the_wait() -> None:
    notifier = Notifier()
    token = notifier.next()
    notifier.notify()  # between taking the token and waiting (e.g. while the caller yielded)
    await asyncio.wait_for(token.wait(), 1)
    assert not notifier.next().is_set()


class _Resource(Service):
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")
        if self.fail:
            raise OSError("port in use")

    async def aclose(self) -> None:
        self.events.append("aclose")


async def test_service_closes_what_a_failed_start_acquired() -> None:
    failing = _Resource(fail=True)
    with pytest.raises(OSError, match="port in use"):
        async with failing:
            pass
    assert failing.events == ["start", "aclose"]
    working = _Resource(fail=False)
    async with working as entered:
        assert entered is working and working.events == ["start"]
    assert working.events == ["start", "aclose"]


async def test_slim_event_behaves_like_asyncio_event() -> None:
    event = SlimEvent()
    assert isinstance(event, asyncio.Event) and not event.is_set()
    assert event._waiters is aio._NO_WAITERS  # shared until something waits
    event.set()
    event.clear()  # set and cleared without a waiter: still the shared empty tuple
    assert event._waiters is aio._NO_WAITERS and aio._NO_WAITERS == ()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert len(event._waiters) == 4
    cancelled.cancel()
    await asyncio.sleep(0)
    assert len(event._waiters) == 3  # a cancelled waiter is removed, as asyncio's are
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert len(event._waiters) == 0 and await event.wait() is True
    event.clear()
    assert not event.is_set()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    event.set()
    assert await late is True


def _bytes_each(make: Callable[[], Any], use: Callable[[Any], object], count: int = 200) -> int:
    """Bytes allocated per object made by ``make`` and still held after ``use`` of it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = [make() for _ in range(count)]
        for item in made:
            use(item)
        return (tracemalloc.get_traced_memory()[0] - before) // count
    finally:
        tracemalloc.stop()


def _set_and_clear(event: asyncio.Event) -> None:
    event.set()
    event.clear()


def _put_get_done(queue: asyncio.Queue[int]) -> None:  # used without ever waiting
    queue.put_nowait(1)
    queue.get_nowait()
    queue.task_done()


def test_slim_event_is_smaller_than_asyncio_event() -> None:
    slim, plain = _bytes_each(SlimEvent, _set_and_clear), _bytes_each(asyncio.Event, _set_and_clear)
    assert plain > 500  # CPython's Event: its empty deque is a 528-byte block
    assert slim < 250, (slim, plain)


async def test_slim_queue_behaves_like_asyncio_queue() -> None:
    queue: SlimQueue[int] = SlimQueue(maxsize=2)
    assert isinstance(queue, asyncio.Queue)
    getters = [asyncio.create_task(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(g.done() for g in getters)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await asyncio.gather(*getters) == [1, 2]  # woken in order
    await queue.put(3)
    await queue.put(4)
    blocked = asyncio.create_task(queue.put(5))  # full: this put waits
    await asyncio.sleep(0)
    assert not blocked.done() and queue.full()
    assert queue.get_nowait() == 3
    await blocked
    assert [queue.get_nowait(), queue.get_nowait()] == [4, 5]
    # join() waits for task_done() of every item put
    joined = asyncio.create_task(queue.join())
    await asyncio.sleep(0)
    assert not joined.done()
    for _ in range(5):
        queue.task_done()
    await joined
    cancelled = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert len(queue._getters) == 0 and queue.empty()
    # Unbounded: put never waits, and the putter list is the shared empty one.
    unbounded: SlimQueue[int] = SlimQueue()
    for item in range(100):
        await unbounded.put(item)
    assert [unbounded.get_nowait() for _ in range(100)] == list(range(100))
    assert unbounded._putters is aio._NOBODY_WAITING and len(aio._NOBODY_WAITING) == 0


def test_slim_queue_is_smaller_than_asyncio_queue() -> None:
    slim, plain = _bytes_each(SlimQueue, _put_get_done), _bytes_each(asyncio.Queue, _put_get_done)
    assert plain > 2000  # four deques (getters, putters, the items, join's event)
    assert slim < 700, (slim, plain)  # no deque: lists for waiters and items, a SlimEvent
