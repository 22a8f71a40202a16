"""The transactional outbox: SLA events leave only after the state that produced them.

``stage`` inserts events in the caller's transaction; ``Publisher`` sends
committed rows to Kafka (idempotent producer, acks=all) and marks them
published. A crash between the send and the mark publishes a row again with
the same ``event_id``, which every consumer deduplicates: delivery is
at-least-once and the effect is once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.events import ReportEvent, SlaEvent
from slawatch_common.runtime import Backoff
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.store import outbox

log = logging.getLogger(__name__)

BATCH = 1_000


def _insert_ignoring_duplicates(conn: AsyncConnection) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(outbox).on_conflict_do_nothing(index_elements=["event_id"])
    return sqlite.insert(outbox).on_conflict_do_nothing(index_elements=["event_id"])


async def stage(
    conn: AsyncConnection,
    events: Sequence[SlaEvent | ReportEvent],
    partition_of: Mapping[str, int],
    topic: str,
    now: datetime,
) -> None:
    """Add ``events`` to the outbox in the caller's transaction; repeats are ignored.

    Each row carries the input partition of its ticket: only the engine that
    owns that partition publishes it.
    """
    if not events:
        return
    rows = [
        {
            "event_id": event.event_id,
            "partition": partition_of[event.event_id],
            "topic": topic,
            "key": event.key,
            "value": event.model_dump_json(exclude_none=True),
            "created_at": now,
        }
        for event in events
    ]
    await conn.execute(_insert_ignoring_duplicates(conn), rows)


class Publisher:
    """Drains the outbox to Kafka whenever woken, and at least every ``idle_s``."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        metrics: EngineMetrics,
        now: Callable[[], datetime],
        owned: Callable[[], Collection[int]],
        idle_s: float = 1.0,
    ) -> None:
        self._owned = owned
        self._engine = engine
        self._producer = producer
        self._metrics = metrics
        self._now = now
        self._idle_s = idle_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled. A broker or database that is away is waited out (capped
        backoff); the rows stay unpublished until then."""
        backoff = Backoff("publisher", self._metrics.heartbeats)
        while True:
            self._wake.clear()
            try:
                while await self.publish_batch() == BATCH:
                    pass
            except Exception as exc:
                await backoff.after(exc)
                continue
            backoff.ok()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_s)

    async def publish_batch(self) -> int:
        """Send up to ``BATCH`` unpublished rows of owned partitions, in order; how many."""
        owned = list(self._owned())
        if not owned:
            return 0
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value)
                    .where(outbox.c.published_at.is_(None), outbox.c.partition.in_(owned))
                    .order_by(outbox.c.id)
                    .limit(BATCH)
                )
            ).all()
        if not rows:
            return 0
        futures = [
            await self._producer.send(row.topic, key=row.key.encode(), value=row.value.encode())
            for row in rows
        ]
        await asyncio.gather(*futures)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=self._now())
            )
        self._metrics.published(len(rows))
        return len(rows)
