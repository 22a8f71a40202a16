"""Properties of business-time arithmetic, checked on generated calendars (hypothesis).

Calendars are generated in the YAML shape that ``CalendarConfig`` reads:
weekly hours with 0-3 intervals a weekday (overnight intervals and "24:00"
ends included), holidays and overrides near the generated instants, and
sometimes a second version of the hours, the CN holiday set or
``always_open``. Instants are biased to fall on window boundaries and near the
zone's offset changes; targets run from 0 to about 60 business days (whole
minutes, whole seconds, microseconds, or exactly up to a window boundary);
pauses are absolute ``[from, to)`` intervals near the start.

Besides the algebraic properties, ``is_open`` is compared with a direct
reading of the configuration (``configured_open``), DST days included.

The tests do all instant arithmetic in UTC: Python adds a timedelta to an
aware datetime on the wall clock, and compares two datetimes of one zone by
wall time, ignoring ``fold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slawatch_engine.calendar import WEEKDAYS, Calendar
from slawatch_engine.holiday_sets import holiday_set
from slawatch_engine.policy import CalendarConfig

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
DAY_S = 86_400
WEEK_S = 7 * DAY_S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Config = dict[str, Any]
Hours = list[list[str]]
Weekly = dict[str, Hours]
Pauses = tuple[tuple[datetime, datetime], ...]

ZONES = (
    "UTC",
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Sao_Paulo",  # changes at midnight (until 2019)
    "Asia/Tehran",  # changes at midnight (until 2022)
    "America/Havana",  # midnight repeated when the clocks go back
    "Pacific/Apia",  # skipped 2011-12-30 entirely
)
YEARS = (2000, 2035)

DST_ZONES = {
    "Europe/Berlin": (2024, 2030),
    "Australia/Sydney": (2024, 2030),
    "America/Sao_Paulo": (2008, 2018),
    "Asia/Tehran": (2008, 2021),
}
"""Zones whose DST changes the DST tests aim at, with years in which they had DST."""

PROPERTY = settings(max_examples=100, deadline=None, database=None)
DST_PROPERTY = settings(max_examples=25, deadline=None, database=None)


# --- instants ---------------------------------------------------------------------------


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(moment: int) -> datetime:
    return EPOCH + timedelta(microseconds=moment)


def shift(moment: datetime, microseconds: int) -> datetime:
    """``moment`` plus real elapsed time (in UTC, unlike aware wall-clock arithmetic)."""
    return moment.astimezone(UTC) + timedelta(microseconds=microseconds)


def seconds_of(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60


@cache
def transitions(zone: str, first_year: int, last_year: int) -> tuple[datetime, ...]:
    """The UTC instants at which ``zone`` changes its offset in the given years."""
    tz = ZoneInfo(zone)
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    offset = moment.astimezone(tz).utcoffset()
    found: list[datetime] = []
    while moment < end:
        later = moment + step
        later_offset = later.astimezone(tz).utcoffset()
        if later_offset != offset:
            low, high = moment, later  # bisect to the second: the first with the new offset
            while high - low > timedelta(seconds=1):
                middle = (low + (high - low) / 2).replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == later_offset:
                    high = middle
                else:
                    low = middle
            found.append(high)
        moment, offset = later, later_offset
    return tuple(found)


def documented_instant(zone: str, day: date, seconds: int) -> datetime:
    """Local ``day`` + ``seconds``: the first occurrence if repeated, the gap's end if skipped."""
    tz = ZoneInfo(zone)
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    first = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0: the first occurrence
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    for change in transitions(zone, day.year - 1, day.year + 1):
        last_before = shift(change, -1).astimezone(tz).replace(tzinfo=None)
        if last_before < wall < change.astimezone(tz).replace(tzinfo=None):
            return change
    raise AssertionError(f"{wall} in {zone}: neither a wall time nor in a gap")


# --- strategies -------------------------------------------------------------------------


@cache
def clock_times() -> st.SearchStrategy[str]:
    """A wall time "HH:MM", favouring the hours around midnight where DST changes happen."""
    hours = st.sampled_from([0, 1, 2, 3, 23]) | st.integers(0, 23)
    minutes = st.sampled_from([0, 30]) | st.integers(0, 59)
    return st.builds(lambda h, m: f"{h:02d}:{m:02d}", hours, minutes)


