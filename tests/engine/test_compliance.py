"""The rules of contract compliance (docs/COMPLIANCE.md), one test per rule.

Most tests build the report's input directly: ``TicketFact`` and ``ClockFact``
(what the ledger knows of each ticket at ``as_of``) and a ``Contract``. The
rules that live in the ledger (reopen modes, priority changes, pauses, ratings)
replay canonical events through ``OfflineLedger`` with a small policy file.

Unless a test says otherwise the contract's zone is UTC and the period is
November 2026: [2026-11-01T00:00Z, 2026-12-01T00:00Z), 30 days, 43 200 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slawatch_common.events import INBOUND_ADAPTER, Metric, MonitoringEvent, TicketEvent
from slawatch_engine import compliance
from slawatch_engine.availability import GroupFigures
from slawatch_engine.budgets import budget_event
from slawatch_engine.calendar import to_us
from slawatch_engine.clock import State
from slawatch_engine.compliance import (
    Alerts,
    ClockFact,
    Report,
    TicketFact,
    allowance_ge,
    allowance_lt,
)
from slawatch_engine.contracts import Contract
from slawatch_engine.main import main
from slawatch_engine.periods import Period, period_of, span
from slawatch_engine.policy import PolicyBook, load_policies
from slawatch_engine.reporting import OfflineLedger

UTC_ZONE = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = period_of("2026-11", UTC_ZONE)
END = NOVEMBER.end
MINUTE = 60
MONTH_MINUTES = 43_200


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant of November 2026 in UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


CREATED = utc(10, 9)
"""When the tickets of most tests are created and their clocks start."""


def cn(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A local time of 2026 in Asia/Shanghai."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def contract(**fields: Any) -> Contract:
    return Contract.model_validate(
        {"customer": "ACME Ltd", "provider": "Example Ops Co", "policies": ["net"], **fields}
    )


NETWORK = {"network": {"services": ["core-net"], "target": 99}}


# --- clocks and tickets, as the ledger knows them at as_of -----------------------------
# The calendar is always open, so business time is elapsed time: a clock started at
# ``start`` with a target of T minutes has its deadline T minutes later.


def stopped(minutes: float, target: float = 30, start: datetime = CREATED) -> ClockFact:
    """A clock stopped ``minutes`` after it started (answered, or resolved)."""
    return ClockFact.at(
        State.STOPPED,
        round(target * MINUTE),
        float(minutes * MINUTE),
        start + timedelta(minutes=target),
        start + timedelta(minutes=minutes),
    )


def open_clock(deadline: datetime, state: State = State.RUNNING, target: int = 30) -> ClockFact:
    """A clock still open (running or paused) whose deadline is ``deadline``."""
    return ClockFact.at(state, target * MINUTE, 0.0, deadline, None)


def cancelled() -> ClockFact:
    """A clock whose target went away (no outcome): in no figure."""
    return ClockFact.at(State.CANCELLED, 30 * MINUTE, 600.0, None, utc(10, 9, 10))


def ticket(
    number: int,
    *,
    response: ClockFact | None = None,
    resolution: ClockFact | None = None,
    rating: float | None = None,
    created: datetime = CREATED,
    policy: str = "net",
) -> TicketFact:
    return TicketFact(f"helpdesk:T{number}", policy, "P2", created, response, resolution, rating)


def report(
    tickets: Sequence[TicketFact] = (),
    *,
    terms: Contract | None = None,
    period: Period = NOVEMBER,
    as_of: datetime = END,
    alerts: Alerts | None = None,
) -> Report:
    return compliance.build("acme", terms or contract(), period, as_of, tickets, alerts or {})


def value(figures: Report, indicator: str) -> Any:
    return figures.indicators[indicator]["value"]


def met(figures: Report, indicator: str) -> bool | None:
    found: bool | None = figures.indicators[indicator]["met"]
    return found


# --- periods and population ------------------------------------------------------------


def test_a_period_is_a_half_open_calendar_period_in_the_contract_zone() -> None:
    month = period_of("2026-11", SHANGHAI)
    assert (month.start, month.end) == (
        datetime(2026, 10, 31, 16, tzinfo=UTC),
        datetime(2026, 11, 30, 16, tzinfo=UTC),
    )
    quarter, year = period_of("2026-Q4", SHANGHAI), period_of("2026", SHANGHAI)
    assert (quarter.start, quarter.end) == (
        datetime(2026, 9, 30, 16, tzinfo=UTC),
        datetime(2026, 12, 31, 16, tzinfo=UTC),
    )
    assert (year.start, year.end) == (
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        datetime(2026, 12, 31, 16, tzinfo=UTC),
    )
    assert month.contains(month.start)
    assert not month.contains(month.end)  # the end belongs to December
    figures = report(terms=contract(time_zone="Asia/Shanghai"), period=month, as_of=month.end)
    data = figures.as_json()
    assert (data["from"], data["to"]) == ("2026-10-31T16:00:00+00:00", "2026-11-30T16:00:00+00:00")


def test_the_population_is_the_contract_policies_tickets_created_in_the_period_by_as_of() -> None:
    answered = stopped(10)
    tickets = [
        ticket(1, response=answered, created=NOVEMBER.start),  # the first instant: in
        ticket(2, response=answered, created=NOVEMBER.start - timedelta(seconds=1)),  # before
        ticket(3, response=answered, policy="office"),  # a policy the contract does not name
        ticket(4, response=answered, created=utc(20)),  # after as_of
        ticket(5, response=answered, created=END),  # the end belongs to December
    ]
    figures = report(tickets, as_of=utc(15))
    assert figures.counts["tickets"] == 1
    assert [t["ticket"] for t in figures.tickets or ()] == ["helpdesk:T1"]
    assert report(tickets).counts["tickets"] == 2  # as of the end: T4 too


def test_a_ticket_created_2355_on_the_last_day_local_is_in_the_month_0005_next_day_is_not() -> None:
    month = period_of("2026-11", SHANGHAI)
    answered = stopped(10)
    tickets = [
        ticket(1, response=answered, created=cn(10, 31, 23, 55)),  # 15:55Z: October locally
        ticket(2, response=answered, created=cn(11, 1, 0, 5)),
        ticket(3, response=answered, created=cn(11, 30, 23, 55)),  # 15:55Z on the 30th
        ticket(4, response=answered, created=cn(12, 1, 0, 5)),  # 16:05Z on the 30th in UTC
    ]
    figures = report(
        tickets,
        terms=contract(time_zone="Asia/Shanghai"),
        period=month,
        as_of=cn(12, 1, 9, 30),
    )
    assert [t["ticket"] for t in figures.tickets or ()] == ["helpdesk:T2", "helpdesk:T3"]


def test_a_ticket_counts_in_the_period_it_was_created_in_though_answered_in_the_next() -> None:
    late_on_the_30th = utc(30, 23, 50)
    answered_in_december = stopped(20, start=late_on_the_30th)
    assert answered_in_december.stopped_us is not None
    assert answered_in_december.stopped_us > to_us(END)
    tickets = [ticket(1, response=answered_in_december, created=late_on_the_30th)]
    november = report(tickets, as_of=END + timedelta(days=1))
    assert november.counts["tickets"] == 1
    assert value(november, "mean_response_time_minutes") == 20.0
    december = period_of("2026-12", UTC_ZONE)
    assert report(tickets, period=december, as_of=december.end).counts["tickets"] == 0


# --- the four ticket indicators --------------------------------------------------------


def test_mean_response_time_averages_the_answered_clocks_only() -> None:
    # 10, 20 and 30 minutes, and one ticket still unanswered: 20 minutes, not 15
    tickets = [
        ticket(1, response=stopped(10)),
        ticket(2, response=stopped(20)),
        ticket(3, response=stopped(30)),
        ticket(4, response=open_clock(utc(30, 23))),
    ]
    figures = report(tickets, as_of=utc(30))
    assert value(figures, "mean_response_time_minutes") == 20.0
    assert figures.counts["response"]["answered"] == 3


def test_mean_response_time_leaves_out_a_ticket_without_a_response_target() -> None:
    # the research's example: 3 responded (10, 20, 30 min) + 1 with no SLA → 20 min
    tickets = [
        ticket(1, response=stopped(10)),
        ticket(2, response=stopped(20)),
        ticket(3, response=stopped(30)),
        ticket(4, response=None, resolution=stopped(60, target=480)),
    ]
    figures = report(tickets)
    assert value(figures, "mean_response_time_minutes") == 20.0
    assert figures.counts["tickets"] == 4
    assert figures.counts["response"]["no_clock"] == 1


def test_mean_response_time_counts_business_time_not_elapsed_time() -> None:
    # answered on Monday 09:30 after a Friday 17:30 creation: 1 business hour in a
    # 09:00-18:00 week, although 64 hours passed
    friday = datetime(2026, 11, 6, 17, 30, tzinfo=UTC)
    over_the_weekend = ClockFact.at(
        State.STOPPED, 3600, 3600.0, friday + timedelta(hours=64), friday + timedelta(hours=64)
    )
    figures = report([ticket(1, response=over_the_weekend, created=friday)])
    assert value(figures, "mean_response_time_minutes") == 60.0


def test_mean_response_time_of_exactly_the_target_is_met() -> None:
    exactly = report([ticket(1, response=stopped(20)), ticket(2, response=stopped(40))])
    assert value(exactly, "mean_response_time_minutes") == 30.0
    assert met(exactly, "mean_response_time_minutes") is True  # <= 30 min
    over = report([ticket(1, response=stopped(20)), ticket(2, response=stopped(40 + 1 / 60))])
    assert value(over, "mean_response_time_minutes") == 30.0083
    assert met(over, "mean_response_time_minutes") is False


def test_response_overdue_rate_is_late_over_answered_and_open_late() -> None:
    tickets = [
        *(ticket(n, response=stopped(10)) for n in range(1, 8)),  # 7 on time
        ticket(8, response=stopped(45)),  # answered after its deadline
        ticket(9, response=open_clock(utc(29))),  # open, deadline passed at as_of: late
        ticket(10, response=open_clock(utc(30, 12))),  # open, not yet due: pending
        ticket(11, response=cancelled()),
        ticket(12, response=None),
    ]
    figures = report(tickets, as_of=utc(30))
    assert figures.counts["response"] == {
        "answered": 8,
        "on_time": 7,
        "late": 2,
        "open_late": 1,
        "pending": 1,
        "known": 9,
        "cancelled": 1,
        "no_clock": 1,
    }
    assert value(figures, "response_overdue_rate") == round(200 / 9, 4)  # 2 of 9: 22.2222
    assert met(figures, "response_overdue_rate") is False


def test_response_overdue_rate_of_exactly_the_limit_is_missed() -> None:
    on_time = [ticket(n, response=stopped(10)) for n in range(1, 10)]
    exactly = report([*on_time, ticket(10, response=stopped(31))])
    assert value(exactly, "response_overdue_rate") == 10.0
    assert met(exactly, "response_overdue_rate") is False  # < 10 %
    below = report([*on_time, ticket(10, response=stopped(31)), ticket(11, response=stopped(5))])
    assert value(below, "response_overdue_rate") == 9.0909
    assert met(below, "response_overdue_rate") is True


def test_on_time_resolution_rate_is_met_over_met_breached_and_open_late() -> None:
    tickets = [
        *(ticket(n, resolution=stopped(100, target=240)) for n in range(1, 7)),  # 6 met
        ticket(7, resolution=stopped(300, target=240)),  # breached
        ticket(8, resolution=open_clock(utc(29), target=240)),  # open and late
        ticket(9, resolution=open_clock(utc(30, 12), target=240)),  # pending: not judged
        ticket(10, resolution=cancelled()),
    ]
    figures = report(tickets, as_of=utc(30))
    assert figures.counts["resolution"] == {
        "met": 6,
        "breached": 1,
        "open_late": 1,
        "pending": 1,
        "known": 8,
        "cancelled": 1,
        "no_clock": 0,
    }
    assert value(figures, "on_time_resolution_rate") == 75.0
    assert met(figures, "on_time_resolution_rate") is False


def test_on_time_resolution_rate_of_exactly_the_target_is_met() -> None:
    on_time = [ticket(n, resolution=stopped(100, target=240)) for n in range(1, 10)]
    exactly = report([*on_time, ticket(10, resolution=stopped(241, target=240))])
    assert value(exactly, "on_time_resolution_rate") == 90.0
    assert met(exactly, "on_time_resolution_rate") is True  # >= 90 %
    below = report(
        [*on_time[:8], *(ticket(n, resolution=stopped(241, target=240)) for n in (9, 10))]
    )
    assert value(below, "on_time_resolution_rate") == 80.0
    assert met(below, "on_time_resolution_rate") is False


def test_a_clock_stopped_exactly_at_its_deadline_met_it() -> None:
    assert stopped(30, target=30).outcome(END) == "met"
    assert stopped(30 + 1 / 60, target=30).outcome(END) == "breached"
    assert stopped(30 + 1 / 60, target=30).late_by(END) == 1.0


def test_mean_satisfaction_is_the_mean_of_the_ratings_in_percent() -> None:
    # ratings 5, 4 and 5 of 5: (100 + 80 + 100) / 3
    tickets = [
        ticket(1, rating=100.0),
        ticket(2, rating=80.0),
        ticket(3, rating=100.0),
        ticket(4),  # not rated: not in the mean
    ]
    figures = report(tickets)
    assert value(figures, "mean_satisfaction") == 93.3333
    assert met(figures, "mean_satisfaction") is True
    assert figures.counts["ratings"] == 3


# --- open and late versus pending ------------------------------------------------------


def test_an_open_clock_is_late_once_its_deadline_has_passed_and_pending_before() -> None:
    as_of = utc(20, 12)
    assert open_clock(as_of - timedelta(microseconds=1)).outcome(as_of) == "late"
    assert open_clock(as_of).outcome(as_of) == "pending"  # it may still stop in time
    assert open_clock(as_of + timedelta(minutes=5)).outcome(as_of) == "pending"
    assert open_clock(as_of - timedelta(minutes=30)).late_by(as_of) == 1800.0


def test_a_paused_clock_past_its_deadline_is_late() -> None:
    as_of = utc(20, 12)
    paused_late = open_clock(utc(20, 11), state=State.PAUSED)
    assert paused_late.outcome(as_of) == "late"
    figures = report([ticket(1, response=paused_late, created=utc(20, 10, 30))], as_of=as_of)
    assert figures.counts["response"]["open_late"] == 1
    assert value(figures, "response_overdue_rate") == 100.0
    # paused before its deadline was reached: no deadline while paused, pending
    paused_early = ClockFact.at(State.PAUSED, 1800, 1200.0, None, None)
    assert paused_early.outcome(as_of) == "pending"


def test_cancelled_clocks_are_in_no_figure() -> None:
    tickets = [ticket(1, response=cancelled(), resolution=cancelled())]
    figures = report(tickets)
    assert figures.counts["tickets"] == 1
    assert figures.counts["response"]["cancelled"] == 1
    assert figures.counts["resolution"]["cancelled"] == 1
    assert figures.counts["response"]["known"] == figures.counts["resolution"]["known"] == 0
    for indicator in ("mean_response_time_minutes", "response_overdue_rate"):
        assert value(figures, indicator) is None
    assert value(figures, "on_time_resolution_rate") is None
    # beside an answered ticket, the cancelled one changes no figure
    beside = report([*tickets, ticket(2, response=stopped(12))])
    assert value(beside, "mean_response_time_minutes") == 12.0
    assert value(beside, "response_overdue_rate") == 0.0


# --- availability ----------------------------------------------------------------------


def test_availability_excludes_planned_maintenance_from_the_period() -> None:
    # a 30-day month, M = 120 min, U = 300 min: 42 780 / 43 080 = 99.30 %
    terms = contract(
        availability=NETWORK,
        maintenance=[
            {"services": ["core-net"], "start": "2026-11-08T02:00:00Z", "end": "2026-11-08T04:00Z"}
        ],
    )
    figures = report(terms=terms, alerts={"core-net": [(utc(12, 10), utc(12, 15))]})
    network = figures.groups["network"]
    assert network.exact_availability == Fraction(42_780 * 100, 43_080)
    assert figures.indicators["availability"]["network"] == {
        "value": 99.3036,
        "target": 99.0,
        "operator": ">=",
        "met": True,
        "services": ["core-net"],
    }
    service = figures.as_json()["services"]["core-net"]
    assert (service["period_minutes"], service["planned_minutes"], service["outage_minutes"]) == (
        43_200.0,
        120.0,
        300.0,
    )


def test_overlapping_outages_count_once_and_outage_in_maintenance_is_planned() -> None:
    # one day: A 10:00-10:30, B 10:20-11:00, maintenance 10:50-11:30
    # outage A ∪ B = 60 min, 10 of them in maintenance: U = 50, M = 40
    day = span(utc(10), utc(11))
    terms = contract(
        availability=NETWORK,
        maintenance=[
            {"services": ["core-net"], "start": "2026-11-10T10:50Z", "end": "2026-11-10T11:30Z"}
        ],
    )
    alerts = {"core-net": [(utc(10, 10), utc(10, 10, 30)), (utc(10, 10, 20), utc(10, 11))]}
    figures = report(terms=terms, period=day, as_of=day.end, alerts=alerts)
    assert figures.groups["network"].exact_availability == Fraction(1350 * 100, 1400)
    assert figures.indicators["availability"]["network"]["value"] == 96.4286
    service = figures.as_json()["services"]["core-net"]
    assert (service["outage_minutes"], service["planned_minutes"]) == (50.0, 40.0)


def test_an_outage_across_midnight_is_split_between_the_two_months() -> None:
    terms = contract(time_zone="Asia/Shanghai", availability=NETWORK)
    alerts: Alerts = {"core-net": [(cn(10, 31, 23, 59), cn(11, 1, 0, 1))]}
    for label in ("2026-10", "2026-11"):
        month = period_of(label, SHANGHAI)
        figures = report(terms=terms, period=month, as_of=month.end, alerts=alerts)
        assert figures.as_json()["services"]["core-net"]["outage_minutes"] == 1.0


def test_recurring_maintenance_is_read_in_the_contract_zone() -> None:
    # 02:00-04:00 on Sundays in Shanghai: 18:00-20:00 UTC on Saturdays, five in November
    # (the first, 1 November 02:00 local, is 31 October 18:00 UTC: inside the period)
    terms = contract(
        time_zone="Asia/Shanghai",
        availability=NETWORK,
        maintenance=[
            {"services": ["core-net"], "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", "duration": "2h"}
        ],
    )
    month = period_of("2026-11", SHANGHAI)
    service = report(terms=terms, period=month, as_of=month.end).as_json()["services"]["core-net"]
    assert service["planned_minutes"] == 600.0
    assert [w["start"] for w in service["planned"]][:2] == [
        "2026-10-31T18:00:00+00:00",
        "2026-11-07T18:00:00+00:00",
    ]


def test_a_group_sums_seconds_and_never_averages_percentages() -> None:
    # erp: no maintenance, 432 min of outage (99.0 %); mail: maintenance half the
    # month, no outage (100 %). Sum: (43 200 + 21 600 − 432) / 64 800 = 99.3333 %, not 99.5
    terms = contract(
        availability={"apps": {"services": ["erp", "mail"], "target": 99}},
        maintenance=[
            {"services": ["mail"], "start": "2026-11-16T00:00Z", "end": "2026-12-01T00:00Z"}
        ],
    )
    alerts = {"erp": [(utc(3), utc(3) + timedelta(minutes=432))]}
    figures = report(terms=terms, alerts=alerts)
    assert figures.groups["apps"].exact_availability == Fraction(64_368 * 100, 64_800)
    assert figures.indicators["availability"]["apps"]["value"] == 99.3333
    per_service = figures.as_json()["services"]
    assert (per_service["erp"]["availability"], per_service["mail"]["availability"]) == (
        99.0,
        100.0,
    )


def test_availability_is_measured_up_to_as_of() -> None:
    terms = contract(availability=NETWORK)
    alerts: Alerts = {"core-net": [(utc(10, 12), None)]}  # still firing
    figures = report(terms=terms, as_of=utc(11), alerts=alerts)
    service = figures.as_json()["services"]["core-net"]
    assert (service["period_minutes"], service["outage_minutes"]) == (14_400.0, 720.0)
    assert figures.indicators["availability"]["network"]["value"] == 95.0


def test_targets_compare_exactly() -> None:
    # 99.9 % is met by exactly 0.1 % of outage (43.2 min) and missed by a microsecond more
    terms = contract(availability={"network": {"services": ["core-net"], "target": 99.9}})
    outage = timedelta(minutes=43, seconds=12)
    exactly = report(terms=terms, alerts={"core-net": [(utc(3), utc(3) + outage)]})
    assert exactly.indicators["availability"]["network"]["value"] == 99.9
    assert exactly.indicators["availability"]["network"]["met"] is True
    more = outage + timedelta(microseconds=1)
    missed = report(terms=terms, alerts={"core-net": [(utc(3), utc(3) + more)]})
    assert missed.indicators["availability"]["network"]["met"] is False


def monitor(
    kind: str, starts_at: datetime, ends_at: datetime | None, at: datetime
) -> MonitoringEvent:
    parsed = INBOUND_ADAPTER.validate_python(
        {
            "event_id": f"{kind}:{starts_at.isoformat()}:{at.isoformat()}",
            "type": f"monitor.alert_{kind}",
            "occurred_at": at.isoformat(),
            "source": "alertmanager",
            "data": {
                "service": "core-net",
                "name": "ServiceDown",
                "fingerprint": "f1",
                "starts_at": starts_at.isoformat(),
                "ends_at": None if ends_at is None else ends_at.isoformat(),
            },
        }
    )
    assert isinstance(parsed, MonitoringEvent)
    return parsed


def test_alerts_become_outages_from_firing_to_resolved(tmp_path: Path) -> None:
    # one firing repeated, resolved at its ends_at; the firing delivered after the
    # resolution does not reopen it; a second alert still firing at as_of counts to it
    events = [
        monitor("resolved", utc(10, 10), utc(10, 10, 40), utc(10, 10, 41)),
        monitor("firing", utc(10, 10), None, utc(10, 10)),
        monitor("firing", utc(10, 10), None, utc(10, 10, 5)),
        monitor("firing", utc(20, 8), None, utc(20, 8)),
    ]
    ledger = OfflineLedger(load(tmp_path))
    ledger.run(events, utc(20, 9))
    terms = contract(availability=NETWORK)
    figures = compliance.build("acme", terms, NOVEMBER, utc(20, 9), [], ledger.alerts())
    outages = figures.as_json()["services"]["core-net"]["outages"]
    assert [(o["start"], o["minutes"]) for o in outages] == [
        ("2026-11-10T10:00:00+00:00", 40.0),
        ("2026-11-20T08:00:00+00:00", 60.0),
    ]


# --- credits ---------------------------------------------------------------------------

EC2_LIKE = [
    {"indicator": "availability:network", "below": 99, "percent": 10},
    {"indicator": "availability:network", "below": 95, "percent": 30},
    {"indicator": "availability:network", "below": 90, "percent": 100},
]


def outage_for(availability: str) -> timedelta:
    """The outage that brings a 30-day month with no maintenance to ``availability`` %."""
    share = (100 - Fraction(availability)) / 100
    return timedelta(microseconds=int(share * MONTH_MINUTES * MINUTE * 1_000_000))


@pytest.mark.parametrize(
    ("availability", "owed"),
    [("99.0", None), ("98.99", 10.0), ("95.0", 10.0), ("94.99", 30.0), ("89.99", 100.0)],
)
def test_credits_take_the_highest_tier_that_applies_per_indicator(
    availability: str, owed: float | None
) -> None:
    terms = contract(availability=NETWORK, credits={"tiers": EC2_LIKE})
    alerts = {"core-net": [(utc(2), utc(2) + outage_for(availability))]}
    figures = report(terms=terms, alerts=alerts)
    assert figures.indicators["availability"]["network"]["value"] == float(availability)
    assert [c["percent"] for c in figures.credits] == ([] if owed is None else [owed])
    assert figures.credit_percent == (owed or 0.0)


def test_credits_are_summed_over_indicators_and_capped() -> None:
    terms = contract(
        availability=NETWORK,
        credits={
            "cap_percent": 25,
            "tiers": [
                {"indicator": "on_time_resolution_rate", "below": 90, "percent": 5},
                {"indicator": "mean_satisfaction", "below": 90, "percent": 8},
                {"indicator": "mean_satisfaction", "below": 80, "percent": 12},
                *EC2_LIKE,
            ],
        },
    )
    tickets = [
        ticket(1, resolution=stopped(100, target=240), rating=60.0),
        ticket(2, resolution=stopped(300, target=240), rating=60.0),  # 50 % on time
    ]
    alerts = {"core-net": [(utc(2), utc(2) + outage_for("98"))]}
    figures = report(tickets, terms=terms, alerts=alerts)
    assert {c["indicator"]: c["percent"] for c in figures.credits} == {
        "on_time_resolution_rate": 5.0,
        "mean_satisfaction": 12.0,  # the highest tier of the two that apply
        "availability:network": 10.0,
    }
    assert figures.credit_percent == 25.0  # 27 capped
    uncapped = contract(
        availability=NETWORK,
        credits={"tiers": terms.credits.tiers if terms.credits else []},
    )
    assert report(tickets, terms=uncapped, alerts=alerts).credit_percent == 27.0


def test_credit_bounds_of_mean_response_time_are_minutes_above_or_at_least() -> None:
    def credits(mean_minutes: int, bound: str) -> float:
        tier = {"indicator": "mean_response_time", bound: 30, "percent": 5}
        terms = contract(credits={"tiers": [tier]})
        return report([ticket(1, response=stopped(mean_minutes))], terms=terms).credit_percent

    assert (credits(30, "above"), credits(31, "above")) == (0.0, 5.0)
    assert (credits(29, "at_least"), credits(30, "at_least")) == (0.0, 5.0)


def test_credit_bounds_of_the_overdue_rate_are_percent_above_or_at_least() -> None:
    tickets = [*(ticket(n, response=stopped(10)) for n in range(1, 10))]
    tickets.append(ticket(10, response=stopped(31)))  # exactly 10 % overdue

    def credits(bound: str) -> float:
        tier = {"indicator": "response_overdue_rate", bound: 10, "percent": 5}
        return report(tickets, terms=contract(credits={"tiers": [tier]})).credit_percent

    assert (credits("above"), credits("at_least")) == (0.0, 5.0)


# --- the remaining allowance -----------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "judged", "late", "allowance"),
    [(90, 40, 3, 1), (90, 40, 4, 0), (90, 40, 5, -1), (90, 9, 0, 0), (90, 20, 0, 2)],
)
def test_allowance_of_an_at_least_target(
    target: int, judged: int, late: int, allowance: int
) -> None:
    # floor((1 − t) × N) − late: 40 judged at 90 % tolerate 4 late, so 3 late leave 1
    assert allowance_ge(target, judged, late) == allowance


@pytest.mark.parametrize(
    ("limit", "judged", "late", "allowance"),
    [(10, 40, 3, 0), (10, 40, 4, -1), (10, 41, 3, 1), (10, 10, 1, -1), (10, 11, 1, 0)],
)
def test_allowance_of_a_strict_limit(limit: int, judged: int, late: int, allowance: int) -> None:
    # ceil(l × N) − 1 − late: 4 of 40 is exactly 10 %, not below it, so 3 is the most
    assert allowance_lt(limit, judged, late) == allowance


def test_allowance_remaining_counts_judged_items_projected_counts_pending_too() -> None:
    tickets = [
        *(ticket(n, resolution=stopped(100, target=240)) for n in range(1, 18)),  # 17 met
        ticket(18, resolution=stopped(300, target=240)),  # 1 breached
        *(ticket(n, resolution=open_clock(utc(30, 12), target=240)) for n in (19, 20)),
    ]
    figures = report(tickets, as_of=utc(30))
    # floor(0.1 × 18) − 1 = 0 now; floor(0.1 × 20) − 1 = 1 once the two pending are judged
    assert figures.allowance["on_time_resolution_rate"] == {
        "remaining": 0,
        "projected": 1,
        "judged": 18,
        "pending": 2,
    }


# --- availability in real time: the error budget ---------------------------------------


def network_figures(outage: timedelta, as_of: datetime = END) -> GroupFigures:
    alerts: Alerts = {"core-net": [(utc(10), utc(10) + outage)]}
    return compliance.availability_of(contract(availability=NETWORK), NOVEMBER, as_of, alerts)[
        "network"
    ]


def test_the_error_budget_is_that_of_the_whole_period() -> None:
    # (1 − 99 %) × 43 200 min = 432 min, whether the month is over or a third gone
    assert network_figures(timedelta(0)).budget_seconds == 432 * MINUTE
    early = network_figures(timedelta(minutes=216), as_of=utc(11))
    assert early.budget_seconds == 432 * MINUTE
    assert early.budget_remaining_ratio == 0.5


@pytest.mark.parametrize(
    ("outage", "stages"),
    [
        (timedelta(minutes=215), []),
        (timedelta(minutes=216), ["warning:50"]),
        (timedelta(minutes=324), ["warning:50", "warning:75"]),
        (timedelta(minutes=388.8), ["warning:50", "warning:75", "warning:90"]),
        (timedelta(minutes=432), ["warning:50", "warning:75", "warning:90"]),  # still met
        (
            timedelta(minutes=432, microseconds=1),
            ["warning:50", "warning:75", "warning:90", "breach"],
        ),
    ],
)
def test_budget_warnings_at_50_75_90_percent_and_the_breach_when_overspent(
    outage: timedelta, stages: list[str]
) -> None:
    figures = network_figures(outage)
    assert figures.stages_crossed() == stages
    assert figures.met is ("breach" not in stages)


def test_budget_stages_are_availability_sla_events_escalated_by_the_contract_chain() -> None:
    terms = contract(availability=NETWORK, escalation="standard")
    figures = network_figures(timedelta(minutes=433))
    breach = budget_event("acme", terms, "network", NOVEMBER, figures, "breach", utc(12))
    assert breach.type == "sla.breach"
    assert breach.data.stage == "breach"
    assert breach.data.threshold_percent == 100
    clock = breach.data.clock
    assert (clock.metric, clock.escalation, clock.policy) == (
        Metric.AVAILABILITY,
        "standard",
        "acme",
    )
    assert (clock.target_seconds, clock.business_seconds_used) == (432 * MINUTE, 433 * MINUTE)
    assert (breach.data.ticket.source, breach.data.ticket.id) == ("contract", "acme/network")
    warning = budget_event("acme", terms, "network", NOVEMBER, figures, "warning:75", utc(12))
    assert (warning.type, warning.data.threshold_percent) == ("sla.warning", 75)
    assert warning.event_id != breach.event_id


# --- null ------------------------------------------------------------------------------


def test_null_when_there_is_nothing_to_measure() -> None:
    terms = contract(
        credits={"tiers": [{"indicator": "on_time_resolution_rate", "below": 90, "percent": 5}]}
    )
    figures = report(terms=terms)
    for indicator in (
        "mean_response_time_minutes",
        "response_overdue_rate",
        "on_time_resolution_rate",
        "mean_satisfaction",
    ):
        assert value(figures, indicator) is None
        assert met(figures, indicator) is None
    assert (figures.credits, figures.credit_percent) == ([], 0.0)  # no credit for null
    rows = figures.as_csv().splitlines()
    assert rows[1] == "acme,2026-11,mean_response_time_minutes,,<=,30.0,"
    # answered tickets, none rated: only the satisfaction is null
    rated_none = report([ticket(1, response=stopped(10))])
    assert value(rated_none, "mean_response_time_minutes") == 10.0
    assert (value(rated_none, "mean_satisfaction"), met(rated_none, "mean_satisfaction")) == (
        None,
        None,
    )


def test_availability_is_null_when_maintenance_covers_the_whole_period() -> None:
    terms = contract(
        availability=NETWORK,
        maintenance=[
            {"services": ["core-net"], "start": "2026-10-30T00:00Z", "end": "2026-12-02T00:00Z"}
        ],
    )
    figures = report(terms=terms, alerts={"core-net": [(utc(3), utc(4))]})
    assert figures.indicators["availability"]["network"]["value"] is None
    assert figures.indicators["availability"]["network"]["met"] is None
    assert figures.as_json()["services"]["core-net"]["outage_minutes"] == 0.0


# --- rules of the ledger: reopen, priority, pauses, ratings -----------------------------

POLICY = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: net
    calendar: always
    pause_statuses: [pending_customer]
    reopen: REOPEN
    targets:
      P1: {response: 15m, resolution: 4h}
      P2: {response: 30m, resolution: 8h}
      P4: {resolution: 8h}
contracts:
  acme:
    customer: ACME Ltd
    provider: Example Ops Co
    policies: [net]
"""


