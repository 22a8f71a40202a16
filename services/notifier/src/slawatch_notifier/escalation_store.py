"""Escalations and their scheduled steps in the database: statements and units of work.

``notifier_escalations`` (key ``clock_id`` + ``cycle``) holds each escalation
with its chain snapshot, the event whose ticket facts later steps are rendered
from, its status, generation and ack; ``version`` is the fence every update is
guarded on. ``notifier_scheduled_steps`` holds the next firing of each waiting
or repeating breach step (key: ``escalation.ScheduledStep.id``), ``pending``
until the scheduler fires or an ack/stop cancels it.

The three units of work each run inside the caller's transaction and decide
through the pure functions of ``escalation.py``:

- ``record_events`` (intake): apply a batch's SLA events in order, store the
  notifications their immediate steps plan and the steps they schedule, cancel
  what a stop ends (and the warnings quiet hours still hold back once the
  clock breaches: the breach is news enough);
- ``fire_step`` (scheduler): fire one due step, or cancel it if its
  escalation no longer chases that breach;
- ``acknowledge`` / ``acknowledge_ticket`` (ack API): acknowledge and cancel
  the pending scheduled steps and the not-yet-sent notifications of fired ones.

Every unit reads the escalation row with ``FOR UPDATE`` (PostgreSQL; SQLite
serialises writers) and writes it with ``UPDATE … WHERE version = <read>``. If
another writer got in between, ``StaleEscalationError`` rolls the transaction
back and ``in_transaction`` runs the unit again on fresh rows, so an ack and a
concurrent step never both win: whichever commits second sees the first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.events import SlaEvent
from slawatch_notifier import escalation, store
from slawatch_notifier.config import BREACH
from slawatch_notifier.escalation import (
    ChainSnapshot,
    Escalation,
    Reason,
    ScheduledStep,
    Status,
    key_of,
)
from slawatch_notifier.planner import Planner
from slawatch_notifier.store import escalations, scheduled_steps
from slawatch_notifier.targets import Skip

Key = tuple[str, int]
T = TypeVar("T")
ATTEMPTS = 5


class StaleEscalationError(Exception):
    """The escalation changed since it was read; run the unit of work again."""


class StepStatus(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction, again (up to ``ATTEMPTS`` times) if it met a stale row."""
    for attempt in range(ATTEMPTS):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except StaleEscalationError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# --- escalations -----------------------------------------------------------------


async def load(conn: AsyncConnection, keys: Iterable[Key]) -> dict[Key, Escalation]:
    """The escalations of ``keys`` that exist, locked for update (rows in key order)."""
    wanted = sorted(set(keys))
    found: dict[Key, Escalation] = {}
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        query = (
            sa.select(escalations)
            .where(sa.tuple_(escalations.c.clock_id, escalations.c.cycle).in_(chunk))
            .order_by(escalations.c.clock_id, escalations.c.cycle)
            .with_for_update()
        )
        for row in (await conn.execute(query)).mappings():
            state = _state(row)
            found[state.key] = state
    return found


async def load_ticket(conn: AsyncConnection, source: str, ticket_id: str) -> list[Escalation]:
    """Every escalation of one ticket, locked for update, oldest clock cycle first."""
    query = (
        sa.select(escalations)
        .where(escalations.c.ticket_source == source, escalations.c.ticket_id == ticket_id)
        .order_by(escalations.c.clock_id, escalations.c.cycle)
        .with_for_update()
    )
    return [_state(row) for row in (await conn.execute(query)).mappings()]


async def insert(conn: AsyncConnection, states: Sequence[Escalation]) -> None:
    """Store new escalations; ``StaleEscalationError`` if another writer created one first."""
    if not states:
        return
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert_(escalations).on_conflict_do_nothing().returning(escalations.c.clock_id)
    created = (await conn.execute(statement, [_row(state) for state in states])).all()
    if len(created) != len(states):
        raise StaleEscalationError("an escalation of this batch was created concurrently")


async def save(conn: AsyncConnection, before: Escalation, after: Escalation) -> Escalation:
    """Replace ``before`` by ``after`` if nobody changed it since it was read (the fence)."""
    values = _row(after)
    values["version"] = before.version + 1
    statement = (
        sa.update(escalations)
        .where(
            escalations.c.clock_id == before.clock_id,
            escalations.c.cycle == before.cycle,
            escalations.c.version == before.version,
        )
        .values(values)
    )
    if (await conn.execute(statement)).rowcount != 1:
        raise StaleEscalationError(f"{before.key} changed since version {before.version}")
    return replace(after, version=before.version + 1)


