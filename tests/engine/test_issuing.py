"""Reports issued on schedule: a ``report.due`` once per contract and period, or by hand.

The watch runs on a real database (SQLite and PostgreSQL) and is driven by
explicit instants. Contract ``acme`` is monthly in Asia/Shanghai with
``issue_after: 1h``: November 2026 ends at 2026-11-30T16:00Z, so its report
falls due at 17:00Z.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import EVENT_ADAPTER, ReportEvent
from slawatch_engine import store
from slawatch_engine.issuing import ReportWatch, issue_by_hand, last_ended, next_issue
from slawatch_engine.main import main
from slawatch_engine.metrics import EngineMetrics
from slawatch_engine.policy import PolicyBook, load_policies

CONFIG = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: any
    calendar: always
    targets: {P1: {response: 15m}}
contracts:
  acme:
    customer: ACME Ltd
    provider: Ops
    time_zone: Asia/Shanghai
    language: zh-CN
    issue_after: 1h
    term: {start: 2026-06-01, end: 2026-11-30}
    policies: [any]
    report_to: [wang, li]
  quiet:
    customer: Quiet Co
    provider: Ops
    policies: [any]
  yearly:
    customer: Year Co
    provider: Ops
    review: yearly
    issue_after: 0s
    policies: [any]
    report_to: [wang]
"""
DUE = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def book(tmp_path: Path) -> PolicyBook:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    return load_policies(config)


def watch(db: AsyncEngine, book: PolicyBook, at: datetime, owned: set[int]) -> ReportWatch:
    return ReportWatch(
        db,
        book,
        "slawatch.reports",
        EngineMetrics(CollectorRegistry()).heartbeats,
        owned=lambda: owned,
        now=lambda: at,
        published=lambda: None,
    )


async def staged(db: AsyncEngine) -> list[ReportEvent]:
    async with db.connect() as conn:
        rows = (await conn.execute(select(store.outbox).order_by(store.outbox.c.id))).mappings()
        events = []
        for row in rows:
            assert row["topic"] == "slawatch.reports"
            event = EVENT_ADAPTER.validate_json(row["value"])
            assert isinstance(event, ReportEvent)
            assert row["key"] == event.data.contract
            events.append(event)
        return events


def test_a_period_falls_due_issue_after_its_end(book: PolicyBook) -> None:
    acme = book.contracts["acme"]
    assert last_ended(acme, DUE - timedelta(seconds=1)).label == "2026-10"
    assert last_ended(acme, DUE).label == "2026-11"
    assert next_issue(acme, DUE - timedelta(seconds=1)) == DUE
    assert next_issue(acme, DUE) == datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    yearly = book.contracts["yearly"]  # UTC, due at the year's end itself
    assert last_ended(yearly, datetime(2027, 1, 1, tzinfo=UTC)).label == "2026"
    assert last_ended(yearly, datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).label == "2025"


async def test_once_per_contract_and_period_across_engines_and_restarts(
    url: str, book: PolicyBook
) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        before = DUE - timedelta(seconds=1)
        # just before: October's report is the latest due (in the term, nobody sent it yet)
        wait = await watch(db, book, before, {0}).check()
        assert wait == pytest.approx(1.0)  # it wakes when November's falls due
        assert [(e.data.contract, e.data.period) for e in await staged(db)] == [
            ("acme", "2026-10"),
            ("yearly", "2025"),
        ]
        # at the instant, one engine and another, and the first again after a restart
        for owned in ({1}, {0}, {1}):
            await watch(db, book, DUE, owned).check()
        events = await staged(db)
        assert [(e.data.contract, e.data.period) for e in events] == [
            ("acme", "2026-10"),
            ("yearly", "2025"),
            ("acme", "2026-11"),
        ]
        november = events[-1]
        assert november.event_id == "report:acme:2026-11:scheduled"
        assert november.data.report_to == ["wang", "li"]
        assert november.data.language == "zh-CN"
        assert november.data.customer == "ACME Ltd"
        assert november.data.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
        assert november.data.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
        async with db.connect() as conn:
            partitions = (await conn.execute(select(store.outbox.c.partition))).scalars().all()
        assert partitions == [0, 0, 1]  # staged on a partition of the engine that issued it
        # December is outside the term: never issued
        await watch(db, book, datetime(2027, 1, 5, tzinfo=UTC), {0}).check()
        assert [e.data.period for e in await staged(db)][3:] == ["2026"]
    finally:
        await db.dispose()


