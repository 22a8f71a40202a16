"""Deadline-exact firing: an in-memory index of next due instants, and the loop over it.

The index holds, for every clock of the partitions this engine owns, the
instant its next stage crosses (as a float timestamp in a heap — no per-clock
objects). It is rebuilt from ``engine_clocks.next_due_at`` when partitions are
assigned; the database stays the truth and the index is only a schedule:
firing re-reads each clock in a transaction, so a stale entry fires nothing.

The timer sleeps until the earliest instant (or until woken by an earlier
one) and fires every clock that is due. While the engine has not yet read its
input up to the end offsets seen at assignment, the timer holds: a stop event
already waiting in the backlog must be applied before a breach is judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_engine import store
from slawatch_engine.ledger import Changes, Ledger
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.store import StaleClockError

log = logging.getLogger(__name__)

FIRE_BATCH = 500
RETRY_STALE = timedelta(milliseconds=100)


class DueIndex:
    """Next due instant per clock, earliest first; stale heap entries are skipped lazily."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._partition: dict[str, int] = {}
        self._popped: dict[str, int] = {}
        """Partitions of the clocks handed out by the last ``pop_due``."""

    def __len__(self) -> int:
        return len(self._due)

    def set(self, clock_id: str, partition: int, due: datetime | None) -> None:
        if due is None:
            self._due.pop(clock_id, None)
            self._partition.pop(clock_id, None)
            return
        stamp = due.timestamp()
        if self._due.get(clock_id) == stamp:
            return
        self._due[clock_id] = stamp
        self._partition[clock_id] = partition
        heapq.heappush(self._heap, (stamp, clock_id))

    def update(self, changes: Changes) -> None:
        for clock_id, (partition, due) in changes.due.items():
            self.set(clock_id, partition, due)

    def partition_of(self, clock_id: str, default: int) -> int:
        return self._partition.get(clock_id, self._popped.get(clock_id, default))

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for clock_id in [c for c, p in self._partition.items() if p in gone]:
            self.set(clock_id, 0, None)

    def next_stamp(self) -> float | None:
        self._skip_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int = FIRE_BATCH) -> list[str]:
        """Remove and return up to ``limit`` clocks due at or before ``now``."""
        due: list[str] = []
        self._popped = {}
        while len(due) < limit:
            self._skip_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, clock_id = heapq.heappop(self._heap)
            del self._due[clock_id]
            self._popped[clock_id] = self._partition.pop(clock_id)
            due.append(clock_id)
        return due

    def _skip_stale(self) -> None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)


class Timer:
    """Fires due stages; woken early whenever a change brings a due instant closer."""

    def __init__(
        self,
        db: AsyncEngine,
        ledger: Ledger,
        index: DueIndex,
        lock: asyncio.Lock,
        on_committed: Callable[[Changes], None],
        now: Callable[[], datetime],
        metrics: EngineMetrics,
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._index = index
        self._lock = lock
        self._on_committed = on_committed
        self._now = now
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._held = True

    def hold(self, held: bool) -> None:
        """Hold (True) or release (False) firing; see the module docstring."""
        if self._held and not held:
            log.info("input caught up: timer released with %d clocks scheduled", len(self._index))
        self._held = held
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            if not self._held and await self._fire_due():
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        upcoming = self._index.next_stamp()
        timeout = None
        if upcoming is not None and not self._held:
            timeout = max(0.0, upcoming - self._now().timestamp())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _fire_due(self) -> bool:
        clock_ids = self._index.pop_due(self._now().timestamp())
        if not clock_ids:
            return False
        try:
            async with self._lock, self._db.begin() as conn:
                work = await store.load_clocks(conn, clock_ids)
                now = self._now()
                changes = self._ledger.fire(work, clock_ids, now)
                await work.save(conn, now)
                await self._ledger.stage(conn, changes, now)
        except StaleClockError as exc:
            # another engine moved a clock first (a rebalance in flight): look again soon
            log.warning("clock %s changed under us; retrying %d clocks", exc, len(clock_ids))
            retry = self._now() + RETRY_STALE
            for clock_id in clock_ids:
                self._index.set(clock_id, self._index.partition_of(clock_id, 0), retry)
            return True
        self._index.update(changes)
        committed = self._now()
        for event in changes.emitted:
            lateness = (committed - event.occurred_at).total_seconds()
            self._metrics.fire_lateness.observe(max(0.0, lateness))
        self._on_committed(changes)
        return True
