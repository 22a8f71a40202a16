"""The retry schedule and a notification's transitions (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from slawatch_notifier.channels.port import Delivered, Permanent, Retryable
from slawatch_notifier.retry import RetryPolicy, Status, backoff, next_step

POLICY = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=60.0)
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60)]
)
def test_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert POLICY.ceiling(attempt) == ceiling


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    rand = random.Random(7)
    for attempt in range(1, 12):
        for _ in range(200):
            wait = backoff(POLICY, attempt, rand.random())
            assert timedelta(0) <= wait <= timedelta(seconds=POLICY.ceiling(attempt))
    assert backoff(POLICY, 3, 0.0) == timedelta(0)
    assert backoff(POLICY, 3, 0.5) == timedelta(seconds=2)


def test_delivered_is_sent() -> None:
    assert next_step(Delivered("id"), 1, POLICY, NOW, 0.5).status is Status.SENT


def test_permanent_fails_at_once() -> None:
    step = next_step(Permanent("HTTP 400"), 1, POLICY, NOW, 0.5)
    assert (step.status, step.error, step.final) == (Status.FAILED, "HTTP 400", True)


def test_retryable_is_rescheduled_after_the_backoff() -> None:
    step = next_step(Retryable("HTTP 503"), 3, POLICY, NOW, 0.5)
    assert step.status is Status.PENDING
    assert step.next_attempt_at == NOW + timedelta(seconds=2)
    assert not step.final


def test_retryable_on_the_last_attempt_fails() -> None:
    step = next_step(Retryable("HTTP 503"), 5, POLICY, NOW, 0.5)
    assert step.status is Status.FAILED
    assert step.error == "HTTP 503 (after 5 attempts)"
