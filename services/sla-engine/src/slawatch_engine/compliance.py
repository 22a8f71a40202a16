"""A contract's compliance report for one period: the six indicators, credits, allowance. Pure.

The input is what the ledger knows at ``as_of``: each ticket of the
contract's policies created in the period, with its response and resolution
clocks as replayed up to ``as_of`` (``TicketFact``), and the firing intervals
of the contract's monitored services. The same function serves the offline
``slawatch-engine report`` (a ledger run in memory over a file of events) and
the engine's ``GET /v1/reports/{contract}`` (the stored ledger), so both give
the same figures for the same events. The rules, each with a worked example,
are in docs/COMPLIANCE.md; in short:

- a response clock stopped by ``as_of`` is *answered*; the mean response time
  averages the business seconds of answered clocks only (an unanswered ticket
  is never averaged in as zero);
- a clock is *late* when it stopped after its deadline, or is still open with
  its deadline passed at ``as_of``; an open clock not yet due is *pending*;
  a cancelled clock (no target any more) is in no figure;
- response overdue rate = late / known × 100 (known = answered, or open and
  late), met when strictly below its target;
- on-time resolution rate = met / known × 100 (met = stopped at or before its
  deadline; known = met, stopped late, or open and late), met when at least
  its target;
- mean satisfaction = the mean of each rated ticket's latest rating in
  percent (score / scale max × 100), met when at least its target;
- availability per group from the services' outages and maintenance
  (``slawatch_engine.availability``), met when at least its target;
- a value is ``null`` where there is nothing to measure, and then so is ``met``.

Targets are compared exactly (as fractions): 10.0 % overdue against "< 10"
misses, 90.0 % on time against ">= 90" meets, a mean of exactly 30 minutes
against "<= 30m" meets.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Literal, NamedTuple

from slawatch_engine.analysis import Details, Tally
from slawatch_engine.availability import GroupFigures, ServiceFigures, group_figures
from slawatch_engine.calendar import Calendar, from_us, to_us
from slawatch_engine.clock import State, View
from slawatch_engine.contracts import Contract
from slawatch_engine.periods import Period

Outcome = Literal["met", "breached", "late", "pending", "cancelled"]
Alerts = Mapping[str, Sequence[tuple[datetime, datetime | None]]]
"""service → the firing intervals of its alerts (end None: still firing)."""


class ClockFact(NamedTuple):
    """A clock as replayed up to ``as_of``: a tuple, its instants in µs since the epoch (a
    month of clocks is read and judged without a datetime each)."""

    state: str
    """A ``State`` value."""
    target: int
    used: float
    """Business seconds counted up to its last change (all of them once stopped)."""
    deadline_us: int | None
    stopped_us: int | None
    running_us: int | None = None
    """While running: since when (counted on ``calendar`` up to ``as_of`` on demand)."""
    calendar: str | None = None

    @classmethod
    def at(
        cls,
        state: State,
        target: int,
        used: float,
        deadline: datetime | None,
        stopped_at: datetime | None,
        running_since: datetime | None = None,
        calendar: str | None = None,
    ) -> ClockFact:
        """A fact from aware instants."""
        return cls(
            state.value,
            target,
            used,
            _us(deadline),
            _us(stopped_at),
            _us(running_since),
            calendar,
        )

    @classmethod
    def of(cls, view: View, calendar: str) -> ClockFact:
        running = view.running_since if view.state is State.RUNNING else None
        return cls.at(
            view.state, view.target, view.used, view.deadline, view.stopped_at, running, calendar
        )

    def business_seconds(self, as_of: datetime, calendars: Mapping[str, Calendar]) -> float:
        """Business seconds counted by ``as_of`` (up to its last change if its calendar is
        no longer configured)."""
        calendar = calendars.get(self.calendar or "")
        if self.running_us is None or calendar is None:
            return self.used
        since = from_us(self.running_us)
        return self.used + calendar.between(since, max(as_of, since))

    def outcome(self, as_of: int | datetime) -> Outcome:
        """met, breached, late, pending or cancelled at ``as_of`` (µs since the epoch, or
        an aware instant)."""
        as_of_us = as_of if isinstance(as_of, int) else to_us(as_of)
        state, deadline = self.state, self.deadline_us
        if state == "stopped":
            late = deadline is not None and self.stopped_us is not None
            return "breached" if late and self.stopped_us > deadline else "met"  # type: ignore[operator]
        if state == "cancelled":
            return "cancelled"
        if deadline is not None and deadline < as_of_us:
            return "late"
        return "pending"

    def late_by(self, as_of: int | datetime) -> float | None:
        """Seconds past the deadline (to the stop, or to ``as_of`` while open), if late."""
        as_of_us = as_of if isinstance(as_of, int) else to_us(as_of)
        if self.deadline_us is None or self.state == "cancelled":
            return None
        end = self.stopped_us if self.state == "stopped" else as_of_us
        if end is None or end <= self.deadline_us:
            return None
        return (end - self.deadline_us) / 1_000_000


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


class TicketFact(NamedTuple):
    key: str
    policy: str
    priority: str
    created_at: datetime
    response: ClockFact | None
    resolution: ClockFact | None
    rating: Fraction | float | None = None
    """The latest rating by ``as_of``, in percent (``percent_of`` makes it exact)."""
    service: str | None = None
    category: str | None = None
    """The ticket's ``type`` (incident, service_request, …)."""
    title: str | None = None
    assignee: str | None = None
    """Its assignee's name (else id), as last known."""
    group: str | None = None