def load(tmp_path: Path, reopen: str = "exclude", **targets: int) -> PolicyBook:
    text = POLICY.replace("REOPEN", reopen)
    if targets:
        text += f"    targets: {json.dumps(targets)}\n"
    path = tmp_path / "slawatch.yaml"
    path.write_text(text)
    return load_policies(path)


def event(kind: str, at: datetime, ticket_id: str = "T1", **data: Any) -> TicketEvent:
    parsed = INBOUND_ADAPTER.validate_python(
        {
            "event_id": f"{ticket_id}:{kind}:{at.isoformat()}",
            "type": f"ticket.{kind}",
            "occurred_at": at.isoformat(),
            "source": "helpdesk",
            "data": {"id": ticket_id, **data},
        }
    )
    assert isinstance(parsed, TicketEvent)
    return parsed


def replayed(
    book: PolicyBook,
    events: Sequence[TicketEvent | MonitoringEvent],
    as_of: datetime = END,
    *batches: Sequence[TicketEvent | MonitoringEvent],
) -> Report:
    """The report of ``acme`` over ``events`` (then each of ``batches``, in that order)."""
    ledger = OfflineLedger(book)
    for batch in (events, *batches):
        ledger.run(batch, as_of)
    assert not ledger.rejected
    terms = book.contracts["acme"]
    return compliance.build(
        "acme", terms, NOVEMBER, as_of, ledger.facts(as_of), ledger.alerts(), book.calendars
    )


