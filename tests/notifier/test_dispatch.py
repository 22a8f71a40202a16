"""The dispatcher on SQLite: each channel has its own slots, and claims ahead only while it flows.

The SMS port of the first test is the real HTTP adapter pointed at a TCP
port that accepts connections and never answers, as a provider stuck until
the send timeout; mail goes to a port that records. Mail must go out at once
while every SMS slot is held by the stuck provider, and nothing more is
claimed for the stuck channel than its slots.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.factories import CONFIG, NOW, sla_event
from notifier.harness import eventually, migrated
from slawatch_common.events import Channel
from slawatch_notifier import dispatch, store
from slawatch_notifier.channels.port import ChannelPort, Delivered, Outbound, Outcome
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


class Gate:
    """A port that delivers its first ``free`` sends at once and holds the rest until opened."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.sent: list[str] = []
        self.held = 0
        self.opened = asyncio.Event()

    async def send(self, outbound: Outbound) -> Outcome:
        if len(self.sent) >= self.free:
            self.held += 1
            await self.opened.wait()
        self.sent.append(outbound.notification_id)
        return Delivered(f"mail-{len(self.sent)}")


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


async def test_a_stuck_sms_provider_holds_only_the_sms_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "IDLE_WAIT_S", 0.1)  # the drained mail lane is looked at often
    asked = _spy_on_claims(monkeypatch)
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
            RetryPolicy(base_s=0.1, cap_s=1.0),
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
            claims_then = len(asked)
            await asyncio.sleep(1.0)
            # no busy loop: a claim per drained-lane wait at most, never for the full SMS lane
            assert len(asked) - claims_then <= 15
            assert all(Channel.SMS not in ask for ask in asked[claims_then:])
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


def _dispatcher(engine: AsyncEngine, mail: ChannelPort, doorbell: asyncio.Event) -> Dispatcher:
    return Dispatcher(
        engine,
        {Channel.EMAIL: mail, Channel.SMS: Recording()},
        RetryPolicy(base_s=0.1, cap_s=1.0),
        metrics=NotifierMetrics(CollectorRegistry()),
        clock=FixedClock(),
        rand=random.Random(1),
        doorbell=doorbell,
        outbox_bell=asyncio.Event(),
        concurrency={Channel.SMS: 2, Channel.EMAIL: 2},
    )


async def _warnings(engine: AsyncEngine, count: int) -> None:
    """``count`` due warning mails (one per ticket, to the assignee)."""
    config = parse_config(CONFIG)
    drafts = [
        store.Draft(p, render(p))
        for n in range(count)
        for p in route(sla_event("warning:75", ticket_id=f"OPS-{n}"), config, NOW).notifications
    ]
    async with engine.begin() as conn:
        await store.insert_new(conn, drafts, NOW)


@asynccontextmanager
async def _running(dispatcher: Dispatcher) -> AsyncIterator[None]:
    running = asyncio.create_task(dispatcher.run())
    try:
        yield
    finally:
        running.cancel()
        with suppress(asyncio.CancelledError):
            await running


def _spy_on_claims(monkeypatch: pytest.MonkeyPatch) -> list[dict[Channel, int]]:
    """Every ``store.claim_due`` call's request, per channel, in order."""
    asked: list[dict[Channel, int]] = []
    claim_due = store.claim_due

    async def spying(
        conn: AsyncConnection, now: datetime, slots: Mapping[Channel, int]
    ) -> list[store.Claimed]:
        asked.append(dict(slots))
        return await claim_due(conn, now, slots)

    monkeypatch.setattr(store, "claim_due", spying)
    return asked


async def test_a_flowing_channel_claims_ahead_in_batches_and_an_empty_one_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _spy_on_claims(monkeypatch)
    mail = Recording()
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _warnings(engine, 200)
        async with _running(_dispatcher(engine, mail, asyncio.Event())):
            await eventually(lambda: len(mail.sent) == 200, wait_s=30)
            await asyncio.sleep(0.3)  # idle: nothing more is claimed
    assert sorted(mail.sent) == sorted(set(mail.sent))
    # two slots claiming only for themselves would take 100 claims at least
    assert len(asked) < 40, asked
    assert max(ask.get(Channel.EMAIL, 0) for ask in asked) > 2
    # SMS had nothing due: asked once, then left alone (no doorbell rang, nothing fell due)
    assert sum(Channel.SMS in ask for ask in asked) == 1, asked


async def test_what_was_claimed_ahead_and_not_sent_is_pending_again_after_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "AHEAD_WINDOW_S", 600.0)  # every send so far counts as recent
    mail = Gate(free=20)
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _warnings(engine, 60)
        async with _running(_dispatcher(engine, mail, asyncio.Event())):
            await eventually(lambda: mail.held == 2, wait_s=10)  # both slots wait in the gate
            for _ in range(200):
                during = await _statuses(engine)
                if during.get("sent") == 20 and during.get("sending", 0) > 2:  # claimed ahead
                    break
                await asyncio.sleep(0.05)
            assert during["sending"] > 2, during
        after = await _statuses(engine)
        untouched = await _statuses(engine, store.notifications.c.attempts == 0)
    # the two in the gate stay sending (``recover`` resends them); those claimed ahead are
    # pending again, their attempt not counted
    assert after == {"sent": 20, "sending": 2, "pending": 38}, during
    assert untouched == {"pending": 38}


async def _statuses(engine: AsyncEngine, *where: sa.ColumnElement[bool]) -> dict[str, int]:
    table = store.notifications
    query = sa.select(table.c.status, sa.func.count()).where(*where).group_by(table.c.status)
    async with engine.connect() as conn:
        return dict((await conn.execute(query)).all())


async def test_a_full_lane_whose_drained_mark_has_passed_waits_for_room_not_in_a_loop(
    tmp_path: Path,
) -> None:
    """A lane found less than it asked for (drained), then filled its slots; its mark passes.

    With nothing to claim for a full lane, the claimer must wait for a slot to
    come free or the doorbell, not wake at once again and again on the stale
    mark. The lane's state is set directly: getting there through sends depends
    on how the recorder happens to batch them.
    """
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        dispatcher = _dispatcher(engine, Gate(free=0), asyncio.Event())
        for lane in dispatcher._lanes.values():
            lane.busy = lane.slots  # every slot sending
            lane.drained_until = time.monotonic() - 1.0  # the mark passed a second ago
        await dispatcher._claim()  # nothing to claim: no lane has room
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await dispatcher._wait()
        dispatcher._lanes[Channel.EMAIL].busy -= 1
        dispatcher._room.set()  # a slot comes free
        async with asyncio.timeout(1):
            await dispatcher._wait()
