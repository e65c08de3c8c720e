"""Where a worker's memory goes: an opt-in tracemalloc report for long runs (soak, production).

``P2PML_MEMORY_PROFILE=DIR`` in a worker's environment starts :mod:`tracemalloc` (10 frames) at
start-up, takes a baseline snapshot after ``P2PML_MEMORY_BASELINE`` seconds (default 300: past the
warm-up, as ``scripts/soak`` judges slopes) and, when the worker stops, writes
``DIR/worker-<index>-memory.txt``: traced memory now and at the baseline, the allocator's view
(``mallinfo2``: bytes in use, arena size, free inside it), and the 25 call sites whose traced
memory grew most since the baseline (both snapshots after a full collection, so cyclic garbage
not yet collected does not count as growth; the report also gives the collections
:mod:`p2pml_py.rtc.aiortc_backend.garbage` ran after closed connections). Python's allocations only: memory a C library allocates
itself shows up in the allocator's numbers, not in the call sites. Tracing costs CPU and memory;
it is for finding a slope, not for serving.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import logging
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

from p2pml_py.rtc.aiortc_backend import garbage

__all__ = ["ENV", "MemoryProfile", "from_environment", "malloc_info"]

logger = logging.getLogger(__name__)

ENV = "P2PML_MEMORY_PROFILE"
BASELINE_ENV = "P2PML_MEMORY_BASELINE"
FRAMES = 10
TOP = 25


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _mallinfo2() -> Any:
    """glibc's ``mallinfo2`` (>= 2.33), loaded once; ``None`` elsewhere."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function


def malloc_info() -> dict[str, int] | None:
    """glibc's ``mallinfo2``: ``in_use`` (arena + mmapped blocks in use), ``arena`` (bytes the
    main and thread arenas hold), ``free`` (free inside them); ``None`` without glibc."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return {
        "in_use": int(info.uordblks + info.hblkhd),
        "arena": int(info.arena),
        "free": int(info.fordblks),
    }


class MemoryProfile:
    """Baseline after ``baseline_after`` seconds, report on :meth:`write`."""

    def __init__(self, directory: Path, index: int, baseline_after: float) -> None:
        self.path = directory / f"worker-{index}-memory.txt"
        self.baseline_after = baseline_after
        self.baseline: tracemalloc.Snapshot | None = None
        self.baseline_at = 0.0
        self.baseline_malloc: dict[str, int] | None = None
        self.started = time.monotonic()
        directory.mkdir(parents=True, exist_ok=True)
        tracemalloc.start(FRAMES)

    async def take_baseline(self) -> None:
        await asyncio.sleep(self.baseline_after)
        gc.collect()  # compare what is reachable, not cyclic garbage waiting for a collection
        self.baseline = tracemalloc.take_snapshot()
        self.baseline_at = time.monotonic() - self.started
        self.baseline_malloc = malloc_info()

    def report(self) -> str:
        now = time.monotonic() - self.started
        found = gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
        lines = [
            f"after {now:.0f} s: traced {traced / 1e6:.2f} MB; malloc {malloc_info()}",
            f"full collections after closed connections: {garbage.STATS}; "
            f"a last one now found {found} objects",
        ]
        if self.baseline is None:
            lines.append(f"no baseline yet (taken after {self.baseline_after:.0f} s)")
            return "\n".join(lines) + "\n"
        lines.append(f"baseline at {self.baseline_at:.0f} s: malloc {self.baseline_malloc}")
        snapshot = tracemalloc.take_snapshot()
        for stat in snapshot.compare_to(self.baseline, "traceback")[:TOP]:
            lines.append(f"{stat.size_diff / 1e3:+.1f} KB, {stat.count_diff:+d} blocks")
            lines.extend("    " + line for line in stat.traceback.format()[-FRAMES:])
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        try:
            self.path.write_text(self.report(), encoding="utf-8")
        except OSError as exc:
            logger.warning("memory profile: cannot write %s: %s", self.path, exc)
        else:
            logger.info("memory profile written to %s", self.path)


def from_environment(index: int) -> MemoryProfile | None:
    directory = os.environ.get(ENV)
    if not directory:
        return None
    try:
        baseline = float(os.environ.get(BASELINE_ENV, "300"))
    except ValueError:
        baseline = 300.0
    return MemoryProfile(Path(directory), index, max(0.0, baseline))
