"""The notifier's tables, and every statement on notifications, attempts and dead letters.

``notifier_notifications`` holds one row per notification; its primary key is
the dedup key (``escalation.notification_id``:
``clock_id[#cycle]:<stage>[.g<gen>]:<step>[.r<repeat>]:<recipient>:<channel>``),
so inserting a notification twice changes nothing. The row carries the
rendered content (a snapshot taken when the step fired), the delivery state
and ``published``, the outbox flag for its ``NotificationRecord``; ``cycle``,
``step``, ``repeat``, ``generation`` and ``scheduled`` tie it to its
escalation step. ``notifier_attempts`` keeps one row per attempt;
``notifier_dead_letters`` every input record that could not be used, with the
reason. ``notifier_escalations`` and ``notifier_scheduled_steps`` are defined
here too (one metadata, one migration history); their statements are in
``escalation_store.py``.

Every state change is a guarded update on the state it expects (``status`` and
``attempts``), so a stale or repeated step changes nothing. Functions take a
connection inside the caller's transaction and never commit themselves.
Works on PostgreSQL and SQLite; the schema comes from the Alembic history in
``migrations/`` (``migrate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningInsert

from slawatch_common.db import UtcDateTime, upgrade
from slawatch_common.events import Channel
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome
from slawatch_notifier.retry import AttemptOutcome, NextStep, Status, attempt_outcome
from slawatch_notifier.routing import PlannedNotification
from slawatch_notifier.templates import Content

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"
_INSERT_CHUNK = 200


metadata = sa.MetaData()

notifications = sa.Table(
    "notifier_notifications",
    metadata,
    sa.Column("id", sa.String(1000), primary_key=True),
    sa.Column("sla_event_id", sa.String(200), nullable=False),
    sa.Column("clock_id", sa.String(200), nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("ticket_source", sa.String(200), nullable=False),
    sa.Column("ticket_id", sa.String(200), nullable=False),
    sa.Column("recipient", sa.String(200), nullable=False),
    sa.Column("recipient_name", sa.String(500), nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("content", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("published", sa.Boolean, nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False, server_default="1"),
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),
    sa.Column("repeat", sa.Integer, nullable=False, server_default="0"),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("scheduled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("locale", sa.String(16), nullable=True),
    sa.Index("ix_notifier_notifications_due", "status", "next_attempt_at"),
    sa.Index("ix_notifier_notifications_outbox", "published", "status"),
    sa.Index("ix_notifier_notifications_escalation", "clock_id", "cycle", "status"),
)

attempts = sa.Table(
    "notifier_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "notification_id",
        sa.String(1000),
        sa.ForeignKey("notifier_notifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("provider_message_id", sa.String(500), nullable=True),
    sa.UniqueConstraint("notification_id", "number", name="uq_notifier_attempts_number"),
)

dead_letters = sa.Table(
    "notifier_dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("key", sa.Text, nullable=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)


escalations = sa.Table(
    "notifier_escalations",
    metadata,
    sa.Column("clock_id", sa.String(200), primary_key=True),
    sa.Column("cycle", sa.Integer, primary_key=True),
    sa.Column("ticket_source", sa.String(200), nullable=False),
    sa.Column("ticket_id", sa.String(200), nullable=False),
    sa.Column("chain", sa.JSON, nullable=False),
    sa.Column("event", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(16), nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("breach_event_id", sa.String(200), nullable=True),
    sa.Column("breach_at", UtcDateTime, nullable=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False),
    sa.Column("acknowledged_by", sa.String(500), nullable=True),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_notifier_escalations_ticket", "ticket_source", "ticket_id"),
)

scheduled_steps = sa.Table(
    "notifier_scheduled_steps",
    metadata,
    sa.Column("id", sa.String(600), primary_key=True),
    sa.Column("clock_id", sa.String(200), nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(16), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_notifier_scheduled_steps_due", "status", "due_at"),
    sa.Index("ix_notifier_scheduled_steps_escalation", "clock_id", "cycle", "status"),
)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the notifier's tables to the newest revision. Idempotent."""
    await upgrade(engine, MIGRATIONS, VERSION_TABLE)


