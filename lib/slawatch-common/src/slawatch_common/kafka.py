"""Kafka plumbing: topic creation, the durable producer, consumer defaults.

Every producer here is idempotent with ``acks=all``: a send that returns has
been written to the broker; one that raises may or may not have been, so a
caller retries with the same ``event_id`` and consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic for a reason other than its existence."""


async def ensure_topics(
    bootstrap: str, topics: tuple[str, ...], partitions: int, *, attempts: int = 60
) -> None:
    """Create ``topics`` with ``partitions`` partitions where they do not exist.

    Idempotent. Waits (up to ``attempts`` half-second tries) for a broker that
    is still starting; raises ``TopicSetupError`` on any other refusal.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except Exception:  # the broker is not up yet: KafkaConnectionError and kin
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in topics]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise TopicSetupError(f"creating topic {name}: error {code} {rest}")
    finally:
        await admin.close()
    log.info("topics ready: %s (%d partitions)", ", ".join(topics), partitions)


async def delete_topics(bootstrap: str, topics: tuple[str, ...]) -> None:
    """Delete ``topics`` (those that exist), for tests and benchmarks that make throwaway
    topics: a broker keeps files open for every partition it holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        gone = [name for name in topics if name in existing]
        if gone:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


def durable_producer(
    bootstrap: str, *, request_timeout_ms: int = 10_000, linger_ms: int = 2
) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; start it before use, stop it after.

    ``request_timeout_ms`` bounds how long a send waits for the broker before it
    fails, so that a caller can answer "unavailable" instead of hanging.
    ``linger_ms`` is how long a send waits for company in its batch: a few ms
    suit a background publisher; a request that waits for its own ack is better
    served at once (0), while earlier sends are in flight the next batch
    collects anyway.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=request_timeout_ms,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


async def start_producer(
    bootstrap: str, *, request_timeout_ms: int = 10_000, linger_ms: int = 2, attempts: int = 60
) -> AIOKafkaProducer:
    """A started ``durable_producer``, waiting (half-second tries) for a broker coming up."""
    for attempt in range(attempts):
        producer = durable_producer(
            bootstrap, request_timeout_ms=request_timeout_ms, linger_ms=linger_ms
        )
        try:
            await producer.start()
            return producer
        except Exception:  # KafkaConnectionError and kin: not up yet
            await producer.stop()
            if attempt == attempts - 1:
                raise
            log.warning("broker %s not reachable yet; retrying", bootstrap)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")
