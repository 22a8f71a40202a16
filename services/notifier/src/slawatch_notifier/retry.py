"""The life of one notification and its retry schedule. Pure; ``now`` and randomness come in.

    standby ──the one it stands in for failed──▶ pending           (fallback, routing.py)
       └──that one was sent, ack or stop──▶ cancelled
    pending ──claim──▶ sending ──Delivered──▶ sent
     │ ▲                  │──Permanent, or Retryable on the last attempt──▶ failed
     │ └──Retryable: wait backoff(attempt)───┘
     │                    └──over its recipient's rate limit (first attempt only)──▶ folded
     └──ack, or the escalation stopped──▶ cancelled (never sent; see escalation.py)

A ``folded`` notification is told in its digest (``digest_id``), a notification
of its own that goes through the same life (``rate_limits.py``). A warning
deferred by quiet hours is ``pending`` with a later ``next_attempt_at``.

A retry waits a "full jitter" delay: uniformly random between 0 and
``min(cap, base · 2^(attempt-1))``, so retries of many notifications spread out
instead of hitting a recovering provider together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from slawatch_notifier.channels.port import Delivered, Outcome, Permanent, Retryable


class Status(StrEnum):
    STANDBY = "standby"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    FOLDED = "folded"
    CANCELLED = "cancelled"


class AttemptOutcome(StrEnum):
    """How one attempt ended; ``interrupted`` = the process stopped while sending."""

    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 64))


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> timedelta:
    """Full-jitter wait after attempt ``attempt``; ``rand`` is uniform in [0, 1)."""
    return timedelta(seconds=policy.ceiling(attempt) * rand)


@dataclass(frozen=True, slots=True)
class NextStep:
    """Where an attempt leaves its notification."""

    status: Status
    next_attempt_at: datetime | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.status in (Status.SENT, Status.FAILED)


def next_step(
    outcome: Outcome, attempts: int, policy: RetryPolicy, now: datetime, rand: float
) -> NextStep:
    """The transition after attempt number ``attempts`` ended with ``outcome``."""
    match outcome:
        case Delivered():
            return NextStep(Status.SENT)
        case Permanent(reason):
            return NextStep(Status.FAILED, error=reason)
        case Retryable(reason) if attempts >= policy.max_attempts:
            return NextStep(Status.FAILED, error=f"{reason} (after {attempts} attempts)")
        case Retryable(reason):
            wait = backoff(policy, attempts, rand)
            return NextStep(Status.PENDING, next_attempt_at=now + wait, error=reason)


def attempt_outcome(outcome: Outcome) -> AttemptOutcome:
    match outcome:
        case Delivered():
            return AttemptOutcome.DELIVERED
        case Retryable():
            return AttemptOutcome.RETRYABLE
        case Permanent():
            return AttemptOutcome.PERMANENT
