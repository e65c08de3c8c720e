"""asyncio primitives every layer shares: task ownership and change notification.

* :class:`TaskGroup` owns background tasks: ``spawn`` them; ``aclose`` cancels and awaits every
  one. A failed task is logged once (``P2PMLError`` as a warning, anything else as an error with
  its traceback), so no exception is ever "never retrieved".
* :func:`cancel_and_wait` stops tasks and waits for them to finish *without* swallowing the
  caller's own cancellation -- what ``with suppress(CancelledError): await task`` gets wrong.
* :class:`Notifier` wakes every waiter on each change; waiters re-check their condition.
* :class:`SlimEvent` is an ``asyncio.Event`` that keeps its waiters in a list (smaller), and
  :class:`SlimQueue` an ``asyncio.Queue`` without the deques it never uses.
* :class:`Service` is ``async with`` over ``start``/``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, Self, TypeVar

from p2pml_py.base.errors import P2PMLError

__all__ = [
    "Notifier",
    "Service",
    "SlimEvent",
    "SlimQueue",
    "TaskGroup",
    "cancel_and_wait",
    "log_task_failure",
]

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


class SlimEvent(asyncio.Event):
    """An ``asyncio.Event`` whose waiters are kept in a list instead of a deque.

    CPython's ``Event.__init__`` makes an empty ``collections.deque``, which allocates a
    528-byte block at once and keeps it as long as the event lives. A peer connection holds
    about ten events (session wake-ups, link state), most never or only ever waited on by one
    task, so the deques were ~5 KiB of every idle connection's heap; and :class:`Notifier`
    makes a new event on every change. ``Event`` only appends to (in ``wait``), iterates and
    removes from ``_waiters`` (CPython 3.11-3.13 ``asyncio/locks.py``), which a list does the
    same way; and until something waits, the waiters are a shared empty tuple (a list is 56
    bytes more, for events that are only ever set). Everything else is ``asyncio.Event``'s
    own code.
    """

    def __init__(self) -> None:  # asyncio.Event.__init__, without the deque
        self._waiters = _NO_WAITERS  # type: ignore[assignment]  # typeshed declares the deque
        self._value = False

    async def wait(self) -> Literal[True]:
        if not self._value and isinstance(self._waiters, tuple):  # _NO_WAITERS
            self._waiters = []
        return await super().wait()


#: The waiters of every :class:`SlimEvent` nothing has waited on yet.
_NO_WAITERS: tuple[Any, ...] = ()


_T = TypeVar("_T")


class _Fifo(list[Any]):
    """A list with ``collections.deque``'s ``popleft``, the one deque method ``asyncio.Queue``
    calls besides what lists have (``append``, ``remove``, ``len``, iteration).

    An empty one is 56 bytes where an empty deque holds a 528-byte block. Popping the front
    moves the rest down: nothing at the one or two waiters a connection's queue has, and a
    pointer copy per queued item for items (a deque would be the choice for long queues).
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


#: The putter list of every unbounded :class:`SlimQueue`: empty, and never appended to (a
#: ``put`` waits only while the queue is full, which an unbounded queue never is).
_NOBODY_WAITING = _Fifo()


class SlimQueue(asyncio.Queue[_T]):
    """An ``asyncio.Queue`` that keeps its waiters and items in lists, shares one empty putter
    list among unbounded queues, and whose ``join`` event is a :class:`SlimEvent`.

    CPython's ``Queue.__init__`` makes a getter deque, a putter deque, an item deque and an
    ``Event`` (a fourth deque): 528-byte blocks held as long as the queue. ``Queue`` appends to
    ``_putters`` only in ``put`` while ``full()``, which is never true when ``maxsize <= 0``;
    elsewhere it only pops from it while it is non-empty (``_wakeup_next``), which the shared
    empty list never is. Items go through ``_init``/``_put``/``_get``, the hooks ``Queue``
    defines for subclasses (``PriorityQueue`` and ``LifoQueue`` use them too); ``get`` and
    ``put`` are ``asyncio.Queue``'s own (CPython 3.11-3.13 ``asyncio/queues.py``).
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._getters = _Fifo()
        if maxsize <= 0:
            self._putters = _NOBODY_WAITING
        finished = SlimEvent()
        finished.set()  # as Queue.__init__ leaves it: no unfinished task
        self._finished = finished

    def _init(self, maxsize: int) -> None:
        self._queue = _Fifo()

    def _get(self) -> _T:
        item: _T = self._queue.pop(0)
        return item


class Notifier:
    """Something changed: ``notify()`` wakes every current waiter of ``wait()``.

    Waiters always re-check what they wait for (``wait_until``); a notification with nobody
    waiting is not remembered, so the check-then-wait pattern never misses one within the loop.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event = SlimEvent()

    def notify(self) -> None:
        event, self._event = self._event, SlimEvent()
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