@cache
def intervals() -> st.SearchStrategy[list[str]]:
    """``[start, end]``; an end at or before the start runs overnight; "24:00" ends the day."""
    return st.tuples(clock_times(), clock_times() | st.just("24:00")).map(list)


@cache
def day_hours() -> st.SearchStrategy[Hours]:
    """A date's opening hours: 0-3 intervals, which may overlap."""
    return st.lists(intervals(), max_size=3)


@cache
def weekly_hours() -> st.SearchStrategy[Weekly]:
    """Hours per weekday (missing weekdays are closed), open at least once a week."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(WEEKDAYS, day_hours())).filter(
        lambda weekly: any(weekly.values())
    )


@cache
def near_transition(zone: str, years: tuple[int, int]) -> st.SearchStrategy[datetime]:
    """An instant within three days of one of ``zone``'s offset changes, often right at it."""
    offsets = st.sampled_from([0, -1, 1, -US, -HOUR_US, HOUR_US]) | st.integers(
        -3 * DAY_US, 3 * DAY_US
    )
    return st.builds(shift, st.sampled_from(transitions(zone, *years)), offsets)


@cache
def instants(zone: str, years: tuple[int, int], *, near_only: bool) -> st.SearchStrategy[datetime]:
    """A UTC instant in ``years``; with ``near_only`` always near an offset change."""
    low = to_us(datetime(years[0], 1, 1, tzinfo=UTC))
    high = to_us(datetime(years[1], 12, 31, tzinfo=UTC))
    anywhere = st.integers(low, high).map(from_us)
    if not transitions(zone, *years):
        return anywhere
    if near_only:
        return near_transition(zone, years)
    return anywhere | near_transition(zone, years)


@st.composite
def boundary_instants(
    draw: st.DrawFn,
    zone: str,
    around: date,
    boundaries: Sequence[str],
    spread: tuple[int, int] = (-1, 2),
) -> datetime:
    """A window boundary (a wall time of the hours) on ``around`` + ``spread`` days, ± 1 µs/1 s.

    The wall time is placed as the calendar documents, or as zoneinfo does with either fold.
    """
    day = around + timedelta(days=draw(st.integers(*spread)))
    seconds = seconds_of(draw(st.sampled_from(boundaries)))
    if draw(st.booleans()):
        moment = documented_instant(zone, day, seconds)
    else:  # as zoneinfo places it: in a gap, fold 0/1 fall on either side of it
        wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
        moment = wall.replace(tzinfo=ZoneInfo(zone), fold=draw(st.integers(0, 1)))
    return shift(moment, draw(st.sampled_from([0, 0, 0, -1, 1, -US, US])))