@functools.lru_cache(maxsize=4096)
def percent_of(score: float | None, scale_max: float | None) -> Fraction | None:
    """A rating in percent of its scale, exactly: 57 of 100 is 57, 6 of 7 is 600/7."""
    if score is None or not scale_max:
        return None
    return decimal(score) * 100 / decimal(scale_max)


# --- the figures ---------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def decimal(number: float) -> Fraction:
    """A configured number as the decimal it was written as (99.9 is 999/10, not the
    nearest binary fraction), so a figure compares with its target exactly."""
    return Fraction(repr(number))


def _indicator(value: Fraction | None, target: float | Fraction, operator: str) -> dict[str, Any]:
    exact_target = target if isinstance(target, Fraction) else decimal(target)
    met: bool | None = None
    if value is not None:
        met = {
            "<=": value <= exact_target,
            ">=": value >= exact_target,
            "<": value < exact_target,
        }[operator]
    return {
        "value": None if value is None else round(float(value), 4),
        "target": round(float(exact_target), 4),
        "operator": operator,
        "met": met,
    }


def _ratio(part: int, whole: int) -> Fraction | None:
    return Fraction(100 * part, whole) if whole else None


def allowance_ge(target: float, judged: int, late: int) -> int:
    """Further late items a ">= target %" rate tolerates over ``judged`` items."""
    return math.floor((1 - decimal(target) / 100) * judged) - late


def allowance_lt(limit: float, judged: int, late: int) -> int:
    """Further late items a "< limit %" rate tolerates over ``judged`` items."""
    return math.ceil(decimal(limit) / 100 * judged) - 1 - late


