"""The three services as separate processes against the real broker, PostgreSQL and SMTP.

A P1 ticket posted to ingest gets its warning mail and then its breach SMS and
mail, each within a second of its threshold; a ticket answered in time gets
neither; an engine killed with SIGKILL mid-flow loses no clock, sends nothing
twice, and fires the threshold it missed once it is back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from e2e.system import ADMIN, System, created, responded, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


def test_warning_and_breach_arrive_on_time_and_an_answered_ticket_never_breaches(
    system: System,
) -> None:
    t0 = datetime.now(UTC)
    assert system.post(created("A-1", t0), created("B-1", t0)).status_code == 202
    time.sleep(max(0.0, (t0 + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()))
    assert system.post(responded("B-1", datetime.now(UTC))).status_code == 202

    wait_until(lambda: len(system.mails("A-1")) == 2, 15, "A-1 warning and breach mails")
    wait_until(lambda: len(system.sms_about("A-1")) == 1, 5, "A-1 breach SMS")
    warning_mail, breach_mail = sorted(system.mails("A-1"), key=lambda m: m[0])
    assert warning_mail[1] == ["agent-a-1@example.com"]
    assert breach_mail[1] == ["supervisor@example.com"]
    breach_sms = system.sms_about("A-1")[0]
    assert breach_sms.to == "+8613800000002"
    # each within 1 s of its threshold: warning at 50 % (2 s), breach at 100 % (4 s)
    start = t0.timestamp()
    for arrived, threshold in (
        (warning_mail[0], start + 2),
        (breach_mail[0], start + 4),
        (breach_sms.received_at, start + 4),
    ):
        assert 0 <= arrived - threshold < 1.0, arrived - threshold

    # B-1 was answered after 1 s: past its deadline, still no warning and no breach
    time.sleep(max(0.0, start + 5.5 - time.time()))
    assert system.mails("B-1") == []
    assert system.sms_about("B-1") == []
    status = httpx.get(f"{system.engine.url}/v1/tickets/e2e/B-1/sla", headers=ADMIN).json()
    response_clock = next(c for c in status["clocks"] if c["metric"] == "response")
    assert (response_clock["state"], response_clock["breached"]) == ("stopped", False)


def test_engine_killed_mid_flow_loses_nothing_and_sends_nothing_twice(system: System) -> None:
    t0 = datetime.now(UTC)
    assert system.post(created("K-1", t0, priority="P2")).status_code == 202
    # the warning (50 % of 8 s) arrives, then the engine dies before the breach
    wait_until(lambda: len(system.mails("K-1")) == 1, 10, "K-1 warning mail")
    system.engine.kill()
    time.sleep(max(0.0, t0.timestamp() + 9 - time.time()))  # the breach falls due while down
    assert system.sms_about("K-1") == []
    system.engine.start()

    wait_until(lambda: len(system.sms_about("K-1")) == 1, 30, "K-1 breach SMS after restart")
    wait_until(lambda: len(system.mails("K-1")) == 2, 10, "K-1 breach mail after restart")
    time.sleep(2)  # anything sent twice would show up by now
    assert len(system.mails("K-1")) == 2
    assert len(system.sms_about("K-1")) == 1
    subjects = sorted(str(m[2]["Subject"]) for m in system.mails("K-1"))
    assert any("breach" in s.lower() for s in subjects)
    assert any("warning" in s.lower() for s in subjects)

    status = httpx.get(f"{system.engine.url}/v1/tickets/e2e/K-1/sla", headers=ADMIN).json()
    by_metric = {c["metric"]: c for c in status["clocks"]}
    assert by_metric["response"]["breached"] is True
    assert by_metric["resolution"]["state"] == "running"
