"""Reads ticket events from Kafka and applies them, one transaction per batch.

Per batch, in one database transaction: load and lock the batch's tickets and
their clocks (one statement each), drop event ids applied before, apply the
rest in order in memory, then write the changed tickets and clocks, the SLA
events (outbox), the processed ids and the dead letters (unreadable records,
with the reason) with one statement per table. Then commit the Kafka offsets.
A record whose application raises is found by halving the batch and kept as a
dead letter; the rest is applied without it; a database that is away is
waited out (``slawatch_common.consumer.Isolator``).
Offsets therefore never run ahead of the state they describe; a crash before
the offset commit redelivers the batch, and the processed-event ids make the
replay change nothing.

On partition assignment the clocks of those partitions are loaded into the
timer index, and the timer is held until the input is read up to the end
offsets of that moment (the lag guard). When a rebalance is in flight and
another engine wrote a ticket, clock or event id of the batch first (the
clock's version guard, or a unique key, fences the deposed writer), the batch
is rolled back and read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.consumer import (
    DeadLetter,
    Isolator,
    PoisonRecordError,
    decode_record,
    keep_dead_letters,
)
from slawatch_common.events import TicketEvent
from slawatch_engine import store
from slawatch_engine.ledger import Changes, Ledger
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.store import StaleClockError
from slawatch_engine.timer import DueIndex, Timer

log = logging.getLogger(__name__)

MAX_BATCH = 500


class Intake(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        db: AsyncEngine,
        ledger: Ledger,
        index: DueIndex,
        timer: Timer,
        lock: asyncio.Lock,
        on_committed: Callable[[Changes], None],
        now: Callable[[], datetime],
        metrics: EngineMetrics,
    ) -> None:
        self._consumer = consumer
        self._db = db
        self._ledger = ledger
        self._index = index
        self._timer = timer
        self._lock = lock
        self._on_committed = on_committed
        self._now = now
        self._metrics = metrics
        self._catch_up_to: dict[TopicPartition, int] = {}
        self._loading: asyncio.Task[None] | None = None
        self._read_to: dict[TopicPartition, tuple[int, datetime]] = {}
        self._isolator = Isolator(
            "engine",
            passthrough=(StaleClockError, IntegrityError),
            on_dead_letter=self._counted,
            on_transient=lambda _: metrics.heartbeats.fault("intake"),
        )

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    # --- rebalance ---------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._stop_loading()
        self._index.drop_partitions(tp.partition for tp in revoked)
        for tp in revoked:
            self._read_to.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Hold the timer, note the end offsets to catch up to, and load the partitions'
        clocks into the index in the background: a million clocks take seconds, and
        the consumer must keep its group membership meanwhile."""
        self._timer.hold(True)
        await self._stop_loading()
        ends = await self._consumer.end_offsets(assigned) if assigned else {}
        self._catch_up_to = {tp: end for tp, end in ends.items() if end > 0}
        partitions = sorted(tp.partition for tp in assigned)
        self._loading = asyncio.create_task(self._load(partitions), name="load due clocks")

    async def _load(self, partitions: list[int]) -> None:
        started, loaded = time.perf_counter(), 0
        self._index.begin_load()
        try:
            async with self._db.connect() as conn:
                # closed before the connection goes back to the pool, also when the load
                # is cancelled (a rebalance): the cursor's read transaction ends with it
                chunks = store.due_clocks(conn, partitions)
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        loaded += self._index.load(chunk)
                        await asyncio.sleep(0)  # heartbeats and intake run between chunks
        finally:
            self._index.end_load()
        # The index's objects live as long as the assignment: keep the cyclic
        # collector from walking a million of them again and again.
        gc.collect()
        gc.freeze()
        log.info(
            "assigned %s: %d clocks scheduled in %.1f s",
            partitions,
            loaded,
            time.perf_counter() - started,
        )
        self._loading = None
        await self._check_caught_up()

    async def _stop_loading(self) -> None:
        loading, self._loading = self._loading, None
        if loading is not None and not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading

    async def _check_caught_up(self) -> None:
        for tp, end in list(self._catch_up_to.items()):
            if await self._consumer.position(tp) >= end:
                del self._catch_up_to[tp]
        if not self._catch_up_to and self._loading is None:
            self._timer.hold(False)

    def input_time(self) -> datetime | None:
        """While intake lags behind its input: the instant up to which it has read it
        (the earliest over the lagging partitions); None when caught up."""
        lagging = [
            at
            for tp, (offset, at) in self._read_to.items()
            if (high := self._consumer.highwater(tp)) is not None and offset < high
        ]
        return min(lagging, default=None)

    # --- consumption ---------------------------------------------------------------

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            records = [record for batch in batches.values() for record in batch]
            if records and await self._apply_or_rewind(records):
                self._note_read(batches)
                await self._commit()
            if self._catch_up_to:
                await self._check_caught_up()
            self._metrics.heartbeats.tick("intake")

    def _note_read(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """How far each partition has been applied: next offset and its last record's time."""
        for tp, batch in batches.items():
            if batch:
                last = batch[-1]
                at = datetime.fromtimestamp(last.timestamp / 1000, UTC)
                self._read_to[tp] = (last.offset + 1, at)
        self._timer.wake()

    async def _commit(self) -> None:
        try:
            await self._consumer.commit()
        except CommitFailedError as exc:
            # The group rebalanced meanwhile: the batch's state is committed already,
            # and whoever reads it again drops its events as duplicates.
            log.warning(
                "offset commit failed after a rebalance; the batch may be read again: %s", exc
            )

    async def _apply_or_rewind(self, records: list[Any]) -> bool:
        """Apply the batch, dead-lettering what fails on its own (``Isolator``); if another
        engine changed one of its clocks meanwhile (a rebalance in flight), roll back and
        read the batch again. False then."""
        try:
            await self._isolator.apply(records, self._apply)
        except (StaleClockError, IntegrityError) as exc:
            # another engine wrote one of the batch's clocks, tickets or event ids first
            log.warning("state changed under us (%s); reading the batch again", exc)
            for tp, first in _first_offsets(records).items():
                self._consumer.seek(tp, first)
            return False
        return True

    def _counted(self, letter: DeadLetter) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()
        self._metrics.rejected(letter.reason)

    async def _apply(self, records: list[Any], letters: list[DeadLetter]) -> None:
        """One transaction: the records' events applied, ``letters`` and the records that
        cannot be read as ticket events kept as dead letters."""
        parsed: list[tuple[TicketEvent, int]] = []
        invalid: list[DeadLetter] = []
        for record in records:
            try:
                parsed.append((decode(record.value), record.partition))
            except PoisonRecordError as exc:
                invalid.append(DeadLetter.of(record, exc.reason, exc))
        now = self._now()
        changes = Changes()
        rejected: list[str] = []
        applied: list[str] = []
        async with self._lock, self._db.begin() as conn:
            # Lock the batch's tickets and clocks first: a writer that waited here for
            # another engine's commit then sees that engine's processed ids too.
            work = await store.load_tickets(conn, {event.key for event, _ in parsed})
            unseen = await store.unseen_event_ids(conn, [event.event_id for event, _ in parsed])
            fresh: list[str] = []
            for event, partition in parsed:
                if event.event_id not in unseen:
                    rejected.append("duplicate")
                    continue
                unseen.discard(event.event_id)  # a repeat within the batch is a duplicate too
                fresh.append(event.event_id)
                outcome = self._ledger.apply(work, event, partition, now)
                changes.merge(outcome)
                if outcome.rejected:
                    rejected.append(outcome.rejected)
                else:
                    applied.append(event.type)
            await keep_dead_letters(conn, store.dead_letters, [*letters, *invalid], now)
            await work.save(conn, now)
            await self._ledger.stage(conn, changes, now)
            await store.mark_processed(conn, fresh, now)
        self._index.update(changes)
        self._timer.wake()
        for event_type in applied:
            self._metrics.applied(event_type)
        for reason in rejected:
            self._metrics.rejected(reason)
        for letter in invalid:
            letter.log("engine")
            self._counted(letter)
        self._on_committed(changes)


def decode(value: bytes | None) -> TicketEvent:
    """The ticket event in a record's value, or ``PoisonRecordError`` saying why not."""
    return decode_record(value, TicketEvent)


def _first_offsets(records: list[Any]) -> dict[TopicPartition, int]:
    firsts: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        firsts[tp] = min(firsts.get(tp, record.offset), record.offset)
    return firsts
