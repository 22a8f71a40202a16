"""A token bucket per source: a burst at once, then a steady rate; in memory, per process.

Pure arithmetic over a monotonic ``now`` passed in. ``take`` either grants a
request (0.0) or says how many seconds until one would be granted, which
becomes the 429's ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens, refilled at ``per_second``; each request takes one."""

    per_second: float
    burst: int
    tokens: float
    stamp: float

    @classmethod
    def full(cls, per_second: float, burst: int, now: float) -> TokenBucket:
        return cls(per_second, burst, float(burst), now)

    def take(self, now: float) -> float:
        """0.0 and one token fewer if one is left; else the seconds until one will be."""
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.per_second)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second
