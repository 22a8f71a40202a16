"""Availability from outage intervals, maintenance windows, group figures and error budgets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from slawatch_engine.availability import (
    Alert,
    GroupFigures,
    Interval,
    MaintenanceWindow,
    clip,
    group_figures,
    merge,
    service_figures,
    subtract,
    total_seconds,
    windows,
)
from slawatch_engine.periods import period_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
MINUTE, HOUR, DAY = 60, 3600, 86_400
NOV_START, NOV_END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
"""A 30-day month in UTC: 43,200 minutes."""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]


def cn(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc, arg-type]


def at(hour: int, minute: int = 0) -> datetime:
    """A time on 10 November 2026 (UTC)."""
    return utc(2026, 11, 10, hour, minute)


def window(**fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"services": ["svc"], **fields})


def hours(intervals: Sequence[Interval]) -> float:
    return total_seconds(intervals) / HOUR


# --- interval arithmetic ---------------------------------------------------------------


def test_merge_joins_overlapping_and_touching_intervals_and_drops_empty_ones() -> None:
    merged = merge(
        [(at(12), at(13)), (at(10), at(11)), (at(10, 30), at(10, 45)), (at(11), at(11, 30))]
    )
    assert merged == [(at(10), at(11, 30)), (at(12), at(13))]
    assert merge([(at(10), at(10)), (at(11), at(10))]) == []


def test_clip_cuts_to_the_range() -> None:
    clipped = clip([(at(8), at(10)), (at(11), at(13)), (at(14), at(15))], at(9), at(12))
    assert clipped == [(at(9), at(10)), (at(11), at(12))]


def test_subtract_removes_the_holes() -> None:
    left = subtract(
        [(at(8), at(12)), (at(13), at(14))],
        [(at(9), at(10)), (at(11, 30), at(13, 30)), (at(20), at(21))],
    )
    assert left == [(at(8), at(9)), (at(10), at(11, 30)), (at(13, 30), at(14))]
    assert subtract([(at(8), at(9))], []) == [(at(8), at(9))]
    assert subtract([(at(8), at(9))], [(at(7), at(10))]) == []


def test_total_seconds_counts_overlaps_once() -> None:
    assert total_seconds([(at(10), at(10, 30)), (at(10, 20), at(11))]) == 60 * MINUTE
    assert total_seconds([]) == 0


# --- one service -----------------------------------------------------------------------


def test_a_30_day_month_with_two_hours_planned_and_five_hours_down() -> None:
    figures = service_figures(
        "svc",
        NOV_START,
        NOV_END,
        utc(2026, 12, 5),
        alerts=[(utc(2026, 11, 10, 8), utc(2026, 11, 10, 13))],
        maintenance_windows=[(utc(2026, 11, 8, 2), utc(2026, 11, 8, 4))],
    )
    assert figures.period_seconds == 43_200 * MINUTE
    assert figures.planned_seconds == 120 * MINUTE
    assert figures.outage_seconds == 300 * MINUTE
    assert figures.availability == 100 * 42_780 / 43_080
    assert round(figures.availability, 2) == 99.30


def test_overlapping_outages_count_once_and_outage_during_maintenance_is_planned() -> None:
    figures = service_figures(
        "svc",
        at(0),
        at(0) + timedelta(days=1),
        at(0) + timedelta(days=2),
        alerts=[(at(10), at(10, 30)), (at(10, 20), at(11))],
        maintenance_windows=[(at(10, 50), at(11, 30))],
    )
    assert figures.outages == [(at(10), at(10, 50))]
    assert figures.planned == [(at(10, 50), at(11, 30))]
    assert (figures.outage_seconds, figures.planned_seconds) == (50 * MINUTE, 40 * MINUTE)
    assert figures.availability == 100 * 1350 / 1400
    assert round(figures.availability, 2) == 96.43


def test_an_outage_across_midnight_of_the_month_end_is_split_between_the_months() -> None:
    alert: Alert = (cn(2026, 10, 31, 23, 59), cn(2026, 11, 1, 0, 1))
    late = cn(2027, 1, 1)
    october, november = period_of("2026-10", SHANGHAI), period_of("2026-11", SHANGHAI)
    in_october = service_figures("svc", october.start, october.end, late, [alert], [])
    in_november = service_figures("svc", november.start, november.end, late, [alert], [])
    assert in_october.outage_seconds == in_november.outage_seconds == MINUTE
    assert in_october.outages == [(utc(2026, 10, 31, 15, 59), utc(2026, 10, 31, 16))]
    assert in_november.outages == [(utc(2026, 10, 31, 16), utc(2026, 10, 31, 16, 1))]


def test_an_alert_still_firing_counts_up_to_as_of_in_a_running_period() -> None:
    as_of = utc(2026, 11, 15, 12)
    figures = service_figures("svc", NOV_START, NOV_END, as_of, [(utc(2026, 11, 15, 10), None)], [])
    assert figures.until == as_of
    assert figures.period_seconds == (14 * 24 + 12) * HOUR
    assert figures.outage_seconds == 2 * HOUR
    assert figures.down


def test_an_alert_still_firing_counts_up_to_the_end_of_a_closed_period() -> None:
    alerts: list[Alert] = [(utc(2026, 11, 30, 22), None), (utc(2026, 11, 1, 1), utc(2026, 12, 3))]
    figures = service_figures("svc", NOV_START, NOV_END, utc(2026, 12, 20), alerts, [])
    assert figures.until == NOV_END
    assert figures.outages == [(utc(2026, 11, 1, 1), NOV_END)]
    assert not figures.down


def test_alerts_outside_the_measured_time_do_not_count() -> None:
    as_of = utc(2026, 11, 15)
    alerts: list[Alert] = [
        (utc(2026, 10, 20), utc(2026, 10, 25)),  # ended before the period
        (utc(2026, 10, 31, 23), utc(2026, 11, 1, 1)),  # counts from the period start
        (as_of, None),  # starts at as_of
        (utc(2026, 11, 20), utc(2026, 11, 21)),  # after as_of
    ]
    figures = service_figures("svc", NOV_START, NOV_END, as_of, alerts, [])
    assert figures.outages == [(NOV_START, utc(2026, 11, 1, 1))]
    assert figures.down  # the alert starting at as_of is under way


def test_a_service_in_maintenance_is_not_down() -> None:
    as_of = utc(2026, 11, 8, 3)
    figures = service_figures(
        "svc",
        NOV_START,
        NOV_END,
        as_of,
        [(utc(2026, 11, 8, 1), None)],
        [(utc(2026, 11, 8, 2), utc(2026, 11, 8, 4))],
    )
    assert figures.outages == [(utc(2026, 11, 8, 1), utc(2026, 11, 8, 2))]
    assert figures.planned == [(utc(2026, 11, 8, 2), as_of)]
    assert not figures.down


def test_nothing_to_measure_has_no_availability() -> None:
    figures = service_figures(
        "svc", NOV_START, NOV_END, NOV_END, [(utc(2026, 11, 2), None)], [(NOV_START, NOV_END)]
    )
    assert (figures.availability, figures.outage_seconds, figures.measured_seconds) == (None, 0, 0)
    group = group_of(100, ["svc"], NOV_END, maintenance=[planned("svc", NOV_START, NOV_END)])
    assert (group.availability, group.met) == (None, None)


def test_a_period_not_yet_begun_has_no_availability() -> None:
    figures = service_figures("svc", NOV_START, NOV_END, utc(2026, 10, 20), [], [])
    assert (figures.period_seconds, figures.availability) == (0, None)


def test_figures_need_aware_instants_and_a_real_period() -> None:
    with pytest.raises(ValueError, match="naive"):
        service_figures("svc", datetime(2026, 11, 1), NOV_END, NOV_END, [], [])
    with pytest.raises(ValueError, match="naive"):
        service_figures("svc", NOV_START, NOV_END, NOV_END, [(datetime(2026, 11, 2), None)], [])
    with pytest.raises(ValueError, match="end after it starts"):
        service_figures("svc", NOV_END, NOV_START, NOV_END, [], [])


# --- groups and error budgets ----------------------------------------------------------


def planned(service: str, start: datetime, end: datetime) -> MaintenanceWindow:
    return MaintenanceWindow(services=[service], start=start, end=end)


def group_of(
    target: float,
    services: list[str],
    as_of: datetime,
    alerts: Mapping[str, Sequence[Alert]] | None = None,
    maintenance: Sequence[MaintenanceWindow] = (),
) -> GroupFigures:
    """The group ``g`` over November 2026 (UTC, 30 days)."""
    return group_figures(
        "g", target, services, NOV_START, NOV_END, as_of, alerts or {}, maintenance, UTC_ZONE
    )


def test_group_availability_sums_seconds_instead_of_averaging_percentages() -> None:
    group = group_of(
        99,
        ["down-10h", "never-down"],
        NOV_END,
        alerts={"down-10h": [(utc(2026, 11, 20), utc(2026, 11, 20, 10))]},
        maintenance=[planned("never-down", NOV_START, utc(2026, 11, 16))],
    )
    assert group.availability == 100 * 1070 / 1080  # (720 h + 360 h − 10 h) / 1080 h
    assert [s.availability for s in group.services] == [100 * 710 / 720, 100.0]
    assert group.met
    assert group.spent_seconds == 10 * HOUR
    assert group.budget_seconds == 38_880  # 1 % of 1080 h


def budget_of_99_9(spent_seconds: int) -> GroupFigures:
    """One service, a 99.9 % target over a 30-day month: a budget of exactly 2,592 s."""
    outage = (utc(2026, 11, 10), utc(2026, 11, 10) + timedelta(seconds=spent_seconds))
    return group_of(99.9, ["svc"], NOV_END, {"svc": [outage]})


def test_budget_stages() -> None:
    assert budget_of_99_9(0).budget_seconds == 2592
    assert budget_of_99_9(0).stages_crossed() == []
    assert budget_of_99_9(1295).stages_crossed() == []
    assert budget_of_99_9(1296).stages_crossed() == ["warning:50"]
    assert budget_of_99_9(2592).stages_crossed() == ["warning:50", "warning:75", "warning:90"]
    assert budget_of_99_9(2593).stages_crossed() == [
        "warning:50",
        "warning:75",
        "warning:90",
        "breach",
    ]
    assert budget_of_99_9(1296).stages_crossed([80, 25]) == ["warning:25"]


def test_spending_exactly_the_budget_still_meets_the_target() -> None:
    exact, over = budget_of_99_9(2592), budget_of_99_9(2593)
    assert (exact.met, exact.budget_remaining_ratio) == (True, 0.0)
    assert over.met is False
    assert over.budget_remaining_ratio == 1 - 2593 / 2592
    assert budget_of_99_9(1296).budget_remaining_ratio == 0.5


def test_the_budget_is_for_the_whole_period_and_excludes_all_its_maintenance() -> None:
    later = planned("svc", utc(2026, 11, 25), utc(2026, 11, 25, 10))
    group = group_of(99, ["svc"], utc(2026, 11, 11), maintenance=[later])
    assert group.budget_seconds == 25_560  # 1 % of 710 h
    assert group.services[0].period_seconds == 10 * DAY
    assert group.services[0].planned_seconds == 0


def test_group_maintenance_is_laid_out_in_the_contract_zone() -> None:
    saturdays = MaintenanceWindow(
        services=["svc"], rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=2", duration=2 * HOUR
    )
    november = period_of("2026-11", SHANGHAI)
    group = group_figures(
        "g", 99, ["svc"], november.start, november.end, november.end, {}, [saturdays], SHANGHAI
    )
    assert group.services[0].planned_seconds == 8 * HOUR
    assert group.services[0].planned[0] == (cn(2026, 11, 7, 2), cn(2026, 11, 7, 4))


def test_a_100_percent_target_has_no_budget() -> None:
    clean = group_of(100, ["svc"], NOV_END)
    broken = group_of(
        100, ["svc"], NOV_END, {"svc": [(utc(2026, 11, 2), utc(2026, 11, 2, 0, 0, 1))]}
    )
    assert (clean.budget_seconds, clean.budget_remaining_ratio, clean.met) == (0, 1.0, True)
    assert clean.stages_crossed() == []
    assert (broken.budget_remaining_ratio, broken.met) == (-1.0, False)
    assert broken.stages_crossed() == ["warning:50", "warning:75", "warning:90", "breach"]


def test_group_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="percentage"):
        group_of(100.5, ["svc"], NOV_END)
    with pytest.raises(ValueError, match="twice"):
        group_of(99, ["svc", "svc"], NOV_END)
    with pytest.raises(ValueError, match="1 to 99"):
        budget_of_99_9(0).stages_crossed([100])


def test_alerts_of_services_outside_the_group_are_ignored() -> None:
    group = group_of(99, ["svc"], NOV_END, {"other": [(utc(2026, 11, 2), utc(2026, 11, 3))]})
    assert (group.availability, group.spent_seconds) == (100.0, 0)


# --- when the next stage can be crossed ------------------------------------------------


def running(
    firing: Mapping[str, Sequence[Alert]], as_of: datetime, *maintenance: MaintenanceWindow
) -> GroupFigures:
    """Services a and b at 99.9 %: a budget of 5,184 s for November."""
    return group_of(99.9, ["a", "b"], as_of, firing, maintenance)


def test_next_crossing_with_one_service_down() -> None:
    as_of = utc(2026, 11, 10, 12)
    figures = running({"a": [(utc(2026, 11, 10, 11, 50), None)]}, as_of)
    # spent 600 s; warning:50 at 2,592 s
    assert figures.budget_seconds == 5184
    assert figures.next_crossing() == as_of + timedelta(seconds=2592 - 600)
    assert figures.next_crossing(as_of) == figures.next_crossing()
    # with only warning:10 (518.4 s), already crossed, the next stage is the breach
    assert figures.next_crossing(thresholds=[10]) == as_of + timedelta(
        seconds=5184 - 600, microseconds=1
    )


def test_next_crossing_is_never_before_now() -> None:
    as_of = utc(2026, 11, 10, 12)
    figures = running({"a": [(utc(2026, 11, 10, 11, 50), None)]}, as_of)
    later = as_of + timedelta(hours=1)
    assert figures.next_crossing(later) == later


def test_next_crossing_with_two_services_down_comes_twice_as_fast() -> None:
    as_of = utc(2026, 11, 10, 12)
    both = {"a": [(as_of, None)], "b": [(as_of, None)]}
    assert running(both, as_of).next_crossing() == as_of + timedelta(seconds=2592 / 2)


def test_next_crossing_is_the_breach_once_every_warning_is_crossed() -> None:
    as_of = utc(2026, 11, 10, 12)
    figures = running({"a": [(as_of - timedelta(seconds=5000), None)]}, as_of)
    assert figures.stages_crossed() == ["warning:50", "warning:75", "warning:90"]
    # breach: more than the 5,184 s budget spent, i.e. 5,184 s and 1 µs
    assert figures.next_crossing() == as_of + timedelta(seconds=184, microseconds=1)


def test_no_next_crossing_without_an_outage_under_way() -> None:
    as_of = utc(2026, 11, 10, 12)
    ended = running({"a": [(utc(2026, 11, 10, 10), utc(2026, 11, 10, 11))]}, as_of)
    assert ended.next_crossing() is None
    in_maintenance = running(
        {"a": [(utc(2026, 11, 10, 11), None)]},
        as_of,
        planned("a", utc(2026, 11, 10, 11, 30), utc(2026, 11, 10, 13)),
    )
    assert in_maintenance.next_crossing() is None
    closed = running({"a": [(utc(2026, 11, 30), None)]}, NOV_END)
    assert closed.next_crossing() is None


def test_no_next_crossing_after_the_breach_or_beyond_the_period() -> None:
    as_of = utc(2026, 11, 20)
    breached = running({"a": [(as_of - timedelta(hours=2), None)]}, as_of)
    assert breached.stages_crossed()[-1] == "breach"
    assert breached.next_crossing() is None
    near_the_end = utc(2026, 11, 30, 23, 50)
    assert running({"a": [(near_the_end, None)]}, near_the_end).next_crossing() is None


# --- maintenance configuration ---------------------------------------------------------

EXAMPLE = """
maintenance:
  - {services: [core-net], start: "2026-11-08T02:00:00+08:00", end: "2026-11-08T04:00:00+08:00"}
  - {services: [erp], rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", duration: 2h}
"""


def test_the_configuration_example_is_valid() -> None:
    raw = yaml.safe_load(EXAMPLE)["maintenance"]
    one_off, weekly = (MaintenanceWindow.model_validate(item) for item in raw)
    assert one_off.start == cn(2026, 11, 8, 2)
    assert (weekly.rrule, weekly.duration) == ("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", 2 * HOUR)
    november = period_of("2026-11", SHANGHAI)
    assert windows([one_off, weekly], "core-net", november.start, november.end, SHANGHAI) == [
        (utc(2026, 11, 7, 18), utc(2026, 11, 7, 20))
    ]
    assert hours(windows([one_off, weekly], "erp", november.start, november.end, SHANGHAI)) == 10


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "either start and end, or rrule and duration"),
        ({"start": "2026-11-08T02:00:00Z"}, "both start and end"),
        ({"rrule": "FREQ=DAILY"}, "both rrule and duration"),
        (
            {"start": "2026-11-08T02:00:00Z", "end": "2026-11-08T04:00:00Z", "duration": "1h"},
            "either start and end, or rrule and duration",
        ),
        ({"start": "2026-11-08T04:00:00Z", "end": "2026-11-08T04:00:00Z"}, "end after it starts"),
        ({"start": "2026-11-08T02:00:00", "end": "2026-11-08T04:00:00Z"}, "timezone"),
        ({"rrule": "FREQ=DAILY", "duration": 0}, "positive"),
        ({"rrule": "FREQ=DAILY", "duration": "90 minutes"}, "not a duration"),
        ({"rrule": "FREQ=DAILY", "duration": "25h"}, "longer than the rule's frequency"),
        ({"rrule": "FREQ=DAILY", "duration": "1h", "timezone": "UTC"}, "Extra inputs"),
        ({"services": [], "rrule": "FREQ=DAILY", "duration": "1h"}, "at least 1 item"),
    ],
)
def test_bad_windows(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**fields)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=MINUTELY", "finer than HOURLY"),
        ("FREQ=SECONDLY", "finer than HOURLY"),
        ("BYHOUR=2", "FREQ is HOURLY, DAILY"),
        ("FREQ=DAILY;COUNT=5", "no COUNT"),
        ("FREQ=DAILY;INTERVAL=2", "INTERVAL must be 1"),
        ("DTSTART:20261101T000000\nRRULE:FREQ=DAILY", "no DTSTART"),
        ("FREQ=DAILY;DTSTART=20261101T000000", "no DTSTART"),
        ("FREQ=WEEKLY;BYHOUR=2", "needs BYDAY"),
        ("FREQ=MONTHLY;BYHOUR=2", "needs BYDAY"),
        ("FREQ=YEARLY;BYMONTH=3", "needs BYDAY"),
        ("FREQ=WEEKLY;BYDAY=XX", "invalid 'BYDAY'"),
        ("FREQ=DAILY;BYHOUR=24", "hour must be in"),
        ("FREQ=DAILY;BYHOUR=2;BYHOUR=3", "given twice"),
        ("FREQ=DAILY;BYHOUR", "not NAME=VALUE"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "never 0"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,-00", "never 0"),
        ("FREQ=MONTHLY;BYMONTHDAY=first", "invalid 'BYMONTHDAY'"),
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never matches"),
        ("FREQ=DAILY;UNTIL=20261231", "UNTIL=20261231 is neither"),
        ("FREQ=DAILY;UNTIL=20261331T000000", "is neither"),
        (
            "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;"
            "BYMINUTE=0,1,2,3,4,5,6,7,8,9,10,11,12,13",
            "up to 10416 windows",
        ),
        ("FREQ=HOURLY;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55;BYSECOND=0,30", "at most 10,000"),
    ],
)
def test_bad_rules(rule: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(rrule=rule, duration="1m")


def test_a_rule_may_start_many_but_not_too_many_windows_a_month() -> None:
    busy = window(rrule="FREQ=HOURLY;BYMINUTE=0,10,20,30,40,50", duration="5m")
    day = windows([busy], "svc", utc(2026, 11, 1), utc(2026, 11, 2), UTC_ZONE)
    assert len(day) == 144
    assert total_seconds(day) == 144 * 5 * MINUTE


def test_a_weekly_saturday_window_excludes_8_or_10_hours_a_month() -> None:
    saturdays = window(rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=2", duration="2h")
    october, november = period_of("2026-10", SHANGHAI), period_of("2026-11", SHANGHAI)
    assert hours(windows([saturdays], "svc", october.start, october.end, SHANGHAI)) == 10
    assert hours(windows([saturdays], "svc", november.start, november.end, SHANGHAI)) == 8
    first = windows([saturdays], "svc", november.start, november.end, SHANGHAI)[0]
    assert first == (cn(2026, 11, 7, 2), cn(2026, 11, 7, 4))
    assert first[0].tzinfo is UTC


def test_without_byhour_a_window_starts_at_local_midnight() -> None:
    daily = window(rrule="RRULE:FREQ=DAILY", duration="1h")
    assert windows([daily], "svc", cn(2026, 11, 1), cn(2026, 11, 3), SHANGHAI) == [
        (cn(2026, 11, 1), cn(2026, 11, 1, 1)),
        (cn(2026, 11, 2), cn(2026, 11, 2, 1)),
    ]


def test_a_window_across_the_period_end_is_split_at_it() -> None:
    month_end = window(rrule="FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=22", duration="4h")
    october, november = period_of("2026-10", SHANGHAI), period_of("2026-11", SHANGHAI)
    in_october = windows([month_end], "svc", october.start, october.end, SHANGHAI)
    in_november = windows([month_end], "svc", november.start, november.end, SHANGHAI)
    assert in_october[-1] == (cn(2026, 10, 31, 22), cn(2026, 11, 1))
    assert in_november == [
        (cn(2026, 11, 1), cn(2026, 11, 1, 2)),
        (cn(2026, 11, 30, 22), cn(2026, 12, 1)),
    ]


def test_windows_on_summer_time_change_days_follow_the_fold_rules() -> None:
    sundays = window(rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", duration="2h")
    march, october = period_of("2026-03", BERLIN), period_of("2026-10", BERLIN)
    # 29 March: 02:00 does not exist; read with the winter offset it is 03:00 summer time.
    assert windows([sundays], "svc", march.start, march.end, BERLIN)[-1] == (
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 3),
    )
    # 25 October: 02:00 happens twice; the first (summer time) is meant.
    assert windows([sundays], "svc", october.start, october.end, BERLIN)[-1] == (
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 2),
    )
    assert windows([sundays], "svc", march.start, march.end, BERLIN)[0] == (
        utc(2026, 3, 1, 1),
        utc(2026, 3, 1, 3),
    )


@pytest.mark.parametrize(
    ("until", "count"),
    [
        ("20261105T020000", 5),  # local time, inclusive
        ("20261105T015959", 4),
        ("20261104T180000Z", 5),  # the same instant in UTC
        ("20261104T175959Z", 4),
    ],
)
def test_until_ends_a_series(until: str, count: int) -> None:
    daily = window(rrule=f"FREQ=DAILY;BYHOUR=2;UNTIL={until}", duration="1h")
    november = period_of("2026-11", SHANGHAI)
    assert len(windows([daily], "svc", november.start, november.end, SHANGHAI)) == count


def test_windows_are_per_service_and_merged() -> None:
    config = [
        MaintenanceWindow(services=["a", "b"], start=cn(2026, 11, 8, 2), end=cn(2026, 11, 8, 4)),
        MaintenanceWindow(services=["a"], start=cn(2026, 11, 8, 3), end=cn(2026, 11, 8, 5)),
        MaintenanceWindow(services=["c"], rrule="FREQ=DAILY", duration=HOUR),
    ]
    start, end = cn(2026, 11, 1), cn(2026, 12, 1)
    assert windows(config, "a", start, end, SHANGHAI) == [(cn(2026, 11, 8, 2), cn(2026, 11, 8, 5))]
    assert windows(config, "b", start, end, SHANGHAI) == [(cn(2026, 11, 8, 2), cn(2026, 11, 8, 4))]
    assert windows(config, "d", start, end, SHANGHAI) == []
    assert windows(config, "a", cn(2026, 11, 8, 3), cn(2026, 11, 8, 4), SHANGHAI) == [
        (cn(2026, 11, 8, 3), cn(2026, 11, 8, 4))
    ]


def test_maintenance_windows_feed_the_figures() -> None:
    saturdays = window(rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=2", duration="2h")
    november = period_of("2026-11", SHANGHAI)
    planned = windows([saturdays], "svc", november.start, november.end, SHANGHAI)
    outage: Alert = (cn(2026, 11, 7, 3), cn(2026, 11, 7, 5))  # half inside the window
    figures = service_figures("svc", november.start, november.end, november.end, [outage], planned)
    assert (figures.planned_seconds, figures.outage_seconds) == (8 * HOUR, HOUR)
    assert figures.availability == 100 * (720 - 8 - 1) / (720 - 8)
