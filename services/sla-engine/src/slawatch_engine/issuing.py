"""Reports issued on schedule: a ``report.due`` when a contract's period has ended.

A contract's period is its ``review`` (a calendar month, quarter or year in
its zone). ``issue_after`` past a period's end (late events still count in
the report), the watch stages a ``ReportEvent`` in the outbox, keyed by the
contract, on ``slawatch.reports``; the notifier fetches the documents from
``GET /v1/reports/{contract}`` and mails them to the contract's
``report_to``. Only contracts with someone to report to are issued, and only
periods inside the contract's term.

Once per contract and period: ``engine_report_issues`` holds a row per
issue, inserted with the outbox row in one transaction; a second engine, or
this one after a restart, finds the row and stages nothing. The event's id
is derived from the row's key, so the notifier's dedup catches a repeat
publication too. An engine down across a period's end issues the report
when it is back (the latest period that ended is always looked at), never
the periods before it.

By hand (``slawatch-engine report issue --contract NAME --period 2026-11``)
a report is issued again with an issue of its own, ``manual:<id>``: it goes
out even when the scheduled one did.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import is_fatal, is_transient
from slawatch_common.events import ReportDue, ReportEvent, bounded_id
from slawatch_common.runtime import Backoff, Heartbeats
from slawatch_engine import outbox, store
from slawatch_engine.budgets import KIND
from slawatch_engine.contracts import Contract
from slawatch_engine.ledger import SOURCE
from slawatch_engine.periods import Period, period_containing
from slawatch_engine.policy import PolicyBook

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"
LOOP = "reports"
REFRESH_S = 60.0
"""The watch looks at least this often (and wakes at the next period's issue instant)."""


def last_ended(contract: Contract, now: datetime) -> Period:
    """The latest period of ``contract`` whose report is due by ``now`` (its end plus
    ``issue_after`` has passed)."""
    current = period_containing(
        now - timedelta(seconds=contract.issue_after), KIND[contract.review], contract.zone
    )
    return period_containing(current.start - timedelta(microseconds=1), current.kind, contract.zone)


def next_issue(contract: Contract, now: datetime) -> datetime:
    """When the next period's report falls due."""
    current = period_containing(
        now - timedelta(seconds=contract.issue_after), KIND[contract.review], contract.zone
    )
    return current.end + timedelta(seconds=contract.issue_after)


def in_term(contract: Contract, period: Period) -> bool:
    """Whether ``period`` overlaps the contract's term (always, without one)."""
    if contract.term is None:
        return True
    first = period.start.astimezone(contract.zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(contract.zone).date()
    return first <= contract.term.end and last >= contract.term.start


def report_event(
    name: str, contract: Contract, period: Period, issue: str, now: datetime
) -> ReportEvent:
    return ReportEvent(
        event_id=bounded_id(f"report:{name}:{period.label}:{issue}"),
        type="report.due",
        occurred_at=now,
        source=SOURCE,
        data=ReportDue(
            contract=name,
            customer=contract.customer,
            period=period.label,
            start=period.start,
            end=period.end,
            as_of=now,
            review=contract.review,
            language=contract.language,
            report_to=list(contract.report_to),
            issue=issue,
        ),
    )


def _insert_ignoring_duplicates(conn: AsyncConnection) -> Insert:
    table = store.report_issues
    keys = ["contract", "period", "issue"]
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)


async def issue(
    conn: AsyncConnection,
    name: str,
    contract: Contract,
    period: Period,
    issue: str,
    partition: int,
    topic: str,
    now: datetime,
) -> ReportEvent | None:
    """Stage the report of ``period`` in the caller's transaction, unless this issue of it
    was staged before; the event staged, if it was."""
    event = report_event(name, contract, period, issue, now)
    inserted = await conn.execute(
        _insert_ignoring_duplicates(conn).returning(store.report_issues.c.issue),
        [
            {
                "contract": name,
                "period": period.label,
                "issue": issue,
                "event_id": event.event_id,
                "issued_at": now,
            }
        ],
    )
    if inserted.first() is None:
        return None
    await outbox.stage(conn, [event], {event.event_id: partition}, topic, now)
    return event


async def issue_by_hand(
    db: AsyncEngine, book: PolicyBook, name: str, label: str, topic: str, now: datetime
) -> ReportEvent:
    """Issue the report of contract ``name`` for the period ``label`` now, again if it was
    issued before (on partition 0, which some engine always owns). ValueError: an unknown
    contract or period, or nobody to report to."""
    from slawatch_engine.periods import period_of

    contract = book.contracts.get(name)
    if contract is None:
        known = ", ".join(sorted(book.contracts)) or "none"
        raise ValueError(f"unknown contract {name!r} (known: {known})")
    if not contract.report_to:
        raise ValueError(f"contract {name!r} names nobody in report_to")
    period = period_of(label, contract.zone)
    async with db.begin() as conn:
        event = await issue(
            conn, name, contract, period, f"manual:{secrets.token_hex(6)}", 0, topic, now
        )
    if event is None:  # pragma: no cover - a fresh random issue id is never there yet
        raise RuntimeError("issued twice")
    return event


class ReportWatch:
    """Issues each contract's report when its period has ended (see the module)."""

    def __init__(
        self,
        db: AsyncEngine,
        book: PolicyBook,
        topic: str,
        heartbeats: Heartbeats,
        *,
        owned: Callable[[], Collection[int]],
        now: Callable[[], datetime],
        published: Callable[[], None],
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._db, self._book, self._topic = db, book, topic
        self._heartbeats = heartbeats
        self._owned, self._now, self._published = owned, now, published
        self._refresh_s = refresh_s

    async def run(self) -> None:
        """For ever: issue what is due, sleep until the next falls due (at most
        ``refresh_s``). A database away is waited out; only a schema error ends it."""
        backoff = Backoff(LOOP, self._heartbeats)
        while True:
            try:
                wait = await self.check()
            except Exception as exc:
                await backoff.after(exc)  # waits out a database away; raises anything else
                continue
            backoff.ok()
            await asyncio.sleep(max(0.05, wait))

    async def check(self) -> float:
        """Issue every report due and not issued; seconds until the next falls due (at most
        ``refresh_s``). One contract's fault never keeps the others' reports back."""
        now = self._now()
        wait = self._refresh_s
        owned = self._owned()
        for name, contract in self._book.contracts.items():
            if not contract.report_to:
                continue
            try:
                wait = min(wait, (next_issue(contract, now) - now).total_seconds())
                period = last_ended(contract, now)
                if not owned or not in_term(contract, period):
                    continue  # an engine that owns partitions issues it
                async with self._db.begin() as conn:
                    event = await issue(
                        conn, name, contract, period, SCHEDULED, min(owned), self._topic, now
                    )
            except Exception as exc:
                if is_fatal(exc) or is_transient(exc):
                    raise
                # one contract's fault never keeps the others' reports back
                log.exception("contract %s: report not issued", name)
                self._heartbeats.fault(LOOP)
                continue
            if event is not None:
                log.info("contract %s: report %s issued (%s)", name, period.label, event.event_id)
                self._published()
        return wait
