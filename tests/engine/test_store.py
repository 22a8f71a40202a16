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
