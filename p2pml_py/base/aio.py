"""asyncio primitives every layer shares: task ownership and change notification.

* :class:`TaskGroup` owns background tasks: ``spawn`` them; ``aclose`` cancels and awaits every
  one. A failed task is logged once (``P2PMLError`` as a warning, anything else as an error with
  its traceback), so no exception is ever "never retrieved".
* :func:`cancel_and_wait` stops tasks and waits for them to finish *without* swallowing the
  caller's own cancellation -- what ``with suppress(CancelledError): await task`` gets wrong.
* :class:`Notifier` wakes every waiter on each change; waiters re-check their condition.
* :class:`Service` is ``async with`` over ``start``/``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Self

from p2pml_py.base.errors import P2PMLError

__all__ = ["Notifier", "Service", "TaskGroup", "cancel_and_wait", "log_task_failure"]

logger = logging.getLogger(__name__)


def log_task_failure(task: asyncio.Task[Any], log: logging.Logger = logger) -> None:
    """Retrieve a finished task's exception and log it (a done callback)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    level = logging.WARNING if isinstance(exc, P2PMLError) else logging.ERROR
    log.log(level, "task %s failed: %r", task.get_name(), exc, exc_info=exc)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has finished.

    The tasks' own results, exceptions and cancellations are retrieved and dropped (log them with
    a done callback if they matter). If the *caller* is cancelled while waiting, that
    ``CancelledError`` propagates: the tasks were already told to stop and finish on their own.
    """
    tasks = list(tasks)
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:  # also those that had already finished
        if not task.cancelled():
            task.exception()  # mark it retrieved


class TaskGroup:
    """Owns background tasks until :meth:`aclose`; unlike :class:`asyncio.TaskGroup` a failing
    task is logged and does not cancel its siblings (one peer's failure is not the swarm's)."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log = log or logger
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Start ``coro`` as a task owned by this group. After :meth:`aclose` the task is
        cancelled before it runs (a late callback cannot leave an orphan behind)."""
        task = asyncio.create_task(coro, name=name)
        if self._closed:
            task.cancel()
            return task
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        log_task_failure(task, self._log)

    async def aclose(self) -> None:
        """Cancel every task and wait for all of them (idempotent; no new spawns after it).

        A task that calls ``aclose`` on its own group is not waited for (it would wait on itself).
        """
        self._closed = True
        current = asyncio.current_task()
        await cancel_and_wait([t for t in self._tasks if t is not current])


class Notifier:
    """Something changed: ``notify()`` wakes every current waiter of ``wait()``.

    Waiters always re-check what they wait for (``wait_until``); a notification with nobody
    waiting is not remembered, so the check-then-wait pattern never misses one within the loop.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def next(self) -> asyncio.Event:
        """The event the next :meth:`notify` sets. Take it *before* looking at the state and wait
        on it after: a change in between (the caller yielded, say) is not missed."""
        return self._event

    async def wait(self) -> None:
        """Until the next :meth:`notify`."""
        await self._event.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` is true (checked now and after every notification)."""
        while not predicate():
            await self._event.wait()


class Service:
    """``async with`` runs :meth:`start`, then :meth:`aclose` on the way out; when ``start``
    fails, ``aclose`` runs before the error leaves, so a half-started service frees what it got.
    Subclasses make ``aclose`` idempotent."""

    async def start(self) -> None:
        """Acquire resources (nothing by default)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