def clock_of(figures: Report, metric: str, number: int = 0) -> dict[str, Any]:
    assert figures.tickets is not None
    found: dict[str, Any] = figures.tickets[number][metric]
    return found


@pytest.mark.parametrize(
    ("mode", "outcome", "business_seconds"),
    [("exclude", "met", 12_600.0), ("include", "breached", 16_200.0), ("restart", "met", 5_400.0)],
)
def test_reopen_excludes_includes_or_restarts_the_resolution_clock(
    tmp_path: Path, mode: str, outcome: str, business_seconds: float
) -> None:
    # P1, 4 h: resolved after 2 h, reopened an hour later, resolved 1.5 h after that
    # exclude: 2 + 1.5 = 3.5 h, met; include: the resolved hour counts, 4.5 h, late
    # from 14:00; restart: a new cycle of 1.5 h
    events = [
        event("created", utc(10, 10), priority="P1"),
        event("responded", utc(10, 10, 5)),
        event("resolved", utc(10, 12)),
        event("reopened", utc(10, 13)),
        event("resolved", utc(10, 14, 30)),
    ]
    figures = replayed(load(tmp_path, mode), events)
    resolution = clock_of(figures, "resolution")
    assert (resolution["outcome"], resolution["business_seconds"]) == (outcome, business_seconds)
    assert clock_of(figures, "response")["outcome"] == "met"  # the response stays answered
    assert figures.counts["response"]["answered"] == 1


