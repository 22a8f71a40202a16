"""The retention pruner on SQLite and PostgreSQL: what settled before the cutoff goes, in
batches and with its dependents; what is open or recent stays; a row a service changes
meanwhile is waited for and kept; a database that refuses connections fails rounds until
it answers; the task stops at once on leaving ``running``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.db import UtcDateTime, create_engine
from slawatch_common.retention import Dependent, Pruner, Rule
from support.net import free_port

NOW = datetime(2027, 12, 1, 9, 0, tzinfo=UTC)
KEEP = timedelta(days=396)
OLD = NOW - KEEP - timedelta(days=1)
RECENT = NOW - KEEP + timedelta(days=1)

metadata = sa.MetaData()
parcels = sa.Table(
    "parcels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("settled_at", UtcDateTime, nullable=False),
)
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("parcel_id", sa.Integer, nullable=False),
)
crates = sa.Table(
    "crates",
    metadata,
    sa.Column("owner", sa.String(50), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("settled_at", UtcDateTime, nullable=False),
)
crate_items = sa.Table(
    "crate_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(50), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
)

PARCELS = Rule(
    parcels,
    "settled_at",
    lambda cutoff: parcels.c.open.is_(False),
    (Dependent(labels, ("parcel_id",), ("id",)),),
)
CRATES = Rule(
    crates,
    "settled_at",
    dependents=(Dependent(crate_items, ("owner", "number"), ("owner", "number")),),
)


def pruner(registry: CollectorRegistry, **options: Any) -> Pruner:
    return Pruner(
        [PARCELS, CRATES], registry, keep=KEEP, now=lambda: NOW, service="test", **options
    )


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/retention.db"
    request.applymarker(pytest.mark.postgres)
    pg: str = request.getfixturevalue("pg_url")
    return pg


@pytest.fixture
async def db(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``url`` with the tables above."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def fill(db: AsyncEngine) -> None:
    """Parcels 0–9 old and settled, 10–11 old but open, 12–14 recent; two labels each.
    Crates of two owners, old and recent, with an item each."""
    rows = [
        {"id": n, "open": 10 <= n <= 11, "settled_at": OLD if n < 12 else RECENT} for n in range(15)
    ]
    async with db.begin() as conn:
        await conn.execute(sa.insert(parcels), rows)
        await conn.execute(
            sa.insert(labels), [{"id": n, "parcel_id": n // 2} for n in range(2 * len(rows))]
        )
        crate_rows = [
            {"owner": owner, "number": n, "settled_at": OLD if n < 3 else RECENT}
            for owner in ("ana", "bo")
            for n in range(5)
        ]
        await conn.execute(sa.insert(crates), crate_rows)
        await conn.execute(
            sa.insert(crate_items),
            [
                {"id": i, "owner": row["owner"], "number": row["number"]}
                for i, row in enumerate(crate_rows)
            ],
        )


async def ids(db: AsyncEngine, column: sa.ColumnElement[int]) -> list[int]:
    async with db.connect() as conn:
        return sorted(row[0] for row in await conn.execute(sa.select(column)))


def pruned(registry: CollectorRegistry, table: str) -> float | None:
    return registry.get_sample_value("slawatch_retention_pruned_total", {"table": table})


async def test_settled_rows_older_than_the_retention_go_in_batches_with_their_dependents(
    db: AsyncEngine,
) -> None:
    await fill(db)
    registry = CollectorRegistry()
    job = pruner(registry, batch=4, pause_s=0)
    assert {pruned(registry, t) for t in ("parcels", "labels", "crates", "crate_items")} == {0}

    done = await job.prune(db)

    assert done.deleted == {"labels": 20, "parcels": 10, "crate_items": 6, "crates": 6}
    assert done.batches == 3 + 2  # parcels: 4 + 4 + 2; crates: 4 + 2
    assert done.cutoff == NOW - KEEP
    assert await ids(db, parcels.c.id) == [10, 11, 12, 13, 14]  # open or recent
    assert await ids(db, labels.c.parcel_id) == [10, 10, 11, 11, 12, 12, 13, 13, 14, 14]
    async with db.connect() as conn:
        left = sorted((await conn.execute(sa.select(crates.c.owner, crates.c.number))).all())
        items = sorted(
            (await conn.execute(sa.select(crate_items.c.owner, crate_items.c.number))).all()
        )
    assert left == [("ana", 3), ("ana", 4), ("bo", 3), ("bo", 4)]
    assert items == left
    assert (pruned(registry, "parcels"), pruned(registry, "labels")) == (10, 20)
    assert (pruned(registry, "crates"), pruned(registry, "crate_items")) == (6, 6)

    again = await job.prune(db)
    assert (again.deleted, again.batches) == ({}, 0)
    assert pruned(registry, "parcels") == 10


async def test_a_round_stops_between_batches_when_asked(db: AsyncEngine) -> None:
    await fill(db)
    stopping = asyncio.Event()
    stopping.set()
    done = await pruner(CollectorRegistry(), batch=4).prune(db, stopping)
    assert done.deleted == {}
    assert len(await ids(db, parcels.c.id)) == 15


async def test_the_lock_given_is_held_around_each_batch(db: AsyncEngine) -> None:
    await fill(db)
    lock = asyncio.Lock()
    await lock.acquire()
    job = asyncio.create_task(pruner(CollectorRegistry(), batch=4, pause_s=0).prune(db, lock=lock))
    await asyncio.sleep(0.3)
    assert not job.done()
    assert len(await ids(db, parcels.c.id)) == 15  # nothing deleted while the service holds it
    lock.release()
    done = await asyncio.wait_for(job, 30)
    assert done.deleted["parcels"] == 10


@pytest.mark.postgres
async def test_a_row_a_service_changes_meanwhile_is_waited_for_and_kept(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await fill(engine)
        job = pruner(CollectorRegistry(), batch=20, pause_s=0)
        async with engine.begin() as service:  # a service works on parcel 3: it is recent now
            await service.execute(
                sa.update(parcels).where(parcels.c.id == 3).values(settled_at=NOW)
            )
            pruning = asyncio.create_task(job.prune(engine))
            await asyncio.sleep(0.5)
            assert not pruning.done()  # its delete waits for the service's transaction
        done = await asyncio.wait_for(pruning, 10)
        assert done.deleted["parcels"] == 9
        assert await ids(engine, parcels.c.id) == [3, 10, 11, 12, 13, 14]
    finally:
        await engine.dispose()


async def test_leaving_running_stops_the_task_at_once(db: AsyncEngine) -> None:
    await fill(db)
    registry = CollectorRegistry()
    job = pruner(registry, interval_s=3600.0)
    async with job.running(db) as task:
        await until(lambda: rounds(registry, "ok") == 1)
        started = time.monotonic()
    assert time.monotonic() - started < 2.0
    assert task.done()
    assert not task.cancelled()
    assert pruned(registry, "parcels") == 10
    assert registry.get_sample_value("slawatch_retention_last_success_timestamp_seconds")


def test_rounds_are_an_interval_apart_give_or_take_the_jitter() -> None:
    job = pruner(CollectorRegistry(), interval_s=3600.0, jitter=0.1)
    waits = [job.next_wait_s() for _ in range(200)]
    assert all(3240.0 <= wait <= 3960.0 for wait in waits)
    assert len(set(waits)) > 100


def rounds(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("slawatch_retention_rounds_total", {"outcome": outcome})
    return value or 0.0


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = condition()
        if not isinstance(answer, bool):
            answer = await answer
        if answer:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


async def forward_to(host: str, port: int, listen_port: int) -> asyncio.Server:
    """A TCP forwarder from 127.0.0.1:``listen_port`` to ``host``:``port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", listen_port)


