"""Deadline-exact firing: an in-memory index of next due instants, and the loop over it.

The index holds, for every clock of the partitions this engine owns, the
instant its next stage crosses (as a float timestamp in a heap — no per-clock
objects). It is rebuilt from ``engine_clocks.next_due_at`` when partitions are
assigned; the database stays the truth and the index is only a schedule:
firing re-reads each clock in a transaction, so a stale entry fires nothing.

The timer sleeps until the earliest instant (or until woken by an earlier
one) and fires every clock that is due. The lag guard, in two parts: while
the engine has not yet read its input up to the end offsets seen at
assignment (and loaded the index), the timer holds; afterwards, while intake
lags behind the input, a stage fires only once the input has been read up to
its instant (time is driven by the stream: ``input_time``). Either way a stop
event already waiting in the backlog is applied before a breach is judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.consumer import is_fatal, is_transient
from slawatch_common.runtime import Backoff
from slawatch_engine import store
from slawatch_engine.calendar import US, to_us
from slawatch_engine.ledger import Changes, Ledger
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.store import StaleClockError

log = logging.getLogger(__name__)

FIRE_BATCH = 500
LAG_POLL_S = 0.05
RETRY_STALE = timedelta(milliseconds=100)
RETRY_FAILED = timedelta(minutes=10)
"""A clock whose stage could not be fired is tried again this much later."""
HEARTBEAT_S = 5.0
"""The timer looks at least this often, so its heartbeat gauge stays fresh while idle."""


_PARTITION_BITS = 16
_PARTITIONS = 1 << _PARTITION_BITS


def _pack(due: datetime, partition: int) -> int:
    """The due instant (µs since the epoch) and the partition in one int; orders by instant."""
    return _pack_us(to_us(due), partition)


def _pack_us(due_us: int, partition: int) -> int:
    if not 0 <= partition < _PARTITIONS:
        raise ValueError(f"partition {partition} out of range")
    return (due_us << _PARTITION_BITS) | partition


class DueIndex:
    """Next due instant per clock, earliest first.

    Sized for a million clocks: per clock one dict entry (clock id → an int
    packing the due instant in µs and the partition) and one heap entry
    ``(that int, clock id)`` sharing the same objects. Entries superseded by
    ``set`` stay in the heap until they surface (skipped as stale) or the heap
    is compacted once it holds twice as many entries as there are clocks.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        self._popped: dict[str, int] = {}
        """Partitions of the clocks handed out by the last ``pop_due``."""
        self._loading: list[tuple[int, str]] | None = None
        self._touched: set[str] = set()
        """Clocks ``set`` while a load runs: newer than what the load read."""

    def __len__(self) -> int:
        return len(self._due)

    def set(self, clock_id: str, partition: int, due: datetime | None) -> None:
        if self._loading is not None:
            self._touched.add(clock_id)
        if due is None:
            self._due.pop(clock_id, None)
            return
        packed = _pack(due, partition)
        if self._due.get(clock_id) == packed:
            return
        self._due[clock_id] = packed
        heapq.heappush(self._heap, (packed, clock_id))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    # --- bulk loading (partition assignment) --------------------------------------

    def begin_load(self) -> None:
        """Start a bulk load; ``set`` keeps working meanwhile and wins over the load."""
        self._loading, self._touched = [], set()

    def load(self, rows: Iterable[tuple[str, int, int]]) -> int:
        """Add (clock id, partition, due instant in µs since the epoch) rows read from the
        database (``store.due_clocks``); how many were new."""
        assert self._loading is not None, "begin_load first"
        due, loading, touched = self._due, self._loading, self._touched
        added = 0
        for clock_id, partition, due_us in rows:
            if clock_id in touched or clock_id in due:
                continue
            packed = _pack_us(due_us, partition)
            due[clock_id] = packed
            loading.append((packed, clock_id))
            added += 1
        return added

    def end_load(self) -> None:
        """Order what was loaded into the heap (one heapify, not a push per clock); also
        after a load cut short, whose partitions are then dropped."""
        if self._loading is not None:
            self._heap.extend(self._loading)
            heapq.heapify(self._heap)
        self._loading, self._touched = None, set()

    def update(self, changes: Changes) -> None:
        for clock_id, (partition, due) in changes.due.items():
            self.set(clock_id, partition, due)

    def partition_of(self, clock_id: str, default: int) -> int:
        packed = self._due.get(clock_id)
        if packed is None:
            return self._popped.get(clock_id, default)
        return packed & (_PARTITIONS - 1)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        mask = _PARTITIONS - 1
        self._due = {c: packed for c, packed in self._due.items() if packed & mask not in gone}
        self._compact()

    def next_stamp(self) -> float | None:
        """The earliest due instant as a POSIX timestamp, if any."""
        self._skip_stale()
        return (self._heap[0][0] >> _PARTITION_BITS) / US if self._heap else None

    def pop_due(self, now: datetime, limit: int = FIRE_BATCH) -> list[str]:
        """Remove and return up to ``limit`` clocks due at or before ``now``, earliest first."""
        due: list[str] = []
        self._popped = {}
        bound = _pack(now, 0) + _PARTITIONS  # above every packed value at or before now
        while len(due) < limit:
            self._skip_stale()
            if not self._heap or self._heap[0][0] >= bound:
                break
            packed, clock_id = heapq.heappop(self._heap)
            del self._due[clock_id]
            self._popped[clock_id] = packed & (_PARTITIONS - 1)
            due.append(clock_id)
        return due

    def _skip_stale(self) -> None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(packed, clock_id) for clock_id, packed in self._due.items()]
        heapq.heapify(self._heap)


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
        self._input_time: Callable[[], datetime | None] = lambda: None
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

    def follow(self, input_time: Callable[[], datetime | None]) -> None:
        """``input_time``: how far the input has been read while the engine lags behind it
        (None when caught up); no stage due after that instant fires yet."""
        self._input_time = input_time

    async def run(self) -> None:
        while True:
            self._wake.clear()
            if self._held:
                self._metrics.heartbeats.tick("timer")  # alive, waiting for its input
            elif await self._fire_due():
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        upcoming = self._index.next_stamp()
        timeout = HEARTBEAT_S  # at least this often: the heartbeat shows a live timer
        if upcoming is not None and not self._held:
            timeout = min(timeout, max(0.0, upcoming - self._now().timestamp()))
            if timeout == 0.0:  # due, but the input is not read that far: intake wakes us
                timeout = LAG_POLL_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _horizon(self) -> datetime:
        """Now, or how far the input is read if that is earlier (the lag guard)."""
        now, read = self._now(), self._input_time()
        return now if read is None else min(now, read)

    async def _fire_due(self) -> bool:
        horizon = self._horizon()
        clock_ids = self._index.pop_due(horizon)
        if not clock_ids:
            self._metrics.heartbeats.tick("timer")
            return False
        await self._fire_isolated(clock_ids)
        self._metrics.heartbeats.tick("timer")
        return True

    async def _fire_isolated(self, clock_ids: list[str]) -> None:
        """Fire ``clock_ids``; a database that is away is waited out; a clock whose firing
        raises is found by halving and tried again ``RETRY_FAILED`` later, counted and
        logged, while the others fire."""
        backoff = Backoff("timer", self._metrics.heartbeats)
        while True:
            try:
                await self._fire(clock_ids)
                return
            except Exception as exc:
                if is_fatal(exc):
                    raise
                if not is_transient(exc):
                    break
                await backoff.after(exc)
        if len(clock_ids) > 1:
            middle = len(clock_ids) // 2
            await self._fire_isolated(clock_ids[:middle])
            await self._fire_isolated(clock_ids[middle:])
            return
        clock_id = clock_ids[0]
        log.exception("timer: clock %s cannot be fired; trying again later", clock_id)
        self._metrics.timer_failures.inc()
        later = self._now() + RETRY_FAILED
        self._index.set(clock_id, self._index.partition_of(clock_id, 0), later)

    async def _fire(self, clock_ids: list[str]) -> None:
        try:
            async with self._lock, self._db.begin() as conn:
                work = await store.load_clocks(conn, clock_ids)
                now = self._now()
                # judged as of the horizon: nothing past what the input has told us
                changes = self._ledger.fire(work, clock_ids, min(now, self._horizon()))
                await work.save(conn, now)
                await self._ledger.stage(conn, changes, now)
        except StaleClockError as exc:
            # another engine moved a clock first (a rebalance in flight): look again soon
            log.warning("clock %s changed under us; retrying %d clocks", exc, len(clock_ids))
            retry = self._now() + RETRY_STALE
            for clock_id in clock_ids:
                self._index.set(clock_id, self._index.partition_of(clock_id, 0), retry)
            return
        self._index.update(changes)
        committed = self._now()
        for event in changes.emitted:
            lateness = (committed - event.occurred_at).total_seconds()
            self._metrics.fire_lateness.observe(max(0.0, lateness))
        self._on_committed(changes)
