"""The life of one notification and its retry schedule. Pure; ``now`` and randomness come in.

    standby ──the one it stands in for failed, or kept failing for fallback_after──▶ pending
       └──that one was sent (also once released, unless sent), ack or stop──▶ cancelled
    pending ──claim──▶ sending ──Delivered──▶ sent
     │ ▲                  │──Permanent, a send that raised, or Retryable
     │ │                  │   once the retry budget is spent──────────────▶ failed
     │ └──Retryable: wait backoff(attempt)───┘                               │
     │                    ├──over its recipient's rate limit (first attempt only)──▶ folded
     │                    └──a number only an event gave, over its cap (first attempt)──▶ refused
     ├──ack, or the escalation stopped──▶ cancelled (never sent; see escalation.py)
     └◀──────────────────────────── redrive (an operator: ``main.py redrive``) ──┘

A notification whose address only the event gave and may not be used is
stored ``refused`` from the start (``routing.py``), and the next channel of its
step is planned to go at once; one the per-number SMS cap refuses at its first
claim (``folding.py``) has its standby take over as after ``failed``.
``refused`` is final and never retried or redriven.

A ``folded`` notification is told in its digest (``digest_id``), a notification
of its own that goes through the same life (``rate_limits.py``). A warning
deferred by quiet hours is ``pending`` with a later ``next_attempt_at``.

Retries run on a time budget, not a count: a notification is retried for
``budget`` (per channel; 6 h by default) from its first attempt — the first
claim for sending, or the first after a redrive, ``Progress.retry_from``. A
retry waits a "full jitter" delay: uniformly random between 0 and
``min(cap, base · 2^(attempt-1))``, so retries of many notifications spread
out instead of hitting a recovering provider together; the last one is made
when the budget ends, and a retryable failure at or after that end fails the
notification ("retry budget of 6h exhausted after N attempt(s); last error: …").
A failed notification is redriven by hand: pending again with a fresh budget
(``attempt`` keeps counting every attempt, so its retries wait up to the cap
from the start).

While a notification keeps failing (``Progress.failing_since``, its first
failed attempt) for ``fallback_after`` or longer, each retryable failure asks
for its standby fallback to be released (``NextStep.release_fallback``): the
next channel is tried while this one keeps retrying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from slawatch_common.events import Channel
from slawatch_notifier.channels.port import Delivered, Outcome, Permanent, Retryable

DEFAULT_BUDGET_S = 6 * 3600.0
DEFAULT_CAP_S = 300.0
DEFAULT_FALLBACK_AFTER_S = 300.0
DEFAULT_MAX_INTERRUPTED = 3


class Status(StrEnum):
    STANDBY = "standby"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    FOLDED = "folded"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    """Never sent: an address only the event gave that may not be used, or over its cap."""


class AttemptOutcome(StrEnum):
    """How one attempt ended; ``interrupted`` = the process stopped while sending."""

    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often a channel retries, and when a fallback joins in.

    ``budget_s`` is the default retry budget, ``channel_budget_s`` the budget of
    particular channels instead; ``max_interrupted`` is how many sends of one
    notification a crash may interrupt before it is failed (``store.recover_interrupted``).
    """

    base_s: float = 1.0
    cap_s: float = DEFAULT_CAP_S
    budget_s: float = DEFAULT_BUDGET_S
    channel_budget_s: Mapping[Channel, float] = field(default_factory=dict)
    fallback_after_s: float = DEFAULT_FALLBACK_AFTER_S
    max_interrupted: int = DEFAULT_MAX_INTERRUPTED

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 1) - 1, 64))

    def budget(self, channel: Channel) -> timedelta:
        """How long ``channel`` retries one notification, from its first attempt."""
        return timedelta(seconds=self.channel_budget_s.get(channel, self.budget_s))

    @property
    def fallback_after(self) -> timedelta:
        return timedelta(seconds=self.fallback_after_s)


def backoff(policy: RetryPolicy, attempt: int, rand: float) -> timedelta:
    """Full-jitter wait after attempt ``attempt``; ``rand`` is uniform in [0, 1)."""
    return timedelta(seconds=policy.ceiling(attempt) * rand)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a notification stands when attempt number ``attempts`` ends.

    ``retry_from``: when its retry budget began (its first attempt, or the first
    after a redrive); ``failing_since``: its first failed attempt since then, or
    None if none failed yet.
    """

    attempts: int
    channel: Channel
    retry_from: datetime
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextStep:
    """Where an attempt leaves its notification.

    ``failing_since``: the first failure of the notification (stored; None after a
    delivery); ``exhausted``: failed because the retry budget was spent;
    ``release_fallback``: it keeps failing for ``fallback_after``: its standby
    fallback joins in while it retries.
    """

    status: Status
    next_attempt_at: datetime | None = None
    error: str | None = None
    failing_since: datetime | None = None
    exhausted: bool = False
    release_fallback: bool = False

    @property
    def final(self) -> bool:
        return self.status in (Status.SENT, Status.FAILED)


def next_step(
    outcome: Outcome, progress: Progress, policy: RetryPolicy, now: datetime, rand: float
) -> NextStep:
    """The transition after attempt number ``progress.attempts`` ended with ``outcome``."""
    failing_since = progress.failing_since or now
    match outcome:
        case Delivered():
            return NextStep(Status.SENT)
        case Permanent(reason):
            return NextStep(Status.FAILED, error=reason, failing_since=failing_since)
        case Retryable(reason):
            budget = policy.budget(progress.channel)
            ends = progress.retry_from + budget
            if now >= ends:
                error = (
                    f"retry budget of {span(budget)} exhausted after {progress.attempts} "
                    f"attempt(s); last error: {reason}"
                )
                return NextStep(
                    Status.FAILED, error=error, failing_since=failing_since, exhausted=True
                )
            retry_at = min(now + backoff(policy, progress.attempts, rand), ends)
            return NextStep(
                Status.PENDING,
                next_attempt_at=retry_at,
                error=reason,
                failing_since=failing_since,
                release_fallback=now - failing_since >= policy.fallback_after,
            )


def span(length: timedelta) -> str:
    """A duration in its largest whole unit where it divides evenly: 6h, 90m, 2s, 1.5s."""
    seconds = length.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def attempt_outcome(outcome: Outcome) -> AttemptOutcome:
    match outcome:
        case Delivered():
            return AttemptOutcome.DELIVERED
        case Retryable():
            return AttemptOutcome.RETRYABLE
        case Permanent():
            return AttemptOutcome.PERMANENT
