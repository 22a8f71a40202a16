"""Retention: rows that settled longer ago than the retention period are deleted.

Personal data (ticket titles, assignees, addresses, rendered messages, raw
records kept as dead letters) is kept no longer than a record needs it:
``SLAWATCH_RETENTION_DAYS`` (``ServiceSettings.retention_days``, 396 days:
13 months cover a yearly review) after the record *settled* — a ticket whose
clocks all ended, a notification in its final state, a dead letter last seen.

Each service says what may go in a list of ``Rule``: a table, the column
holding the instant a row settled (``settled_at``), a further condition that
keeps whatever is still open or pending (``settled``, given the cutoff), and
the ``Dependent`` rows of other tables that go with each row (a
notification's attempts). ``Pruner`` applies the rules:

- a *round* runs ``first_wait_s`` after start (a service's first minutes are
  for catching up with its topics) and then every ``interval_s`` (an hour by default),
  each wait drawn within ± ``jitter`` of it, so that replicas spread out;
- a round deletes rule by rule in batches of at most ``batch`` rows (1,000 by
  default): one short transaction selects the keys of a batch (locking
  nothing: a ``FOR UPDATE`` there was seen to stall a notifier's intake on
  PostgreSQL), deletes their dependents and then the rows, each statement
  checking the condition again — a row a service is changing is waited for
  and, changed, kept — and commits; the next batch
  follows after ``pause_s``, so no lock is held for long and the service's
  own transactions get in between;
- a round that fails (the database away, or anything else) is logged and
  counted; the next round tries again, and the task never ends on its own;
- ``running`` starts the task and, on leaving, lets the batch under way
  commit, then stops it (cancelled after ``stop_timeout_s``).

Metrics, on the registry passed in: ``slawatch_retention_pruned_total{table}``
(rows deleted, dependents under their own table), ``slawatch_retention_rounds_total{outcome}``
(``ok``, ``failed``) and ``slawatch_retention_last_success_timestamp_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import is_transient
from slawatch_common.settings import ServiceSettings

log = logging.getLogger(__name__)

BATCH = 1000
"""Rows deleted per statement (and per transaction) at most."""
INTERVAL_S = 3600.0
JITTER = 0.1
PAUSE_S = 0.1
"""The wait between two batches: the service's own transactions get in between."""
STOP_TIMEOUT_S = 5.0

Condition = Callable[[datetime], sa.ColumnElement[bool]]
"""The condition a row must meet besides having settled before the cutoff (given it)."""


@dataclass(frozen=True, slots=True)
class Dependent:
    """Rows of ``table`` deleted with each pruned row: those whose ``columns`` hold the
    pruned row's ``references`` (column names, in the same order)."""

    table: sa.Table
    columns: tuple[str, ...]
    references: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.columns or len(self.columns) != len(self.references):
            raise ValueError(f"{self.table.name}: columns and references must pair up")


@dataclass(frozen=True, slots=True)
class Rule:
    """Rows of ``table`` whose ``settled_at`` lies before the cutoff and that meet
    ``settled`` (when given) are deleted, with their ``dependents``.

    A condition naming ``table`` again (a row that refers to another) must use an
    alias of it; the table's own columns it may use as they are.
    """

    table: sa.Table
    settled_at: str
    settled: Condition | None = None
    dependents: tuple[Dependent, ...] = ()

    def where(self, cutoff: datetime) -> sa.ColumnElement[bool]:
        old = self.table.c[self.settled_at] < cutoff
        return old if self.settled is None else sa.and_(old, self.settled(cutoff))

    @property
    def tables(self) -> tuple[str, ...]:
        """The names of the tables it deletes from: its own, then its dependents'."""
        return (self.table.name, *(dependent.table.name for dependent in self.dependents))


