"""Folding: claimed notifications over their recipient's rate limit become one digest.

Runs inside the dispatcher's claim transaction, right after ``store.claim_due``
marked the notifications ``sending`` (``admit``). First the cap on SMS to a
number only an event gave (``rate_limits.cap_for``): for each such number, in
key order, its window row (``rate_limits.cap_window``) is locked as below and
each first attempt counted in it; one over the cap becomes ``refused``, its
attempt given back, the reason in ``last_error`` and ``note``, and its standby
fallback takes over (``fallback.take_over``). Then, for each recipient and
channel with a limit (``rate_limits.limit_for``), in key order:

1. lock the recipient's window row in ``notifier_rate_windows`` (created if
   missing; ``FOR UPDATE`` on PostgreSQL; on SQLite the claim's update already
   holds the write lock), so two claimers decide one after the other;
2. decide each first attempt with ``rate_limits.admit``: *send*, counted in
   the window; or *fold*: the digest of the window is created if this is its
   first fold (pending, due at the window's end, id
   ``digest:<recipient>:<channel>:<window start>``) and the notification
   becomes ``folded`` with the digest's id;
3. render the digest again from everything folded into it so far
   (``digest.py``) and write the window back.

A digest already on its way out (claimed by a claimer whose clock passed the
window's end) is not waited for (``SKIP LOCKED``): its window is treated as
ended and the notification decided again in the next one. Retries, digests
and notifications without a limit pass unchanged. Never commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.events import Channel
from slawatch_notifier import fallback, rate_limits
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.addresses import mask
from slawatch_notifier.config import RateLimit
from slawatch_notifier.digest import Held, Limit, render_digest
from slawatch_notifier.messages import language
from slawatch_notifier.rate_limits import DIGEST, Fold, Send, Window
from slawatch_notifier.retry import Status
from slawatch_notifier.store import (
    Claimed,
    NotificationRef,
    content_json,
    new_row,
    notifications,
    rate_windows,
)

Limits = Callable[[str, Channel], RateLimit | None]
"""The limit of a recipient on a channel, if any (``rate_limits.limit_for`` bound to a config)."""
Caps = Callable[[str, Channel, str], RateLimit | None]
"""The cap on sends to an address (recipient, channel, address), if any
(``rate_limits.cap_for`` bound to a config)."""
Key = tuple[str, Channel]


def unlimited(recipient: str, channel: Channel) -> RateLimit | None:
    """``Limits`` when no recipient has a limit on any channel."""
    return None


def uncapped(recipient: str, channel: Channel, address: str) -> RateLimit | None:
    """``Caps`` when no address has a cap."""
    return None


@dataclass(frozen=True, slots=True)
class Folded:
    """A claimed notification that went into ``digest_id`` instead of being sent."""

    claimed: Claimed
    digest_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A claimed notification over the cap of its number: ``refused``, never sent; the
    standby fallbacks that took over for it."""

    claimed: Claimed
    reason: str
    promoted: tuple[NotificationRef, ...] = ()


@dataclass
class Admission:
    """The claimed notifications to send now, those folded into a digest, those refused."""

    send: list[Claimed] = field(default_factory=list)
    folded: list[Folded] = field(default_factory=list)
    digests_opened: list[tuple[str, Channel]] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


async def admit(
    conn: AsyncConnection,
    claimed: Sequence[Claimed],
    limits: Limits,
    now: datetime,
    links: AckLinks | None = None,
    *,
    caps: Caps = uncapped,
) -> Admission:
    """Split ``claimed`` (all ``sending``) into what to send, what was folded and what was
    refused.

    ``links``: a digest carries the link that acknowledges all it holds; ``caps``: the cap
    of a number only an event gave."""
    admission = Admission()
    refused = await _apply_caps(conn, claimed, caps, now, admission)
    limited: dict[Key, list[Claimed]] = {}
    for item in claimed:
        if item.id in refused:
            continue
        first = item.attempts == 1 and not item.digest
        if first and limits(item.recipient, item.channel) is not None:
            limited.setdefault((item.recipient, item.channel), []).append(item)
        else:
            admission.send.append(item)
    for key in sorted(limited):
        limit = limits(*key)
        assert limit is not None
        await _admit_recipient(conn, key, limited[key], limit, now, admission, links)
    return admission


