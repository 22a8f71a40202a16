"""The notifier as a whole: real Kafka, PostgreSQL (or SQLite), SMTP and SMS provider.

Each test runs the app's lifespan in-process with fresh topics and a fresh
database, produces real SLA events and watches the SMTP sink, the SMS sink,
the notifications topic and the notifier's own tables.
"""

from __future__ import annotations

import asyncio
from email.message import Message

import pytest
import sqlalchemy as sa
from deploy.dev.sms_sink import SmsSink

from notifier.factories import sla_event
from notifier.harness import (
    SettingsMaker,
    eventually,
    produce,
    read_records,
    rewind_group,
    running_notifier,
)
from slawatch_common.db import create_engine
from slawatch_common.events import SlaEvent
from slawatch_notifier import store
from slawatch_notifier.channels.email import message_id, thread_id
from slawatch_notifier.intake import consumer_group
from slawatch_notifier.settings import NotifierSettings
from support.prom import metric
from support.smtp import SmtpSink

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]

WARNING_ID = "jira:OPS-42:response:warning:75:0:li.wei:email"
BREACH_SMS_ID = "jira:OPS-42:response:breach:1:oncall:sms"
BREACH_MAIL_ID = "jira:OPS-42:response:breach:1:supervisor:email"


@pytest.fixture
def settings(make_settings: SettingsMaker) -> NotifierSettings:
    return make_settings(retry_base_s=0.05, retry_cap_s=0.2)


@pytest.fixture
def pg_settings(settings: NotifierSettings, pg_url: str) -> NotifierSettings:
    return settings.model_copy(update={"database_url": pg_url})


def _mails(sink: SmtpSink) -> dict[str, Message]:
    return {recipients[0]: message for _, recipients, message in sink.snapshot()}


async def _attempt_outcomes(database_url: str, notification_id: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = (
                sa.select(store.attempts.c.outcome)
                .where(store.attempts.c.notification_id == notification_id)
                .order_by(store.attempts.c.number)
            )
            return list((await conn.execute(query)).scalars())
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_warning_and_breach_reach_the_chain_exactly_once_despite_redelivery(
    pg_settings: NotifierSettings, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    settings = pg_settings
    warning, breach = sla_event("warning:75"), sla_event("breach")
    met = sla_event("warning:75", event_type="sla.met")
    sent: list[SlaEvent | bytes] = [warning, b"{not json", warning, met, breach, breach]
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, sent)
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 3)
        await eventually(lambda: len(smtp_sink.snapshot()) >= 2)
        assert (await client.get("/readyz")).status_code == 200
        exposition = (await client.get("/metrics")).text

    mails = _mails(smtp_sink)
    assert sorted(mails) == ["li.wei@example.com", "supervisor@example.com"]
    _assert_warning_mail(mails["li.wei@example.com"])
    (sms,) = sms_sink.received()
    assert (sms.to, sms.idempotency_key) == ("+8613800000002", BREACH_SMS_ID)
    assert sorted((key, r.type, r.data.notification_id) for key, r in records) == [
        (b"jira:OPS-42", "notification.sent", BREACH_SMS_ID),
        (b"jira:OPS-42", "notification.sent", BREACH_MAIL_ID),
        (b"jira:OPS-42", "notification.sent", WARNING_ID),
    ]
    assert metric(exposition, "slawatch_notifier_dead_letters_total", reason="invalid_json") == 1
    assert await _dead_letters(settings.database_url) == [("invalid_json", b"{not json")]
    assert metric(exposition, "slawatch_notifier_sla_events_total", outcome="tracked") == 1
    assert metric(exposition, "slawatch_notifier_sla_events_total", outcome="ignored") == 0
    assert metric(exposition, "slawatch_notifier_planned_total", result="duplicate") == 3
    sent_mail = {"channel": "email", "outcome": "sent"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **sent_mail) == 2
    assert metric(exposition, "slawatch_notifier_send_duration_seconds_count") == 3
    assert metric(exposition, "slawatch_notifier_retries_total", channel="sms") == 0  # exists

    # Redelivery: the group starts over from offset 0 in a second notifier instance.
    await rewind_group(settings.kafka_bootstrap, consumer_group(settings), settings.topics.sla)
    async with running_notifier(settings) as client:

        async def duplicates() -> float:
            text = (await client.get("/metrics")).text
            return metric(text, "slawatch_notifier_planned_total", result="duplicate")

        for _ in range(1200):  # up to a minute: a second consumer joins the group, under load
            if await duplicates() >= 6:
                break
            await asyncio.sleep(0.05)
        assert await duplicates() == 6
        await asyncio.sleep(0.5)  # time for any (wrong) send to happen
    assert len(smtp_sink.snapshot()) == 2
    assert len(sms_sink.received()) == 1
    # A record whose publication a stop interrupted may be published again, under the same id.
    again = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 7, 2)
    assert {record.event_id for _, record in again} == {r.event_id for _, r in records}


