"""The retry schedule, the retry budget and a notification's transitions (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from slawatch_common.events import Channel
from slawatch_notifier.channels.port import Delivered, Permanent, Retryable
from slawatch_notifier.retry import (
    Progress,
    RetryPolicy,
    Status,
    backoff,
    next_step,
    span,
)
from slawatch_notifier.settings import NotifierSettings

POLICY = RetryPolicy(base_s=1.0, cap_s=60.0, budget_s=3600.0, fallback_after_s=300.0)
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def _progress(
    attempts: int = 1,
    *,
    began: timedelta = timedelta(0),
    failing: timedelta | None = None,
    channel: Channel = Channel.EMAIL,
) -> Progress:
    """Attempt ``attempts`` ends at NOW; the budget began ``began`` before, the first
    failure ``failing`` before (None: none yet)."""
    failing_since = NOW - failing if failing is not None else None
    return Progress(attempts, channel, retry_from=NOW - began, failing_since=failing_since)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60), (5000, 60)]
)
def test_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert POLICY.ceiling(attempt) == ceiling


def test_the_defaults_wait_at_most_five_minutes_and_retry_for_six_hours() -> None:
    policy = RetryPolicy()
    assert policy.ceiling(100) == 300
    assert policy.budget(Channel.SMS) == timedelta(hours=6)
    assert policy.fallback_after == timedelta(minutes=5)
    assert policy.max_interrupted == 3


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    rand = random.Random(7)
    for attempt in range(1, 12):
        for _ in range(200):
            wait = backoff(POLICY, attempt, rand.random())
            assert timedelta(0) <= wait <= timedelta(seconds=POLICY.ceiling(attempt))
    assert backoff(POLICY, 3, 0.0) == timedelta(0)
    assert backoff(POLICY, 3, 0.5) == timedelta(seconds=2)


def test_delivered_is_sent() -> None:
    assert next_step(Delivered("id"), _progress(), POLICY, NOW, 0.5).status is Status.SENT


def test_permanent_fails_at_once() -> None:
    step = next_step(Permanent("HTTP 400"), _progress(), POLICY, NOW, 0.5)
    assert (step.status, step.error, step.final) == (Status.FAILED, "HTTP 400", True)
    assert (step.exhausted, step.failing_since) == (False, NOW)


def test_retryable_is_rescheduled_after_the_backoff() -> None:
    step = next_step(
        Retryable("HTTP 503"), _progress(3, began=timedelta(seconds=5)), POLICY, NOW, 0.5
    )
    assert step.status is Status.PENDING
    assert step.next_attempt_at == NOW + timedelta(seconds=2)
    assert (step.error, step.failing_since, step.final) == ("HTTP 503", NOW, False)


def test_many_attempts_within_the_budget_are_still_retried() -> None:
    progress = _progress(500, began=timedelta(minutes=59), failing=timedelta(minutes=59))
    step = next_step(Retryable("HTTP 503"), progress, POLICY, NOW, 0.1)
    assert step.status is Status.PENDING
    assert step.next_attempt_at == NOW + timedelta(seconds=6)


def test_the_last_retry_is_made_when_the_budget_ends() -> None:
    progress = _progress(9, began=timedelta(seconds=3590))
    step = next_step(Retryable("HTTP 503"), progress, POLICY, NOW, 0.9)
    assert step.status is Status.PENDING
    assert step.next_attempt_at == NOW + timedelta(seconds=10)  # not the 54 s of the jitter


@pytest.mark.parametrize("over", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_a_retryable_failure_once_the_budget_is_spent_fails_with_the_reason(
    over: timedelta,
) -> None:
    progress = _progress(12, began=timedelta(hours=1) + over, failing=timedelta(minutes=50))
    step = next_step(Retryable("SMTP connection: refused"), progress, POLICY, NOW, 0.5)
    assert (step.status, step.final, step.exhausted) == (Status.FAILED, True, True)
    assert step.error == (
        "retry budget of 1h exhausted after 12 attempt(s); last error: SMTP connection: refused"
    )
    assert step.failing_since == NOW - timedelta(minutes=50)


def test_each_channel_may_have_its_own_budget() -> None:
    policy = RetryPolicy(budget_s=3600.0, channel_budget_s={Channel.SMS: 60.0})
    assert policy.budget(Channel.SMS) == timedelta(minutes=1)
    assert policy.budget(Channel.EMAIL) == timedelta(hours=1)
    began = timedelta(seconds=90)
    sms = next_step(Retryable("x"), _progress(3, began=began, channel=Channel.SMS), policy, NOW, 0)
    mail = next_step(Retryable("x"), _progress(3, began=began), policy, NOW, 0)
    assert (sms.status, mail.status) == (Status.FAILED, Status.PENDING)
    assert sms.error is not None
    assert sms.error.startswith("retry budget of 1m exhausted")


def test_the_whole_schedule_stays_inside_the_budget_and_ends_at_its_end() -> None:
    """Retry after retry with random jitter: every try inside the budget, no wait over the
    cap, the last try at the budget's end, then failed."""
    policy = RetryPolicy(base_s=1.0, cap_s=300.0, budget_s=6 * 3600.0)
    rand = random.Random(11)
    began = now = NOW
    tries: list[datetime] = [now]
    while True:
        progress = Progress(len(tries), Channel.SMS, retry_from=began, failing_since=began)
        step = next_step(Retryable("HTTP 503"), progress, policy, now, rand.random())
        if step.status is Status.FAILED:
            break
        assert step.next_attempt_at is not None
        assert step.next_attempt_at - now <= timedelta(minutes=5)
        now = step.next_attempt_at
        tries.append(now)
    assert all(began <= moment <= began + timedelta(hours=6) for moment in tries)
    assert tries[-1] == began + timedelta(hours=6)
    assert len(tries) > 72  # about one try every 2.5 minutes once the backoff is capped