@pytest.mark.postgres
async def test_a_database_that_refuses_connections_fails_rounds_until_it_answers(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    real = make_url(pg_url)
    setup = create_engine(pg_url)
    try:
        async with setup.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await fill(setup)
    finally:
        await setup.dispose()
    port = free_port()  # nothing listens there: every connection is refused
    db = create_engine(real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False))
    registry = CollectorRegistry()
    job = pruner(registry, interval_s=0.1, jitter=0.5, pause_s=0)
    server: asyncio.Server | None = None
    try:
        async with job.running(db) as task:
            await until(lambda: rounds(registry, "failed") >= 3)
            assert not task.done()
            assert rounds(registry, "ok") == 0
            assert pruned(registry, "parcels") == 0
            assert "the database is unavailable" in caplog.text

            server = await forward_to(real.host or "127.0.0.1", real.port or 5432, port)
            await until(lambda: rounds(registry, "ok") >= 1)
            assert not task.done()
        assert task.done()
        assert not task.cancelled()
        assert pruned(registry, "parcels") == 10
        assert pruned(registry, "labels") == 20
    finally:
        await db.dispose()
        if server is not None:
            server.close()
    check = create_engine(pg_url)
    try:
        assert await ids(check, parcels.c.id) == [10, 11, 12, 13, 14]
    finally:
        await check.dispose()


async def test_the_first_round_waits_its_time_after_start(db: AsyncEngine) -> None:
    await fill(db)
    registry = CollectorRegistry()
    job = Pruner(
        [PARCELS],
        registry,
        keep=KEEP,
        now=lambda: NOW,
        service="test",
        interval_s=3600.0,
        first_wait_s=3600.0,
    )
    async with job.running(db):
        await asyncio.sleep(0.5)
        assert rounds(registry, "ok") == 0  # not yet: the service is catching up
    assert len(await ids(db, parcels.c.id)) == 15
