"""A clock that moves only when a test says so, for the sans-I/O code.

The sans-I/O parts of the package take time in one of two shapes, and :class:`FakeClock` fits
both:

* as an argument, ``now: float`` -- ``PeerProtocol.receive_message``/``tick``
  (``wire/protocol.py``), ``SwarmRegistry.announce``/``expire`` (``tracker/registry.py``),
  ``TokenBucket`` (``base/bucket.py``): pass ``clock.now()``;
* as a ``clock: Callable[[], float]`` defaulting to ``time.monotonic`` -- ``UploadGate``
  (``apps/superpeer/ratelimit.py``), ``PeerSession``, ``TrackerClient``, the viewer: pass the
  clock itself (it is callable).

Like ``time.monotonic`` it never goes back; its unit is the second.
"""

from __future__ import annotations

import math

__all__ = ["FakeClock"]


class FakeClock:
    """Monotonic seconds that advance only through :meth:`advance` (or :meth:`set`)."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start):
            raise ValueError(f"start must be a finite number, got {start}")
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        """The current time, so the clock can stand in for ``time.monotonic``."""
        return self._now

    def advance(self, dt: float) -> float:
        """Move forward by ``dt`` seconds (>= 0); return the new time."""
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f"a monotonic clock only moves forward: dt={dt}")
        self._now += dt
        return self._now

    def set(self, t: float) -> float:
        """Move forward to ``t`` (not before the current time); return it."""
        return self.advance(t - self._now)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
