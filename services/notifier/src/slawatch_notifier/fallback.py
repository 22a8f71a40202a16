"""Fallback: while or after a notification fails, the standby on its target's next channel
takes over.

A step that names several channels (``via: [sms, email]``) plans them all at
once; every channel after a recipient's first is a ``standby`` row whose
``fallback_of`` is the notification before it (``routing.py``). In the
dispatcher's transaction that records an attempt of that one:

- it has kept failing for ``fallback_after`` and is retried (``release``): each
  of its standbys becomes ``pending``, due now, its ``note`` naming what keeps
  failing on which channel since when and why, while it keeps retrying;
- it ended ``failed`` (permanent, a send that raised, the retry budget spent,
  or interrupted too often — the last one at start, ``take_over``): each of its
  standbys becomes ``pending`` likewise, the note naming why it failed;
- it ended ``sent``: each of its fallbacks not yet sent (``standby``, or
  ``pending`` after an early release), and theirs behind them, is cancelled as
  not needed; a fallback already sent stays so (then both arrived). One being
  sent at that moment completes; if that attempt fails and would be retried,
  it is cancelled instead (``stand_down_needless``).

A digest stands for the notifications folded into it: its end settles their
standbys. Every change is guarded on the state it expects, so an ack or a stop
that cancelled a standby first wins, and settling twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.db import UtcDateTime
from slawatch_common.events import Channel
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.store import Claimed, NotificationRef, notifications

NOT_YET_SENT = (Status.STANDBY, Status.PENDING)
"""A fallback in these states is cancelled when the one before it is delivered."""


class Predecessor(Protocol):
    """A notification whose fallbacks may take over: ``store.Claimed``, ``store.Interrupted``."""

    @property
    def id(self) -> str: ...

    @property
    def channel(self) -> Channel: ...

    @property
    def digest(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """What the end of a notification did to its fallbacks: promoted to pending, or cancelled."""

    promoted: tuple[NotificationRef, ...] = ()
    cancelled: tuple[NotificationRef, ...] = ()


async def settle(conn: AsyncConnection, claimed: Claimed, step: NextStep, now: datetime) -> Settled:
    """After ``claimed`` ended ``step`` (final): its standby fallbacks take over or stand
    down (see the module docstring). Runs in the caller's transaction; idempotent."""
    if step.status is Status.FAILED:
        note = f"fallback: {claimed.id} failed on {claimed.channel}: {step.error}"
        return Settled(promoted=await take_over(conn, claimed, note, now))
    predecessors = await _predecessors(conn, claimed)
    cancelled: list[NotificationRef] = []
    note = f"not needed: {claimed.id} was delivered on {claimed.channel}"
    while predecessors:
        stood_down = await _standby(conn, predecessors, Status.CANCELLED, note, now)
        cancelled += stood_down
        predecessors = [row.id for row in stood_down]
    return Settled(cancelled=tuple(cancelled))


async def release(
    conn: AsyncConnection, claimed: Claimed, step: NextStep, now: datetime
) -> tuple[NotificationRef, ...]:
    """``claimed`` keeps failing (``step.release_fallback``) and is retried: its standby
    fallbacks become pending, due now, while it retries; which did. Idempotent."""
    since = step.failing_since.isoformat() if step.failing_since else now.isoformat()
    note = (
        f"fallback: {claimed.id} has been failing on {claimed.channel} since {since} "
        f"and is still retried: {step.error}"
    )
    return await take_over(conn, claimed, note, now)


async def take_over(
    conn: AsyncConnection, ended: Predecessor, note: str, now: datetime
) -> tuple[NotificationRef, ...]:
    """The standby fallbacks of ``ended`` (of the notifications folded into it, for a
    digest) become pending, due now, with ``note``; which did."""
    predecessors = await _predecessors(conn, ended)
    return tuple(await _standby(conn, predecessors, Status.PENDING, note, now))


