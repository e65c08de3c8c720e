"""Capped exponential back-off with optional jitter (pure: randomness is passed in).

Used by origin fetch retries, tracker reconnects, stream restarts in a super-peer worker and
worker restarts in the supervisor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """After the ``n``-th consecutive failure (1-based) wait
    ``min(initial * multiplier**(n-1), cap) * (1 + jitter * U[0,1))``."""

    initial: float
    cap: float
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0 or self.multiplier < 1 or self.jitter < 0:
            raise ValueError("back-off delays and jitter must be >= 0 and multiplier >= 1")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1-based; 0 counts as 1)."""
        exponent = min(max(failures - 1, 0), 64)  # 2**64 * anything already exceeds any cap
        raw = float(min(self.cap, self.initial * self.multiplier**exponent))
        if self.jitter and rng is not None:
            raw *= 1.0 + self.jitter * rng.random()
        return raw