@pytest.mark.parametrize(
    ("mode", "outcome"), [("exclude", "breached"), ("include", "breached"), ("restart", "met")]
)
def test_reopen_restart_judges_the_new_cycle_only(tmp_path: Path, mode: str, outcome: str) -> None:
    # resolved 5 h after creation (late: 4 h), reopened, resolved an hour later
    events = [
        event("created", utc(10, 10), priority="P1"),
        event("resolved", utc(10, 15)),
        event("reopened", utc(10, 16)),
        event("resolved", utc(10, 17)),
    ]
    figures = replayed(load(tmp_path, mode), events)
    assert clock_of(figures, "resolution")["outcome"] == outcome


def test_resolving_a_ticket_also_answers_it(tmp_path: Path) -> None:
    events = [event("created", utc(10, 10), priority="P2"), event("resolved", utc(10, 10, 20))]
    figures = replayed(load(tmp_path), events)
    assert clock_of(figures, "response")["outcome"] == "met"
    assert value(figures, "mean_response_time_minutes") == 20.0


def test_a_priority_change_judges_the_clock_by_the_new_target_from_its_start(
    tmp_path: Path,
) -> None:
    # created P2 (8 h) at 10:00, raised to P1 (4 h) at 13:00: due at 14:00, not 18:00
    book = load(tmp_path)
    raised = [
        event("created", utc(10, 10), priority="P2"),
        event("priority_changed", utc(10, 13), priority="P1"),
    ]
    resolved = replayed(book, [*raised, event("resolved", utc(10, 15))])
    resolution = clock_of(resolved, "resolution")
    assert (resolution["outcome"], resolution["target_seconds"]) == ("breached", 14_400)
    assert resolution["deadline"] == "2026-11-10T14:00:00+00:00"
    assert resolved.tickets is not None
    assert resolved.tickets[0]["priority"] == "P1"
    # judged at as_of 14:30 while still open: late under P1, pending had it stayed P2
    assert clock_of(replayed(book, raised, utc(10, 14, 30)), "resolution")["outcome"] == "late"
    unchanged = replayed(book, raised[:1], utc(10, 14, 30))
    assert clock_of(unchanged, "resolution")["outcome"] == "pending"


