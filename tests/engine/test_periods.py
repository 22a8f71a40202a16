"""Reporting periods: calendar months, quarters and years in the contract's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from slawatch_engine.periods import (
    Period,
    choose_period,
    next_period,
    parse_instant,
    period_containing,
    period_of,
    span,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HAVANA = ZoneInfo("America/Havana")
UTC_ZONE = ZoneInfo("UTC")
HOUR = 3600


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]


def test_a_shanghai_month_starts_at_1600_utc_on_the_previous_day() -> None:
    november = period_of("2026-11", SHANGHAI)
    assert november == Period(utc(2026, 10, 31, 16), utc(2026, 11, 30, 16), "2026-11", "month")
    assert november.seconds == 30 * 24 * HOUR


def test_a_month_with_the_spring_change_is_an_hour_short() -> None:
    assert period_of("2026-03", BERLIN).seconds == 743 * HOUR
    assert period_of("2026-10", BERLIN).seconds == 745 * HOUR
    assert period_of("2026-03", BERLIN).start == utc(2026, 2, 28, 23)
    assert period_of("2026-04", BERLIN).start == utc(2026, 3, 31, 22)


def test_quarter_bounds() -> None:
    q4 = period_of("2026-Q4", SHANGHAI)
    assert (q4.start, q4.end, q4.label, q4.kind) == (
        utc(2026, 9, 30, 16),
        utc(2026, 12, 31, 16),
        "2026-Q4",
        "quarter",
    )
    assert period_of("2026-q4", SHANGHAI) == q4
    q1 = period_of("2026-Q1", SHANGHAI)
    assert (q1.start, q1.end) == (utc(2025, 12, 31, 16), utc(2026, 3, 31, 16))


def test_year_bounds() -> None:
    year = period_of("2026", SHANGHAI)
    assert (year.start, year.end, year.label, year.kind) == (
        utc(2025, 12, 31, 16),
        utc(2026, 12, 31, 16),
        "2026",
        "year",
    )
    assert period_of("2026", UTC_ZONE).seconds == 365 * 24 * HOUR
    assert period_of("2028", UTC_ZONE).seconds == 366 * 24 * HOUR


@pytest.mark.parametrize(
    ("label", "days"), [("2028-02", 29), ("2000-02", 29), ("2026-02", 28), ("2100-02", 28)]
)
def test_february_of_leap_and_common_years(label: str, days: int) -> None:
    february = period_of(label, SHANGHAI)
    assert february.seconds == days * 24 * HOUR
    assert february.end.astimezone(SHANGHAI).date().isoformat() == f"{label[:4]}-03-01"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("2026-13", "month 13"),
        ("2026-00", "month 00"),
        ("2026-Q5", "Q5"),
        ("2026-Q0", "Q0"),
        ("26-11", "not a month"),
        ("2026-1", "not a month"),
        ("2026/11", "not a month"),
        ("2026-11-01", "not a month"),
        ("Q4-2026", "not a month"),
        ("", "not a month"),
        ("1969", "year 1969"),
        ("9999-01", "year 9999"),
    ],
)
def test_labels_that_are_not_periods(label: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        period_of(label, SHANGHAI)


def test_a_skipped_local_midnight_starts_the_period_at_the_jump() -> None:
    # Havana's clocks went from 00:00 to 01:00 on 1 April 2012.
    april = period_of("2012-04", HAVANA)
    assert april.start == utc(2012, 4, 1, 5)
    assert april.start.astimezone(HAVANA).hour == 1
    assert april.seconds == (30 * 24 - 1) * HOUR


def test_a_repeated_local_midnight_starts_the_period_at_its_first_occurrence() -> None:
    # Havana's clocks go back from 01:00 to 00:00 on 1 November 2026.
    november = period_of("2026-11", HAVANA)
    assert november.start == utc(2026, 11, 1, 4)
    assert period_of("2026-10", HAVANA).end == november.start
    assert november.seconds == (30 * 24 + 1) * HOUR


def test_the_period_containing_an_instant_is_taken_in_the_zone() -> None:
    start = utc(2026, 10, 31, 16)
    assert period_containing(start, "month", SHANGHAI).label == "2026-11"
    assert period_containing(start - timedelta(microseconds=1), "month", SHANGHAI).label == (
        "2026-10"
    )
    assert period_containing(start, "month", UTC_ZONE).label == "2026-10"
    assert period_containing(start, "quarter", SHANGHAI).label == "2026-Q4"
    assert period_containing(utc(2026, 12, 31, 16), "quarter", SHANGHAI).label == "2027-Q1"
    assert period_containing(utc(2026, 12, 31, 16), "year", SHANGHAI).label == "2027"


def test_the_containing_period_includes_its_start_and_excludes_its_end() -> None:
    november = period_of("2026-11", SHANGHAI)
    assert november.contains(november.start)
    assert not november.contains(november.end)
    assert period_containing(november.end, "month", SHANGHAI).label == "2026-12"


def test_the_containing_period_needs_an_aware_instant_and_a_calendar_kind() -> None:
    with pytest.raises(ValueError, match="naive"):
        period_containing(datetime(2026, 11, 1), "month", SHANGHAI)
    with pytest.raises(ValueError, match="not a calendar period"):
        period_containing(utc(2026, 11, 1), "range", SHANGHAI)


@pytest.mark.parametrize(
    ("label", "following"),
    [("2026-11", "2026-12"), ("2026-12", "2027-01"), ("2026-Q4", "2027-Q1"), ("2026", "2027")],
)
def test_next_period(label: str, following: str) -> None:
    period = period_of(label, SHANGHAI)
    after = next_period(period, SHANGHAI)
    assert after == period_of(following, SHANGHAI)
    assert after.start == period.end


def test_a_span_is_an_explicit_range() -> None:
    start = datetime(2026, 11, 1, tzinfo=SHANGHAI)
    end = datetime(2026, 11, 16, tzinfo=SHANGHAI)
    period = span(start, end)
    assert period == Period(
        utc(2026, 10, 31, 16),
        utc(2026, 11, 15, 16),
        "2026-11-01T00:00:00+08:00/2026-11-16T00:00:00+08:00",
        "range",
    )
    assert period.start.tzinfo is UTC
    assert next_period(period, SHANGHAI).start == period.end
    assert next_period(period, SHANGHAI).seconds == 15 * 24 * HOUR


def test_a_span_must_end_after_it_starts_and_be_aware() -> None:
    moment = utc(2026, 11, 1)
    with pytest.raises(ValueError, match="end after it starts"):
        span(moment, moment)
    with pytest.raises(ValueError, match="end after it starts"):
        span(moment, moment - timedelta(seconds=1))
    with pytest.raises(ValueError, match="naive"):
        span(datetime(2026, 11, 1), moment)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-01T08:00:00+08:00", utc(2026, 11, 1)),
        ("2026-11-01T00:00:00Z", utc(2026, 11, 1)),
        ("2026-11-01T08:00", utc(2026, 11, 1)),  # local time in the zone
        ("2026-11-01", utc(2026, 10, 31, 16)),  # local midnight
        (" 2026-11-01 ", utc(2026, 10, 31, 16)),
    ],
)
def test_parse_instant(text: str, instant: datetime) -> None:
    assert parse_instant(text, SHANGHAI) == instant


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-11-01T25:00"])
def test_text_that_is_not_an_instant(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 instant"):
        parse_instant(text, SHANGHAI)


def test_choose_period_takes_a_label_or_a_range() -> None:
    assert choose_period("2026-11", None, None, SHANGHAI) == period_of("2026-11", SHANGHAI)
    chosen = choose_period(None, "2026-11-01", "2026-11-16", SHANGHAI)
    assert chosen == span(
        datetime(2026, 11, 1, tzinfo=SHANGHAI).astimezone(UTC),
        datetime(2026, 11, 16, tzinfo=SHANGHAI).astimezone(UTC),
    )
    assert chosen.label == "2026-10-31T16:00:00+00:00/2026-11-15T16:00:00+00:00"


def test_an_instant_is_read_in_utc_and_within_the_years_it_may_have() -> None:
    assert parse_instant("2026-11-01T08:00", SHANGHAI) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no UTC instant"):
        parse_instant("9999-12-31T23:59:59-23:59", SHANGHAI)
    with pytest.raises(ValueError, match="outside the years"):
        parse_instant("0001-01-01T00:00:00Z", SHANGHAI)


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        (None, None, None),
        ("2026-11", "2026-11-01", None),
        (None, "2026-11-01", None),
        (None, None, "2026-12-01"),
    ],
)
def test_choose_period_needs_exactly_one_way(
    label: str | None, start: str | None, end: str | None
) -> None:
    with pytest.raises(ValueError, match="either a period"):
        choose_period(label, start, end, SHANGHAI)
