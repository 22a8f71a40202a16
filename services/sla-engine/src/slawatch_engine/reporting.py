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
it has none, when it occurred; a resolution dated before the alert began is
ignored); repeats and the order of arrival change nothing, and a firing that
arrives after its resolution does not reopen it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections import defaultdict
from collections.abc import (
    AsyncGenerator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.events import INBOUND_ADAPTER, Metric, MonitoringEvent, TicketEvent
from slawatch_engine import store
from slawatch_engine.calendar import Calendar, to_us
from slawatch_engine.clock import Clock, replay
from slawatch_engine.compliance import Alerts, Builder, ClockFact, Report, TicketFact, percent_of
from slawatch_engine.contracts import Contract
from slawatch_engine.ledger import Ledger
from slawatch_engine.periods import Period
from slawatch_engine.policy import PolicyBook
from slawatch_engine.review import months_of, review_of
from slawatch_engine.store import Workset

_T = TypeVar("_T")
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
    if end < alert.starts_at:
        return  # a resolution before the alert began says nothing of when it ended
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
        """Apply every ticket event that occurred by ``as_of``, in the order they occurred,
        and every monitoring event (as the engine stores each alert's interval whenever it
        arrives; availability counts an interval only up to ``as_of``)."""
        seen: set[str] = set()
        for event in sorted(events, key=lambda e: e.occurred_at):  # stable for equal instants
            if event.event_id in seen:
                continue
            if isinstance(event, MonitoringEvent):
                seen.add(event.event_id)
                note_alert(self.intervals, event)
                continue
            if event.occurred_at > as_of:
                continue
            seen.add(event.event_id)
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
                    rating=percent_of(row.rating_score, row.rating_scale),
                    **_fact_fields(store.shown_fields(row.snapshot)),
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


CHUNK = 20_000
"""Tickets read and counted at a time: a report of any span holds one chunk of rows."""

_BUILDING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def one_at_a_time() -> asyncio.Semaphore:
    """One report is built at a time in a process (reports and the allowance gauge): a
    second waits, so memory stays that of one chunk and the event loop keeps its share.
    One gate per event loop (a gate belongs to the loop it first waited in)."""
    loop = asyncio.get_running_loop()
    gate = _BUILDING.get(loop)
    if gate is None:
        gate = _BUILDING[loop] = asyncio.Semaphore(1)
    return gate


async def stored_report(
    db: AsyncEngine,
    book: PolicyBook,
    name: str,
    contract: Contract,
    period: Period,
    as_of: datetime,
    *,
    with_tickets: bool = True,
) -> Report:
    """The report of ``contract`` for ``period`` as of ``as_of``, from the stored ledger.

    Its tickets are read in chunks (one row per ticket with its response and
    resolution clock) and counted in a worker thread, chunk by chunk, so the
    event loop (the consumers' heartbeats, the timer) is never held for a
    whole month. A clock whose timeline has no entry after ``as_of`` is taken
    from the columns its replay was stored in; a ticket with a clock changed
    since is held back, its clock read again with its timeline and replayed
    up to ``as_of``, then counted.
    """
    builder = Builder(name, contract, period, as_of, book.calendars, with_tickets=with_tickets)
    held: list[TicketFact] = []
    later: dict[tuple[str, str], int] = {}
    async with one_at_a_time():
        async with db.connect() as conn:
            # closed here, on any exit: its read transaction ends before the connection
            # goes back to the pool
            chunks = _fact_chunks(conn, contract.policies, period.start, period.end, as_of)
            typed = conn.dialect.name != "postgresql"
            async with contextlib.aclosing(chunks):
                async for rows in chunks:
                    waiting, changed = await in_thread(_chunk, builder, rows, as_of, typed)
                    offset = len(held)
                    held += waiting
                    later.update((key, offset + index) for key, index in changed.items())
        async with db.connect() as conn:
            if later:
                for clock, calendar in await _clocks_up_to(conn, book, list(later), as_of):
                    index = later[(clock.ticket_key, clock.metric.value)]
                    fact = ClockFact.of(replay(clock, calendar), clock.calendar)
                    if clock.metric is Metric.RESPONSE:
                        held[index] = held[index]._replace(response=fact)
                    else:
                        held[index] = held[index]._replace(resolution=fact)
            alerts = await stored_alerts(conn, contract.services(), period.start, period.end)
        await in_thread(builder.add, held)
        return await in_thread(builder.report, alerts)


async def stored_review(
    db: AsyncEngine, book: PolicyBook, name: str, contract: Contract, year: Report
) -> dict[str, Any]:
    """The yearly review's figures (``review.review_of``) of the year report ``year``: each
    month that began by its ``as_of`` read and counted like any report, one after another."""
    months = [
        await stored_report(db, book, name, contract, month, year.as_of, with_tickets=False)
        for month in months_of(year.period, contract.zone)
        if month.start <= year.as_of
    ]
    return review_of(year, months)


async def in_thread(work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``work`` in a worker thread. A thread cannot be stopped: cancelled, this waits for
    it to end before it gives up the report's gate, so reports never overlap."""
    running = asyncio.ensure_future(asyncio.to_thread(work, *args, **kwargs))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await running
        raise


def _chunk(
    builder: Builder, rows: Sequence[Sequence[Any]], as_of: datetime, typed: bool
) -> tuple[list[TicketFact], dict[tuple[str, str], int]]:
    """Count a chunk's complete tickets (in a worker thread); return the others, with
    where their clocks changed after ``as_of`` go. ``typed`` rows (read through
    SQLAlchemy, not PostgreSQL's driver) are reshaped here first."""
    with acyclic():
        if typed:
            rows = [_reshaped(row, as_of) for row in rows]
        ready, waiting, later = _facts_of(rows)
        builder.add(ready)
    return waiting, later


def _facts_of(
    rows: Sequence[Sequence[Any]],
) -> tuple[list[TicketFact], list[TicketFact], dict[tuple[str, str], int]]:
    """The facts of ``_FACT_ROWS``'s rows: those complete, those with a clock changed after
    ``as_of`` (left out until it is replayed), and where each such clock goes (its ticket
    and metric → the index of its ticket's fact among the latter)."""
    ready: list[TicketFact] = []
    waiting: list[TicketFact] = []
    later: dict[tuple[str, str], int] = {}
    make = ClockFact._make
    for row in rows:
        key = row[0]
        response = resolution = None
        if row[6] is not None:  # the response clock's state
            if row[13]:  # changed after as_of: replayed later
                later[(key, "response")] = len(waiting)
            else:
                response = make(row[6:13])
        if row[14] is not None:
            if row[21]:
                later[(key, "resolution")] = len(waiting)
            else:
                resolution = make(row[14:21])
        rating = percent_of(row[4], row[5])
        fact = TicketFact(key, row[1], row[2], row[3], response, resolution, rating, *row[22:27])
        (waiting if row[13] or row[21] else ready).append(fact)
    return ready, waiting, later


@contextmanager
def acyclic() -> Iterator[None]:
    """Build many small acyclic objects (a chunk of facts) without the cyclic garbage
    collector walking them again and again meanwhile. The collector is the process's:
    it rests for the moment a chunk takes, then runs as before."""
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
           CASE WHEN t.rated_at <= $4 THEN t.rating_score END,
           CASE WHEN t.rated_at <= $4 THEN t.rating_scale END,
           {_clock_columns("r")},
           {_clock_columns("s")},
           t.service, t.category, t.title, t.assignee, t.grp
    FROM {store.tickets.name} t
    LEFT JOIN {store.clocks.name} r ON r.ticket_key = t.key AND r.metric = 'response'
    LEFT JOIN {store.clocks.name} s ON s.ticket_key = t.key AND s.metric = 'resolution'
    WHERE t.policy = ANY($1::text[]) AND t.created_at >= $2 AND t.created_at < $3
      AND t.created_at <= $4
"""
"""One row per ticket: key, policy, priority, created_at, its rating by ``as_of`` (score,
scale); then its response and its resolution clock (``_clock_columns``, all null
without one); then what the report shows of it: its service, type, title, assignee and
group (``store.shown_fields``)."""

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


async def _fact_chunks(
    conn: AsyncConnection, policies: list[str], start: datetime, end: datetime, as_of: datetime
) -> AsyncGenerator[Sequence[Sequence[Any]], None]:
    """The rows of ``_FACT_ROWS``, ``CHUNK`` at a time. On PostgreSQL a server-side cursor
    of the driver reads them (its records slice like tuples) and the database turns
    instants into integers: no datetime per clock. Elsewhere typed rows (key, policy,
    priority, created_at, rating score, scale and instant, then each clock's
    ``_CLOCK_COLUMNS``) are streamed, to be reshaped alike (``_reshaped``). Close it
    (``contextlib.aclosing``) before the connection goes back to the pool."""
    if conn.dialect.name == "postgresql":
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
        async with raw.transaction(readonly=True):
            cursor = await raw.cursor(_FACT_ROWS, policies, start, end, as_of)
            while rows := await cursor.fetch(CHUNK):
                yield rows
        return
    result = await conn.stream(_typed_query(policies, start, end, as_of))
    async for rows in result.partitions(CHUNK):
        yield rows


def _typed_query(policies: list[str], start: datetime, end: datetime, as_of: datetime) -> Any:
    t = store.tickets
    response, resolution = store.clocks.alias("r"), store.clocks.alias("s")
    return (
        select(
            t.c.key,
            t.c.policy,
            t.c.priority,
            t.c.created_at,
            t.c.rating_score,
            t.c.rating_scale,
            t.c.rated_at,
            *(response.c[column] for column in _CLOCK_COLUMNS),
            *(resolution.c[column] for column in _CLOCK_COLUMNS),
            t.c.service,
            t.c.category,
            t.c.title,
            t.c.assignee,
            t.c.grp,
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


def _reshaped(row: Sequence[Any], as_of: datetime) -> tuple[Any, ...]:
    """A typed row in the shape of ``_FACT_ROWS``'s."""
    rated = row[6] is not None and row[6] <= as_of
    rating = (row[4], row[5]) if rated else (None, None)
    clocks = (*_clock(row[7:15], as_of), *_clock(row[15:23], as_of))
    return (*row[:4], *rating, *clocks, *row[23:28])


def _fact_fields(shown: Mapping[str, str | None]) -> dict[str, str | None]:
    """``store.shown_fields`` under ``TicketFact``'s names."""
    return {("group" if name == "grp" else name): value for name, value in shown.items()}


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
    alerts, _ = await stored_alerts_counted(conn, services, start, end)
    return alerts


async def stored_alerts_counted(
    conn: AsyncConnection, services: Iterable[str], start: datetime, end: datetime
) -> tuple[Alerts, Alerts]:
    """The firing intervals of ``services`` that overlap [start, end), as they are and as
    far as each was ever counted down (``engine_outages.counted_until``: its resolution
    may have come later dated earlier): one read. The second is what the outage counter
    on ``/metrics`` shows, so it never goes back, not even across a restart."""
    o = store.outages
    rows = await conn.execute(
        select(o.c.service, o.c.fingerprint, o.c.starts_at, o.c.ends_at, o.c.counted_until).where(
            o.c.service.in_(list(services)),
            o.c.starts_at < end,
            (o.c.ends_at.is_(None)) | (o.c.ends_at > start) | (o.c.counted_until > start),
        )
    )
    actual: dict[AlertKey, datetime | None] = {}
    counted: dict[AlertKey, datetime | None] = {}
    for r in rows:
        key = (r.service, r.fingerprint, r.starts_at)
        actual[key] = r.ends_at
        ends = r.ends_at
        counted[key] = (
            ends if ends is None or r.counted_until is None else max(ends, r.counted_until)
        )
    return by_service(actual), by_service(counted)


async def note_counted(conn: AsyncConnection, services: Iterable[str], now: datetime) -> None:
    """Every alert of ``services`` still firing has been counted down up to ``now``."""
    o = store.outages
    await conn.execute(
        update(o)
        .where(
            o.c.service.in_(list(services)),
            o.c.ends_at.is_(None),
            (o.c.counted_until.is_(None)) | (o.c.counted_until < now),
        )
        .values(counted_until=now)
    )
