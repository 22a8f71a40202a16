"""The engine's tables (it owns every ``engine_*`` table) and the row ↔ clock mapping.

- ``engine_tickets``: the last known snapshot of each ticket (for the SLA
  events the notifier renders), with its policy.
- ``engine_clocks``: one row per clock; ``next_due_at`` is the indexed instant
  of its next stage, from which the timer index is rebuilt.
- ``engine_processed_events``: event ids already applied (redelivery dedup).
- ``engine_outbox``: SLA events committed with the state change that produced
  them, published to Kafka afterwards.
- ``engine_dead_letters``: input records that could not be read, with the reason.

Every clock update is guarded by ``version`` (compare-and-set), so a writer
holding a stale copy changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.db import UtcDateTime
from slawatch_common.events import Metric
from slawatch_engine.clock import Clock, Entry, View

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_engine"

metadata = MetaData()

tickets = Table(
    "engine_tickets",
    metadata,
    Column("key", String(410), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("ticket_id", String(200), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("priority", String(2), nullable=False),
    Column("policy", String(100), nullable=True),
    Column("snapshot", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

clocks = Table(
    "engine_clocks",
    metadata,
    Column("id", String(430), primary_key=True),
    Column("ticket_key", String(410), nullable=False, index=True),
    Column("partition", Integer, nullable=False),
    Column("metric", String(20), nullable=False),
    Column("policy", String(100), nullable=False),
    Column("escalation", String(100), nullable=True),
    Column("calendar", String(100), nullable=False),
    Column("target_seconds", Integer, nullable=False),
    Column("stages", JSON, nullable=False),
    Column("timeline", JSON, nullable=False),
    Column("fired", JSON, nullable=False),
    Column("cycle", Integer, nullable=False),
    # derived from the timeline by replay, kept for queries and the due index:
    Column("state", String(20), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("used_seconds", Float, nullable=False),
    Column("running_since", UtcDateTime, nullable=True),
    Column("breached", Boolean, nullable=False),
    Column("stopped_at", UtcDateTime, nullable=True),
    Column("deadline", UtcDateTime, nullable=True),
    Column("next_due_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_engine_clocks_partition_due", "partition", "next_due_at"),
)

processed_events = Table(
    "engine_processed_events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("processed_at", UtcDateTime, nullable=False),
)

outbox = Table(
    "engine_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(600), nullable=False, unique=True),
    Column("partition", Integer, nullable=False),
    Column("topic", String(200), nullable=False),
    Column("key", String(410), nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime, nullable=True, index=True),
)

dead_letters = Table(
    "engine_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", Integer, nullable=False),
    Column("key", Text, nullable=True),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)


# --- clocks ------------------------------------------------------------------


def clock_from_row(row: RowMapping) -> Clock:
    return Clock(
        id=row["id"],
        ticket_key=row["ticket_key"],
        partition=row["partition"],
        metric=Metric(row["metric"]),
        policy=row["policy"],
        escalation=row["escalation"],
        calendar=row["calendar"],
        stages=tuple(row["stages"]),
        timeline=tuple(Entry.from_json(entry) for entry in row["timeline"]),
        fired=frozenset(row["fired"]),
        cycle=row["cycle"],
        version=row["version"],
    )


@dataclass(frozen=True, slots=True)
class Derived:
    """What the replay says of a clock, stored beside it for queries and the due index."""

    view: View
    breached: bool
    next_due_at: datetime | None


def _clock_values(clock: Clock, derived: Derived, now: datetime) -> dict[str, Any]:
    view = derived.view
    return {
        "ticket_key": clock.ticket_key,
        "partition": clock.partition,
        "metric": clock.metric.value,
        "policy": clock.policy,
        "escalation": clock.escalation,
        "calendar": clock.calendar,
        "target_seconds": view.target,
        "stages": list(clock.stages),
        "timeline": [entry.to_json() for entry in clock.timeline],
        "fired": sorted(clock.fired),
        "cycle": clock.cycle,
        "state": view.state.value,
        "started_at": view.started_at,
        "used_seconds": view.used,
        "running_since": view.running_since,
        "breached": derived.breached,
        "stopped_at": view.stopped_at,
        "deadline": view.deadline,
        "next_due_at": derived.next_due_at,
        "updated_at": now,
    }


async def clocks_of_ticket(conn: AsyncConnection, ticket_key: str) -> list[Clock]:
    rows = await conn.execute(select(clocks).where(clocks.c.ticket_key == ticket_key))
    return [clock_from_row(row) for row in rows.mappings()]


async def clocks_by_id(conn: AsyncConnection, ids: Sequence[str]) -> list[Clock]:
    rows = await conn.execute(select(clocks).where(clocks.c.id.in_(ids)))
    return [clock_from_row(row) for row in rows.mappings()]


async def insert_clock(
    conn: AsyncConnection, clock: Clock, derived: Derived, now: datetime
) -> None:
    values = _clock_values(clock, derived, now)
    await conn.execute(insert(clocks).values(id=clock.id, version=clock.version, **values))


class StaleClockError(RuntimeError):
    """Another writer changed the clock since it was read; the update was not applied."""


async def update_clock(
    conn: AsyncConnection, clock: Clock, derived: Derived, now: datetime
) -> Clock:
    """Write ``clock`` if its row still has ``clock.version``; returns it with the new version."""
    values = _clock_values(clock, derived, now)
    result = await conn.execute(
        update(clocks)
        .where(and_(clocks.c.id == clock.id, clocks.c.version == clock.version))
        .values(version=clock.version + 1, **values)
    )
    if result.rowcount != 1:
        raise StaleClockError(clock.id)
    return replace(clock, version=clock.version + 1)


async def due_clocks(
    conn: AsyncConnection, partitions: Iterable[int]
) -> list[tuple[str, int, datetime]]:
    """(clock id, partition, next due instant) of every clock with a stage ahead."""
    rows = await conn.execute(
        select(clocks.c.id, clocks.c.partition, clocks.c.next_due_at).where(
            clocks.c.partition.in_(list(partitions)), clocks.c.next_due_at.is_not(None)
        )
    )
    return [(row.id, row.partition, row.next_due_at) for row in rows]


# --- tickets ---------------------------------------------------------------


async def ticket_row(conn: AsyncConnection, key: str) -> RowMapping | None:
    row = await conn.execute(select(tickets).where(tickets.c.key == key))
    return row.mappings().first()


# --- processed events -------------------------------------------------------


async def unseen_event_ids(conn: AsyncConnection, event_ids: Sequence[str]) -> set[str]:
    """The ids in ``event_ids`` that have not been applied before."""
    if not event_ids:
        return set()
    rows = await conn.execute(
        select(processed_events.c.event_id).where(processed_events.c.event_id.in_(event_ids))
    )
    return set(event_ids) - {row.event_id for row in rows}


async def mark_processed(conn: AsyncConnection, event_ids: Iterable[str], now: datetime) -> None:
    values = [{"event_id": event_id, "processed_at": now} for event_id in event_ids]
    if values:
        await conn.execute(insert(processed_events), values)


async def prune(conn: AsyncConnection, before: datetime) -> tuple[int, int]:
    """Forget processed event ids and published outbox rows older than ``before``.

    Safe once ``before`` lies further back than Kafka keeps the input: no
    redelivery can then bring those ids back. Returns (ids, rows) deleted.
    """
    ids = await conn.execute(
        delete(processed_events).where(processed_events.c.processed_at < before)
    )
    rows = await conn.execute(
        delete(outbox).where(outbox.c.published_at.is_not(None), outbox.c.published_at < before)
    )
    return ids.rowcount, rows.rowcount
