"""Intake: SLA events from Kafka become stored, deduplicated notifications.

One pass per ``getmany`` batch, in this order:

1. decode every record as an ``SlaEvent``; an invalid one (bad JSON, wrong
   schema, a warning without a stage) is a dead letter: logged, counted and
   kept in ``notifier_dead_letters`` with its reason, its offset committed with
   the rest, the batch carries on;
2. route the warnings and breaches (``routing.route``) and render them
   (``templates.render``); other SLA events are counted as ignored;
3. insert the drafts (and dead letters) in ONE transaction with ``INSERT … ON CONFLICT DO NOTHING``
   on the notification id, and commit;
4. only then commit the batch's offsets, so a crash in between redelivers the
   batch and step 3 drops what is already stored;
5. ring the dispatcher's doorbell.

Intake never waits for a send: a slow provider slows only the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.events import SlaEvent
from slawatch_notifier import store
from slawatch_notifier.clock import Clock
from slawatch_notifier.config import NotifierConfig
from slawatch_notifier.metrics import DeadLetterReason, EventOutcome, NotifierMetrics, PlanResult
from slawatch_notifier.routing import NOTIFYING_TYPES, UnroutableEventError, route
from slawatch_notifier.settings import NotifierSettings
from slawatch_notifier.templates import render

log = logging.getLogger(__name__)

BATCH_MAX_RECORDS = 500
BATCH_WAIT_MS = 500

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class InvalidMessageError(ValueError):
    """A record that can never become a notification; ``reason`` says which kind."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode(value: bytes | None) -> SlaEvent:
    """The SLA event in a record's value, or ``InvalidMessageError``."""
    try:
        return SlaEvent.model_validate_json(value or b"")
    except ValidationError as exc:
        bad_json = any(error["type"] == "json_invalid" for error in exc.errors())
        reason = DeadLetterReason.INVALID_JSON if bad_json else DeadLetterReason.INVALID_EVENT
        raise InvalidMessageError(reason, str(exc).replace("\n", "; ")) from exc


def consumer_group(settings: NotifierSettings) -> str:
    return f"{settings.topic_prefix}.notifier"


async def start_consumer(settings: NotifierSettings, *, attempts: int = 60) -> AIOKafkaConsumer:
    """A started consumer of the SLA topic in the notifier's group; waits for the broker."""
    for attempt in range(attempts):
        consumer = AIOKafkaConsumer(
            settings.topics.sla,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=consumer_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
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
        config: NotifierConfig,
        metrics: NotifierMetrics,
        doorbell: asyncio.Event,
        clock: Clock,
    ) -> None:
        self._consumer = consumer
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._doorbell = doorbell
        self._clock = clock

    async def run(self) -> None:
        while True:
            batch: Batch = await self._consumer.getmany(
                timeout_ms=BATCH_WAIT_MS, max_records=BATCH_MAX_RECORDS
            )
            if batch:
                await self.handle(batch)

    async def handle(self, batch: Batch) -> None:
        """Store the batch's notifications, then commit its offsets, then ring the doorbell."""
        now = self._clock.now()
        letters: list[store.DeadLetter] = []
        drafts = [
            draft
            for records in batch.values()
            for record in records
            for draft in self._plan(record, letters, now)
        ]
        inserted: set[str] = set()
        if drafts or letters:
            async with self._engine.begin() as conn:
                await store.insert_dead_letters(conn, letters)
                if drafts:
                    inserted = await store.insert_new(conn, drafts, now)
        self._count_planned(drafts, inserted)
        await self._commit(batch)
        if inserted:
            self._doorbell.set()

    def _plan(
        self,
        record: ConsumerRecord[bytes, bytes],
        letters: list[store.DeadLetter],
        now: datetime,
    ) -> list[store.Draft]:
        try:
            event = decode(record.value)
            if event.type not in NOTIFYING_TYPES:
                self._metrics.sla_events.labels(EventOutcome.IGNORED).inc()
                return []
            planned = route(event, self._config)
        except InvalidMessageError as exc:
            return self._dead_letter(record, exc.reason, str(exc), letters, now)
        except UnroutableEventError as exc:
            return self._dead_letter(record, DeadLetterReason.UNROUTABLE, str(exc), letters, now)
        self._metrics.sla_events.labels(EventOutcome.ROUTED).inc()
        for skip in planned.skipped:
            log.info("event %s: skipped target (%s): %s", event.event_id, skip.reason, skip.detail)
            self._metrics.skipped_targets.labels(skip.reason).inc()
        return [store.Draft(p, render(p)) for p in planned.notifications]

    def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        reason: DeadLetterReason,
        detail: str,
        letters: list[store.DeadLetter],
        now: datetime,
    ) -> list[store.Draft]:
        """Log, count and keep (in ``notifier_dead_letters``) a record that cannot be used."""
        letters.append(
            store.DeadLetter(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode(errors="replace") if record.key else None,
                value=(record.value or b"").decode(errors="replace"),
                reason=str(reason),
                detail=detail[:4000],
                received_at=now,
            )
        )
        log.warning(
            "dead letter %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail[:1000],
        )
        self._metrics.dead_letters.labels(reason).inc()
        self._metrics.sla_events.labels(EventOutcome.DEAD_LETTER).inc()
        return []

    def _count_planned(self, drafts: Sequence[store.Draft], inserted: set[str]) -> None:
        fresh = set(inserted)
        for draft in drafts:
            new = draft.planned.notification_id in fresh
            fresh.discard(draft.planned.notification_id)
            result = PlanResult.NEW if new else PlanResult.DUPLICATE
            self._metrics.planned.labels(draft.planned.channel, result).inc()

    async def _commit(self, batch: Batch) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the batch will be redelivered and deduplicated.
            log.warning("offset commit failed; the batch will be redelivered: %s", exc)
