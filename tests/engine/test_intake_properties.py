"""Property: no schema-valid ticket event stops the engine's intake or its timer.

Batches of events drawn from ``schemas/ticket-event.schema.json`` (extreme
instants, 200-character ids, unicode and control characters; half of them
nudged to open clocks under the example policies, so the calendar and the
timer see them), with a normal ticket before and after, go through the real
intake (``Intake._apply_or_rewind``) on a real database; then the timer fires
every clock due up to year 9999. Nothing raises out of either; every record
is applied (its event id processed) or a dead letter with its reason; both
normal tickets have their clocks. The short form runs in ``make test``, the
long one in ``make fuzz``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from slawatch_common.db import create_engine, upgrade
from slawatch_engine import store
from slawatch_engine.intake import Intake
from slawatch_engine.ledger import Changes, Ledger
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.policy import load_policies
from slawatch_engine.timer import DueIndex, Timer
from support.fuzz import examples
from support.records import Rec
from support.schema_strategies import from_contract

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"
BOOK = load_policies(CONFIG)
TOPIC = "fuzz.tickets"


def opening(event: dict[str, Any]) -> dict[str, Any]:
    """The drawn event as one that opens clocks: created, with a priority, maybe network."""
    data = {**event["data"], "priority": event["data"].get("priority") or "P1"}
    return {**event, "type": "ticket.created", "data": data}


events = st.lists(
    st.one_of(from_contract("ticket-event"), from_contract("ticket-event").map(opening)),
    min_size=1,
    max_size=12,
)


def normal(ticket: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "ticket.created",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "jira",
        "data": {"id": ticket, "priority": "P1", "service": "network", "title": "normal"},
    }


class _NoConsumer:
    def seek(self, *_: object) -> None:
        raise AssertionError("no other engine writes here: nothing to rewind")


async def scenario(url: str, drawn: list[dict[str, Any]]) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        metrics = EngineMetrics(CollectorRegistry())
        ledger, index, lock = Ledger(BOOK, "fuzz.sla"), DueIndex(), asyncio.Lock()
        emitted: list[Changes] = []
        far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
        timer = Timer(db, ledger, index, lock, emitted.append, lambda: far, metrics)
        intake = Intake(
            _NoConsumer(),
            db,
            ledger,
            index,
            timer,
            lock,
            emitted.append,
            lambda: datetime.now(UTC),
            metrics,
        )
        batch = [normal("FIRST"), *drawn, normal("LAST")]
        records = [
            Rec(TOPIC, 0, n, f"{e['source']}:{e['data']['id']}".encode(), json.dumps(e).encode())
            for n, e in enumerate(batch)
        ]
        assert await intake._apply_or_rewind(records)
        await timer._fire_isolated(index.pop_due(far, limit=10_000))

        async with db.connect() as conn:
            processed = set(
                (await conn.execute(sa.select(store.processed_events.c.event_id))).scalars()
            )
            letters = {
                row.offset: row
                for row in await conn.execute(
                    sa.select(
                        store.dead_letters.c.offset,
                        store.dead_letters.c.reason,
                        store.dead_letters.c.error,
                    )
                )
            }
            opened = set((await conn.execute(sa.select(store.clocks.c.ticket_key))).scalars())
    finally:
        await db.dispose()
    for offset, event in enumerate(batch):
        assert event["event_id"] in processed or offset in letters, (offset, event)
    for letter in letters.values():
        assert letter.reason in ("invalid", "failed")
        assert letter.error
    assert {"jira:FIRST", "jira:LAST"} <= opened
    assert 0 not in letters
    assert len(batch) - 1 not in letters


@settings(
    max_examples=examples(25, 400),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(drawn=events)
def test_no_ticket_event_stops_intake_or_timer(tmp_path_factory: Any, drawn: list[Any]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('engine')}/engine.db"
    asyncio.run(scenario(url, drawn))
