"""The notifier's tables, and every statement on notifications, attempts and dead letters.

``notifier_notifications`` holds one row per notification; its primary key is
the dedup key (``escalation.notification_id``:
``clock_id[#cycle]:<stage>[.g<gen>]:<step>[.r<repeat>]:<recipient>:<channel>``),
so inserting a notification twice changes nothing. The row carries the
rendered content (a snapshot taken when the step fired), the delivery state
and ``published``, the outbox flag for its ``NotificationRecord``; ``cycle``,
``step``, ``repeat``, ``generation`` and ``scheduled`` tie it to its
escalation step. ``note`` says in words why a notification is where it is
(deferred by quiet hours, folded into a digest, a fallback for a failed one);
``fallback_of``, ``digest_id`` and ``deferred_until`` say it in columns;
``due_at`` is when it first fell due (delivery latency counts from there).
``retry_from`` is when its retry budget began (its first attempt, or the first
after a redrive), ``failing_since`` its first failed attempt since then,
``interrupted`` how many of its sends a crash cut short since then and
``redrives`` how often an operator sent it again after it failed
(``redrive``); its records' event ids carry that generation.
A notification whose address only the event gave and may not be used is
kept ``refused`` (``routing.py``): its ``address`` masked, ``last_error`` the
refusal's detail, never claimed and never published; one the per-number SMS
cap refuses at its first claim becomes ``refused`` too (``folding.py``).
``notifier_attempts`` keeps one row per attempt (the delivery log);
``notifier_dead_letters`` every input record that could not be used, with the
reason. ``notifier_escalations`` and ``notifier_scheduled_steps`` are defined
here too (one metadata, one migration history); their statements are in
``escalation_store.py``; ``notifier_rate_windows`` (one row per recipient and
channel: the current window of its rate limit) has its statements in
``folding.py``; ``notifier_reports`` (one row per compliance-report mail: the
contract, period, issue and recipient of a ``report.due`` event, the instant
``as_of`` its documents are fetched for, its delivery state and outbox flag)
has its statements in ``reports.py``.

Every state change is a guarded update on the state it expects (``status`` and
``attempts``), so a stale or repeated step changes nothing. Functions take a
connection inside the caller's transaction and never commit themselves.
Works on PostgreSQL and SQLite; the schema comes from the Alembic history in
``migrations/`` (``migrate``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningInsert

from slawatch_common.consumer import dead_letter_table
from slawatch_common.db import UtcDateTime, upgrade
from slawatch_common.events import Channel
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome
from slawatch_notifier.rate_limits import DIGEST
from slawatch_notifier.retry import AttemptOutcome, NextStep, Status, attempt_outcome
from slawatch_notifier.routing import PlannedNotification
from slawatch_notifier.templates import Content

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"


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
    sa.Column("due_at", UtcDateTime, nullable=True),
    sa.Column("deferred_until", UtcDateTime, nullable=True),
    sa.Column("fallback_of", sa.String(1000), nullable=True),
    sa.Column("digest_id", sa.String(1000), nullable=True),
    sa.Column("deadline", UtcDateTime, nullable=True),
    sa.Column("priority", sa.String(16), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("retry_from", UtcDateTime, nullable=True),
    sa.Column("failing_since", UtcDateTime, nullable=True),
    sa.Column("interrupted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("redrives", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_notifier_notifications_due", "status", "next_attempt_at"),
    sa.Index("ix_notifier_notifications_channel_due", "status", "channel", "next_attempt_at"),
    sa.Index("ix_notifier_notifications_outbox", "published", "status"),
    sa.Index("ix_notifier_notifications_escalation", "clock_id", "cycle", "status"),
    sa.Index("ix_notifier_notifications_fallback_of", "fallback_of"),
    sa.Index("ix_notifier_notifications_digest_id", "digest_id"),
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

dead_letters = dead_letter_table("notifier_dead_letters", metadata)


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


rate_windows = sa.Table(
    "notifier_rate_windows",
    metadata,
    sa.Column("recipient", sa.String(200), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    sa.Column("max", sa.Integer, nullable=False),
    sa.Column("sent", sa.Integer, nullable=False),
    sa.Column("held", sa.Integer, nullable=False),
    sa.Column("digest_id", sa.String(1000), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

reports = sa.Table(
    "notifier_reports",
    metadata,
    sa.Column("id", sa.String(1000), primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("contract", sa.String(200), nullable=False),
    sa.Column("customer", sa.String(500), nullable=False),
    sa.Column("period", sa.String(40), nullable=False),
    sa.Column("issue", sa.String(200), nullable=False),
    sa.Column("as_of", UtcDateTime, nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("recipient", sa.String(200), nullable=False),
    sa.Column("recipient_name", sa.String(500), nullable=True),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("retry_from", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("interrupted", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("published", sa.Boolean, nullable=False),
    sa.Index("ix_notifier_reports_due", "status", "next_attempt_at"),
    sa.Index("ix_notifier_reports_outbox", "published", "status"),
)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the notifier's tables to the newest revision. Idempotent."""
    await upgrade(engine, MIGRATIONS, VERSION_TABLE)