async def _admit_recipient(
    conn: AsyncConnection,
    key: Key,
    items: list[Claimed],
    limit: RateLimit,
    now: datetime,
    admission: Admission,
    links: AckLinks | None,
) -> None:
    window: Window | None = await _lock_window(conn, key, now)
    digests: set[str] = set()
    for item in items:
        decision = await _decide(conn, item, window, limit, now)
        window = decision.window
        if isinstance(decision, Send):
            admission.send.append(item)
            continue
        await _fold(conn, item, decision, limit, now)
        admission.folded.append(Folded(item, decision.digest_id))
        if decision.opened:
            admission.digests_opened.append(key)
        digests.add(decision.digest_id)
    assert window is not None
    for digest in sorted(digests):
        ack_url = links.digest_url(digest, key[0], now) if links is not None else None
        name = items[0].outbound.recipient_name
        await _render(conn, digest, key[1], window, name, now, ack_url)
    await _save_window(conn, key, window, now)


async def _decide(
    conn: AsyncConnection, item: Claimed, window: Window | None, limit: RateLimit, now: datetime
) -> Send | Fold:
    """``rate_limits.admit``, with the digest of a fold made sure of (created, still pending)."""
    key = (item.recipient, item.channel)
    decision = rate_limits.admit(window, limit, *key, now)
    if isinstance(decision, Send) or await _open_digest(conn, item, decision, now):
        return decision
    # The digest left already: its window is over, decide again in the next one.
    decision = rate_limits.admit(rate_limits.closed(decision.window, now), limit, *key, now)
    if isinstance(decision, Send) or await _open_digest(conn, item, decision, now):
        return decision
    # Cannot happen short of two digests leaving within one instant; never hold it back.
    return Send(replace(decision.window, sent=decision.window.sent + 1))


async def _apply_caps(
    conn: AsyncConnection,
    claimed: Sequence[Claimed],
    caps: Caps,
    now: datetime,
    admission: Admission,
) -> set[str]:
    """Count each first attempt with a cap in its number's window, number by number in key
    order; refuse those over it (in ``admission``). The ids refused."""
    capped: dict[tuple[str, str], list[tuple[Claimed, RateLimit]]] = {}
    for item in claimed:
        if item.attempts != 1 or item.digest:
            continue
        cap = caps(item.recipient, item.channel, item.outbound.address)
        if cap is not None:
            capped.setdefault(rate_limits.cap_window(item.outbound.address), []).append((item, cap))
    refused: set[str] = set()
    for key in sorted(capped):
        window = await _lock_window(conn, key, now)
        for item, cap in capped[key]:
            counted = rate_limits.within_cap(window, cap, now)
            if counted is not None:
                window = counted
                continue
            assert window is not None  # a window without room has counted someone
            admission.refused.append(await _refuse(conn, item, cap, window, now))
            refused.add(item.id)
        if window is not None:
            await _save_window(conn, key, window, now)
    return refused


async def _refuse(
    conn: AsyncConnection, item: Claimed, cap: RateLimit, window: Window, now: datetime
) -> Refused:
    """``item`` (claimed by this transaction) becomes ``refused``; its attempt is given back
    and its standby fallbacks take over."""
    reason = (
        f"refused: {mask(item.channel, item.outbound.address)}, a number only the event "
        f"gave, had its {cap.max} SMS per {cap.per}s until {window.ends_at.isoformat()} "
        "(notifier.event_addresses.sms_per_number)"
    )
    await conn.execute(
        sa.update(notifications)
        .where(notifications.c.id == item.id, notifications.c.status == Status.SENDING)
        .values(
            status=Status.REFUSED,
            attempts=notifications.c.attempts - 1,
            last_error=reason,
            note=reason,
            published=True,
            updated_at=now,
        )
    )
    note = f"fallback: {item.id} was refused on {item.channel}: {reason}"
    return Refused(item, reason, await fallback.take_over(conn, item, note, now))


async def _lock_window(conn: AsyncConnection, key: tuple[str, str], now: datetime) -> Window | None:
    """The latest window of ``key`` (a recipient and channel, or a number's cap), locked;
    None if there is none (or only a placeholder)."""
    recipient, channel = key
    placeholder = {
        "recipient": recipient,
        "channel": str(channel),
        "started_at": now,
        "ends_at": now,
        "max": 0,
        "sent": 0,
        "held": 0,
        "digest_id": None,
        "updated_at": now,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(rate_windows).values(placeholder).on_conflict_do_nothing())
    query = (
        sa.select(rate_windows)
        .where(rate_windows.c.recipient == recipient, rate_windows.c.channel == str(channel))
        .with_for_update()
    )
    row = (await conn.execute(query)).mappings().one()
    if row["max"] == 0:
        return None
    return Window(
        row["started_at"], row["ends_at"], row["max"], row["sent"], row["held"], row["digest_id"]
    )