def test_a_priority_without_a_target_cancels_the_clock(tmp_path: Path) -> None:
    # P4 has no response target: the response clock is cancelled and in no figure
    events = [
        event("created", utc(10, 10), priority="P2"),
        event("priority_changed", utc(10, 10, 10), priority="P4"),
        event("resolved", utc(10, 12)),
    ]
    figures = replayed(load(tmp_path), events)
    assert clock_of(figures, "response")["outcome"] == "cancelled"
    assert figures.counts["response"]["cancelled"] == 1
    assert value(figures, "response_overdue_rate") is None
    assert clock_of(figures, "resolution")["outcome"] == "met"


def test_a_clock_paused_after_its_deadline_stays_late(tmp_path: Path) -> None:
    # response due 10:30; the ticket waits on the customer from 10:45: late at 11:00
    book = load(tmp_path)
    created = event("created", utc(10, 10), priority="P2")
    late = replayed(
        book,
        [created, event("status_changed", utc(10, 10, 45), status="pending_customer")],
        utc(10, 11),
    )
    response = clock_of(late, "response")
    assert (response["state"], response["outcome"]) == ("paused", "late")
    assert late.counts["response"]["open_late"] == 1
    # paused at 10:20, before its deadline: the wait does not count, pending
    early = replayed(
        book,
        [created, event("status_changed", utc(10, 10, 20), status="pending_customer")],
        utc(10, 11),
    )
    assert clock_of(early, "response")["outcome"] == "pending"
    assert early.counts["response"]["pending"] == 1