async def stand_down_needless(
    conn: AsyncConnection, retried: Sequence[str], now: datetime
) -> list[NotificationRef]:
    """Of the notifications just rescheduled for a retry (``retried``), the fallbacks whose
    predecessor was delivered meanwhile — they were being sent when it was — are
    cancelled as not needed, and the fallbacks behind them; which were."""
    if not retried:
        return []
    table, before = notifications, notifications.alias("before")
    delivered = sa.exists().where(
        before.c.id == table.c.fallback_of, before.c.status == Status.SENT
    )
    statement = (
        sa.update(table)
        .where(
            table.c.id.in_(list(retried)),
            table.c.status == Status.PENDING,
            table.c.fallback_of.is_not(None),
            delivered,
        )
        .values(
            status=Status.CANCELLED,
            note=sa.literal("not needed: ")
            + table.c.fallback_of
            + sa.literal(" was delivered while this was being sent"),
            updated_at=now,
        )
        .returning(table.c.id, table.c.channel)
    )
    stood_down = [
        NotificationRef(row.id, Channel(row.channel)) for row in await conn.execute(statement)
    ]
    cancelled = list(stood_down)
    while stood_down:
        note = "not needed: the notification it stands in for was delivered"
        stood_down = await _standby(
            conn, [ref.id for ref in stood_down], Status.CANCELLED, note, now
        )
        cancelled += stood_down
    return sorted(cancelled)


async def _predecessors(conn: AsyncConnection, ended: Predecessor) -> list[str]:
    """``ended`` and, for a digest, the notifications folded into it."""
    predecessors = [ended.id]
    if ended.digest:
        table = notifications
        folded = sa.select(table.c.id).where(table.c.digest_id == ended.id)
        predecessors += (await conn.execute(folded)).scalars()
    return predecessors


async def settle_many(
    conn: AsyncConnection, ended: Sequence[tuple[Claimed, NextStep]], now: datetime
) -> dict[str, Settled]:
    """``settle`` for many notifications at once (each final); by notification id.

    The delivered ones, the common case, stand their fallbacks down level by
    level with one statement per level for all of them.
    """
    settled: dict[str, Settled] = {}
    origin: dict[str, str] = {}
    for claimed, step in ended:
        if step.status is Status.SENT and not claimed.digest:
            origin[claimed.id] = claimed.id
        else:
            settled[claimed.id] = await settle(conn, claimed, step, now)
    cancelled: dict[str, list[NotificationRef]] = {}
    while origin:
        values = {"predecessors": list(origin), "now": now}
        rows = (await conn.execute(_STAND_DOWN, values)).all()
        for row in rows:
            first = origin[row.fallback_of]
            cancelled.setdefault(first, []).append(NotificationRef(row.id, Channel(row.channel)))
        origin = {row.id: origin[row.fallback_of] for row in rows}
    for first, refs in cancelled.items():
        settled[first] = Settled(cancelled=tuple(sorted(refs)))
    return settled


_STAND_DOWN = (
    sa.update(notifications)
    .where(
        notifications.c.fallback_of.in_(sa.bindparam("predecessors", expanding=True)),
        notifications.c.status.in_(NOT_YET_SENT),
    )
    .values(
        status=Status.CANCELLED,
        note=sa.literal("not needed: ")
        + notifications.c.fallback_of
        + sa.literal(" was delivered or stood down"),
        updated_at=sa.bindparam("now", type_=UtcDateTime),
    )
    .returning(notifications.c.id, notifications.c.channel, notifications.c.fallback_of)
)
"""The fallbacks not yet sent of delivered (or stood down) ``predecessors`` stand down;
built once."""


async def _standby(
    conn: AsyncConnection, predecessors: Sequence[str], status: Status, note: str, now: datetime
) -> list[NotificationRef]:
    """Move the fallbacks of ``predecessors`` to ``status``: the standby ones to pending, the
    ones not yet sent to cancelled; which they were."""
    values: dict[str, Any] = {"status": status, "note": note[:4000], "updated_at": now}
    expected: tuple[Status, ...] = NOT_YET_SENT
    if status is Status.PENDING:
        values.update(next_attempt_at=now, due_at=now)
        expected = (Status.STANDBY,)
    statement = (
        sa.update(notifications)
        .where(
            notifications.c.fallback_of.in_(list(predecessors)),
            notifications.c.status.in_(expected),
        )
        .values(values)
        .returning(notifications.c.id, notifications.c.channel)
    )
    return sorted(
        NotificationRef(row.id, Channel(row.channel)) for row in await conn.execute(statement)
    )
