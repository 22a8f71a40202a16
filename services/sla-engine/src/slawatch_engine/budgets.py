"""A contract's availability watched in real time: error-budget warnings and breaches.

Each availability group of a contract has an error budget for its current
period (the contract's ``review`` period: month, quarter or year): the outage
the group may have in the whole period and still meet its target,
(1 − target) × Σ(period − maintenance) over its services. When the outage
so far has spent 50, 75 and 90 % of it, an ``sla.warning`` is emitted; once it
is overspent — the period can no longer meet its target — an ``sla.breach``.
They are SLA events like a ticket clock's (``metric: availability``, the
contract's ``escalation`` chain), so the notifier escalates them the same way.

Every engine evaluates every contract: on each batch of monitoring events, at
the instant the next stage can be crossed at the earliest while outages go
on (``GroupFigures.next_crossing``, a lower bound: the watch looks again
then), and at least every ``refresh_s``. A stage is emitted once per
contract, group and period: ``engine_budget_stages`` remembers it, and the
SLA event's id is derived from it, so two engines crossing it together stage
one outbox row. The event is staged with a partition this engine owns, so
this engine publishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import is_fatal, is_transient
from slawatch_common.events import (
    ClockState,
    Metric,
    Priority,
    SlaData,
    SlaEvent,
    SlaEventType,
    TicketRef,
    bounded_id,
)
from slawatch_common.runtime import Backoff
from slawatch_engine import outbox, store
from slawatch_engine.availability import GroupFigures
from slawatch_engine.clock import BREACH
from slawatch_engine.compliance import availability_of
from slawatch_engine.contracts import Contract
from slawatch_engine.ledger import SOURCE, Changes, sla_event_id
from slawatch_engine.metrics import ComplianceMetrics, EngineMetrics
from slawatch_engine.periods import Period, period_containing
from slawatch_engine.policy import PolicyBook
from slawatch_engine.reporting import note_counted, stored_alerts_counted

log = logging.getLogger(__name__)

STAGES = ("warning:50", "warning:75", "warning:90", BREACH)
KIND = {"monthly": "month", "quarterly": "quarter", "yearly": "year"}
CONTRACT_SOURCE = "contract"
"""The ``ticket.source`` of availability SLA events; ``ticket.id`` is contract/group."""


def budget_event(
    name: str,
    contract: Contract,
    group: str,
    period: Period,
    figures: GroupFigures,
    stage: str,
    at: datetime,
) -> SlaEvent:
    """The SLA event of ``stage`` of a group's error budget."""
    kind: SlaEventType = "sla.breach" if stage == BREACH else "sla.warning"
    clock_id = bounded_id(f"availability:{name}:{group}:{period.label}")
    percent = 100 if stage == BREACH else int(stage.partition(":")[2])
    return SlaEvent(
        event_id=sla_event_id(clock_id, "1", kind, stage),
        type=kind,
        occurred_at=at,
        source=SOURCE,
        data=SlaData(
            ticket=TicketRef(
                source=CONTRACT_SOURCE,
                id=bounded_id(f"{name}/{group}"),
                priority=Priority.P1,
                title=f"{contract.customer}: {group} availability {period.label}"[:500],
                customer=contract.customer[:200],
                service=group,
            ),
            clock=ClockState(
                clock_id=clock_id,
                metric=Metric.AVAILABILITY,
                policy=name,
                escalation=contract.escalation,
                target_seconds=max(0, int(figures.budget_seconds)),
                business_seconds_used=max(0, int(figures.spent_seconds)),
                started_at=period.start,
                deadline=None,
            ),
            stage=stage,
            threshold_percent=percent,
        ),
    )


def _insert_ignoring_duplicates(conn: AsyncConnection) -> Insert:
    table = store.budget_stages
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