async def insert_dead_letters(conn: AsyncConnection, rows: Sequence[DeadLetter]) -> None:
    """Keep records that could not be used, with the reason, in the caller's transaction."""
    if rows:
        await conn.execute(sa.insert(dead_letters), [row.values() for row in rows])


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    reason: str
    detail: str
    received_at: datetime

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --- intake --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """A planned notification with its rendered content, ready to be stored."""

    planned: PlannedNotification
    content: Content


async def insert_new(conn: AsyncConnection, drafts: Sequence[Draft], now: datetime) -> set[str]:
    """Insert ``drafts`` as pending notifications due ``now``; the ids actually inserted.

    A notification whose id exists already is left untouched (dedup by key).
    """
    inserted: set[str] = set()
    rows = list({d.planned.notification_id: _new_row(d, now) for d in drafts}.values())
    for start in range(0, len(rows), _INSERT_CHUNK):
        statement = _insert_ignoring_duplicates(conn, rows[start : start + _INSERT_CHUNK])
        inserted.update((await conn.execute(statement)).scalars())
    return inserted


def _insert_ignoring_duplicates(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> ReturningInsert[str]:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(notifications).values(rows).on_conflict_do_nothing(index_elements=["id"])
    return statement.returning(notifications.c.id)


def _new_row(draft: Draft, now: datetime) -> dict[str, Any]:
    planned, event, firing = draft.planned, draft.planned.event, draft.planned.firing
    return {
        "id": planned.notification_id,
        "sla_event_id": event.event_id,
        "clock_id": event.data.clock.clock_id,
        "cycle": planned.cycle,
        "step": firing.step,
        "repeat": firing.repeat,
        "generation": firing.generation,
        "scheduled": firing.scheduled,
        "locale": planned.locale,
        "stage": planned.stage,
        "ticket_source": event.data.ticket.source,
        "ticket_id": event.data.ticket.id,
        "recipient": planned.recipient,
        "recipient_name": planned.recipient_name,
        "channel": str(planned.channel),
        "address": planned.address,
        "content": _content_json(draft.content),
        "status": Status.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "published": False,
    }


def _content_json(content: Content) -> dict[str, str | None]:
    return {"subject": content.subject, "text": content.text, "html": content.html}


async def cancel_pending(
    conn: AsyncConnection,
    clock_id: str,
    cycle: int,
    now: datetime,
    reason: str,
    *,
    scheduled_only: bool = False,
    stage: str | None = None,
) -> list[str]:
    """Cancel the not-yet-sent notifications of one escalation; their ids.

    Only ``pending`` rows change (guarded): one being sent or already sent stays.
    ``scheduled_only`` keeps the immediate stage notices; ``stage`` limits to one stage.
    """
    table = notifications
    guard = [table.c.clock_id == clock_id, table.c.cycle == cycle, table.c.status == Status.PENDING]
    if scheduled_only:
        guard.append(table.c.scheduled.is_(True))
    if stage is not None:
        guard.append(table.c.stage == stage)
    statement = (
        sa.update(table)
        .where(*guard)
        .values(status=Status.CANCELLED, last_error=f"cancelled: {reason}", updated_at=now)
        .returning(table.c.id)
    )
    return sorted((await conn.execute(statement)).scalars())


# --- dispatch ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification this process has marked ``sending`` for attempt number ``attempts``."""

    id: str
    channel: Channel
    attempts: int
    outbound: Outbound


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[Claimed]:
    """Mark up to ``limit`` due pending notifications ``sending`` (+1 attempt) and return them.

    Oldest due first. On PostgreSQL rows locked by another claimer are skipped;
    the guarded update makes a double claim impossible on every dialect.
    """
    due = (
        sa.select(notifications.c.id)
        .where(notifications.c.status == Status.PENDING, notifications.c.next_attempt_at <= now)
        .order_by(notifications.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await conn.execute(due)).scalars())
    if not ids:
        return []
    claim = (
        sa.update(notifications)
        .where(notifications.c.id.in_(ids), notifications.c.status == Status.PENDING)
        .values(status=Status.SENDING, attempts=notifications.c.attempts + 1, updated_at=now)
        .returning(*notifications.c)
    )
    return [_claimed(row) for row in (await conn.execute(claim)).mappings()]


def _claimed(row: sa.RowMapping) -> Claimed:
    content = row["content"]
    outbound = Outbound(
        notification_id=row["id"],
        ticket_source=row["ticket_source"],
        ticket_id=row["ticket_id"],
        recipient_name=row["recipient_name"],
        address=row["address"],
        content=Content(content["subject"], content["text"], content.get("html")),
    )
    return Claimed(row["id"], Channel(row["channel"]), row["attempts"], outbound)


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending notification falls due, if there is one."""
    earliest = sa.select(sa.func.min(notifications.c.next_attempt_at)).where(
        notifications.c.status == Status.PENDING
    )
    moment: datetime | None = (await conn.execute(earliest)).scalar()
    return moment


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened in one send."""

    started_at: datetime
    latency_ms: int
    outcome: Outcome


async def finish_attempt(
    conn: AsyncConnection, claimed: Claimed, attempt: Attempt, step: NextStep, now: datetime
) -> bool:
    """Record ``attempt`` and move the notification to ``step``; False if it was not ours.

    Guarded on (``sending``, ``claimed.attempts``): a stale finisher changes nothing.
    """
    moved = await conn.execute(
        sa.update(notifications)
        .where(
            notifications.c.id == claimed.id,
            notifications.c.status == Status.SENDING,
            notifications.c.attempts == claimed.attempts,
        )
        .values(
            status=step.status,
            next_attempt_at=step.next_attempt_at or now,
            last_error=step.error,
            updated_at=now,
        )
    )
    if moved.rowcount != 1:
        return False
    await conn.execute(sa.insert(attempts).values(_attempt_row(claimed, attempt)))
    return True


def _attempt_row(claimed: Claimed, attempt: Attempt) -> dict[str, Any]:
    outcome = attempt.outcome
    return {
        "notification_id": claimed.id,
        "number": claimed.attempts,
        "started_at": attempt.started_at,
        "outcome": attempt_outcome(outcome),
        "reason": None if isinstance(outcome, Delivered) else outcome.reason,
        "latency_ms": attempt.latency_ms,
        "provider_message_id": outcome.provider_message_id
        if isinstance(outcome, Delivered)
        else None,
    }


async def recover_interrupted(conn: AsyncConnection, now: datetime) -> list[str]:
    """Put every ``sending`` notification back to pending, due ``now``; their ids.

    Their attempt in flight is recorded as ``interrupted``. Call once at start,
    before dispatching, while no other process dispatches from this database.
    """
    rows = (
        await conn.execute(
            sa.select(notifications.c.id, notifications.c.attempts, notifications.c.updated_at)
            .where(notifications.c.status == Status.SENDING)
            .with_for_update()
        )
    ).all()
    for row in rows:
        await _record_interrupted(conn, row.id, row.attempts, row.updated_at)
    if rows:
        await conn.execute(
            sa.update(notifications)
            .where(notifications.c.status == Status.SENDING)
            .values(status=Status.PENDING, next_attempt_at=now, updated_at=now)
        )
    return [row.id for row in rows]


async def _record_interrupted(
    conn: AsyncConnection, notification_id: str, number: int, started_at: datetime
) -> None:
    await conn.execute(
        sa.insert(attempts).values(
            notification_id=notification_id,
            number=number,
            started_at=started_at,
            outcome=AttemptOutcome.INTERRUPTED,
            reason="the process stopped during the send; it will be resent",
        )
    )


# --- outbox --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finished:
    """A sent or failed notification whose record is not yet published."""

    id: str
    sla_event_id: str
    clock_id: str
    stage: str
    ticket_source: str
    ticket_id: str
    recipient: str
    channel: Channel
    address: str
    status: Status
    attempts: int
    last_error: str | None
    updated_at: datetime


async def unpublished(conn: AsyncConnection, limit: int) -> list[Finished]:
    """Finished notifications whose record has not been published, oldest first."""
    query = (
        sa.select(*(notifications.c[field.name] for field in fields(Finished)))
        .where(
            notifications.c.published.is_(False),
            notifications.c.status.in_([Status.SENT, Status.FAILED]),
        )
        .order_by(notifications.c.updated_at)
        .limit(limit)
    )
    return [_finished(row) for row in (await conn.execute(query)).mappings()]


def _finished(row: sa.RowMapping) -> Finished:
    values = dict(row)
    values["channel"] = Channel(values["channel"])
    values["status"] = Status(values["status"])
    return Finished(**values)


async def mark_published(conn: AsyncConnection, ids: Sequence[str]) -> None:
    await conn.execute(
        sa.update(notifications).where(notifications.c.id.in_(ids)).values(published=True)
    )
