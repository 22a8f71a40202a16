"""Noise control through the whole notifier: real Kafka, SMTP sink, SMS sink, a database.

- a burst of breaches to one on-call engineer under ``sms: {max: 5, per: 2s}``:
  five SMS on their own, then one digest SMS naming the rest, nothing lost;
- quiet hours: a warning waits until they end, one acknowledged meanwhile is
  never sent, a breach ignores them;
- an SMS the provider refuses for good falls back to email.
"""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from deploy.dev.sms_sink import SmsSink

from notifier.factories import CONFIG, sla_event, write_config
from notifier.harness import SettingsMaker, eventually, produce, read_records, running_notifier
from slawatch_common.db import create_engine
from slawatch_notifier import store
from slawatch_notifier.settings import NotifierSettings
from support.prom import metric
from support.smtp import SmtpSink

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]

ONCALL_PHONE = "+8613800000002"


def _sms_id(ticket: str, channel: str = "sms") -> str:
    return f"jira:{ticket}:response:breach:1:oncall:{channel}"


def _config(**changes: Any) -> dict[str, Any]:
    """CONFIG with the breach step texting the on-call engineer only, and ``changes``."""
    config = copy.deepcopy(CONFIG)
    config["escalations"]["standard"][1]["notify"] = [{"to": "oncall", "via": "sms"}]
    config.update(changes)
    return config


@pytest.fixture
def settings(make_settings: SettingsMaker) -> NotifierSettings:
    return make_settings(notifier=_config(), retry_base_s=0.05, retry_cap_s=0.2)


