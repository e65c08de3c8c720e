"""Full garbage collections after peer connections close (the driver of
:class:`p2pml_py.base.gcpace.GcPacer`; why: its module docstring).

:class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory` calls :func:`watch` for every
``RTCPeerConnection`` it makes; when that connection's state turns "closed", :func:`closed`
asks the process's pacer and, if no collection is scheduled yet, schedules one on the running
event loop. One pacer per process, because the collector is per process. :data:`STATS` counts the
collections and what they found (``p2pml_py.rtc.aiortc_backend.garbage``, debug log lines too).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from typing import Any

from p2pml_py.base.gcpace import GcPacer

__all__ = ["STATS", "closed", "pacer", "watch"]

logger = logging.getLogger(__name__)

_pacer = GcPacer()
_scheduled: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

#: Full collections run here: how many, unreachable objects found, seconds spent in them.
STATS = {"collections": 0, "found": 0, "seconds": 0.0}


def pacer() -> GcPacer:
    """The process's pacer (tests set its ``interval``/``settle``)."""
    return _pacer


def watch(pc: Any) -> None:
    """Have a full collection follow ``pc``'s close."""
    pc.on("connectionstatechange", functools.partial(_on_state, pc))  # smaller than a closure


def _on_state(pc: Any) -> None:
    if pc.connectionState == "closed":
        closed()


def closed() -> None:
    """A peer connection closed: schedule a full collection unless one is scheduled on this
    loop already. (A collection scheduled on a loop that has closed since never runs: forget it.)"""
    global _scheduled
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # closed outside an event loop: nothing to schedule on
        return
    if _scheduled is not None:
        owner, handle = _scheduled
        if owner is loop and not handle.cancelled():
            return
        _scheduled = None
        _pacer.forget()
    due = _pacer.closed(loop.time())
    if due is not None:
        _scheduled = (loop, loop.call_at(due, _collect, loop))


def _collect(loop: asyncio.AbstractEventLoop) -> None:
    global _scheduled
    _scheduled = None
    started = time.perf_counter()
    found = gc.collect()
    spent = time.perf_counter() - started
    _pacer.collected(loop.time())
    STATS["collections"] += 1
    STATS["found"] += found
    STATS["seconds"] += spent
    logger.debug(
        "full collection after closed connections: %d objects, %.1f ms", found, spent * 1e3
    )