def test_satisfaction_normalises_each_rating_by_its_scale(tmp_path: Path) -> None:
    # good/bad of 1 and stars of 5: 1/1, 0/1, 5/5, 4/5 → 100, 0, 100, 80 → 70 %
    ratings = [(1, 1), (0, 1), (5, 5), (4, 5)]
    events = []
    for number, (score, scale) in enumerate(ratings, 1):
        events.append(event("created", utc(10, 10), f"T{number}", priority="P2"))
        events.append(
            event("rated", utc(11), f"T{number}", rating={"score": score, "scale_max": scale})
        )
    figures = replayed(load(tmp_path), events)
    assert value(figures, "mean_satisfaction") == 70.0
    assert [t["rating"] for t in figures.tickets or ()] == [100.0, 0.0, 100.0, 80.0]


def test_the_latest_rating_wins_even_when_events_arrive_out_of_order(tmp_path: Path) -> None:
    book = load(tmp_path)
    created = event("created", utc(10, 10), priority="P2")
    first = event("rated", utc(11, 12), rating={"score": 2, "scale_max": 5})
    second = event("rated", utc(12, 9), rating={"score": 5, "scale_max": 5})
    # in one file in any order, and in two deliveries with the later rating first
    assert value(replayed(book, [second, first, created]), "mean_satisfaction") == 100.0
    assert value(replayed(book, [created, second], END, [first]), "mean_satisfaction") == 100.0
    assert value(replayed(book, [created, first], END, [second]), "mean_satisfaction") == 100.0


