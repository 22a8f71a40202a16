"""The engine's service layer: applies ticket events and fires due stages in the store.

Both entry points run inside the caller's transaction and stage the SLA events
they produce in the outbox of that same transaction, so a state change and
its events commit together or not at all. They return what the timer index
needs to learn (each touched clock's next due instant).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.events import (
    ClockState,
    Metric,
    Priority,
    SlaData,
    SlaEvent,
    SlaEventType,
    Ticket,
    TicketEvent,
    TicketRef,
)
from slawatch_engine import clock as clocks
from slawatch_engine import outbox, store
from slawatch_engine.clock import Clock, Stage
from slawatch_engine.policy import DEFAULT_PRIORITY, Policy, PolicyBook
from slawatch_engine.reactions import react

SOURCE = "slawatch-engine"
_EVENT_IDS = uuid.UUID("0b7f3a52-5b8e-4d2b-9d6e-3f3c1f0c9a11")


def sla_event_id(*parts: str) -> str:
    """A deterministic event id, so a replayed input yields the very same SLA event."""
    return str(uuid.uuid5(_EVENT_IDS, "|".join(parts)))


@dataclass
class Changes:
    """What a transaction did: clocks whose next due instant changed, events staged."""

    due: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    emitted: list[SlaEvent] = field(default_factory=list)
    rejected: str | None = None

    def merge(self, other: Changes) -> None:
        self.due.update(other.due)
        self.emitted.extend(other.emitted)


class Ledger:
    def __init__(self, book: PolicyBook, sla_topic: str) -> None:
        self._book = book
        self._topic = sla_topic

    # --- ticket events -------------------------------------------------------

    async def apply(
        self, conn: AsyncConnection, event: TicketEvent, partition: int, now: datetime
    ) -> Changes:
        """Apply one ticket event (already deduplicated) read from ``partition``."""
        row = await store.ticket_row(conn, event.key)
        if row is None:
            if event.type != "ticket.created":
                return Changes(rejected="unknown_ticket")
            return await self._open(conn, event, partition, now)
        snapshot = _merged(row["snapshot"], event.data)
        old_priority = Priority(row["priority"])
        priority = event.data.priority or old_priority
        policy = self._book.named(row["policy"]) if row["policy"] else None
        changes = Changes()
        for before in await store.clocks_of_ticket(conn, event.key):
            calendar = self._book.calendar(before.calendar)
            reaction = react(
                before, event, policy, priority if priority != old_priority else None, calendar
            )
            after = reaction.clock
            if after != before:
                after = await self._save(conn, after, now, changes)
            for kind in reaction.emitted:
                changes.emitted.append(
                    self._event(kind, after, snapshot, priority, event.occurred_at, event.event_id)
                )
        await conn.execute(
            update(store.tickets)
            .where(store.tickets.c.key == event.key)
            .values(snapshot=snapshot, priority=priority.value, updated_at=now)
        )
        await self._stage(conn, changes, now)
        return changes

    async def _open(
        self, conn: AsyncConnection, event: TicketEvent, partition: int, now: datetime
    ) -> Changes:
        priority = event.data.priority or DEFAULT_PRIORITY
        policy = self._book.select(event.data, priority)
        snapshot = _merged({}, event.data)
        await conn.execute(
            insert(store.tickets).values(
                key=event.key,
                source=event.source,
                ticket_id=event.data.id,
                partition=partition,
                priority=priority.value,
                policy=policy.name if policy else None,
                snapshot=snapshot,
                updated_at=now,
            )
        )
        if policy is None:
            return Changes(rejected="no_policy")
        changes = Changes()
        for clock in self._started(event, partition, policy, priority):
            calendar = self._book.calendar(clock.calendar)
            due = clocks.next_due(clock, calendar)
            await store.insert_clock(conn, clock, clocks.deadline(clock, calendar), due, now)
            changes.due[clock.id] = (clock.partition, due)
            if clock.state is clocks.State.PAUSED:
                changes.emitted.append(
                    self._event(
                        "sla.paused", clock, snapshot, priority, event.occurred_at, event.event_id
                    )
                )
        await self._stage(conn, changes, now)
        return changes

    def _started(
        self, event: TicketEvent, partition: int, policy: Policy, priority: Priority
    ) -> Iterable[Clock]:
        paused = event.data.status in policy.pause_statuses
        for metric in Metric:
            target = policy.target(priority, metric)
            if target is None:
                continue
            yield clocks.start(
                clock_id=f"{event.key}:{metric.value}",
                ticket_key=event.key,
                partition=partition,
                metric=metric,
                policy=policy.name,
                escalation=policy.escalation,
                calendar=policy.calendar,
                target_seconds=target,
                thresholds=policy.thresholds,
                at=event.occurred_at,
                paused=paused,
            )

    # --- the timer -----------------------------------------------------------

    async def fire(self, conn: AsyncConnection, clock_ids: list[str], now: datetime) -> Changes:
        """Fire every stage of these clocks that has crossed by ``now``.

        Idempotent: a clock whose stage already fired, or that stopped or paused
        meanwhile, is left as it is (its current next due instant is reported).
        """
        changes = Changes()
        loaded = await store.clocks_by_id(conn, clock_ids)
        tickets = await _tickets(conn, {clock.ticket_key for clock in loaded})
        for before in loaded:
            calendar = self._book.calendar(before.calendar)
            after, stage = clocks.fire(before, now, calendar)
            if stage is None:
                changes.due[before.id] = (before.partition, clocks.next_due(before, calendar))
                continue
            after = await self._save(conn, after, now, changes)
            snapshot, priority = tickets[before.ticket_key]
            changes.emitted.append(self._stage_event(after, stage, snapshot, priority))
        await self._stage(conn, changes, now)
        return changes

    # --- shared ----------------------------------------------------------------

    async def _save(
        self, conn: AsyncConnection, clock: Clock, now: datetime, into: Changes
    ) -> Clock:
        calendar = self._book.calendar(clock.calendar)
        due = clocks.next_due(clock, calendar)
        saved = await store.update_clock(conn, clock, clocks.deadline(clock, calendar), due, now)
        into.due[clock.id] = (clock.partition, due)
        return saved

    async def _stage(self, conn: AsyncConnection, changes: Changes, now: datetime) -> None:
        await outbox.stage(conn, changes.emitted, self._topic, now)

    def _stage_event(
        self, clock: Clock, stage: Stage, snapshot: Mapping[str, Any], priority: Priority
    ) -> SlaEvent:
        kind: SlaEventType = "sla.breach" if stage.is_breach else "sla.warning"
        event = self._event(kind, clock, snapshot, priority, stage.crossed_at, stage.name)
        return event.model_copy(
            update={
                "data": event.data.model_copy(
                    update={"stage": stage.name, "threshold_percent": stage.percent}
                )
            }
        )

    def _event(
        self,
        kind: SlaEventType,
        clock: Clock,
        snapshot: Mapping[str, Any],
        priority: Priority,
        at: datetime,
        cause: str,
    ) -> SlaEvent:
        calendar = self._book.calendar(clock.calendar)
        source, _, _ = clock.ticket_key.partition(":")
        return SlaEvent(
            event_id=sla_event_id(clock.id, kind, cause),
            type=kind,
            occurred_at=at,
            source=SOURCE,
            data=SlaData(
                ticket=TicketRef(source=source, priority=priority, **_ref_fields(snapshot)),
                clock=ClockState(
                    clock_id=clock.id,
                    metric=clock.metric,
                    policy=clock.policy,
                    escalation=clock.escalation,
                    target_seconds=clock.target_seconds,
                    business_seconds_used=int(clocks.used_at(clock, at, calendar)),
                    started_at=clock.started_at,
                    deadline=clocks.deadline(clock, calendar),
                ),
            ),
        )


_REF_FIELDS = ("id", "title", "customer", "service", "assignee", "group")


def _ref_fields(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {name: snapshot[name] for name in _REF_FIELDS if snapshot.get(name) is not None}


def _merged(snapshot: Mapping[str, Any], ticket: Ticket) -> dict[str, Any]:
    """The stored snapshot with every field the event carries replacing the old one."""
    return {**snapshot, **ticket.model_dump(mode="json", exclude_none=True)}


async def _tickets(
    conn: AsyncConnection, keys: set[str]
) -> dict[str, tuple[Mapping[str, Any], Priority]]:
    found: dict[str, tuple[Mapping[str, Any], Priority]] = {}
    for key in keys:
        row = await store.ticket_row(conn, key)
        if row is not None:
            found[key] = (row["snapshot"], Priority(row["priority"]))
    return found
