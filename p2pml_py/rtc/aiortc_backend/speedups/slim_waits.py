"""``slim_waits``: aioice's and aiortc's ICE objects make their events and queues without the
empty deques CPython's ``asyncio.Event`` and ``asyncio.Queue`` allocate up front.

Every ``collections.deque`` allocates a 528-byte block when it is made. Per connection, aioice's
``Connection`` makes two unbounded ``asyncio.Queue`` (``_check_list_state`` and ``_queue``: each
with a putter deque an unbounded queue never uses and a ``join`` event) and aiortc's
``RTCIceTransport`` one ``asyncio.Event`` -- five blocks, ~2.6 KiB, held as long as the
connection, though nobody waits on them after ICE has connected (measured with tracemalloc on
the capacity seed: ``P2PML_CAPACITY_TRACEMALLOC``). The patch gives the two modules an
``asyncio`` namespace whose ``Event`` and ``Queue`` are :class:`~p2pml_py.base.aio.SlimEvent`
and :class:`~p2pml_py.base.aio.SlimQueue` (subclasses with smaller bookkeeping, so
``isinstance`` still holds, and nothing added to the per-packet ``get`` of the queue the DTLS
reader waits on); every other name is looked up where the module looked it up before
(``ice_prompt_complete`` already gives aioice.ice its own view of ``asyncio``, which this
wraps), and nothing outside these two modules changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from p2pml_py.base.aio import SlimEvent, SlimQueue
from p2pml_py.rtc.aiortc_backend.speedups._core import (
    Names,
    Patch,
    ProbeFailed,
    Target,
    module,
    target,
)

#: The modules whose ``asyncio`` name the patch replaces.
MODULES = ("aioice.ice", "aiortc.rtcicetransport")


class _SlimAsyncio:
    """``asyncio`` as a patched module sees it: ``Event`` and ``Queue`` are the slim ones, every
    other name is what the module had (the module itself, or ``ice_prompt_complete``'s view of
    it for aioice.ice, which this wraps)."""

    Event = SlimEvent
    Queue = SlimQueue

    def __init__(self, original: Any) -> None:
        self._original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def probe(names: Names) -> list[Target]:
    targets = []
    for name in MODULES:
        owner = module(name)
        if vars(owner).get("asyncio") is not asyncio:
            raise ProbeFailed(f"{name}.asyncio is not the asyncio module")
        targets.append(target(owner, "asyncio", _SlimAsyncio))
    return targets


PATCH = Patch("slim_waits", probe)