async def _save_window(
    conn: AsyncConnection, key: tuple[str, str], window: Window, now: datetime
) -> None:
    recipient, channel = key
    await conn.execute(
        sa.update(rate_windows)
        .where(rate_windows.c.recipient == recipient, rate_windows.c.channel == str(channel))
        .values(
            started_at=window.started_at,
            ends_at=window.ends_at,
            max=window.max,
            sent=window.sent,
            held=window.held,
            digest_id=window.digest_id,
            updated_at=now,
        )
    )


async def _open_digest(conn: AsyncConnection, item: Claimed, fold: Fold, now: datetime) -> bool:
    """Make sure the window's digest exists and is still pending, locked; False if it left."""
    if fold.opened:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        row = _digest_row(item, fold.digest_id, fold.window.ends_at, now)
        await conn.execute(insert(notifications).values(row).on_conflict_do_nothing())
    pending = (
        sa.select(notifications.c.id)
        .where(notifications.c.id == fold.digest_id, notifications.c.status == Status.PENDING)
        .with_for_update(skip_locked=True)
    )
    return (await conn.execute(pending)).first() is not None


def _digest_row(item: Claimed, digest_id: str, due: datetime, now: datetime) -> dict[str, Any]:
    """A pending digest to ``item``'s recipient on its channel, due at the window's end.

    Its ticket fields name the digest (``digest`` / ``<recipient>:<channel>``)
    rather than one of the tickets it lists; the content is rendered as
    notifications are folded into it.
    """
    outbound = item.outbound
    return new_row(
        id=digest_id,
        sla_event_id=digest_id,
        clock_id=digest_id,
        stage=DIGEST,
        ticket_source=DIGEST,
        ticket_id=f"{item.recipient}:{item.channel}",
        recipient=item.recipient,
        recipient_name=outbound.recipient_name,
        channel=str(item.channel),
        address=outbound.address,
        content=content_json(outbound.content),
        due=due,
        now=now,
    )


async def _fold(
    conn: AsyncConnection, item: Claimed, fold: Fold, limit: RateLimit, now: datetime
) -> None:
    """``item`` (claimed by this transaction) becomes ``folded``; its attempt is given back."""
    note = f"folded into {fold.digest_id}: limit of {limit.max} per {limit.per}s on {item.channel}"
    await conn.execute(
        sa.update(notifications)
        .where(notifications.c.id == item.id, notifications.c.status == Status.SENDING)
        .values(
            status=Status.FOLDED,
            attempts=notifications.c.attempts - 1,
            digest_id=fold.digest_id,
            note=note,
            updated_at=now,
        )
    )


async def _render(
    conn: AsyncConnection,
    digest_id: str,
    channel: Channel,
    window: Window,
    recipient_name: str | None,
    now: datetime,
    ack_url: str | None,
) -> None:
    """Write the digest's content and note from every notification folded into it.

    It speaks the language of the latest of them (all are to one recipient;
    the latest carries their current locale)."""
    table = notifications
    rows = (
        await conn.execute(
            sa.select(table.c.ticket_source, table.c.ticket_id, table.c.stage)
            .add_columns(table.c.deadline, table.c.priority, table.c.locale)
            .where(table.c.digest_id == digest_id)
            .order_by(table.c.created_at, table.c.id)
        )
    ).all()
    held = [
        Held(f"{row.ticket_source}:{row.ticket_id}", row.stage, row.deadline, row.priority)
        for row in rows
    ]
    locale = next((row.locale for row in reversed(rows) if row.locale), None)
    per = round((window.ends_at - window.started_at).total_seconds())
    limit = Limit(window.max, per)
    content = render_digest(held, channel, limit, recipient_name, language(locale), ack_url)
    await conn.execute(
        sa.update(table)
        .where(table.c.id == digest_id, table.c.status == Status.PENDING)
        .values(
            content=content_json(content),
            locale=locale,
            note=f"digest of {len(held)} notification(s) over the limit",
            updated_at=now,
        )
    )
