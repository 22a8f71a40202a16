"""Fallback: when a notification ends, the standby on its target's next channel takes over.

A step that names several channels (``via: [sms, email]``) plans them all at
once; every channel after a recipient's first is a ``standby`` row whose
``fallback_of`` is the notification before it (``routing.py``). When that one
ends — in the dispatcher's transaction that records its last attempt:

- ``failed`` (permanent, or the attempts used up; its reason is in its
  ``last_error``): each of its standbys becomes ``pending``, due now, its
  ``note`` naming what failed on which channel and why;
- ``sent``: each of its standbys, and the standbys behind those, is cancelled
  as not needed.

A digest stands for the notifications folded into it: its end settles their
standbys. Every change is guarded on ``standby``, so an ack or a stop that
cancelled a standby first wins, and settling twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.db import UtcDateTime
from slawatch_common.events import Channel
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.store import Claimed, NotificationRef, notifications


@dataclass(frozen=True, slots=True)
class Settled:
    """What the end of a notification did to its fallbacks: promoted to pending, or cancelled."""

    promoted: tuple[NotificationRef, ...] = ()
    cancelled: tuple[NotificationRef, ...] = ()


async def settle(conn: AsyncConnection, claimed: Claimed, step: NextStep, now: datetime) -> Settled:
    """After ``claimed`` ended ``step`` (final): its standby fallbacks take over or stand
    down (see the module docstring). Runs in the caller's transaction; idempotent."""
    table = notifications
    predecessors = [claimed.id]
    if claimed.digest:
        folded = sa.select(table.c.id).where(table.c.digest_id == claimed.id)
        predecessors += (await conn.execute(folded)).scalars()
    if step.status is Status.FAILED:
        note = f"fallback: {claimed.id} failed on {claimed.channel}: {step.error}"
        promoted = await _standby(conn, predecessors, Status.PENDING, note, now)
        return Settled(promoted=tuple(promoted))
    cancelled: list[NotificationRef] = []
    note = f"not needed: {claimed.id} was delivered on {claimed.channel}"
    while predecessors:
        stood_down = await _standby(conn, predecessors, Status.CANCELLED, note, now)
        cancelled += stood_down
        predecessors = [row.id for row in stood_down]
    return Settled(cancelled=tuple(cancelled))


async def settle_many(
    conn: AsyncConnection, ended: Sequence[tuple[Claimed, NextStep]], now: datetime
) -> dict[str, Settled]:
    """``settle`` for many notifications at once (each final); by notification id.

    The delivered ones, the common case, stand their standbys down level by
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
        notifications.c.status == Status.STANDBY,
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
"""The standby fallbacks of delivered (or stood down) ``predecessors`` stand down; built once."""


async def _standby(
    conn: AsyncConnection, predecessors: Sequence[str], status: Status, note: str, now: datetime
) -> list[NotificationRef]:
    """Move the standby fallbacks of ``predecessors`` to ``status``; which they were."""
    values: dict[str, Any] = {"status": status, "note": note[:4000], "updated_at": now}
    if status is Status.PENDING:
        values.update(next_attempt_at=now, due_at=now)
    statement = (
        sa.update(notifications)
        .where(
            notifications.c.fallback_of.in_(list(predecessors)),
            notifications.c.status == Status.STANDBY,
        )
        .values(values)
        .returning(notifications.c.id, notifications.c.channel)
    )
    return sorted(
        NotificationRef(row.id, Channel(row.channel)) for row in await conn.execute(statement)
    )
