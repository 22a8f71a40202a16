"""The timer never stops on a clock it cannot fire: that clock is tried again later."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from slawatch_common.db import create_engine, upgrade
from slawatch_engine import store
from slawatch_engine.ledger import Changes
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.timer import RETRY_FAILED, DueIndex, Timer

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Ledger:
    """Fires every clock but ``bad``, whose firing raises (an absurd deadline, a bug)."""

    def __init__(self) -> None:
        self.fired: list[str] = []

    def fire(self, work: Any, clock_ids: list[str], now: datetime) -> Changes:
        if "bad" in clock_ids:
            raise OverflowError("date value out of range")
        self.fired.extend(clock_ids)
        return Changes()

    async def stage(self, conn: Any, changes: Changes, now: datetime) -> None:
        return None


async def test_a_clock_that_cannot_fire_is_put_back_and_the_others_fire(tmp_path: Path) -> None:
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/engine.db")
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        registry = CollectorRegistry()
        metrics, index, ledger = EngineMetrics(registry), DueIndex(), Ledger()
        for n, clock_id in enumerate(["a", "b", "bad", "c", "d"]):
            index.set(clock_id, 0, NOW - timedelta(seconds=5 - n))
        timer = Timer(
            db,
            ledger,  # type: ignore[arg-type]
            index,
            asyncio.Lock(),
            lambda _: None,
            lambda: NOW,
            metrics,
        )
        timer.hold(False)
        assert await timer._fire_due()
    finally:
        await db.dispose()
    assert ledger.fired == ["a", "b", "c", "d"]
    assert index.pop_due(NOW + RETRY_FAILED - timedelta(seconds=1)) == []
    assert index.pop_due(NOW + RETRY_FAILED) == ["bad"]
    assert registry.get_sample_value("slawatch_engine_timer_failures_total") == 1
