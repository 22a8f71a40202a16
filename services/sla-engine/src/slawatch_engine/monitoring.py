"""Reads ``slawatch.monitoring`` into ``engine_outages``: the firing intervals of alerts.

One transaction per batch, then the offsets are committed, as for ticket
events (``slawatch_common.consumer.Isolator``: a record that cannot be read or
applied is kept as a dead letter with the reason, a database that is away is
waited out). Folding an alert into its interval is idempotent and does not
depend on the order of arrival (``reporting.note_alert``), so a redelivered
batch changes nothing and no processed-id table is needed. The topic is keyed
by service, so each service's alerts are written by one engine at a time.
After each batch the budget watch is woken for the services it touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import (
    DeadLetter,
    Isolator,
    PoisonRecordError,
    decode_record,
    keep_dead_letters,
)
from slawatch_common.events import MonitoringEvent
from slawatch_engine import store
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.reporting import AlertKey, note_alert

log = logging.getLogger(__name__)

MAX_BATCH = 500


def decode(value: bytes | None) -> MonitoringEvent:
    """The monitoring event in a record's value, or ``PoisonRecordError`` saying why not."""
    return decode_record(value, MonitoringEvent)


async def note_alerts(
    conn: AsyncConnection, events: Sequence[MonitoringEvent], now: datetime
) -> None:
    """Fold ``events`` into the stored intervals (one read, one insert, one update)."""
    if not events:
        return
    o = store.outages
    keys = {(e.data.service, e.data.fingerprint, e.data.starts_at) for e in events}
    rows = await conn.execute(
        select(o.c.id, o.c.service, o.c.fingerprint, o.c.starts_at, o.c.ends_at)
        .where(tuple_(o.c.service, o.c.fingerprint, o.c.starts_at).in_(sorted(keys)))
        .with_for_update()
    )
    stored: dict[AlertKey, tuple[int, datetime | None]] = {
        (r.service, r.fingerprint, r.starts_at): (r.id, r.ends_at) for r in rows
    }
    intervals: dict[AlertKey, datetime | None] = {key: ends for key, (_, ends) in stored.items()}
    names = {}
    for event in events:
        note_alert(intervals, event)
        names[(event.data.service, event.data.fingerprint, event.data.starts_at)] = event.data.name
    new = [key for key in intervals if key not in stored]
    changed = [key for key in intervals if key in stored and stored[key][1] != intervals[key]]
    if new:
        await conn.execute(
            insert(o),
            [
                {
                    "service": service,
                    "fingerprint": fingerprint,
                    "starts_at": starts_at,
                    "ends_at": intervals[(service, fingerprint, starts_at)],
                    "name": names[(service, fingerprint, starts_at)],
                    "updated_at": now,
                }
                for service, fingerprint, starts_at in new
            ],
        )
    if changed:
        await conn.execute(
            update(o).where(o.c.id == bindparam("b_id")),
            [
                {"b_id": stored[key][0], "ends_at": intervals[key], "updated_at": now}
                for key in changed
            ],
        )


class MonitoringIntake:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        db: AsyncEngine,
        metrics: EngineMetrics,
        on_applied: Callable[[set[str]], None],
        now: Callable[[], datetime],
    ) -> None:
        self._consumer = consumer
        self._db = db
        self._metrics = metrics
        self._on_applied = on_applied
        self._now = now
        self._isolator = Isolator(
            "engine monitoring",
            on_dead_letter=self._counted,
            on_transient=lambda _: metrics.heartbeats.fault("monitoring"),
        )

    def _counted(self, letter: DeadLetter) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
            records = [record for batch in batches.values() for record in batch]
            if records:
                await self._isolator.apply(records, self._apply)
                try:
                    await self._consumer.commit()
                except CommitFailedError as exc:
                    log.warning("monitoring offsets not committed after a rebalance: %s", exc)
            self._metrics.heartbeats.tick("monitoring")

    async def _apply(self, records: list[Any], letters: list[DeadLetter]) -> None:
        events: list[MonitoringEvent] = []
        invalid: list[DeadLetter] = []
        for record in records:
            try:
                events.append(decode(record.value))
            except PoisonRecordError as exc:
                invalid.append(DeadLetter.of(record, exc.reason, exc))
        now = self._now()
        async with self._db.begin() as conn:
            await note_alerts(conn, events, now)
            await keep_dead_letters(conn, store.dead_letters, [*letters, *invalid], now)
        for letter in invalid:
            letter.log("engine")
            self._counted(letter)
        self._on_applied({event.data.service for event in events})