async def _escalations(database_url: str) -> dict[str, tuple[str, str | None]]:
    """Each clock's escalation: its status and who acknowledged it."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            table = store.escalations
            query = sa.select(table.c.clock_id, table.c.status, table.c.acknowledged_by)
            return {
                row.clock_id: (row.status, row.acknowledged_by) for row in await conn.execute(query)
            }
    finally:
        await engine.dispose()


async def _notifications(database_url: str) -> dict[str, sa.RowMapping]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(store.notifications))).mappings()
            return {row["id"]: row for row in rows}
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_burst_of_breaches_is_five_sms_and_one_digest_naming_the_rest(
    settings: NotifierSettings, tmp_path: Path, pg_url: str, sms_sink: SmsSink
) -> None:
    config = _config(rate_limits={"sms": {"max": 5, "per": "2s"}})
    settings = settings.model_copy(
        update={"database_url": pg_url, "config_file": write_config(tmp_path, config)}
    )
    tickets = [f"OPS-{n}" for n in range(8)]
    breaches = [sla_event("breach", ticket_id=ticket) for ticket in tickets]
    async with running_notifier(settings) as client:
        started = time.time()
        await produce(settings.kafka_bootstrap, settings.topics.sla, breaches)
        await eventually(lambda: len(sms_sink.received()) >= 6, wait_s=15)
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 9)
        await asyncio.sleep(0.5)  # time for any (wrong) extra message
        exposition = (await client.get("/metrics")).text
        # the digest ends with the link that acknowledges everything it holds: its page
        # lists them and changes nothing, its form acknowledges them all
        link = sms_sink.received()[-1].message.rsplit(" ", 1)[1]
        page = await client.get(urlsplit(link).path)
        shown = await _escalations(settings.database_url)
        acked = await client.post(urlsplit(link).path)

    texts = sms_sink.received()
    assert len(texts) == 6
    single, digests = texts[:5], texts[5:]
    assert all(sms.to == ONCALL_PHONE for sms in texts)
    alone = {sms.idempotency_key or "" for sms in single}
    assert alone <= {_sms_id(ticket) for ticket in tickets}
    (digest,) = digests
    assert digest.idempotency_key is not None
    assert digest.idempotency_key.startswith("digest:oncall:sms:")
    assert digest.received_at - started >= 1.5  # it waited for the window's end
    held = [t for t in tickets if _sms_id(t) not in alone]
    assert len(held) == 3
    assert digest.message.startswith("[slawatch] 3 SLA notifications held back (limit 5 per 2s")
    # as many held tickets as fit before the link, the others counted
    named = [t for t in tickets if f"jira:{t} " in digest.message]
    assert named
    assert set(named) <= set(held)
    if len(named) < len(held):
        assert f" and {len(held) - len(named)} more." in digest.message
    assert digest.message.endswith(f"Ack: {link}")
    assert len(digest.message) <= 320
    assert page.status_code == 200
    assert [f"jira:{t}<" in page.text for t in tickets] == [t in held for t in tickets]
    assert '<form method="post"' in page.text
    assert set(shown.values()) == {("active", None)}
    assert acked.status_code == 200
    assert await _escalations(settings.database_url) == {
        f"jira:{t}:response": ("acknowledged", "oncall") if t in held else ("active", None)
        for t in tickets
    }

    rows = await _notifications(settings.database_url)
    assert {rows[_sms_id(t)]["status"] for t in held} == {"folded"}
    assert {rows[_sms_id(t)]["digest_id"] for t in held} == {digest.idempotency_key}
    assert rows[digest.idempotency_key]["status"] == "sent"
    kinds = sorted((r.type, r.data.notification_id, r.data.digest_id) for _, r in records)
    assert kinds == sorted(
        [("notification.sent", sent, None) for sent in [*alone, digest.idempotency_key]]
        + [("notification.folded", _sms_id(t), digest.idempotency_key) for t in held]
    )
    folded = {"channel": "sms", "outcome": "folded", "reason": "rate_limited"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **folded) == 3
    sent = {"channel": "sms", "outcome": "sent"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **sent) == 6
    assert metric(exposition, "slawatch_notifier_digests_total", channel="sms") == 1
    assert metric(exposition, "slawatch_notifier_delivery_seconds_count", channel="sms") == 6


async def test_a_warning_in_quiet_hours_waits_for_their_end_and_a_breach_does_not(
    settings: NotifierSettings, tmp_path: Path, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(seconds=3)
    quiet = {
        "from": (start - timedelta(hours=1)).strftime("%H:%M:%S"),
        "to": end.strftime("%H:%M:%S"),
        "time_zone": "UTC",
    }
    config_file = write_config(tmp_path, _config(quiet_hours=quiet))
    settings = settings.model_copy(update={"config_file": config_file})
    told, acked = (
        sla_event("warning:50", ticket_id="OPS-1"),
        sla_event("warning:50", ticket_id="OPS-2"),
    )
    breach = sla_event("breach", ticket_id="OPS-3")
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [told, acked, breach])
        await eventually(lambda: len(sms_sink.received()) == 1)
        assert time.time() < end.timestamp()  # the breach did not wait
        assert smtp_sink.snapshot() == []
        ack = {"ticket_source": "jira", "ticket_id": "OPS-2", "by": "li.wei"}
        answer = await client.post("/v1/acks", json=ack)
        assert answer.status_code == 200, answer.text
        await eventually(lambda: len(smtp_sink.snapshot()) >= 1, wait_s=10)
        await asyncio.sleep(0.5)
        exposition = (await client.get("/metrics")).text

    ((mailed_at, (to,), mail),) = smtp_sink.snapshot()
    assert to == "li.wei@example.com"
    assert "OPS-1" in str(mail["Subject"])
    assert mailed_at >= end.timestamp()
    (cancelled,) = answer.json()["escalations"][0]["cancelled_notifications"]
    rows = await _notifications(settings.database_url)
    assert rows[cancelled]["ticket_id"] == "OPS-2"
    assert rows[cancelled]["status"] == "cancelled"
    assert rows[cancelled]["deferred_until"] == end
    assert rows[cancelled]["note"] == f"deferred to {end.isoformat()}: quiet hours of li.wei"
    assert metric(exposition, "slawatch_notifier_deferred_total", channel="email") == 2
    acknowledged = {"channel": "email", "outcome": "cancelled", "reason": "acknowledged"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **acknowledged) == 1


async def test_an_sms_refused_for_good_falls_back_to_email(
    settings: NotifierSettings, tmp_path: Path, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    config = _config()
    config["escalations"]["standard"][1]["notify"] = [{"to": "oncall", "via": ["sms", "email"]}]
    settings = settings.model_copy(update={"config_file": write_config(tmp_path, config)})
    sms_sink.fail_next(1, 400)
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [sla_event("breach")])
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 2)
        exposition = (await client.get("/metrics")).text

    assert sms_sink.received() == []
    ((_, (to,), mail),) = smtp_sink.snapshot()
    assert to == "oncall@example.com"
    assert "SLA breach" in str(mail["Subject"])
    sms, email = _sms_id("OPS-42"), _sms_id("OPS-42", "email")
    assert sorted((r.data.notification_id, r.type) for _, r in records) == [
        (email, "notification.sent"),
        (sms, "notification.failed"),
    ]
    rows = await _notifications(settings.database_url)
    assert rows[sms]["status"] == "failed"
    assert rows[sms]["last_error"].startswith("HTTP 400")
    assert (rows[email]["status"], rows[email]["fallback_of"]) == ("sent", sms)
    assert rows[email]["note"].startswith(f"fallback: {sms} failed on sms: HTTP 400")
    assert metric(exposition, "slawatch_notifier_fallbacks_total", channel="email") == 1
    refused = {"channel": "sms", "outcome": "failed", "reason": "permanent"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **refused) == 1
