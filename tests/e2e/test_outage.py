"""Both notification providers down while breaches fall due, the three services as processes.

Ingest, engine and notifier run as OS processes against the real broker and
PostgreSQL. The SMTP server and the SMS provider are stopped (their ports
refuse connections) and P1 tickets are posted at once, so each ticket's
warning (assignee, email) and breach (on-call by SMS, supervisor by email)
fall due, and are tried and retried by the notifier, while nothing can be
delivered. After ``outage_s`` both providers come back on the same ports.

- An outage shorter than the retry budget (60 s; budget 120 s) only delays:
  during it every notification is pending with failed attempts; after it
  each arrives exactly once (by its provider identity: mail ``Message-ID``,
  SMS idempotency key) within a retry cap of the return, and none is
  recorded failed (table ``notifier_notifications``, records on
  ``<prefix>.notifications``).
- An outage longer than the budget (30 s; budget 10 s): each notification is
  recorded ``failed`` while the providers are still down, its reason naming
  the budget and the refused connection, in its row and in its
  ``notification.failed`` record; once they are back,
  ``slawatch-notifier redrive --since <test start>`` (a process, with the
  services' environment) names each of them and each then arrives exactly once.

``SLAWATCH_OUTAGE=long`` (``make chaos`` sets it) makes both outages 10
minutes long, with retry budgets of 15 and 5 minutes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from e2e.system import services, services_env
from slawatch_common.db import create_engine
from slawatch_common.events import Channel
from slawatch_common.topics import Topics
from slawatch_notifier import store
from slawatch_notifier.channels.email import message_id
from slawatch_notifier.retry import span
from slawatch_notifier.routing import notification_id
from support.kafka import TopicReader
from support.net import refuses
from support.processes import BIN, ServiceProcess, started
from support.sms import SwitchableSmsSink
from support.smtp import SmtpSink

LONG = os.environ.get("SLAWATCH_OUTAGE") == "long"


@dataclass(frozen=True)
class Outage:
    """How long both providers are down, and the notifier's retry budget meanwhile."""

    outage_s: float
    budget_s: float


WITHIN_BUDGET = Outage(600, 900) if LONG else Outage(60, 120)
BEYOND_BUDGET = Outage(600, 300) if LONG else Outage(30, 10)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.smtp,
    pytest.mark.timeout(3600 if LONG else 300),
]

RETRY_BASE_S = 0.5
RETRY_CAP_S = 5.0
"""No retry waits longer: a notification is tried again at most this long after the return."""
RETURN_SLACK_S = 5.0
"""After the return, each notification arrives within ``RETRY_CAP_S`` and this."""
REDRIVE_WITHIN_S = 10.0
"""After a redrive, each notification arrives within this (the dispatcher looks every 5 s)."""
ARRIVAL_WAIT_S = 30.0
"""How long the test waits for the expected notifications after the return or a redrive
before it reports the missing ones (the bounds above are checked on their arrival times)."""
SETTLE_S = 2.0
"""Once everything expected arrived: how long to keep looking for repeats."""

TOKEN = "outage-token"
SOURCE = "outage"
TICKETS = ("OUT-1", "OUT-2", "OUT-3", "OUT-4")
TARGET_S = 8
"""P1 response target: the warning (50 %) falls due 4 s after creation, the breach 8 s."""
WARNING = "warning:50"
BREACH = "breach"
SENDER_DOMAIN = "outage.example"
ONCALL_PHONE = "+8613800000002"
SUPERVISOR_EMAIL = "supervisor@example.com"
CONFIG = f"""
calendars:
  always: {{timezone: UTC, always_open: true}}
policies:
  - name: outage
    calendar: always
    escalation: standard
    warn_at: [50]
    targets:
      P1: {{response: {TARGET_S}s}}
notifier:
  event_addresses: {{sources: [outage], mail_domains: [example.com]}}
  people:
    oncall: {{name: On-call, email: oncall@example.com, phone: "{ONCALL_PHONE}"}}
    supervisor: {{name: Supervisor, email: {SUPERVISOR_EMAIL}, phone: "+8613800000003"}}
  escalations:
    standard:
      - on: warning
        notify: [{{to: assignee, via: email}}]
      - on: breach
        notify: [{{to: oncall, via: sms}}, {{to: supervisor, via: email}}]
"""

