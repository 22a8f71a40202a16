"""Poison among normal tickets, through the three services as processes on the real broker.

Between P1 tickets posted to ingest (warning at 2 s, breach at 4 s) come:

- events dated in the year 1 and the year 9999: ingest refuses the whole
  request with 422 naming ``occurred_at``, and nothing of it is stored (a
  valid event in the same request never reaches the topic);
- a ticket whose id has the contract's full 200 characters: handled like any
  other (its derived ids are bounded), its warning mail and breach SMS and
  mail arrive once each;
- titles that try to add mail headers (``x\\nBcc: …``, ``x\\r\\nReply-To : …``):
  accepted, shown as one line; no mail carries a ``Bcc`` or ``Reply-To``
  header and nothing is ever addressed to the attacker's domain;
- records written straight to the topics: a null value and bytes that are
  not UTF-8, on the tickets topic and on the SLA topic. Each consumer keeps
  the two of its topic as dead letters (``GET /v1/dead-letters``, admin
  token only) and goes on with its partitions.

Every ticket gets its warning and breach exactly once, and neither the engine
nor the notifier restarted.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from e2e.system import (
    ADMIN,
    ONCALL_PHONE,
    SUPERVISOR,
    System,
    created,
    facts,
    header_block,
    produce_raw,
    read_topic,
    sms_names,
    unfolded,
    wait_until,
)
from slawatch_common.topics import Topics
from support.processes import ServiceProcess
from support.smtp import Received

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

LONG = ("LONG-" + string.ascii_lowercase * 8)[:200]
BCC, BCC_TITLE = "I-BCC", "x\nBcc: attacker@evil.example"
REPLY, REPLY_TITLE = "I-REPLY", "x\r\nReply-To : attacker@evil.example"
NORMAL = ["N-1", "N-2", "N-3", "N-4"]
ASSIGNEES = {
    **{ticket: f"agent-{ticket.lower()}@example.com" for ticket in [*NORMAL, BCC, REPLY]},
    LONG: "long@example.com",
}
"""Every ticket that must be notified, with the address of its warning mail."""

NULL_KEY, BYTES_KEY = b"e2e:poison-null", b"e2e:poison-bytes"
NOT_UTF8 = b"\xff\xfe{\x80"
EXTRA_HEADER = re.compile(rb"^(bcc|reply-to|cc)[ \t]*:", re.IGNORECASE | re.MULTILINE)


def key(ticket: str) -> str:
    return f"e2e:{ticket}"


def test_poison_is_refused_or_dead_lettered_and_every_ticket_is_notified_once(
    system: System, kafka_bootstrap: str, topics: Topics
) -> None:
    pids = {proc.script: proc.pid for proc in (system.engine, system.notifier)}

    def now() -> datetime:
        return datetime.now(UTC)

    def accepted(event: dict[str, Any]) -> None:
        answer = system.post(event)
        assert answer.status_code == 202, answer.text

    accepted(created("N-1", now()))
    too_early = [created("R-1", datetime(1, 1, 1, tzinfo=UTC)), created("R-2", now())]
    refused_early = system.post(*too_early)
    accepted(created("N-2", now()))
    on_tickets = produce_raw(
        kafka_bootstrap, topics.tickets, [(0, NULL_KEY, None), (1, BYTES_KEY, NOT_UTF8)]
    )
    accepted(
        created(LONG, now(), assignee_id="agent-long", email=ASSIGNEES[LONG], event_id="e2e:long")
    )
    too_late = [
        created("R-3", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        created("R-4", now()),
    ]
    refused_late = system.post(*too_late)
    accepted(created("N-3", now()))
    accepted(created(BCC, now(), title=BCC_TITLE))
    on_sla = produce_raw(
        kafka_bootstrap, topics.sla, [(0, NULL_KEY, None), (1, BYTES_KEY, NOT_UTF8)]
    )
    accepted(created(REPLY, now(), title=REPLY_TITLE))
    accepted(created("N-4", now()))

    # out of the window: the whole request refused, naming the instant
    for answer, why in ((refused_early, "too_early"), (refused_late, "too_far_ahead")):
        assert answer.status_code == 422, answer.text
        errors = answer.json()["detail"]
        assert [(e["loc"], e["type"]) for e in errors] == [(["body", 0, "occurred_at"], why)]

    # every ticket: warning mail, breach SMS and breach mail
    def seen() -> dict[str, tuple[int, int, int]]:
        return deliveries(system)

    def complete() -> bool:
        return all(min(counts) >= 1 for counts in seen().values())

    try:
        wait_until(complete, 90, "a warning and a breach for every ticket")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; (warning mails, breach mails, SMS) so far: {seen()}"
        ) from None
    time.sleep(3)  # a notification sent twice would show by now
    assert seen() == dict.fromkeys(ASSIGNEES, (1, 1, 1))

    mails = system.smtp.received_snapshot()
    assert len(mails) == 2 * len(ASSIGNEES), "mails about no ticket of this test"
    assert len(system.sms.received()) == len(ASSIGNEES), "SMS about no ticket of this test"
    for mail in mails:
        stage = facts(mail.message)["Stage"]
        ticket = facts(mail.message)["Ticket"].removeprefix("e2e:")
        expected = [ASSIGNEES[ticket]] if stage.startswith("warning") else [SUPERVISOR]
        assert mail.recipients == expected, (ticket, stage)
    assert {sms.to for sms in system.sms.received()} == {ONCALL_PHONE}

    # no event text makes a header or a recipient
    for mail in mails:
        message = mail.message
        for name in ("Bcc", "Reply-To", "Cc"):
            assert message.get_all(name) is None, (name, message["Subject"])
        assert EXTRA_HEADER.search(header_block(mail.raw)) is None, header_block(mail.raw)
        assert "evil.example" not in str(message["To"])
    assert [a for a in system.smtp.rcpt_commands if "evil.example" in a] == []
    for ticket, title in ((BCC, "x Bcc: attacker@evil.example"), (REPLY, REPLY_TITLE)):
        shown = " ".join(title.split())
        for mail in mails_of(mails, ticket):
            assert unfolded(str(mail.message["Subject"])).endswith(f": {shown}")
            assert facts(mail.message)["Title"] == shown

    # the 200-character id: its own clocks, breached like any other
    status = httpx.get(f"{system.engine.url}/v1/tickets/e2e/{LONG}/sla", headers=ADMIN, timeout=10)
    assert status.status_code == 200, status.text
    response = next(c for c in status.json()["clocks"] if c["metric"] == "response")
    assert response["breached"] is True

    # the raw records: dead letters of the service that reads their topic, for admins only
    letters = {
        system.engine: expected_letters(topics.tickets, on_tickets),
        system.notifier: expected_letters(topics.sla, on_sla),
    }
    for service, expected_rows in letters.items():
        wait_for_letters(system, service, len(expected_rows))
        assert listed(system, service) == expected_rows
        assert system.dead_letters(service, token=None).status_code == 401
        assert system.dead_letters(service, token="not-the-admin-token").status_code == 401

    # nothing of a refused request was stored
    refused_ids = {event["event_id"] for event in (*too_early, *too_late)}
    stored = read_topic(kafka_bootstrap, topics.tickets)
    assert {(r.partition, r.offset) for r in stored if r.value in (None, NOT_UTF8)} == set(
        on_tickets
    )
    assert refused_ids.isdisjoint(event_ids(r.value for r in stored))
    for refused in ("R-1", "R-2", "R-3", "R-4"):
        answer = httpx.get(
            f"{system.engine.url}/v1/tickets/e2e/{refused}/sla", headers=ADMIN, timeout=10
        )
        assert answer.status_code == 404, (refused, answer.text)

    # neither consumer stopped or restarted
    assert {proc.script: proc.pid for proc in (system.engine, system.notifier)} == pids
    for proc in (system.engine, system.notifier):
        assert proc.running, proc.log_tail()
        assert httpx.get(f"{proc.url}/readyz", timeout=10).status_code == 200


def deliveries(system: System) -> dict[str, tuple[int, int, int]]:
    """Per ticket of the test: (warning mails, breach mails, breach SMS) received so far."""
    mails = system.smtp.received_snapshot()
    texts = [sms.message for sms in system.sms.received()]
    counts = {}
    for ticket in ASSIGNEES:
        stages = [facts(mail.message)["Stage"] for mail in mails_of(mails, ticket)]
        warnings = sum(stage.startswith("warning") for stage in stages)
        breaches = stages.count("breach")
        counts[ticket] = (warnings, breaches, sum(sms_names(text, key(ticket)) for text in texts))
    return counts


def wait_for_letters(system: System, service: ServiceProcess, count: int) -> None:
    wait_until(lambda: len(listed(system, service)) >= count, 30, f"{service.script} letters")


def mails_of(mails: list[Received], ticket: str) -> list[Received]:
    """The mails whose facts name ``ticket`` (in full, unlike a clipped subject)."""
    return [mail for mail in mails if facts(mail.message).get("Ticket") == key(ticket)]


Letter = tuple[str, int, int, str | None, str | None, str | None]


def expected_letters(topic: str, stored: list[tuple[int, int]]) -> set[Letter]:
    """The null record and the non-UTF-8 one, as ``listed`` shows them."""
    (null_partition, null_offset), (bytes_partition, bytes_offset) = stored
    return {
        (topic, null_partition, null_offset, NULL_KEY.decode(), None, None),
        (topic, bytes_partition, bytes_offset, BYTES_KEY.decode(), None, NOT_UTF8.hex()),
    }


def listed(system: System, service: ServiceProcess) -> set[Letter]:
    """The dead letters ``service`` lists: topic, partition, offset, key, value (text) and
    value in hex (when not UTF-8); fails if one record is listed twice."""
    answer = system.dead_letters(service)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["dead_letters"]
    found = {
        (r["topic"], r["partition"], r["offset"], r["key"], r["value"], r.get("value_hex"))
        for r in rows
    }
    assert len(found) == len(rows), rows
    return found


def event_ids(values: Iterable[bytes | None]) -> set[str]:
    """The ``event_id`` of every value that is a JSON event."""
    found: set[str] = set()
    for value in values:
        try:
            found.add(json.loads(value or b"")["event_id"])
        except (TypeError, ValueError, KeyError):
            continue  # a null record, bytes that are not UTF-8 JSON
    return found
