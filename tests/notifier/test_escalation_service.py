"""Escalation chains through the whole notifier: real Kafka, SMTP sink, SMS sink, a database.

The ``tiered`` chain of ``factories.ESCALATING``, with L2's rotation reduced to
zhao.lei so the test does not depend on the day it runs: a warning mails the
assignee, a breach texts the on-call engineer, and the breach step with
``after`` texts and mails their supervisor unless someone acknowledged first.
Breaches are dated "now", so the waiting step falls due a moment later.
"""

from __future__ import annotations

import asyncio
import copy
import html
import re
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from deploy.dev.sms_sink import SmsSink

from notifier.factories import ESCALATING, sla_event, write_config
from notifier.harness import SettingsMaker, eventually, produce, running_notifier
from slawatch_common.db import create_engine
from slawatch_common.events import SlaEvent
from slawatch_notifier import store
from slawatch_notifier.acklink import AckClaim, sign
from slawatch_notifier.settings import NotifierSettings
from support.prom import metric
from support.smtp import SmtpSink

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]

CLOCK = "jira:OPS-42:response"
ONCALL_PHONE, SUPERVISOR_PHONE = "+8613800000011", "+8613800000020"
ACK_SECRET = "service-test-secret"
LINK = re.compile(r"http://notifier(/v1/acks/[^\s\"<]+)")
HREF = re.compile(r'href="http://notifier(/[^"]+)"')


def _config(after: str) -> dict[str, Any]:
    config = copy.deepcopy(ESCALATING)
    config["schedules"]["l2"]["rotations"][0]["people"] = ["zhao.lei"]
    config["escalations"]["tiered"][2]["after"] = after
    return config


@pytest.fixture
def settings(make_settings: SettingsMaker) -> NotifierSettings:
    return make_settings(
        notifier=_config("1s"), ack_secret=ACK_SECRET, public_url="http://notifier"
    )


def _events() -> tuple[SlaEvent, SlaEvent]:
    breach_at = datetime.now(UTC)
    warning = sla_event(
        "warning:50", escalation="tiered", occurred_at=breach_at - timedelta(minutes=7)
    )
    return warning, sla_event("breach", escalation="tiered", occurred_at=breach_at)


def _mails(sink: SmtpSink) -> list[tuple[float, str, Message]]:
    return [(at, to[0], message) for at, to, message in sink.snapshot()]


def _body(mail: Message) -> str:
    parts = [part.get_payload(decode=True) for part in mail.walk() if not part.is_multipart()]
    return "".join(part.decode() for part in parts if isinstance(part, bytes))


