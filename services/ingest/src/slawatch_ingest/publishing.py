"""Publishing validated events to Kafka, and nothing but acknowledged writes.

``Publisher.publish`` (or ``publish_encoded``, for events whose record value
is already at hand) sends a request's events concurrently through an
idempotent ``acks=all`` producer and returns only when the broker has
acknowledged every one; otherwise it raises ``BrokerUnavailableError``.

A failed ``publish`` may have stored some of the request's events (those the
broker acknowledged, or wrote without the acknowledgement arriving) and not
others. That is safe: ``event_id`` is the idempotency key, consumers drop a
repeated one, and the client retries the whole request.

How the events go: a request with fewer than ``OWN_BATCHES_FROM`` events
(a single event, above all) hands each to ``AIOKafkaProducer.send``, which
packs the events of concurrent requests into shared batches; a larger one
builds batches of its own, one per partition, several times cheaper per
event, and closes them so that they go at once instead of lingering. Either
way an event goes to the partition its key hashes to, the same one.

What a failed ``publish`` must not do is store events *later*: the client was
told they were not taken. aiokafka's idempotent producer retries a batch until
it succeeds (its ``request_timeout_ms`` bounds each attempt but does not
expire the batch), so after a failure the publisher retires its producer,
dropping what it still holds, and connects a fresh one on the next use.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from slawatch_common.events import TicketEvent
from slawatch_common.kafka import durable_producer, start_producer
from slawatch_common.topics import Topics
from slawatch_ingest.parsing import Encoded, Inbound

log = logging.getLogger(__name__)

LINGER_MS = 0
"""Each request waits for its own acknowledgement: send at once; while earlier
sends are in flight, the next produce request gathers what arrives meanwhile."""

OWN_BATCHES_FROM = 100
"""A request with at least this many events is sent as batches of its own.

