"""The plan of one run: how many clocks, which tickets, and when each is due or stopped.

Pure arithmetic over epoch seconds: the seeding, the stops, the coverage check
and the figures all read the same ``Plan``, so what is checked is exactly what
was written.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2

from bench.ingest import ROOT
from slawatch_common.events import Metric, Priority, Ticket
from slawatch_engine.clock import BREACH, stage_offset
from slawatch_engine.policy import load_policies, target_seconds

CONFIG = ROOT / "deploy/config/slawatch.yaml"
PARTITIONS = 4
SOURCE = "scale"
DOWN_S = 20.0
"""Between the kill and the new engine's spawn (past the consumer group's session)."""
SLACK_S = 30.0
"""The window may start this much later than planned if the engine is ready late."""
TAIL_S = 60.0
"""Band deadlines run this long past the kill (plus the earliest warning's lead)."""
STOP_FROM_S = 60.0
"""Stops go to band tickets due from this far into the window on."""
FILLER_SPREAD_S = 600
FILLER_SHAPES = 3 * 2 * FILLER_SPREAD_S
"""Filler tickets differ only in (seconds since creation, priority, service)."""

Spec = tuple[str, float, str, str, int]
"""A ticket to create: id, creation instant (epoch s), priority, service, partition."""


@dataclass(frozen=True)
class Plan:
    """Sizes and instants of one run; every instant is an epoch second."""

    clocks: int
    window_s: float
    ingest_rate: float
    target_s: int
    """The band's response target."""
    leads: dict[str, float]
    """Band stage → seconds before the deadline it is crossed (the breach: 0)."""
    band: int
    per_s: float
    """Band deadlines per second."""
    w0: float = 0.0
    """The band's origin: its deadlines follow it; stages crossed by then count as fired."""
    start: float = 0.0
    """The window's start: ``w0``, or up to ``SLACK_S`` later if the engine was late."""

    @classmethod
    def from_env(cls) -> Plan:
        """From ``SLAWATCH_BENCH_CLOCKS``, ``_WINDOW_S``, ``_DUE_RATE`` and
        ``_INGEST_RATE``, and the policy the config gives a P1 network ticket."""
        clocks = int(os.environ.get("SLAWATCH_BENCH_CLOCKS", "1000000"))
        window_s = float(os.environ.get("SLAWATCH_BENCH_WINDOW_S", "150"))
        due_rate = float(os.environ.get("SLAWATCH_BENCH_DUE_RATE", "1000"))
        seconds, leads = _band_policy()
        span = SLACK_S + window_s + TAIL_S + max(leads.values())
        # each band ticket is due once per stage; 30 % of those in the window never breach
        per_s = due_rate / (len(leads) - 0.3)
        band = min(round(per_s * span), int(0.45 * (clocks // 2)))
        return cls(
            clocks=clocks,
            window_s=window_s,
            ingest_rate=float(os.environ.get("SLAWATCH_BENCH_INGEST_RATE", "500")),
            target_s=seconds,
            leads=leads,
            band=band,
            per_s=band / span,
        )

    @property
    def tickets(self) -> int:
        return self.clocks // 2

    @property
    def filler(self) -> int:
        return self.tickets - self.band

    @property
    def kill_at(self) -> float:
        return self.start + self.window_s

    @property
    def window_end(self) -> float:
        """Lateness counts stages due up to here: a few seconds before the kill."""
        return self.kill_at - 5.0

    def deadline(self, j: int) -> float:
        return _micro(self.w0 + (j + 0.5) / self.per_s)

    def created(self, j: int) -> float:
        return _micro(self.deadline(j) - self.target_s)

    def stop_of(self, j: int) -> float | None:
        """When band ticket ``j`` is stopped, if it is."""
        due = self.deadline(j)
        if j % 10 >= 3 or not self.start + STOP_FROM_S <= due <= self.kill_at - 1:
            return None
        return _micro(due - 10 - (j * 37 % 500) / 10)

    def crossed(self, j: int) -> int:
        """How many of band ticket ``j``'s response stages are crossed by ``w0``."""
        return sum(self.deadline(j) - lead <= self.w0 for lead in self.leads.values())

    def band_spec(self, j: int, tid: str | None = None) -> Spec:
        """Band ticket ``j``, or (``tid``) a template of it on partition 0."""
        partition = partition_of(f"b{j}") if tid is None else 0
        return tid or f"b{j}", self.created(j), "P1", "network", partition

    def filler_spec(self, i: int, now: float, tid: str | None = None) -> Spec:
        """Filler ticket ``i`` as of ``now``, or (``tid``) a template of it on partition 0."""
        ago, priority, service = _shape(i)
        partition = partition_of(f"f{i}") if tid is None else 0
        return tid or f"f{i}", now - ago, priority, service, partition


def _band_policy() -> tuple[int, dict[str, float]]:
    """The response target of a P1 network ticket now, and each stage's lead on it."""
    book = load_policies(CONFIG)
    policy = book.select(Ticket(id="x", service="network"), Priority.P1)
    target = policy.target(Priority.P1, Metric.RESPONSE) if policy else None
    if policy is None or target is None:
        raise RuntimeError("no policy gives a P1 network ticket a response target")
    seconds = target_seconds(target, datetime.now(UTC), book.calendar(policy.calendar))
    offsets = {s: stage_offset(s, seconds) for s in (*policy.stages, BREACH)}
    return seconds, {s: seconds - o for s, o in offsets.items() if o is not None}


def _shape(i: int) -> tuple[int, str, str]:
    """Filler ticket ``i``: seconds since creation, priority, service."""
    return (
        i % FILLER_SPREAD_S,
        ("P3", "P4", "P5")[(i // FILLER_SPREAD_S) % 3],
        ("network", "desk")[(i // (3 * FILLER_SPREAD_S)) % 2],
    )


def _micro(at: float) -> float:
    return round(at * 1e6) / 1e6


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def partition_of(tid: str) -> int:
    """The input partition aiokafka's default partitioner gives the ticket's key."""
    return int((murmur2(f"{SOURCE}:{tid}".encode()) & 0x7FFFFFFF) % PARTITIONS)


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench.scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
