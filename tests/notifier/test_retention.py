"""The notifier's retention on SQLite and PostgreSQL: what ended longer ago than the retention
goes (notifications with their attempts, escalations with their steps, rate windows, report
mails, dead letters); whatever is pending, unpublished, needed by a pending notification or
recent stays; the running notifier prunes at start."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import ESCALATING, NOW, sla_event, slots
from notifier.harness import (
    SettingsMaker,
    migrated,
    on_sqlite_and_postgresql,
    running_notifier,
)
from slawatch_common.consumer import DeadLetter, keep_dead_letters
from slawatch_common.settings import ServiceSettings
from slawatch_notifier import escalation_store as es
from slawatch_notifier import retention, store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.channels.port import Delivered
from slawatch_notifier.config import parse_config
from slawatch_notifier.planner import Planner
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.templates import Content

PLANNER = Planner(parse_config(ESCALATING), AckLinks(b"k", "http://notifier", timedelta(hours=1)))
KEEP = timedelta(days=396)
PRUNE_AT = NOW + KEEP + timedelta(days=1)
RECENT = PRUNE_AT - timedelta(days=10)


async def breach(
    db: AsyncEngine, ticket: str, at: datetime, *, deliver: bool, publish: bool, ack: bool
) -> None:
    """A breach of ``ticket``'s tiered escalation recorded at ``at``: the on-call SMS planned
    at once, the supervisor's step scheduled; the SMS delivered (and its record published),
    the escalation acknowledged a minute later, as asked."""
    event = sla_event("breach", ticket_id=ticket, escalation="tiered")
    await es.in_transaction(db, partial(es.record_events, events=[event], planner=PLANNER, now=at))
    if deliver:
        async with db.begin() as conn:
            claimed = await store.claim_due(conn, at, slots(10))
            assert [c.id.split(":")[1] for c in claimed] == [ticket]  # its on-call SMS
            attempt = store.Attempt(at, 8, Delivered(f"<{ticket}@sms>"))
            done = [(c, attempt, NextStep(Status.SENT)) for c in claimed]
            await store.finish_attempts(conn, done, at)
            if publish:
                await store.mark_published(conn, [c.id for c in claimed])
    if ack:
        key = (event.data.clock.clock_id, 1)
        minute = at + timedelta(minutes=1)
        await es.in_transaction(db, lambda conn: es.acknowledge(conn, key, "li.wei", minute))


def notification(id_: str, status: Status, at: datetime, **values: Any) -> dict[str, Any]:
    return store.new_row(
        due=at,
        now=at,
        id=id_,
        sla_event_id=id_,
        clock_id=f"jira:{id_}:response",
        stage="breach",
        ticket_source="jira",
        ticket_id=id_,
        recipient="li.wei",
        recipient_name="Li Wei",
        channel="email",
        address="li.wei@example.com",
        content=store.content_json(Content("Core switch down", "Li Wei, OPS-42 breached")),
        status=status,
        **values,
    )


def window(
    recipient: str, channel: str, ends: datetime, digest: str | None = None
) -> dict[str, Any]:
    return {
        "recipient": recipient,
        "channel": channel,
        "started_at": ends - timedelta(minutes=10),
        "ends_at": ends,
        "max": 3,
        "sent": 3,
        "held": 1 if digest else 0,
        "digest_id": digest,
        "updated_at": ends - timedelta(minutes=1),
    }


def report(id_: str, status: Status, at: datetime, *, published: bool) -> dict[str, Any]:
    return {
        "id": id_,
        "event_id": id_,
        "contract": "acme",
        "customer": "ACME Ltd",
        "period": "2026-10",
        "issue": "scheduled",
        "as_of": at,
        "language": "en",
        "recipient": "li.wei",
        "recipient_name": "Li Wei",
        "address": "li.wei@example.com",
        "status": status,
        "attempts": 1,
        "next_attempt_at": at,
        "retry_from": None,
        "last_error": None,
        "interrupted": 0,
        "created_at": at,
        "updated_at": at,
        "sent_at": at if status is Status.SENT else None,
        "published": published,
    }


def letter(offset: int) -> DeadLetter:
    return DeadLetter(
        "t.sla", 0, offset, b"jira:OPS-1", b'{"address": "x"}', "invalid_json", "E", ""
    )


async def fill(db: AsyncEngine) -> None:
    """Rows of every kind: some settled before the cutoff, some pending, some recent."""
    await breach(db, "OLD-ACKED", NOW, deliver=True, publish=True, ack=True)
    await breach(db, "OLD-UNPUBLISHED", NOW, deliver=True, publish=False, ack=True)
    await breach(db, "RECENT", RECENT, deliver=True, publish=True, ack=True)
    await breach(db, "OLD-ACTIVE", NOW, deliver=False, publish=False, ack=False)
    rows = [
        notification("failed-with-fallback", Status.FAILED, NOW, published=True),
        notification("its-fallback", Status.STANDBY, NOW, fallback_of="failed-with-fallback"),
        notification("folded", Status.FOLDED, NOW, published=True, digest_id="digest"),
        notification("digest", Status.PENDING, NOW),
        notification("refused", Status.REFUSED, NOW, published=True),
        notification("cancelled", Status.CANCELLED, NOW),
        notification("failed-recently", Status.FAILED, RECENT, published=True),
    ]
    async with db.begin() as conn:
        await conn.execute(sa.insert(store.notifications), rows)
        await conn.execute(
            sa.insert(store.rate_windows),
            [
                window("li.wei", "sms", NOW),
                window("li.wei", "email", RECENT),
                window("zhao.lei", "email", NOW, digest="digest"),
            ],
        )
        await conn.execute(
            sa.insert(store.reports),
            [
                report("sent", Status.SENT, NOW, published=True),
                report("failed", Status.FAILED, NOW, published=True),
                report("sent-unpublished", Status.SENT, NOW, published=False),
                report("pending", Status.PENDING, NOW, published=False),
                report("sent-recently", Status.SENT, RECENT, published=True),
            ],
        )
        await keep_dead_letters(conn, store.dead_letters, [letter(1)], NOW)
        await keep_dead_letters(conn, store.dead_letters, [letter(2)], RECENT)


async def column(db: AsyncEngine, of: sa.ColumnElement[Any]) -> list[Any]:
    async with db.connect() as conn:
        return sorted((await conn.execute(sa.select(of))).scalars())


async def settled_rows_go_and_pending_or_recent_ones_stay(db: AsyncEngine) -> None:
    await fill(db)
    registry = CollectorRegistry()
    pruner = retention.pruner(ServiceSettings(retention_days=396), registry, lambda: PRUNE_AT)
    notified = await column(db, store.notifications.c.ticket_id)

    done = await pruner.prune(db)

    kept = await column(db, store.notifications.c.ticket_id)
    assert sorted(set(notified) - set(kept)) == ["OLD-ACKED", "cancelled", "refused"]
    assert "OLD-UNPUBLISHED" in kept  # sent, its record not published yet
    assert {"OLD-ACTIVE", "failed-with-fallback", "its-fallback", "folded", "digest"} <= set(kept)
    assert await column(db, store.attempts.c.provider_message_id) == [
        "<OLD-UNPUBLISHED@sms>",
        "<RECENT@sms>",
    ]
    # acknowledged escalations with nothing pending go with their steps; the active one stays
    assert await column(db, store.escalations.c.ticket_id) == ["OLD-ACTIVE", "RECENT"]
    steps = await column(db, store.scheduled_steps.c.clock_id)
    assert steps == ["jira:OLD-ACTIVE:response", "jira:RECENT:response"]
    async with db.connect() as conn:
        windows = sorted(
            tuple(row)
            for row in await conn.execute(
                sa.select(store.rate_windows.c.recipient, store.rate_windows.c.channel)
            )
        )
    assert windows == [("li.wei", "email"), ("zhao.lei", "email")]  # recent; its digest pending
    assert await column(db, store.reports.c.id) == ["pending", "sent-recently", "sent-unpublished"]
    assert await column(db, store.dead_letters.c.offset) == [2]
    assert done.deleted == {
        "notifier_attempts": 1,
        "notifier_notifications": 3,
        "notifier_scheduled_steps": 2,
        "notifier_escalations": 2,
        "notifier_rate_windows": 1,
        "notifier_reports": 2,
        "notifier_dead_letters": 1,
    }
    for table, count in done.deleted.items():
        sample = registry.get_sample_value("slawatch_retention_pruned_total", {"table": table})
        assert sample == count, table
    assert (await pruner.prune(db)).deleted == {}


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(
    [settled_rows_go_and_pending_or_recent_ones_stay]
)


@pytest.mark.kafka
@pytest.mark.smtp
async def test_the_running_notifier_prunes_once_started(make_settings: SettingsMaker) -> None:
    settings = make_settings().model_copy(update={"retention_first_round_s": 0.5})
    long_ago = datetime.now(UTC) - timedelta(days=400)
    async with migrated(settings.database_url) as db:
        async with db.begin() as conn:
            await conn.execute(
                sa.insert(store.notifications),
                [
                    notification("sent-long-ago", Status.SENT, long_ago, published=True),
                    notification("pending-long-ago", Status.PENDING, long_ago),
                ],
            )
            await keep_dead_letters(conn, store.dead_letters, [letter(1)], long_ago)
        async with running_notifier(settings) as client:
            wanted = 'slawatch_retention_pruned_total{table="notifier_notifications"} 1.0'
            deadline = time.monotonic() + 30
            while wanted not in (text := (await client.get("/metrics")).text):
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.1)
            assert 'slawatch_retention_pruned_total{table="notifier_dead_letters"} 1.0' in text
        assert await column(db, store.notifications.c.id) == ["pending-long-ago"]