async def test_an_engine_without_partitions_issues_nothing(url: str, book: PolicyBook) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        await watch(db, book, DUE, set()).check()
        assert await staged(db) == []
    finally:
        await db.dispose()


async def test_by_hand_again_each_time(url: str, book: PolicyBook) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        await watch(db, book, DUE, {0}).check()
        first = await issue_by_hand(db, book, "acme", "2026-11", "slawatch.reports", DUE)
        second = await issue_by_hand(db, book, "acme", "2026-11", "slawatch.reports", DUE)
        events = await staged(db)
        assert [e.data.issue for e in events if e.data.contract == "acme"] == [
            "scheduled",
            first.data.issue,
            second.data.issue,
        ]
        assert first.data.issue.startswith("manual:")
        assert first.event_id != second.event_id
        with pytest.raises(ValueError, match="unknown contract 'nope'"):
            await issue_by_hand(db, book, "nope", "2026-11", "slawatch.reports", DUE)
        with pytest.raises(ValueError, match="nobody in report_to"):
            await issue_by_hand(db, book, "quiet", "2026-11", "slawatch.reports", DUE)
        with pytest.raises(ValueError, match="month 13"):
            await issue_by_hand(db, book, "acme", "2026-13", "slawatch.reports", DUE)
    finally:
        await db.dispose()


def test_the_issue_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    monkeypatch.setenv("SLAWATCH_ENGINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/e.db")
    monkeypatch.setenv("SLAWATCH_CONFIG_FILE", str(config))
    assert main(["report", "issue", "--contract", "acme", "--period", "2026-11"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("issued report:acme:2026-11:manual:")
    assert main(["report", "issue", "--contract", "acme", "--period", "2026-14"]) == 2
    assert "2026-14" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "issue", "--contract", "acme"])  # no period


def test_issue_after_and_report_to_are_bounded() -> None:
    from pydantic import ValidationError

    from slawatch_engine.contracts import Contract

    base = {"customer": "C", "provider": "P", "policies": ["any"]}
    assert Contract.model_validate({**base, "issue_after": "31d"}).issue_after == 31 * 86400
    with pytest.raises(ValidationError, match="issue_after"):
        Contract.model_validate({**base, "issue_after": "32d"})
    with pytest.raises(ValidationError, match="report_to"):
        Contract.model_validate({**base, "report_to": [f"p{n}" for n in range(101)]})


async def test_a_contract_whose_period_cannot_be_named_keeps_no_other_back(
    url: str, book: PolicyBook
) -> None:
    """At the start of 1970 in Shanghai the period before is 1969: no label names it. The
    contract is skipped (logged, counted on the loop) and the watch goes on."""
    db = create_engine(url)
    registry = CollectorRegistry()
    heartbeats = EngineMetrics(registry).heartbeats
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
        early = datetime(1970, 1, 1, 0, 30, tzinfo=UTC)
        watch = ReportWatch(
            db,
            book,
            "slawatch.reports",
            heartbeats,
            owned=lambda: {0},
            now=lambda: early,
            published=lambda: None,
        )
        assert await watch.check() > 0
        assert await staged(db) == []
        faults = registry.get_sample_value(
            "slawatch_engine_transient_faults_total", {"loop": "reports"}
        )
        assert faults == 2  # acme and yearly
    finally:
        await db.dispose()
