"""Long identifiers: every id the notifier derives fits where it goes, and the outbox goes on.

A ticket id of 200 characters (the contract's most) makes the clock id, the
dedup keys and the record's event id longer than 200: each is bounded
(``bounded_id``), so its record validates and is published. A record that
still cannot be built is skipped, marked and counted, and the rest are published.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import CONFIG, HASHER, NOW, sla_event, slots
from notifier.harness import migrated, read_records
from slawatch_common.events import IDENTIFIER_MAX, Channel, SlaEvent, bounded_id
from slawatch_common.kafka import start_producer
from slawatch_common.topics import Topics
from slawatch_notifier import escalation, outbox, store
from slawatch_notifier.channels.port import Delivered, Permanent
from slawatch_notifier.config import parse_config
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.outbox import Outbox
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.routing import route
from slawatch_notifier.templates import render

LONG_TICKET = "T" * IDENTIFIER_MAX


def _long_breach() -> SlaEvent:
    """A breach of a ticket whose id has 200 characters (its clock and event ids bounded)."""
    document = sla_event("breach").model_dump(mode="json")
    document["data"]["ticket"]["id"] = LONG_TICKET
    document["data"]["clock"]["clock_id"] = bounded_id(f"jira:{LONG_TICKET}:response")
    document["event_id"] = bounded_id(f"jira:{LONG_TICKET}:response:sla.breach:breach:1")
    return SlaEvent.model_validate(document)


def test_keys_that_fit_their_column_are_themselves_and_longer_ones_are_bounded() -> None:
    assert escalation.step_key("jira:OPS-42:response", "breach", 1, cycle=2, repeat=3) == (
        "jira:OPS-42:response#2:breach:1.r3"
    )
    assert escalation.notification_id("jira:OPS-42:response", "breach", "oncall", "sms") == (
        "jira:OPS-42:response:breach:0:oncall:sms"
    )
    clock = "c" * 700
    key = escalation.step_key(clock, "breach", 1)
    assert len(key) == escalation.STEP_KEY_MAX
    assert key == escalation.step_key(clock, "breach", 1)  # deterministic: dedup holds
    assert key != escalation.step_key(clock, "breach", 2)
    nid = escalation.notification_id(clock, "breach", "r" * 500, "email")
    assert len(nid) == escalation.NOTIFICATION_ID_MAX
    assert nid != escalation.notification_id(clock, "breach", "r" * 500, "sms")


def test_the_bounds_are_the_lengths_of_the_columns_the_keys_are_stored_in() -> None:
    def length(column: sa.Column[str]) -> int | None:
        assert isinstance(column.type, sa.String)
        return column.type.length

    assert length(store.scheduled_steps.c.id) == escalation.STEP_KEY_MAX
    for column in (
        store.notifications.c.id,
        store.notifications.c.fallback_of,
        store.attempts.c.notification_id,
    ):
        assert length(column) == escalation.NOTIFICATION_ID_MAX


def test_a_200_character_ticket_id_gives_a_valid_record() -> None:
    event = _long_breach()
    planned = route(event, parse_config(CONFIG), NOW).notifications
    # longer than the record's 200 characters, yet whole in the table's column
    assert sorted(p.notification_id for p in planned) == [
        f"{event.data.clock.clock_id}:breach:1:oncall:sms",
        f"{event.data.clock.clock_id}:breach:1:supervisor:email",
    ]
    finished = store.Finished(
        id=planned[0].notification_id,
        sla_event_id=planned[0].event.event_id,
        clock_id=planned[0].event.data.clock.clock_id,
        stage="breach",
        ticket_source="jira",
        ticket_id=LONG_TICKET,
        recipient="oncall",
        channel=Channel.SMS,
        address="+8613800000002",
        status=Status.FAILED,
        attempts=3,
        last_error="HTTP 400",
        updated_at=NOW,
        digest_id=None,
        redrives=2,
    )
    record = outbox.record_for(finished, HASHER)
    assert len(record.event_id) == IDENTIFIER_MAX
    assert record.event_id == bounded_id(f"notification:{finished.id}:failed:r2")
    assert record.data.notification_id == bounded_id(finished.id)
    assert record.key == f"jira:{LONG_TICKET}"
    assert type(record).model_validate_json(record.model_dump_json()) == record


async def _publish_long_and_broken(engine: AsyncEngine, bootstrap: str, topics: Topics) -> None:
    drafts = [
        store.Draft(p, render(p))
        for p in route(_long_breach(), parse_config(CONFIG), NOW).notifications
    ]
    now = datetime.now(UTC)
    broken = store.new_row(
        id="jira:OPS-9:response:breach:0:nobody:email",
        sla_event_id="e-9",
        clock_id="jira:OPS-9:response",
        stage="breach",
        ticket_source="jira",
        ticket_id="OPS-9",
        recipient="nobody",
        channel="email",
        address="",  # the record's contract wants an address
        content={"subject": "s", "text": "t", "html": None},
        status=Status.SENT,
        attempts=1,
        due=now,
        now=now,
    )
    async with engine.begin() as conn:
        await store.insert_new(conn, drafts, now)
        await conn.execute(sa.insert(store.notifications), [broken])
        mail, sms = sorted(await store.claim_due(conn, now, slots(5)), key=lambda c: c.channel)
        await store.finish_attempts(
            conn,
            [
                (sms, store.Attempt(now, 3, Delivered("p-1")), NextStep(Status.SENT)),
                (
                    mail,
                    store.Attempt(now, 3, Permanent("550 no such user")),
                    NextStep(Status.FAILED, error="550 no such user"),
                ),
            ],
            now,
        )
    registry = CollectorRegistry()
    producer = await start_producer(bootstrap)
    try:
        publisher = Outbox(
            engine,
            producer,
            topics.notifications,
            metrics=NotifierMetrics(registry),
            bell=asyncio.Event(),
            hasher=HASHER,
        )
        assert await publisher.flush() == 3  # two published, one marked unpublishable
        assert await publisher.flush() == 0  # the broken one is not tried again
    finally:
        await producer.stop()
    records = await read_records(bootstrap, topics.notifications, 2, wait_s=10)
    assert sorted((key, r.type, r.data.ticket_id) for key, r in records) == [
        (f"jira:{LONG_TICKET}".encode(), "notification.failed", LONG_TICKET),
        (f"jira:{LONG_TICKET}".encode(), "notification.sent", LONG_TICKET),
    ]
    assert {r.data.notification_id for _, r in records} == {bounded_id(sms.id), bounded_id(mail.id)}
    assert all(len(r.event_id) <= IDENTIFIER_MAX for _, r in records)
    assert registry.get_sample_value("slawatch_notifier_records_unpublishable_total") == 1
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(store.notifications.c.published, store.notifications.c.note).where(
                    store.notifications.c.id == broken["id"]
                )
            )
        ).one()
    assert row.published is True
    assert row.note.startswith("record not published: ValidationError")


@pytest.mark.kafka
async def test_on_sqlite_the_outbox_publishes_long_ids_and_skips_a_broken_record(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics
) -> None:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _publish_long_and_broken(engine, kafka_bootstrap, topics)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_on_postgresql_the_outbox_publishes_long_ids_and_skips_a_broken_record(
    pg_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    async with migrated(pg_url) as engine:
        await _publish_long_and_broken(engine, kafka_bootstrap, topics)