def test_a_rating_given_after_as_of_is_not_counted(tmp_path: Path) -> None:
    book = load(tmp_path)
    events = [
        event("created", utc(10, 10), priority="P2"),
        event("rated", utc(11, 12), rating={"score": 2, "scale_max": 5}),
        event("rated", utc(20, 9), rating={"score": 5, "scale_max": 5}),
    ]
    assert value(replayed(book, events, utc(15)), "mean_satisfaction") == 40.0
    assert value(replayed(book, events, utc(10, 11)), "mean_satisfaction") is None


def test_a_rating_exactly_at_the_satisfaction_target_meets_it(tmp_path: Path) -> None:
    book = load(tmp_path, mean_satisfaction=57)
    events = [
        event("created", utc(10, 10), priority="P2"),
        event("rated", utc(11), rating={"score": 57, "scale_max": 100}),
    ]
    figures = replayed(book, events)
    assert value(figures, "mean_satisfaction") == 57.0
    assert met(figures, "mean_satisfaction") is True


def test_ratings_on_a_seven_point_scale_compare_exactly(tmp_path: Path) -> None:
    # 7, 7, 6 and 1 of 7: (700 + 700 + 600 + 100) / 7 / 4 = 75 exactly
    book = load(tmp_path, mean_satisfaction=75)
    events = []
    for number, score in enumerate((7, 7, 6, 1), 1):
        events += [
            event("created", utc(10, 10), f"T{number}", priority="P2"),
            event("rated", utc(11), f"T{number}", rating={"score": score, "scale_max": 7}),
        ]
    figures = replayed(book, events)
    assert value(figures, "mean_satisfaction") == 75.0
    assert met(figures, "mean_satisfaction") is True


