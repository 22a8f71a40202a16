"""The engine's tables on a real database: migrations and housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import func, insert, select, text

from slawatch_common.db import alembic_config, create_engine, upgrade
from slawatch_engine import store

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


async def test_prune_forgets_only_what_no_redelivery_can_bring_back(url: str) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        async with db.begin() as conn:
            await store.mark_processed(conn, ["old"], NOW - timedelta(days=9))
            await store.mark_processed(conn, ["recent"], NOW - timedelta(days=1))
            await conn.execute(
                insert(store.outbox),
                [
                    _row("published-long-ago", NOW - timedelta(days=9)),
                    _row("published-lately", NOW - timedelta(hours=1)),
                    _row("not-yet-published", None),
                ],
            )
        async with db.begin() as conn:
            assert await store.prune(conn, NOW - timedelta(days=8)) == (1, 1)
        async with db.connect() as conn:
            assert await store.unseen_event_ids(conn, ["old", "recent"]) == {"old"}
            left = await conn.execute(select(store.outbox.c.event_id).order_by(store.outbox.c.id))
            assert list(left.scalars()) == ["published-lately", "not-yet-published"]
            assert await conn.scalar(select(func.count()).select_from(store.clocks)) == 0
    finally:
        await db.dispose()


async def test_due_clocks_gives_each_instant_to_the_microsecond(url: str) -> None:
    """What the timer index is rebuilt from: (clock id, partition, µs since the epoch) of the
    clocks with a stage ahead in the partitions asked for, in chunks."""
    db = create_engine(url)
    due = {
        "a": (0, NOW + timedelta(microseconds=1)),
        "b": (1, NOW - timedelta(days=400, microseconds=999_999)),
        "c": (1, datetime(2031, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC)),
        "d": (2, NOW),  # a partition not asked for
    }
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        async with db.begin() as conn:
            rows = [_clock(clock_id, p, at) for clock_id, (p, at) in due.items()]
            rows.append(_clock("stopped", 0, None))
            await conn.execute(insert(store.clocks), rows)
        async with db.connect() as conn:
            chunks = [list(chunk) async for chunk in store.due_clocks(conn, [0, 1], chunk=2)]
    finally:
        await db.dispose()
    assert [len(chunk) for chunk in chunks] == [2, 1]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert sorted(tuple(row) for chunk in chunks for row in chunk) == [
        (clock_id, p, (at - epoch) // timedelta(microseconds=1))
        for clock_id, (p, at) in sorted(due.items())
        if p in (0, 1)
    ]


def _clock(clock_id: str, partition: int, next_due_at: datetime | None) -> dict[str, object]:
    return {
        "id": clock_id,
        "ticket_key": "t",
        "partition": partition,
        "metric": "response",
        "policy": "p",
        "escalation": None,
        "calendar": "24x7",
        "target_seconds": 3600,
        "stages": [],
        "timeline": [],
        "fired": [],
        "cycle": 1,
        "state": "running" if next_due_at else "stopped",
        "started_at": NOW,
        "used_seconds": 0.0,
        "running_since": NOW,
        "breached": False,
        "stopped_at": None,
        "deadline": next_due_at,
        "next_due_at": next_due_at,
        "version": 1,
        "updated_at": NOW,
    }


def _row(event_id: str, published: datetime | None) -> dict[str, object]:
    return {
        "event_id": event_id,
        "partition": 0,
        "topic": "t",
        "key": "k",
        "value": "{}",
        "created_at": NOW - timedelta(days=10),
        "published_at": published,
    }


async def test_the_compliance_migration_fills_in_what_stored_rows_already_tell(url: str) -> None:
    """0003 on a database with tickets and clocks: each ticket's creation is its clocks'
    first entry, each clock's last entry is its timeline's; a ticket without clocks has
    none; new tables for outages and budget stages exist."""

    def to(revision: str) -> Any:
        def run(connection: Any) -> None:
            cfg = alembic_config(store.MIGRATIONS, store.VERSION_TABLE)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

        return run

    created, answered = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    db = create_engine(url)
    try:
        async with db.begin() as conn:
            await conn.run_sync(to("0002"))
            for key in ("jira:1", "jira:2"):
                await conn.execute(
                    text(
                        "INSERT INTO engine_tickets (key, source, ticket_id, partition, priority,"
                        " policy, snapshot, updated_at) VALUES (:k, 'jira', :k, 0, 'P1', 'p',"
                        " '{}', :at)"
                    ),
                    {"k": key, "at": NOW},
                )
            timelines = {
                "jira:1:response": [
                    {"at": created.isoformat(), "kind": "start", "target": 900},
                    {"at": answered.isoformat(), "kind": "stop"},
                ],
                "jira:1:resolution": [
                    {"at": created.isoformat(), "kind": "start", "target": 3600},
                ],
            }
            for clock_id, timeline in timelines.items():
                await conn.execute(
                    insert(store.clocks).values(
                        id=clock_id,
                        ticket_key="jira:1",
                        partition=0,
                        metric=clock_id.rsplit(":", 1)[1],
                        policy="p",
                        calendar="always",
                        target_seconds=900,
                        stages=[],
                        timeline=timeline,
                        fired=[],
                        cycle=1,
                        state="running",
                        started_at=created,
                        used_seconds=0.0,
                        breached=False,
                        version=0,
                        updated_at=NOW,
                    )
                )
        async with db.begin() as conn:
            await conn.run_sync(to("head"))
        async with db.connect() as conn:
            tickets = dict(
                (await conn.execute(select(store.tickets.c.key, store.tickets.c.created_at))).all()
            )
            clocks = dict(
                (await conn.execute(select(store.clocks.c.id, store.clocks.c.last_entry_at))).all()
            )
            assert await conn.scalar(select(func.count()).select_from(store.outages)) == 0
            assert await conn.scalar(select(func.count()).select_from(store.budget_stages)) == 0
    finally:
        await db.dispose()
    assert tickets == {"jira:1": created, "jira:2": None}
    assert clocks == {"jira:1:response": answered, "jira:1:resolution": created}


async def test_the_ticket_facts_migration_copies_them_out_of_each_snapshot(url: str) -> None:
    """0005 on a database with tickets: the service, type, title, assignee (name, else id)
    and group of each stored snapshot land in their columns; a new snapshot writes them."""

    def to(revision: str) -> Any:
        def run(connection: Any) -> None:
            cfg = alembic_config(store.MIGRATIONS, store.VERSION_TABLE)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

        return run

    snapshots = {
        "jira:1": '{"id": "1", "service": "mail", "type": "incident", "title": "VPN down",'
        ' "assignee": {"id": "a7", "name": "Wang Li"}, "group": "l2"}',
        "jira:2": '{"id": "2", "assignee": {"id": "a8"}}',
    }
    db = create_engine(url)
    try:
        async with db.begin() as conn:
            await conn.run_sync(to("0004"))
            for key, snapshot in snapshots.items():
                await conn.execute(
                    text(
                        "INSERT INTO engine_tickets (key, source, ticket_id, partition, priority,"
                        " policy, snapshot, updated_at) VALUES (:k, 'jira', :k, 0, 'P1', 'p',"
                        " :s, :at)"
                    ),
                    {"k": key, "s": snapshot, "at": NOW},
                )
        async with db.begin() as conn:
            await conn.run_sync(to("head"))
        t = store.tickets
        columns = (t.c.key, t.c.service, t.c.category, t.c.title, t.c.assignee, t.c.grp)
        async with db.connect() as conn:
            rows = {row[0]: tuple(row[1:]) for row in await conn.execute(select(*columns))}
        assert rows == {
            "jira:1": ("mail", "incident", "VPN down", "Wang Li", "l2"),
            "jira:2": (None, None, None, "a8", None),
        }
    finally:
        await db.dispose()
