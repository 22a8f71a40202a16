"""The SLA engine's intake rate, beside raw aiokafka consumption of the same topic.

- ``events_per_s``: ``ticket.created`` events applied with durable state (the
  engine process on PostgreSQL: clocks written, dedup ids recorded, offsets
  committed after), from a topic filled beforehand, measured from the first
  applied event to the last;
- ``baseline_raw_consume_per_s``: a bare aiokafka consumer reading the same
  topic from the beginning, same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bench.ingest import BOOTSTRAP, ROOT, _free_port, kafka_options
from slawatch_common.kafka import delete_topics, ensure_topics, start_producer
from slawatch_common.topics import Topics

BIN = Path(sys.executable).parent
EVENTS = 20_000
PG_ADMIN = os.environ.get(
    "SLAWATCH_TEST_PG_DSN", "postgresql://slawatch:slawatch@127.0.0.1:5432/slawatch"
)


def bench_engine() -> dict[str, Any]:
    return asyncio.run(_bench())


async def _bench() -> dict[str, Any]:
    topics = Topics(f"bencheng{uuid.uuid4().hex[:8]}")
    await ensure_topics(BOOTSTRAP, topics.all(), 4, options=kafka_options())
    database = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await _fill(topics.tickets)
        baseline = await _raw_consume(topics.tickets)
        await admin.execute(f'CREATE DATABASE "{database}"')
        rate = await _engine_rate(topics, PG_ADMIN.rsplit("/", 1)[0] + f"/{database}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        await delete_topics(BOOTSTRAP, topics.all(), options=kafka_options())
    return {
        "events_per_s": rate,
        "baseline_raw_consume_per_s": baseline,
        "ratio_to_baseline": round(rate / baseline, 3),
        "load": f"{EVENTS} ticket.created events, 4 partitions, PostgreSQL",
    }


async def _fill(topic: str) -> None:
    producer = await start_producer(BOOTSTRAP, options=kafka_options())
    try:
        now = "2026-11-26T08:00:00Z"
        pending = []
        for n in range(EVENTS):
            event = {
                "event_id": f"b:{n}",
                "type": "ticket.created",
                "occurred_at": now,
                "source": "bench",
                "data": {"id": str(n), "priority": "P3", "service": "network"},
            }
            pending.append(
                await producer.send(topic, json.dumps(event).encode(), key=f"bench:{n}".encode())
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _raw_consume(topic: str) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        auto_offset_reset="earliest",
        group_id=None,
        **kafka_options(),
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < EVENTS:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                    seen += 1
        return round(seen / (time.perf_counter() - started))
    finally:
        await consumer.stop()


async def _engine_rate(topics: Topics, pg_dsn: str) -> int:
    port = _free_port()
    env = {
        **os.environ,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "4",
        "SLAWATCH_ENGINE_PORT": str(port),
        "DATABASE_URL": pg_dsn.replace("postgresql://", "postgresql+asyncpg://"),
        "SLAWATCH_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "slawatch-engine"), cwd=ROOT, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with httpx.AsyncClient() as client:
            first = None
            while True:
                applied = await _applied(client, url)
                if applied and first is None:
                    first = (time.perf_counter(), applied)
                if applied >= EVENTS and first is not None:
                    elapsed = time.perf_counter() - first[0]
                    return round((applied - first[1]) / elapsed) if elapsed else 0
                await asyncio.sleep(0.25)  # each scrape costs the engine CPU
    finally:
        proc.terminate()
        await proc.wait()


async def _applied(client: httpx.AsyncClient, url: str) -> int:
    try:
        text = (await client.get(url)).text
    except httpx.HTTPError:
        return 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "slawatch_engine_events_in_total" and sample.labels == {
                "type": "ticket.created"
            }:
                return int(sample.value)
    return 0
