"""Dispatch: due notifications are claimed, admitted or folded, sent, and their outcome recorded.

For each due notification (``pending`` and ``next_attempt_at <= now``):

1. claim: in one transaction mark it ``sending`` and count the attempt
   (``store.claim_due``), then hold its first attempt against its
   recipient's rate limit (``folding.admit``): over the limit it becomes
   ``folded`` into the window's digest instead; COMMIT, before any byte
   leaves the process;
2. send it through its channel's port (``channels/``), outside any transaction;
3. record the attempt and move the notification to its next state
   (``retry.next_step``) — one recorder writes every attempt that ended since
   its last pass in one transaction, so under load a transaction carries many
   (the slot stays taken until then): ``sent``; ``pending`` again after a
   full-jitter backoff; or ``failed`` when the failure is permanent or the
   attempts are used up — then its standby fallback on the next channel
   becomes pending (after ``sent`` it is cancelled as not needed;
   ``fallback.py``);
4. ring the outbox, which publishes the ``NotificationRecord`` of every
   finished notification after this commit.

Each channel has its own slots (``concurrency``: up to that many sends of the
channel at once, each in its own task), and a channel without a free slot is
neither claimed from nor waited for: a provider that hangs until the send
timeout holds only its own channel's slots, never another channel's. Intake
never waits for dispatch.

The remaining at-least-once window: a crash after the provider accepted a
message but before step 3 committed leaves the row ``sending``. ``recover``,
run once at start, records that attempt as ``interrupted`` and sends the
notification again with the same Message-ID (email) or idempotency key (SMS),
so the repeat is recognisable downstream but may still reach the recipient
twice. The interrupted attempt counts towards ``max_attempts`` (a message that
crashes the process every time ends ``failed``, not in a loop); when it was the
last one, one more attempt is made. ``recover`` assumes one dispatching process
per database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.events import Channel
from slawatch_notifier import fallback, folding, store
from slawatch_notifier.channels.port import ChannelPort, Delivered, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.folding import Admission, Limits, unlimited
from slawatch_notifier.metrics import FinalReason, NotifierMetrics
from slawatch_notifier.retry import NextStep, RetryPolicy, Status, attempt_outcome, next_step

log = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0
"""Longest sleep with free slots and nothing due; intake rings the doorbell sooner."""

MIN_WAIT_S = 0.01


class Dispatcher:
    """The sender loop; ``run`` never returns and raises only on bugs or a dead database."""

    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[Channel, ChannelPort],
        policy: RetryPolicy,
        *,
        metrics: NotifierMetrics,
        clock: Clock,
        rand: random.Random,
        doorbell: asyncio.Event,
        outbox_bell: asyncio.Event,
        concurrency: Mapping[Channel, int],
        limits: Limits = unlimited,
    ) -> None:
        """``concurrency``: each channel's slots (a channel it omits is never sent on);
        ``limits``: the rate limit of a recipient on a channel (``rate_limits.limit_for``)."""
        self._engine = engine
        self._channels = channels
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._rand = rand
        self._doorbell = doorbell
        self._outbox_bell = outbox_bell
        self._free = {channel: concurrency.get(channel, 0) for channel in channels}
        self._limits = limits
        self._ended: list[_Ended] = []
        self._record_bell = asyncio.Event()

    async def recover(self) -> list[str]:
        """Make notifications a crash left ``sending`` due again; their ids. Call before ``run``."""
        async with self._engine.begin() as conn:
            ids = await store.recover_interrupted(conn, self._clock.now())
        if ids:
            log.warning("resending %d notifications interrupted by a crash", len(ids))
        return ids

    async def run(self) -> None:
        async with asyncio.TaskGroup() as sends:
            sends.create_task(self._record_ended(), name="record attempts")
            while True:
                self._doorbell.clear()
                for claimed in await self._claim():
                    sends.create_task(self._deliver(claimed), name=f"send {claimed.id}")
                await self._wait()

    async def _claim(self) -> list[store.Claimed]:
        slots = {channel: free for channel, free in self._free.items() if free > 0}
        if not slots:
            return []
        now = self._clock.now()
        async with self._engine.begin() as conn:
            claimed = await store.claim_due(conn, now, slots)
            admission = await folding.admit(conn, claimed, self._limits, now)
        self._count_folded(admission)
        for sending in admission.send:
            self._free[sending.channel] -= 1
            self._metrics.in_flight.labels(sending.channel).inc()
        return admission.send

    async def _wait(self) -> None:
        open_channels = [channel for channel, free in self._free.items() if free > 0]
        timeout = await self._until_next_due(open_channels) if open_channels else None
        try:
            async with asyncio.timeout(timeout):
                await self._doorbell.wait()
        except TimeoutError:
            pass

    async def _until_next_due(self, channels: list[Channel]) -> float:
        async with self._engine.connect() as conn:
            due = await store.next_due(conn, channels)
        if due is None:
            return IDLE_WAIT_S
        wait = (due - self._clock.now()).total_seconds()
        return min(IDLE_WAIT_S, max(MIN_WAIT_S, wait))

    async def _deliver(self, claimed: store.Claimed) -> None:
        """Send, then hand the attempt to the recorder; the slot stays taken until recorded."""
        started_at, started = self._clock.now(), time.perf_counter()
        outcome = await self._channels[claimed.channel].send(claimed.outbound)
        latency = time.perf_counter() - started
        now = self._clock.now()
        step = next_step(outcome, claimed.attempts, self._policy, now, self._rand.random())
        attempt = store.Attempt(started_at, round(latency * 1000), outcome)
        self._ended.append(_Ended(claimed, attempt, step, latency))
        self._record_bell.set()

    async def _record_ended(self) -> None:
        """Record every attempt that ended since the last pass, in one transaction.

        While one pass writes, more sends end; the next pass takes them all, so
        under load a transaction records many attempts and costs each little.
        """
        while True:
            await self._record_bell.wait()
            self._record_bell.clear()
            ended, self._ended = self._ended, []
            if not ended:
                continue
            now = self._clock.now()
            async with self._engine.begin() as conn:
                recorded = await store.finish_attempts(
                    conn, [(e.claimed, e.attempt, e.step) for e in ended], now
                )
                final = [
                    (e.claimed, e.step) for e in ended if e.claimed.id in recorded and e.step.final
                ]
                settled = await fallback.settle_many(conn, final, now)
            for e in ended:
                if e.claimed.id in recorded:
                    self._count(e.claimed, e.attempt.outcome, e.step, e.latency, now)
                    self._count_fallbacks(e.claimed, settled.get(e.claimed.id, fallback.Settled()))
                self._free[e.claimed.channel] += 1
                self._metrics.in_flight.labels(e.claimed.channel).dec()
            self._doorbell.set()
            if final:
                self._outbox_bell.set()

    def _count(
        self,
        claimed: store.Claimed,
        outcome: Outcome,
        step: NextStep,
        latency: float,
        now: datetime,
    ) -> None:
        channel = claimed.channel
        self._metrics.attempts.labels(channel, attempt_outcome(outcome)).inc()
        self._metrics.send_seconds.labels(channel).observe(latency)
        if step.status is Status.PENDING:
            self._metrics.retries.labels(channel).inc()
            log.info("retrying %s at %s: %s", claimed.id, _iso(step.next_attempt_at), step.error)
        elif step.final:
            self._metrics.notifications.labels(channel, step.status, _reason(outcome)).inc()
            if step.status is Status.SENT:
                delivery = max(0.0, (now - claimed.due_at).total_seconds())
                self._metrics.delivery_seconds.labels(channel).observe(delivery)
            log.log(
                logging.WARNING if step.status is Status.FAILED else logging.INFO,
                "notification %s %s after %d attempt(s)%s",
                claimed.id,
                step.status,
                claimed.attempts,
                f": {step.error}" if step.error else "",
            )

    def _count_folded(self, admission: Admission) -> None:
        for folded in admission.folded:
            channel = folded.claimed.channel
            self._metrics.notifications.labels(
                channel, Status.FOLDED, FinalReason.RATE_LIMITED
            ).inc()
            log.info("notification %s folded into %s", folded.claimed.id, folded.digest_id)
        for _recipient, channel in admission.digests_opened:
            self._metrics.digests.labels(channel).inc()

    def _count_fallbacks(self, claimed: store.Claimed, settled: fallback.Settled) -> None:
        for promoted in settled.promoted:
            self._metrics.fallbacks.labels(promoted.channel).inc()
            log.warning("%s failed: falling back to %s", claimed.id, promoted.id)
        for stood_down in settled.cancelled:
            reason = FinalReason.NOT_NEEDED
            self._metrics.notifications.labels(stood_down.channel, Status.CANCELLED, reason).inc()
        if settled.promoted:
            self._doorbell.set()


@dataclass(frozen=True, slots=True)
class _Ended:
    """A finished send waiting to be recorded."""

    claimed: store.Claimed
    attempt: store.Attempt
    step: NextStep
    latency: float


def _reason(outcome: Outcome) -> FinalReason:
    """The reason class of a final outcome (a retryable one: the attempts ran out)."""
    match outcome:
        case Delivered():
            return FinalReason.DELIVERED
        case Permanent():
            return FinalReason.PERMANENT
        case Retryable():
            return FinalReason.RETRYABLE


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"