@dataclass(frozen=True, slots=True)
class Report:
    """The figures; ``as_json`` and ``as_csv`` render them."""

    name: str
    contract: Contract
    period: Period
    as_of: datetime
    indicators: dict[str, Any]
    groups: dict[str, GroupFigures]
    services: dict[str, ServiceFigures]
    counts: dict[str, Any]
    allowance: dict[str, Any]
    credits: list[dict[str, Any]]
    credit_percent: float
    tickets: list[dict[str, Any]] | None
    details: dict[str, Any]
    """``analysis.Details``: breakdowns, daily figures, late clocks, common problems."""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "contract": self.name,
            "customer": self.contract.customer,
            "provider": self.contract.provider,
            "time_zone": self.contract.time_zone,
            "language": self.contract.language,
            "review": self.contract.review,
            "period": self.period.label,
            "from": _iso(self.period.start),
            "to": _iso(self.period.end),
            "as_of": _iso(self.as_of),
            "indicators": self.indicators,
            "services": {name: _service_json(s) for name, s in self.services.items()},
            "counts": self.counts,
            "allowance": self.allowance,
            "credits": self.credits,
            "credit_percent": self.credit_percent,
            **self.details,
        }
        if self.tickets is not None:
            data["tickets"] = self.tickets
        return data

    def as_csv(self) -> str:
        """The indicators, one row each (availability one row per group)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["contract", "period", "indicator", "value", "operator", "target", "met"])
        rows = [(k, v) for k, v in self.indicators.items() if k != "availability"]
        rows += [(f"availability:{g}", v) for g, v in self.indicators["availability"].items()]
        for key, figure in rows:
            row = [
                self.name,
                self.period.label,
                key,
                "" if figure["value"] is None else figure["value"],
                figure["operator"],
                figure["target"],
                "" if figure["met"] is None else str(figure["met"]).lower(),
            ]
            writer.writerow([_cell(value) for value in row])
        return out.getvalue()

    def tickets_csv(self) -> str:
        """One row per ticket of the population, its clocks' outcomes and lateness."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        columns = ["ticket", "policy", "priority", "created_at", "rating"]
        for metric in ("response", "resolution"):
            columns += [f"{metric}_outcome", f"{metric}_business_seconds", f"{metric}_late_by"]
        writer.writerow(columns)
        for ticket in self.tickets or ():
            row = [ticket[c] for c in ("ticket", "policy", "priority", "created_at")]
            row.append("" if ticket["rating"] is None else ticket["rating"])
            for metric in ("response", "resolution"):
                clock = ticket[metric] or {}
                row += [
                    clock.get("outcome", ""),
                    clock.get("business_seconds", ""),
                    clock.get("late_by_seconds") or "",
                ]
            writer.writerow([_cell(value) for value in row])
        return out.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet never runs a cell from an event's text as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _iso(at: datetime) -> str:
    """Every instant of a report in UTC, however it was given."""
    return at.astimezone(UTC).isoformat()


def _service_json(figures: ServiceFigures) -> dict[str, Any]:
    return {
        "availability": None if figures.availability is None else round(figures.availability, 4),
        "period_minutes": round(figures.period_seconds / 60, 4),
        "outage_minutes": round(figures.outage_seconds / 60, 4),
        "planned_minutes": round(figures.planned_seconds / 60, 4),
        "outages": [_interval(a, b) for a, b in figures.outages],
        "planned": [_interval(a, b) for a, b in figures.planned],
    }


def _interval(start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "start": _iso(start),
        "end": _iso(end),
        "minutes": round((end - start).total_seconds() / 60, 4),
    }


def _clock_json(
    fact: ClockFact | None,
    outcome: Outcome | None,
    as_of: datetime,
    calendars: Mapping[str, Calendar],
) -> Any:
    if fact is None:
        return None
    deadline, stopped = fact.deadline_us, fact.stopped_us
    if deadline is None and stopped is not None and fact.state == "stopped":
        deadline = _deadline_when_stopped(fact, stopped, calendars)
    return {
        "state": fact.state,
        "outcome": outcome,
        "business_seconds": round(fact.business_seconds(as_of, calendars), 3),
        "target_seconds": fact.target,
        "deadline": None if deadline is None else _iso(from_us(deadline)),
        "stopped_at": None if stopped is None else _iso(from_us(stopped)),
        "late_by_seconds": fact.late_by(to_us(as_of)),
    }


def _deadline_when_stopped(
    fact: ClockFact, stopped_us: int, calendars: Mapping[str, Calendar]
) -> int | None:
    """The deadline a clock stopped before its target had when it stopped: the rest of its
    target counted on from the stop (the replay records only deadlines reached)."""
    calendar = calendars.get(fact.calendar or "")
    if calendar is None or fact.used >= fact.target:
        return None
    return to_us(calendar.add(from_us(stopped_us), fact.target - fact.used))


