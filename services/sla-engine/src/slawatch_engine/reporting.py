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

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.events import INBOUND_ADAPTER, Metric, MonitoringEvent, TicketEvent
from slawatch_engine import store
from slawatch_engine.calendar import Calendar, to_us
from slawatch_engine.clock import Clock, replay
from slawatch_engine.compliance import Alerts, ClockFact, TicketFact
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
        return ClockFact.of(replay(clock, self._book.calendar(clock.calendar)), clock.calendar)

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
    """The tickets of ``policies`` created in [start, end) by ``as_of``, as of ``as_of``.

    One row per ticket with its response and resolution clock: a clock whose
    timeline has no entry after ``as_of`` is taken from the columns its replay
    was stored in; the others are read again with their timelines and
    replayed up to ``as_of``.
    """
    rows = await _fact_rows(conn, list(policies), start, end, as_of)
    with acyclic():
        facts, later = _facts_of(rows)
    if later:
        for clock, calendar in await _clocks_up_to(conn, book, list(later), as_of):
            index = later[(clock.ticket_key, clock.metric.value)]
            fact = ClockFact.of(replay(clock, calendar), clock.calendar)
            if clock.metric is Metric.RESPONSE:
                facts[index] = facts[index]._replace(response=fact)
            else:
                facts[index] = facts[index]._replace(resolution=fact)
    return facts


def _facts_of(
    rows: Sequence[Sequence[Any]],
) -> tuple[list[TicketFact], dict[tuple[str, str], int]]:
    """The facts of ``_FACT_ROWS``'s rows, and where each clock changed after ``as_of``
    goes (its ticket and metric → the index of its ticket's fact)."""
    facts: list[TicketFact] = []
    later: dict[tuple[str, str], int] = {}
    make = ClockFact._make
    for row in rows:
        key = row[0]
        response = resolution = None
        if row[5] is not None:  # the response clock's state
            if row[12]:  # changed after as_of: replayed below
                later[(key, "response")] = len(facts)
            else:
                response = make(row[5:12])
        if row[13] is not None:
            if row[20]:
                later[(key, "resolution")] = len(facts)
            else:
                resolution = make(row[13:20])
        facts.append(TicketFact(key, row[1], row[2], row[3], response, resolution, row[4]))
    return facts, later


@contextmanager
def acyclic() -> Iterator[None]:
    """Build many small acyclic objects (a month of facts) without the cyclic garbage
    collector walking them again and again meanwhile; nothing is awaited inside."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _clock_columns(alias: str) -> str:
    """A clock's columns in ``ClockFact``'s order (instants as µs since the epoch), then
    whether it changed after ``as_of`` (or it is not known when it last did)."""
    us = "(extract(epoch FROM {0}.{1}) * 1000000)::bigint"
    return ", ".join(
        [
            f"{alias}.state",
            f"{alias}.target_seconds",
            f"{alias}.used_seconds",
            us.format(alias, "deadline"),
            us.format(alias, "stopped_at"),
            f"CASE WHEN {alias}.state = 'running' THEN {us.format(alias, 'running_since')} END",
            f"{alias}.calendar",
            f"({alias}.last_entry_at IS NULL OR {alias}.last_entry_at > $4)",
        ]
    )


_FACT_ROWS = f"""
    SELECT t.key, t.policy, t.priority, t.created_at,
           CASE WHEN t.rated_at <= $4 THEN t.rating_percent END,
           {_clock_columns("r")},
           {_clock_columns("s")}
    FROM {store.tickets.name} t
    LEFT JOIN {store.clocks.name} r ON r.ticket_key = t.key AND r.metric = 'response'
    LEFT JOIN {store.clocks.name} s ON s.ticket_key = t.key AND s.metric = 'resolution'
    WHERE t.policy = ANY($1::text[]) AND t.created_at >= $2 AND t.created_at < $3
      AND t.created_at <= $4
"""
"""One row per ticket: key, policy, priority, created_at, its rating by ``as_of``; then
its response and its resolution clock (``_clock_columns``, all null without one)."""

_CLOCK_COLUMNS = (
    "state",
    "target_seconds",
    "used_seconds",
    "deadline",
    "stopped_at",
    "running_since",
    "calendar",
    "last_entry_at",
)


async def _fact_rows(
    conn: AsyncConnection, policies: list[str], start: datetime, end: datetime, as_of: datetime
) -> Sequence[Sequence[Any]]:
    """The rows of ``_FACT_ROWS``. On PostgreSQL the driver reads them itself (its records
    slice like tuples) and the database turns instants into integers: a month of 100,000
    tickets loads without a datetime per clock. Elsewhere typed rows are reshaped alike."""
    if conn.dialect.name == "postgresql":
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
        found: Sequence[Sequence[Any]] = await raw.fetch(_FACT_ROWS, policies, start, end, as_of)
        return found
    t = store.tickets
    response, resolution = store.clocks.alias("r"), store.clocks.alias("s")
    query = (
        select(
            t.c.key,
            t.c.policy,
            t.c.priority,
            t.c.created_at,
            t.c.rating_percent,
            t.c.rated_at,
            *(response.c[column] for column in _CLOCK_COLUMNS),
            *(resolution.c[column] for column in _CLOCK_COLUMNS),
        )
        .select_from(
            t.outerjoin(
                response,
                and_(response.c.ticket_key == t.c.key, response.c.metric == "response"),
            ).outerjoin(
                resolution,
                and_(resolution.c.ticket_key == t.c.key, resolution.c.metric == "resolution"),
            )
        )
        .where(
            t.c.policy.in_(policies),
            t.c.created_at >= start,
            t.c.created_at < end,
            t.c.created_at <= as_of,
        )
    )
    rows = []
    for row in (await conn.execute(query)).all():
        rated = row[4] if row[5] is not None and row[5] <= as_of else None
        rows.append((*row[:4], rated, *_clock(row[6:14], as_of), *_clock(row[14:22], as_of)))
    return rows


def _clock(columns: Sequence[Any], as_of: datetime) -> tuple[Any, ...]:
    state, target, used, deadline, stopped, since, calendar, last = columns
    if state is None:
        return (None,) * 8
    running = to_us(since) if state == "running" and since is not None else None
    changed = last is None or last > as_of
    return (state, target, used, _us(deadline), _us(stopped), running, calendar, changed)


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


async def _clocks_up_to(
    conn: AsyncConnection, book: PolicyBook, wanted: list[tuple[str, str]], as_of: datetime
) -> list[tuple[Clock, Calendar]]:
    """These (ticket, metric) clocks with their timelines cut at ``as_of`` (a clock not
    started by then is left out)."""
    found = []
    chosen = set(wanted)
    keys = sorted({key for key, _ in wanted})
    for first in range(0, len(keys), 1000):
        rows = await conn.execute(
            select(store.clocks).where(
                store.clocks.c.ticket_key.in_(keys[first : first + 1000]),
                store.clocks.c.metric.in_(REPORTED),
            )
        )
        for row in rows.mappings():
            clock = store.clock_from_row(row)
            if (clock.ticket_key, clock.metric.value) not in chosen:
                continue
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
