"""The engine process: wiring of intake, timer and outbox publisher, and its HTTP face.

    Kafka tickets ──▶ Intake ──(one transaction: clocks + outbox)──▶ commit offsets
                                   ▲
    DueIndex ──▶ Timer ────────────┘ (fires due stages, same transaction shape)
    outbox ──▶ Publisher ──▶ Kafka SLA topic

All three workers share one lock around their write transactions, so within a
process the intake and the timer never interleave on a clock; across
processes the clock's version column guards every update.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.auth import RequireCredential, Scope, public_route
from slawatch_common.consumer import is_fatal, is_transient, reachable
from slawatch_common.db import create_engine, upgrade
from slawatch_common.deadletter_ops import dead_letter_router
from slawatch_common.kafka import client_options, ensure_topics, start_producer
from slawatch_common.runtime import every, start_worker, stop_workers
from slawatch_engine import retention, store
from slawatch_engine.budgets import KIND, BudgetWatch
from slawatch_engine.intake import Intake
from slawatch_engine.issuing import ReportWatch
from slawatch_engine.ledger import Changes, Ledger
from slawatch_engine.metrics import OPEN_STATES, ComplianceMetrics, EngineMetrics
from slawatch_engine.monitoring import MonitoringIntake
from slawatch_engine.outbox import Publisher
from slawatch_engine.periods import period_containing
from slawatch_engine.policy import PolicyBook
from slawatch_engine.preview import Previewer, TooManyRequestsError
from slawatch_engine.reporting import stored_report
from slawatch_engine.reports_api import reports_router
from slawatch_engine.settings import EngineSettings
from slawatch_engine.status import clock_status
from slawatch_engine.timer import DueIndex, Timer

log = logging.getLogger(__name__)


def owned_partitions(consumer: AIOKafkaConsumer) -> set[int]:
    """The input partitions this engine owns now (its consumer's assignment)."""
    return {tp.partition for tp in consumer.assignment()}


MAX_PREVIEW_BYTES = 1024 * 1024
"""The largest preview body (a hundred requests with their pauses fit many times)."""


def utc_now() -> datetime:
    """The one place the engine reads real time."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    db: AsyncEngine
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    intake: Intake
    book: PolicyBook


def create_app(
    settings: EngineSettings, book: PolicyBook, now: Callable[[], datetime] = utc_now
) -> FastAPI:
    registry = CollectorRegistry()
    tokens = settings.token_book({Scope.REPORTS_READ: settings.report_tokens})
    metrics = EngineMetrics(registry)
    compliance_metrics = ComplianceMetrics(registry, book)
    pruning = retention.pruner(settings, registry, now)
    state: dict[str, Runtime] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url)
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        topics = settings.topics
        kafka = client_options(settings)  # TLS and SASL of every Kafka client
        await ensure_topics(
            settings.kafka_bootstrap,
            topics.all(),
            settings.kafka_partitions,
            options=kafka,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
        producer = await start_producer(settings.kafka_bootstrap, options=kafka)
        consumer = _consumer(settings, settings.consumer_group)
        ledger = Ledger(book, topics.sla)
        index = DueIndex()
        metrics.due_index.set_function(lambda: len(index))
        lock = asyncio.Lock()
        publisher = Publisher(db, producer, metrics, now, owned=lambda: owned_partitions(consumer))

        def committed(changes: Changes) -> None:
            for event in changes.emitted:
                metrics.emitted(event.type, event.data.ticket.priority.value)
            compliance_metrics.count(changes)
            if changes.emitted:
                publisher.wake()

        timer = Timer(db, ledger, index, lock, committed, now, metrics)
        intake = Intake(consumer, db, ledger, index, timer, lock, committed, now, metrics)
        timer.follow(intake.input_time)
        consumer.subscribe([topics.tickets], listener=intake)
        await consumer.start()
        watch = BudgetWatch(
            db,
            book,
            topics.sla,
            metrics,
            compliance_metrics,
            owned=lambda: owned_partitions(consumer),
            now=now,
            on_committed=committed,
            lock=lock,
            refresh_s=settings.availability_refresh_s,
        )
        reports = ReportWatch(
            db,
            book,
            topics.reports,
            metrics.heartbeats,
            owned=lambda: owned_partitions(consumer),
            now=now,
            published=publisher.wake,
        )
        alerts_consumer = _consumer(settings, settings.monitoring_group, topics.monitoring)
        await alerts_consumer.start()
        alerts = MonitoringIntake(alerts_consumer, db, metrics, watch.wake, now)
        state["rt"] = Runtime(db, producer, consumer, intake, book)
        workers = [
            start_worker(publisher.run(), "publisher"),
            start_worker(timer.run(), "timer"),
            start_worker(intake.run(), "intake"),
            start_worker(alerts.run(), "monitoring"),
            start_worker(watch.run(), "budgets"),
            start_worker(reports.run(), "reports"),
            start_worker(
                every(
                    settings.gauge_refresh_s,
                    _allowances(db, book, now, compliance_metrics, metrics),
                    "allowances",
                    metrics.heartbeats,
                ),
                "allowances",
            ),
            start_worker(
                every(
                    settings.gauge_refresh_s,
                    _count_open_clocks(db, metrics),
                    "gauges",
                    metrics.heartbeats,
                ),
                "gauges",
            ),
            start_worker(
                every(
                    3600.0,
                    _prune(db, now, timedelta(days=settings.dedup_retention_days)),
                    "prune",
                    metrics.heartbeats,
                ),
                "prune",
            ),
        ]
        try:
            with metrics.timing_gc():
                async with pruning.running(db, lock):
                    yield
        finally:
            state.pop("rt", None)
            await stop_workers(*workers)
            await alerts_consumer.stop()
            await consumer.stop()
            await producer.stop()
            await db.dispose()

    app = FastAPI(title="slawatch SLA engine", version="0.1.0", lifespan=lifespan)
    # a known token before any body is read (FastAPI reads it before a route's dependencies)
    app.add_middleware(RequireCredential, tokens=tokens, is_open=public_route)

    @app.get("/metrics", dependencies=[Depends(settings.metrics_access())])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """200 when this engine owns partitions and reaches its database and broker."""
        runtime = state.get("rt")
        if runtime is None:
            response.status_code = 503
            return {"ready": False}
        answers = await reachable(runtime.db, runtime.consumer)
        ready = runtime.intake.assigned and all(answers.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "assigned": runtime.intake.assigned, **answers}

    def running() -> Runtime:
        if "rt" not in state:
            raise HTTPException(503, "starting")
        return state["rt"]

    app.include_router(
        dead_letter_router(
            store.dead_letters,
            lambda: running().db,
            lambda: running().producer,
            tokens,
        )
    )

    app.include_router(
        reports_router(
            book,
            lambda: running().db,
            tokens,
            now,
        )
    )

    previewer = Previewer(configs=book.calendar_configs)  # one call at a time: its lock

    @app.post("/v1/preview", dependencies=[Depends(tokens.require(Scope.SLA_READ))])
    async def preview(request: Request) -> Any:
        """Deadline or elapsed-time answers for one request or an array (see preview.py):
        the body read up to ``MAX_PREVIEW_BYTES`` (413 beyond), answered in a worker thread,
        one call at a time, on the previewer's own calendars."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_PREVIEW_BYTES:
            raise HTTPException(413, f"body: at most {MAX_PREVIEW_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_PREVIEW_BYTES:
                raise HTTPException(413, f"body: at most {MAX_PREVIEW_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise HTTPException(422, f"body: not JSON ({type(exc).__name__})") from None
        try:
            return await asyncio.to_thread(previewer.answer_all, body)
        except TooManyRequestsError as exc:
            raise HTTPException(422, f"body: {exc}") from None

    @app.get(
        "/v1/tickets/{source}/{ticket_id}/sla",
        dependencies=[Depends(tokens.require(Scope.SLA_READ))],
    )
    async def ticket_sla(source: str, ticket_id: str) -> dict[str, Any]:
        """Every clock of the ticket: state, business time used, remaining, deadline."""
        runtime = running()  # 503 while the engine starts
        async with runtime.db.connect() as conn:
            found = await store.clocks_of_ticket(conn, f"{source}:{ticket_id}")
        if not found:
            raise HTTPException(404, f"no SLA clocks for ticket {source}:{ticket_id}")
        at = now()
        return {
            "ticket": {"source": source, "id": ticket_id},
            "at": at.isoformat(),
            "clocks": [clock_status(c, runtime.book.calendar(c.calendar), at) for c in found],
        }

    return app


def _prune(
    db: AsyncEngine, now: Callable[[], datetime], keep: timedelta
) -> Callable[[], Awaitable[None]]:
    """Forget what no redelivery can bring back (see ``store.prune``)."""

    async def step() -> None:
        async with db.begin() as conn:
            ids, rows = await store.prune(conn, now() - keep)
        if ids or rows:
            log.info("pruned %d processed event ids and %d published outbox rows", ids, rows)

    return step


def _consumer(settings: EngineSettings, group: str, *topics: str) -> AIOKafkaConsumer:
    """A consumer of the engine: offsets committed by hand after the batch's transaction."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        # a restarted engine takes over a dead member's partitions once its
        # session expires: keep that short (the broker's minimum is 6 s)
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.session_timeout_ms // 4,
        **client_options(settings),
    )


def _allowances(
    db: AsyncEngine,
    book: PolicyBook,
    now: Callable[[], datetime],
    gauges: ComplianceMetrics,
    metrics: EngineMetrics,
) -> Callable[[], Awaitable[None]]:
    """How many more late items each contract's current period tolerates (the gauge)."""

    async def step() -> None:
        at = now()
        for name, contract in book.contracts.items():
            try:
                period = period_containing(at, KIND[contract.review], contract.zone)
                report = await stored_report(
                    db, book, name, contract, period, at, with_tickets=False
                )
            except Exception as exc:
                if is_fatal(exc) or is_transient(exc):
                    raise  # waited out (or fatal) by the loop
                # one contract's fault never leaves the others' gauges stale
                log.exception("contract %s: allowance not computed", name)
                metrics.heartbeats.fault("allowances")
                continue
            for indicator, allowance in report.allowance.items():
                projected = allowance["projected"]
                value = math.nan if projected is None else projected  # nothing to judge yet
                gauges.allowance.labels(name, indicator).set(value)

    return step


def _count_open_clocks(db: AsyncEngine, metrics: EngineMetrics) -> Callable[[], Awaitable[None]]:
    column = store.clocks.c.state
    query = select(column, func.count()).where(column.in_(OPEN_STATES)).group_by(column)

    async def step() -> None:
        async with db.connect() as conn:
            counts = {row[0]: int(row[1]) for row in await conn.execute(query)}
        for open_state in OPEN_STATES:
            metrics.open_clocks(open_state, counts.get(open_state, 0))

    return step
