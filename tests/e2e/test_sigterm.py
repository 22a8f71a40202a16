"""SIGTERM during a burst of sends: the notifier drains, exits 0 in time, nothing goes twice.

Forty P1 tickets are posted at once; their forty warning mails fall due 2 s
later and go to an SMTP relay that takes ``SMTP_DELAY_S`` over each message,
so with eight sends at a time the burst lasts several seconds. Once the first
mails have arrived and others are being taken by the relay, the notifier
gets SIGTERM (``SLAWATCH_SHUTDOWN_GRACE_S`` = ``GRACE_S``). It must:

- let the sends in flight end (their mails arrive after the signal) and
  record them, publish their records, and exit 0 within the grace period
  plus the time to stop its clients (``EXIT_SLACK_S``), with no traceback in
  its log and no send left in flight at the deadline;
- after a restart, send the rest: every warning and breach mail and every
  breach SMS arrives exactly once, counted by the identity the provider sees
  (``Message-ID``, the SMS ``idempotency_key``). A drained stop leaves no
  send interrupted, so the at-least-once window of a crash
  (``slawatch_notifier/dispatch.py``) does not apply: one repeat is a failure.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from e2e.system import (
    ONCALL_PHONE,
    SUPERVISOR,
    Stored,
    System,
    created,
    facts,
    read_topic,
    sms_names,
    wait_until,
)
from slawatch_common.topics import Topics
from support.processes import started
from support.smtp import Received, SmtpSink

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

GRACE_S = 5.0
SMTP_DELAY_S = 1.0
EXIT_SLACK_S = 5.0
"""Beyond the grace period: publishing the records (at most half the grace) and stopping
the consumer, producer and database pool."""
TICKETS = [f"S-{n:02d}" for n in range(40)]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A relay that takes ``SMTP_DELAY_S`` over every message."""
    with started(SmtpSink(delay_s=SMTP_DELAY_S)) as sink:
        yield sink


@pytest.fixture
def system_env() -> dict[str, str]:
    return {"SLAWATCH_SHUTDOWN_GRACE_S": str(GRACE_S)}


def test_sigterm_mid_burst_drains_exits_zero_and_nothing_is_sent_twice(
    system: System, kafka_bootstrap: str, topics: Topics
) -> None:
    notifier = system.notifier
    t0 = datetime.now(UTC)
    assert system.post(*(created(ticket, t0) for ticket in TICKETS)).status_code == 202

    def mid_burst() -> bool:
        return bool(system.smtp.snapshot()) and system.smtp.in_progress() > 0

    wait_until(mid_burst, 60, "the first warning mails, with more being taken by the relay")
    mark = notifier.log_size()
    signalled_at = time.time()
    exited = notifier.terminate(within=60)
    mails_before_exit = system.smtp.received_snapshot()
    sms_before_exit = system.sms.received()
    shutdown_log = notifier.log_text(mark)
    published = sent_records(read_topic(kafka_bootstrap, topics.notifications))

    assert exited.seconds <= GRACE_S + EXIT_SLACK_S, (exited, shutdown_log[-3000:])
    assert [m for m in mails_before_exit if m.at > signalled_at], "nothing was in flight"
    assert "Traceback" not in shutdown_log, shutdown_log
    assert "still in flight at the shutdown deadline" not in shutdown_log, shutdown_log
    delivered = {notification_id(m) for m in mails_before_exit}
    delivered |= {sms.idempotency_key or "" for sms in sms_before_exit}
    assert delivered - published == set(), "sent before the exit, but no record published"
    assert len(mails_before_exit) < len(TICKETS), "the burst ended before the signal"

    mark = notifier.log_size()
    notifier.start()

    def seen() -> dict[str, tuple[int, int, int]]:
        return deliveries(system)

    try:
        wait_until(lambda: all(min(n) >= 1 for n in seen().values()), 180, "every notification")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (warning mails, breach mails, SMS): {seen()}") from None
    time.sleep(3)  # a repeat would show by now
    assert seen() == dict.fromkeys(TICKETS, (1, 1, 1))

    mails = system.smtp.received_snapshot()
    by_message_id = Counter(str(m.message["Message-ID"]) for m in mails)
    assert [mid for mid, n in by_message_id.items() if n > 1] == []
    assert len(by_message_id) == len(mails) == 2 * len(TICKETS)
    by_key = Counter(sms.idempotency_key for sms in system.sms.received())
    assert [key for key, n in by_key.items() if n > 1] == []
    assert None not in by_key
    assert len(by_key) == len(system.sms.received()) == len(TICKETS)
    for mail in mails:
        ticket, stage = facts(mail.message)["Ticket"], facts(mail.message)["Stage"]
        assignee = f"agent-{ticket.removeprefix('e2e:').lower()}@example.com"
        assert mail.recipients == ([assignee] if stage.startswith("warning") else [SUPERVISOR])
    assert {sms.to for sms in system.sms.received()} == {ONCALL_PHONE}

    restart_log = notifier.log_text(mark)
    assert "interrupted by a crash" not in restart_log, restart_log
    # the exit status last, so that a wrong one does not hide what the restart shows
    assert exited.code == 0, f"exit status {exited.code} after SIGTERM; log:\n{shutdown_log}"


def deliveries(system: System) -> dict[str, tuple[int, int, int]]:
    """Per ticket: (warning mails, breach mails, breach SMS) received so far."""
    found = {ticket: [0, 0, 0] for ticket in TICKETS}
    for mail in system.smtp.received_snapshot():
        shown = facts(mail.message)
        ticket = shown["Ticket"].removeprefix("e2e:")
        found[ticket][0 if shown["Stage"].startswith("warning") else 1] += 1
    for sms in system.sms.received():
        for ticket in TICKETS:
            if sms_names(sms.message, f"e2e:{ticket}"):
                found[ticket][2] += 1
    return {ticket: (n[0], n[1], n[2]) for ticket, n in found.items()}


def notification_id(mail: Received) -> str:
    return str(mail.message["X-Slawatch-Notification-Id"])


def sent_records(records: list[Stored]) -> set[str]:
    """The notification ids of the ``notification.sent`` records on the topic."""
    sent = set()
    for record in records:
        value = json.loads(record.value or b"")
        if value["type"] == "notification.sent":
            sent.add(value["data"]["notification_id"])
    return sent
