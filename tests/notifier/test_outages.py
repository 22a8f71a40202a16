"""Delivery through outages, on SQLite and PostgreSQL: the dispatcher with fake channel ports.

A channel that fails for a while, for good, or raises; a process that stops
mid-send again and again; failed notifications sent again by a redrive. Each
scenario runs the real dispatcher (real time, short budgets) against a fresh,
migrated database of each dialect.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import CONFIG, HASHER, NOW, sla_event, slots
from notifier.harness import Scenario, eventually, on_sqlite_and_postgresql
from slawatch_common.events import Channel, NotificationRecord
from slawatch_notifier import outbox, store
from slawatch_notifier.channels.port import (
    ChannelPort,
    Delivered,
    Outbound,
    Outcome,
    Retryable,
)
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import parse_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.retry import NextStep, RetryPolicy, Status
from slawatch_notifier.routing import route
from slawatch_notifier.templates import render

FAST = RetryPolicy(base_s=0.05, cap_s=0.1, budget_s=30.0, fallback_after_s=300.0)
"""Retries every 0.1 s at most; nothing runs out or falls back in a scenario unless it says."""


class Recording:
    """Delivers at once; counts what it sent, by notification id."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    async def send(self, outbound: Outbound) -> Outcome:
        self.sent[outbound.notification_id] += 1
        return Delivered(f"m-{sum(self.sent.values())}")


class Flaky(Recording):
    """Answers "HTTP 503" until ``healthy`` is set, then delivers."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = False
        self.tries: Counter[str] = Counter()

    async def send(self, outbound: Outbound) -> Outcome:
        self.tries[outbound.notification_id] += 1
        if not self.healthy:
            return Retryable("HTTP 503")
        return await super().send(outbound)


class Raising(Recording):
    """Raises ``RuntimeError`` for the notifications of the tickets in ``bad``."""

    def __init__(self, *bad: str) -> None:
        super().__init__()
        self.bad = bad

    async def send(self, outbound: Outbound) -> Outcome:
        if outbound.ticket_id in self.bad:
            raise RuntimeError(f"boom on {outbound.ticket_id}")
        return await super().send(outbound)


class Held(Recording):
    """Holds each send until ``opened`` is set, then answers "HTTP 503"; ``held`` counts."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0
        self.opened = asyncio.Event()

    async def send(self, outbound: Outbound) -> Outcome:
        self.held += 1
        await self.opened.wait()
        return Retryable("HTTP 503")


def _fallback_config() -> dict[str, Any]:
    """CONFIG with the breach texting the on-call engineer, mail as the fallback."""
    config = copy.deepcopy(CONFIG)
    config["escalations"]["standard"][1]["notify"] = [{"to": "oncall", "via": ["sms", "email"]}]
    return config


async def _insert(
    engine: AsyncEngine, stage: str, tickets: list[str], config: dict[str, Any] = CONFIG
) -> list[str]:
    """Plan ``stage`` for each ticket and store it due now; the ids, in order."""
    parsed = parse_config(config)
    drafts = [
        store.Draft(p, render(p))
        for ticket in tickets
        for p in route(sla_event(stage, ticket_id=ticket), parsed, NOW).notifications
    ]
    async with engine.begin() as conn:
        await store.insert_new(conn, drafts, _now())
    return [d.planned.notification_id for d in drafts]


_METRICS: dict[int, NotifierMetrics] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def _dispatcher(
    engine: AsyncEngine,
    ports: Mapping[Channel, ChannelPort],
    policy: RetryPolicy = FAST,
    registry: CollectorRegistry | None = None,
    doorbell: asyncio.Event | None = None,
) -> Dispatcher:
    """A dispatcher over ``ports``, counting into ``registry`` (one ``NotifierMetrics`` each)."""
    registry = registry or CollectorRegistry()
    metrics = _METRICS.get(id(registry))
    if metrics is None:
        metrics = _METRICS[id(registry)] = NotifierMetrics(registry)
    return Dispatcher(
        engine,
        ports,
        policy,
        metrics=metrics,
        clock=SystemClock(),
        rand=random.Random(3),
        doorbell=doorbell or asyncio.Event(),
        outbox_bell=asyncio.Event(),
        concurrency=dict.fromkeys(ports, 2),
    )