class BudgetWatch:
    def __init__(
        self,
        db: AsyncEngine,
        book: PolicyBook,
        sla_topic: str,
        metrics: EngineMetrics,
        compliance: ComplianceMetrics,
        owned: Callable[[], set[int]],
        now: Callable[[], datetime],
        on_committed: Callable[[Changes], None],
        lock: asyncio.Lock,
        refresh_s: float = 15.0,
    ) -> None:
        self._db = db
        self._book = book
        self._topic = sla_topic
        self._metrics = metrics
        self._compliance = compliance
        self._owned = owned
        self._now = now
        self._on_committed = on_committed
        self._lock = lock
        self._refresh_s = refresh_s
        self._bell = asyncio.Event()
        self._watched = [(n, c) for n, c in book.contracts.items() if c.availability]

    def wake(self, services: set[str] | None = None) -> None:
        self._bell.set()

    async def run(self) -> None:
        backoff = Backoff("budgets", self._metrics.heartbeats)
        while True:
            self._bell.clear()
            try:
                due = await self.evaluate(self._now())
            except Exception as exc:
                await backoff.after(exc)  # waits out a database away; raises anything else
                continue
            backoff.ok()
            wait = self._refresh_s
            if due is not None:
                wait = min(wait, max(0.05, (due - self._now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bell.wait(), wait)

    async def evaluate(self, now: datetime) -> datetime | None:
        """Figures of every group as of ``now``; emit the stages newly crossed. Returns when
        the next stage may be crossed at the earliest (None: not while nothing is down)."""
        due: datetime | None = None
        for name, contract in self._watched:
            try:
                upcoming = await self._evaluate(name, contract, now)
            except Exception as exc:
                if is_fatal(exc) or is_transient(exc):
                    raise
                # one contract's fault never silences the others: it is tried again soon
                log.exception("contract %s: availability not evaluated", name)
                self._metrics.heartbeats.fault("budgets")
                continue
            if upcoming is not None and (due is None or upcoming < due):
                due = upcoming
        return due

    async def _evaluate(self, name: str, contract: Contract, now: datetime) -> datetime | None:
        period = period_containing(now, KIND[contract.review], contract.zone)
        services = contract.services()
        async with self._db.connect() as conn:
            alerts, counted = await stored_alerts_counted(conn, services, period.start, period.end)
            emitted = await self._emitted(conn, name, period)
        if any(end is None for intervals in alerts.values() for _, end in intervals):
            async with self._db.begin() as conn:
                await note_counted(conn, services, now)
        counted_groups = availability_of(contract, period, now, counted)
        due: datetime | None = None
        for group, figures in availability_of(contract, period, now, alerts).items():
            self._compliance.availability.update(name, group, figures, counted_groups[group])
            crossed = [s for s in figures.stages_crossed() if s not in emitted.get(group, ())]
            if crossed:
                await self._emit(name, contract, group, period, figures, crossed, now)
            upcoming = figures.next_crossing(now)
            if upcoming is not None and (due is None or upcoming < due):
                due = upcoming
        return due

    async def _emitted(
        self, conn: AsyncConnection, name: str, period: Period
    ) -> dict[str, set[str]]:
        table = store.budget_stages
        rows = await conn.execute(
            select(table.c.grp, table.c.stage).where(
                table.c.contract == name, table.c.period == period.label
            )
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row.grp, set()).add(row.stage)
        return found

    async def _emit(
        self,
        name: str,
        contract: Contract,
        group: str,
        period: Period,
        figures: GroupFigures,
        crossed: list[str],
        now: datetime,
    ) -> None:
        """Remember every stage crossed; emit the highest (a warning never follows a breach)."""
        owned = self._owned()
        if not owned:
            return  # not assigned: an engine that owns partitions emits it
        highest = max(crossed, key=STAGES.index)
        event = budget_event(name, contract, group, period, figures, highest, now)
        changes = Changes(emitted=[event], partition_of={event.event_id: min(owned)})
        table = store.budget_stages
        async with self._lock, self._db.begin() as conn:
            inserted = await conn.execute(
                _insert_ignoring_duplicates(conn).returning(table.c.stage),
                [
                    {
                        "contract": name,
                        "grp": group,
                        "period": period.label,
                        "stage": stage,
                        "emitted_at": now,
                    }
                    for stage in crossed
                ],
            )
            ours = set(inserted.scalars())
            # read in the same transaction, after the insert: another engine's stages of
            # this period are committed by now (its rows held ours back until then)
            known = await self._emitted(conn, name, period)
            if highest not in ours or max(known.get(group, ()), key=STAGES.index) != highest:
                return  # another engine emitted this stage, or a later one, first
            await outbox.stage(conn, changes.emitted, changes.partition_of, self._topic, now)
        log.info(
            "contract %s, %s availability %s: %s (%.0f of %.0f budget seconds spent)",
            name,
            group,
            period.label,
            highest,
            figures.spent_seconds,
            figures.budget_seconds,
        )
        self._on_committed(changes)
