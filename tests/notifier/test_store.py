"""The notifier's tables on SQLite and PostgreSQL: migrations, dedup, guarded transitions.

Every scenario runs on a fresh SQLite file and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.factories import CONFIG, sla_event, slots
from notifier.harness import Scenario, migrated, on_sqlite_and_postgresql
from slawatch_common.events import Channel
from slawatch_notifier import store
from slawatch_notifier.channels.port import Delivered, Retryable
from slawatch_notifier.config import parse_config
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.routing import route
from slawatch_notifier.templates import render

NOW = datetime(2026, 11, 26, 4, 15, tzinfo=UTC)


def _drafts(stage: str = "breach", ticket_id: str = "OPS-42") -> list[store.Draft]:
    event = sla_event(stage, ticket_id=ticket_id)
    planned = route(event, parse_config(CONFIG), NOW).notifications
    return [store.Draft(p, render(p)) for p in planned]


async def _status(conn: AsyncConnection, notification_id: str) -> tuple[str, int]:
    table = store.notifications
    row = (
        await conn.execute(
            sa.select(table.c.status, table.c.attempts).where(table.c.id == notification_id)
        )
    ).one()
    return row.status, row.attempts


async def migrations_match_the_model(engine: AsyncEngine) -> None:
    def differences(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={"version_table": store.VERSION_TABLE, "compare_type": True},
        )
        return list(compare_metadata(context, store.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def inserting_twice_stores_once(engine: AsyncEngine) -> None:
    drafts = _drafts()
    async with engine.begin() as conn:
        first = await store.insert_new(conn, drafts + drafts, NOW)
    async with engine.begin() as conn:
        second = await store.insert_new(conn, drafts, NOW + timedelta(minutes=1))
        counting = sa.select(sa.func.count()).select_from(store.notifications)
        count = (await conn.execute(counting)).scalar()
    assert first == {d.planned.notification_id for d in drafts}
    assert len(first) == 2
    assert second == set()
    assert count == 2


async def claim_send_retry_and_finish(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store.insert_new(conn, _drafts(), NOW)
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW, slots(10))
    assert [c.attempts for c in claimed] == [1, 1]
    async with engine.begin() as conn:
        assert await store.claim_due(conn, NOW, slots(10)) == []  # sending rows are not due
    sms, mail = sorted(claimed, key=lambda c: c.channel != "sms")
    retry_at = NOW + timedelta(seconds=30)
    async with engine.begin() as conn:
        attempt = store.Attempt(NOW, 12, Retryable("HTTP 503"))
        step = NextStep(Status.PENDING, retry_at, "HTTP 503")
        assert await store.finish_attempts(conn, [(sms, attempt, step)], NOW) == {sms.id}
        assert not await store.finish_attempts(conn, [(sms, attempt, step)], NOW)  # stale
        sent = store.Attempt(NOW, 8, Delivered("<id@x>"))
        assert await store.finish_attempts(conn, [(mail, sent, NextStep(Status.SENT))], NOW)
        assert not await store.finish_attempts(conn, [(mail, sent, NextStep(Status.SENT))], NOW)
        log = sa.select(
            store.attempts.c.notification_id,
            store.attempts.c.number,
            store.attempts.c.started_at,
            store.attempts.c.outcome,
            store.attempts.c.reason,
            store.attempts.c.latency_ms,
            store.attempts.c.provider_message_id,
        ).order_by(store.attempts.c.latency_ms)
        assert [tuple(row) for row in await conn.execute(log)] == [
            (mail.id, 1, NOW, "delivered", None, 8, "<id@x>"),
            (sms.id, 1, NOW, "retryable", "HTTP 503", 12, None),
        ]
    async with engine.connect() as conn:
        due = await store.next_due_by_channel(conn, [Channel.SMS, Channel.EMAIL])
        assert due == {Channel.SMS: retry_at}  # the mail was sent
        assert await _status(conn, sms.id) == ("pending", 1)
        assert await _status(conn, mail.id) == ("sent", 1)
        assert [f.id for f in await store.unpublished(conn, 10)] == [mail.id]
    async with engine.begin() as conn:
        assert await store.claim_due(conn, NOW + timedelta(seconds=29), slots(10)) == []
        (again,) = await store.claim_due(conn, retry_at, slots(10))
    assert (again.id, again.attempts) == (sms.id, 2)


async def a_batch_of_delivered_and_failed_attempts_logs_every_attempt(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store.insert_new(conn, _drafts(), NOW)
        sms, mail = sorted(await store.claim_due(conn, NOW, slots(10)), key=lambda c: c.channel)[
            ::-1
        ]
        retry_at = NOW + timedelta(seconds=5)
        recorded = await store.finish_attempts(
            conn,
            [
                (mail, store.Attempt(NOW, 8, Delivered("<id@x>")), NextStep(Status.SENT)),
                (
                    sms,
                    store.Attempt(NOW, 9, Retryable("HTTP 503")),
                    NextStep(Status.PENDING, retry_at, "HTTP 503", failing_since=NOW),
                ),
            ],
            NOW,
        )
        logged = (
            await conn.execute(
                sa.select(store.attempts.c.notification_id, store.attempts.c.outcome)
            )
        ).all()
        failing_since = (
            await conn.execute(
                sa.select(store.notifications.c.failing_since).where(
                    store.notifications.c.id == sms.id
                )
            )
        ).scalar_one()
    assert recorded == {sms.id, mail.id}
    assert sorted(tuple(row) for row in logged) == sorted(
        [(mail.id, "delivered"), (sms.id, "retryable")]
    )
    assert failing_since == NOW


async def the_first_claim_begins_the_retry_budget_unless_it_is_given_back(
    engine: AsyncEngine,
) -> None:
    later = NOW + timedelta(minutes=1)

    async def retry_from(notification_id: str) -> datetime | None:
        async with engine.connect() as conn:
            table = store.notifications
            query = sa.select(table.c.retry_from).where(table.c.id == notification_id)
            moment: datetime | None = (await conn.execute(query)).scalar_one()
            return moment

    async with engine.begin() as conn:
        await store.insert_new(conn, _drafts("warning:75"), NOW)
        (claimed,) = await store.claim_due(conn, NOW, slots(10))
    assert claimed.retry_from == NOW
    async with engine.begin() as conn:  # a stop gives it back unsent
        await store.release(conn, [claimed], NOW)
    assert await retry_from(claimed.id) is None
    async with engine.begin() as conn:
        (claimed,) = await store.claim_due(conn, later, slots(10))
        step = NextStep(Status.PENDING, later, "HTTP 503", failing_since=later)
        attempt = store.Attempt(later, 3, Retryable("HTTP 503"))
        await store.finish_attempts(conn, [(claimed, attempt, step)], later)
        (again,) = await store.claim_due(conn, later + timedelta(minutes=1), slots(10))
    assert (again.attempts, again.retry_from, again.failing_since) == (2, later, later)
    async with engine.begin() as conn:  # given back on a retry: the budget still counts
        await store.release(conn, [again], later + timedelta(minutes=2))
    assert await retry_from(claimed.id) == later


async def interrupted_sends_are_recovered(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store.insert_new(conn, _drafts("warning:75"), NOW)
        (claimed,) = await store.claim_due(conn, NOW, slots(10))
    later = NOW + timedelta(minutes=5)
    async with engine.begin() as conn:
        (found,) = await store.recover_interrupted(conn, later, max_interrupted=3)
    assert (found.id, found.times, found.failed) == (claimed.id, 1, False)
    async with engine.begin() as conn:
        (resent,) = await store.claim_due(conn, later, slots(10))
        outcomes = (
            await conn.execute(sa.select(store.attempts.c.number, store.attempts.c.outcome))
        ).all()
    assert (resent.id, resent.attempts) == (claimed.id, 2)
    assert resent.outbound == claimed.outbound
    assert [tuple(row) for row in outcomes] == [(1, "interrupted")]


async def published_records_are_not_listed_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store.insert_new(conn, _drafts("warning:75"), NOW)
        (claimed,) = await store.claim_due(conn, NOW, slots(10))
        attempt = store.Attempt(NOW, 5, Delivered(None))
        await store.finish_attempts(conn, [(claimed, attempt, NextStep(Status.SENT))], NOW)
    async with engine.begin() as conn:
        (finished,) = await store.unpublished(conn, 10)
        await store.mark_published(conn, [finished.id])
        assert await store.unpublished(conn, 10) == []
    assert (finished.status, finished.attempts, finished.updated_at) == (Status.SENT, 1, NOW)


SCENARIOS: list[Scenario] = [
    migrations_match_the_model,
    inserting_twice_stores_once,
    claim_send_retry_and_finish,
    a_batch_of_delivered_and_failed_attempts_logs_every_attempt,
    the_first_claim_begins_the_retry_budget_unless_it_is_given_back,
    interrupted_sends_are_recovered,
    published_records_are_not_listed_again,
]


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(SCENARIOS)


@pytest.mark.postgres
async def test_concurrent_claims_never_share_a_notification(pg_url: str) -> None:
    async with migrated(pg_url) as engine:
        async with engine.begin() as conn:
            for n in range(10):
                await store.insert_new(conn, _drafts("breach", ticket_id=f"OPS-{n}"), NOW)
        gate = asyncio.Event()

        async def claimer() -> list[str]:
            async with engine.begin() as conn:
                claimed = await store.claim_due(conn, NOW, slots(12))
                await gate.wait()  # hold the locks until both have claimed
                return [c.id for c in claimed]

        first = asyncio.create_task(claimer())
        second = asyncio.create_task(claimer())
        await asyncio.sleep(0.5)
        gate.set()
        a, b = await asyncio.gather(first, second)
    assert len(a) + len(b) == 20
    assert not set(a) & set(b)