Below it, sharing batches with concurrent requests (fewer, fuller produce
requests) is worth more than the cheaper append of a batch of one's own.
"""

_PARTITIONER = DefaultPartitioner()
"""What ``AIOKafkaProducer.send`` partitions by (``durable_producer`` sets no other)."""


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge every event in time; some may be stored."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class ProducerClosedError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """Set on sends still pending in a producer closed without delivering them."""


def destination(event: Inbound, topics: Topics) -> tuple[str, bytes]:
    """The topic and key of ``event``: tickets by ``source:ticket_id``, alerts by service.

    The key keeps every event of one ticket (or one service) in one partition,
    hence in order.
    """
    topic = topics.tickets if isinstance(event, TicketEvent) else topics.monitoring
    return topic, event.key.encode()


class Publisher:
    """Owns the Kafka producer of one ingest process.

    ``start`` before use (it waits for a broker that is still coming up) and
    ``stop`` after; ``publish`` and ``ready`` may run concurrently.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        timeout_s: float,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._options = dict(options or {})  # kafka.client_options: TLS, SASL
        self._topics = topics
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        # One batch of a request at a time waits for its partition (see _submit).
        self._partition_turns: defaultdict[tuple[str, int], asyncio.Lock] = defaultdict(
            asyncio.Lock
        )

    @property
    def _request_timeout_ms(self) -> int:
        # Each produce attempt gives up when the caller does, not 40 s later.
        return int(self._timeout_s * 1000)

    async def start(self) -> None:
        """Connect, waiting (about 30 s at most) for a broker that is starting."""
        self._producer = await start_producer(
            self._bootstrap,
            request_timeout_ms=self._request_timeout_ms,
            linger_ms=LINGER_MS,
            options=self._options,
        )
        log.info("producer connected to %s", self._bootstrap)

    async def stop(self) -> None:
        """Close the producer and wait for retired ones to close.

        Sends still pending are dropped, not flushed: by now every request has
        been answered (uvicorn drains requests before the lifespan ends), so a
        pending send belongs to a request that was not told 202, and flushing
        could block for as long as the broker is away.
        """
        producer, self._producer = self._producer, None
        if producer is not None:
            await _close_dropping_pending(producer)
        await asyncio.gather(*self._retiring)
        log.info("producer closed")

    async def publish(self, events: Sequence[Inbound]) -> None:
        """Store ``events``; return once the broker has acknowledged every one.

        Sends them all, then waits for all acknowledgements, within the
        publisher's timeout. Raises ``BrokerUnavailableError`` if the broker is
        unreachable, refuses, or is too slow; some events may then be stored
        (see the module docstring), none will be stored after this returns.
        """
        await self.publish_encoded([Encoded.of(event) for event in events])

    async def publish_encoded(self, events: Sequence[Encoded]) -> None:
        """``publish``, for events already encoded (``parsing.valid_events``)."""
        producer: AIOKafkaProducer | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._connected()
                await self._send_all(producer, events)
        except TimeoutError as exc:
            self._retire(producer)
            raise BrokerUnavailableError(
                f"the broker did not acknowledge within {self._timeout_s:g} s", timed_out=True
            ) from exc
        except KafkaError as exc:
            self._retire(producer)
            raise BrokerUnavailableError(
                f"the broker is unreachable or refused the write: {exc}", timed_out=False
            ) from exc

    async def ready(self, timeout_s: float) -> bool:
        """Whether the broker answers a metadata request within ``timeout_s``.

        Connects a producer if none is connected, so it also brings the
        publisher back after a broker outage.
        """
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self._connected()
                await producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError) as exc:
            log.info("broker %s not ready: %r", self._bootstrap, exc)
            return False
        return True

    async def _send_all(self, producer: AIOKafkaProducer, events: Sequence[Encoded]) -> None:
        acks: list[asyncio.Future[Any]] = []
        try:
            if len(events) >= OWN_BATCHES_FROM:
                await self._send_batches(producer, events, acks)
            else:
                for encoded in events:
                    topic, key = destination(encoded.event, self._topics)
                    acks.append(await producer.send(topic, encoded.value, key=key))
            await _acknowledged(acks)
        except BaseException:
            # Timed out or failed: nobody will wait for the rest, so none may
            # fail later unobserved ("Future exception was never retrieved").
            for ack in acks:
                ack.cancel()
            raise

    async def _send_batches(
        self, producer: AIOKafkaProducer, events: Sequence[Encoded], acks: list[asyncio.Future[Any]]
    ) -> None:
        """Send ``events`` in closed batches of their own, adding their futures to ``acks``.

        One batch per partition, or more where one fills up (``max_batch_size``).
        A partition's batches are submitted in request order and aiokafka sends
        them in that order, so the events of a key stay in order.
        """
        partitions: dict[str, list[int]] = {}
        filling: dict[tuple[str, int], Any] = {}  # aiokafka's BatchBuilder, by topic and partition
        for encoded in events:
            topic, key = destination(encoded.event, self._topics)
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = _PARTITIONER(key, partitions[topic], partitions[topic])
            batch = filling.get((topic, partition))
            if batch is not None:
                if batch.append(key=key, value=encoded.value, timestamp=None) is not None:
                    continue
                acks.append(await self._submit(producer, batch, topic, partition))  # it is full
            batch = filling[topic, partition] = producer.create_batch()
            batch.append(key=key, value=encoded.value, timestamp=None)  # a first record always fits
        for (topic, partition), batch in filling.items():
            acks.append(await self._submit(producer, batch, topic, partition))

    async def _submit(
        self, producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
    ) -> asyncio.Future[Any]:
        """Queue ``batch`` behind the partition's pending one; its acknowledgement, to await.

        Closed, the batch takes no other request's events and goes without
        lingering. Requests take turns: aiokafka's ``send_batch`` waits for the
        partition's pending batch to go, and when several wait together it
        counts their waits against each other's ``request_timeout_ms`` and
        fails them (``KafkaTimeoutError``) long before that timeout.
        """
        batch.close()
        async with self._partition_turns[topic, partition]:
            future: asyncio.Future[Any] = await producer.send_batch(
                batch, topic, partition=partition
            )
        return future

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is not None:  # the common case, without the lock's cost
            return self._producer
        async with self._lock:
            if self._producer is None:
                self._producer = await self._connect()
            return self._producer

    async def _connect(self) -> AIOKafkaProducer:
        producer = durable_producer(
            self._bootstrap,
            request_timeout_ms=self._request_timeout_ms,
            linger_ms=LINGER_MS,
            options=self._options,
        )
        try:
            await producer.start()
        except BaseException:  # including the caller's timeout: never leak connections
            await producer.stop()
            raise
        log.info("producer connected to %s", self._bootstrap)
        return producer

    def _retire(self, producer: AIOKafkaProducer | None) -> None:
        """Stop using ``producer`` and drop its pending sends, in the background.

        Idempotent: only the producer still in use is retired, so concurrent
        requests that fail together retire it once.
        """
        if producer is None or producer is not self._producer:
            return
        self._producer = None
        log.warning("retiring the producer after a failed request; its pending sends are dropped")
        task = asyncio.create_task(_close_dropping_pending(producer), name="retire-producer")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


async def _acknowledged(acks: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for every acknowledgement; raise the first failure once all are known."""
    if len(acks) == 1:  # a single event, the common request: no gather to pay for
        await acks[0]
        return
    # return_exceptions: wait for every outcome, so that no failure is left
    # unobserved, then report the first.
    outcomes = await asyncio.gather(*acks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _close_dropping_pending(producer: AIOKafkaProducer) -> None:
    """Close ``producer`` without delivering what it still holds.

    Uses aiokafka internals (there is no public "abort" for a producer that is
    not transactional): first the sender task stops, so nothing more is
    written; then every batch still queued or in flight fails; then the
    producer closes with nothing left to flush.
    """
    try:
        await producer._sender.close()
    except Exception:  # the producer is being discarded; its own failure changes nothing
        log.warning("the closing producer's sender had failed", exc_info=True)
    _fail_pending(producer)
    await producer.stop()


def _fail_pending(producer: AIOKafkaProducer) -> None:
    """Fail every batch ``producer`` holds; whoever waits gets ``ProducerClosedError``."""
    accumulator = producer._message_accumulator
    batches = [*chain.from_iterable(accumulator._batches.values()), *accumulator._pending_batches]
    accumulator.fail_all(ProducerClosedError("the producer was closed"))
    for batch in batches:
        # Nobody waits on a batch's drain: mark its failure seen, or asyncio
        # logs "Future exception was never retrieved" when it is collected.
        batch._drain_waiter.exception()
