"""Dispatch: due notifications are claimed, sent, and their outcome recorded.

For each due notification (``pending`` and ``next_attempt_at <= now``):

1. claim: mark it ``sending`` and count the attempt, and COMMIT, before any
   byte leaves the process;
2. send it through its channel's port (``channels/``), outside any transaction;
3. in one transaction record the attempt and move the notification to its next
   state (``retry.next_step``): ``sent``; ``pending`` again after a
   full-jitter backoff; or ``failed`` when the failure is permanent or the
   attempts are used up;
4. ring the outbox, which publishes the ``NotificationRecord`` of every
   finished notification after this commit.

Up to ``send_concurrency`` sends run at once, each in its own task, so a slow
provider holds only its own slots; intake never waits for dispatch.

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
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.events import Channel
from slawatch_notifier import store
from slawatch_notifier.channels.port import ChannelPort, Outcome
from slawatch_notifier.clock import Clock
from slawatch_notifier.metrics import NotifierMetrics
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
        concurrency: int,
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._rand = rand
        self._doorbell = doorbell
        self._outbox_bell = outbox_bell
        self._free = concurrency

    async def recover(self) -> list[str]:
        """Make notifications a crash left ``sending`` due again; their ids. Call before ``run``."""
        async with self._engine.begin() as conn:
            ids = await store.recover_interrupted(conn, self._clock.now())
        if ids:
            log.warning("resending %d notifications interrupted by a crash", len(ids))
        return ids

    async def run(self) -> None:
        async with asyncio.TaskGroup() as sends:
            while True:
                self._doorbell.clear()
                for claimed in await self._claim():
                    sends.create_task(self._deliver(claimed), name=f"send {claimed.id}")
                await self._wait()

    async def _claim(self) -> list[store.Claimed]:
        if self._free == 0:
            return []
        async with self._engine.begin() as conn:
            claimed = await store.claim_due(conn, self._clock.now(), self._free)
        self._free -= len(claimed)
        return claimed

    async def _wait(self) -> None:
        timeout = None if self._free == 0 else await self._until_next_due()
        try:
            async with asyncio.timeout(timeout):
                await self._doorbell.wait()
        except TimeoutError:
            pass

    async def _until_next_due(self) -> float:
        async with self._engine.connect() as conn:
            due = await store.next_due(conn)
        if due is None:
            return IDLE_WAIT_S
        wait = (due - self._clock.now()).total_seconds()
        return min(IDLE_WAIT_S, max(MIN_WAIT_S, wait))

    async def _deliver(self, claimed: store.Claimed) -> None:
        started_at, started = self._clock.now(), time.perf_counter()
        outcome = await self._channels[claimed.channel].send(claimed.outbound)
        latency = time.perf_counter() - started
        now = self._clock.now()
        step = next_step(outcome, claimed.attempts, self._policy, now, self._rand.random())
        attempt = store.Attempt(started_at, round(latency * 1000), outcome)
        async with self._engine.begin() as conn:
            recorded = await store.finish_attempt(conn, claimed, attempt, step, now)
        if recorded:
            self._count(claimed, outcome, step, latency)
        self._free += 1
        self._doorbell.set()
        if step.final:
            self._outbox_bell.set()

    def _count(
        self, claimed: store.Claimed, outcome: Outcome, step: NextStep, latency: float
    ) -> None:
        channel = claimed.channel
        self._metrics.attempts.labels(channel, attempt_outcome(outcome)).inc()
        self._metrics.send_seconds.labels(channel).observe(latency)
        if step.status is Status.PENDING:
            self._metrics.retries.labels(channel).inc()
            log.info("retrying %s at %s: %s", claimed.id, _iso(step.next_attempt_at), step.error)
        elif step.final:
            self._metrics.notifications.labels(channel, step.status).inc()
            log.log(
                logging.WARNING if step.status is Status.FAILED else logging.INFO,
                "notification %s %s after %d attempt(s)%s",
                claimed.id,
                step.status,
                claimed.attempts,
                f": {step.error}" if step.error else "",
            )


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"