def build(
    name: str,
    contract: Contract,
    period: Period,
    as_of: datetime,
    tickets: Iterable[TicketFact],
    alerts: Alerts,
    calendars: Mapping[str, Calendar] | None = None,
    *,
    with_tickets: bool = True,
) -> Report:
    """The report of ``contract`` for ``period`` as of ``as_of`` (see the module's rules).

    ``tickets`` may hold tickets of other policies or periods: only the
    population (the contract's policies, created in the period by ``as_of``)
    is counted. ``calendars`` (by name) count the business time of clocks
    still running, for the per-ticket list.
    """
    builder = Builder(name, contract, period, as_of, calendars, with_tickets=with_tickets)
    builder.add(tickets)
    return builder.report(alerts)


class Builder:
    """A report built as its tickets come: ``add`` them in any number of parts (a month
    read in chunks holds one chunk at a time, and only counts), then ``report``."""

    def __init__(
        self,
        name: str,
        contract: Contract,
        period: Period,
        as_of: datetime,
        calendars: Mapping[str, Calendar] | None = None,
        *,
        with_tickets: bool = True,
    ) -> None:
        self._name, self._contract, self._period, self._as_of = name, contract, period, as_of
        self._calendars = calendars or {}
        self._with_tickets = with_tickets
        self._policies = set(contract.policies)
        self._as_of_us = to_us(as_of)
        self._response, self._resolution = Tally(), Tally()
        self._ratings = Fraction(0)
        self._rated = 0
        self._listed: list[dict[str, Any]] = []
        self._population = 0
        self._details = Details(period, contract.zone)

    def add(self, tickets: Iterable[TicketFact]) -> None:
        period, as_of, as_of_us = self._period, self._as_of, self._as_of_us
        calendars, policies = self._calendars, self._policies
        response, resolution = self._response, self._resolution
        note = self._details.note
        for ticket in tickets:
            if ticket.policy not in policies or not _inside(ticket.created_at, period, as_of):
                continue
            self._population += 1
            answered = response.add(ticket.response, as_of_us)
            resolved = resolution.add(ticket.resolution, as_of_us)
            note(ticket, answered, resolved, as_of_us)
            rating = ticket.rating
            if rating is not None:
                self._ratings += rating if isinstance(rating, Fraction) else decimal(rating)
                self._rated += 1
            if self._with_tickets:
                source, _, ticket_id = ticket.key.partition(":")
                self._listed.append(
                    {
                        "ticket": ticket.key,
                        "source": source,
                        "id": ticket_id,
                        "policy": ticket.policy,
                        "priority": ticket.priority,
                        "created_at": _iso(ticket.created_at),
                        "rating": None if rating is None else round(float(rating), 4),
                        "response": _clock_json(ticket.response, answered, as_of, calendars),
                        "resolution": _clock_json(ticket.resolution, resolved, as_of, calendars),
                    }
                )

    def report(self, alerts: Alerts) -> Report:
        """The figures of every ticket added, with the availability of ``alerts``."""
        contract, period, as_of = self._contract, self._period, self._as_of
        response, resolution = self._response, self._resolution
        population, listed = self._population, self._listed
        targets = contract.targets
        exact: dict[str, Fraction | None] = {
            "mean_response_time": (
                Fraction(response.micros, response.stopped * 60_000_000)
                if response.stopped
                else None
            ),
            "response_overdue_rate": _ratio(response.all_late, response.known),
            "on_time_resolution_rate": _ratio(resolution.met, resolution.known),
            "mean_satisfaction": self._ratings / self._rated if self._rated else None,
        }
        indicators: dict[str, Any] = {
            "mean_response_time_minutes": _indicator(
                exact["mean_response_time"], Fraction(targets.mean_response_time, 60), "<="
            ),
            "response_overdue_rate": _indicator(
                exact["response_overdue_rate"], targets.response_overdue_rate, "<"
            ),
            "on_time_resolution_rate": _indicator(
                exact["on_time_resolution_rate"], targets.on_time_resolution_rate, ">="
            ),
            "mean_satisfaction": _indicator(
                exact["mean_satisfaction"], targets.mean_satisfaction, ">="
            ),
            "availability": {},
        }
        groups = availability_of(contract, period, as_of, alerts)
        for group, figures in groups.items():
            value = figures.exact_availability
            exact[f"availability:{group}"] = value
            indicators["availability"][group] = {
                **_indicator(value, figures.target, ">="),
                "services": [s.service for s in figures.services],
            }
        services = {s.service: s for figures in groups.values() for s in figures.services}
        credits, credit_percent = _credits(contract, exact)
        counts = {
            "tickets": population,
            "response": {
                "answered": response.stopped,
                "on_time": response.met,
                "late": response.all_late,
                "open_late": response.late,
                "pending": response.pending,
                "known": response.known,
                "cancelled": response.cancelled,
                "no_clock": response.none,
            },
            "resolution": {
                "met": resolution.met,
                "breached": resolution.breached,
                "open_late": resolution.late,
                "pending": resolution.pending,
                "known": resolution.known,
                "cancelled": resolution.cancelled,
                "no_clock": resolution.none,
            },
            "ratings": self._rated,
        }
        allowance = {
            "on_time_resolution_rate": _allowance(
                allowance_ge, targets.on_time_resolution_rate, resolution
            ),
            "response_overdue_rate": _allowance(
                allowance_lt, targets.response_overdue_rate, response
            ),
        }
        listed.sort(key=lambda ticket: (ticket["created_at"], ticket["ticket"]))
        return Report(
            self._name,
            contract,
            period,
            as_of,
            indicators,
            groups,
            services,
            counts,
            allowance,
            credits,
            credit_percent,
            listed if self._with_tickets else None,
            self._details.as_json(),
        )


