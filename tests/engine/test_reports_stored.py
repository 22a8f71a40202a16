"""The stored ledger gives the report the offline replay gives, on SQLite and PostgreSQL.

The hand-worked month is applied event by event the way intake applies a
batch (tickets and clocks loaded, the ledger applied, the working set saved),
its alerts folded into ``engine_outages`` as the monitoring intake does; then
the report read from the tables must equal ``slawatch-engine report``'s — as
of after the period, and as of a moment inside it, where the clocks that
changed later are replayed up to that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_engine import store
from slawatch_engine.compliance import build
from slawatch_engine.ledger import Ledger
from slawatch_engine.monitoring import note_alerts
from slawatch_engine.periods import period_of
from slawatch_engine.policy import load_policies
from slawatch_engine.reporting import OfflineLedger, read_events, stored_report

HERE = Path(__file__).parent / "compliance"
BOOK = load_policies(HERE / "contract.yaml")
EVENTS = sorted(
    read_events((HERE / "month.ndjson").read_text().splitlines()), key=lambda e: e.occurred_at
)
CONTRACT = BOOK.contracts["acme"]
PERIOD = period_of("2026-11", CONTRACT.zone)
AFTER = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
INSIDE = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: T13 not yet resolved


def offline(as_of: datetime) -> dict[str, Any]:
    ledger = OfflineLedger(BOOK)
    ledger.run(EVENTS, as_of)
    facts = ledger.facts(as_of)
    return build("acme", CONTRACT, PERIOD, as_of, facts, ledger.alerts(), BOOK.calendars).as_json()


async def test_stored_and_offline_reports_agree(url: str) -> None:
    db = create_engine(url)
    ledger = Ledger(BOOK, "slawatch.sla")
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        for event in EVENTS:
            now = event.occurred_at
            async with db.begin() as conn:
                if isinstance(event, MonitoringEvent):
                    await note_alerts(conn, [event], now)
                    continue
                assert isinstance(event, TicketEvent)
                work = await store.load_tickets(conn, {event.key})
                ledger.apply(work, event, 0, now)
                await work.save(conn, now)
        for as_of in (AFTER, INSIDE):
            online = await stored_report(db, BOOK, "acme", CONTRACT, PERIOD, as_of)
            assert online.as_json() == offline(as_of)
        inside = offline(INSIDE)
        assert inside["counts"]["tickets"] == 9  # T10-T13 are in, T13 still open
        assert {t["id"]: t["resolution"]["outcome"] for t in inside["tickets"]}["T13"] == "pending"
        # a clock whose last entry is unknown (stored before it was recorded) is replayed
        async with db.begin() as conn:
            await conn.execute(update(store.clocks).values(last_entry_at=None))
        online = await stored_report(db, BOOK, "acme", CONTRACT, PERIOD, AFTER)
        assert online.as_json() == offline(AFTER)
    finally:
        await db.dispose()


async def test_alert_intervals_fold_in_any_order_and_repeat(url: str) -> None:
    db = create_engine(url)
    alerts = [e for e in EVENTS if isinstance(e, MonitoringEvent)]
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        now = AFTER
        async with db.begin() as conn:  # resolutions first, then every firing twice
            await note_alerts(conn, [a for a in alerts if a.type.endswith("resolved")], now)
        async with db.begin() as conn:
            firing = [a for a in alerts if a.type.endswith("firing")]
            await note_alerts(conn, firing + firing, now)
        async with db.connect() as conn:
            rows = await conn.execute(
                select(store.outages.c.fingerprint, store.outages.c.ends_at).order_by(
                    store.outages.c.fingerprint
                )
            )
            ends = {r.fingerprint: r.ends_at for r in rows}
        assert sorted(ends) == ["A", "B", "C", "D", "E", "F"]
        assert ends["E"] is None  # still firing
        assert ends["B"] == datetime(2026, 11, 10, 2, 30, tzinfo=UTC)  # not reopened
        # a resolution dated before its alert began says nothing: the true one still counts
        absurd = alerts[0].model_copy(
            update={
                "event_id": "absurd",
                "type": "monitor.alert_resolved",
                "data": alerts[0].data.model_copy(
                    update={"ends_at": alerts[0].data.starts_at - timedelta(days=400)}
                ),
            }
        )
        async with db.begin() as conn:
            await note_alerts(conn, [absurd], now)
        async with db.connect() as conn:
            key = (absurd.data.service, absurd.data.fingerprint)
            row = await conn.execute(
                select(store.outages.c.ends_at).where(
                    store.outages.c.service == key[0], store.outages.c.fingerprint == key[1]
                )
            )
            assert [r.ends_at for r in row] == [ends[key[1]]]
    finally:
        await db.dispose()
