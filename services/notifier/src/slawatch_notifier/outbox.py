"""Outbox: every finished notification's ``NotificationRecord``, published after its commit.

The dispatcher commits a notification as ``sent``, ``failed`` or ``folded``
(into a digest) with ``published = false`` and rings the outbox bell; the outbox reads such rows,
publishes one record each to ``<prefix>.notifications`` (key
``source:ticket_id``) with the idempotent producer, then marks them published.
A stop or crash between the two republishes a record with the same
``event_id``; consumers drop the repeat. A broker outage is recoverable: the rows stay
unpublished and the next pass (bell or ``interval_s``) tries again.

Every final status change unpublishes the row again (``store.finish_attempts``),
so a notification redriven after it failed gets the record of its new outcome
published too; that record's ``event_id`` carries the redrive generation
(``notification:<id>:<kind>:r<n>``; without a redrive ``notification:<id>:<kind>``),
so consumers do not drop it as a repeat. Every identifier of a record is
bounded to the contract's 200 characters (``bounded_id``: itself when it
fits, else its head and a hash). A row whose record still cannot be built is
logged, counted (``records_unpublishable``) and marked published with the
reason in its note, and the outbox goes on with the rest.

A record names its recipient by id and the address by its keyed hash
(``addresses.AddressHasher``: ``hmac-sha256:<16 hex digits>``), never the
address itself, which the row keeps for sending; a provider's error that
quotes the address has it replaced by the hash as well. (The contract's field
is still called ``address``.) A ``refused`` notification has no record.

The rows come from a ``RecordSource``: the notifications (``NOTIFICATIONS``,
the default), or another table whose rows end as notifications do, published
by an outbox of its own (``reports.RECORDS``: compliance-report mails).

A pass starts ``GATHER_S`` after the bell, so that under load one pass reads,
publishes and marks many records (each pass costs a read, a write and the
producer's round trip however few it carries); a record waits that much longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.events import Notification, NotificationRecord, bounded_id
from slawatch_common.runtime import Backoff
from slawatch_notifier import store
from slawatch_notifier.addresses import AddressHasher
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.retry import Status

log = logging.getLogger(__name__)

SOURCE = "slawatch-notifier"
BATCH = 100
GATHER_S = 0.1
ERROR_LIMIT = 2000


_KINDS = {
    Status.SENT: "notification.sent",
    Status.FAILED: "notification.failed",
    Status.FOLDED: "notification.folded",
}


@dataclass(frozen=True, slots=True)
class RecordSource:
    """Where an outbox reads finished rows whose record is unpublished (oldest first, at
    most a given number), and how it marks them published, or unpublishable with a reason
    by id; each in the caller's transaction."""

    unpublished: Callable[[AsyncConnection, int], Awaitable[list[store.Finished]]]
    mark_published: Callable[[AsyncConnection, Sequence[str]], Awaitable[None]]
    mark_unpublishable: Callable[[AsyncConnection, Mapping[str, str]], Awaitable[None]]


NOTIFICATIONS = RecordSource(store.unpublished, store.mark_published, store.mark_unpublishable)


def event_id(finished: store.Finished) -> str:
    """``notification:<id>:<kind>``, ``:r<n>`` after the n-th redrive; bounded. Stable across
    republishing, distinct for each final outcome of a notification."""
    generation = f":r{finished.redrives}" if finished.redrives else ""
    return bounded_id(f"notification:{finished.id}:{finished.status.value}{generation}")


def record_for(finished: store.Finished, hasher: AddressHasher) -> NotificationRecord:
    """The record of a finished notification; its ``event_id`` is stable across republishing.
    ``hasher`` stands in for the address (in ``address`` and in the error's words)."""
    # a row without an address has no hash: its record stays invalid (``flush``)
    hashed = hasher(finished.channel, finished.address) if finished.address.strip() else ""
    error = finished.last_error
    if error:
        error = hasher.redact(finished.channel, finished.address, error)[:ERROR_LIMIT]
    digest_id = finished.digest_id if finished.status is Status.FOLDED else None
    return NotificationRecord(
        event_id=event_id(finished),
        type=_KINDS[finished.status],
        occurred_at=finished.updated_at,
        source=SOURCE,
        data=Notification(
            notification_id=bounded_id(finished.id),
            sla_event_id=bounded_id(finished.sla_event_id),
            clock_id=bounded_id(finished.clock_id),
            stage=bounded_id(finished.stage),
            ticket_source=bounded_id(finished.ticket_source),
            ticket_id=bounded_id(finished.ticket_id),
            recipient=bounded_id(finished.recipient),
            channel=finished.channel,
            address=hashed,
            attempts=max(finished.attempts, 1),
            error=error if finished.status is Status.FAILED else None,
            digest_id=bounded_id(digest_id) if digest_id else None,
        ),
    )


class Outbox:
    """The publisher loop; ``run`` never returns."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        metrics: NotifierMetrics,
        bell: asyncio.Event,
        interval_s: float = 5.0,
        gather_s: float = GATHER_S,
        hasher: AddressHasher,
        source: RecordSource = NOTIFICATIONS,
        loop: str = "outbox",
    ) -> None:
        """``hasher``: what a record shows for an address (``record_for``); ``loop``: the name
        its heartbeat and transient faults are shown under."""
        self._engine = engine
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._bell = bell
        self._interval_s = interval_s
        self._gather_s = gather_s
        self._hasher = hasher
        self._source = source
        self._loop = loop

    async def run(self) -> None:
        backoff = Backoff(self._loop, self._metrics.heartbeats)
        while True:
            self._bell.clear()
            try:
                while await self.flush() == BATCH:
                    pass
            except Exception as exc:
                await backoff.after(exc)
                continue
            backoff.ok()
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._bell.wait()
            except TimeoutError:
                pass
            await asyncio.sleep(self._gather_s)

    async def flush_all(self) -> None:
        """Publish every pending record (at shutdown)."""
        while await self.flush() == BATCH:
            pass

    async def flush(self) -> int:
        """Publish up to ``BATCH`` pending records; how many were settled (acknowledged by
        the broker, or found unpublishable), which are marked published. All are handed
        to the producer in order before any acknowledgement is awaited, so they travel
        in batches."""
        async with self._engine.connect() as conn:
            finished = await self._source.unpublished(conn, BATCH)
        sending: list[tuple[str, NotificationRecord, asyncio.Future[Any]]] = []
        unpublishable: dict[str, str] = {}
        try:
            for item in finished:
                try:
                    record = record_for(item, self._hasher)
                    value, key = record.model_dump_json().encode(), record.key.encode()
                except Exception as exc:
                    log.exception("the record of notification %s cannot be built", item.id)
                    unpublishable[item.id] = f"{type(exc).__name__}: {exc}"
                    continue
                ack = await self._producer.send(self._topic, value=value, key=key)
                sending.append((item.id, record, ack))
        except KafkaError as exc:
            log.warning("publishing notification records failed; will retry: %s", exc)
        acks = await asyncio.gather(*(ack for _, _, ack in sending), return_exceptions=True)
        published: list[str] = []
        for (notification_id, record, _), outcome in zip(sending, acks, strict=True):
            if isinstance(outcome, KafkaError):
                log.warning("publishing %s failed; will retry: %s", record.event_id, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                published.append(notification_id)
                self._metrics.records_published.labels(record.type).inc()
        if published or unpublishable:
            async with self._engine.begin() as conn:
                if published:
                    await self._source.mark_published(conn, published)
                await self._source.mark_unpublishable(conn, unpublishable)
            self._metrics.records_unpublishable.inc(len(unpublishable))
        return len(published) + len(unpublishable)
