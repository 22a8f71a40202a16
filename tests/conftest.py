"""Fixtures for the real infrastructure tests touch.

Tests say what they touch with markers: ``kafka`` (the broker that
``make kafka-up`` starts), ``postgres`` (``make pg-up``), ``smtp`` (a real
aiosmtpd server in the test process) and ``e2e`` (services as processes).
The SMS provider is the development sink from ``deploy/dev``, a real HTTP
server on loopback.
Each test gets its own topic prefix and its own database, so tests never see
each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from deploy.dev.sms_sink import SmsSink

from slawatch_common.kafka import delete_topics, ensure_topics
from slawatch_common.topics import Topics
from support.processes import started
from support.smtp import SmtpSink

# The services the tests start run in development mode: they accept the development
# tokens and keys (each refuses them otherwise; tests/common/test_development_values.py).
os.environ.setdefault("SLAWATCH_ENV", "development")

KAFKA_BOOTSTRAP = os.environ.get("SLAWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG_ADMIN_DSN = os.environ.get(
    "SLAWATCH_TEST_PG_DSN", "postgresql://slawatch:slawatch@127.0.0.1:5432/slawatch"
)


@pytest.fixture
def kafka_bootstrap() -> str:
    return KAFKA_BOOTSTRAP


@pytest.fixture
async def topics() -> AsyncIterator[Topics]:
    """A fresh set of topics (2 partitions each) under a unique prefix, deleted after the test."""
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}")
    await ensure_topics(KAFKA_BOOTSTRAP, fresh.all(), partitions=2)
    yield fresh
    await delete_topics(KAFKA_BOOTSTRAP, fresh.all())


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        try:
            await _drop(admin, name)
        finally:
            await admin.close()


async def _drop(admin: asyncpg.Connection, name: str) -> None:
    """Drop a test database. ``WITH (FORCE)`` ends its sessions, but it may not end one of
    the server's own (an autovacuum worker that has just started on the new database, which
    this role may not signal): that one ends by itself within moments, so try again."""
    for attempt in range(20):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port that keeps what it receives."""
    with started(SmtpSink()) as sink:
        yield sink


@pytest.fixture
def sms_sink() -> Iterator[SmsSink]:
    """The development SMS provider (deploy/dev/sms_sink.py) on a free port.

    It checks the bearer token (``sms_sink.token``), keeps what it accepts
    (``received()``) and can be told to fail (``fail_next``).
    """
    sink = SmsSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
