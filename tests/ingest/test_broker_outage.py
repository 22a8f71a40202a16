"""A broker that goes away: 503 and not ready, nothing stored later; back when it returns.

Runs a broker of its own (``deploy/kafka/kafka.sh`` on free ports, data in
``tmp_path``) because it stops it mid-test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ingest.harness import TOKEN, ScratchBroker, event, read_topic, serve
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from support.prom import metric

pytestmark = pytest.mark.kafka


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[ScratchBroker]:
    scratch = ScratchBroker(tmp_path / "kafka")
    try:
        await scratch.start()
        yield scratch
    finally:
        await scratch.stop()


async def wait_ready(client: httpx.AsyncClient, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "ingest did not become ready again"
        await asyncio.sleep(0.25)


async def test_broker_outage_gives_503_and_stores_nothing_late(broker: ScratchBroker) -> None:
    settings = IngestSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"outage{uuid.uuid4().hex[:8]}",
        kafka_partitions=1,
        ingest_tokens=(TOKEN,),
        produce_timeout_s=2,
    )
    stored, refused, after = event(1), event(2), event(3)

    async with serve(create_app(settings)) as client:
        assert (await client.post("/v1/events", json=stored)).status_code == 202

        await broker.stop()
        response = await client.post("/v1/events", json=refused)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "did not acknowledge within 2 s" in response.json()["detail"]
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        again = await client.post("/v1/events", json=refused)  # no producer now: fails fast
        assert (again.status_code, again.headers["Retry-After"]) == (503, "5")
        assert "unreachable" in again.json()["detail"]

        await broker.start()
        await wait_ready(client)
        assert (await client.post("/v1/events", json=after)).status_code == 202
        text = (await client.get("/metrics")).text

    records = await read_topic(broker.bootstrap, settings.topics.tickets)
    ids = [json.loads(value)["event_id"] for _, value in records]
    assert ids == [stored["event_id"], after["event_id"]]
    assert metric(text, "slawatch_ingest_broker_failures_total", reason="timeout") == 1
    assert metric(text, "slawatch_ingest_broker_failures_total", reason="error") == 1
    assert metric(text, "slawatch_ingest_events_rejected_total", reason="broker_unavailable") == 2