async def save_many(
    conn: AsyncConnection, changes: Sequence[tuple[Escalation, Escalation]]
) -> None:
    """``save`` for many escalations with one statement; the same fence on each."""
    if not changes:
        return
    rows = [
        {
            **_row(after),
            "version": before.version + 1,
            "b_clock_id": before.clock_id,
            "b_cycle": before.cycle,
            "b_version": before.version,
        }
        for before, after in changes
    ]
    statement = sa.update(escalations).where(
        escalations.c.clock_id == sa.bindparam("b_clock_id"),
        escalations.c.cycle == sa.bindparam("b_cycle"),
        escalations.c.version == sa.bindparam("b_version"),
    )
    result = await conn.execute(statement, rows)
    # The rows are locked since ``load`` read them (PostgreSQL, whose driver cannot
    # count an executemany); SQLite counts, and serialises writers anyway.
    if conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(rows):
        keys = ", ".join(str(before.key) for before, _ in changes)
        raise StaleEscalationError(f"one of {keys} changed since it was read")


def _row(state: Escalation) -> dict[str, Any]:
    ticket = state.event.data.ticket
    return {
        "clock_id": state.clock_id,
        "cycle": state.cycle,
        "ticket_source": ticket.source,
        "ticket_id": ticket.id,
        "chain": state.chain.as_json(),
        "event": state.event.model_dump(mode="json"),
        "status": str(state.status),
        "reason": str(state.reason) if state.reason else None,
        "generation": state.generation,
        "breach_event_id": state.breach_event_id,
        "breach_at": state.breach_at,
        "withdrawn": state.withdrawn,
        "acknowledged_by": state.acknowledged_by,
        "acknowledged_at": state.acknowledged_at,
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "version": state.version,
    }


def _state(row: sa.RowMapping) -> Escalation:
    return Escalation(
        clock_id=row["clock_id"],
        cycle=row["cycle"],
        chain=ChainSnapshot.model_validate(row["chain"]),
        event=SlaEvent.model_validate(row["event"]),
        status=Status(row["status"]),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        reason=Reason(row["reason"]) if row["reason"] else None,
        generation=row["generation"],
        breach_event_id=row["breach_event_id"],
        breach_at=row["breach_at"],
        withdrawn=row["withdrawn"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        version=row["version"],
    )


# --- scheduled steps ------------------------------------------------------------


async def insert_steps(
    conn: AsyncConnection, steps: Sequence[ScheduledStep], now: datetime
) -> set[str]:
    """Store scheduled firings as pending; an id that exists is left as it is. The new ids."""
    if not steps:
        return set()
    rows = list({step.id: _step_row(step, now) for step in steps}.values())
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert_(scheduled_steps)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(scheduled_steps.c.id)
    )
    return set((await conn.execute(statement, rows)).scalars())


def _step_row(step: ScheduledStep, now: datetime) -> dict[str, Any]:
    return {
        "id": step.id,
        "clock_id": step.clock_id,
        "cycle": step.cycle,
        "generation": step.generation,
        "step": step.step,
        "repeat": step.repeat,
        "due_at": step.due_at,
        "status": StepStatus.PENDING,
        "reason": None,
        "created_at": now,
        "updated_at": now,
    }


