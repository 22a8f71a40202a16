"""Calendar features by date: holidays, overrides, China's holiday set, versions, pauses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slawatch_engine.calendar import Calendar
from slawatch_engine.policy import CalendarConfig

SH = ZoneInfo("Asia/Shanghai")
WORKDAYS = {day: [["08:00", "18:30"]] for day in ("mon", "tue", "wed", "thu", "fri")}
HOUR = 3600


def build(**spec: Any) -> Calendar:
    return CalendarConfig.model_validate({"timezone": "Asia/Shanghai", **spec}).build("t")


def sh(*parts: int) -> datetime:
    year, month, day, hour, minute = (*parts, 0, 0, 0)[:5]
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def test_a_holiday_is_closed_all_day() -> None:
    cal = build(weekly=WORKDAYS, holidays=["2026-12-01"])
    assert cal.add(sh(2026, 11, 30, 17, 30), 2 * HOUR) == sh(2026, 12, 2, 9)


def test_an_override_replaces_the_hours_of_its_date() -> None:
    cal = build(
        weekly=WORKDAYS,
        overrides={"2026-12-24": [["09:00", "12:00"]], "2026-12-26": [["10:00", "11:00"]]},
    )
    # Thursday 24 Dec is a short day (3 h), Saturday 26 Dec a worked hour
    assert cal.between(sh(2026, 12, 24), sh(2026, 12, 27)) == (3 + 10.5 + 1) * HOUR
    assert cal.add(sh(2026, 12, 24, 11), 2 * HOUR) == sh(2026, 12, 25, 9)


class TestChinaHolidaySet:
    """The 2025 and 2026 arrangements of the State Council, make-up days included."""

    cal = build(weekly=WORKDAYS, holiday_sets=["CN"])

    @pytest.mark.parametrize(
        "closed",
        [
            "2025-01-01", "2025-01-28", "2025-02-04", "2025-04-04", "2025-05-01", "2025-05-05",
            "2025-06-02", "2025-10-01", "2025-10-08",
            "2026-01-01", "2026-01-02", "2026-02-16", "2026-02-23", "2026-04-06", "2026-05-01",
            "2026-05-05", "2026-06-19", "2026-09-25", "2026-10-01", "2026-10-07",
        ],
    )  # fmt: skip
    def test_statutory_holidays_on_weekdays_are_closed(self, closed: str) -> None:
        day = date.fromisoformat(closed)
        assert day.weekday() < 5
        assert self.cal.between(sh(day.year, day.month, day.day), sh(*_next(day))) == 0

    @pytest.mark.parametrize(
        "worked",
        [
            "2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11",
            "2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10",
        ],
    )  # fmt: skip
    def test_make_up_weekend_days_are_worked(self, worked: str) -> None:
        day = date.fromisoformat(worked)
        assert day.weekday() >= 5
        assert self.cal.between(sh(day.year, day.month, day.day), sh(*_next(day))) == 10.5 * HOUR

    def test_a_p2_ticket_before_national_day_2026_skips_the_holiday(self) -> None:
        # Wed 30 Sep 16:00 + 24 business hours: 2.5 h on 30 Sep, none 1–7 Oct,
        # 10.5 h on Thu 8 Oct and Fri 9 Oct, the last 0.5 h on the make-up Sat 10 Oct
        assert self.cal.add(sh(2026, 9, 30, 16), 24 * HOUR) == sh(2026, 10, 10, 8, 30)

    def test_a_p2_ticket_before_national_day_2025_counts_both_make_up_days(self) -> None:
        # Fri 26 Sep 2025 17:00: 1.5 h, Sun 28 Sep (make-up) 10.5 h, Mon 29 and Tue
        # 30 Sep 21 h, holiday 1–8 Oct, Thu 9 and Fri 10 Oct 21 h, Sat 11 Oct make-up
        assert self.cal.add(sh(2025, 9, 26, 17), 55 * HOUR) == sh(2025, 10, 11, 9)


def _next(day: date) -> tuple[int, int, int]:
    following = day + timedelta(days=1)
    return following.year, following.month, following.day


def test_versions_change_hours_from_their_date_on() -> None:
    cal = build(
        weekly=WORKDAYS,
        versions=[{"effective_from": "2027-01-01", "weekly": {"mon": [["09:00", "12:00"]]}}],
    )
    assert cal.between(sh(2026, 12, 28), sh(2027, 1, 4)) == 4 * 10.5 * HOUR  # Mon–Thu 2026
    assert cal.between(sh(2027, 1, 4), sh(2027, 1, 11)) == 3 * HOUR


def test_pauses_take_business_time_out() -> None:
    cal = build(weekly=WORKDAYS)
    pause = [(sh(2026, 11, 26, 10), sh(2026, 11, 26, 12))]
    assert cal.between(sh(2026, 11, 26, 9), sh(2026, 11, 26, 13), pause) == 2 * HOUR
    assert cal.add(sh(2026, 11, 26, 9), 2 * HOUR, pause) == sh(2026, 11, 26, 13)
    # a pause that covers the rest of the week moves the deadline past it
    long = [(sh(2026, 11, 26, 9), sh(2026, 11, 30, 8))]
    assert cal.add(sh(2026, 11, 26, 9), HOUR, long) == sh(2026, 11, 30, 9)


def test_a_zero_target_is_the_first_business_instant() -> None:
    cal = build(weekly=WORKDAYS)
    assert cal.add(sh(2026, 11, 28, 12), 0) == sh(2026, 11, 30, 8)
    assert cal.add(sh(2026, 11, 26, 12), 0) == sh(2026, 11, 26, 12)


def test_working_day_targets() -> None:
    cal = build(weekly=WORKDAYS, holiday_sets=["CN"])
    start = sh(2026, 9, 30, 16)
    assert cal.add_days(start, 2, "end_of_day") == sh(2026, 10, 9, 18, 30)
    assert cal.add_days(start, 2, "same_time") == sh(2026, 10, 9, 16)
    assert cal.add_days(start, 0, "end_of_day") == sh(2026, 9, 30, 18, 30)
    # after the close, day 0 is the next working day
    assert cal.add_days(sh(2026, 11, 26, 20), 0, "end_of_day") == sh(2026, 11, 27, 18, 30)
    # Saturday: the first working day after it is Monday
    assert cal.add_days(sh(2026, 11, 28, 10), 1, "end_of_day") == sh(2026, 11, 30, 18, 30)


def test_a_one_year_target_is_exact() -> None:
    cal = build(weekly=WORKDAYS, holiday_sets=["CN"])
    start = sh(2026, 1, 5, 9)
    deadline = cal.add(start, 2000 * HOUR)
    assert cal.between(start, deadline) == 2000 * HOUR
    assert deadline.astimezone(UTC) > start


@pytest.mark.parametrize(
    ("spec", "place"),
    [
        ({"weekly": {"mon": [["8:00"]]}}, "weekly.mon.0"),
        ({"weekly": WORKDAYS, "holidays": ["2026-13-01"]}, "holidays.0"),
        ({"weekly": WORKDAYS, "holiday_sets": ["XX"]}, "holiday_sets.0"),
        ({"weekly": WORKDAYS, "overrides": {"2026-12-24": [["25:00", "26:00"]]}}, "2026-12-24"),
    ],
)
def test_bad_calendars_say_where(spec: dict[str, Any], place: str) -> None:
    with pytest.raises(ValueError, match=place):
        build(**spec)