# --- intake --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """A planned notification with its rendered content, ready to be stored.

    ``deferred_until``: quiet hours hold it back until then (``quiet_hours.py``).
    """

    planned: PlannedNotification
    content: Content
    deferred_until: datetime | None = None


async def insert_new(conn: AsyncConnection, drafts: Sequence[Draft], now: datetime) -> set[str]:
    """Insert ``drafts`` as pending notifications, due ``now`` or when deferred to; the ids
    actually inserted. A fallback is inserted as ``standby``, a refused one as ``refused``
    (``routing.py``).

    A notification whose id exists already is left untouched (dedup by key).
    """
    rows = list({d.planned.notification_id: _new_row(d, now) for d in drafts}.values())
    if not rows:
        return set()
    # one statement compiled once (cached), its rows sent in batches by the driver
    return set((await conn.execute(_insert_ignoring_duplicates(conn), rows)).scalars())


def _insert_ignoring_duplicates(conn: AsyncConnection) -> ReturningInsert[str]:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(notifications).on_conflict_do_nothing(index_elements=["id"])
    return statement.returning(notifications.c.id)


def _new_row(draft: Draft, now: datetime) -> dict[str, Any]:
    planned, event, firing = draft.planned, draft.planned.event, draft.planned.firing
    due = draft.deferred_until or now
    note = None
    status = Status.STANDBY if planned.fallback_of else Status.PENDING
    refused: dict[str, Any] = {}
    if draft.deferred_until is not None:
        note = f"deferred to {draft.deferred_until.isoformat()}: quiet hours of {planned.recipient}"
    if planned.refused is not None:
        # recorded, never sent; no record type tells a refusal, so there is nothing to publish
        status, note = Status.REFUSED, f"refused ({planned.refused.reason}): never sent"
        refused = {"last_error": planned.refused.detail, "published": True}
    return new_row(
        id=planned.notification_id,
        sla_event_id=event.event_id,
        clock_id=event.data.clock.clock_id,
        cycle=planned.cycle,
        step=firing.step,
        repeat=firing.repeat,
        generation=firing.generation,
        scheduled=firing.scheduled,
        locale=planned.locale,
        stage=planned.stage,
        ticket_source=event.data.ticket.source,
        ticket_id=event.data.ticket.id,
        recipient=planned.recipient,
        recipient_name=planned.recipient_name,
        channel=str(planned.channel),
        address=planned.address,
        content=content_json(draft.content),
        status=status,
        due=due,
        now=now,
        deferred_until=draft.deferred_until,
        fallback_of=planned.fallback_of,
        deadline=event.data.clock.deadline,
        priority=str(event.data.ticket.priority),
        note=note,
        **refused,
    )


def new_row(*, due: datetime, now: datetime, **values: Any) -> dict[str, Any]:
    """A ``notifier_notifications`` row not yet tried, due at ``due``: ``values`` over the
    defaults of a new row (first cycle, no attempt, unpublished, pending, nothing noted)."""
    return {
        "cycle": 1,
        "step": 0,
        "repeat": 0,
        "generation": 0,
        "scheduled": False,
        "locale": None,
        "status": Status.PENDING,
        "attempts": 0,
        "next_attempt_at": due,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "published": False,
        "due_at": due,
        "deferred_until": None,
        "fallback_of": None,
        "digest_id": None,
        "deadline": None,
        "priority": None,
        "note": None,
        "retry_from": None,
        "failing_since": None,
        "interrupted": 0,
        "redrives": 0,
        **values,
    }


def content_json(content: Content) -> dict[str, str | None]:
    return {"subject": content.subject, "text": content.text, "html": content.html}


@dataclass(frozen=True, slots=True, order=True)
class NotificationRef:
    """A notification a statement moved, by id, with its channel (a metric label)."""

    id: str
    channel: Channel


async def cancel_pending(
    conn: AsyncConnection,
    clock_id: str,
    cycle: int,
    now: datetime,
    reason: str,
    *,
    scheduled_only: bool = False,
    stage: str | None = None,
) -> list[NotificationRef]:
    """Cancel the not-yet-sent notifications of one escalation, by id.

    Only ``pending`` and ``standby`` rows change (guarded): one being sent or
    already sent stays. ``scheduled_only`` keeps the immediate stage notices;
    ``stage`` limits to one stage; a warning still deferred by quiet hours is
    cancelled whatever they say (it has not been told and no longer needs to be);
    ``cancel_deferred`` cancels only those, for many escalations at once.
    """
    table = notifications
    guard = [
        table.c.clock_id == clock_id,
        table.c.cycle == cycle,
        table.c.status.in_([Status.PENDING, Status.STANDBY]),
    ]
    narrowing: list[sa.ColumnElement[bool]] = []
    if scheduled_only:
        narrowing.append(table.c.scheduled.is_(True))
    if stage is not None:
        narrowing.append(table.c.stage == stage)
    if narrowing:
        guard.append(sa.or_(sa.and_(*narrowing), table.c.deferred_until.is_not(None)))
    statement = (
        sa.update(table)
        .where(*guard)
        .values(status=Status.CANCELLED, last_error=f"cancelled: {reason}", updated_at=now)
        .returning(table.c.id, table.c.channel)
    )
    rows = (await conn.execute(statement)).all()
    return sorted(NotificationRef(row.id, Channel(row.channel)) for row in rows)


async def cancel_deferred(
    conn: AsyncConnection, keys: Collection[tuple[str, int]], now: datetime, reason: str
) -> list[NotificationRef]:
    """Cancel the warnings quiet hours still hold back, of many escalations at once."""
    if not keys:
        return []
    table = notifications
    statement = (
        sa.update(table)
        .where(
            sa.tuple_(table.c.clock_id, table.c.cycle).in_(sorted(keys)),
            table.c.status.in_([Status.PENDING, Status.STANDBY]),
            table.c.deferred_until.is_not(None),
        )
        .values(status=Status.CANCELLED, last_error=f"cancelled: {reason}", updated_at=now)
        .returning(table.c.id, table.c.channel)
    )
    rows = (await conn.execute(statement)).all()
    return sorted(NotificationRef(row.id, Channel(row.channel)) for row in rows)


# --- dispatch ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification this process has marked ``sending`` for attempt number ``attempts``."""

    id: str
    channel: Channel
    attempts: int
    outbound: Outbound
    recipient: str
    stage: str
    due_at: datetime
    retry_from: datetime | None = None
    """When its retry budget began: its first attempt, or the first after a redrive."""
    failing_since: datetime | None = None
    """Its first failed attempt since ``retry_from``; None while none failed."""

    @property
    def digest(self) -> bool:
        return self.stage == DIGEST