# --- getting a report ------------------------------------------------------------------


def test_the_cli_report_is_as_of_the_period_end_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load(tmp_path)  # writes slawatch.yaml
    lines = [
        event("created", utc(10, 10), priority="P2").model_dump_json(),
        event("responded", utc(10, 10, 12)).model_dump_json(),
    ]
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(lines) + "\n")
    args = ["report", "--config", str(tmp_path / "slawatch.yaml"), "--events", str(events)]
    assert main([*args, "--contract", "acme", "--period", "2026-11", "--summary"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["as_of"] == data["to"] == "2026-12-01T00:00:00+00:00"
    assert "tickets" not in data
    assert data["indicators"]["mean_response_time_minutes"]["value"] == 12.0
    assert main([*args, "--contract", "acme", "--period", "2026-11", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "contract,period,indicator,value,operator,target,met"
    assert rows[1] == "acme,2026-11,mean_response_time_minutes,12.0,<=,30.0,true"


def test_csv_cells_never_run_as_formulas() -> None:
    tickets = [TicketFact("=cmd:1", "net", "P2", CREATED, stopped(10), None, None)]
    rows = report(tickets).tickets_csv().splitlines()
    assert rows[0] == (
        "ticket,policy,priority,created_at,rating,response_outcome,"
        "response_business_seconds,response_late_by,resolution_outcome,"
        "resolution_business_seconds,resolution_late_by"
    )
    assert rows[1] == "'=cmd:1,net,P2,2026-11-10T09:00:00+00:00,,met,600.0,,,,"