@asynccontextmanager
async def _running(dispatcher: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    running = asyncio.create_task(dispatcher.run())
    try:
        yield running
    finally:
        running.cancel()
        with suppress(asyncio.CancelledError):
            await running


async def _rows(engine: AsyncEngine) -> dict[str, sa.RowMapping]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(store.notifications))).mappings()
        return {row["id"]: row for row in rows}


async def _statuses(engine: AsyncEngine) -> dict[str, str]:
    return {nid: row["status"] for nid, row in (await _rows(engine)).items()}


async def _outcomes(engine: AsyncEngine, notification_id: str) -> list[tuple[str, str | None]]:
    table = store.attempts
    query = (
        sa.select(table.c.outcome, table.c.reason)
        .where(table.c.notification_id == notification_id)
        .order_by(table.c.number)
    )
    async with engine.connect() as conn:
        return [(row.outcome, row.reason) for row in await conn.execute(query)]


async def _until(engine: AsyncEngine, wanted: Mapping[str, str], wait_s: float = 10.0) -> None:
    """Wait until each notification in ``wanted`` has its status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        statuses = await _statuses(engine)
        if all(statuses.get(nid) == status for nid, status in wanted.items()):
            return
        if loop.time() > deadline:
            raise AssertionError(f"{statuses} not {dict(wanted)} after {wait_s}s")
        await asyncio.sleep(0.05)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- fallback_after ------------------------------------------------------------------


async def a_failing_primary_releases_its_fallback_and_keeps_retrying(engine: AsyncEngine) -> None:
    sms_id, mail_id = await _insert(engine, "breach", ["OPS-1"], _fallback_config())
    sms, mail = Flaky(), Recording()
    registry = CollectorRegistry()
    policy = RetryPolicy(base_s=0.05, cap_s=0.1, budget_s=30.0, fallback_after_s=0.5)
    async with _running(
        _dispatcher(engine, {Channel.SMS: sms, Channel.EMAIL: mail}, policy, registry)
    ):
        await eventually(lambda: mail.sent[mail_id] == 1, wait_s=10)
        rows = await _rows(engine)
        # the text is still being retried while the mail stands in for it
        assert rows[sms_id]["status"] in ("pending", "sending")
        assert sms.tries[sms_id] >= 3
        failing_since = rows[sms_id]["failing_since"]
        assert rows[mail_id]["due_at"] - failing_since >= timedelta(seconds=0.5)
        assert rows[mail_id]["note"].startswith(
            f"fallback: {sms_id} has been failing on sms since {failing_since.isoformat()} "
            "and is still retried: HTTP 503"
        )
        sms.healthy = True
        await _until(engine, {sms_id: "sent", mail_id: "sent"})
        await asyncio.sleep(0.3)  # time for any (wrong) further send
    assert (sms.sent, mail.sent) == (Counter({sms_id: 1}), Counter({mail_id: 1}))
    assert _sample(registry, "slawatch_notifier_fallbacks_total", channel="email") == 1
    assert all(outcome == "retryable" for outcome, _ in (await _outcomes(engine, sms_id))[:-1])


async def a_released_fallback_not_yet_sent_stands_down_when_the_primary_gets_through(
    engine: AsyncEngine,
) -> None:
    sms_id, mail_id = await _insert(engine, "breach", ["OPS-1"], _fallback_config())
    sms, mail = Flaky(), Flaky()  # the mail server is down too
    registry = CollectorRegistry()
    policy = RetryPolicy(base_s=0.05, cap_s=0.1, budget_s=30.0, fallback_after_s=0.2)
    async with _running(
        _dispatcher(engine, {Channel.SMS: sms, Channel.EMAIL: mail}, policy, registry)
    ):
        await eventually(lambda: mail.tries[mail_id] >= 2, wait_s=10)  # released, retrying
        sms.healthy = True
        await _until(engine, {sms_id: "sent", mail_id: "cancelled"})
        mail.healthy = True
        await asyncio.sleep(0.3)
    assert (sms.sent, mail.sent) == (Counter({sms_id: 1}), Counter())
    assert (await _rows(engine))[mail_id]["note"].startswith(f"not needed: {sms_id} was delivered")
    labels = {"channel": "email", "outcome": "cancelled", "reason": "not_needed"}
    assert _sample(registry, "slawatch_notifier_notifications_total", **labels) == 1


async def a_fallback_in_flight_when_the_primary_gets_through_is_not_retried(
    engine: AsyncEngine,
) -> None:
    sms_id, mail_id = await _insert(engine, "breach", ["OPS-1"], _fallback_config())
    sms, mail = Flaky(), Held()
    registry = CollectorRegistry()
    policy = RetryPolicy(base_s=0.05, cap_s=0.1, budget_s=30.0, fallback_after_s=0.2)
    async with _running(
        _dispatcher(engine, {Channel.SMS: sms, Channel.EMAIL: mail}, policy, registry)
    ):
        await eventually(lambda: mail.held == 1, wait_s=10)  # released, and being sent
        sms.healthy = True
        await _until(engine, {sms_id: "sent", mail_id: "sending"})
        mail.opened.set()  # its attempt fails: it is not retried, the text got through
        await _until(engine, {mail_id: "cancelled"})
        await asyncio.sleep(0.3)
    assert mail.held == 1
    assert (await _rows(engine))[mail_id]["note"] == (
        f"not needed: {sms_id} was delivered while this was being sent"
    )
    labels = {"channel": "email", "outcome": "cancelled", "reason": "not_needed"}
    assert _sample(registry, "slawatch_notifier_notifications_total", **labels) == 1


# --- the retry budget ----------------------------------------------------------------


async def a_notification_failing_past_its_budget_fails_with_the_reason(engine: AsyncEngine) -> None:
    sms_id, mail_id = await _insert(engine, "breach", ["OPS-1"], _fallback_config())
    sms, mail = Flaky(), Recording()
    registry = CollectorRegistry()
    policy = RetryPolicy(base_s=0.05, cap_s=0.1, budget_s=0.6, fallback_after_s=300.0)
    started = _now()
    async with _running(
        _dispatcher(engine, {Channel.SMS: sms, Channel.EMAIL: mail}, policy, registry)
    ):
        await _until(engine, {sms_id: "failed", mail_id: "sent"})
    rows = await _rows(engine)
    failed = rows[sms_id]
    attempts = failed["attempts"]
    assert attempts >= 3
    assert failed["last_error"] == (
        f"retry budget of 0.6s exhausted after {attempts} attempt(s); last error: HTTP 503"
    )
    assert failed["updated_at"] - failed["retry_from"] >= timedelta(seconds=0.6)
    assert failed["retry_from"] >= started - timedelta(seconds=1)
    assert [outcome for outcome, _ in await _outcomes(engine, sms_id)] == ["retryable"] * attempts
    assert rows[mail_id]["note"].startswith(f"fallback: {sms_id} failed on sms: retry budget of")
    labels = {"channel": "sms", "outcome": "failed", "reason": "budget_exhausted"}
    assert _sample(registry, "slawatch_notifier_notifications_total", **labels) == 1
    async with engine.connect() as conn:
        records = {f.id: outbox.record_for(f, HASHER) for f in await store.unpublished(conn, 10)}
    assert records[sms_id].type == "notification.failed"
    assert records[sms_id].data.error == failed["last_error"]


# --- a send that raises --------------------------------------------------------------


async def a_send_that_raises_fails_that_notification_and_nothing_else(engine: AsyncEngine) -> None:
    ids = await _insert(engine, "breach", ["OPS-1", "OPS-2", "OPS-3"])  # an SMS and a mail each
    bad = next(nid for nid in ids if "OPS-2" in nid and nid.endswith(":email"))
    sms, mail = Recording(), Raising("OPS-2")
    registry, doorbell = CollectorRegistry(), asyncio.Event()
    logged = _Kept()
    logger = logging.getLogger("slawatch_notifier.dispatch")
    logger.addHandler(logged)
    try:
        dispatcher = _dispatcher(
            engine, {Channel.SMS: sms, Channel.EMAIL: mail}, FAST, registry, doorbell
        )
        async with _running(dispatcher) as running:
            await _until(engine, {nid: "failed" if nid == bad else "sent" for nid in ids})
            later = await _insert(engine, "warning:75", ["OPS-4"])  # the lanes still run
            doorbell.set()
            await _until(engine, {later[0]: "sent"})
            assert not running.done()
    finally:
        logger.removeHandler(logged)
    assert sum(sms.sent.values()) == 3
    assert sorted(mail.sent) == sorted(
        nid for nid in ids + later if nid.endswith(":email") and nid != bad
    )
    row = (await _rows(engine))[bad]
    assert (row["attempts"], row["last_error"]) == (1, "RuntimeError: boom on OPS-2")
    assert await _outcomes(engine, bad) == [("permanent", "RuntimeError: boom on OPS-2")]
    labels = {"channel": "email", "outcome": "failed", "reason": "send_error"}
    assert _sample(registry, "slawatch_notifier_notifications_total", **labels) == 1
    tracebacks = [
        r for r in logged.records if bad in r.getMessage() and "Traceback" in r.getMessage()
    ]
    assert len(tracebacks) == 1
    assert "RuntimeError: boom on OPS-2" in tracebacks[0].getMessage()


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --- interrupted again and again -----------------------------------------------------


async def a_send_interrupted_three_times_fails_and_its_fallback_takes_over(
    engine: AsyncEngine,
) -> None:
    sms_id, mail_id = await _insert(engine, "breach", ["OPS-1"], _fallback_config())
    registry = CollectorRegistry()
    ports: dict[Channel, ChannelPort] = {Channel.SMS: Recording(), Channel.EMAIL: Recording()}
    found: list[tuple[int, bool]] = []
    for _restart in range(3):
        async with engine.begin() as conn:  # claimed and "sending" when the process dies
            (claimed,) = await store.claim_due(conn, _now(), {Channel.SMS: 1})
        assert claimed.id == sms_id
        (item,) = await _dispatcher(engine, ports, FAST, registry).recover()
        found.append((item.times, item.failed))
    assert found == [(1, False), (2, False), (3, True)]
    rows = await _rows(engine)
    assert (rows[sms_id]["status"], rows[sms_id]["interrupted"]) == ("failed", 3)
    assert rows[sms_id]["last_error"] == "interrupted 3 times while sending"
    assert rows[mail_id]["status"] == "pending"
    assert rows[mail_id]["note"] == (
        f"fallback: {sms_id} failed on sms: interrupted 3 times while sending"
    )
    outcomes = await _outcomes(engine, sms_id)
    assert [outcome for outcome, _ in outcomes] == ["interrupted"] * 3
    assert outcomes[-1][1] == (
        "the process stopped during the send; interrupted 3 times while sending: failed"
    )
    labels = {"channel": "sms", "outcome": "failed", "reason": "interrupted"}
    assert _sample(registry, "slawatch_notifier_notifications_total", **labels) == 1
    assert _sample(registry, "slawatch_notifier_fallbacks_total", channel="email") == 1
    async with engine.connect() as conn:
        assert [f.id for f in await store.unpublished(conn, 10)] == [sms_id]
    # a redrive forgets the interruptions: the next one resends it
    async with engine.begin() as conn:
        await store.redrive(conn, store.RedriveFilter(ids=(sms_id,)), _now())
        await store.claim_due(conn, _now(), {Channel.SMS: 1})
    (item,) = await _dispatcher(engine, ports, FAST, registry).recover()
    assert (item.times, item.failed) == (1, False)


# --- redrive -------------------------------------------------------------------------


async def a_redrive_moves_exactly_the_matching_rows_and_each_is_delivered_once(
    engine: AsyncEngine,
) -> None:
    tickets = [f"OPS-{n}" for n in range(1, 7)]
    ids = dict(zip(tickets, await _insert(engine, "warning:75", tickets), strict=True))
    base = _now() - timedelta(hours=1)
    async with engine.begin() as conn:
        claimed = {c.id: c for c in await store.claim_due(conn, _now(), slots(10))}
    for n, ticket in enumerate(tickets, start=1):  # OPS-n fails n minutes after base
        item = claimed[ids[ticket]]
        at = base + timedelta(minutes=n)
        outcome: Outcome
        if ticket == "OPS-6":
            step, outcome = NextStep(Status.SENT), Delivered(None)
        else:
            error = "retry budget of 6h exhausted after 90 attempt(s); last error: HTTP 503"
            step, outcome = NextStep(Status.FAILED, error=error), Retryable("HTTP 503")
        async with engine.begin() as conn:
            await store.finish_attempts(conn, [(item, store.Attempt(at, 5, outcome), step)], at)
    async with engine.begin() as conn:
        await store.mark_published(conn, [ids["OPS-1"], ids["OPS-2"]])  # their failure is told

    async def redrive(matching: store.RedriveFilter) -> list[str]:
        async with engine.begin() as conn:
            return [ref.id for ref in await store.redrive(conn, matching, _now())]

    assert await redrive(store.RedriveFilter(ids=(ids["OPS-1"], ids["OPS-6"]))) == [ids["OPS-1"]]
    assert await redrive(store.RedriveFilter(ticket=("jira", "OPS-2"))) == [ids["OPS-2"]]
    assert await redrive(store.RedriveFilter(ticket=("zendesk", "OPS-5"))) == []
    window = store.RedriveFilter(
        failed_from=base + timedelta(minutes=3), failed_until=base + timedelta(minutes=5)
    )
    assert await redrive(window) == sorted([ids["OPS-3"], ids["OPS-4"]])
    assert await redrive(store.RedriveFilter(ids=(ids["OPS-1"],))) == []  # pending already
    with pytest.raises(ValueError, match="needs ids, a ticket or a time range"):
        await redrive(store.RedriveFilter())
    redriven = [ids[t] for t in ("OPS-1", "OPS-2", "OPS-3", "OPS-4")]
    rows = await _rows(engine)
    assert {nid: row["status"] for nid, row in rows.items()} == {
        **dict.fromkeys(redriven, "pending"),
        ids["OPS-5"]: "failed",
        ids["OPS-6"]: "sent",
    }
    for nid in redriven:
        row = rows[nid]
        assert (row["redrives"], row["retry_from"], row["failing_since"]) == (1, None, None)
        assert row["note"].startswith("redriven at ")
        assert row["note"].endswith(
            "; it had failed: retry budget of 6h exhausted after 90 "
            "attempt(s); last error: HTTP 503"
        )

    mail = Recording()
    async with _running(_dispatcher(engine, {Channel.EMAIL: mail})):
        await _until(engine, dict.fromkeys(redriven, "sent"))
        await asyncio.sleep(0.3)  # time for any (wrong) further send
    assert mail.sent == Counter(redriven)
    assert (await _statuses(engine))[ids["OPS-5"]] == "failed"
    async with engine.connect() as conn:
        records = {f.id: outbox.record_for(f, HASHER) for f in await store.unpublished(conn, 20)}
    # each redriven one is told again, under a new event id; the untouched ones as before
    for nid in redriven:
        assert (records[nid].type, records[nid].event_id) == (
            "notification.sent",
            f"notification:{nid}:sent:r1",
        )
        assert records[nid].data.attempts == 2
    assert records[ids["OPS-5"]].event_id == f"notification:{ids['OPS-5']}:failed"
    assert records[ids["OPS-6"]].event_id == f"notification:{ids['OPS-6']}:sent"
    NotificationRecord.model_validate_json(records[redriven[0]].model_dump_json())


SCENARIOS: list[Scenario] = [
    a_failing_primary_releases_its_fallback_and_keeps_retrying,
    a_released_fallback_not_yet_sent_stands_down_when_the_primary_gets_through,
    a_fallback_in_flight_when_the_primary_gets_through_is_not_retried,
    a_notification_failing_past_its_budget_fails_with_the_reason,
    a_send_that_raises_fails_that_notification_and_nothing_else,
    a_send_interrupted_three_times_fails_and_its_fallback_takes_over,
    a_redrive_moves_exactly_the_matching_rows_and_each_is_delivered_once,
]

test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(SCENARIOS)