Rows = dict[str, dict[str, Any]]
"""``notifier_notifications`` rows by notification id."""


@dataclass(frozen=True)
class Expected:
    """A notification that must arrive: its id, channel and address."""

    id: str
    channel: Channel
    address: str

    @property
    def identity(self) -> str:
        """How the provider tells it: ``mail:<Message-ID>`` or ``sms:<idempotency key>``."""
        if self.channel is Channel.EMAIL:
            return f"mail:{message_id(self.id, SENDER_DOMAIN)}"
        return f"sms:{self.id}"


def expected_notifications() -> dict[str, Expected]:
    """Every notification the tickets must get, by provider identity."""
    found = []
    for ticket in TICKETS:
        clock = f"{SOURCE}:{ticket}:response"
        found += [
            Expected(
                notification_id(clock, WARNING, assignee(ticket), Channel.EMAIL),
                Channel.EMAIL,
                assignee_email(ticket),
            ),
            Expected(
                notification_id(clock, BREACH, "oncall", Channel.SMS, step=1),
                Channel.SMS,
                ONCALL_PHONE,
            ),
            Expected(
                notification_id(clock, BREACH, "supervisor", Channel.EMAIL, step=1),
                Channel.EMAIL,
                SUPERVISOR_EMAIL,
            ),
        ]
    return {item.identity: item for item in found}


def assignee(ticket: str) -> str:
    return f"agent-{ticket}"


def assignee_email(ticket: str) -> str:
    return f"agent-{ticket.lower()}@example.com"


@dataclass(frozen=True)
class Arrival:
    """One message a provider accepted."""

    identity: str
    notification_id: str
    to: tuple[str, ...]
    at: float


