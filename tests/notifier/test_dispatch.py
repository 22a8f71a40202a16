"""The dispatcher on SQLite with an SMS provider that hangs: each channel has its own slots.

The SMS port is the real HTTP adapter pointed at a TCP port that accepts
connections and never answers, as a provider stuck until the send timeout;
mail goes to a port that records. Mail must go out at once while every SMS
slot is held by the stuck provider.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from notifier.factories import CONFIG, NOW, sla_event
from notifier.harness import eventually
from notifier.test_store import migrated
from slawatch_common.events import Channel
from slawatch_notifier import store
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome
from slawatch_notifier.channels.sms import SmsChannel
from slawatch_notifier.config import parse_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.retry import RetryPolicy
from slawatch_notifier.routing import route
from slawatch_notifier.templates import render


class FixedClock:
    def now(self) -> datetime:
        return NOW


class Recording:
    """A port that delivers at once and remembers what it sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, outbound: Outbound) -> Outcome:
        self.sent.append(outbound.notification_id)
        return Delivered(f"mail-{len(self.sent)}")


@asynccontextmanager
async def hanging_port() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """A TCP port that accepts, reads and never answers; the open connections."""
    connections: list[asyncio.StreamWriter] = []
    stop = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await stop.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        stop.set()
        server.close()
        with suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()


async def test_a_stuck_sms_provider_holds_only_the_sms_slots(tmp_path: Path) -> None:
    config = parse_config(CONFIG)  # a breach texts the on-call engineer and mails the supervisor
    drafts = [
        store.Draft(p, render(p))
        for n in range(5)
        for p in route(sla_event("breach", ticket_id=f"OPS-{n}"), config, NOW).notifications
    ]
    registry = CollectorRegistry()
    mail = Recording()
    async with (
        migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine,
        hanging_port() as (port, connections),
        httpx.AsyncClient(timeout=30) as client,
    ):
        async with engine.begin() as conn:
            await store.insert_new(conn, drafts, NOW)
        dispatcher = Dispatcher(
            engine,
            {
                Channel.SMS: SmsChannel(client, f"http://127.0.0.1:{port}/sms", "t"),
                Channel.EMAIL: mail,
            },
            RetryPolicy(3, 0.1, 1.0),
            metrics=NotifierMetrics(registry),
            clock=FixedClock(),
            rand=random.Random(1),
            doorbell=asyncio.Event(),
            outbox_bell=asyncio.Event(),
            concurrency={Channel.SMS: 2, Channel.EMAIL: 2},
        )
        running = asyncio.create_task(dispatcher.run())
        try:
            await eventually(lambda: len(mail.sent) == 5, wait_s=3)
            await asyncio.sleep(0.2)
            assert len(connections) == 2  # two SMS hang, the other three wait for a slot
            in_flight = registry.get_sample_value(
                "slawatch_notifier_sends_in_flight", {"channel": "sms"}
            )
            assert in_flight == 2
        finally:
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
        async with engine.connect() as conn:
            table = store.notifications
            query = sa.select(table.c.channel, table.c.status)
            statuses = sorted((row.channel, row.status) for row in await conn.execute(query))
    assert statuses == [("email", "sent")] * 5 + [("sms", "pending")] * 3 + [("sms", "sending")] * 2
