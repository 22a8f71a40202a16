"""A group's error budget watched in real time: warnings at 50/75/90 %, a breach once overspent.

The watch reads the stored alert intervals (``engine_outages``) of a real
database and stages SLA events in the outbox; it is driven here by explicit
instants. Group ``web`` of contract ``shop`` has one service and a 99.9 %
target over November 2026 (UTC): its budget is 0.1 % of 30 days, 2592 s.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import Metric, MonitoringEvent, SlaEvent
from slawatch_engine import store
from slawatch_engine.availability import group_figures
from slawatch_engine.budgets import BudgetWatch
from slawatch_engine.ledger import Changes
from slawatch_engine.metrics import AvailabilityCollector, ComplianceMetrics, EngineMetrics
from slawatch_engine.monitoring import note_alerts
from slawatch_engine.policy import PolicyBook, load_policies
from support.prom import metric

CONFIG = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: any
    calendar: always
    targets: {P1: {response: 15m}}
contracts:
  shop:
    customer: Shop Inc
    provider: Ops
    policies: [any]
    escalation: standard
    availability:
      web: {services: [web], target: 99.9}
"""
BUDGET = 2592  # seconds
START = datetime(2026, 11, 2, tzinfo=UTC)


def firing(fingerprint: str, at: datetime) -> MonitoringEvent:
    return MonitoringEvent.model_validate(
        {
            "event_id": f"f-{fingerprint}",
            "type": "monitor.alert_firing",
            "occurred_at": at.isoformat(),
            "source": "alertmanager",
            "data": {
                "service": "web",
                "name": "Down",
                "fingerprint": fingerprint,
                "starts_at": at.isoformat(),
            },
        }
    )


def watching(
    db: AsyncEngine,
    book: PolicyBook,
    committed: list[Changes],
    owned: set[int],
    registry: CollectorRegistry | None = None,
) -> BudgetWatch:
    """A budget watch on ``db`` whose committed changes land in ``committed``."""
    registry = registry or CollectorRegistry()
    return BudgetWatch(
        db,
        book,
        "slawatch.sla",
        EngineMetrics(registry),
        ComplianceMetrics(registry, book),
        owned=lambda: owned,
        now=lambda: START,
        on_committed=committed.append,
        lock=asyncio.Lock(),
    )


