"""A period's report issued on schedule through the running system, exactly once.

The engine runs on a test clock (``SLAWATCH_CLOCK_SHIFT_S``) that puts the end
of the current month in Asia/Shanghai some forty seconds after the services
start. Tickets of the month go in through ingest. Shortly before the period
ends the engine and the notifier are SIGKILLed; they are started again after
it ended. The engine issues the month's report when it is back, the notifier
fetches the PDF and the HTML from the engine and mails them: each person of the
contract's ``report_to`` gets one mail, with the PDF attached (its cover names
the parties and the period, in Chinese), and a record of it is on
``slawatch.notifications``. Killed and restarted once more after the mails,
nothing goes out twice.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from deploy.dev.sms_sink import SmsSink

from e2e.system import System, created, read_topic, responded, services, services_env, wait_until
from slawatch_common.events import EVENT_ADAPTER, NotificationRecord
from slawatch_common.topics import Topics
from slawatch_engine.periods import period_containing
from support.smtp import SmtpSink

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

SHANGHAI = ZoneInfo("Asia/Shanghai")
LEAD_S = 45.0
"""Real seconds from the test's start to the period's end on the engine's clock."""
CONFIG = """
calendars:
  always: {{timezone: UTC, always_open: true}}
policies:
  - name: any
    calendar: always
    targets:
      P1: {{response: 10m, resolution: 1h}}
      P2: {{response: 30m, resolution: 4h}}
      P3: {{response: 1h, resolution: 8h}}
contracts:
  acme:
    customer: ACME Ltd
    provider: Example Ops Co
    time_zone: Asia/Shanghai
    language: zh-CN
    issue_after: 0s
    term: {{start: {start}, end: 2099-12-31}}
    policies: [any]
    report_to: [manager, customer]
notifier:
  people:
    manager: {{name: Wang Li, email: manager@example.com}}
    customer: {{name: ACME Service Desk, email: desk@acme.example}}
  escalations:
    standard:
      - on: breach
        notify: [{{to: manager, via: email}}]
"""


@pytest.fixture
def period_end() -> datetime:
    """The end of the current month in Shanghai, by the real clock."""
    return period_containing(datetime.now(UTC), "month", SHANGHAI).end


@pytest.fixture
def system(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    period_end: datetime,
) -> Iterator[System]:
    month = period_containing(datetime.now(UTC), "month", SHANGHAI)
    config = tmp_path / "slawatch.yaml"
    # the term starts with this month: the month before is not the engine's to issue
    config.write_text(CONFIG.format(start=month.start.astimezone(SHANGHAI).date()))
    shift = (period_end - timedelta(seconds=LEAD_S) - datetime.now(UTC)).total_seconds()
    env = services_env(
        config,
        kafka_bootstrap,
        topics,
        pg_url,
        smtp_sink.port,
        sms_sink,
        {"SLAWATCH_CLOCK_SHIFT_S": str(shift)},
    )
    with services(env, tmp_path) as (ingest, engine, notifier):
        yield System(ingest, engine, notifier, smtp_sink, sms_sink)


def reports(sink: SmtpSink) -> list[tuple[list[str], Message]]:
    return [
        (recipients, message)
        for _, recipients, message in sink.snapshot()
        if any(part.get_content_type() == "application/pdf" for part in message.walk())
    ]


def test_the_report_goes_out_once_across_kills_around_the_period_end(
    system: System, tmp_path: Path, kafka_bootstrap: str, topics: Topics
) -> None:
    started = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)
    label = period_containing(now, "month", SHANGHAI).label
    events = []
    for n, late in ((1, False), (2, True), (3, False)):
        at = now - timedelta(hours=3, minutes=n)
        events += [
            created(f"R-{n}", at, priority="P2"),
            responded(f"R-{n}", at + timedelta(minutes=45 if late else 5)),
        ]
    assert system.post(*events).status_code == 202

    # both die a few seconds before the period ends, and come back after it ended
    time.sleep(max(0.0, LEAD_S - 5 - (time.monotonic() - started)))
    system.engine.kill()
    system.notifier.kill()
    time.sleep(max(0.0, LEAD_S + 3 - (time.monotonic() - started)))
    assert reports(system.smtp) == []
    system.engine.start()
    system.notifier.start()

    def recorded() -> list[NotificationRecord]:
        found = []
        for stored in read_topic(kafka_bootstrap, topics.notifications):
            event = EVENT_ADAPTER.validate_json(stored.value or b"null")
            if isinstance(event, NotificationRecord) and event.data.stage == "report":
                found.append(event)
        return found

    wait_until(lambda: len(reports(system.smtp)) == 2, 90, "the report mailed to both people")
    # both mails recorded as sent: killed and started again now, nothing goes out twice
    # (a kill between the server's acceptance and the record would resend with the same
    # Message-ID: the documented at-least-once window)
    wait_until(lambda: len({r.data.recipient for r in recorded()}) == 2, 30, "the report records")
    system.notifier.kill()
    system.engine.kill()
    system.engine.start()
    system.notifier.start()
    time.sleep(5)
    mailed = reports(system.smtp)
    assert sorted(r for recipients, _ in mailed for r in recipients) == [
        "desk@acme.example",
        "manager@example.com",
    ]
    for _, message in mailed:
        assert label in str(make_header(decode_header(message["Subject"])))
        pdf = next(p for p in message.walk() if p.get_content_type() == "application/pdf")
        body = pdf.get_payload(decode=True)
        assert isinstance(body, bytes)
        assert body.startswith(b"%PDF")
        path = tmp_path / "report.pdf"
        path.write_bytes(body)
        text = subprocess.run(
            ["pdftotext", "-layout", "-l", "2", str(path), "-"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert "ACME Ltd" in text
        assert "Example Ops Co" in text
        assert label in text
        assert "服务水平报告" in text
        assert "33.33 %" in text  # the response overdue rate: R-2 of three answered late
        html = next(p for p in message.walk() if p.get_content_type() == "text/html")
        markup = html.get_payload(decode=True)
        assert isinstance(markup, bytes)
        assert b"<script" not in markup

    records = recorded()
    assert {(r.type, r.data.ticket_id, r.data.recipient) for r in records} == {
        ("notification.sent", "acme", "manager"),
        ("notification.sent", "acme", "customer"),
    }
    assert {r.data.clock_id for r in records} == {f"report:acme:{label}"}
