"""What a report's document shows beyond the six indicators. Pure; counted as tickets come.

For the population of a report (``compliance.Builder`` hands each ticket
over once, with its clocks' outcomes):

- ``breakdown``: the ticket indicators per priority and per service (the
  ticket's ``service``; at most ``MAX_SLICES`` services by name, the tickets of
  any further one in a row keyed ``OTHER``);
- ``daily``: per local day of the period (the contract's zone; a ticket counts
  on the day it was created), every day listed, empty days with null figures;
- ``late``: every late clock counted, the ``MAX_LATE`` most overdue listed (the
  largest lateness first) with who held the ticket as last known;
- ``common_problems``: the most frequent services, categories (the ticket's
  ``type``) and titles (whitespace collapsed, clipped to ``TITLE_CHARS``).
  Counted exactly while at most ``MAX_DISTINCT`` distinct values came;
  beyond that with the Misra–Gries summary (``exact`` false): the counts are
  then lower bounds and every value seen more than n / ``MAX_DISTINCT`` times
  is kept, so a month of unique titles costs bounded memory.

Nothing here is a new rule: a row's figures follow the rules of
``compliance`` (an answered response averages in, a late clock is breached or
open and late) on the row's tickets.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from slawatch_engine.calendar import from_us

if TYPE_CHECKING:  # compliance imports this module
    from slawatch_engine.compliance import ClockFact, Outcome, TicketFact
    from slawatch_engine.periods import Period


@dataclass
class Tally:
    """Counts of one metric's clocks over the population."""

    met: int = 0
    breached: int = 0
    late: int = 0
    pending: int = 0
    cancelled: int = 0
    none: int = 0
    micros: int = 0
    """Business microseconds of the stopped clocks (exact: clocks count whole µs)."""

    def add(self, fact: ClockFact | None, as_of_us: int) -> Outcome | None:
        if fact is None:
            self.none += 1
            return None
        outcome = fact.outcome(as_of_us)
        self.record(outcome, fact.used)
        return outcome

    def record(self, outcome: Outcome | None, used: float) -> None:
        """Count one clock's ``outcome`` (None: the ticket has no such clock)."""
        if outcome is None:
            self.none += 1
        elif outcome == "met":
            self.met += 1
        elif outcome == "breached":
            self.breached += 1
        elif outcome == "late":
            self.late += 1
        elif outcome == "pending":
            self.pending += 1
        else:
            self.cancelled += 1
        if outcome in ("met", "breached"):
            self.micros += round(used * 1_000_000)

    @property
    def stopped(self) -> int:
        return self.met + self.breached

    @property
    def known(self) -> int:
        return self.met + self.breached + self.late

    @property
    def all_late(self) -> int:
        return self.breached + self.late


MAX_SLICES = 500
OTHER = "…"
"""The service row of the tickets of services past the first ``MAX_SLICES``."""
MAX_LATE = 50
MAX_DISTINCT = 5_000
TOP = 10
TITLE_CHARS = 120
MAX_DAYS = 800
"""Days listed at most (a report spans at most 400)."""


class Frequent:
    """Counts of values, exact up to ``limit`` distinct ones, then a Misra–Gries summary."""

    def __init__(self, limit: int = MAX_DISTINCT) -> None:
        self._limit = limit
        self.counts: dict[str, int] = {}
        self.exact = True

    def add(self, value: str | None) -> None:
        if not value:
            return
        counts = self.counts
        if value in counts:
            counts[value] += 1
        elif len(counts) < self._limit:
            counts[value] = 1
        else:
            # one decrement of every counter pays for the value not counted
            self.exact = False
            self.counts = {k: n - 1 for k, n in counts.items() if n > 1}

    def top(self, n: int = TOP) -> list[dict[str, Any]]:
        best = heapq.nsmallest(n, self.counts.items(), key=lambda item: (-item[1], item[0]))
        return [{"name": name, "tickets": count} for name, count in best]


@dataclass(slots=True)
class _Slice:
    """One row of a breakdown: its tickets' response and resolution tallies."""

    response: Tally = field(default_factory=lambda: Tally())
    resolution: Tally = field(default_factory=lambda: Tally())
    tickets: int = 0

    def add(
        self, answered: Outcome | None, resolved: Outcome | None, tickets: int, micros: int
    ) -> None:
        """Count ``tickets`` tickets whose clocks ended so, ``micros`` their responses'
        business microseconds."""
        self.tickets += tickets
        for tally, outcome in ((self.response, answered), (self.resolution, resolved)):
            name = "none" if outcome is None else outcome
            setattr(tally, name, getattr(tally, name) + tickets)
        if answered in ("met", "breached"):
            self.response.micros += micros

    def figures(self) -> dict[str, Any]:
        response, resolution = self.response, self.resolution
        mean = (
            Fraction(response.micros, response.stopped * 60_000_000) if response.stopped else None
        )
        return {
            "tickets": self.tickets,
            "mean_response_time_minutes": _rounded(mean),
            "response_overdue_rate": _percent(response.all_late, response.known),
            "on_time_resolution_rate": _percent(resolution.met, resolution.known),
            "late_responses": response.all_late,
            "late_resolutions": resolution.all_late,
        }


def _rounded(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 4) if whole else None


