"""Seeding: every ticket and clock of the plan COPYed into the migrated database.

The keys and indexes of the engine's tables are dropped while the rows load and
rebuilt afterwards from their own definitions. The *filler* goes in first;
from the rate it was written at, the band's origin ``w0`` is placed far enough
ahead for the band, the rebuild and the engine's start; then the *band* goes in,
applied as of ``w0`` (stages crossed by then count as fired).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from bench.scale.plan import FILLER_SHAPES, Plan, say, utc
from bench.scale.rows import Rows, build_rows, check, column_at, columns, templates
from slawatch_engine import store

VERIFY_EVERY = 997
"""One ticket in this many is built in full by the engine and compared with its copy."""
BATCH = 20_000


async def seed(plan: Plan, dsn: str) -> Plan:
    """Write every ticket and clock into the migrated database; the plan with its
    window placed once the filler is in (from the rate it was written at)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        async with _bulk(conn, [store.tickets.name, store.clocks.name]):
            started = time.time()
            await _seed_filler(conn, plan)
            rows_per_s = 3 * plan.filler / (time.time() - started)
            plan = _placed(plan, rows_per_s)
            left = plan.w0 - time.time()
            say(f"filler in at {rows_per_s:,.0f} rows/s; window starts in {left:.0f} s")
            await _seed_band(conn, plan)
    finally:
        await conn.close()
    return plan


@asynccontextmanager
async def _bulk(conn: Any, tables: list[str]) -> AsyncIterator[None]:
    """The tables without their keys and indexes while they load; rebuilt afterwards
    from their own definitions (one sort each instead of a billion tree inserts)."""
    constraints = await conn.fetch(
        "SELECT conrelid::regclass::text AS tab, conname, pg_get_constraintdef(oid) AS def "
        "FROM pg_constraint WHERE conrelid::regclass::text = ANY($1::text[]) "
        "AND contype IN ('p', 'u')",
        tables,
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[]) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        tables,
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')
    for c in constraints:
        await conn.execute(f'ALTER TABLE {c["tab"]} DROP CONSTRAINT "{c["conname"]}"')
    yield
    started = time.time()
    for c in constraints:
        await conn.execute(f'ALTER TABLE {c["tab"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
    for index in indexes:
        await conn.execute(index["indexdef"])
    await conn.execute("; ".join(f"ANALYZE {table}" for table in tables))
    say(f"keys and indexes rebuilt in {time.time() - started:.0f} s")


def _placed(plan: Plan, rows_per_s: float) -> Plan:
    """The band's origin after its estimated writing, the rebuild of the indexes and the
    engine's start (loading its clocks)."""
    band_s = 3 * plan.band / rows_per_s
    rebuild_s = 0.4 * 3 * plan.tickets / rows_per_s
    start_s = 5 + plan.clocks * 15e-6
    w0 = float(math.ceil(time.time() + band_s + rebuild_s + start_s + 5))
    return replace(plan, w0=w0, start=w0)


async def _seed_filler(conn: Any, plan: Plan) -> None:
    """Filler tickets come in ``FILLER_SHAPES`` shapes: one of each is applied, the rest
    are copies, and one in ``VERIFY_EVERY`` is applied in full and compared."""
    now = float(int(time.time()))
    specs = [plan.filler_spec(s, now, f"~{s}~") for s in range(FILLER_SHAPES)]
    shapes = await templates(specs, now)
    ordered = [shapes[f"~{s}~"] for s in range(FILLER_SHAPES)]
    due_at = column_at(store.clocks, "next_due_at")
    soonest = min(r[due_at] for t in ordered for r in t.clocks if r[due_at] is not None)
    if soonest.timestamp() < time.time() + 1200:
        raise RuntimeError(f"filler clocks fall due at {soonest}, during the run")

    def copy(i: int) -> Rows:
        tid, _, _, _, partition = plan.filler_spec(i, now)
        return ordered[i % FILLER_SHAPES].copy(tid, partition)

    sample = range(0, plan.filler, VERIFY_EVERY)
    real = await build_rows([plan.filler_spec(i, now) for i in sample], now)
    check([copy(i) for i in sample], real)
    for start in range(0, plan.filler, BATCH):
        await _copy(conn, [copy(i) for i in range(start, min(start + BATCH, plan.filler))])
    say(f"filler: {plan.filler:,} tickets, {len(sample)} of them checked against the engine")


async def _seed_band(conn: Any, plan: Plan) -> None:
    """Band tickets differ in their creation instant and in how many stages were
    crossed by ``w0``: one of each such class is applied, the rest are copies moved
    to their instant, and one in ``VERIFY_EVERY // 2`` is applied in full and compared."""
    firsts: dict[int, int] = {}
    for j in range(plan.band):
        firsts.setdefault(plan.crossed(j), j)
    classes = await templates([plan.band_spec(j, f"~b{c}~") for c, j in firsts.items()], plan.w0)

    def copy(j: int) -> Rows:
        tid, created, _, _, partition = plan.band_spec(j)
        return classes[f"~b{plan.crossed(j)}~"].copy(tid, partition, utc(created))

    sample = sorted({*range(0, plan.band, VERIFY_EVERY // 2), *(j + 1 for j in firsts.values())})
    sample = [j for j in sample if j < plan.band]
    real = await build_rows([plan.band_spec(j) for j in sample], plan.w0)
    check([copy(j) for j in sample], real)
    for start in range(0, plan.band, BATCH):
        await _copy(conn, [copy(j) for j in range(start, min(start + BATCH, plan.band))])
    say(f"band: {plan.band:,} tickets in {len(firsts)} classes, {len(sample)} checked")


async def _copy(conn: Any, rows: list[Rows]) -> None:
    for table, records in (
        (store.tickets, [r for t, _ in rows for r in t]),
        (store.clocks, [r for _, c in rows for r in c]),
    ):
        await conn.copy_records_to_table(table.name, records=records, columns=columns(table))