async def test_each_stage_once_and_only_the_highest_new_one(url: str, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    book = load_policies(config)
    registry = CollectorRegistry()
    db = create_engine(url)
    committed: list[Changes] = []
    watch = watching(db, book, committed, {1}, registry)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        async with db.begin() as conn:
            await note_alerts(conn, [firing("a", START)], START)
        # nothing spent yet; the earliest the 50 % stage can come is half the budget later
        assert await watch.evaluate(START) == START + timedelta(seconds=BUDGET / 2)
        assert committed == []
        half = START + timedelta(seconds=BUDGET / 2)
        assert await watch.evaluate(half - timedelta(seconds=1)) == half
        assert committed == []
        assert await watch.evaluate(half) == START + timedelta(seconds=BUDGET * 0.75)
        # much later at once: 75 and 90 % are passed, only the 90 % warning is emitted
        await watch.evaluate(START + timedelta(seconds=BUDGET * 0.95))
        # the whole budget spent exactly: still met; one second more: breached
        await watch.evaluate(START + timedelta(seconds=BUDGET))
        await watch.evaluate(START + timedelta(seconds=BUDGET + 1))
        await watch.evaluate(START + timedelta(seconds=BUDGET + 60))  # nothing new
        events = [event for changes in committed for event in changes.emitted]
        assert [(e.type, e.data.stage) for e in events] == [
            ("sla.warning", "warning:50"),
            ("sla.warning", "warning:90"),
            ("sla.breach", "breach"),
        ]
        breach = events[-1]
        assert breach.data.clock.metric is Metric.AVAILABILITY
        assert breach.data.clock.escalation == "standard"
        assert breach.data.clock.target_seconds == BUDGET
        assert breach.data.clock.business_seconds_used == BUDGET + 1
        assert (breach.data.ticket.source, breach.data.ticket.id) == ("contract", "shop/web")
        assert breach.occurred_at == START + timedelta(seconds=BUDGET + 1)
        async with db.connect() as conn:
            rows = (await conn.execute(select(store.outbox))).mappings().all()
            stages = (await conn.execute(select(store.budget_stages.c.stage))).scalars().all()
        assert [SlaEvent.model_validate_json(r["value"]) for r in rows] == events
        assert {r["partition"] for r in rows} == {1}  # an owned partition publishes them
        assert sorted(stages) == ["breach", "warning:50", "warning:75", "warning:90"]
        # a second engine crossing the same stages stages nothing new
        again: list[Changes] = []
        other = watching(db, book, again, {0})
        await other.evaluate(START + timedelta(seconds=BUDGET + 120))
        assert again == []
        # the figures are on /metrics: spent beyond the budget, availability below target
        text = generate_latest(registry).decode()
        labels = {"contract": "shop", "group": "web"}
        assert metric(text, "slawatch_compliance_error_budget_remaining_ratio", **labels) < 0
        assert metric(text, "slawatch_compliance_outage_seconds_total", service="web") == (
            BUDGET + 60
        )
    finally:
        await db.dispose()


async def test_an_interval_resolved_before_it_began_counts_nothing(
    url: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        CONFIG
        + """
  broken:
    customer: B
    provider: Ops
    policies: [any]
    availability:
      api: {services: [api], target: 99}
"""
    )
    book = load_policies(config)
    registry = CollectorRegistry()
    db = create_engine(url)
    committed: list[Changes] = []
    watch = watching(db, book, committed, {0}, registry)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        async with db.begin() as conn:
            await note_alerts(conn, [firing("a", START)], START)
            # a resolution dated before its firing: an interval that ends before it starts
            await conn.execute(
                store.outages.insert().values(
                    service="api",
                    fingerprint="x",
                    starts_at=START,
                    ends_at=START - timedelta(days=400),
                    name="Down",
                    updated_at=START,
                )
            )
        await watch.evaluate(START + timedelta(seconds=BUDGET + 1))
        emitted = [e for c in committed for e in c.emitted]
        assert [(e.data.ticket.id, e.data.stage) for e in emitted] == [("shop/web", "breach")]
    finally:
        await db.dispose()


def test_the_outage_counter_never_goes_down_within_a_period() -> None:
    """An alert counted as down up to now, then resolved late and dated earlier: the
    figures shrink, the counter Prometheus reads does not (a drop would be a reset)."""
    utc = ZoneInfo("UTC")
    november = (START.replace(day=1), START.replace(month=12, day=1))
    december = (november[1], november[1].replace(month=12, day=31))

    def figures(period: tuple[datetime, datetime], ends: datetime | None, now: datetime) -> Any:
        alerts = {"web": [(period[0], ends)]}
        return group_figures("web", 99.9, ["web"], *period, now, alerts, [], utc)

    collector = AvailabilityCollector()
    firing = figures(november, None, november[0] + timedelta(seconds=1200))
    collector.update("shop", "web", firing)
    assert collector.outage_seconds("shop", "web", "web") == 1200
    resolved = figures(
        november, november[0] + timedelta(seconds=900), november[0] + timedelta(hours=1)
    )
    assert resolved.services[0].outage_seconds == 900
    collector.update("shop", "web", resolved)
    assert collector.outage_seconds("shop", "web", "web") == 1200
    collector.update(
        "shop", "web", figures(december, december[0] + timedelta(seconds=60), december[1])
    )
    assert collector.outage_seconds("shop", "web", "web") == 60


async def test_a_restart_does_not_take_back_outage_counted_while_it_fired(
    url: str, tmp_path: Path
) -> None:
    """Counted down to 20 minutes while it fired, then resolved at 15 minutes, then the
    engine restarted: the counter Prometheus reads stays at 20 minutes (the report
    shows 15)."""
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    book = load_policies(config)
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        async with db.begin() as conn:
            await note_alerts(conn, [firing("a", START)], START)
        before = CollectorRegistry()
        await watching(db, book, [], {0}, before).evaluate(START + timedelta(minutes=20))
        resolved = firing("a", START).model_copy(
            update={
                "event_id": "resolved-a",
                "type": "monitor.alert_resolved",
                "data": firing("a", START).data.model_copy(
                    update={"ends_at": START + timedelta(minutes=15)}
                ),
            }
        )
        async with db.begin() as conn:
            await note_alerts(conn, [resolved], START + timedelta(minutes=21))
        after = CollectorRegistry()  # a new process
        watch = watching(db, book, [], {0}, after)
        await watch.evaluate(START + timedelta(hours=1))
    finally:
        await db.dispose()
    for registry in (before, after):
        text = generate_latest(registry).decode()
        assert metric(text, "slawatch_compliance_outage_seconds_total", service="web") == 1200
    # availability itself is the true figure: 15 minutes of the 25 hours since November 1
    text = generate_latest(after).decode()
    ratio = metric(text, "slawatch_compliance_availability_ratio", group="web")
    assert ratio == pytest.approx(1 - 900 / (25 * 3600))
