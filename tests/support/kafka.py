"""Creating, reading and writing test topics on the real broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from slawatch_common.kafka import delete_topics, ensure_topics
from slawatch_common.topics import Topics


@contextmanager
def fresh_topics(
    bootstrap: str, prefix: str, partitions: int, options: Mapping[str, Any] | None = None
) -> Iterator[Topics]:
    """A set of topics under ``prefix`` and a random suffix, created with ``partitions`` each
    and deleted on leaving; ``options`` are the clients' connection options.

    Synchronous, for fixtures of tests that run their own event loops.
    """
    fresh = Topics(prefix=f"{prefix}{uuid.uuid4().hex[:10]}")
    asyncio.run(ensure_topics(bootstrap, fresh.all(), partitions, options=options))
    try:
        yield fresh
    finally:
        asyncio.run(delete_topics(bootstrap, fresh.all(), options=options))


async def produce(
    bootstrap: str,
    topic: str,
    items: list[tuple[str, Any]],
    options: Mapping[str, Any] | None = None,
) -> None:
    """Write (key, JSON-able value or raw bytes) records, acknowledged by the broker."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(options or {}))
    await producer.start()
    try:
        for key, value in items:
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            await producer.send_and_wait(topic, key=key.encode(), value=raw)
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning and keeps (key, value, timestamp_ms) of each record."""

    def __init__(
        self, bootstrap: str, topic: str, options: Mapping[str, Any] | None = None
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            **(options or {}),
        )
        self.records: list[tuple[str | None, dict[str, Any], int]] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        batches = await self._consumer.getmany(timeout_ms=int(seconds * 1000))
        for batch in batches.values():
            for record in batch:
                key = record.key.decode() if record.key else None
                self.records.append((key, json.loads(record.value), record.timestamp))
        return self.values

    @property
    def values(self) -> list[dict[str, Any]]:
        return [value for _, value, _ in self.records]

    async def wait_for(self, predicate: Any, within: float = 20.0) -> list[dict[str, Any]]:
        """Poll until ``predicate(values)`` holds; returns the values or fails."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            values = await self.poll()
            if predicate(values):
                return values
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; got {self.values}")
