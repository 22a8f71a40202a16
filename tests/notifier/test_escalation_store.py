"""Escalations in the database, on SQLite and PostgreSQL: record, fire, ack, stop, and the race.

Every scenario runs on a fresh SQLite file and on a fresh PostgreSQL database.
The race tests hold one transaction open while the other runs, on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.factories import ESCALATING, NOW, STARTED, sla_event, slots
from notifier.harness import Scenario, on_sqlite_and_postgresql
from slawatch_common.events import SlaEvent
from slawatch_notifier import escalation_store as es
from slawatch_notifier import store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.config import parse_config
from slawatch_notifier.escalation import ChainSnapshot, Escalation, Firing, Reason, Status
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.planner import Drafts, Planner
from slawatch_notifier.scheduler import RETRY_FAILED, Scheduler

PLANNER = Planner(parse_config(ESCALATING), AckLinks(b"k", "http://notifier", timedelta(hours=1)))
CLOCK = "jira:OPS-42:response"
KEY = (CLOCK, 1)
BREACH_AT = STARTED + timedelta(seconds=900)
STEP_DUE = BREACH_AT + timedelta(seconds=1)  # the "after: 1s" step of the tiered chain
WAITING_STEP = f"{CLOCK}:breach:2"
SUPERVISOR_SMS = f"{CLOCK}:breach:2:wang.fang:sms"
SUPERVISOR_MAIL = f"{CLOCK}:breach:2:wang.fang:email"
ONCALL_SMS = f"{CLOCK}:breach:1:zhao.lei:sms"  # zhao.lei has the shift at NOW


def _event(stage: str | None = "breach", **changes: object) -> SlaEvent:
    return sla_event(stage, escalation="tiered", **changes)  # type: ignore[arg-type]


async def _record(engine: AsyncEngine, *events: SlaEvent) -> es.Recorded:
    return await es.in_transaction(
        engine, partial(es.record_events, events=list(events), planner=PLANNER, now=NOW)
    )


async def _notifications(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        table = store.notifications
        rows = await conn.execute(sa.select(table.c.id, table.c.status))
        return {row.id: row.status for row in rows}


async def _steps(engine: AsyncEngine) -> dict[str, tuple[str, str | None]]:
    async with engine.connect() as conn:
        table = store.scheduled_steps
        rows = await conn.execute(sa.select(table.c.id, table.c.status, table.c.reason))
        return {row.id: (row.status, row.reason) for row in rows}


async def _escalation(engine: AsyncEngine) -> Escalation:
    async with engine.connect() as conn:
        return (await es.load(conn, [KEY]))[KEY]


async def recording_twice_stores_once(engine: AsyncEngine) -> None:
    warning, breach = _event("warning:50"), _event()
    first = await _record(engine, warning, breach)
    state = await _escalation(engine)
    again = await _record(engine, warning, breach, breach)
    assert first.inserted == {f"{CLOCK}:warning:50:0:li.wei:email", ONCALL_SMS}
    assert first.scheduled == {WAITING_STEP}
    assert (again.inserted, again.scheduled) == (set(), set())
    assert await _escalation(engine) == state  # same version: nothing was written
    assert (state.status, state.version, state.breach_event_id) == (
        Status.ACTIVE,
        0,  # started by the warning and breached in one batch: inserted once
        breach.event_id,
    )
    assert state.chain.name == "tiered"
    assert await _steps(engine) == {WAITING_STEP: ("pending", None)}


async def a_due_step_fires_once(engine: AsyncEngine) -> None:
    await _record(engine, _event())
    async with engine.connect() as conn:
        assert await es.due_steps(conn, STEP_DUE - timedelta(microseconds=1), 10) == []
        assert await es.due_steps(conn, STEP_DUE, 10) == [WAITING_STEP]
        assert await es.next_step_due(conn) == STEP_DUE
    fired = await es.in_transaction(
        engine, partial(es.fire_step, step_id=WAITING_STEP, planner=PLANNER, now=NOW)
    )
    assert fired is not None
    assert fired.inserted == {SUPERVISOR_SMS, SUPERVISOR_MAIL}
    again = await es.in_transaction(
        engine, partial(es.fire_step, step_id=WAITING_STEP, planner=PLANNER, now=NOW)
    )
    assert again is None
    assert await _steps(engine) == {WAITING_STEP: ("fired", None)}
    rows = await _notifications(engine)
    assert rows == {ONCALL_SMS: "pending", SUPERVISOR_SMS: "pending", SUPERVISOR_MAIL: "pending"}


async def an_ack_cancels_pending_steps_and_unsent_scheduled_notifications(
    engine: AsyncEngine,
) -> None:
    await _record(engine, _event())
    async with engine.begin() as conn:
        (sms,) = await store.claim_due(conn, NOW, slots(10))  # the on-call SMS is being sent
    await es.in_transaction(
        engine, partial(es.fire_step, step_id=WAITING_STEP, planner=PLANNER, now=NOW)
    )
    acked = await es.in_transaction(
        engine, partial(es.acknowledge, key=KEY, by="zhao.lei", now=NOW)
    )
    assert acked is not None
    assert acked.changed
    assert [n.id for n in acked.cancelled_notifications] == [SUPERVISOR_MAIL, SUPERVISOR_SMS]
    assert (acked.state.status, acked.state.acknowledged_by) == (Status.ACKNOWLEDGED, "zhao.lei")
    rows = await _notifications(engine)
    assert rows == {sms.id: "sending", SUPERVISOR_SMS: "cancelled", SUPERVISOR_MAIL: "cancelled"}
    repeated = await es.in_transaction(
        engine, partial(es.acknowledge, key=KEY, by="other", now=NOW)
    )
    assert repeated is not None
    assert (repeated.changed, repeated.state.acknowledged_by) == (False, "zhao.lei")
    unknown = await es.in_transaction(
        engine, partial(es.acknowledge, key=(CLOCK, 2), by="x", now=NOW)
    )
    assert unknown is None


async def an_ack_before_the_instant_cancels_the_step(engine: AsyncEngine) -> None:
    await _record(engine, _event())
    by_ticket = partial(es.acknowledge_ticket, source="jira", ticket_id="OPS-42", by="Li", now=NOW)
    (acked,) = await es.in_transaction(engine, by_ticket)
    assert acked.cancelled_steps == (WAITING_STEP,)
    assert await _steps(engine) == {WAITING_STEP: ("cancelled", "acknowledged")}
    async with engine.connect() as conn:
        assert await es.due_steps(conn, NOW, 10) == []


async def a_retraction_stops_and_a_rebreach_starts_a_new_generation(engine: AsyncEngine) -> None:
    await _record(engine, _event())
    retracted = _event(event_type="sla.retracted", occurred_at=NOW - timedelta(minutes=30))
    rebreach = _event(event_id="breach-2", occurred_at=NOW - timedelta(minutes=20))
    stop = await _record(engine, retracted)
    assert stop.cancelled_steps == [WAITING_STEP]
    assert [n.id for n in stop.cancelled_notifications] == [ONCALL_SMS]
    state = await _escalation(engine)
    assert (state.status, state.reason, state.withdrawn) == (Status.STOPPED, Reason.RETRACTED, True)
    again = await _record(engine, rebreach, retracted, rebreach)  # with redeliveries
    assert again.inserted == {f"{CLOCK}:breach.g1:1:zhao.lei:sms"}
    assert again.scheduled == {f"{CLOCK}:breach.g1:2"}
    assert (await _escalation(engine)).generation == 1


async def _race(engine: AsyncEngine, ack_first: bool) -> None:
    """One unit holds its transaction open (after its writes) while the other starts."""
    await _record(engine, _event())
    gate = asyncio.Event()

    async def held(
        work: Callable[[AsyncConnection], Awaitable[object]], conn: AsyncConnection
    ) -> object:
        result = await work(conn)
        await gate.wait()
        return result

    fire = partial(es.fire_step, step_id=WAITING_STEP, planner=PLANNER, now=NOW)
    ack = partial(es.acknowledge, key=KEY, by="zhao.lei", now=NOW)
    first, second = (ack, fire) if ack_first else (fire, ack)
    holding = asyncio.create_task(es.in_transaction(engine, partial(held, first)))
    await asyncio.sleep(0.3)  # the first has written and holds its locks
    waiting = asyncio.create_task(es.in_transaction(engine, second))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # it waits for the first to commit
    gate.set()
    await asyncio.gather(holding, waiting)
    assert (await _escalation(engine)).status is Status.ACKNOWLEDGED
    rows = await _notifications(engine)
    # whatever the order, the waiting step's notifications can never be claimed for sending
    assert rows.get(SUPERVISOR_SMS, "absent") in {"absent", "cancelled"}
    assert rows.get(SUPERVISOR_MAIL, "absent") in {"absent", "cancelled"}
    async with engine.begin() as conn:
        assert [c.id for c in await store.claim_due(conn, NOW, slots(10))] == [ONCALL_SMS]
    expected = ("cancelled", "acknowledged") if ack_first else ("fired", None)
    assert await _steps(engine) == {WAITING_STEP: expected}


async def an_ack_racing_a_step_that_fires_first_cancels_its_notifications(
    engine: AsyncEngine,
) -> None:
    await _race(engine, ack_first=False)


async def a_step_racing_an_ack_that_commits_first_is_cancelled(engine: AsyncEngine) -> None:
    await _race(engine, ack_first=True)


class _BrokenPlanner(Planner):
    """Plans like the real one, except at the waiting step, which raises (a bug, bad data)."""

    def drafts(
        self, firings: Iterable[Firing], chain: ChainSnapshot, event: SlaEvent, now: datetime
    ) -> Drafts:
        firings = list(firings)
        if any(firing.step == 2 for firing in firings):
            raise RuntimeError("cannot render")
        return super().drafts(firings, chain, event, now)


@dataclass(frozen=True)
class _At:
    at: datetime

    def now(self) -> datetime:
        return self.at


async def a_step_that_cannot_fire_is_postponed_and_the_scheduler_goes_on(
    engine: AsyncEngine,
) -> None:
    await _record(engine, _event())
    registry = CollectorRegistry()
    scheduler = Scheduler(
        engine,
        _BrokenPlanner(PLANNER.config, PLANNER.links),
        metrics=NotifierMetrics(registry),
        clock=_At(STEP_DUE),
        bell=asyncio.Event(),
        doorbell=asyncio.Event(),
    )
    assert await scheduler.fire_due() == 1  # tried, failed, put back: no exception
    assert await _steps(engine) == {WAITING_STEP: ("pending", None)}
    async with engine.connect() as conn:
        assert await es.next_step_due(conn) == STEP_DUE + RETRY_FAILED
    failed = {"outcome": "failed"}
    assert registry.get_sample_value("slawatch_notifier_escalation_steps_total", failed) == 1


SCENARIOS: list[Scenario] = [
    a_step_that_cannot_fire_is_postponed_and_the_scheduler_goes_on,
    recording_twice_stores_once,
    a_due_step_fires_once,
    an_ack_cancels_pending_steps_and_unsent_scheduled_notifications,
    an_ack_before_the_instant_cancels_the_step,
    a_retraction_stops_and_a_rebreach_starts_a_new_generation,
    an_ack_racing_a_step_that_fires_first_cancels_its_notifications,
    a_step_racing_an_ack_that_commits_first_is_cancelled,
]


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(SCENARIOS)