def targets(cap_us: int) -> st.SearchStrategy[int]:
    """A business duration in microseconds up to ``cap_us``: tiny, whole minutes or seconds, any."""
    return st.one_of(
        st.integers(0, 2 * US),
        st.integers(0, cap_us // MINUTE_US).map(lambda minutes: minutes * MINUTE_US),
        st.integers(0, cap_us // US).map(lambda seconds: seconds * US),
        st.integers(0, cap_us),
    )


def open_seconds_per_week(weekly: Weekly) -> int:
    """Seconds in the union of the weekly intervals (wall time, on a circular week)."""
    spans: list[tuple[int, int]] = []
    for index, day in enumerate(WEEKDAYS):
        for start_text, end_text in weekly.get(day, []):
            start, end = seconds_of(start_text), seconds_of(end_text)
            end += DAY_S if end <= start else 0
            a, b = index * DAY_S + start, index * DAY_S + end
            spans += [(a, min(b, WEEK_S))] + ([(0, b - WEEK_S)] if b > WEEK_S else [])
    total, reached = 0, 0
    for a, b in sorted(spans):
        if b > reached:
            total += b - max(a, reached)
            reached = b
    return total


def boundaries_of(config: Config) -> tuple[str, ...]:
    """The wall times "HH:MM" at which the configured hours open or close, and midnight."""
    found = {"00:00"}
    for version in (config, *config.get("versions", [])):
        for hours in (*version.get("weekly", {}).values(), *version.get("overrides", {}).values()):
            found |= {text for pair in hours for text in pair}
    return tuple(sorted(found))


def special_dates(config: Config) -> list[date]:
    """Holidays, overrides and version starts, each with the date after (overnight hours)."""
    found: set[str] = set()
    for version in (config, *config.get("versions", [])):
        found |= {*version.get("holidays", []), *version.get("overrides", {})}
        found |= {version["effective_from"]} if "effective_from" in version else set()
    days = {date.fromisoformat(text) for text in found}
    return sorted(days | {day + timedelta(days=1) for day in days})


def build(config: Config) -> Calendar:
    return CalendarConfig.model_validate(config).build("generated")


def measured(cal: Calendar, start: datetime, end: datetime, pauses: Pauses = ()) -> int:
    """``between`` in whole microseconds (it returns float seconds)."""
    return round(cal.between(start, end, pauses) * US)


@dataclass(frozen=True)
class Scenario:
    """A calendar (as configured) with a start, a target and pauses to apply it to."""

    config: Config
    start: datetime
    target_us: int
    pauses: Pauses
    cap_us: int
    """The largest target drawn for this calendar (about 60 business days)."""
    calendar: Calendar = field(compare=False)

    @property
    def seconds(self) -> float:
        return self.target_us / US

    @property
    def zone(self) -> str:
        return str(self.config["timezone"])

    def __repr__(self) -> str:
        zone = ZoneInfo(self.zone)

        def show(moment: datetime) -> str:
            return f"{moment.isoformat()} ({moment.astimezone(zone).isoformat()})"

        pauses = ", ".join(f"[{show(a)}, {show(b)})" for a, b in self.pauses)
        return (
            f"Scenario(config={self.config!r}, start={show(self.start)}, "
            f"seconds={self.target_us / US}, pauses=[{pauses}])"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis shows a falsifying scenario with this repr (local times included)."""
        printer.text(repr(self))


@st.composite
def scenarios(
    draw: st.DrawFn,
    zones: Sequence[str] = ZONES,
    years: tuple[int, int] = YEARS,
    *,
    near_transitions_only: bool = False,
    always_open: bool = False,
) -> Scenario:
    """A generated calendar with holidays and overrides near the start, a target and pauses.

    ``always_open``: a 24x7 calendar with nothing else configured (otherwise a
    24x7 calendar comes up now and then, with holidays and overrides).
    """
    zone = draw(st.sampled_from(zones))
    base = draw(instants(zone, years, near_only=near_transitions_only))
    anchor = base.astimezone(ZoneInfo(zone)).date()
    nearby = (st.integers(-1, 3) | st.integers(-3, 60)).map(
        lambda days: (anchor + timedelta(days=days)).isoformat()
    )

    config: Config = {"timezone": zone}
    weeklies: list[Weekly] = []
    if always_open:
        config["always_open"] = True
    else:
        if draw(st.integers(0, 14)) == 0:
            config["always_open"] = True
        else:
            weeklies.append(draw(weekly_hours()))
            config["weekly"] = weeklies[0]
        if holidays := draw(st.lists(nearby, max_size=4, unique=True)):
            config["holidays"] = holidays
        if overrides := draw(st.dictionaries(nearby, day_hours(), max_size=3)):
            config["overrides"] = overrides
        if draw(st.integers(0, 9)) == 0:
            config["holiday_sets"] = ["CN"]
        if draw(st.integers(0, 3)) == 0:
            weeklies.append(draw(weekly_hours()))
            version: Config = {"effective_from": draw(nearby), "weekly": weeklies[-1]}
            if holidays := draw(st.lists(nearby, max_size=2, unique=True)):
                version["holidays"] = holidays
            config["versions"] = [version]
    calendar = build(config)
    boundaries = boundaries_of(config)

    start = draw(st.just(base) | boundary_instants(zone, anchor, boundaries))
    pause_starts = st.one_of(
        st.just(start),
        st.integers(-DAY_US, 30 * DAY_US).map(lambda offset: shift(start, offset)),
        boundary_instants(zone, anchor, boundaries),
    )
    pause_lengths = st.one_of(
        st.integers(0, 8 * 60).map(lambda minutes: minutes * MINUTE_US),
        st.integers(0, 3 * DAY_US),
        st.integers(0, 20 * DAY_US),
    )
    pauses = tuple(
        draw(
            st.lists(
                st.builds(lambda a, length: (a, shift(a, length)), pause_starts, pause_lengths),
                max_size=3,
            )
        )
    )
    weekly_s = min((open_seconds_per_week(weekly) for weekly in weeklies), default=WEEK_S)
    cap_us = 12 * weekly_s * US
    up_to_a_boundary = boundary_instants(zone, anchor, boundaries, spread=(0, 60)).map(
        lambda end: measured(calendar, start, end, pauses)
    )
    target_us = draw(targets(cap_us) | up_to_a_boundary)
    return Scenario(config, start, target_us, pauses, cap_us, calendar)


def dst_scenarios(zone: str) -> st.SearchStrategy[Scenario]:
    """Scenarios in ``zone`` starting near a DST change (holidays and pauses near it too)."""
    return scenarios(zones=(zone,), years=DST_ZONES[zone], near_transitions_only=True)


# --- a direct reading of the configuration, and plain elapsed time ----------------------


def version_on(config: Config, day: date) -> Config:
    """The configured hours in force on ``day``: the latest version begun by then."""
    begun = [v for v in config.get("versions", []) if v["effective_from"] <= day.isoformat()]
    return max(begun, key=lambda v: str(v["effective_from"])) if begun else config


def closed_and_makeup_dates(version: Config) -> tuple[set[str], set[str]]:
    """Holidays (own and from holiday sets) and make-up working dates, as ISO dates."""
    closed, makeup = set(version.get("holidays", [])), set[str]()
    if "CN" in version.get("holiday_sets", []):
        cn_closed, cn_makeup = holiday_set("CN")
        makeup = {d.isoformat() for d in cn_makeup} - closed
        closed |= {d.isoformat() for d in cn_closed - cn_makeup}
    return closed, makeup


def configured_hours(config: Config, day: date) -> list[tuple[int, int]]:
    """The hours starting on ``day`` (seconds after its midnight; overnight ones pass 24 h).

    An override wins; a holiday is closed; a make-up working date has the
    first open weekday's hours; any other date its weekday's.
    """
    version = version_on(config, day)
    every_day = [["00:00", "24:00"]]
    weekly: Weekly = (
        dict.fromkeys(WEEKDAYS, every_day) if version.get("always_open") else version["weekly"]
    )
    closed, makeup = closed_and_makeup_dates(version)
    hours: Hours
    if day.isoformat() in version.get("overrides", {}):
        hours = version["overrides"][day.isoformat()]
    elif day.isoformat() in closed:
        hours = []
    elif day.isoformat() in makeup:
        hours = next((weekly[name] for name in WEEKDAYS if weekly.get(name)), [])
    else:
        hours = weekly.get(WEEKDAYS[day.weekday()], [])
    spans = [(seconds_of(a), seconds_of(b)) for a, b in hours]
    return [(a, b + DAY_S if b <= a else b) for a, b in spans]


def takes_overnight(config: Config, day: date) -> bool:
    """Whether the day before's overnight hours count on ``day`` (not closed, no override)."""
    version = version_on(config, day)
    closed, _ = closed_and_makeup_dates(version)
    return day.isoformat() not in closed and day.isoformat() not in version.get("overrides", {})


def configured_open(config: Config, moment: datetime) -> bool:
    """Whether ``moment`` is in the configured hours of its local date (or the overnight
    part of the day before's), with local times placed as the calendar documents.
    """
    zone = str(config["timezone"])
    day = moment.astimezone(ZoneInfo(zone)).date()

    def within(start_s: int, end_s: int) -> bool:
        return (
            documented_instant(zone, day, start_s) <= moment < documented_instant(zone, day, end_s)
        )

    if any(within(a, min(b, DAY_S)) for a, b in configured_hours(config, day)):
        return True
    before = configured_hours(config, day - timedelta(days=1))
    return takes_overnight(config, day) and any(
        within(0, b - DAY_S) for _, b in before if b > DAY_S
    )


def elapsed_less_pauses(start: datetime, end: datetime, pauses: Pauses) -> int:
    """Microseconds in ``[start, end)`` outside every pause (a direct count, for 24x7)."""
    lo, hi = to_us(start), to_us(end)
    cuts = sorted((max(to_us(a), lo), min(to_us(b), hi)) for a, b in pauses)
    total, reached = max(0, hi - lo), lo
    for a, b in cuts:
        if b > reached and a < b:
            total -= b - max(a, reached)
            reached = b
    return total


def elapsed_deadline(start: datetime, target_us: int, pauses: Pauses) -> datetime:
    """The instant at which ``target_us`` of unpaused time after ``start`` is used up."""
    moment, remaining = to_us(start), target_us
    for a, b in sorted((to_us(a), to_us(b)) for a, b in pauses):
        if b <= moment or a >= b:
            continue
        if a > moment:
            if remaining <= a - moment:
                break
            remaining -= a - moment
        moment = b
    return from_us(moment + remaining)


def paused(at: datetime, pauses: Pauses) -> bool:
    return any(a <= at < b for a, b in pauses)


# --- the properties, checked by the tests below -----------------------------------------


def check_adding_then_measuring(scenario: Scenario) -> None:
    """between(start, add(start, s, pauses), pauses) == s, to the microsecond."""
    cal, start, pauses = scenario.calendar, scenario.start, scenario.pauses
    deadline = cal.add(start, scenario.seconds, pauses)
    assert measured(cal, start, deadline, pauses) == scenario.target_us


def check_monotone(scenario: Scenario, later_by: int, more_us: int) -> None:
    """A later start, or a larger target, never gives an earlier deadline."""
    cal, start, pauses = scenario.calendar, scenario.start, scenario.pauses
    deadline = cal.add(start, scenario.seconds, pauses)
    assert cal.add(shift(start, later_by), scenario.seconds, pauses) >= deadline
    assert cal.add(start, (scenario.target_us + more_us) / US, pauses) >= deadline


def check_deadline_in_business_time(scenario: Scenario) -> None:
    """For s > 0 the instant before the deadline is business time (not paused); s = 0 opens."""
    cal, start, pauses = scenario.calendar, scenario.start, scenario.pauses
    deadline = cal.add(start, scenario.seconds, pauses)
    assert deadline >= start
    if scenario.target_us > 0:
        just_before = shift(deadline, -1)
        assert cal.is_open(just_before)
        assert not paused(just_before, pauses)
    else:
        assert deadline == cal.next_open(start, pauses)
        assert cal.is_open(deadline)
        assert not paused(deadline, pauses)
        if not pauses:
            assert deadline == cal.next_open(start)


def check_is_open_as_configured(scenario: Scenario, data: st.DataObject) -> None:
    """is_open agrees with the configuration at the start and at boundaries on special dates."""
    zone = ZoneInfo(scenario.zone)
    first = scenario.start.astimezone(zone).date()
    around = [first + timedelta(days=n) for n in (-1, 0, 1)] + special_dates(scenario.config)
    boundaries = boundaries_of(scenario.config)
    moments = data.draw(
        st.lists(
            st.sampled_from(around).flatmap(
                lambda day: boundary_instants(scenario.zone, day, boundaries, spread=(0, 0))
            ),
            max_size=8,
        ),
        label="moments",
    )
    for moment in (scenario.start, *moments):
        expected = configured_open(scenario.config, moment)
        assert scenario.calendar.is_open(moment) == expected, moment.astimezone(zone)


# --- on generated calendars -------------------------------------------------------------

LATER_BY = st.sampled_from([1, US]) | st.integers(0, 14 * DAY_US)
"""How much later a second start is: 1 µs, 1 s, or up to two weeks."""


@PROPERTY
@given(scenario=scenarios())
def test_adding_then_measuring_returns_the_duration(scenario: Scenario) -> None:
    check_adding_then_measuring(scenario)


@PROPERTY
@given(scenario=scenarios(), later_by=LATER_BY, data=st.data())
def test_deadline_is_monotone_in_start_and_target(
    scenario: Scenario, later_by: int, data: st.DataObject
) -> None:
    more_us = data.draw(st.sampled_from([1, US]) | st.integers(0, scenario.cap_us), label="more")
    check_monotone(scenario, later_by, more_us)


@PROPERTY
@given(scenario=scenarios())
def test_pauses_never_bring_a_deadline_earlier(scenario: Scenario) -> None:
    cal, start, seconds = scenario.calendar, scenario.start, scenario.seconds
    assert cal.add(start, seconds, scenario.pauses) >= cal.add(start, seconds)


@PROPERTY
@given(scenario=scenarios())
def test_deadline_falls_in_business_time_or_at_a_window_end(scenario: Scenario) -> None:
    check_deadline_in_business_time(scenario)


@PROPERTY
@given(
    scenario=scenarios(),
    first=st.sampled_from([0, 1]) | st.integers(0, 40 * DAY_US),
    second=st.sampled_from([0, 1]) | st.integers(0, 40 * DAY_US),
)
def test_between_is_additive(scenario: Scenario, first: int, second: int) -> None:
    cal, a, pauses = scenario.calendar, scenario.start, scenario.pauses
    b = shift(a, first)
    c = shift(b, second)
    for cuts in ((), pauses):
        assert measured(cal, a, c, cuts) == measured(cal, a, b, cuts) + measured(cal, b, c, cuts)


@PROPERTY
@given(
    scenario=scenarios(always_open=True),
    span=st.sampled_from([0, 1]) | st.integers(0, 90 * DAY_US),
)
def test_always_open_is_elapsed_time_less_pauses(scenario: Scenario, span: int) -> None:
    cal, start, pauses = scenario.calendar, scenario.start, scenario.pauses
    end = shift(start, span)
    assert measured(cal, start, end) == span
    assert measured(cal, start, end, pauses) == elapsed_less_pauses(start, end, pauses)
    assert cal.add(start, scenario.seconds) == shift(start, scenario.target_us)
    assert cal.add(start, scenario.seconds, pauses) == elapsed_deadline(
        start, scenario.target_us, pauses
    )


@PROPERTY
@given(scenario=scenarios())
def test_next_open_is_the_first_open_instant(scenario: Scenario) -> None:
    cal, start = scenario.calendar, scenario.start
    opening = cal.next_open(start)
    assert cal.is_open(opening)
    assert measured(cal, start, opening) == 0
    assert cal.is_open(start) == (opening == start)
    assert cal.is_open(start) == (measured(cal, start, shift(start, 1)) == 1)


@PROPERTY
@given(scenario=scenarios(), data=st.data())
def test_is_open_follows_the_configured_hours(scenario: Scenario, data: st.DataObject) -> None:
    check_is_open_as_configured(scenario, data)


# --- the same around DST changes --------------------------------------------------------


@pytest.mark.parametrize("zone", DST_ZONES)
@DST_PROPERTY
@given(data=st.data())
def test_across_dst_adding_then_measuring_returns_the_duration(
    zone: str, data: st.DataObject
) -> None:
    check_adding_then_measuring(data.draw(dst_scenarios(zone), label="scenario"))


@pytest.mark.parametrize("zone", DST_ZONES)
@DST_PROPERTY
@given(data=st.data())
def test_across_dst_deadline_is_monotone_in_start_and_target(
    zone: str, data: st.DataObject
) -> None:
    scenario = data.draw(dst_scenarios(zone), label="scenario")
    later_by = data.draw(st.sampled_from([1, US]) | st.integers(0, 3 * DAY_US), label="later")
    more_us = data.draw(st.sampled_from([1, US]) | st.integers(0, scenario.cap_us), label="more")
    check_monotone(scenario, later_by, more_us)


@pytest.mark.parametrize("zone", DST_ZONES)
@DST_PROPERTY
@given(data=st.data())
def test_across_dst_deadline_falls_in_business_time_or_at_a_window_end(
    zone: str, data: st.DataObject
) -> None:
    check_deadline_in_business_time(data.draw(dst_scenarios(zone), label="scenario"))


@pytest.mark.parametrize("zone", DST_ZONES)
@DST_PROPERTY
@given(data=st.data())
def test_across_dst_is_open_follows_the_configured_hours(zone: str, data: st.DataObject) -> None:
    check_is_open_as_configured(data.draw(dst_scenarios(zone), label="scenario"), data)


def test_transitions_are_found_where_the_zone_changes() -> None:
    berlin = transitions("Europe/Berlin", 2026, 2026)
    assert berlin == (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC))
    assert len(transitions("America/Sao_Paulo", 2008, 2018)) == 22
    assert transitions("America/Sao_Paulo", 2020, 2030) == ()
    assert len(transitions("Asia/Tehran", 2008, 2021)) == 28


# --- DST examples -----------------------------------------------------------------------

BERLIN, SYDNEY, SAO_PAULO, TEHRAN = (
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Tehran",
)
ROUND_THE_CLOCK = {day: [["00:00", "24:00"]] for day in WEEKDAYS}


def local(zone: str, year: int, month: int, day: int, hour: int = 0) -> datetime:
    """An existing, unambiguous local wall time in ``zone``."""
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(zone))


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day_start", "day_end", "hours"),
    [
        (local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30), 23),
        (local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26), 25),
        (local(SYDNEY, 2026, 4, 5), local(SYDNEY, 2026, 4, 6), 25),
        (local(SYDNEY, 2026, 10, 4), local(SYDNEY, 2026, 10, 5), 23),
        (local(SAO_PAULO, 2017, 10, 15, 1), local(SAO_PAULO, 2017, 10, 16), 23),  # no 00:00
        (local(SAO_PAULO, 2018, 2, 17), local(SAO_PAULO, 2018, 2, 18), 25),
        (local(TEHRAN, 2021, 3, 22, 1), local(TEHRAN, 2021, 3, 23), 23),  # no 00:00
        (local(TEHRAN, 2021, 9, 21), local(TEHRAN, 2021, 9, 22), 25),
    ],
)
def test_a_round_the_clock_day_has_its_real_length(
    day_start: datetime, day_end: datetime, hours: int
) -> None:
    zone = str(day_start.tzinfo)
    cal = build({"timezone": zone, "weekly": ROUND_THE_CLOCK})
    assert cal.between(day_start, day_end) == hours * 3600
    assert cal.add(day_start, hours * 3600) == day_end
    # only that weekday open: the week holds exactly that day's real length
    weekday = WEEKDAYS[day_start.weekday()]
    one_day = build({"timezone": zone, "weekly": {weekday: [["00:00", "24:00"]]}})
    week_before = shift(day_start, -3 * DAY_US)
    assert one_day.between(week_before, shift(day_start, 4 * DAY_US)) == hours * 3600
    assert one_day.next_open(week_before) == day_start


