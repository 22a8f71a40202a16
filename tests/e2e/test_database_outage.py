"""PostgreSQL stopped for 30 s while tickets flow and stages fall due.

The engine and the notifier run as processes on a PostgreSQL server of the
test's own (``support.pg_instance``), which is shut down (fast: connections
terminated, port closed) for 30 seconds. Meanwhile ingest keeps accepting
tickets (it needs no database) and their stages fall due. Both services keep
their PIDs, answer ``/readyz`` 503 while the database is away and 200 after,
and every expected notification arrives exactly once: the tickets posted
before the outage get their warning before it and their breach after it;
those posted during it get their breach (only the highest stage crossed unseen
is notified, so no stale warning follows).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy.dev.sms_sink import SmsSink

from slawatch_common.topics import Topics
from support.net import free_port
from support.pg_instance import PgInstance
from support.processes import ServiceProcess
from support.smtp import SmtpSink

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

OUTAGE_S = 30
TOKEN = "db-outage-token"
CONFIG = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: outage
    calendar: always
    escalation: standard
    warn_at: [50]
    targets:
      P1: {response: 4s, resolution: 1h}
notifier:
  people:
    oncall: {name: On-call, email: oncall@example.com, phone: "+8613800000002"}
    supervisor: {name: Supervisor, email: supervisor@example.com, phone: "+8613800000003"}
  escalations:
    standard:
      - on: warning
        notify: [{to: assignee, via: email}]
      - on: breach
        notify: [{to: oncall, via: sms}, {to: supervisor, via: email}]
"""


@dataclass
class Rig:
    pg: PgInstance
    ingest: ServiceProcess
    engine: ServiceProcess
    notifier: ServiceProcess
    smtp: SmtpSink
    sms: SmsSink

    def post(self, *events: dict[str, Any]) -> None:
        answer = httpx.post(
            f"{self.ingest.url}/v1/events",
            json=list(events),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text

    def mails(self, ticket: str, to: str) -> list[str]:
        """Message-IDs of the mails about ``ticket`` delivered to ``to``."""
        return [
            str(message["Message-ID"])
            for _, recipients, message in self.smtp.snapshot()
            if ticket in str(message["Subject"]) and recipients == [to]
        ]

    def texts(self, ticket: str) -> list[str]:
        """Idempotency keys of the SMS about ``ticket``."""
        return [str(s.idempotency_key) for s in self.sms.received() if ticket in s.message]


@pytest.fixture
def rig(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> Iterator[Rig]:
    pg = PgInstance()
    pg.create()
    config = tmp_path / "slawatch.yaml"
    config.write_text(CONFIG)
    env = {
        "SLAWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "2",
        "SLAWATCH_CONFIG_FILE": str(config),
        "DATABASE_URL": pg.url,
        "SLAWATCH_SMTP_PORT": str(smtp_sink.port),
        "SLAWATCH_SMS_URL": sms_sink.url,
        "SLAWATCH_SMS_TOKEN": sms_sink.token,
        "SLAWATCH_INGEST_TOKENS": TOKEN,
        "SLAWATCH_INGEST_PORT": str(free_port()),
        "SLAWATCH_ENGINE_PORT": str(free_port()),
        "SLAWATCH_NOTIFIER_PORT": str(free_port()),
    }
    procs = [
        ServiceProcess(name, int(env[port]), env, tmp_path)
        for name, port in (
            ("slawatch-ingest", "SLAWATCH_INGEST_PORT"),
            ("slawatch-engine", "SLAWATCH_ENGINE_PORT"),
            ("slawatch-notifier", "SLAWATCH_NOTIFIER_PORT"),
        )
    ]
    try:
        for proc in procs:
            proc.start()
        yield Rig(pg, procs[0], procs[1], procs[2], smtp_sink, sms_sink)
    finally:
        for proc in procs:
            proc.stop()
        pg.destroy()


def created(ticket: str) -> dict[str, Any]:
    return {
        "event_id": f"db:{ticket}:{uuid.uuid4().hex[:8]}",
        "type": "ticket.created",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "db",
        "data": {
            "id": ticket,
            "priority": "P1",
            "title": f"Incident {ticket}",
            "assignee": {"id": f"agent-{ticket}", "email": f"{ticket.lower()}@example.com"},
        },
    }


def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready(proc: ServiceProcess) -> int:
    try:
        return httpx.get(f"{proc.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_a_database_outage_stops_nothing_and_loses_nothing(rig: Rig) -> None:
    pids = {proc.script: proc.pid for proc in (rig.engine, rig.notifier)}
    before = [f"DB-B{n}" for n in range(5)]
    during = [f"DB-D{n}" for n in range(5)]
    rig.post(*(created(ticket) for ticket in before))
    wait_for(lambda: all(rig.mails(t, f"{t.lower()}@example.com") for t in before), 20, "warnings")

    rig.pg.stop()
    stopped = time.monotonic()
    rig.post(*(created(ticket) for ticket in during))  # ingest needs no database
    wait_for(
        lambda: ready(rig.engine) == 503 and ready(rig.notifier) == 503,
        15,
        "both services to report the database away",
    )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    assert ready(rig.engine) == 503
    assert ready(rig.notifier) == 503
    assert rig.texts("DB-") == []  # every breach fell due in the outage
    rig.pg.start()

    wait_for(lambda: ready(rig.engine) == ready(rig.notifier) == 200, 60, "readiness again")
    everyone = before + during
    wait_for(
        lambda: all(rig.texts(t) and rig.mails(t, "supervisor@example.com") for t in everyone),
        90,
        "every breach notification after the outage",
    )
    time.sleep(3)  # anything sent twice shows by now
    for ticket in everyone:
        assert len(rig.texts(ticket)) == 1, ticket
        assert len(rig.mails(ticket, "supervisor@example.com")) == 1, ticket
    for ticket in before:
        assert len(rig.mails(ticket, f"{ticket.lower()}@example.com")) == 1, ticket
    for ticket in during:  # crossed unseen: only the breach is told
        assert rig.mails(ticket, f"{ticket.lower()}@example.com") == [], ticket
    assert {proc.script: proc.pid for proc in (rig.engine, rig.notifier)} == pids
    for proc in (rig.engine, rig.notifier):
        metrics = httpx.get(f"{proc.url}/metrics", timeout=5).text
        assert "_transient_faults_total" in metrics
