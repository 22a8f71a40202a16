"""Business-time arithmetic on weekly calendars and 7×24."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from slawatch_engine.calendar import Calendar, CalendarError, always_open, weekly_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS_8_1830 = {day: [["08:00", "18:30"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def cn(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc, arg-type]


@pytest.fixture
def office() -> Calendar:
    return weekly_calendar("cn-office", "Asia/Shanghai", WEEKDAYS_8_1830)


def test_always_open_is_plain_elapsed_time() -> None:
    cal = always_open()
    start = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
    assert cal.add(start, 7200) == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert cal.between(start, start + timedelta(hours=5)) == 5 * 3600


def test_inside_one_working_day(office: Calendar) -> None:
    assert office.add(cn(2026, 11, 26, 9, 0), 3600) == cn(2026, 11, 26, 10, 0)


def test_deadline_exactly_at_closing_time_is_the_closing_instant(office: Calendar) -> None:
    assert office.add(cn(2026, 11, 26, 17, 30), 3600) == cn(2026, 11, 26, 18, 30)


def test_rolls_over_the_weekend(office: Calendar) -> None:
    # Friday 17:30 + 2 h: one hour on Friday, one on Monday from 08:00
    assert office.add(cn(2026, 11, 27, 17, 30), 7200) == cn(2026, 11, 30, 9, 0)


def test_request_before_opening_starts_at_opening(office: Calendar) -> None:
    assert office.add(cn(2026, 11, 26, 6, 0), 1800) == cn(2026, 11, 26, 8, 30)
    assert office.next_open(cn(2026, 11, 28, 12, 0)) == cn(2026, 11, 30, 8, 0)


def test_between_counts_only_open_hours(office: Calendar) -> None:
    # Thursday 18:00 to Monday 09:00: 30 min Thu + 10.5 h Fri + 1 h Mon
    assert office.between(cn(2026, 11, 26, 18, 0), cn(2026, 11, 30, 9, 0)) == (
        1800 + 10.5 * 3600 + 3600
    )


@pytest.mark.parametrize("seconds", [0, 1, 59, 3600, 37_800, 100_000, 500_000])
def test_add_then_between_returns_the_duration(office: Calendar, seconds: int) -> None:
    start = cn(2026, 11, 26, 12, 34, 56)
    assert office.between(start, office.add(start, seconds)) == pytest.approx(seconds)


def test_real_elapsed_time_across_dst() -> None:
    # Europe/Berlin, 2026-10-25: the clock goes back, that day has 25 hours
    cal = weekly_calendar("berlin-24", "Europe/Berlin", {"sun": [["00:00", "24:00"]]})
    day = datetime(2026, 10, 25, tzinfo=ZoneInfo("Europe/Berlin"))
    assert cal.between(day, day + timedelta(days=1)) == 25 * 3600


def test_overnight_interval_runs_into_the_next_day() -> None:
    cal = weekly_calendar("night", "UTC", {"mon": [["22:00", "06:00"]]})
    monday_22 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    assert cal.add(monday_22, 4 * 3600) == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert cal.between(monday_22, monday_22 + timedelta(days=1)) == 8 * 3600


def test_a_calendar_without_hours_is_refused() -> None:
    with pytest.raises(CalendarError, match="no open hours"):
        weekly_calendar("empty", "UTC", {})


@pytest.mark.parametrize("bad", [["25:00", "26:00"], ["08:00"], ["8h", "9h"], ["24:00", "10:00"]])
def test_bad_intervals_are_refused(bad: list[str]) -> None:
    with pytest.raises(CalendarError):
        weekly_calendar("bad", "UTC", {"mon": [bad]})
