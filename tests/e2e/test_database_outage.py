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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from deploy.dev.sms_sink import SmsSink

from e2e.system import SUPERVISOR, System, created, run_system, wait_until
from slawatch_common.topics import Topics
from support.pg_instance import PgInstance
from support.processes import ServiceProcess
from support.smtp import SmtpSink

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

OUTAGE_S = 30


@pytest.fixture
def pg() -> Iterator[PgInstance]:
    instance = PgInstance()
    try:
        instance.create()
        yield instance
    finally:
        instance.destroy()


@pytest.fixture
def rig(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg: PgInstance,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
) -> Iterator[System]:
    with run_system(tmp_path, kafka_bootstrap, topics, pg.url, smtp_sink, sms_sink) as running:
        yield running


def ready(proc: ServiceProcess) -> int:
    try:
        return httpx.get(f"{proc.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def mail_ids(rig: System, ticket: str, to: str) -> list[str]:
    """Message-IDs of the mails about ``ticket`` delivered to ``to``."""
    return [str(m["Message-ID"]) for _, rcpt, m in rig.mails(ticket) if rcpt == [to]]


def sms_keys(rig: System, ticket: str) -> list[str]:
    return [str(sms.idempotency_key) for sms in rig.sms_about(ticket)]


def assignee(ticket: str) -> str:
    return f"agent-{ticket.lower()}@example.com"


def test_a_database_outage_stops_nothing_and_loses_nothing(rig: System, pg: PgInstance) -> None:
    pids = {proc.script: proc.pid for proc in (rig.engine, rig.notifier)}
    before = [f"DB-B{n}" for n in range(5)]
    during = [f"DB-D{n}" for n in range(5)]
    assert rig.post(*(created(t, datetime.now(UTC)) for t in before)).status_code == 202
    wait_until(lambda: all(mail_ids(rig, t, assignee(t)) for t in before), 20, "warnings")

    pg.stop()
    stopped = time.monotonic()
    # ingest needs no database
    assert rig.post(*(created(t, datetime.now(UTC)) for t in during)).status_code == 202
    wait_until(
        lambda: ready(rig.engine) == 503 and ready(rig.notifier) == 503,
        15,
        "both services to report the database away",
    )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    assert ready(rig.engine) == 503
    assert ready(rig.notifier) == 503
    assert rig.sms_about("DB-") == []  # every breach fell due in the outage
    pg.start()

    wait_until(lambda: ready(rig.engine) == ready(rig.notifier) == 200, 60, "readiness again")
    everyone = before + during
    wait_until(
        lambda: all(sms_keys(rig, t) and mail_ids(rig, t, SUPERVISOR) for t in everyone),
        90,
        "every breach notification after the outage",
    )
    time.sleep(3)  # anything sent twice shows by now
    for ticket in everyone:
        assert len(sms_keys(rig, ticket)) == 1, ticket
        assert len(mail_ids(rig, ticket, SUPERVISOR)) == 1, ticket
    for ticket in before:
        assert len(mail_ids(rig, ticket, assignee(ticket))) == 1, ticket
    for ticket in during:  # crossed unseen: only the breach is told
        assert mail_ids(rig, ticket, assignee(ticket)) == [], ticket
    assert {proc.script: proc.pid for proc in (rig.engine, rig.notifier)} == pids
    for proc in (rig.engine, rig.notifier):  # the loops waited the outage out, counted
        metrics = httpx.get(f"{proc.url}/metrics", timeout=5).text
        faults = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("slawatch_") and "_transient_faults_total{" in line
        ]
        assert sum(faults) > 0, proc.script
