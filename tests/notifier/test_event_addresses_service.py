"""Addresses events carry, through the whole notifier: real Kafka, SMS sink, SMTP sink, and
PostgreSQL or SQLite.

An event that names a configured person with another phone texts the configured
phone; an unknown assignee's number from a source not trusted for addresses gets
nothing, and the refusal is logged, counted and kept as a ``refused`` row; SMS to a
number only events give stop at its cap, the email fallback taking over; and no
record on the notifications topic carries an address.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from deploy.dev.sms_sink import SmsSink

from notifier.factories import HASHER, sla_event
from notifier.harness import SettingsMaker, produce, read_records, running_notifier
from slawatch_common.db import create_engine
from slawatch_common.events import Channel, NotificationRecord, SlaEvent
from slawatch_notifier import store
from slawatch_notifier.retry import Status
from support.prom import metric
from support.smtp import SmtpSink

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]

LI_WEI_PHONE = "+8613800000011"
OTHER_PHONE = "+8613900000666"
STRANGER_PHONE = "+8613800000099"
STRANGER_EMAIL = "stranger@example.com"
NOTIFICATIONS = "slawatch_notifier_notifications_total"
SKIPPED = "slawatch_notifier_skipped_targets_total"


def _section(**event_addresses: Any) -> dict[str, Any]:
    return {
        "people": {
            "li.wei": {"name": "Li Wei", "email": "li.wei@example.com", "phone": LI_WEI_PHONE},
        },
        "event_addresses": {
            "sources": ["zammad"],
            "mail_domains": ["example.com"],
            "phone_prefixes": ["+86"],
            **event_addresses,
        },
        "escalations": {
            "standard": [
                {"on": "breach", "notify": [{"to": "assignee", "via": ["sms", "email"]}]},
            ],
        },
    }


def _breach(ticket_id: str, assignee: dict[str, str], source: str) -> SlaEvent:
    document = sla_event("breach", ticket_id=ticket_id, assignee=assignee).model_dump(mode="json")
    document["data"]["ticket"]["source"] = source
    return SlaEvent.model_validate(document)


async def _exposition(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


async def _wait_for_metric(client: httpx.AsyncClient, name: str, **labels: str) -> str:
    """The exposition once ``name`` with ``labels`` counted something (at most 30 s)."""
    for _ in range(600):
        found = await _exposition(client)
        if metric(found, name, **labels) > 0:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} never counted")


async def _rows(database_url: str) -> dict[str, sa.RowMapping]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            table = store.notifications
            return {row["id"]: row for row in (await conn.execute(sa.select(table))).mappings()}
    finally:
        await engine.dispose()


def _assert_no_address(records: list[tuple[bytes, NotificationRecord]], *addresses: str) -> None:
    for _, record in records:
        assert record.data.address.startswith("hmac-sha256:"), record
        text = record.model_dump_json()
        assert not any(address in text for address in addresses), text
        assert "@" not in text, text


@pytest.mark.postgres
async def test_a_configured_phone_wins_and_an_untrusted_number_is_refused_and_recorded(
    make_settings: SettingsMaker,
    pg_url: str,
    sms_sink: SmsSink,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(notifier=_section()).model_copy(update={"database_url": pg_url})
    # li.wei is configured: the phone the event gives is not hers to choose, even from a
    # trusted source; the stranger is not, and jira may give no address
    impostor = _breach("OPS-1", {"id": "li.wei", "phone": OTHER_PHONE}, "zammad")
    untrusted = _breach("OPS-2", {"id": "stranger", "phone": STRANGER_PHONE}, "jira")
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [impostor, untrusted])
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 1)
        exposition = await _wait_for_metric(
            client, NOTIFICATIONS, channel="sms", outcome="refused", reason="untrusted_source"
        )
        await asyncio.sleep(0.5)  # time for any (wrong) send to happen

    assert [(sms.to, sms.idempotency_key) for sms in sms_sink.received()] == [
        (LI_WEI_PHONE, "jira:OPS-1:response:breach:0:li.wei:sms")
    ]
    assert smtp_sink.snapshot() == []  # li.wei's SMS arrived; the stranger has no email

    # the published record: the recipient's id and the hash of the number, never the number
    ((key, record),) = records
    assert (key, record.type, record.data.recipient) == (
        b"zammad:OPS-1",
        "notification.sent",
        "li.wei",
    )
    assert record.data.address == HASHER(Channel.SMS, LI_WEI_PHONE)
    _assert_no_address(records, LI_WEI_PHONE, OTHER_PHONE, STRANGER_PHONE)

    # the refusal: counted with its reason, logged as a warning, kept as a row
    assert metric(exposition, SKIPPED, reason="untrusted_source") == 1
    assert metric(exposition, SKIPPED, reason="no_address") == 1  # no email to fall back on
    refused = {"channel": "sms", "outcome": "refused", "reason": "untrusted_source"}
    assert metric(exposition, NOTIFICATIONS, **refused) == 1
    assert metric(exposition, NOTIFICATIONS, channel="sms", outcome="sent") == 1
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "OPS-2" in r.getMessage()
    ]
    assert any("untrusted_source" in line and "phone of stranger" in line for line in warnings)
    rows = await _rows(pg_url)
    row = rows["jira:OPS-2:response:breach:0:stranger:sms"]
    assert (row["status"], row["recipient"], row["address"]) == (
        Status.REFUSED,
        "stranger",
        "+86…99",
    )
    assert "source 'jira'" in row["last_error"]
    assert rows["jira:OPS-1:response:breach:0:li.wei:sms"]["address"] == LI_WEI_PHONE
    # no line of the log shows a number, whatever its level
    for line in (r.getMessage() for r in caplog.records):
        assert not any(phone in line for phone in (LI_WEI_PHONE, OTHER_PHONE, STRANGER_PHONE))


async def test_sms_to_a_number_only_events_give_stop_at_its_cap_and_the_email_takes_over(
    make_settings: SettingsMaker,
    sms_sink: SmsSink,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        notifier=_section(sms_per_number={"max": 2, "per": "1h"}),
        retry_base_s=0.05,
        retry_cap_s=0.2,
    )
    stranger = {"id": "stranger", "email": STRANGER_EMAIL, "phone": STRANGER_PHONE}
    breaches = [_breach(f"OPS-{n}", stranger, "zammad") for n in (1, 2, 3)]
    # li.wei is trusted: her configured number has no cap
    breaches += [_breach(f"OPS-{n}", {"id": "li.wei"}, "zammad") for n in (4, 5, 6)]
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, breaches)
        # five SMS and the mail that stands in for the refused one
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 6)
        exposition = await _exposition(client)

    sent = sorted(sms.to for sms in sms_sink.received())
    assert sent == [LI_WEI_PHONE] * 3 + [STRANGER_PHONE] * 2
    ((_, recipients, _),) = smtp_sink.snapshot()
    assert recipients == [STRANGER_EMAIL]
    kinds = sorted((r.data.channel, r.type, r.data.recipient) for _, r in records)
    assert (
        kinds
        == [("email", "notification.sent", "stranger")]
        + [("sms", "notification.sent", "li.wei")] * 3
        + [("sms", "notification.sent", "stranger")] * 2
    )
    _assert_no_address(records, LI_WEI_PHONE, STRANGER_PHONE, STRANGER_EMAIL)
    capped = {"channel": "sms", "outcome": "refused", "reason": "sms_cap"}
    assert metric(exposition, NOTIFICATIONS, **capped) == 1
    assert metric(exposition, "slawatch_notifier_fallbacks_total", channel="email") == 1

    rows = await _rows(settings.database_url)
    (refused,) = [row for row in rows.values() if row["status"] == Status.REFUSED]
    assert (refused["recipient"], refused["channel"], refused["attempts"]) == ("stranger", "sms", 0)
    assert "sms_per_number" in refused["last_error"]
    assert any(
        r.levelno == logging.WARNING
        and "refused" in r.getMessage()
        and refused["id"] in r.getMessage()
        for r in caplog.records
    )
