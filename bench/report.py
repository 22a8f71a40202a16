"""A month's compliance report from the stored ledger, beside one SQL aggregate of the same rows.

The engine's tables on PostgreSQL hold November 2026 of contract ``acme``
(tests/engine/compliance/contract.yaml): 100,000 tickets of policy ``net``
(7×24) with a response and a resolution clock each — most stopped, some
late, some still running — 30 % of them rated, and 10,000 alert intervals
over the contract's three monitored services. Rows are written by COPY in
the shape the engine stores them.

- ``seconds``: the report's summary (no per-ticket list) as the engine's
  ``GET /v1/reports`` builds it (``reporting.stored_report``), best of 3;
- ``baseline_sql_aggregate_seconds``: one ``GROUP BY`` over the same clock
  rows of the same tickets (count, summed business seconds, late count per
  metric), same run, same driver, best of 3.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text

from bench.engine import PG_ADMIN
from bench.ingest import ROOT
from slawatch_common.db import create_engine, upgrade
from slawatch_engine import store
from slawatch_engine.documents import render_pdf
from slawatch_engine.periods import period_of
from slawatch_engine.policy import load_policies
from slawatch_engine.reporting import stored_report

TICKETS = 100_000
ALERTS = 10_000
CONFIG = ROOT / "tests/engine/compliance/contract.yaml"
TARGETS = {"P1": (900, 4 * 3600), "P2": (1800, 8 * 3600)}

BASELINE = """
    SELECT c.metric, count(*), sum(c.used_seconds),
           sum(CASE WHEN c.stopped_at > c.deadline THEN 1 ELSE 0 END)
    FROM engine_tickets t JOIN engine_clocks c ON c.ticket_key = t.key
    WHERE t.policy = ANY(:policies) AND t.created_at >= :start AND t.created_at < :end
    GROUP BY c.metric
"""


def bench_report() -> dict[str, Any]:
    return asyncio.run(_bench())


async def _bench() -> dict[str, Any]:
    database = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    book = load_policies(CONFIG)
    contract = book.contracts["acme"]
    period = period_of("2026-11", contract.zone)
    as_of = period.end + timedelta(hours=1)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        db = create_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))
        try:
            await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
            await _seed(dsn, period.start, period.end)
            figures = await stored_report(
                db, book, "acme", contract, period, as_of, with_tickets=False
            )
            seconds = await _best(
                lambda: stored_report(db, book, "acme", contract, period, as_of, with_tickets=False)
            )

            async def aggregate() -> Any:
                async with db.connect() as conn:
                    rows = await conn.execute(
                        text(BASELINE),
                        {"policies": contract.policies, "start": period.start, "end": period.end},
                    )
                    return rows.all()

            baseline = await _best(aggregate)
            document = await _best(lambda: asyncio.to_thread(render_pdf, figures.as_json()))
        finally:
            await db.dispose()
    finally:
        await _drop(admin, database)
        await admin.close()
    summary = figures.as_json()
    return {
        "seconds": round(seconds, 3),
        "baseline_sql_aggregate_seconds": round(baseline, 4),
        "ratio_to_baseline": round(seconds / baseline, 1),
        "document_pdf_seconds": round(document, 3),
        "tickets_counted": summary["counts"]["tickets"],
        "on_time_resolution_rate": summary["indicators"]["on_time_resolution_rate"]["value"],
        "load": f"{TICKETS:,} tickets (2 clocks each, 30 % rated) and {ALERTS:,} alert "
        "intervals in one month, PostgreSQL; summary without the per-ticket list; the "
        "month's PDF document rendered from it",
    }


async def _drop(admin: Any, database: str) -> None:
    """Drop the database; an autovacuum worker (the superuser's, after the bulk load) may
    hold it a moment, and FORCE may not end another role's process: wait and try again."""
    for attempt in range(10):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 9:
                raise
            await asyncio.sleep(1)


async def _best(run: Any, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - started)
    return best


async def _seed(dsn: str, start: datetime, end: datetime) -> None:
    """The month's rows, as the engine stores them, by COPY."""
    rng = random.Random(13)
    step = (end - start) / TICKETS
    tickets, clocks = [], []
    for n in range(TICKETS):
        created = start + step * n
        priority = "P1" if n % 3 == 0 else "P2"
        key = f"bench:{n}"
        rated = rng.random() < 0.3
        tickets.append(
            (
                key,
                "bench",
                str(n),
                n % 4,
                priority,
                "net",
                json.dumps(
                    {
                        "id": str(n),
                        "priority": priority,
                        "service": f"network-{n % 40}",
                        "type": "incident",
                        "title": f"Link down at site {n % 3000}",
                        "assignee": {"id": f"agent-{n % 50}", "name": f"Agent {n % 50}"},
                        "group": f"l{n % 3 + 1}",
                    }
                ),
                created,
                created,
                rng.choice((0.0, 5.0, 4.0, 3.0, 5.0)) if rated else None,
                5.0 if rated else None,
                created + timedelta(days=1) if rated else None,
            )
        )
        for metric, target in zip(("response", "resolution"), TARGETS[priority], strict=True):
            running = rng.random() < 0.04
            used = float(rng.randint(target // 20, target * 11 // 10))
            deadline = created + timedelta(seconds=target)
            stopped = None if running else created + timedelta(seconds=used)
            timeline = [{"at": created.isoformat(), "kind": "start", "target": target}]
            if stopped is not None:
                timeline.append({"at": stopped.isoformat(), "kind": "stop"})
            clocks.append(
                (
                    f"{key}:{metric}",
                    key,
                    n % 4,
                    metric,
                    "net",
                    None,
                    "always",
                    target,
                    json.dumps(["warning:50", "warning:75", "warning:90"]),
                    json.dumps(timeline),
                    json.dumps([]),
                    1,
                    "running" if running else "stopped",
                    created,
                    0.0 if running else used,
                    created if running else None,
                    stopped is not None and stopped > deadline,
                    stopped,
                    deadline,
                    None,
                    0,
                    created,
                    stopped or created,
                )
            )
    services = ("core-net", "erp", "mail")
    outages = []
    for n in range(ALERTS):
        begins = start + timedelta(seconds=rng.randint(0, int((end - start).total_seconds())))
        ends = begins + timedelta(seconds=rng.randint(30, 1800))
        outages.append((services[n % 3], f"fp{n}", begins, ends, "ServiceDown", begins))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "engine_tickets",
            records=tickets,
            columns=[
                "key",
                "source",
                "ticket_id",
                "partition",
                "priority",
                "policy",
                "snapshot",
                "updated_at",
                "created_at",
                "rating_score",
                "rating_scale",
                "rated_at",
            ],
        )
        await conn.copy_records_to_table(
            "engine_clocks",
            records=clocks,
            columns=[
                "id",
                "ticket_key",
                "partition",
                "metric",
                "policy",
                "escalation",
                "calendar",
                "target_seconds",
                "stages",
                "timeline",
                "fired",
                "cycle",
                "state",
                "started_at",
                "used_seconds",
                "running_since",
                "breached",
                "stopped_at",
                "deadline",
                "next_due_at",
                "version",
                "updated_at",
                "last_entry_at",
            ],
        )
        await conn.copy_records_to_table(
            "engine_outages",
            records=outages,
            columns=["service", "fingerprint", "starts_at", "ends_at", "name", "updated_at"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


if __name__ == "__main__":
    print(json.dumps(bench_report(), indent=2))
