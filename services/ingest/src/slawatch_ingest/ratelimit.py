"""Token buckets, in memory, per process: one per source, and one per client address that
fails to authenticate.

``TokenBucket`` is pure arithmetic over a monotonic ``now`` passed in.
``take`` either grants a request (0.0) or says how many seconds until one
would be granted, which becomes the 429's ``Retry-After``.

``FailureLimit`` keeps a bucket per client address, spent by failed
authentication. A credential the headers alone prove (a bearer token, a
basic-auth user) is checked whatever the bucket holds, and a valid one is
served; one that fails spends a token (``take``), or is answered 429 when
none is left. A body signature cannot be checked before the body is read,
so reading it costs a token up front (``take``), given back once the
signature verifies (``refund``): however many such requests arrive at once,
an address has at most its burst of unproven bodies read. Only addresses
that failed lately (or have a body being checked) are held, at most
``max_addresses`` of them (the least recently seen is forgotten first), and
a bucket that has filled up again is dropped, so a request from an address
that never failed costs one dictionary lookup. IPv6 addresses count by their
/64 network, the block one host usually has to itself.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from slawatch_ingest.settings import IngestSettings

UNKNOWN_ADDRESS = "unknown"
"""The key of requests whose client address the server does not know (a Unix socket)."""


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
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1.0
        return wait

    def wait(self, now: float) -> float:
        """0.0 if a token is left (none is taken); else the seconds until one will be."""
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.per_second)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.per_second

    @property
    def is_full(self) -> bool:
        return self.tokens >= self.burst


class FailureLimit:
    """A token bucket per client address, spent by each failed authentication."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        max_addresses: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_second = per_second
        self._burst = burst
        self._max_addresses = max_addresses
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @classmethod
    def of(
        cls, settings: IngestSettings, monotonic: Callable[[], float] = time.monotonic
    ) -> FailureLimit:
        """The limit ``SLAWATCH_UNAUTH_PER_MINUTE``, ``_BURST`` and ``_ADDRESSES`` set."""
        return cls(
            settings.unauth_per_minute / 60.0,
            settings.unauth_burst,
            settings.unauth_addresses,
            monotonic,
        )

    @property
    def held(self) -> int:
        """How many addresses are held."""
        return len(self._buckets)

    def wait(self, host: str | None) -> float:
        """0.0 if the client at ``host`` may try; else the seconds until it may."""
        if not self._buckets:
            return 0.0
        key = address_key(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        wait = bucket.wait(self._monotonic())
        if bucket.is_full:
            del self._buckets[key]
        return wait

    def charge(self, host: str | None) -> None:
        """One failed authentication of the client at ``host``, whatever its bucket holds
        (it stays at empty, not below)."""
        now = self._monotonic()
        bucket = self._held(address_key(host), now)
        bucket.wait(now)  # refill up to now
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def take(self, host: str | None) -> float:
        """An attempt of the client at ``host`` that failed, or is not proven yet: 0.0 and
        one token fewer if one is left; else the seconds until one will be (none taken)."""
        now = self._monotonic()
        return self._held(address_key(host), now).take(now)

    def refund(self, host: str | None) -> None:
        """Give back the token ``take`` took for an attempt that then proved itself.

        Never above the burst; a bucket full again is dropped, and an address
        forgotten meanwhile stays forgotten.
        """
        key = address_key(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        bucket.wait(self._monotonic())  # refill up to now
        bucket.tokens = min(float(bucket.burst), bucket.tokens + 1.0)
        if bucket.is_full:
            del self._buckets[key]

    def _held(self, key: str, now: float) -> TokenBucket:
        """The bucket of ``key``, a full one if it had none; now the most recently seen."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self._per_second, self._burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket


def address_key(host: str | None) -> str:
    """What ``FailureLimit`` counts ``host`` by: an IPv4 address as it is, an IPv6 one by
    its /64 network (an IPv4-mapped one as the IPv4 address), anything else as it is."""
    if not host:
        return UNKNOWN_ADDRESS
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
