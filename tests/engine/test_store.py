"""The engine's tables on a real database: migrations and housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from slawatch_common.db import create_engine, upgrade
from slawatch_engine import store

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/engine.db"
    request.applymarker(pytest.mark.postgres)
    pg: str = request.getfixturevalue("pg_url")
    return pg


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
