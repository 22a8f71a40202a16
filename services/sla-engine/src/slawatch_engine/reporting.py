"""The inputs of a compliance report: the ledger's state at ``as_of``, offline or stored.

Offline (``slawatch-engine report``), a file of canonical events (NDJSON, any
order) is replayed through the very ``Ledger`` the engine runs, in memory:
every event that occurred by ``as_of``, in the order it occurred, each event id
once. Online, the same facts are read from the engine's tables: a clock
whose timeline has no entry after ``as_of`` is taken as stored (its replay is
stored beside it); one that changed after ``as_of`` is replayed up to it.
Either way ``compliance.build`` turns the facts into the report.

Alerts become firing intervals keyed by (service, fingerprint, starts_at): a
firing event opens one, a resolved event closes it at its ``ends_at`` (or, if
it has none, when it occurred); repeats and the order of arrival change
nothing, and a firing that arrives after its resolution does not reopen it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.events import INBOUND_ADAPTER, MonitoringEvent, TicketEvent
from slawatch_engine import store
from slawatch_engine.calendar import Calendar
from slawatch_engine.clock import Clock, replay
from slawatch_engine.compliance import Alerts, ClockFact, TicketFact, view_of_stored
from slawatch_engine.ledger import Ledger
from slawatch_engine.policy import PolicyBook
from slawatch_engine.store import Workset

AlertKey = tuple[str, str, datetime]
"""(service, fingerprint, starts_at): one firing of one alert."""
REPORTED = ("response", "resolution")


def note_alert(intervals: dict[AlertKey, datetime | None], event: MonitoringEvent) -> None:
    """Fold one monitoring event into the firing intervals (see the module's rules)."""
    alert = event.data
    key = (alert.service, alert.fingerprint, alert.starts_at)
    if event.type == "monitor.alert_firing":
        intervals.setdefault(key, None)
        return
    end = alert.ends_at or event.occurred_at
    known = intervals.get(key)
    intervals[key] = end if known is None else min(known, end)


def by_service(intervals: Mapping[AlertKey, datetime | None]) -> dict[str, list[Any]]:
    grouped: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for (service, _, starts_at), ends_at in intervals.items():
        grouped[service].append((starts_at, ends_at))
    return dict(grouped)


def read_events(lines: Iterable[str]) -> Iterator[TicketEvent | MonitoringEvent]:
    """The canonical ticket and monitoring events of NDJSON ``lines`` (blank lines skipped);
    ``ValueError`` naming the line of the first that is not one."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield INBOUND_ADAPTER.validate_json(line)
        except ValidationError as exc:
            raise ValueError(f"line {number}: {exc}") from None


class OfflineLedger:
    """The engine's ledger run in memory over a set of events."""

    def __init__(self, book: PolicyBook) -> None:
        self._book = book
        self._ledger = Ledger(book, "offline")
        self.work = Workset()
        self.intervals: dict[AlertKey, datetime | None] = {}
        self.rejected: dict[str, int] = defaultdict(int)

    def run(self, events: Iterable[TicketEvent | MonitoringEvent], as_of: datetime) -> None:
        """Apply every event that occurred by ``as_of``, in the order they occurred."""
        seen: set[str] = set()
        for event in sorted(events, key=lambda e: e.occurred_at):  # stable for equal instants
            if event.occurred_at > as_of or event.event_id in seen:
                continue
            seen.add(event.event_id)
            if isinstance(event, MonitoringEvent):
                note_alert(self.intervals, event)
                continue
            outcome = self._ledger.apply(self.work, event, 0, as_of)
            if outcome.rejected:
                self.rejected[outcome.rejected] += 1

    def facts(self, as_of: datetime) -> list[TicketFact]:
        facts = []
        for row in self.work.tickets.values():
            if row.policy is None or row.created_at is None:
                continue
            clocks = {c.metric.value: c for c in self.work.clocks_of(row.key)}
            facts.append(
                TicketFact(
                    key=row.key,
                    policy=row.policy,
                    priority=row.priority,
                    created_at=row.created_at,
                    response=self._fact(clocks.get("response"), as_of),
                    resolution=self._fact(clocks.get("resolution"), as_of),
                    rating=row.rating_percent,
                )
            )
        return facts

    def _fact(self, clock: Clock | None, as_of: datetime) -> ClockFact | None:
        if clock is None:
            return None
        calendar = self._book.calendar(clock.calendar)
        return ClockFact.of(replay(clock, calendar), calendar, as_of)

    def alerts(self) -> Alerts:
        return by_service(self.intervals)


# --- the stored ledger ---------------------------------------------------------------


async def stored_facts(
    conn: AsyncConnection,
    book: PolicyBook,
    policies: Iterable[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
) -> list[TicketFact]:
    """The tickets of ``policies`` created in [start, end) by ``as_of``, as of ``as_of``."""
    t, c = store.tickets, store.clocks
    query = (
        select(
            t.c.key,
            t.c.policy,
            t.c.priority,
            t.c.created_at,
            t.c.rating_percent,
            t.c.rated_at,
            c.c.id,
            c.c.metric,
            c.c.calendar,
            c.c.state,
            c.c.target_seconds,
            c.c.used_seconds,
            c.c.running_since,
            c.c.started_at,
            c.c.stopped_at,
            c.c.deadline,
            c.c.last_entry_at,
        )
        .select_from(t.outerjoin(c, and_(c.c.ticket_key == t.c.key, c.c.metric.in_(REPORTED))))
        .where(
            t.c.policy.in_(list(policies)),
            t.c.created_at >= start,
            t.c.created_at < end,
            t.c.created_at <= as_of,
        )
    )
    tickets: dict[str, dict[str, Any]] = {}
    replay_ids: dict[str, tuple[str, str]] = {}
    for row in (await conn.execute(query)).all():
        ticket = tickets.get(row.key)
        if ticket is None:
            rated = row.rated_at is not None and row.rated_at <= as_of
            ticket = tickets[row.key] = {
                "key": row.key,
                "policy": row.policy,
                "priority": row.priority,
                "created_at": row.created_at,
                "rating": row.rating_percent if rated else None,
                "response": None,
                "resolution": None,
            }
        if row.id is None:
            continue
        if row.last_entry_at is None or row.last_entry_at > as_of:
            replay_ids[row.id] = (row.key, row.metric)
            continue
        calendar = book.calendar(row.calendar)
        view = view_of_stored(
            row.state,
            row.target_seconds,
            row.used_seconds,
            row.running_since,
            row.started_at,
            row.stopped_at,
            row.deadline,
        )
        ticket[row.metric] = ClockFact.of(view, calendar, as_of)
    if replay_ids:
        for clock, calendar in await _clocks_up_to(conn, book, list(replay_ids), as_of):
            key, metric = replay_ids[clock.id]
            tickets[key][metric] = ClockFact.of(replay(clock, calendar), calendar, as_of)
    return [TicketFact(**ticket) for ticket in tickets.values()]


async def _clocks_up_to(
    conn: AsyncConnection, book: PolicyBook, ids: list[str], as_of: datetime
) -> list[tuple[Clock, Calendar]]:
    """These clocks with their timelines cut at ``as_of`` (a clock not started by then is
    left out)."""
    found = []
    for first in range(0, len(ids), 1000):
        rows = await conn.execute(
            select(store.clocks).where(store.clocks.c.id.in_(ids[first : first + 1000]))
        )
        for row in rows.mappings():
            clock = store.clock_from_row(row)
            cut = tuple(entry for entry in clock.timeline if entry.at <= as_of)
            if cut and cut[0].kind == "start":
                found.append((replace(clock, timeline=cut), book.calendar(clock.calendar)))
    return found


async def stored_alerts(
    conn: AsyncConnection, services: Iterable[str], start: datetime, end: datetime
) -> Alerts:
    """The firing intervals of ``services`` that overlap [start, end)."""
    o = store.outages
    rows = await conn.execute(
        select(o.c.service, o.c.fingerprint, o.c.starts_at, o.c.ends_at).where(
            o.c.service.in_(list(services)),
            o.c.starts_at < end,
            (o.c.ends_at.is_(None)) | (o.c.ends_at > start),
        )
    )
    return by_service({(r.service, r.fingerprint, r.starts_at): r.ends_at for r in rows})
