"""Intake: SLA events from Kafka become escalations and stored, deduplicated notifications.

One pass per ``getmany`` batch, in this order:

1. decode every record as an ``SlaEvent``; an invalid one (a null value, bad
   JSON, wrong schema, a warning without a proper stage) is a dead letter:
   logged, counted and kept in ``notifier_dead_letters`` with its reason, its
   offset committed with the rest, the batch carries on; so is an event whose
   recording raises, found by halving the batch, while the database being
   away is waited out (``slawatch_common.consumer.Isolator``);
2. in ONE transaction (``escalation_store.record_events``) apply the
   warnings, breaches and stops (met, cancelled, retracted) to their
   escalations in order: the first event of a clock cycle snapshots its chain;
   the immediate steps of a stage are routed (``routing.py``) and rendered
   with their ack link (``planner.py``) and inserted with ``ON CONFLICT DO
   NOTHING`` on the notification id; waiting and repeating breach steps become
   scheduled rows; a stop cancels the escalation's pending breach steps and
   notifications. Other SLA events are counted as ignored;
3. only after that commit, commit the batch's offsets, so a crash in between
   redelivers the batch and step 2 changes nothing twice;
4. ring the dispatcher's doorbell (new notifications) and the scheduler's
   bell (new scheduled steps).

Intake never waits for a send: a slow provider slows only the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import partial

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import DeadLetter, Isolator, PoisonRecordError, keep_dead_letters
from slawatch_common.events import SlaEvent
from slawatch_common.kafka import client_options
from slawatch_notifier import escalation_store, store
from slawatch_notifier.clock import Clock
from slawatch_notifier.escalation import (
    ESCALATION_TYPES,
    NOTIFYING_TYPES,
    UnroutableEventError,
    stage_of,
)
from slawatch_notifier.escalation_store import Recorded
from slawatch_notifier.metrics import (
    DeadLetterReason,
    EventOutcome,
    FinalReason,
    NotifierMetrics,
    StepResult,
    count_planned,
)
from slawatch_notifier.planner import Planner
from slawatch_notifier.retry import Status
from slawatch_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

BATCH_MAX_RECORDS = 500
BATCH_WAIT_MS = 500

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class InvalidMessageError(PoisonRecordError):
    """A record that can never become a notification; ``reason`` says which kind."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(str(reason), detail)


def decode(value: bytes | None) -> SlaEvent:
    """The SLA event in a record's value, or ``InvalidMessageError``."""
    if value is None:
        raise InvalidMessageError(DeadLetterReason.INVALID_JSON, "the record has no value (null)")
    try:
        return SlaEvent.model_validate_json(value)
    except ValidationError as exc:
        bad_json = any(error["type"] == "json_invalid" for error in exc.errors())
        reason = DeadLetterReason.INVALID_JSON if bad_json else DeadLetterReason.INVALID_EVENT
        raise InvalidMessageError(reason, str(exc).replace("\n", "; ")) from exc


def consumer_group(settings: NotifierSettings) -> str:
    return f"{settings.topic_prefix}.notifier"


async def start_consumer(
    settings: NotifierSettings,
    *,
    topic: str | None = None,
    group: str | None = None,
    attempts: int = 60,
) -> AIOKafkaConsumer:
    """A started consumer of ``topic`` in ``group`` (by default the SLA topic in the
    notifier's group); waits for the broker."""
    for attempt in range(attempts):
        consumer = AIOKafkaConsumer(
            topic or settings.topics.sla,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=group or consumer_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(settings),
        )
        try:
            await consumer.start()
            return consumer
        except Exception:  # KafkaConnectionError and kin: the broker is not up yet
            await consumer.stop()
            if attempt == attempts - 1:
                raise
            log.warning("broker %s not reachable yet; retrying", settings.kafka_bootstrap)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


