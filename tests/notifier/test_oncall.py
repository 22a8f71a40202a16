"""On-call schedules: who is on call at an instant (pure), their config and the HTTP view.

Instants are written in UTC ("...Z") unless the local reading is the point;
Asia/Shanghai is UTC+8 all year, so Monday 09:00 there is Monday 01:00Z.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from slawatch_common.auth import Scope, TokenBook
from slawatch_notifier import oncall
from slawatch_notifier.oncall import OnCall, Schedule, on_call, schedule_errors
from slawatch_notifier.oncall_api import router

SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"
ONE_SECOND = timedelta(seconds=1)
ONE_US = timedelta(microseconds=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def schedule(time_zone: str = SHANGHAI, **fields: Any) -> Schedule:
    return Schedule.model_validate({"time_zone": time_zone, **fields})


def weekly(people: list[str], start: Any = "2024-01-01", **more: Any) -> dict[str, Any]:
    """Monday 09:00 handoffs; 2024-01-01 is a Monday."""
    handoff = {"day": "monday", "at": "09:00"}
    return {"people": people, "shift": "weekly", "handoff": handoff, "start": start, **more}


def daily(people: list[str], at: str = "09:00", **more: Any) -> dict[str, Any]:
    return {"people": people, "shift": "daily", "handoff": at, "start": "2024-01-01", **more}


def who(plan: Schedule, at: str | datetime) -> str | None:
    answer = on_call(plan, utc(at) if isinstance(at, str) else at)
    return None if answer is None else answer.person


def hours(answer: OnCall) -> float:
    return (answer.until - answer.since) / timedelta(hours=1)


L1 = schedule(rotations=[weekly(["alice", "bob", "carol"])])

# --- weekly rotation ------------------------------------------------------------


def test_the_handoff_is_monday_09_00_local_to_the_second() -> None:
    before = on_call(L1, utc("2024-01-08T00:59:59Z"))
    after = on_call(L1, utc("2024-01-08T01:00:00Z"))
    assert before == OnCall(
        "alice", utc("2024-01-01T01:00Z"), utc("2024-01-08T01:00Z"), "rotation:0"
    )
    assert after == OnCall("bob", utc("2024-01-08T01:00Z"), utc("2024-01-15T01:00Z"), "rotation:0")


def test_bounds_are_utc_whatever_the_offset_asked_with() -> None:
    answer = on_call(L1, datetime.fromisoformat("2024-01-10T12:00:00+08:00"))
    assert answer is not None
    assert answer.since.tzinfo is UTC
    assert answer.until.tzinfo is UTC


def test_the_rotation_wraps_around_the_list() -> None:
    mondays = [f"2024-01-{day:02d}T09:00:00+08:00" for day in (1, 8, 15, 22, 29)]
    assert [who(L1, monday) for monday in mondays] == ["alice", "bob", "carol", "alice", "bob"]
    assert who(L1, "2025-01-06T01:00Z") == ["alice", "bob", "carol"][53 % 3]


def test_nobody_before_the_first_handoff_the_rotation_does_not_run_backwards() -> None:
    assert who(L1, "2024-01-01T00:59:59Z") is None
    assert who(L1, "2023-06-01T00:00Z") is None


def test_a_mid_week_start_begins_at_the_next_handoff() -> None:
    plan = schedule(rotations=[weekly(["alice", "bob"], start="2024-01-03T12:00:00+08:00")])
    assert who(plan, "2024-01-05T00:00Z") is None
    answer = on_call(plan, utc("2024-01-08T01:00Z"))
    assert answer is not None
    assert (answer.person, answer.since) == ("alice", utc("2024-01-08T01:00Z"))


def test_a_start_exactly_at_a_handoff_is_the_first_shift() -> None:
    plan = schedule(rotations=[weekly(["alice", "bob"], start="2024-01-08T09:00:00+08:00")])
    assert who(plan, "2024-01-08T00:59:59Z") is None
    assert who(plan, "2024-01-08T01:00Z") == "alice"


def test_before_its_start_a_layer_leaves_the_one_below() -> None:
    plan = schedule(rotations=[weekly(["alice"]), weekly(["bob"], start="2024-02-05")])
    answer = on_call(plan, utc("2024-02-01T00:00Z"))
    assert answer is not None
    assert (answer.person, answer.source) == ("alice", "rotation:0")
    assert answer.until == utc("2024-02-05T01:00Z")  # the upper layer begins
    assert who(plan, "2024-02-05T01:00Z") == "bob"


# --- daily and hourly shifts ----------------------------------------------------


def test_a_daily_rotation_hands_off_every_day_at_the_local_time() -> None:
    plan = schedule(rotations=[daily(["alice", "bob", "carol"], at="08:30")])
    assert who(plan, "2024-01-01T00:29:59Z") is None
    assert [who(plan, f"2024-01-0{day}T00:30Z") for day in (1, 2, 3, 4)] == [
        "alice",
        "bob",
        "carol",
        "alice",
    ]
    answer = on_call(plan, utc("2024-01-02T12:00Z"))
    assert answer == OnCall("bob", utc("2024-01-02T00:30Z"), utc("2024-01-03T00:30Z"), "rotation:0")


def test_a_12_hour_rotation_hands_off_at_the_handoff_time_and_twelve_hours_later() -> None:
    plan = schedule(
        rotations=[
            {"people": ["day", "night"], "shift": "12h", "handoff": "09:00", "start": "2024-01-01"}
        ]
    )
    assert who(plan, "2024-01-01T12:59:59Z") == "day"  # 20:59:59 local
    assert who(plan, "2024-01-01T13:00Z") == "night"
    assert who(plan, "2024-01-02T01:00Z") == "day"


def test_a_two_week_shift_keeps_its_weekday() -> None:
    rotation = weekly(["alice", "bob"]) | {"shift": "14d"}
    plan = schedule(rotations=[rotation])
    answer = on_call(plan, utc("2024-01-10T00:00Z"))
    assert answer is not None
    assert (answer.person, answer.until) == ("alice", utc("2024-01-15T01:00Z"))


# --- daylight saving time -------------------------------------------------------


def test_berlin_spring_week_is_167_hours_with_handoffs_at_09_00_local() -> None:
    plan = schedule(BERLIN, rotations=[weekly(["alice", "bob"], start="2024-03-04")])
    answer = on_call(plan, utc("2024-03-27T12:00Z"))  # clocks went forward on 2024-03-31
    assert answer is not None
    assert answer.since == datetime(2024, 3, 25, 9, tzinfo=ZoneInfo(BERLIN))  # 08:00Z, CET
    assert answer.until == datetime(2024, 4, 1, 9, tzinfo=ZoneInfo(BERLIN))  # 07:00Z, CEST
    assert hours(answer) == 167
    assert who(plan, answer.until - ONE_SECOND) == answer.person
    assert who(plan, answer.until) != answer.person


def test_berlin_autumn_week_is_169_hours_with_handoffs_at_09_00_local() -> None:
    plan = schedule(BERLIN, rotations=[weekly(["alice", "bob"], start="2024-03-04")])
    answer = on_call(plan, utc("2024-10-25T12:00Z"))  # clocks went back on 2024-10-27
    assert answer is not None
    assert answer.since == utc("2024-10-21T07:00Z")  # 09:00 CEST
    assert answer.until == utc("2024-10-28T08:00Z")  # 09:00 CET
    assert hours(answer) == 169
    nxt = on_call(plan, answer.until)
    assert nxt is not None
    assert nxt.since.astimezone(ZoneInfo(BERLIN)).time() == time(9)
    assert hours(nxt) == 168


def test_a_handoff_in_the_dst_gap_happens_when_the_gap_ends() -> None:
    plan = schedule(BERLIN, rotations=[daily(["alice", "bob"], at="02:30")])
    # 2024-03-31 02:30 does not exist in Berlin: 02:00 CET jumps to 03:00 CEST (01:00Z).
    answer = on_call(plan, utc("2024-03-31T00:59:59Z"))
    assert answer is not None
    assert answer.until == utc("2024-03-31T01:00Z")
    assert hours(answer) == 23.5  # 02:30 CET -> 03:00 CEST
    assert who(plan, "2024-03-31T01:00Z") != answer.person


def test_an_ambiguous_handoff_happens_at_its_first_occurrence() -> None:
    plan = schedule(BERLIN, rotations=[daily(["alice", "bob"], at="02:30")])
    # 2024-10-27 02:30 happens twice: 00:30Z (CEST) and 01:30Z (CET).
    answer = on_call(plan, utc("2024-10-27T00:00Z"))
    assert answer is not None
    assert answer.until == utc("2024-10-27T00:30Z")
    nxt = on_call(plan, answer.until)
    assert nxt is not None
    assert hours(nxt) == 25  # to 02:30 CET the next day


# --- overrides ------------------------------------------------------------------


def test_an_override_inside_a_shift_wins_until_its_end() -> None:
    override = {
        "person": "dave",
        "start": "2024-01-10T18:00+08:00",
        "end": "2024-01-11T09:00+08:00",
    }
    plan = schedule(rotations=[weekly(["alice", "bob"])], overrides=[override])
    before = on_call(plan, utc("2024-01-10T09:00Z"))
    during = on_call(plan, utc("2024-01-10T12:00Z"))
    after = on_call(plan, utc("2024-01-11T01:00Z"))
    assert before == OnCall("bob", utc("2024-01-08T01:00Z"), utc("2024-01-10T10:00Z"), "rotation:0")
    assert during == OnCall("dave", utc("2024-01-10T10:00Z"), utc("2024-01-11T01:00Z"), "override")
    assert after == OnCall("bob", utc("2024-01-11T01:00Z"), utc("2024-01-15T01:00Z"), "rotation:0")


def test_an_override_across_a_handoff_outlasts_the_shift() -> None:
    override = {"person": "dave", "start": "2024-01-14T00:00Z", "end": "2024-01-16T00:00Z"}
    plan = schedule(rotations=[weekly(["alice", "bob"])], overrides=[override])
    assert who(plan, "2024-01-15T01:00Z") == "dave"
    assert on_call(plan, utc("2024-01-16T00:00Z")) == OnCall(
        "alice", utc("2024-01-16T00:00Z"), utc("2024-01-22T01:00Z"), "rotation:0"
    )


def test_of_overlapping_overrides_the_later_listed_wins() -> None:
    overrides = [
        {"person": "dave", "start": "2024-01-10T00:00Z", "end": "2024-01-12T00:00Z"},
        {"person": "erin", "start": "2024-01-11T00:00Z", "end": "2024-01-11T12:00Z"},
    ]
    plan = schedule(rotations=[weekly(["alice"])], overrides=overrides)
    assert on_call(plan, utc("2024-01-10T06:00Z")) == OnCall(
        "dave", utc("2024-01-10T00:00Z"), utc("2024-01-11T00:00Z"), "override"
    )
    assert on_call(plan, utc("2024-01-11T06:00Z")) == OnCall(
        "erin", utc("2024-01-11T00:00Z"), utc("2024-01-11T12:00Z"), "override"
    )
    assert on_call(plan, utc("2024-01-11T12:00Z")) == OnCall(
        "dave", utc("2024-01-11T12:00Z"), utc("2024-01-12T00:00Z"), "override"
    )


def test_an_earlier_listed_override_hides_under_a_later_one() -> None:
    overrides = [
        {"person": "dave", "start": "2024-01-11T00:00Z", "end": "2024-01-11T12:00Z"},
        {"person": "erin", "start": "2024-01-10T00:00Z", "end": "2024-01-12T00:00Z"},
    ]
    plan = schedule(rotations=[weekly(["alice"])], overrides=overrides)
    assert on_call(plan, utc("2024-01-11T06:00Z")) == OnCall(
        "erin", utc("2024-01-10T00:00Z"), utc("2024-01-12T00:00Z"), "override"
    )


def test_an_override_alone_is_a_schedule() -> None:
    override = {"person": "dave", "start": "2024-01-10T00:00Z", "end": "2024-01-11T00:00Z"}
    plan = schedule(overrides=[override])
    assert who(plan, "2024-01-10T12:00Z") == "dave"
    assert who(plan, "2024-01-11T00:00Z") is None


# --- active windows -------------------------------------------------------------

BUSINESS = {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": ["09:00", "18:00"]}


def test_a_business_hours_rotation_leaves_nobody_outside_its_window() -> None:
    plan = schedule(rotations=[daily(["alice", "bob"], active=BUSINESS)])
    assert on_call(plan, utc("2024-01-02T03:00Z")) == OnCall(
        "bob", utc("2024-01-02T01:00Z"), utc("2024-01-02T10:00Z"), "rotation:0"
    )
    assert who(plan, "2024-01-02T00:59:59Z") is None  # 08:59:59 local
    assert who(plan, "2024-01-02T10:00Z") is None  # 18:00 local
    assert who(plan, "2024-01-06T03:00Z") is None  # Saturday


def test_a_business_hours_layer_sits_on_an_around_the_clock_one() -> None:
    plan = schedule(rotations=[weekly(["night-owl"]), daily(["alice", "bob"], active=BUSINESS)])
    evening = on_call(plan, utc("2024-01-02T12:00Z"))  # Tuesday 20:00 local
    assert evening == OnCall(
        "night-owl", utc("2024-01-02T10:00Z"), utc("2024-01-03T01:00Z"), "rotation:0"
    )
    weekend = on_call(plan, utc("2024-01-06T12:00Z"))
    assert weekend == OnCall(
        "night-owl", utc("2024-01-05T10:00Z"), utc("2024-01-08T01:00Z"), "rotation:0"
    )
    assert who(plan, "2024-01-03T01:00Z") == "alice"  # Wednesday 09:00, the third day


def test_an_overnight_window_belongs_to_the_day_it_starts_on() -> None:
    window = {"days": ["fri"], "hours": ["18:00", "09:00"]}
    plan = schedule(rotations=[weekly(["alice"], active=window)])
    assert on_call(plan, utc("2024-01-05T20:00Z")) == OnCall(
        "alice", utc("2024-01-05T10:00Z"), utc("2024-01-06T01:00Z"), "rotation:0"
    )
    assert who(plan, "2024-01-06T01:00Z") is None  # Saturday 09:00
    assert who(plan, "2024-01-04T20:00Z") is None  # Thursday night


def test_whole_days_run_together_until_the_shift_ends() -> None:
    window = {"days": ["sat", "sun"], "hours": ["00:00", "00:00"]}
    plan = schedule(rotations=[daily(["alice", "bob"], at="00:00", active=window)])
    saturday = on_call(plan, utc("2024-01-06T03:00Z"))
    assert saturday is not None
    assert (saturday.since, saturday.until) == (utc("2024-01-05T16:00Z"), utc("2024-01-06T16:00Z"))
    weekend = schedule(rotations=[weekly(["carol"], active=window)])
    answer = on_call(weekend, utc("2024-01-07T03:00Z"))
    assert answer is not None
    assert (answer.since, answer.until) == (utc("2024-01-05T16:00Z"), utc("2024-01-07T16:00Z"))


# --- errors and references ----------------------------------------------------------


def test_a_naive_instant_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        on_call(L1, datetime(2024, 1, 10, 12))


def _locs(fields: dict[str, Any]) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as caught:
        Schedule.model_validate(fields)
    return [error["loc"] for error in caught.value.errors()]


def test_an_unknown_time_zone_is_refused_at_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        schedule("Asia/Beijing", rotations=[weekly(["alice"])])
    (error,) = caught.value.errors()
    assert error["loc"] == ("time_zone",)
    assert "unknown time zone 'Asia/Beijing'" in error["msg"]


def test_an_override_ending_before_it_starts_is_refused_at_end() -> None:
    override = {"person": "dave", "start": "2024-01-11T00:00Z", "end": "2024-01-11T00:00Z"}
    assert _locs({"time_zone": SHANGHAI, "overrides": [override]}) == [("overrides", 0, "end")]


def test_a_naive_override_instant_is_refused_at_the_field() -> None:
    override = {"person": "dave", "start": "2024-01-11T00:00", "end": "2024-01-12T00:00Z"}
    assert _locs({"time_zone": SHANGHAI, "overrides": [override]}) == [("overrides", 0, "start")]


def test_a_rotation_without_people_is_refused_at_people() -> None:
    fields = {"time_zone": SHANGHAI, "rotations": [weekly(["alice"]), weekly([])]}
    assert _locs(fields) == [("rotations", 1, "people")]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"shift": "fortnightly"}, ("rotations", 0, "shift")),
        ({"handoff": "09:00"}, ("rotations", 0, "handoff")),  # weekly needs the day
        ({"shift": "daily"}, ("rotations", 0, "handoff")),  # daily keeps no weekday
        ({"handoff": {"day": "funday", "at": "09:00"}}, ("rotations", 0, "handoff", "day")),
        ({"handoff": {"day": "mondays", "at": "09:00"}}, ("rotations", 0, "handoff", "day")),
        ({"handoff": {"day": "mon", "at": 540}}, ("rotations", 0, "handoff", "at")),
        ({"start": "2024-01-01T09:00"}, ("rotations", 0, "start", "instant")),
        ({"start": 1_700_000_000}, ("rotations", 0, "start")),
        ({"active": {"days": []}}, ("rotations", 0, "active", "days")),
        ({"rota": True}, ("rotations", 0, "rota")),
    ],
)
def test_rotation_mistakes_are_refused_at_their_field(
    change: dict[str, Any], loc: tuple[int | str, ...]
) -> None:
    assert _locs({"time_zone": SHANGHAI, "rotations": [weekly(["alice"]) | change]}) == [loc]


def test_an_unquoted_yaml_time_is_explained() -> None:
    with pytest.raises(ValidationError, match='quoted string like "09:00"'):
        schedule(rotations=[daily(["alice"], at=540)])  # type: ignore[arg-type]


def test_weekday_names_may_be_written_in_full_or_short() -> None:
    long = schedule(rotations=[weekly(["alice"]) | {"handoff": {"day": "Monday", "at": "09:00"}}])
    short = schedule(rotations=[weekly(["alice"]) | {"handoff": {"day": "mon", "at": "09:00"}}])
    assert long == short


def test_a_start_date_may_be_a_yaml_date() -> None:
    from_yaml = schedule(rotations=[weekly(["alice"], start=date(2024, 1, 1))])
    assert from_yaml == schedule(rotations=[weekly(["alice"], start="2024-01-01")])


def test_the_example_in_the_module_docstring_is_valid() -> None:
    assert oncall.__doc__ is not None
    example = oncall.__doc__.split("``notifier.schedules``:")[1].split("``on_call(")[0]
    l1 = Schedule.model_validate(yaml.safe_load(example)["schedules"]["l1"])
    assert on_call(l1, utc("2024-01-02T03:00Z")) == OnCall(  # Tuesday 11:00
        "erin", utc("2024-01-02T01:00Z"), utc("2024-01-02T10:00Z"), "rotation:1"
    )
    assert who(l1, "2024-01-02T12:00Z") == "alice"
    assert who(l1, "2024-02-12T03:00Z") == "frank"


def test_unknown_people_are_named_by_path() -> None:
    plan = schedule(
        rotations=[weekly(["alice", "bob", "x"])],
        overrides=[{"person": "y", "start": "2024-01-10T00:00Z", "end": "2024-01-11T00:00Z"}],
    )
    problems = schedule_errors(
        {"l1": plan, "l2": L1}, {"alice", "bob", "carol"}, "notifier.schedules"
    )
    assert problems == [
        "notifier.schedules.l1.rotations.0.people.2: unknown person 'x' (known: alice, bob, carol)",
        "notifier.schedules.l1.overrides.0.person: unknown person 'y' (known: alice, bob, carol)",
    ]
    assert schedule_errors({"l2": L1}, {"alice", "bob", "carol"}, "notifier.schedules") == []


# --- properties -----------------------------------------------------------------

ZONES = (
    "UTC",
    SHANGHAI,
    BERLIN,
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Havana",  # midnight repeated when the clocks go back
    "Pacific/Apia",  # skipped 2011-12-30 entirely
)
SHIFTS = ("weekly", "daily", "2d", "14d", "1h", "5h", "12h", "168h")
PEOPLE = ("a", "b", "c", "d")
PROPERTY = settings(max_examples=300, deadline=None, database=None)

local_times = st.builds(
    lambda hour, minute: f"{hour:02d}:{minute:02d}",
    st.integers(0, 23),
    st.sampled_from([0, 30]),
)
wall_times = st.datetimes(datetime(2010, 1, 1), datetime(2027, 1, 1))
days = st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1)


@st.composite
def rotations(draw: st.DrawFn) -> dict[str, Any]:
    shift = draw(st.sampled_from(SHIFTS))
    at = draw(local_times)
    whole_weeks = shift in ("weekly", "14d", "168h")
    with_day = shift == "weekly" or (whole_weeks and draw(st.booleans()))
    handoff = {"day": draw(st.sampled_from(["mon", "fri", "sun"])), "at": at} if with_day else at
    start: Any = draw(
        st.one_of(
            st.dates(date(2010, 1, 1), date(2026, 1, 1)).map(date.isoformat),
            st.datetimes(datetime(2010, 1, 1), datetime(2026, 1, 1), timezones=st.just(UTC)),
        )
    )
    rotation = {
        "people": draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4)),
        "shift": shift,
        "handoff": handoff,
        "start": start,
    }
    if draw(st.booleans()):
        rotation["active"] = {"days": draw(days), "hours": [draw(local_times), draw(local_times)]}
    return rotation


@st.composite
def overrides(draw: st.DrawFn, near: datetime) -> dict[str, Any]:
    start = near + timedelta(minutes=draw(st.integers(-20 * 24 * 60, 20 * 24 * 60)))
    length = timedelta(minutes=draw(st.integers(1, 10 * 24 * 60)))
    return {"person": draw(st.sampled_from(PEOPLE)), "start": start, "end": start + length}


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, datetime]:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    wall = draw(wall_times)
    at = wall.replace(tzinfo=zone, fold=draw(st.sampled_from([0, 1]))).astimezone(UTC)
    plan = Schedule(
        time_zone=zone.key,
        rotations=draw(st.lists(rotations(), max_size=3)),
        overrides=draw(st.lists(overrides(at), max_size=3)),
    )
    return plan, at


def _same(answer: OnCall | None, other: OnCall | None) -> bool:
    return answer is not None and other is not None and answer == other


@PROPERTY
@given(cases())
def test_the_answer_holds_from_since_to_until_and_changes_there(
    case: tuple[Schedule, datetime],
) -> None:
    plan, at = case
    answer = on_call(plan, at)
    if answer is None:
        return
    assert answer.since <= at < answer.until
    assert _same(on_call(plan, answer.since), answer)
    assert _same(on_call(plan, answer.until - ONE_US), answer)
    nxt = on_call(plan, answer.until)
    assert (
        nxt is None
        or (nxt.person, nxt.source) != (answer.person, answer.source)
        or nxt.since == answer.until
    )
    before = on_call(plan, answer.since - ONE_US)
    assert (
        before is None
        or (before.person, before.source) != (answer.person, answer.source)
        or before.until == answer.since
    )


@PROPERTY
@given(wall_times, st.sampled_from([0, 1]))
def test_a_berlin_weekly_rotation_agrees_with_counting_local_mondays(
    wall: datetime, fold: int
) -> None:
    people = ["alice", "bob", "carol"]
    plan = schedule(BERLIN, rotations=[weekly(people, start="2009-12-28")])
    at = wall.replace(tzinfo=ZoneInfo(BERLIN), fold=fold)
    local = at.astimezone(ZoneInfo(BERLIN))
    monday = local.date() - timedelta(days=local.weekday())
    if local.weekday() == 0 and local.time() < time(9):
        monday -= timedelta(days=7)
    weeks = (monday - date(2009, 12, 28)).days // 7
    answer = on_call(plan, at)
    assert answer is not None
    assert answer.person == people[weeks % 3]
    assert answer.since.astimezone(ZoneInfo(BERLIN)).replace(tzinfo=None) == datetime.combine(
        monday, time(9)
    )


# --- HTTP -----------------------------------------------------------------------

NOW = utc("2024-01-10T12:00Z")
READER = "oncall-reader-token"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    empty = schedule(rotations=[daily(["alice"], active=BUSINESS)])
    readers = TokenBook.of(plain={Scope.ONCALL_READ: [READER]})
    app.include_router(router({"l1": L1, "desk": empty}, now=lambda: NOW, tokens=readers))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {READER}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://notifier", headers=headers
    ) as client:
        yield client


async def test_get_one_schedule_now(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall/l1")
    assert response.status_code == 200
    assert response.json() == {
        "schedule": "l1",
        "at": "2024-01-10T12:00:00Z",
        "person": "bob",
        "since": "2024-01-08T01:00:00Z",
        "until": "2024-01-15T01:00:00Z",
        "source": "rotation:0",
    }


async def test_get_one_schedule_at_an_instant(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall/l1", params={"at": "2024-01-15T09:00:00+08:00"})
    assert response.status_code == 200
    assert (response.json()["at"], response.json()["person"]) == ("2024-01-15T01:00:00Z", "carol")


async def test_an_unencoded_plus_in_the_offset_still_means_plus(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall/l1?at=2024-01-15T09:00:00+08:00")
    assert response.status_code == 200
    assert response.json()["at"] == "2024-01-15T01:00:00Z"


async def test_nobody_on_call_is_null(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall/desk")  # Wednesday 20:00 local
    assert response.status_code == 200
    body = response.json()
    assert body["person"] is None
    assert body["since"] is None
    assert body["until"] is None
    assert body["source"] is None


async def test_an_unknown_schedule_is_404_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall/l9")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown schedule 'l9'", "known": ["desk", "l1"]}


@pytest.mark.parametrize("at", ["2024-01-15T09:00:00", "yesterday", "2024-13-01T00:00:00Z"])
async def test_a_naive_or_malformed_at_is_422_naming_it(client: httpx.AsyncClient, at: str) -> None:
    response = await client.get("/v1/oncall/l1", params={"at": at})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "at"]]


async def test_list_every_schedule_now(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/oncall")
    assert response.status_code == 200
    body = response.json()
    assert body["at"] == "2024-01-10T12:00:00Z"
    assert [(view["schedule"], view["person"]) for view in body["schedules"]] == [
        ("desk", None),
        ("l1", "bob"),
    ]
