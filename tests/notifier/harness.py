"""Running the notifier in-process against real infrastructure, and looking at what it did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from deploy.dev.sms_sink import SmsSink
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import write_config
from slawatch_common.db import create_engine
from slawatch_common.events import NotificationRecord, SlaEvent
from slawatch_common.kafka import start_producer
from slawatch_common.topics import Topics
from slawatch_notifier import store
from slawatch_notifier.app import create_app
from slawatch_notifier.settings import NotifierSettings
from support.smtp import SmtpSink

Scenario = Callable[[AsyncEngine], Awaitable[None]]

SettingsMaker = Callable[..., NotifierSettings]
"""The ``make_settings`` fixture (``conftest.py``): ``service_settings`` with the test's
topics, sinks and folder bound."""


def service_settings(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    *,
    notifier: dict[str, Any] | None = None,
    **fields: Any,
) -> NotifierSettings:
    """Settings against the test's topics, SMTP and SMS sinks and a SQLite file in ``tmp_path``.

    ``notifier`` is the configuration's notifier section (``write_config``'s default
    if None); ``fields`` sets any further settings.
    """
    return NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        kafka_partitions=2,
        config_file=write_config(tmp_path, notifier),
        database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db",
        smtp_port=smtp_sink.port,
        sms_url=sms_sink.url,
        send_timeout_s=5,
        **fields,
    )


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``url`` with the notifier's tables migrated, disposed of afterwards."""
    engine = create_engine(url)
    try:
        await store.migrate(engine)
        await store.migrate(engine)  # idempotent
        yield engine
    finally:
        await engine.dispose()


def on_sqlite_and_postgresql(
    scenarios: Sequence[Scenario],
) -> tuple[Callable[[Path, Scenario], Awaitable[None]], Callable[[str, Scenario], Awaitable[None]]]:
    """``test_on_sqlite`` and ``test_on_postgresql`` for a store-test module to bind.

    Each runs every scenario on a fresh, migrated database: a SQLite file in
    ``tmp_path``, and a PostgreSQL database of its own (``pg_url``).
    """

    @pytest.mark.parametrize("scenario", scenarios, ids=lambda s: s.__name__)
    async def test_on_sqlite(tmp_path: Path, scenario: Scenario) -> None:
        async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
            await scenario(engine)

    @pytest.mark.postgres
    @pytest.mark.parametrize("scenario", scenarios, ids=lambda s: s.__name__)
    async def test_on_postgresql(pg_url: str, scenario: Scenario) -> None:
        async with migrated(pg_url) as engine:
            await scenario(engine)

    return test_on_sqlite, test_on_postgresql


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running; the client talks to it in-process, with the first
    admin token (every scope)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {settings.admin_tokens[0]}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://notifier", headers=headers
        ) as client:
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