async def claim_due(
    conn: AsyncConnection, now: datetime, slots: Mapping[Channel, int]
) -> list[Claimed]:
    """Mark due pending notifications ``sending`` (+1 attempt), up to ``slots[channel]`` of each
    channel, and return them.

    Oldest due first within a channel; a channel without free slots is not
    looked at, so a stuck one never holds the others back. On PostgreSQL rows
    locked by another claimer are skipped; the guarded update makes a double
    claim impossible on every dialect. On SQLite the update takes the write
    lock, so whatever the caller decides after it in the same transaction
    (``folding.admit``) sees every other claimer's committed work. The first
    claim of a notification (or the first after a redrive) starts its retry
    budget (``retry_from``).
    """
    ids: list[str] = []
    for channel, free in slots.items():
        if free > 0:
            due = (
                sa.select(notifications.c.id)
                .where(
                    notifications.c.status == Status.PENDING,
                    notifications.c.channel == str(channel),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.next_attempt_at)
                .limit(free)
                .with_for_update(skip_locked=True)
            )
            ids += (await conn.execute(due)).scalars()
    return [_claimed(row) for row in await mark_sending(conn, notifications, ids, now)]


async def mark_sending(
    conn: AsyncConnection, table: sa.Table, ids: Sequence[str], now: datetime
) -> list[sa.RowMapping]:
    """The rows of ``ids`` still pending in ``table`` (notifications or report mails) made
    ``sending`` with one more attempt, their retry budget started if it was not, in the
    order of ``ids``: the guarded update of every claim."""
    if not ids:
        return []
    claim = (
        sa.update(table)
        .where(table.c.id.in_(ids), table.c.status == Status.PENDING)
        .values(
            status=Status.SENDING,
            attempts=table.c.attempts + 1,
            retry_from=sa.func.coalesce(table.c.retry_from, sa.literal(now, UtcDateTime)),
            updated_at=now,
        )
        .returning(*table.c)
    )
    rows = list((await conn.execute(claim)).mappings())
    order = {row_id: position for position, row_id in enumerate(ids)}
    return sorted(rows, key=lambda row: order[row["id"]])


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
    return Claimed(
        row["id"],
        Channel(row["channel"]),
        row["attempts"],
        outbound,
        recipient=row["recipient"],
        stage=row["stage"],
        due_at=row["due_at"] or row["created_at"],  # a row an older release inserted
        retry_from=row["retry_from"],
        failing_since=row["failing_since"],
    )