async def _dead_letters(database_url: str) -> list[tuple[str, bytes]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = sa.select(store.dead_letters.c.reason, store.dead_letters.c.value)
            return [(row.reason, row.value) for row in await conn.execute(query)]
    finally:
        await engine.dispose()


def _assert_warning_mail(mail: Message) -> None:
    assert mail.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in mail.walk() if not part.is_multipart()}
    assert sorted(parts) == ["text/html", "text/plain"]
    assert "OPS-42" in str(parts["text/plain"].get_payload(decode=True))
    assert mail["Message-ID"] == message_id(WARNING_ID, "localhost")
    assert mail["In-Reply-To"] == thread_id("jira", "OPS-42", "localhost")
    assert mail["Subject"].startswith("[slawatch] SLA warning: 75% of the response time used")


@pytest.mark.postgres
async def test_sms_provider_failing_twice_is_retried_and_delivered_once(
    pg_settings: NotifierSettings, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    sms_sink.fail_next(2, 503)
    async with running_notifier(pg_settings):
        await produce(pg_settings.kafka_bootstrap, pg_settings.topics.sla, [sla_event("breach")])
        records = await read_records(
            pg_settings.kafka_bootstrap, pg_settings.topics.notifications, 2
        )
    assert len(sms_sink.received()) == 1
    by_id = {record.data.notification_id: record for _, record in records}
    assert by_id[BREACH_SMS_ID].type == "notification.sent"
    assert by_id[BREACH_SMS_ID].data.attempts == 3
    outcomes = await _attempt_outcomes(pg_settings.database_url, BREACH_SMS_ID)
    assert outcomes == ["retryable", "retryable", "delivered"]


@pytest.mark.postgres
async def test_sms_provider_rejecting_fails_permanently_and_says_so(
    pg_settings: NotifierSettings, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    sms_sink.fail_next(1, 400)
    async with running_notifier(pg_settings):
        await produce(pg_settings.kafka_bootstrap, pg_settings.topics.sla, [sla_event("breach")])
        records = await read_records(
            pg_settings.kafka_bootstrap, pg_settings.topics.notifications, 2
        )
    by_id = {record.data.notification_id: record for _, record in records}
    failed = by_id[BREACH_SMS_ID]
    assert (failed.type, failed.data.attempts) == ("notification.failed", 1)
    assert failed.data.error is not None
    assert failed.data.error.startswith("HTTP 400")
    assert failed.event_id == f"notification:{BREACH_SMS_ID}:failed"
    assert by_id[BREACH_MAIL_ID].type == "notification.sent"
    assert sms_sink.received() == []
    assert await _attempt_outcomes(pg_settings.database_url, BREACH_SMS_ID) == ["permanent"]


async def test_on_sqlite_a_repeated_warning_sends_one_mail(
    settings: NotifierSettings, smtp_sink: SmtpSink
) -> None:
    warning = sla_event("warning:50")
    async with running_notifier(settings):
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, warning, warning])
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 1)
        await asyncio.sleep(0.5)
    assert [record.data.recipient for _, record in records] == ["li.wei"]
    assert len(smtp_sink.snapshot()) == 1
    assert await _attempt_outcomes(settings.database_url, records[0][1].data.notification_id) == [
        "delivered"
    ]