@dataclass
class Round:
    """What one round deleted (rows settled before ``cutoff``), by table, and in how many
    batches."""

    cutoff: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class RetentionMetrics:
    """The pruner's metrics, registered against ``registry``; a series per table from start."""

    def __init__(self, registry: CollectorRegistry, tables: Sequence[str]) -> None:
        self.pruned = Counter(
            "slawatch_retention_pruned_total",
            "Rows deleted once settled for longer than SLAWATCH_RETENTION_DAYS, by table.",
            ["table"],
            registry=registry,
        )
        self.rounds = Counter(
            "slawatch_retention_rounds_total",
            "Retention rounds, by outcome (failed: logged, tried again next round).",
            ["outcome"],
            registry=registry,
        )
        self.last_success = Gauge(
            "slawatch_retention_last_success_timestamp_seconds",
            "Unix time the last retention round completed.",
            registry=registry,
        )
        for table in tables:
            self.pruned.labels(table)
        for outcome in ("ok", "failed"):
            self.rounds.labels(outcome)


class Pruner:
    """Deletes what ``rules`` say has been settled for longer than ``keep``; see the module
    docstring. ``now`` is the service's clock. The ``lock`` that ``prune``, ``run`` and
    ``running`` take is held around each batch's statements (a service whose writers share
    one in the process; taken once connected)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        registry: CollectorRegistry,
        *,
        keep: timedelta,
        now: Callable[[], datetime],
        service: str,
        batch: int = BATCH,
        interval_s: float = INTERVAL_S,
        jitter: float = JITTER,
        pause_s: float = PAUSE_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        rand: random.Random | None = None,
        align: Callable[[datetime], datetime] | None = None,
        first_wait_s: float = 0.0,
    ) -> None:
        if batch < 1 or interval_s <= 0 or not 0 <= jitter < 1 or keep <= timedelta(0):
            raise ValueError("retention: batch ≥ 1, interval > 0, 0 ≤ jitter < 1, keep > 0")
        self.rules = tuple(rules)
        self.keep = keep
        self.metrics = RetentionMetrics(
            registry, list(dict.fromkeys(name for rule in self.rules for name in rule.tables))
        )
        self._now = now
        self._service = service
        self._batch = batch
        self._interval_s = interval_s
        self._jitter = jitter
        self._pause_s = pause_s
        self._stop_timeout_s = stop_timeout_s
        self._rand = rand or random.Random()
        self._align = align
        self._first_wait_s = first_wait_s

    @classmethod
    def of_settings(
        cls,
        rules: Sequence[Rule],
        settings: ServiceSettings,
        registry: CollectorRegistry,
        now: Callable[[], datetime],
        service: str,
        align: Callable[[datetime], datetime] | None = None,
    ) -> Pruner:
        """A service's pruner: ``rules`` kept ``SLAWATCH_RETENTION_DAYS`` after they settled,
        the first round ``SLAWATCH_RETENTION_FIRST_ROUND_S`` after start."""
        return cls(
            rules,
            registry,
            keep=timedelta(days=settings.retention_days),
            now=now,
            service=service,
            first_wait_s=settings.retention_first_round_s,
            align=align,
        )

    def cutoff(self) -> datetime:
        """Rows that settled before this instant go: ``keep`` ago, moved back by ``align``
        (to the start of a period, say)."""
        cutoff = self._now() - self.keep
        return cutoff if self._align is None else min(cutoff, self._align(cutoff))

    async def prune(
        self,
        db: AsyncEngine,
        stopping: asyncio.Event | None = None,
        lock: asyncio.Lock | None = None,
    ) -> Round:
        """One round: every rule, batch by batch, until each has nothing left before the
        cutoff (or ``stopping`` is set, checked between batches). Raises what the database
        raised; the batches committed before stay deleted."""
        cutoff = self.cutoff()
        done = Round(cutoff)
        for rule in self.rules:
            while stopping is None or not stopping.is_set():
                # connected first: the lock is never held while the database is awaited
                async with db.begin() as conn, _held(lock):
                    selected, deleted = await self._batch_of(conn, rule, cutoff)
                if selected:
                    done.batches += 1
                for table, count in deleted.items():
                    done.deleted[table] = done.deleted.get(table, 0) + count
                    self.metrics.pruned.labels(table).inc(count)
                if selected < self._batch:
                    break
                await asyncio.sleep(self._pause_s)
        return done

    async def _batch_of(
        self, conn: AsyncConnection, rule: Rule, cutoff: datetime
    ) -> tuple[int, dict[str, int]]:
        """Delete one batch of ``rule`` in the caller's transaction: (rows selected, rows
        deleted by table)."""
        table = rule.table
        where = rule.where(cutoff)
        key = list(table.primary_key.columns)
        query = sa.select(*key).where(where).limit(self._batch)
        keys = [tuple(row) for row in await conn.execute(query)]
        if not keys:
            return 0, {}
        # every statement checks the condition again: a row that changed since it was
        # selected (SQLite takes its write lock only at the first delete) stays
        chosen = sa.and_(_in(key, keys), where)
        deleted: dict[str, int] = {}
        for dependent in rule.dependents:
            owners = sa.select(*(table.c[name] for name in dependent.references)).where(chosen)
            columns = [dependent.table.c[name] for name in dependent.columns]
            result = await conn.execute(
                sa.delete(dependent.table).where(_column_or_tuple(columns).in_(owners))
            )
            deleted[dependent.table.name] = deleted.get(dependent.table.name, 0) + _count(result)
        result = await conn.execute(sa.delete(table).where(chosen))
        deleted[table.name] = deleted.get(table.name, 0) + _count(result)
        return len(keys), deleted

    def next_wait_s(self) -> float:
        """The wait before the next round: ``interval_s`` ± ``jitter``."""
        spread = self._interval_s * self._jitter
        return self._interval_s + self._rand.uniform(-spread, spread)

    async def run(
        self,
        db: AsyncEngine,
        stopping: asyncio.Event | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        """A round after ``first_wait_s`` and then one every ``next_wait_s`` until
        ``stopping`` is set (or the task is cancelled). A failed round is logged and counted;
        nothing ends the loop."""
        stopping = stopping or asyncio.Event()
        if self._first_wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._first_wait_s)
        while not stopping.is_set():
            await self._round(db, stopping, lock)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.next_wait_s())

    async def _round(
        self, db: AsyncEngine, stopping: asyncio.Event, lock: asyncio.Lock | None
    ) -> None:
        try:
            done = await self.prune(db, stopping, lock)
        except Exception as exc:
            self.metrics.rounds.labels("failed").inc()
            if is_transient(exc):
                log.warning(
                    "%s: retention round failed, the database is unavailable (%s: %s); "
                    "trying again in about %.0f s",
                    self._service,
                    type(exc).__name__,
                    " ".join(str(exc).split())[:300],
                    self._interval_s,
                )
            else:
                log.exception(
                    "%s: retention round failed; trying again in about %.0f s",
                    self._service,
                    self._interval_s,
                )
            return
        self.metrics.rounds.labels("ok").inc()
        self.metrics.last_success.set_to_current_time()
        if done.total:
            log.info(
                "%s: retention: deleted %s (settled before %s)",
                self._service,
                ", ".join(f"{count} from {table}" for table, count in done.deleted.items()),
                done.cutoff.isoformat(timespec="seconds"),
            )

    @contextlib.asynccontextmanager
    async def running(
        self, db: AsyncEngine, lock: asyncio.Lock | None = None
    ) -> AsyncIterator[asyncio.Task[None]]:
        """Run the rounds in a task while the block runs; on leaving, the batch under way
        commits and the task ends (cancelled if it has not within ``stop_timeout_s``)."""
        stopping = asyncio.Event()
        task = asyncio.create_task(self.run(db, stopping, lock), name=f"{self._service}-retention")
        try:
            yield task
        finally:
            stopping.set()
            _, pending = await asyncio.wait({task}, timeout=self._stop_timeout_s)
            if pending:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _held(lock: asyncio.Lock | None) -> contextlib.AbstractAsyncContextManager[Any]:
    return lock if lock is not None else contextlib.nullcontext()


def _column_or_tuple(columns: Sequence[sa.ColumnElement[Any]]) -> sa.ColumnElement[Any]:
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def _in(
    columns: Sequence[sa.ColumnElement[Any]], keys: list[tuple[Any, ...]]
) -> sa.ColumnElement[bool]:
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    return sa.tuple_(*columns).in_(keys)


def _count(result: sa.CursorResult[Any]) -> int:
    return max(result.rowcount, 0)