class Intake:
    """The consumer loop; ``run`` never returns and raises only on bugs or a dead database."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        engine: AsyncEngine,
        planner: Planner,
        metrics: NotifierMetrics,
        *,
        doorbell: asyncio.Event,
        scheduler_bell: asyncio.Event,
        clock: Clock,
    ) -> None:
        self._consumer = consumer
        self._engine = engine
        self._planner = planner
        self._metrics = metrics
        self._doorbell = doorbell
        self._scheduler_bell = scheduler_bell
        self._clock = clock
        self._rings = [False, False]
        self._isolator = Isolator(
            "notifier",
            retry_on=(escalation_store.StaleEscalationError,),
            on_dead_letter=self._counted,
            on_transient=lambda _: metrics.heartbeats.fault("intake"),
        )

    async def run(self) -> None:
        while True:
            batch: Batch = await self._consumer.getmany(
                timeout_ms=BATCH_WAIT_MS, max_records=BATCH_MAX_RECORDS
            )
            if batch:
                await self.handle(batch)
            self._metrics.heartbeats.tick("intake")

    async def handle(self, batch: Batch) -> None:
        """Record the batch's events (dead-lettering what fails on its own), then commit its
        offsets, then ring the bells."""
        records = [record for records in batch.values() for record in records]
        self._rings = [False, False]
        await self._isolator.apply(records, self._apply)
        await self._commit(batch)
        if self._rings[0]:
            self._doorbell.set()
        if self._rings[1]:
            self._scheduler_bell.set()

    async def _apply(
        self, records: list[ConsumerRecord[bytes, bytes]], letters: list[DeadLetter]
    ) -> None:
        """One transaction: the records' escalation events recorded, ``letters`` and the
        records that cannot be used kept as dead letters; counted once it committed (those
        of ``letters`` by the ``Isolator``, which found them)."""
        now = self._clock.now()
        invalid: list[DeadLetter] = []
        outcomes: list[EventOutcome] = []
        events: list[SlaEvent] = []
        for record in records:
            event = self._accept(record, invalid, outcomes)
            if event is not None:
                events.append(event)
        recorded = Recorded()
        if events or letters or invalid:
            recorded = await escalation_store.in_transaction(
                self._engine, partial(self._record, events, [*letters, *invalid], now)
            )
        for outcome in outcomes:
            self._metrics.sla_events.labels(outcome).inc()
        for letter in invalid:
            letter.log("notifier")
            self._counted(letter)
        self._count(recorded)
        self._rings[0] = self._rings[0] or bool(recorded.inserted)
        self._rings[1] = self._rings[1] or bool(recorded.scheduled)

    def _counted(self, letter: DeadLetter) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()
        self._metrics.sla_events.labels(EventOutcome.DEAD_LETTER).inc()

    async def _record(
        self,
        events: list[SlaEvent],
        letters: list[DeadLetter],
        now: datetime,
        conn: AsyncConnection,
    ) -> Recorded:
        await keep_dead_letters(conn, store.dead_letters, letters, now)
        return await escalation_store.record_events(conn, events, self._planner, now)

    def _accept(
        self,
        record: ConsumerRecord[bytes, bytes],
        letters: list[DeadLetter],
        outcomes: list[EventOutcome],
    ) -> SlaEvent | None:
        """The record's event if escalations care about it; dead-letters what is invalid."""
        try:
            event = decode(record.value)
            if event.type in NOTIFYING_TYPES:
                stage_of(event)
        except InvalidMessageError as exc:
            letters.append(DeadLetter.of(record, exc.reason, exc))
            return None
        except UnroutableEventError as exc:
            letters.append(DeadLetter.of(record, DeadLetterReason.UNROUTABLE, exc))
            return None
        if event.type not in ESCALATION_TYPES:
            outcomes.append(EventOutcome.IGNORED)
            return None
        routed = event.type in NOTIFYING_TYPES
        outcomes.append(EventOutcome.ROUTED if routed else EventOutcome.TRACKED)
        return event

    def _count(self, recorded: Recorded) -> None:
        for event, skip in recorded.skipped:
            level = logging.WARNING if skip.refusal else logging.INFO
            log.log(
                level, "event %s: skipped target (%s): %s", event.event_id, skip.reason, skip.detail
            )
            self._metrics.skipped_targets.labels(skip.reason).inc()
        fresh = set(recorded.inserted)
        for draft in recorded.drafts:
            new = draft.planned.notification_id in fresh
            fresh.discard(draft.planned.notification_id)
            count_planned(self._metrics, draft, new)
        if recorded.cancelled_steps:
            cancelled = self._metrics.escalation_steps.labels(StepResult.CANCELLED)
            cancelled.inc(len(recorded.cancelled_steps))
        for notification in recorded.cancelled_notifications:
            self._metrics.notifications.labels(
                notification.channel, Status.CANCELLED, FinalReason.STOPPED
            ).inc()
        for notification in recorded.superseded_notifications:
            self._metrics.notifications.labels(
                notification.channel, Status.CANCELLED, FinalReason.SUPERSEDED
            ).inc()

    async def _commit(self, batch: Batch) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the batch will be redelivered and deduplicated.
            log.warning("offset commit failed; the batch will be redelivered: %s", exc)
