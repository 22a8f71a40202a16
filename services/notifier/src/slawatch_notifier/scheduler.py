"""Scheduler: waiting and repeating breach steps fire at their instant.

The same pattern as dispatch, one level up. For each due step (``pending`` and
``due_at <= now``), in ONE transaction (``escalation_store.fire_step``):

1. read the step and lock its escalation;
2. decide (``escalation.fire_scheduled``): still active in the same
   generation → fire; acknowledged, stopped or superseded → cancel;
3. fire: fence the escalation (``version`` + 1, guarded), mark the step
   ``fired`` (guarded on ``pending``), insert the notifications its targets
   resolve to now (dedup by id) and the step's next repeat;
4. commit, then ring the dispatcher's doorbell.

A step claimed twice (two replicas, a retry after a conflict) fires once: the
second finds it no longer pending. An ack that commits first makes step 2
cancel; one that commits second cancels the notifications step 3 inserted
before the dispatcher can claim them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.consumer import is_fatal, is_transient
from slawatch_common.runtime import Backoff
from slawatch_notifier import escalation_store
from slawatch_notifier.clock import Clock
from slawatch_notifier.escalation_store import StepOutcome
from slawatch_notifier.metrics import NotifierMetrics, StepResult, count_planned
from slawatch_notifier.planner import Planner

log = logging.getLogger(__name__)

BATCH = 100
IDLE_WAIT_S = 5.0
"""Longest sleep with nothing due; intake rings the bell when it schedules a step."""
MIN_WAIT_S = 0.01
RETRY_FAILED = timedelta(minutes=10)
"""A step whose firing raised is tried again this much later."""


class Scheduler:
    """The step loop; ``run`` never returns and raises only on bugs or a dead database."""

    def __init__(
        self,
        engine: AsyncEngine,
        planner: Planner,
        *,
        metrics: NotifierMetrics,
        clock: Clock,
        bell: asyncio.Event,
        doorbell: asyncio.Event,
    ) -> None:
        self._engine = engine
        self._planner = planner
        self._metrics = metrics
        self._clock = clock
        self._bell = bell
        self._doorbell = doorbell

    async def run(self) -> None:
        backoff = Backoff("scheduler", self._metrics.heartbeats)
        while True:
            self._bell.clear()
            try:
                while await self.fire_due() == BATCH:
                    pass
            except Exception as exc:
                await backoff.after(exc)
                continue
            backoff.ok()
            await self._wait()

    async def fire_due(self) -> int:
        """Fire or cancel every step due now (up to ``BATCH``); how many were due.

        A step whose firing raises for a reason other than a database that is away
        is logged, counted and put back ``RETRY_FAILED`` later, so it never stops
        the steps behind it."""
        now = self._clock.now()
        async with self._engine.connect() as conn:
            due = await escalation_store.due_steps(conn, now, BATCH)
        for step_id in due:
            fire = partial(
                escalation_store.fire_step,
                step_id=step_id,
                planner=self._planner,
                now=self._clock.now(),
            )
            try:
                outcome = await escalation_store.in_transaction(self._engine, fire)
            except Exception as exc:
                if is_fatal(exc) or is_transient(exc):
                    raise
                log.exception("step %s cannot be fired; trying again later", step_id)
                self._metrics.escalation_steps.labels(StepResult.FAILED).inc()
                later = self._clock.now() + RETRY_FAILED
                async with self._engine.begin() as conn:
                    await escalation_store.postpone_step(conn, step_id, later)
                continue
            if outcome is not None:
                self._count(outcome)
        return len(due)

    def _count(self, outcome: StepOutcome) -> None:
        if outcome.cancelled is not None:
            log.info("step %s cancelled: %s", outcome.step_id, outcome.cancelled)
            self._metrics.escalation_steps.labels(StepResult.CANCELLED).inc()
            return
        self._metrics.escalation_steps.labels(StepResult.FIRED).inc()
        for skip in outcome.skipped:
            level = logging.WARNING if skip.refusal else logging.INFO
            log.log(
                level, "step %s: skipped target (%s): %s", outcome.step_id, skip.reason, skip.detail
            )
            self._metrics.skipped_targets.labels(skip.reason).inc()
        for draft in outcome.drafts:
            count_planned(self._metrics, draft, draft.planned.notification_id in outcome.inserted)
        if outcome.inserted:
            self._doorbell.set()

    async def _wait(self) -> None:
        async with self._engine.connect() as conn:
            due = await escalation_store.next_step_due(conn)
        timeout = IDLE_WAIT_S
        if due is not None:
            wait = (due - self._clock.now()).total_seconds()
            timeout = min(IDLE_WAIT_S, max(MIN_WAIT_S, wait))
        try:
            async with asyncio.timeout(timeout):
                await self._bell.wait()
        except TimeoutError:
            pass