async def next_due_by_channel(
    conn: AsyncConnection, channels: Collection[Channel]
) -> dict[Channel, datetime]:
    """When the earliest pending notification of each of ``channels`` falls due (those with one)."""
    query = (
        sa.select(notifications.c.channel, sa.func.min(notifications.c.next_attempt_at))
        .where(
            notifications.c.status == Status.PENDING,
            notifications.c.channel.in_([str(c) for c in channels]),
        )
        .group_by(notifications.c.channel)
    )
    return {Channel(channel): moment for channel, moment in await conn.execute(query)}


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened in one send."""

    started_at: datetime
    latency_ms: int
    outcome: Outcome


async def finish_attempts(
    conn: AsyncConnection,
    finished: Sequence[tuple[Claimed, Attempt, NextStep]],
    now: datetime,
) -> set[str]:
    """Record each attempt and move its notification to its step; the ids recorded.

    Guarded on (``sending``, the claimed attempt number): a stale finisher
    changes nothing, and its id is not in the answer. A notification that ends
    (sent or failed) is unpublished again, so the outbox publishes each of its
    final outcomes, also the one after a redrive.

    The delivered ones, the common case, move and are logged together: on
    PostgreSQL with one statement for all of them (arrays in, one round trip),
    elsewhere with one update and one insert.
    """
    delivered = [
        (claimed, attempt) for claimed, attempt, step in finished if step.status is Status.SENT
    ]
    recorded: set[str] = set()
    logged: set[str] = set()
    if delivered and conn.dialect.name == "postgresql":
        logged = await _finish_delivered_postgresql(conn, delivered, now)
        recorded = set(logged)  # the others are added below, and their attempts logged
    elif delivered:
        moved = await conn.execute(
            sa.update(notifications)
            .where(
                sa.tuple_(notifications.c.id, notifications.c.attempts).in_(
                    [(claimed.id, claimed.attempts) for claimed, _ in delivered]
                ),
                notifications.c.status == Status.SENDING,
            )
            .values(
                status=Status.SENT,
                next_attempt_at=now,
                last_error=None,
                published=False,
                updated_at=now,
            )
            .returning(notifications.c.id)
        )
        recorded.update(moved.scalars())
    for claimed, _attempt, step in finished:
        if step.status is not Status.SENT and await _move(conn, claimed, step, now):
            recorded.add(claimed.id)
    rows = [
        _attempt_row(claimed, attempt)
        for claimed, attempt, _ in finished
        if claimed.id in recorded and claimed.id not in logged
    ]
    if rows:
        await conn.execute(sa.insert(attempts), rows)
    return recorded


_FINISH_DELIVERED = sa.text(
    """
    WITH ended AS (
        SELECT * FROM unnest(:ids, :numbers, :started, :latencies, :provider_ids)
            AS t(id, number, started_at, latency_ms, provider_message_id)
    ), moved AS (
        UPDATE notifier_notifications AS n
        SET status = :sent, next_attempt_at = :now, last_error = NULL, published = false,
            updated_at = :now
        FROM ended
        WHERE n.id = ended.id AND n.attempts = ended.number AND n.status = :sending
        RETURNING n.id
    )
    INSERT INTO notifier_attempts
        (notification_id, number, started_at, outcome, latency_ms, provider_message_id)
    SELECT ended.id, ended.number, ended.started_at, :delivered, ended.latency_ms,
           ended.provider_message_id
    FROM ended JOIN moved ON moved.id = ended.id
    RETURNING notification_id
    """
).bindparams(
    sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)),
    sa.bindparam("numbers", type_=postgresql.ARRAY(sa.Integer)),
    sa.bindparam("started", type_=postgresql.ARRAY(sa.DateTime(timezone=True))),
    sa.bindparam("latencies", type_=postgresql.ARRAY(sa.Integer)),
    sa.bindparam("provider_ids", type_=postgresql.ARRAY(sa.String)),
    sa.bindparam("now", type_=UtcDateTime),
)
"""Delivered attempts on PostgreSQL: move the notifications, log the attempts, in one statement."""


async def _finish_delivered_postgresql(
    conn: AsyncConnection, delivered: Sequence[tuple[Claimed, Attempt]], now: datetime
) -> set[str]:
    result = await conn.execute(
        _FINISH_DELIVERED,
        {
            "ids": [claimed.id for claimed, _ in delivered],
            "numbers": [claimed.attempts for claimed, _ in delivered],
            "started": [attempt.started_at for _, attempt in delivered],
            "latencies": [attempt.latency_ms for _, attempt in delivered],
            "provider_ids": [_provider_id(attempt.outcome) for _, attempt in delivered],
            "now": now,
            "sent": Status.SENT.value,
            "sending": Status.SENDING.value,
            "delivered": AttemptOutcome.DELIVERED.value,
        },
    )
    return set(result.scalars())


async def _move(conn: AsyncConnection, claimed: Claimed, step: NextStep, now: datetime) -> bool:
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
            failing_since=step.failing_since,
            updated_at=now,
            **({"published": False} if step.final else {}),
        )
    )
    return bool(moved.rowcount == 1)


def _attempt_row(claimed: Claimed, attempt: Attempt) -> dict[str, Any]:
    outcome = attempt.outcome
    return {
        "notification_id": claimed.id,
        "number": claimed.attempts,
        "started_at": attempt.started_at,
        "outcome": attempt_outcome(outcome),
        "reason": None if isinstance(outcome, Delivered) else outcome.reason,
        "latency_ms": attempt.latency_ms,
        "provider_message_id": _provider_id(outcome),
    }


def _provider_id(outcome: Outcome) -> str | None:
    return outcome.provider_message_id if isinstance(outcome, Delivered) else None


async def release(conn: AsyncConnection, claimed: Sequence[Claimed], now: datetime) -> None:
    """Give claimed notifications that were never sent back: ``pending``, the attempt uncounted.

    Guarded on (``sending``, the claimed attempt number). The recipient's rate
    window keeps counting a released first attempt, so it may fold one
    notification early; shutdown is the only caller. A retry budget the claim
    began (``retry_from`` set by it: equal to ``updated_at``) begins again at the
    next claim.
    """
    if not claimed:
        return
    await conn.execute(
        sa.update(notifications)
        .where(
            sa.tuple_(notifications.c.id, notifications.c.attempts).in_(
                [(item.id, item.attempts) for item in claimed]
            ),
            notifications.c.status == Status.SENDING,
        )
        .values(
            status=Status.PENDING,
            attempts=notifications.c.attempts - 1,
            retry_from=sa.case(
                (notifications.c.retry_from == notifications.c.updated_at, sa.null()),
                else_=notifications.c.retry_from,
            ),
            updated_at=now,
        )
    )


INTERRUPTED_REASON = "the process stopped during the send"


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A notification a crash left ``sending``; ``failed`` when that happened too often."""

    id: str
    channel: Channel
    stage: str
    times: int
    failed: bool

    @property
    def digest(self) -> bool:
        return self.stage == DIGEST

    @property
    def error(self) -> str:
        return f"interrupted {self.times} times while sending"


