"""What a report's document shows beyond the indicators: breakdowns, days, late clocks,
common problems, and the yearly review's months, causes and MTBF/MTRS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slawatch_engine import analysis
from slawatch_engine.analysis import Frequent
from slawatch_engine.clock import State
from slawatch_engine.compliance import Builder, ClockFact, TicketFact, build
from slawatch_engine.contracts import Contract
from slawatch_engine.periods import period_of
from slawatch_engine.review import months_of, review_of

SHANGHAI = Contract.model_validate(
    {
        "customer": "ACME",
        "provider": "Ops",
        "time_zone": "Asia/Shanghai",
        "policies": ["p"],
        "availability": {"net": {"services": ["core"], "target": 99.9}},
    }
)
NOVEMBER = period_of("2026-11", SHANGHAI.zone)
AS_OF = NOVEMBER.end
MIN = 60


def answered(created: datetime, minutes: float, target_minutes: float = 30) -> ClockFact:
    """A response clock stopped ``minutes`` after ``created`` (always-open calendar)."""
    deadline = created + timedelta(minutes=target_minutes)
    stopped = created + timedelta(minutes=minutes)
    target = round(target_minutes * MIN)
    return ClockFact.at(State.STOPPED, target, minutes * MIN, deadline, stopped)


def ticket(key: str, created: datetime, **fields: Any) -> TicketFact:
    values: dict[str, Any] = {
        "key": f"jira:{key}",
        "policy": "p",
        "priority": "P2",
        "created_at": created,
        "response": None,
        "resolution": None,
    }
    values.update(fields)
    return TicketFact(**values)


def test_breakdown_per_priority_and_service_and_each_local_day() -> None:
    # 17:00 UTC on 1 Nov is 01:00 on 2 Nov in Shanghai
    late_night = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)
    morning = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    tickets = [
        ticket("1", late_night, priority="P1", service="net", response=answered(late_night, 10)),
        ticket("2", morning, priority="P1", service="net", response=answered(morning, 50)),
        ticket("3", morning, priority="P3", service="mail", response=answered(morning, 20)),
        ticket("4", morning, priority="P3"),  # no clocks, no service
    ]
    data = build("acme", SHANGHAI, NOVEMBER, AS_OF, tickets, {}).as_json()
    priorities = {row["key"]: row for row in data["breakdown"]["priority"]}
    assert priorities["P1"] == {
        "key": "P1",
        "tickets": 2,
        "mean_response_time_minutes": 30.0,
        "response_overdue_rate": 50.0,
        "on_time_resolution_rate": None,
        "late_responses": 1,
        "late_resolutions": 0,
    }
    assert priorities["P3"]["tickets"] == 2
    assert priorities["P3"]["mean_response_time_minutes"] == 20
    assert [(r["key"], r["tickets"]) for r in data["breakdown"]["service"]] == [
        ("net", 2),
        ("mail", 1),
        (None, 1),
    ]
    days = data["daily"]
    assert len(days) == 30
    assert days[0]["date"] == "2026-11-01"
    assert days[-1]["date"] == "2026-11-30"
    assert days[0]["tickets"] == 0
    assert days[0]["mean_response_time_minutes"] is None
    assert days[1] == {
        "date": "2026-11-02",
        "tickets": 4,
        "mean_response_time_minutes": round(80 / 3, 4),
        "response_overdue_rate": round(100 / 3, 4),
        "on_time_resolution_rate": None,
    }


def test_the_latest_late_clocks_are_listed_with_who_held_them() -> None:
    start = datetime(2026, 11, 3, tzinfo=UTC)
    tickets = [
        ticket(
            str(n),
            start,
            title=f"Printer {n}",
            assignee="Wang Li",
            group="desk",
            response=answered(start, 30 + n),  # n minutes late
        )
        for n in range(1, analysis.MAX_LATE + 6)
    ]
    data = build("acme", SHANGHAI, NOVEMBER, AS_OF, tickets, {}).as_json()
    late = data["late"]
    assert late["total"] == analysis.MAX_LATE + 5
    listed = late["listed"]
    assert len(listed) == analysis.MAX_LATE
    assert [row["late_by_seconds"] for row in listed[:2]] == [55 * MIN, 54 * MIN]
    assert listed[-1]["late_by_seconds"] == 6 * MIN
    assert listed[0] == {
        "ticket": "jira:55",
        "title": "Printer 55",
        "service": None,
        "priority": "P2",
        "metric": "response",
        "outcome": "breached",
        "deadline": (start + timedelta(minutes=30)).isoformat(),
        "late_by_seconds": 55 * MIN,
        "assignee": "Wang Li",
        "group": "desk",
    }


def test_common_problems_most_frequent_first() -> None:
    at = datetime(2026, 11, 5, tzinfo=UTC)
    tickets = [
        ticket("a", at, service="mail", category="incident", title="VPN  down"),
        ticket("b", at, service="mail", category="incident", title="VPN down "),
        ticket("c", at, service="net", category="request", title="New laptop"),
    ]
    problems = build("acme", SHANGHAI, NOVEMBER, AS_OF, tickets, {}).as_json()["common_problems"]
    assert problems == {
        "services": [{"name": "mail", "tickets": 2}, {"name": "net", "tickets": 1}],
        "categories": [{"name": "incident", "tickets": 2}, {"name": "request", "tickets": 1}],
        "titles": [{"name": "VPN down", "tickets": 2}, {"name": "New laptop", "tickets": 1}],
        "exact": True,
    }


def test_unique_values_past_the_limit_cost_bounded_memory_and_keep_heavy_hitters() -> None:
    counter = Frequent(limit=100)
    for n in range(10_000):
        counter.add(f"unique {n}")
        if n % 4 == 0:
            counter.add("the usual one")
    assert len(counter.counts) <= 100
    assert not counter.exact
    top = counter.top(1)[0]
    assert top["name"] == "the usual one"
    # a lower bound once summarised, short by at most n / limit (12,500 / 100)
    assert 2_500 - 125 <= top["tickets"] <= 2_500


def test_tickets_of_services_past_the_slice_limit_share_one_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "MAX_SLICES", 3)
    at = datetime(2026, 11, 5, tzinfo=UTC)
    tickets = [ticket(str(n), at, service=f"s{n}") for n in range(10)]
    rows = build("acme", SHANGHAI, NOVEMBER, AS_OF, tickets, {}).as_json()["breakdown"]["service"]
    assert [(row["key"], row["tickets"]) for row in rows] == [
        (analysis.OTHER, 7),
        ("s0", 1),
        ("s1", 1),
        ("s2", 1),
    ]


def test_the_yearly_review_months_causes_and_reliability(tmp_path: Path) -> None:
    year = period_of("2026", SHANGHAI.zone)
    as_of = year.end
    jan = datetime(2026, 1, 10, tzinfo=UTC)
    tickets = [
        ticket("j1", jan, response=answered(jan, 45)),  # a late response in January
        ticket("m1", datetime(2026, 3, 3, tzinfo=UTC)),
    ]
    # two outages of 30 minutes in the year: one in February, one in June (in budget in June:
    # 99.9 % of June is 43.2 min; February's 30 min is within too)
    alerts = {
        "core": [
            (datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 2, 10, 0, 30, tzinfo=UTC)),
            (datetime(2026, 6, 10, tzinfo=UTC), datetime(2026, 6, 10, 0, 30, tzinfo=UTC)),
        ]
    }
    report = build("acme", SHANGHAI, year, as_of, tickets, alerts, with_tickets=False)
    months = [
        build("acme", SHANGHAI, month, as_of, tickets, alerts, with_tickets=False)
        for month in months_of(year, SHANGHAI.zone)
    ]
    review = review_of(report, months)
    assert [m["period"] for m in review["months"]] == [f"2026-{n:02d}" for n in range(1, 13)]
    assert review["months"][0]["tickets"] == 1
    assert review["months"][0]["indicators"]["response_overdue_rate"]["value"] == 100.0
    causes = {c["cause"]: c for c in review["breaches_by_cause"]}
    assert causes["response"]["total"] == 1
    assert causes["response"]["months"]["2026-01"] == 1
    assert causes["resolution"]["total"] == 0
    assert causes["availability:net"]["total"] == 0
    minutes = 365 * 24 * 60
    assert review["reliability"]["core"] == {
        "outages": 2,
        "downtime_minutes": 60.0,
        "committed_minutes": float(minutes),
        "mtbf_hours": round((minutes - 60) / 2 / 60, 4),
        "mtrs_minutes": 30.0,
    }
    # a month whose 30-minute outage breaks a 99.99 % target counts as an availability cause
    strict = SHANGHAI.model_copy(
        update={
            "availability": {
                "net": SHANGHAI.availability["net"].model_copy(update={"target": 99.99})
            }
        }
    )
    months = [
        build("acme", strict, month, as_of, tickets, alerts, with_tickets=False)
        for month in months_of(year, strict.zone)
    ]
    report = build("acme", strict, year, as_of, tickets, alerts, with_tickets=False)
    causes = {c["cause"]: c for c in review_of(report, months)["breaches_by_cause"]}
    assert causes["availability:net"]["months"]["2026-02"] == 1
    assert causes["availability:net"]["total"] == 2
    with pytest.raises(ValueError, match="not a year"):
        months_of(period_of("2026-11", SHANGHAI.zone), SHANGHAI.zone)


def test_a_years_counts_are_bounded_by_their_keys_not_by_tickets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "MAX_SLICES", 10)
    year = period_of("2026", SHANGHAI.zone)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tickets = [
        ticket(str(n), start + timedelta(hours=3 * n), service=f"unique-{n}", title=f"t{n}")
        for n in range(2920)  # every 3 hours of the year, each its own service and title
    ]
    builder = Builder("acme", SHANGHAI, year, year.end, with_tickets=False)
    builder.add(tickets)
    priorities, services, days = (len(cells) for cells in builder._details.cells)
    assert (priorities, services) == (1, 11)  # P2 only; ten services and the rest as one
    assert days == 365
    figures = builder.report({}).as_json()
    assert len(figures["breakdown"]["service"]) == 11
    assert len(figures["daily"]) == 365
