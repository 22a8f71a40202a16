"""The engine's tables (it owns every ``engine_*`` table) and the row ↔ clock mapping.

- ``engine_tickets``: the last known snapshot of each ticket (for the SLA
  events the notifier renders), with its policy; what a report shows of it
  (service, type, title, assignee, group) also in columns of their own.
- ``engine_clocks``: one row per clock; ``next_due_at`` is the indexed instant
  of its next stage, from which the timer index is rebuilt.
- ``engine_processed_events``: event ids already applied (redelivery dedup).
- ``engine_outbox``: SLA events committed with the state change that produced
  them, published to Kafka afterwards.
- ``engine_dead_letters``: input records that could not be read or applied, with the
  reason (``slawatch_common.consumer``).
- ``engine_outages``: the firing interval of each alert of a monitored service
  (from ``slawatch.monitoring``), the input of availability; ``counted_until``:
  how far it was counted down while it fired (the outage counter never goes back).
- ``engine_budget_stages``: the error-budget stages (warnings, breach) already
  emitted per contract, availability group and period.
- ``engine_report_issues``: the compliance reports issued (``report.due`` staged in
  the outbox) per contract, period and issue (``scheduled``, or ``manual:<id>``).

Every clock update is guarded by ``version`` (compare-and-set), so a writer
holding a stale copy changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

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
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.consumer import dead_letter_table
from slawatch_common.db import UtcDateTime
from slawatch_common.events import Metric
from slawatch_engine.calendar import to_us
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
    Column("created_at", UtcDateTime, nullable=True),
    Column("rating_score", Float, nullable=True),
    Column("rating_scale", Float, nullable=True),
    Column("rated_at", UtcDateTime, nullable=True),
    Column("service", String(200), nullable=True),
    Column("category", String(200), nullable=True),
    Column("title", String(500), nullable=True),
    Column("assignee", String(500), nullable=True),
    Column("grp", String(200), nullable=True),
    Index("ix_engine_tickets_policy_created", "policy", "created_at"),
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
    Column("last_entry_at", UtcDateTime, nullable=True),
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

dead_letters = dead_letter_table("engine_dead_letters", metadata)

outages = Table(
    "engine_outages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service", String(200), nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=True),
    Column("counted_until", UtcDateTime, nullable=True),
    Column("name", String(500), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("service", "fingerprint", "starts_at", name="uq_engine_outages_alert"),
    Index("ix_engine_outages_service_starts", "service", "starts_at"),
    Index("ix_engine_outages_service_ends", "service", "ends_at"),
)

budget_stages = Table(
    "engine_budget_stages",
    metadata,
    Column("contract", String(200), primary_key=True),
    Column("grp", String(200), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("stage", String(40), primary_key=True),
    Column("emitted_at", UtcDateTime, nullable=False),
)

report_issues = Table(
    "engine_report_issues",
    metadata,
    Column("contract", String(200), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("issue", String(200), primary_key=True),
    Column("event_id", String(600), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
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
        "last_entry_at": clock.timeline[-1].at if clock.timeline else None,
    }


async def clocks_of_ticket(conn: AsyncConnection, ticket_key: str) -> list[Clock]:
    rows = await conn.execute(select(clocks).where(clocks.c.ticket_key == ticket_key))
    return [clock_from_row(row) for row in rows.mappings()]


class StaleClockError(RuntimeError):
    """Another writer changed the clock since it was read; the update was not applied."""


async def due_clocks(
    conn: AsyncConnection, partitions: Iterable[int], chunk: int = 20_000
) -> AsyncGenerator[list[tuple[str, int, int]], None]:
    """(clock id, partition, next due instant in µs since the epoch) of every clock with a
    stage ahead, streamed in chunks, so a million clocks never sit in memory as rows at once.

    On PostgreSQL a server-side cursor of the driver reads them, the instant
    computed by the database: a million clocks load in about a third of the
    time rows and datetimes take (the restart's lag guard waits for this load).
    """
    wanted = list(partitions)
    if conn.dialect.name == "postgresql":
        async for rows in _due_clocks_postgresql(conn, wanted, chunk):
            yield rows
        return
    result = await conn.stream(
        select(clocks.c.id, clocks.c.partition, clocks.c.next_due_at)
        .where(clocks.c.partition.in_(wanted), clocks.c.next_due_at.is_not(None))
        .execution_options(yield_per=chunk)
    )
    async for chunk_rows in result.partitions(chunk):
        yield [(row.id, row.partition, to_us(row.next_due_at)) for row in chunk_rows]


_DUE_CLOCKS = f"""
    SELECT id, partition, (extract(epoch FROM next_due_at) * 1000000)::bigint
    FROM {clocks.name}
    WHERE partition = ANY($1::int[]) AND next_due_at IS NOT NULL
"""


async def _due_clocks_postgresql(
    conn: AsyncConnection, partitions: list[int], chunk: int
) -> AsyncGenerator[list[tuple[str, int, int]], None]:
    raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
    async with raw.transaction(readonly=True):
        cursor = await raw.cursor(_DUE_CLOCKS, partitions)
        while rows := await cursor.fetch(chunk):
            yield cast(list[tuple[str, int, int]], rows)  # records unpack like tuples


# --- the working set of a batch ------------------------------------------------


@dataclass(slots=True)
class TicketRow:
    """What is stored of a ticket: its last snapshot, priority and policy."""

    key: str
    source: str
    ticket_id: str
    partition: int
    priority: str
    policy: str | None
    snapshot: dict[str, Any]
    created_at: datetime | None = None
    """When its ``ticket.created`` occurred: the report's population is by this instant."""
    rating_score: float | None = None
    rating_scale: float | None = None
    rated_at: datetime | None = None
    """The latest rating (by when it occurred): its score and its scale's maximum."""


class Workset:
    """The tickets and clocks one transaction reads, changes in memory and writes once.

    Loaded with ``load_tickets`` / ``load_clocks`` (rows locked until the
    transaction ends), changed through ``add_ticket`` / ``touch_ticket`` /
    ``put_clock``, written with ``save``: one statement per table and kind of
    change, however many events the batch holds.
    """

    def __init__(self, tickets: Iterable[TicketRow] = (), loaded: Iterable[Clock] = ()) -> None:
        self.tickets: dict[str, TicketRow] = {row.key: row for row in tickets}
        self._clocks: dict[str, Clock] = {}
        self._of_ticket: dict[str, list[str]] = {}
        self._derived: dict[str, Derived] = {}
        self._new_tickets: set[str] = set()
        self._changed_tickets: set[str] = set()
        self._new_clocks: set[str] = set()
        self._changed_clocks: set[str] = set()
        for clock in loaded:
            self._remember(clock)

    def _remember(self, clock: Clock) -> None:
        if clock.id not in self._clocks:
            self._of_ticket.setdefault(clock.ticket_key, []).append(clock.id)
        self._clocks[clock.id] = clock

    def clocks_of(self, ticket_key: str) -> list[Clock]:
        return [self._clocks[clock_id] for clock_id in self._of_ticket.get(ticket_key, ())]

    def clocks(self, ids: Iterable[str]) -> list[Clock]:
        return [self._clocks[clock_id] for clock_id in ids if clock_id in self._clocks]

    def add_ticket(self, row: TicketRow) -> None:
        self.tickets[row.key] = row
        self._new_tickets.add(row.key)

    def touch_ticket(self, key: str) -> None:
        if key not in self._new_tickets:
            self._changed_tickets.add(key)

    def put_clock(self, clock: Clock, derived: Derived, *, new: bool = False) -> None:
        """Keep ``clock`` (same ``version`` as loaded) to be written by ``save``."""
        self._remember(clock)
        self._derived[clock.id] = derived
        if new:
            self._new_clocks.add(clock.id)
        elif clock.id not in self._new_clocks:
            self._changed_clocks.add(clock.id)

    async def save(self, conn: AsyncConnection, now: datetime) -> None:
        """Write every change; ``StaleClockError`` if a clock moved on since it was read."""
        if self._new_tickets:
            await conn.execute(
                insert(tickets),
                [
                    {**_ticket_values(self.tickets[key]), "updated_at": now}
                    for key in self._new_tickets
                ],
            )
        if self._changed_tickets:
            await conn.execute(
                update(tickets).where(tickets.c.key == bindparam("b_key")),
                [
                    {"b_key": key, **_ticket_changes(self.tickets[key]), "updated_at": now}
                    for key in self._changed_tickets
                ],
            )
        if self._new_clocks:
            await conn.execute(
                insert(clocks),
                [
                    {
                        "id": clock.id,
                        "version": clock.version,
                        **_clock_values(clock, self._derived[clock.id], now),
                    }
                    for clock in self.clocks(self._new_clocks)
                ],
            )
        if self._changed_clocks:
            changed = self.clocks(self._changed_clocks)
            result = await conn.execute(
                update(clocks).where(
                    and_(
                        clocks.c.id == bindparam("b_id"), clocks.c.version == bindparam("b_version")
                    )
                ),
                [
                    {
                        "b_id": clock.id,
                        "b_version": clock.version,
                        "version": clock.version + 1,
                        **_clock_values(clock, self._derived[clock.id], now),
                    }
                    for clock in changed
                ],
            )
            # Rows are locked since they were read, so the guard holds on PostgreSQL
            # (whose driver cannot count an executemany); SQLite counts it.
            if conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(changed):
                raise StaleClockError(", ".join(sorted(self._changed_clocks)))


def _ticket_changes(row: TicketRow) -> dict[str, Any]:
    return {
        "priority": row.priority,
        "policy": row.policy,
        "snapshot": row.snapshot,
        "rating_score": row.rating_score,
        "rating_scale": row.rating_scale,
        "rated_at": row.rated_at,
        **shown_fields(row.snapshot),
    }


def shown_fields(snapshot: Mapping[str, Any]) -> dict[str, str | None]:
    """What a report shows of a ticket's snapshot, by column: its service, type, title,
    assignee (name, else id) and group."""
    assignee = snapshot.get("assignee") or {}
    return {
        "service": snapshot.get("service"),
        "category": snapshot.get("type"),
        "title": snapshot.get("title"),
        "assignee": assignee.get("name") or assignee.get("id"),
        "grp": snapshot.get("group"),
    }


def _ticket_values(row: TicketRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "source": row.source,
        "ticket_id": row.ticket_id,
        "partition": row.partition,
        "created_at": row.created_at,
        **_ticket_changes(row),
    }


def _ticket_row(row: RowMapping) -> TicketRow:
    return TicketRow(
        key=row["key"],
        source=row["source"],
        ticket_id=row["ticket_id"],
        partition=row["partition"],
        priority=row["priority"],
        policy=row["policy"],
        snapshot=row["snapshot"],
        created_at=row["created_at"],
        rating_score=row["rating_score"],
        rating_scale=row["rating_scale"],
        rated_at=row["rated_at"],
    )


async def load_tickets(conn: AsyncConnection, keys: Collection[str]) -> Workset:
    """The stored tickets among ``keys`` and all their clocks, locked for this transaction."""
    if not keys:
        return Workset()
    ticket_rows = await conn.execute(
        select(tickets).where(tickets.c.key.in_(keys)).order_by(tickets.c.key).with_for_update()
    )
    found = [_ticket_row(row) for row in ticket_rows.mappings()]
    clock_rows = await conn.execute(
        select(clocks)
        .where(clocks.c.ticket_key.in_([row.key for row in found]))
        .order_by(clocks.c.id)
        .with_for_update()
    )
    return Workset(found, [clock_from_row(row) for row in clock_rows.mappings()])


async def load_clocks(conn: AsyncConnection, ids: Collection[str]) -> Workset:
    """These clocks (locked for this transaction) and their tickets."""
    clock_rows = await conn.execute(
        select(clocks).where(clocks.c.id.in_(ids)).order_by(clocks.c.id).with_for_update()
    )
    loaded = [clock_from_row(row) for row in clock_rows.mappings()]
    ticket_rows = await conn.execute(
        select(tickets).where(tickets.c.key.in_({clock.ticket_key for clock in loaded}))
    )
    return Workset([_ticket_row(row) for row in ticket_rows.mappings()], loaded)


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