@pytest.mark.parametrize(
    ("zone", "weekday", "window", "opens", "closes"),
    [
        # a window starting in the spring gap opens when the gap ends
        (BERLIN, "sun", ["02:30", "04:00"], utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),
        (SYDNEY, "sun", ["02:30", "04:00"], utc(2026, 10, 3, 16), utc(2026, 10, 3, 17)),
        (SAO_PAULO, "sun", ["00:00", "02:00"], utc(2017, 10, 15, 3), utc(2017, 10, 15, 4)),
        (TEHRAN, "mon", ["00:00", "02:00"], utc(2021, 3, 21, 20, 30), utc(2021, 3, 21, 21, 30)),
        # a window starting in the repeated hour opens at its first occurrence
        (BERLIN, "sun", ["02:30", "04:00"], utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3)),
        (SYDNEY, "sun", ["02:30", "04:00"], utc(2026, 4, 4, 15, 30), utc(2026, 4, 4, 18)),
        (SAO_PAULO, "sat", ["23:30", "24:00"], utc(2018, 2, 18, 1, 30), utc(2018, 2, 18, 3)),
        (TEHRAN, "tue", ["23:30", "24:00"], utc(2021, 9, 21, 19), utc(2021, 9, 21, 20, 30)),
    ],
)
def test_a_window_at_a_dst_change_opens_and_closes_at_the_documented_instants(
    zone: str, weekday: str, window: list[str], opens: datetime, closes: datetime
) -> None:
    cal = build({"timezone": zone, "weekly": {weekday: [window]}})
    day_before = shift(opens, -DAY_US)
    assert cal.next_open(day_before) == opens
    assert cal.add(day_before, 0) == opens
    assert not cal.is_open(shift(opens, -1))
    assert cal.is_open(opens)
    assert cal.is_open(shift(closes, -1))
    assert not cal.is_open(closes)
    length = (to_us(closes) - to_us(opens)) / US
    assert cal.add(day_before, length) == closes
    assert cal.between(day_before, shift(closes, DAY_US)) == length


def test_a_skipped_date_has_no_business_time() -> None:
    # Samoa went from 2011-12-29 23:59:59 (-10) to 2011-12-31 00:00 (+14): no Friday 30th
    apia = "Pacific/Apia"
    fridays = build({"timezone": apia, "weekly": {"fri": [["00:00", "24:00"]]}})
    monday, next_monday = local(apia, 2011, 12, 26), local(apia, 2012, 1, 2)
    assert fridays.between(monday, next_monday) == 0
    assert fridays.next_open(monday) == local(apia, 2012, 1, 6)
    always = build({"timezone": apia, "weekly": ROUND_THE_CLOCK})
    assert always.between(local(apia, 2011, 12, 29), local(apia, 2011, 12, 31)) == 24 * 3600
