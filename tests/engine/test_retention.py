"""The engine's retention on SQLite and PostgreSQL: settled tickets go with their clocks once
settled for longer than the retention; open tickets, recently changed ones and every report
of a period since the cutoff stay as they were; old dead letters go."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.consumer import DeadLetter, keep_dead_letters
from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import TicketEvent
from slawatch_common.settings import ServiceSettings
from slawatch_common.topics import Topics
from slawatch_engine import retention, store
from slawatch_engine.app import create_app
from slawatch_engine.ledger import Ledger
from slawatch_engine.periods import period_of
from slawatch_engine.policy import PolicyBook, load_policies
from slawatch_engine.reporting import read_events, stored_report
from slawatch_engine.retention import month_start
from slawatch_engine.settings import EngineSettings
from support.serving import serving

HERE = Path(__file__).parent / "compliance"
BOOK = load_policies(HERE / "contract.yaml")
CONTRACT = BOOK.contracts["acme"]
MONTH = sorted(
    (
        event
        for event in read_events((HERE / "month.ndjson").read_text().splitlines())
        if isinstance(event, TicketEvent)
    ),
    key=lambda event: event.occurred_at,
)
"""The hand-worked November 2026 (docs/COMPLIANCE.md): T6, T7 and T9 are open at its end."""
SHIFT = timedelta(weeks=5)
CUTOFF = datetime(2026, 11, 30, 16, tzinfo=UTC)  # 1 December in the contract's Shanghai
KEEP = timedelta(days=396)
NOW = CUTOFF + KEEP
DECEMBER = period_of("2026-12", CONTRACT.zone)
AS_OF = datetime(2027, 1, 15, tzinfo=UTC)


def ticket(kind: str, ticket_id: str, at: str, **data: Any) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "event_id": f"{ticket_id}-{kind}-{at}",
            "type": f"ticket.{kind}",
            "occurred_at": at,
            "source": "helpdesk",
            "data": {"id": ticket_id, **data},
        }
    )


def shifted(event: TicketEvent) -> TicketEvent:
    """``event`` five weeks later (same weekday and hour), of ticket D<id>."""
    return event.model_copy(
        update={
            "event_id": f"d-{event.event_id}",
            "occurred_at": event.occurred_at + SHIFT,
            "data": event.data.model_copy(update={"id": f"D{event.data.id}"}),
        }
    )


EDGES = [
    # resolved long ago, but rated since the cutoff: the ticket changed since
    ticket("created", "RATED", "2026-11-04T10:00:00+08:00", priority="P3", service="desktop"),
    ticket("responded", "RATED", "2026-11-04T10:30:00+08:00"),
    ticket("resolved", "RATED", "2026-11-05T10:00:00+08:00"),
    ticket("rated", "RATED", "2026-12-03T10:00:00+08:00", rating={"score": 5, "scale_max": 5}),
    # created before the cutoff, resolved after it
    ticket("created", "LATE", "2026-11-25T10:00:00+08:00", priority="P1", service="network"),
    ticket("responded", "LATE", "2026-11-25T10:05:00+08:00"),
    ticket("resolved", "LATE", "2026-12-02T10:00:00+08:00"),
    # no target for P5: never tracked (no clock), nothing since it was created
    ticket("created", "QUIET", "2026-11-06T10:00:00+08:00", priority="P5", service="desktop"),
]
EVENTS = sorted([*MONTH, *map(shifted, MONTH), *EDGES], key=lambda event: event.occurred_at)
GONE = {
    *(f"helpdesk:T{n}" for n in (1, 2, 3, 4, 5, 8, 10, 11, 12, 13, 14)),  # resolved in Nov
    "helpdesk:QUIET",
}


async def apply(db: AsyncEngine, ledger: Ledger, events: list[TicketEvent]) -> None:
    """Each event applied as the intake applies it, at the instant it occurred."""
    for event in events:
        async with db.begin() as conn:
            work = await store.load_tickets(conn, {event.key})
            ledger.apply(work, event, 0, event.occurred_at)
            await work.save(conn, event.occurred_at)


def letter(offset: int) -> DeadLetter:
    return DeadLetter(
        "t.tickets", 0, offset, b"k", b'{"title": "Printer on fire"}', "invalid", "E", ""
    )


async def count(db: AsyncEngine, column: Any, where: Any = True) -> int:
    async with db.connect() as conn:
        found = await conn.scalar(select(func.count(column)).where(where))
    return int(found or 0)


async def report(db: AsyncEngine, book: PolicyBook) -> dict[str, Any]:
    return (await stored_report(db, book, "acme", CONTRACT, DECEMBER, AS_OF)).as_json()


async def test_settled_tickets_go_with_their_clocks_and_open_or_recent_ones_stay(
    url: str,
) -> None:
    db = create_engine(url)
    registry = CollectorRegistry()
    pruner = retention.pruner(ServiceSettings(retention_days=396), registry, lambda: NOW)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        await apply(db, Ledger(BOOK, "slawatch.sla"), EVENTS)
        async with db.begin() as conn:
            await keep_dead_letters(conn, store.dead_letters, [letter(1)], CUTOFF - timedelta(1))
            await keep_dead_letters(conn, store.dead_letters, [letter(2)], CUTOFF + timedelta(1))
        async with db.connect() as conn:
            before = set((await conn.execute(select(store.tickets.c.key))).scalars())
            clocks_before = await count(db, store.clocks.c.id)
        december = await report(db, BOOK)
        assert december["counts"]["tickets"] > 0

        done = await pruner.prune(db)

        async with db.connect() as conn:
            after = set((await conn.execute(select(store.tickets.c.key))).scalars())
        assert before - after == GONE
        assert {"helpdesk:T6", "helpdesk:T7", "helpdesk:T9"} <= after  # open: clocks running
        assert {"helpdesk:RATED", "helpdesk:LATE", "helpdesk:DT1"} <= after
        gone_clocks = clocks_before - await count(db, store.clocks.c.id)
        assert gone_clocks == 2 * 10 + 1  # T14 (P4) has no response clock; QUIET none
        assert await count(db, store.clocks.c.id, store.clocks.c.ticket_key.in_(GONE)) == 0
        assert await count(db, store.clocks.c.id, store.clocks.c.ticket_key == "helpdesk:T6") == 2
        assert await count(db, store.dead_letters.c.id) == 1
        assert done.deleted == {
            "engine_clocks": gone_clocks,
            "engine_tickets": len(GONE),
            "engine_dead_letters": 1,
        }
        samples = {
            table: registry.get_sample_value("slawatch_retention_pruned_total", {"table": table})
            for table in done.deleted
        }
        assert samples == done.deleted
        # every report of a period since the cutoff is what it was
        assert await report(db, BOOK) == december
        assert (await pruner.prune(db)).deleted == {}
    finally:
        await db.dispose()


POLICY = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: fast
    calendar: always
    targets:
      P1: {response: 1h, resolution: 4h}
"""


