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

The two replacements are ``EventEmitter._add_event_handler`` and ``_call_handlers`` with the
same steps under the same lock; ``emit``, ``once``, ``remove_listener`` and the rest are
pyee's own.
"""

from __future__ import annotations

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


def probe(names: Names) -> list[Target]:
    emitter = get(module("pyee.base"), "EventEmitter")
    return [
        target(emitter, "_add_event_handler", lambda original: _add_event_handler),
        target(emitter, "_call_handlers", lambda original: _call_handlers),
    ]


PATCH = Patch("slim_emitters", probe)