@dataclass
class Details:
    """The document's extra figures of one report, fed by ``compliance.Builder``."""

    period: Period
    zone: ZoneInfo
    cells: tuple[dict[tuple[Any, ...], list[int]], ...] = field(
        default_factory=lambda: ({}, {}, {})
    )
    """Per priority, per service and per local day: (key, response outcome, resolution
    outcome) → [tickets, business µs of their responses]. A few counts per ticket, folded
    into rows at the end; each bounded by its keys (5 priorities, ``MAX_SLICES`` + 1
    services, ``MAX_DAYS`` days) times the 36 pairs of outcomes."""
    services: set[str | None] = field(default_factory=set)
    late_count: int = 0
    _late: list[tuple[float, int, str, TicketFact, ClockFact, Outcome]] = field(
        default_factory=list
    )
    _seen: int = 0
    common_services: Frequent = field(default_factory=Frequent)
    categories: Frequent = field(default_factory=Frequent)
    titles: Frequent = field(default_factory=Frequent)

    def note(
        self,
        ticket: TicketFact,
        answered: Outcome | None,
        resolved: Outcome | None,
        as_of_us: int,
    ) -> None:
        """Count one ticket of the population with its clocks' outcomes."""
        response, resolution = ticket.response, ticket.resolution
        service = ticket.service
        if service not in self.services:
            if len(self.services) >= MAX_SLICES:
                service = OTHER
            else:
                self.services.add(service)
        day = ticket.created_at.astimezone(self.zone).date()
        micros = (
            round(response.used * 1_000_000)
            if response is not None and answered in ("met", "breached")
            else 0
        )
        for cells, key in zip(self.cells, (ticket.priority, service, day), strict=True):
            cell = cells.get((key, answered, resolved))
            if cell is None:
                cell = cells[(key, answered, resolved)] = [0, 0]
            cell[0] += 1
            cell[1] += micros
        if answered in ("breached", "late") or resolved in ("breached", "late"):
            for metric, fact, outcome in (
                ("response", response, answered),
                ("resolution", resolution, resolved),
            ):
                if fact is not None and outcome in ("breached", "late"):
                    self._note_late(ticket, metric, fact, outcome, as_of_us)
        self.common_services.add(ticket.service)
        self.categories.add(ticket.category)
        if ticket.title:
            self.titles.add(" ".join(ticket.title.split())[:TITLE_CHARS])

    def _rows(self) -> tuple[dict[str, _Slice], dict[str | None, _Slice], dict[date, _Slice]]:
        """The cells folded into the rows per priority, per service and per day."""
        priorities: dict[str, _Slice] = {}
        services: dict[str | None, _Slice] = {}
        days: dict[date, _Slice] = {}
        tables: tuple[dict[Any, _Slice], ...] = (priorities, services, days)
        for cells, table in zip(self.cells, tables, strict=True):
            for (key, answered, resolved), (tickets, micros) in cells.items():
                row = table.get(key)
                if row is None:
                    row = table[key] = _Slice()
                row.add(answered, resolved, tickets, micros)
        return priorities, services, days

    def _note_late(
        self, ticket: TicketFact, metric: str, fact: ClockFact, outcome: Outcome, as_of_us: int
    ) -> None:
        self.late_count += 1
        late_by = fact.late_by(as_of_us) or 0.0
        self._seen += 1
        entry = (late_by, -self._seen, metric, ticket, fact, outcome)
        if len(self._late) < MAX_LATE:
            heapq.heappush(self._late, entry)
        elif entry[:2] > self._late[0][:2]:
            heapq.heapreplace(self._late, entry)

    def as_json(self) -> dict[str, Any]:
        priorities, services, days = self._rows()
        return {
            "breakdown": {
                "priority": [
                    {"key": key, **row.figures()} for key, row in sorted(priorities.items())
                ],
                "service": [
                    {"key": key, **row.figures()}
                    for key, row in sorted(
                        services.items(),
                        key=lambda item: (-item[1].tickets, item[0] is None, item[0] or ""),
                    )
                ],
            },
            "daily": list(self._daily(days)),
            "late": {"total": self.late_count, "listed": self._late_rows()},
            "common_problems": {
                "services": self.common_services.top(),
                "categories": self.categories.top(),
                "titles": self.titles.top(),
                "exact": self.common_services.exact and self.categories.exact and self.titles.exact,
            },
        }

    def _daily(self, days: dict[date, _Slice]) -> Iterable[dict[str, Any]]:
        first = self.period.start.astimezone(self.zone).date()
        last = (self.period.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        day = first
        for _ in range(MAX_DAYS):
            if day > last:
                break
            row = days.get(day)
            figures = (row or _Slice()).figures()
            yield {
                "date": day.isoformat(),
                **{k: figures[k] for k in ("tickets", *_DAILY)},
            }
            day += timedelta(days=1)

    def _late_rows(self) -> list[dict[str, Any]]:
        rows = []
        for late_by, _, metric, ticket, fact, outcome in sorted(self._late, reverse=True):
            deadline = fact.deadline_us
            rows.append(
                {
                    "ticket": ticket.key,
                    "title": ticket.title,
                    "service": ticket.service,
                    "priority": ticket.priority,
                    "metric": metric,
                    "outcome": outcome,
                    "deadline": None if deadline is None else from_us(deadline).isoformat(),
                    "late_by_seconds": round(late_by, 3),
                    "assignee": ticket.assignee,
                    "group": ticket.group,
                }
            )
        return rows


_DAILY = ("mean_response_time_minutes", "response_overdue_rate", "on_time_resolution_rate")