async def _step_status(database_url: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            table = store.scheduled_steps
            rows = await conn.execute(sa.select(table.c.id, table.c.status, table.c.reason))
            return [(row.id, row.status, row.reason) for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_an_unacknowledged_breach_reaches_the_supervisor_after_the_delay_once(
    settings: NotifierSettings, pg_url: str, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    settings = settings.model_copy(update={"database_url": pg_url})
    warning, breach = _events()
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await eventually(lambda: len(sms_sink.received()) >= 2 and len(smtp_sink.snapshot()) >= 2)
        # the same events again, as after a redelivery: nothing more is sent
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await asyncio.sleep(1.5)
        exposition = (await client.get("/metrics")).text

    (_, assignee, warning_mail), (escalated_at, supervisor, supervisor_mail) = sorted(
        _mails(smtp_sink)
    )
    assert (assignee, supervisor) == ("li.wei@example.com", "wang.fang@example.com")
    assert "SLA warning: 50%" in str(warning_mail["Subject"])
    assert "SLA breach" in str(supervisor_mail["Subject"])
    oncall, boss = sorted(sms_sink.received(), key=lambda sms: sms.received_at)
    assert (oncall.to, boss.to) == (ONCALL_PHONE, SUPERVISOR_PHONE)
    assert (oncall.idempotency_key, boss.idempotency_key) == (
        f"{CLOCK}:breach:1:zhao.lei:sms",
        f"{CLOCK}:breach:2:wang.fang:sms",
    )
    breach_at = breach.occurred_at.timestamp()
    # the immediate step first, the waiting one never before its 1 s (how soon after
    # depends on the machine's load: speed is measured by make bench, not here)
    assert oncall.received_at < boss.received_at
    assert boss.received_at - breach_at >= 1.0
    assert escalated_at - breach_at >= 1.0
    for text in (oncall.message, boss.message, _body(warning_mail), _body(supervisor_mail)):
        assert LINK.search(text), text  # every message carries its ack link
    assert await _step_status(settings.database_url) == [(f"{CLOCK}:breach:2", "fired", None)]
    assert metric(exposition, "slawatch_notifier_escalation_steps_total", outcome="fired") == 1
    assert metric(exposition, "slawatch_notifier_planned_total", result="duplicate") == 2
    assert metric(exposition, "slawatch_notifier_acks_total", method="link") == 0  # exists


async def test_the_form_of_the_ack_link_stops_the_waiting_step(
    settings: NotifierSettings, tmp_path: Path, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    settings = settings.model_copy(update={"config_file": write_config(tmp_path, _config("6s"))})
    warning, breach = _events()
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await eventually(lambda: len(sms_sink.received()) == 1 and len(smtp_sink.snapshot()) == 1)
        (oncall,) = sms_sink.received()
        link = LINK.search(oncall.message)
        assert link is not None
        page = await client.get(link[1])
        assert await _escalation(settings.database_url) == ("active", None)
        answer = await client.post(link[1])
        assert answer.status_code == 200, answer.text
        assert time.time() - breach.occurred_at.timestamp() < 6.0  # before the step's instant
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await asyncio.sleep(max(0.0, breach.occurred_at.timestamp() + 7.0 - time.time()))
        again = await client.post(link[1])
        api_answers = await _api_answers(client)
        exposition = (await client.get("/metrics")).text

    assert page.status_code == 200
    assert "jira:OPS-42" in page.text
    assert '<form method="post"' in page.text
    assert "已确认收到" in answer.text  # zhao.lei reads Chinese
    assert (again.status_code, "此前已确认收到" in again.text) == (200, True)
    assert await _escalation(settings.database_url) == ("acknowledged", "zhao.lei")
    assert [to for _, to, _ in _mails(smtp_sink)] == ["li.wei@example.com"]
    assert [sms.to for sms in sms_sink.received()] == [ONCALL_PHONE]
    assert await _step_status(settings.database_url) == [
        (f"{CLOCK}:breach:2", "cancelled", "acknowledged")
    ]
    assert metric(exposition, "slawatch_notifier_acks_total", method="link") == 1
    assert metric(exposition, "slawatch_notifier_escalation_steps_total", outcome="cancelled") == 1
    assert metric(exposition, "slawatch_notifier_escalation_steps_total", outcome="fired") == 0
    assert api_answers == {
        "by ticket": 200,
        "unknown clock": 404,
        "unknown ticket": 404,
        "no subject": 422,
        "GET bad signature": 403,
        "GET expired": 410,
        "GET malformed": 422,
        "POST bad signature": 403,
        "POST expired": 410,
        "POST malformed": 422,
    }


async def test_a_mail_scanner_that_follows_every_link_acknowledges_nothing(
    settings: NotifierSettings, tmp_path: Path, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> None:
    """A mail gateway fetches every link of each delivered mail; the escalation goes on to
    the supervisor, and only the form of the page acknowledges."""
    settings = settings.model_copy(update={"config_file": write_config(tmp_path, _config("4s"))})
    warning, breach = _events()
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await eventually(lambda: len(smtp_sink.snapshot()) == 1)
        ((_, _, warning_mail),) = smtp_sink.snapshot()
        scanned = await _scan(client, warning_mail)
        assert time.time() - breach.occurred_at.timestamp() < 4.0  # before the step's instant
        # the supervisor's step still fires at its instant: a text and a mail
        await eventually(lambda: len(smtp_sink.snapshot()) == 2 and len(sms_sink.received()) == 2)
        supervisor_mail = next(m for _, to, m in _mails(smtp_sink) if to != "li.wei@example.com")
        scanned += await _scan(client, supervisor_mail)
        still = await _escalation(settings.database_url)
        # a person opens the supervisor's link and presses the button
        page = await client.get(scanned[-1])
        answer = await client.post(scanned[-1])
        exposition = (await client.get("/metrics")).text

    assert len(scanned) >= 4  # the link of each mail, in its text and in its HTML
    assert still == ("active", None)
    assert [sms.to for sms in sorted(sms_sink.received(), key=lambda s: s.received_at)] == [
        ONCALL_PHONE,
        SUPERVISOR_PHONE,
    ]
    assert await _step_status(settings.database_url) == [(f"{CLOCK}:breach:2", "fired", None)]
    assert '<form method="post"' in page.text
    assert (answer.status_code, "Acknowledged" in answer.text) == (200, True)
    assert await _escalation(settings.database_url) == ("acknowledged", "wang.fang")
    assert metric(exposition, "slawatch_notifier_acks_total", method="link") == 1


async def _scan(client: httpx.AsyncClient, mail: Message) -> list[str]:
    """Fetch every link of ``mail`` with GET, as a mail gateway's scanner does; their paths."""
    body = _body(mail)
    links = [*LINK.findall(body), *(m[1] for m in HREF.finditer(body))]
    for path in links:
        answer = await client.get(html.unescape(path))
        assert answer.status_code == 200, answer.text
    return [html.unescape(path) for path in links]


async def _escalation(database_url: str) -> tuple[str, str | None]:
    """The status of the escalation of ``CLOCK`` and who acknowledged it."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            table = store.escalations
            query = sa.select(table.c.status, table.c.acknowledged_by)
            row = (await conn.execute(query.where(table.c.clock_id == CLOCK))).one()
            return (row.status, row.acknowledged_by)
    finally:
        await engine.dispose()


async def _api_answers(client: Any) -> dict[str, int]:
    """The status of each kind of ack request (the escalation is acknowledged already)."""
    expired = sign(
        AckClaim(CLOCK, 1, "x", datetime.now(UTC) - timedelta(seconds=1)), ACK_SECRET.encode()
    )
    forged = sign(AckClaim(CLOCK, 1, "x", datetime.now(UTC) + timedelta(hours=1)), b"guess")
    posts = {
        "by ticket": {"ticket_source": "jira", "ticket_id": "OPS-42", "by": "Li Wei (phone)"},
        "unknown clock": {"clock_id": "jira:OPS-1:response", "by": "li.wei"},
        "unknown ticket": {"ticket_source": "jira", "ticket_id": "OPS-1", "by": "li.wei"},
        "no subject": {"cycle": 1, "by": "li.wei"},
    }
    answers = {name: await client.post("/v1/acks", json=body) for name, body in posts.items()}
    assert answers["no subject"].json()["detail"][0]["loc"] == ["body", "clock_id"]
    for name, token in (("bad signature", forged), ("expired", expired), ("malformed", "nodot")):
        answers[f"GET {name}"] = await client.get(f"/v1/acks/{token}")
        answers[f"POST {name}"] = await client.post(f"/v1/acks/{token}")
    assert answers["by ticket"].json()["escalations"][0]["changed"] is False
    return {name: answer.status_code for name, answer in answers.items()}
