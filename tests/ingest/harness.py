"""What the ingest tests run against: the app under uvicorn, topics read back, a broker."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from support.net import free_port
from support.serving import serving

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid ``ticket.created`` event (ticket ``T-<n>`` in source ``jira``)."""
    body: dict[str, Any] = {
        "event_id": f"jira:{n}:created:{uuid.uuid4().hex[:8]}",
        "type": "ticket.created",
        "occurred_at": "2026-11-26T08:15:00+08:00",
        "source": "jira",
        "data": {"id": f"T-{n}", "priority": "P2", "status": "open"},
    }
    return body | overrides


def alert(service: str = "core-network") -> dict[str, Any]:
    """A valid ``monitor.alert_firing`` event about ``service``."""
    return {
        "event_id": f"am:{uuid.uuid4().hex[:8]}:firing",
        "type": "monitor.alert_firing",
        "occurred_at": "2026-11-26T01:00:00Z",
        "source": "alertmanager",
        "data": {
            "service": service,
            "name": "InstanceDown",
            "fingerprint": "3f2a9c1d7e",
            "starts_at": "2026-11-26T01:00:00Z",
        },
    }


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` on a free loopback port; yields a client authenticated with ``TOKEN``."""
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client,
    ):
        yield client


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of every record in ``topic`` now, partition by partition."""
    partitions = await read_partitions(bootstrap, topic)
    return [record for _, records in sorted(partitions.items()) for record in records]


async def read_partitions(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes, bytes]]]:
    """``(key, value)`` of every record in ``topic`` now, by partition, in offset order."""
    # Without a group, a subscription is assigned every partition of the topic.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 15
        while not consumer.assignment():
            assert time.monotonic() < deadline, f"{topic}: no partitions assigned"
            await asyncio.sleep(0.05)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        following = await consumer.beginning_offsets(partitions)
        records: dict[int, list[tuple[bytes, bytes]]] = {tp.partition: [] for tp in partitions}
        while [tp for tp in partitions if following[tp] < ends[tp]]:
            assert time.monotonic() < deadline, f"{topic}: could not read to the end"
            batches = await consumer.getmany(timeout_ms=200)
            for tp, batch in batches.items():
                records[tp.partition] += [(r.key, r.value) for r in batch]
                following[tp] = batch[-1].offset + 1
        return records
    finally:
        await consumer.stop()


class ScratchBroker:
    """A Kafka broker of a test's own, through ``deploy/kafka/kafka.sh``, on free ports."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self._env = os.environ | {
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data_dir),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self._run("start")

    async def stop(self) -> None:
        await self._run("stop")

    async def _run(self, command: str) -> None:
        # A subprocess of the event loop: the app under test keeps serving meanwhile.
        process = await asyncio.create_subprocess_exec(
            str(KAFKA_SH),
            command,
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed: {output.decode()}")
