"""Running the notifier in-process against real infrastructure, and looking at what it did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from slawatch_common.events import NotificationRecord, SlaEvent
from slawatch_common.kafka import start_producer
from slawatch_notifier.app import create_app
from slawatch_notifier.settings import NotifierSettings


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running; the client talks to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            yield client


async def produce(bootstrap: str, topic: str, messages: Sequence[SlaEvent | bytes]) -> None:
    """Write events (or raw bytes, for invalid messages) to ``topic``, keyed by ticket."""
    producer = await start_producer(bootstrap)
    try:
        for message in messages:
            if isinstance(message, SlaEvent):
                value, key = message.model_dump_json().encode(), message.key.encode()
            else:
                value, key = message, b"junk"
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], bool], wait_s: float = 30.0) -> None:
    """Wait until ``check()`` holds; fail after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {wait_s}s")
        await asyncio.sleep(0.05)


async def read_records(
    bootstrap: str, topic: str, count: int, wait_s: float = 30.0
) -> list[tuple[bytes, NotificationRecord]]:
    """The first ``count`` (key, record) pairs on ``topic`` (fewer if ``wait_s`` runs out)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[tuple[bytes, NotificationRecord]] = []
        deadline = time.monotonic() + wait_s
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found += [(r.key, NotificationRecord.model_validate_json(r.value)) for r in records]
        return found
    finally:
        await consumer.stop()


async def rewind_group(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition of ``topic`` for ``group`` (which must be empty)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(dict.fromkeys(partitions, 0))
    finally:
        await consumer.stop()
