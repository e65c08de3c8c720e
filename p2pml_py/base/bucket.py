"""A token bucket with time as an argument (sans-I/O): rate limits that tests drive with a
fake clock."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens (bytes) per second up to ``burst``; time is an argument."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"rate and burst must be > 0, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)

    def set_rate(self, rate: float, burst: float, now: float) -> None:
        self._refill(now)
        self.rate = rate
        self.burst = burst
        self.tokens = min(self.tokens, burst)

    def take(self, amount: float, now: float) -> bool:
        """Take ``amount`` if any token is left (the balance may go negative); False if empty."""
        self._refill(now)
        if self.tokens <= 0:
            return False
        self.tokens -= amount
        return True