async def recover_interrupted(
    conn: AsyncConnection, now: datetime, max_interrupted: int
) -> list[Interrupted]:
    """Put every ``sending`` notification back to pending, due ``now``; each one found.

    Their attempt in flight is recorded as ``interrupted`` and counted; a
    notification interrupted ``max_interrupted`` times since its budget began is
    ``failed`` instead ("interrupted N times while sending"), so a message that
    brings the process down while it is sent ends, not in a loop. Call once at
    start, before dispatching, while no other process dispatches from this database.
    """
    table = notifications
    rows = (
        await conn.execute(
            sa.select(
                table.c.id,
                table.c.channel,
                table.c.stage,
                table.c.attempts,
                table.c.interrupted,
                table.c.updated_at,
            )
            .where(table.c.status == Status.SENDING)
            .with_for_update()
        )
    ).all()
    if not rows:
        return []
    found = [
        Interrupted(
            row.id,
            Channel(row.channel),
            row.stage,
            row.interrupted + 1,
            row.interrupted + 1 >= max_interrupted,
        )
        for row in rows
    ]
    await conn.execute(
        sa.insert(attempts),
        [
            {
                "notification_id": row.id,
                "number": row.attempts,
                "started_at": row.updated_at,
                "outcome": AttemptOutcome.INTERRUPTED,
                "reason": f"{INTERRUPTED_REASON}; "
                + (f"{item.error}: failed" if item.failed else "it will be resent"),
            }
            for row, item in zip(rows, found, strict=True)
        ],
    )
    resent = [item.id for item in found if not item.failed]
    if resent:
        await conn.execute(
            sa.update(table)
            .where(table.c.id.in_(resent), table.c.status == Status.SENDING)
            .values(
                status=Status.PENDING,
                interrupted=table.c.interrupted + 1,
                next_attempt_at=now,
                updated_at=now,
            )
        )
    for item in found:
        if item.failed:
            await conn.execute(
                sa.update(table)
                .where(table.c.id == item.id, table.c.status == Status.SENDING)
                .values(
                    status=Status.FAILED,
                    interrupted=table.c.interrupted + 1,
                    last_error=item.error,
                    failing_since=sa.func.coalesce(
                        table.c.failing_since, sa.literal(now, UtcDateTime)
                    ),
                    next_attempt_at=now,
                    published=False,
                    updated_at=now,
                )
            )
    return found


