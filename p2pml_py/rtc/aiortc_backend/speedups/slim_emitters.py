"""``slim_emitters``: pyee's event emitters keep each event's handlers in a ``dict``, not an
``OrderedDict``.

Every aiortc object of a connection is a pyee ``AsyncIOEventEmitter`` (the peer connection, its
SCTP, DTLS and ICE transports, the ICE gatherer, the data channel), and ``EventEmitter``
(pyee 13 ``pyee/base.py``) stores the handlers of each event it has ever had one for in an
``OrderedDict``: ~390 bytes for one handler where a ``dict`` takes ~230, and a connection has
about eleven such events (measured with ``P2PML_CAPACITY_TRACEMALLOC`` on the capacity seed),
held as long as it lives. ``dict`` keeps insertion order too (Python >= 3.7), which is all
``OrderedDict`` gave here: pyee only sets, pops, tests and lists the entries in order. Its
``_call_handlers`` also made an empty ``OrderedDict`` at every ``emit`` of an event nobody
listens to; the replacement reads the handlers without one.

``AsyncIOEventEmitter`` also makes a ``set`` of the futures its coroutine handlers returned
(``_waiting``, 216 bytes, six emitters a connection); aiortc's handlers and ours are plain
functions, so it stays empty for good. Here it starts as a shared empty ``frozenset`` (with
no-op ``discard``/``clear``, what ``cancel`` and a done callback call) and becomes the
emitter's own ``set`` when a handler first returns a future.

The replacements are ``EventEmitter._add_event_handler`` and ``_call_handlers`` with the same
steps under the same lock, and ``AsyncIOEventEmitter.__init__`` (pyee's, then the shared empty
``_waiting``) and ``_emit_run`` (pyee's steps, the set made on first use); ``emit``, ``once``,
``remove_listener``, ``wait_for_complete``, ``cancel`` and the rest are pyee's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, get, module, target


def _add_event_handler(self: Any, event: str, k: Any, v: Any) -> None:
    self.emit("new_listener", event, k)  # before it is added, as pyee does
    with self._lock:
        handlers = self._events.get(event)
        if handlers is None:
            handlers = self._events[event] = {}
        handlers[k] = v


def _call_handlers(self: Any, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    with self._lock:
        handlers = self._events.get(event)
        if not handlers:
            return False
        funcs = list(handlers.values())
    for f in funcs:
        self._emit_run(f, args, kwargs)
    return True


class _NothingWaiting(frozenset[Any]):
    """The ``_waiting`` of an emitter none of whose handlers returned a future: empty, shared,
    and never added to (``_emit_run`` gives the emitter its own set first)."""

    __slots__ = ()

    def discard(self, item: Any) -> None:
        pass

    def clear(self) -> None:
        pass


NOTHING_WAITING = _NothingWaiting()


def _init(original: Any) -> Any:
    def __init__(self: Any, loop: Any = None) -> None:
        original(self, loop)
        self._waiting = NOTHING_WAITING

    return __init__


def _emit_run(self: Any, f: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        result: Any = f(*args, **kwargs)
    except Exception as exc:
        self.emit("error", exc)
        return
    if asyncio.iscoroutine(result):
        if self._loop:
            future: Any = asyncio.ensure_future(result, loop=self._loop)
        else:
            future = asyncio.ensure_future(result)
    elif isinstance(result, asyncio.Future):
        future = result
    else:
        return

    def callback(done: asyncio.Future[Any]) -> None:
        self._waiting.discard(done)
        if done.cancelled():
            return
        exc = done.exception()
        if exc:
            self.emit("error", exc)

    future.add_done_callback(callback)
    if self._waiting is NOTHING_WAITING:
        self._waiting = set()
    self._waiting.add(future)


def probe(names: Names) -> list[Target]:
    emitter = get(module("pyee.base"), "EventEmitter")
    asyncio_emitter = get(module("pyee.asyncio"), "AsyncIOEventEmitter")
    return [
        target(emitter, "_add_event_handler", lambda original: _add_event_handler),
        target(emitter, "_call_handlers", lambda original: _call_handlers),
        target(asyncio_emitter, "__init__", _init),
        target(asyncio_emitter, "_emit_run", lambda original: _emit_run),
    ]


PATCH = Patch("slim_emitters", probe)