@dataclass
class System:
    env: dict[str, str]
    ingest: ServiceProcess
    engine: ServiceProcess
    notifier: ServiceProcess
    smtp: SmtpSink
    sms: SwitchableSmsSink
    kafka_bootstrap: str
    topics: Topics

    def providers_down(self) -> float:
        """Stop both providers; when (``time.time``). Their ports refuse connections."""
        self.smtp.stop()
        self.sms.stop()
        assert refuses(self.smtp.port), "the SMTP port still accepts connections"
        assert refuses(self.sms.port), "the SMS port still accepts connections"
        return time.time()

    def providers_up(self) -> float:
        """Start both providers again on the same ports; when (``time.time``)."""
        self.smtp.start()
        self.sms.start()
        return time.time()

    def post_tickets(self) -> None:
        now = datetime.now(UTC).isoformat()
        answer = httpx.post(
            f"{self.ingest.url}/v1/events",
            json=[created(ticket, now) for ticket in TICKETS],
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text

    def arrivals(self) -> list[Arrival]:
        """Everything both providers accepted, repeats included."""
        found = []
        for at, recipients, message in self.smtp.snapshot():
            # unfolded: a header longer than a line is folded before its "<" (RFC 5322 CFWS)
            nid = "".join(str(message["X-Slawatch-Notification-Id"]).split())
            mid = "".join(str(message["Message-ID"]).split())
            found.append(Arrival(f"mail:{mid}", nid, tuple(recipients), at))
        for sms in self.sms.received():
            key = sms.idempotency_key or f"missing-key:{sms.id}"
            found.append(Arrival(f"sms:{key}", key, (sms.to,), sms.received_at))
        return found

    def wait_for_arrivals(self, identities: set[str], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not identities <= {a.identity for a in self.arrivals()}:
            if time.monotonic() > deadline:
                arrived = sorted(a.identity for a in self.arrivals())
                missing = sorted(identities - set(arrived))
                raise AssertionError(
                    f"timed out ({within:.0f} s) waiting for {what}: {len(missing)} missing "
                    f"{missing}; arrived {arrived}; notifier log:\n{self.notifier.log_tail()}"
                )
            time.sleep(0.1)

    def rows(self) -> Rows:
        return self.wait_for_rows(lambda rows: True, within=0, what="the rows")

    def wait_for_rows(self, check: Callable[[Rows], bool], within: float, what: str) -> Rows:
        """Poll ``notifier_notifications`` until ``check(rows)`` holds; the rows."""
        return asyncio.run(self._poll_rows(check, within, what))

    async def _poll_rows(self, check: Callable[[Rows], bool], within: float, what: str) -> Rows:
        engine = create_engine(self.env["DATABASE_URL"])
        deadline = time.monotonic() + within
        try:
            while True:
                async with engine.connect() as conn:
                    result = await conn.execute(sa.select(store.notifications))
                    rows = {row["id"]: dict(row) for row in result.mappings()}
                if check(rows):
                    return rows
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out ({within:.0f} s) waiting for {what}: {_summary(rows)}; "
                        f"notifier log:\n{self.notifier.log_tail()}"
                    )
                await asyncio.sleep(0.5)
        finally:
            await engine.dispose()

    def attempt_log(self) -> dict[str, list[tuple[str, str | None]]]:
        """(outcome, reason) of every attempt of each notification, in order."""
        return asyncio.run(self._attempt_log())

    async def _attempt_log(self) -> dict[str, list[tuple[str, str | None]]]:
        table = store.attempts
        engine = create_engine(self.env["DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    sa.select(table.c.notification_id, table.c.outcome, table.c.reason).order_by(
                        table.c.notification_id, table.c.number
                    )
                )
                log: dict[str, list[tuple[str, str | None]]] = {}
                for row in result:
                    log.setdefault(row.notification_id, []).append((row.outcome, row.reason))
                return log
        finally:
            await engine.dispose()

    def records(self, check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The records on the notifications topic, once ``check`` holds for them."""

        async def read() -> list[dict[str, Any]]:
            async with TopicReader(self.kafka_bootstrap, self.topics.notifications) as reader:
                return await reader.wait_for(check, within=30)

        return asyncio.run(read())

    def redrive(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """``slawatch-notifier redrive …`` as its own process, with the services' environment."""
        return subprocess.run(
            [str(BIN / "slawatch-notifier"), "redrive", *arguments],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )


def created(ticket: str, at: str) -> dict[str, Any]:
    return {
        "event_id": f"{SOURCE}:{ticket}:created:{uuid.uuid4().hex[:6]}",
        "type": "ticket.created",
        "occurred_at": at,
        "source": SOURCE,
        "data": {
            "id": ticket,
            "priority": "P1",
            "title": f"Incident {ticket}",
            "assignee": {"id": assignee(ticket), "email": assignee_email(ticket)},
        },
    }


def _summary(rows: Rows) -> str:
    return ", ".join(
        f"{nid}: {row['status']} after {row['attempts']} attempt(s)" for nid, row in rows.items()
    )


def _count(records: list[dict[str, Any]], kind: str) -> int:
    return sum(record["type"] == kind for record in records)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


@pytest.fixture
def sms() -> Iterator[SwitchableSmsSink]:
    with started(SwitchableSmsSink()) as sink:
        yield sink


@pytest.fixture
def launch(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp_sink: SmtpSink,
    sms: SwitchableSmsSink,
) -> Iterator[Callable[[Outage], System]]:
    """Start ingest, engine and notifier with the retry budget of an outage."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(CONFIG)
    with ExitStack() as stack:

        def start(outage: Outage) -> System:
            env = services_env(
                config,
                kafka_bootstrap,
                topics,
                pg_url,
                smtp_sink.port,
                sms,
                {
                    "SLAWATCH_INGEST_TOKENS": TOKEN,
                    "SLAWATCH_SMTP_SENDER": f"slawatch <slawatch@{SENDER_DOMAIN}>",
                    "SLAWATCH_RETRY_BASE_S": str(RETRY_BASE_S),
                    "SLAWATCH_RETRY_CAP_S": str(RETRY_CAP_S),
                    "SLAWATCH_RETRY_BUDGET_S": str(outage.budget_s),
                },
            )
            ingest, engine, notifier = stack.enter_context(services(env, tmp_path))
            return System(env, ingest, engine, notifier, smtp_sink, sms, kafka_bootstrap, topics)

        yield start


def _check_arrived_once(arrivals: list[Arrival], expected: dict[str, Expected]) -> None:
    """Each expected notification reached its provider exactly once, at its address."""
    counts = Counter(arrival.identity for arrival in arrivals)
    assert counts == Counter(expected.keys()), (
        f"repeated {sorted(i for i, n in counts.items() if n > 1)}, "
        f"missing {sorted(set(expected) - set(counts))}, "
        f"unexpected {sorted(set(counts) - set(expected))}"
    )
    for arrival in arrivals:
        item = expected[arrival.identity]
        assert (arrival.notification_id, arrival.to) == (item.id, (item.address,)), arrival


def _check_due_and_tried_in_outage(rows: Rows, down: float, back: float) -> None:
    """Each notification fell due while the providers were down and was tried more than once."""
    for nid, row in rows.items():
        assert down < row["due_at"].timestamp() < back, (nid, row["due_at"], down, back)
        assert row["attempts"] >= 2, (nid, row["attempts"])


def test_an_outage_within_the_retry_budget_delays_each_notification_which_arrives_once(
    launch: Callable[[Outage], System],
) -> None:
    outage = WITHIN_BUDGET
    system = launch(outage)
    expected = expected_notifications()
    ids = {item.id for item in expected.values()}

    down = system.providers_down()
    system.post_tickets()
    ends = down + outage.outage_s
    system.wait_for_rows(
        lambda rows: set(rows) == ids and all(r["attempts"] >= 2 for r in rows.values()),
        within=ends - time.time(),
        what="every notification due and retried while the providers are down",
    )
    _sleep_until(ends)
    during = system.rows()
    stuck = {nid: row["status"] for nid, row in during.items() if row["status"] != "pending"}
    assert set(stuck.values()) <= {"sending"}, stuck  # none sent, none failed
    back = system.providers_up()
    _check_due_and_tried_in_outage(during, down, back)

    system.wait_for_arrivals(
        set(expected), ARRIVAL_WAIT_S, "every notification after the providers' return"
    )
    _sleep_until(time.time() + SETTLE_S)
    arrivals = system.arrivals()
    _check_arrived_once(arrivals, expected)
    lags = sorted(arrival.at - back for arrival in arrivals)
    tries = sorted(row["attempts"] for row in during.values())
    print(
        f"outage {outage.outage_s:g}s, budget {outage.budget_s:g}s: {len(ids)} notifications "
        f"tried {tries[0]}-{tries[-1]} times while down; arrived {lags[0]:.1f}-{lags[-1]:.1f}s "
        "after the return"
    )
    assert lags[0] >= 0, lags
    assert lags[-1] < RETRY_CAP_S + RETURN_SLACK_S, lags

    rows = system.wait_for_rows(
        lambda rows: all(r["status"] == "sent" for r in rows.values()),
        within=10,
        what="every notification recorded sent",
    )
    assert set(rows) == ids
    log = system.attempt_log()
    for nid, row in rows.items():
        outcomes = [outcome for outcome, _ in log[nid]]
        assert len(outcomes) == row["attempts"], (nid, log[nid])
        assert outcomes == ["retryable"] * (row["attempts"] - 1) + ["delivered"], (nid, log[nid])
        reasons = {reason for outcome, reason in log[nid] if outcome == "retryable"}
        cause = "SMTP " if row["channel"] == Channel.EMAIL else "SMS provider unreachable: "
        assert all(reason and reason.startswith(cause) for reason in reasons), (nid, reasons)

    records = system.records(lambda values: _count(values, "notification.sent") >= len(ids))
    assert _count(records, "notification.failed") == 0, records
    sent = {record["data"]["notification_id"]: record for record in records}
    assert set(sent) == ids, records
    assert len(records) == len(ids), records
    for nid, record in sent.items():
        assert record["event_id"] == f"notification:{nid}:sent", record
        assert record["data"]["attempts"] == rows[nid]["attempts"], record


def test_an_outage_beyond_the_retry_budget_fails_each_and_a_redrive_sends_each_once(
    launch: Callable[[Outage], System],
) -> None:
    outage = BEYOND_BUDGET
    system = launch(outage)
    expected = expected_notifications()
    ids = {item.id for item in expected.values()}

    began = datetime.now(UTC)
    down = system.providers_down()
    system.post_tickets()
    ends = down + outage.outage_s
    failed = system.wait_for_rows(
        lambda rows: set(rows) == ids and all(r["status"] == "failed" for r in rows.values()),
        within=ends - time.time(),
        what="every notification failed while the providers are down",
    )
    assert time.time() < ends, "the notifications failed only after the providers' return"
    _check_due_and_tried_in_outage(failed, down, ends)
    budget = span(timedelta(seconds=outage.budget_s))
    for nid, row in failed.items():
        reason = f"retry budget of {budget} exhausted after {row['attempts']} attempt(s); "
        assert row["last_error"].startswith(f"{reason}last error: "), (nid, row["last_error"])
        cause = row["last_error"].removeprefix(f"{reason}last error: ")
        if row["channel"] == Channel.EMAIL:
            assert cause.startswith("SMTP "), (nid, cause)
            assert "refused" in cause or "Connect call failed" in cause, (nid, cause)
        else:
            assert cause.startswith("SMS provider unreachable: ConnectError"), (nid, cause)

    records = system.records(lambda values: _count(values, "notification.failed") >= len(ids))
    told = {record["data"]["notification_id"]: record for record in records}
    assert set(told) == ids, records
    assert len(records) == len(ids), records
    for nid, record in told.items():
        assert record["type"] == "notification.failed", record
        assert record["event_id"] == f"notification:{nid}:failed", record
        assert record["data"]["error"] == failed[nid]["last_error"], record

    tries = sorted(row["attempts"] for row in failed.values())
    print(
        f"outage {outage.outage_s:g}s, budget {outage.budget_s:g}s: {len(ids)} notifications "
        f"failed after {tries[0]}-{tries[-1]} attempts, {ends - time.time():.1f}s before "
        "the providers' return"
    )
    _sleep_until(ends)
    system.providers_up()
    redriven = time.time()
    done = system.redrive("--since", began.isoformat())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"redriven {len(ids)} failed notification(s)", done.stdout
    assert sorted(lines[1:]) == sorted(f"{item.id} ({item.channel})" for item in expected.values())

    system.wait_for_arrivals(set(expected), ARRIVAL_WAIT_S, "every redriven notification")
    _sleep_until(time.time() + SETTLE_S)
    arrivals = system.arrivals()
    _check_arrived_once(arrivals, expected)
    lags = sorted(arrival.at - redriven for arrival in arrivals)
    print(f"redriven: arrived {lags[0]:.1f}-{lags[-1]:.1f}s after the command began")
    assert lags[-1] < REDRIVE_WITHIN_S, lags

    rows = system.wait_for_rows(
        lambda rows: all(r["status"] == "sent" for r in rows.values()),
        within=10,
        what="every redriven notification recorded sent",
    )
    assert set(rows) == ids
    for nid, row in rows.items():
        assert row["redrives"] == 1, (nid, row)
        assert row["attempts"] == failed[nid]["attempts"] + 1, (nid, row)
        note = f"it had failed: {failed[nid]['last_error']}"
        assert row["note"].startswith("redriven at "), (nid, row["note"])
        assert row["note"].endswith(note), (nid, row["note"])

    records = system.records(lambda values: _count(values, "notification.sent") >= len(ids))
    assert len(records) == 2 * len(ids), records
    sent = {r["data"]["notification_id"]: r for r in records if r["type"] == "notification.sent"}
    assert set(sent) == ids, records
    for nid, record in sent.items():
        assert record["event_id"] == f"notification:{nid}:sent:r1", record