async def due_steps(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Ids of pending steps due by ``now``, earliest first."""
    query = (
        sa.select(scheduled_steps.c.id)
        .where(scheduled_steps.c.status == StepStatus.PENDING, scheduled_steps.c.due_at <= now)
        .order_by(scheduled_steps.c.due_at)
        .limit(limit)
    )
    return list((await conn.execute(query)).scalars())


async def postpone_step(conn: AsyncConnection, step_id: str, due_at: datetime) -> None:
    """Move a pending step to ``due_at`` (a step whose firing failed is tried again then)."""
    await conn.execute(
        sa.update(scheduled_steps)
        .where(scheduled_steps.c.id == step_id, scheduled_steps.c.status == StepStatus.PENDING)
        .values(due_at=due_at)
    )


async def next_step_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending step falls due, if there is one."""
    earliest = sa.select(sa.func.min(scheduled_steps.c.due_at)).where(
        scheduled_steps.c.status == StepStatus.PENDING
    )
    moment: datetime | None = (await conn.execute(earliest)).scalar()
    return moment


async def pending_step(conn: AsyncConnection, step_id: str) -> ScheduledStep | None:
    query = sa.select(scheduled_steps).where(
        scheduled_steps.c.id == step_id, scheduled_steps.c.status == StepStatus.PENDING
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return ScheduledStep(
        row["clock_id"], row["cycle"], row["generation"], row["step"], row["repeat"], row["due_at"]
    )


async def finish_step(
    conn: AsyncConnection, step_id: str, status: StepStatus, reason: Reason | None, now: datetime
) -> bool:
    """Move a pending step to ``status``; False if it was not pending any more (guarded)."""
    statement = (
        sa.update(scheduled_steps)
        .where(scheduled_steps.c.id == step_id, scheduled_steps.c.status == StepStatus.PENDING)
        .values(status=status, reason=str(reason) if reason else None, updated_at=now)
    )
    return bool((await conn.execute(statement)).rowcount == 1)


async def cancel_steps(conn: AsyncConnection, key: Key, reason: Reason, now: datetime) -> list[str]:
    """Cancel every pending step of one escalation; their ids."""
    clock_id, cycle = key
    statement = (
        sa.update(scheduled_steps)
        .where(
            scheduled_steps.c.clock_id == clock_id,
            scheduled_steps.c.cycle == cycle,
            scheduled_steps.c.status == StepStatus.PENDING,
        )
        .values(status=StepStatus.CANCELLED, reason=str(reason), updated_at=now)
        .returning(scheduled_steps.c.id)
    )
    return sorted((await conn.execute(statement)).scalars())


# --- units of work ----------------------------------------------------------------


@dataclass
class Recorded:
    """What ``record_events`` did: drafts planned, ids new to the table, what was cancelled."""

    drafts: list[store.Draft] = field(default_factory=list)
    inserted: set[str] = field(default_factory=set)
    scheduled: set[str] = field(default_factory=set)
    skipped: list[tuple[SlaEvent, Skip]] = field(default_factory=list)
    cancelled_steps: list[str] = field(default_factory=list)
    cancelled_notifications: list[store.NotificationRef] = field(default_factory=list)
    superseded_notifications: list[store.NotificationRef] = field(default_factory=list)
    """Warnings deferred by quiet hours that a breach made stale."""


async def record_events(
    conn: AsyncConnection, events: Sequence[SlaEvent], planner: Planner, now: datetime
) -> Recorded:
    """Apply ``events`` (in order) to their escalations and store the consequences.

    Idempotent: a batch applied again plans the same ids (inserted once) and
    schedules the same steps (inserted once). Raises ``UnroutableEventError``
    for a warning/breach without a proper stage (callers filter those first)
    and ``StaleEscalationError`` when a concurrent writer got in between.
    """
    before = await load(conn, (key_of(event) for event in events))
    states = dict(before)
    changed: set[Key] = set()
    done = Recorded()
    drafts: list[store.Draft] = []
    steps: list[ScheduledStep] = []
    breached: set[Key] = set()
    for event in events:
        key = key_of(event)
        transition = escalation.on_event(states.get(key), event, planner.config.escalations, now)
        done.skipped += [(event, skip) for skip in transition.skipped]
        if transition.state is None:
            continue
        states[key] = transition.state
        if transition.changed:
            changed.add(key)
        planned = planner.drafts(transition.firings, transition.state.chain, event, now)
        drafts += planned.drafts
        done.skipped += [(event, skip) for skip in planned.skipped]
        steps += transition.schedule
        if transition.stop is not None:
            await _flush(conn, done, drafts, steps, now)
            await _stop(conn, done, key, transition.stop, now)
        elif transition.changed and event.type == "sla.breach":
            breached.add(key)  # its deferred warnings are superseded (a breach is never deferred)
    await _flush(conn, done, drafts, steps, now)
    done.superseded_notifications += await store.cancel_deferred(
        conn, breached, now, "superseded by the breach"
    )
    await insert(conn, [states[key] for key in sorted(changed) if key not in before])
    await save_many(conn, [(before[key], states[key]) for key in sorted(changed & before.keys())])
    return done


async def _flush(
    conn: AsyncConnection,
    done: Recorded,
    drafts: list[store.Draft],
    steps: list[ScheduledStep],
    now: datetime,
) -> None:
    """Store what the batch planned so far (before a stop cancels what it must)."""
    done.drafts += drafts
    done.inserted |= await store.insert_new(conn, drafts, now)
    done.scheduled |= await insert_steps(conn, steps, now)
    drafts.clear()
    steps.clear()


async def _stop(
    conn: AsyncConnection, done: Recorded, key: Key, why: Reason, now: datetime
) -> None:
    clock_id, cycle = key
    done.cancelled_steps += await cancel_steps(conn, key, why, now)
    done.cancelled_notifications += await store.cancel_pending(
        conn, clock_id, cycle, now, str(why), stage=BREACH
    )


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """A scheduled step fired (its drafts and the ids new to the table) or cancelled."""

    step_id: str
    cancelled: Reason | None = None
    drafts: tuple[store.Draft, ...] = ()
    inserted: frozenset[str] = frozenset()
    skipped: tuple[Skip, ...] = ()
    next: ScheduledStep | None = None


async def fire_step(
    conn: AsyncConnection, step_id: str, planner: Planner, now: datetime
) -> StepOutcome | None:
    """Fire the pending step ``step_id`` or cancel it; None if it is not pending (any more)."""
    row = await pending_step(conn, step_id)
    if row is None:
        return None
    key = (row.clock_id, row.cycle)
    state = (await load(conn, [key])).get(key)
    decision = escalation.fire_scheduled(state, row, now) if state else Reason.SUPERSEDED
    if isinstance(decision, Reason) or state is None:
        why = decision if isinstance(decision, Reason) else Reason.SUPERSEDED
        if not await finish_step(conn, step_id, StepStatus.CANCELLED, why, now):
            return None
        return StepOutcome(step_id, cancelled=why)
    await save(conn, state, state)  # the fence: an ack or stop since the read makes this fail
    if not await finish_step(conn, step_id, StepStatus.FIRED, None, now):
        raise StaleEscalationError(f"{step_id} was fired concurrently")
    planned = planner.drafts([decision.firing], state.chain, state.event, now)
    inserted = await store.insert_new(conn, planned.drafts, now)
    if decision.next is not None:
        await insert_steps(conn, [decision.next], now)
    return StepOutcome(
        step_id, None, planned.drafts, frozenset(inserted), planned.skipped, decision.next
    )


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """One escalation after an ack: whether this ack changed it, and what it cancelled."""

    state: Escalation
    changed: bool
    cancelled_steps: tuple[str, ...] = ()
    cancelled_notifications: tuple[store.NotificationRef, ...] = ()


async def acknowledge(conn: AsyncConnection, key: Key, by: str, now: datetime) -> AckOutcome | None:
    """Acknowledge one escalation; None if it does not exist. Idempotent."""
    state = (await load(conn, [key])).get(key)
    return None if state is None else await _acknowledge(conn, state, by, now)


async def acknowledge_ticket(
    conn: AsyncConnection, source: str, ticket_id: str, by: str, now: datetime
) -> list[AckOutcome]:
    """Acknowledge every active escalation of a ticket; empty if it has none at all."""
    return [
        await _acknowledge(conn, state, by, now)
        for state in await load_ticket(conn, source, ticket_id)
    ]


async def acknowledge_digest(
    conn: AsyncConnection, digest_id: str, by: str, now: datetime
) -> list[AckOutcome]:
    """Acknowledge the escalation of every notification folded into a digest (its link);
    empty if nothing was folded into it."""
    table = store.notifications
    folded = (
        sa.select(table.c.clock_id, table.c.cycle)
        .where(table.c.digest_id == digest_id)
        .distinct()
        .order_by(table.c.clock_id, table.c.cycle)
    )
    keys = [(row.clock_id, row.cycle) for row in await conn.execute(folded)]
    states = await load(conn, keys)
    return [await _acknowledge(conn, states[key], by, now) for key in keys if key in states]


async def _acknowledge(
    conn: AsyncConnection, state: Escalation, by: str, now: datetime
) -> AckOutcome:
    acked = escalation.acknowledge(state, by, now)
    if acked is None:
        return AckOutcome(state, False)
    saved = await save(conn, state, acked)
    steps = await cancel_steps(conn, state.key, Reason.ACKNOWLEDGED, now)
    notifications = await store.cancel_pending(
        conn, state.clock_id, state.cycle, now, str(Reason.ACKNOWLEDGED), scheduled_only=True
    )
    return AckOutcome(saved, True, tuple(steps), tuple(notifications))
