"""The bench's Kafka side: its topics, the planned stops in, the SLA records out.

The SLA topic is created stamped with the broker's append time
(``LogAppendTime``), so a record's timestamp is when the engine's event reached
the broker: lateness is that minus the crossing instant the event carries.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.ingest import BOOTSTRAP, kafka_options
from bench.scale.plan import PARTITIONS, SOURCE, Plan, utc
from slawatch_common.kafka import ensure_topics, start_producer
from slawatch_common.topics import Topics

_APPEND_TIME = 1
"""aiokafka's ``timestamp_type`` of a record stamped by the broker."""


async def create_topics(topics: Topics) -> None:
    """The SLA topic stamped with the broker's append time (created first, so the
    engine's ``ensure_topics`` finds it), then the others."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **kafka_options())
    await admin.start()
    try:
        sla = NewTopic(
            topics.sla,
            num_partitions=PARTITIONS,
            replication_factor=1,
            topic_configs={"message.timestamp.type": "LogAppendTime"},
        )
        response = await admin.create_topics([sla])
        for name, code, *rest in response.topic_errors:
            if code:
                raise RuntimeError(f"creating topic {name}: error {code} {rest}")
    finally:
        await admin.close()
    await ensure_topics(BOOTSTRAP, topics.all(), PARTITIONS, options=kafka_options())


async def produce_stops(topic: str, plan: Plan) -> int:
    """Each planned stop (``ticket.responded`` or ``ticket.resolved``: both stop the
    response clock) at its instant; how many were sent after their deadline."""
    stops = sorted((s, j) for j in range(plan.band) if (s := plan.stop_of(j)) is not None)
    producer = await start_producer(BOOTSTRAP, options=kafka_options())
    late = 0
    try:
        pending = []
        for at, j in stops:
            if (delay := at - time.time()) > 0:
                await asyncio.sleep(delay)
            late += time.time() >= plan.deadline(j)
            event = {
                "event_id": f"{SOURCE}-stop-b{j}",
                "type": ("ticket.responded", "ticket.resolved")[j // 10 % 2],
                "occurred_at": utc(at).isoformat(),
                "source": SOURCE,
                "data": {"id": f"b{j}"},
            }
            key = f"{SOURCE}:b{j}".encode()
            pending.append(await producer.send(topic, json.dumps(event).encode(), key=key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return late


@dataclass(frozen=True, slots=True)
class Emitted:
    """One record of the SLA topic."""

    appended_ms: int
    """The broker's append time (LogAppendTime), epoch milliseconds."""
    at: float
    """The event's ``occurred_at``: for a warning or breach the instant it was crossed."""
    type: str
    event_id: str
    clock_id: str
    stage: str | None

    @property
    def appended(self) -> float:
        return self.appended_ms / 1000


class SlaRecorder:
    """Reads the SLA topic from its beginning into ``seen`` until cancelled."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self.seen: list[Emitted] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=BOOTSTRAP,
            group_id=None,
            auto_offset_reset="earliest",
            **kafka_options(),
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    self.seen.extend(map(_emitted, records))
        finally:
            await consumer.stop()


def _emitted(record: Any) -> Emitted:
    if record.timestamp_type != _APPEND_TIME:
        raise RuntimeError("the SLA topic does not stamp records with the append time")
    event = json.loads(record.value)
    return Emitted(
        appended_ms=record.timestamp,
        at=datetime.fromisoformat(event["occurred_at"]).timestamp(),
        type=event["type"],
        event_id=event["event_id"],
        clock_id=event["data"]["clock"]["clock_id"],
        stage=event["data"].get("stage"),
    )