def test_the_fallback_is_released_once_failing_for_fallback_after() -> None:
    def release(failing: timedelta | None) -> bool:
        progress = _progress(4, began=timedelta(minutes=10), failing=failing)
        return next_step(Retryable("HTTP 503"), progress, POLICY, NOW, 0.5).release_fallback

    assert not release(None)  # the first failure
    assert not release(timedelta(seconds=299))
    assert release(timedelta(seconds=300))
    assert release(timedelta(minutes=40))
    at_once = RetryPolicy(fallback_after_s=0.0)
    assert next_step(Retryable("x"), _progress(), at_once, NOW, 0.5).release_fallback


def test_a_redrive_starts_a_fresh_budget() -> None:
    """A redriven notification (many attempts, its first failure long ago) is retried again
    from its next attempt on: ``retry_from`` is that attempt."""
    progress = _progress(300, began=timedelta(0), failing=None)
    step = next_step(Retryable("HTTP 503"), progress, POLICY, NOW, 0.5)
    assert (step.status, step.failing_since) == (Status.PENDING, NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(21600, "6h"), (5400, "90m"), (86400, "1d"), (2, "2s"), (1.5, "1.5s"), (3600, "1h")],
)
def test_spans_read_in_their_largest_whole_unit(seconds: float, text: str) -> None:
    assert span(timedelta(seconds=seconds)) == text


def test_settings_give_the_budgets_of_each_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAWATCH_RETRY_BUDGET_S", "7200")
    monkeypatch.setenv("SLAWATCH_CHANNEL_RETRY_BUDGET_S", '{"sms": 3600}')
    monkeypatch.setenv("SLAWATCH_FALLBACK_AFTER_S", "120")
    monkeypatch.setenv("SLAWATCH_MAX_INTERRUPTED", "5")
    policy = NotifierSettings().retry_policy()
    assert policy.budget(Channel.SMS) == timedelta(hours=1)
    assert policy.budget(Channel.EMAIL) == timedelta(hours=2)
    assert (policy.fallback_after_s, policy.max_interrupted, policy.cap_s) == (120, 5, 300)