@pytest.mark.kafka
async def test_the_running_engine_prunes_once_started(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics
) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(POLICY)
    settings = EngineSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        kafka_partitions=2,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/engine.db",
        config_file=config,
        retention_first_round_s=0.5,
    )
    book = load_policies(config)
    db = create_engine(settings.database_url)
    long_ago = datetime.now(UTC) - timedelta(days=440)  # past the cutoff, month and all
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        events = [
            ticket("created", "OLD", long_ago.isoformat(), priority="P1", title="Ana's laptop"),
            ticket("resolved", "OLD", (long_ago + timedelta(hours=1)).isoformat()),
            ticket("created", "OPEN", long_ago.isoformat(), priority="P1"),
        ]
        await apply(db, Ledger(book, topics.sla), events)
        async with db.begin() as conn:
            await keep_dead_letters(conn, store.dead_letters, [letter(1)], long_ago)
        async with serving(create_app(settings, book)) as base, httpx.AsyncClient() as http:
            wanted = 'slawatch_retention_pruned_total{table="engine_tickets"} 1.0'
            deadline = time.monotonic() + 30
            while wanted not in (text := (await http.get(f"{base}/metrics")).text):
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.1)
            assert 'slawatch_retention_pruned_total{table="engine_clocks"} 2.0' in text
            assert 'slawatch_retention_pruned_total{table="engine_dead_letters"} 1.0' in text
        async with db.connect() as conn:
            keys = list((await conn.execute(select(store.tickets.c.key))).scalars())
        assert keys == ["helpdesk:OPEN"]
    finally:
        await db.dispose()


def test_the_cutoff_goes_back_to_the_start_of_its_month_in_every_zone() -> None:
    utc = ZoneInfo("UTC")
    cases = {
        datetime(2026, 11, 19, 9, 30, tzinfo=utc): datetime(2026, 10, 31, 10, tzinfo=utc),
        datetime(2026, 11, 30, 10, 0, tzinfo=utc): datetime(2026, 11, 30, 10, tzinfo=utc),
        datetime(2026, 11, 30, 9, 59, tzinfo=utc): datetime(2026, 10, 31, 10, tzinfo=utc),
    }
    for instant, start in cases.items():
        assert month_start(instant) == start, instant
    for zone in ("Pacific/Kiritimati", "Asia/Shanghai", "UTC", "America/New_York"):
        local = datetime(2026, 11, 1, tzinfo=ZoneInfo(zone))  # a contract's month begins
        assert month_start(local + timedelta(days=18)) <= local, zone
    now = datetime(2027, 12, 20, 12, tzinfo=utc)
    pruner = retention.pruner(EngineSettings(), CollectorRegistry(), lambda: now)
    assert pruner.cutoff() == datetime(2026, 10, 31, 10, tzinfo=utc)  # November 2026 whole