def _allowance(rule: Any, target: float, tally: Tally) -> dict[str, int | None]:
    """Further late items tolerated: judged on the items known now (``remaining``), and on
    every item of the population once the pending ones are judged too (``projected``);
    null while there is no item to judge."""
    judged, population = tally.known, tally.known + tally.pending
    return {
        "remaining": rule(target, judged, tally.all_late) if judged else None,
        "projected": rule(target, population, tally.all_late) if population else None,
        "judged": judged,
        "pending": tally.pending,
    }


def _inside(created: datetime, period: Period, as_of: datetime) -> bool:
    return period.start <= created < period.end and created <= as_of


def availability_of(
    contract: Contract, period: Period, as_of: datetime, alerts: Alerts
) -> dict[str, GroupFigures]:
    """Each availability group of the contract: its figures for ``period`` by ``as_of``."""
    return {
        name: group_figures(
            name,
            group.target,
            group.services,
            period.start,
            period.end,
            as_of,
            alerts,
            contract.maintenance,
            contract.zone,
        )
        for name, group in contract.availability.items()
    }


def _credits(
    contract: Contract, values: Mapping[str, Fraction | None]
) -> tuple[list[dict[str, Any]], float]:
    """Per indicator the highest tier that applies (compared exactly); summed; capped.

    A tier's bound is in the indicator's unit: minutes for the mean response
    time, percent for the rates, satisfaction and availability."""
    if contract.credits is None:
        return [], 0.0
    best: dict[str, dict[str, Any]] = {}
    for tier in contract.credits.tiers:
        value = values.get(tier.indicator)
        if not tier.applies(value) or tier.percent <= best.get(tier.indicator, {}).get(
            "percent", -1
        ):
            continue
        bound, limit = tier.bound
        best[tier.indicator] = {
            "indicator": tier.indicator,
            "value": None if value is None else round(float(value), 4),
            bound: limit,
            "percent": tier.percent,
        }
    owed = list(best.values())
    total = sum((decimal(t["percent"]) for t in owed), Fraction(0))
    capped = min(total, decimal(contract.credits.cap_percent))
    return owed, round(float(capped), 4)