# --- redrive -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedriveFilter:
    """Which failed notifications to send again; every filter given must match.

    ``ids``: these notifications; ``ticket``: (source, id) of their ticket;
    ``failed_from``/``failed_until``: failed at or after / before these instants.
    """

    ids: tuple[str, ...] = ()
    ticket: tuple[str, str] | None = None
    failed_from: datetime | None = None
    failed_until: datetime | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        table = notifications
        found: list[sa.ColumnElement[bool]] = []
        if self.ids:
            found.append(table.c.id.in_(list(self.ids)))
        if self.ticket is not None:
            source, ticket_id = self.ticket
            found += [table.c.ticket_source == source, table.c.ticket_id == ticket_id]
        if self.failed_from is not None:
            found.append(table.c.updated_at >= self.failed_from)
        if self.failed_until is not None:
            found.append(table.c.updated_at < self.failed_until)
        return found


async def redrive(
    conn: AsyncConnection, matching: RedriveFilter, now: datetime
) -> list[NotificationRef]:
    """Move the ``failed`` notifications ``matching`` selects back to ``pending``, due ``now``;
    which they were.

    Each gets a fresh retry budget (it begins at its next attempt), forgets its
    failures and interruptions, counts one more redrive (its records' event ids
    carry it, so the outcome that follows is published as a new record) and a
    note saying it was redriven and why it had failed. The attempt log stays.
    Nothing is rung: a running dispatcher finds rows due now within
    ``dispatch.IDLE_WAIT_S``. ``ValueError`` without any filter.
    """
    conditions = matching.conditions()
    if not conditions:
        raise ValueError("a redrive needs ids, a ticket or a time range")
    table = notifications
    note = sa.literal(f"redriven at {now.isoformat()}; it had failed: ") + sa.func.coalesce(
        table.c.last_error, ""
    )
    statement = (
        sa.update(table)
        .where(table.c.status == Status.FAILED, *conditions)
        .values(
            status=Status.PENDING,
            next_attempt_at=now,
            retry_from=None,
            failing_since=None,
            interrupted=0,
            redrives=table.c.redrives + 1,
            note=note,
            updated_at=now,
        )
        .returning(table.c.id, table.c.channel)
    )
    rows = (await conn.execute(statement)).all()
    return sorted(NotificationRef(row.id, Channel(row.channel)) for row in rows)


# --- outbox --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finished:
    """A sent, failed or folded notification whose record is not yet published."""

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
    digest_id: str | None
    redrives: int


async def unpublished(conn: AsyncConnection, limit: int) -> list[Finished]:
    """Finished (and folded) notifications whose record has not been published, oldest first."""
    query = (
        sa.select(*(notifications.c[field.name] for field in fields(Finished)))
        .where(
            notifications.c.published.is_(False),
            notifications.c.status.in_([Status.SENT, Status.FAILED, Status.FOLDED]),
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


async def mark_unpublishable(conn: AsyncConnection, reasons: Mapping[str, str]) -> None:
    """Mark notifications whose record cannot be built as published, so the outbox goes on
    without them; ``reasons`` (by id) is appended to their note."""
    table = notifications
    for notification_id, reason in reasons.items():
        note = f"record not published: {reason}"[:2000]
        await conn.execute(
            sa.update(table)
            .where(table.c.id == notification_id)
            .values(
                published=True,
                note=sa.case(
                    (table.c.note.is_(None), sa.literal(note)),
                    else_=table.c.note + sa.literal(f"; {note}"),
                ),
            )
        )
