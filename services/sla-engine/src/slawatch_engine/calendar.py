"""Business calendars: when an SLA clock runs, and exact arithmetic over that time.

A calendar has a time zone and, per local date, opening hours: the weekly
hours of that weekday, unless the date is a holiday (closed), a make-up
working day from a holiday set (worked with the calendar's workday hours), or
has an override (its own hours, which win over everything). A calendar may
change its hours from a date on (versions); every date uses the version in
force on it, so a change never rewrites time already counted.

Conventions (docs/CALENDARS.md has the worked examples):
- Hours are local wall-clock time; an interval whose end is at or before its
  start runs overnight into the next date. Each date's hours are clipped to
  that date, so the part after midnight belongs to the next date (and is
  dropped when that date is a holiday or has an override).
- Arithmetic is on real elapsed time: a 25-hour DST day has 25 hours. A local
  time inside a DST gap means the instant the gap ends; an ambiguous local
  time (the repeated hour) means its first occurrence.
- ``add(start, s)`` is the earliest instant at which ``s`` business seconds
  have passed since ``start``, so a deadline landing exactly at closing time
  is the closing instant; ``add(start, 0)`` is the first business instant at
  or after ``start``.
- ``between(a, b)`` is the business time in ``[a, b)``.
- Pauses are absolute ``[from, to)`` intervals in which no business time
  accrues, whatever the calendar says.

All instants are handled as integer microseconds since the epoch; per-date
intervals and per-date and per-week totals are cached, and whole days and
weeks are skipped by their totals, so a one-year target costs a few dozen
steps.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_S = 86_400
US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)
HORIZON_DAYS = 3_660
"""A calendar with no open hour in this many days is treated as never open again."""

Interval = tuple[int, int]
"""Seconds after local midnight, ``[start, end)``; ``end`` may pass 86,400 (overnight)."""

Span = tuple[int, int]
"""Microseconds since the epoch, ``[start, end)``."""

Pauses = Sequence[tuple[datetime, datetime]]
DayMode = Literal["same_time", "end_of_day"]


class CalendarError(ValueError):
    """A calendar that cannot be used, or that is never open when it must be."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """One version of a calendar's hours, in force from ``effective_from`` on."""

    weekly: tuple[tuple[Interval, ...], ...]
    effective_from: date = date.min
    holidays: frozenset[date] = frozenset()
    overrides: Mapping[date, tuple[Interval, ...]] = field(default_factory=dict)
    makeup_days: frozenset[date] = frozenset()
    workday: tuple[Interval, ...] = ()

    def hours(self, day: date) -> tuple[Interval, ...]:
        """The hours that start on ``day`` (before clipping to the date)."""
        if day in self.overrides:
            return self.overrides[day]
        if day in self.holidays:
            return ()
        if day in self.makeup_days:
            return self.workday
        return self.weekly[day.weekday()]

    def takes_overnight(self, day: date) -> bool:
        """Whether hours running past midnight into ``day`` count on ``day``."""
        return day not in self.overrides and day not in self.holidays


class Calendar:
    """Business time of one calendar; cheap to share. Its caches only ever add
    immutable values (never evict), so the report's worker thread may read it
    beside the event loop."""

    def __init__(self, name: str, timezone: ZoneInfo, versions: Sequence[Schedule]) -> None:
        if not versions:
            raise CalendarError(f"calendar {name}: no hours")
        self.name = name
        self.timezone = timezone
        self._versions = tuple(sorted(versions, key=lambda v: v.effective_from))
        self._starts = [v.effective_from for v in self._versions]
        if not any(any(v.weekly) or v.overrides or v.makeup_days for v in self._versions):
            raise CalendarError(f"calendar {name}: no open hours in the week")
        self._days: dict[date, tuple[Span, ...]] = {}
        self._totals: dict[date, int] = {}
        self._weeks: dict[date, tuple[int, int, int]] = {}

    @property
    def cached_days(self) -> int:
        """Days whose hours are cached (what the calendar's memory grows with)."""
        return len(self._days)

    # --- public arithmetic ------------------------------------------------------

    def add(self, start: datetime, seconds: float, pauses: Pauses = ()) -> datetime:
        """The instant at which ``seconds`` of business time after ``start`` are used up."""
        if seconds < 0:
            raise ValueError("a business duration cannot be negative")
        return from_us(self.add_us(to_us(start), round(seconds * US), _cuts(pauses)))

    def between(self, start: datetime, end: datetime, pauses: Pauses = ()) -> float:
        """Business seconds in ``[start, end)`` less pauses; zero when ``end <= start``."""
        return self.between_us(to_us(start), to_us(end), _cuts(pauses)) / US

    def next_open(self, at: datetime, pauses: Pauses = ()) -> datetime:
        """The first business instant at or after ``at``."""
        return from_us(self.add_us(to_us(at), 0, _cuts(pauses)))

    def is_open(self, at: datetime) -> bool:
        moment = to_us(at)
        return any(a <= moment < b for a, b in self._day(self._date_of(moment)))

    def add_days(
        self, start: datetime, days: int, mode: DayMode = "same_time", pauses: Pauses = ()
    ) -> datetime:
        """``days`` working days after the date of ``start``.

        ``same_time``: that date at the local wall time of ``start``;
        ``end_of_day``: when that working day closes. Day 0 is the date of
        ``start`` itself (or, for ``end_of_day`` on a closed date or after that
        day's close, the next working day). Pauses push the result on by the business time they
        took out of ``[start, result)``.
        """
        if days < 0:
            raise ValueError("a number of working days cannot be negative")
        local = start.astimezone(self.timezone)
        day = self._working_day(local.date(), days, mode)
        if mode == "end_of_day":
            result = self._day(day)[-1][1]
            if result <= to_us(start):  # day 0 has already closed: the next working day's end
                result = self._day(self._working_day(day, 1, mode))[-1][1]
        elif days == 0:
            result = to_us(start)
        else:
            wall = local.replace(tzinfo=None) - datetime.combine(local.date(), time())
            result = self._instant(day, wall.total_seconds())
        cuts = _cuts(pauses)
        lost = self.between_us(to_us(start), result, cuts, exclude_pauses=False) - (
            self.between_us(to_us(start), result, cuts)
        )
        return from_us(self.add_us(result, lost, cuts) if lost else result)

    def _working_day(self, day: date, days: int, mode: DayMode) -> date:
        """The ``days``-th working day after ``day`` (see ``add_days`` for day 0)."""
        if days == 0 and mode == "same_time":
            return day
        counted = 0
        for _ in range(HORIZON_DAYS):
            if counted == days and self._total(day) > 0:
                return day
            day += _ONE_DAY
            counted += self._total(day) > 0 and counted < days
        raise CalendarError(f"calendar {self.name}: not {days} working days in sight")

    # --- microsecond core -------------------------------------------------------------

    def add_us(self, start: int, remaining: int, cuts: Sequence[Span] = ()) -> int:
        """``add`` on microseconds; ``cuts`` sorted, merged pause spans."""
        return self.add_many_us(start, (remaining,), cuts)[0]

    def add_many(self, start: datetime, seconds: Sequence[float]) -> list[datetime]:
        """``add`` for several durations from one start (ascending) in one walk."""
        offsets = [round(value * US) for value in seconds]
        return [from_us(moment) for moment in self.add_many_us(to_us(start), offsets)]

    def add_many_us(
        self, start: int, offsets: Sequence[int], cuts: Sequence[Span] = ()
    ) -> list[int]:
        """The instants ``offsets`` (ascending, ≥ 0) business µs after ``start``, one walk."""
        found: list[int] = []
        if not offsets:
            return found
        if offsets[0] < 0 or any(a > b for a, b in itertools.pairwise(offsets)):
            raise ValueError("offsets must be ascending and not negative")
        used = 0  # business µs from ``start`` up to the walk's position
        first = self._date_of(start)
        day = first
        for _ in range(HORIZON_DAYS):
            if day != first:
                skipped = self._skip(day, offsets[len(found)] - used, cuts)
                if skipped is not None:
                    day, remaining = skipped
                    used = offsets[len(found)] - remaining
                    continue
            for a, b in self._day(day):
                if b <= start:
                    continue
                for x, y in _without(max(a, start), b, cuts):
                    while x + offsets[len(found)] - used <= y:
                        found.append(x + offsets[len(found)] - used)
                        if len(found) == len(offsets):
                            return found
                    used += y - x
            day += _ONE_DAY
        raise CalendarError(f"calendar {self.name}: no deadline within {HORIZON_DAYS} days")

    def between_us(
        self, start: int, end: int, cuts: Sequence[Span] = (), *, exclude_pauses: bool = True
    ) -> int:
        if end <= start:
            return 0
        if not exclude_pauses:
            cuts = ()
        first, last = self._date_of(start), self._date_of(end)
        total = 0
        day = first
        while day <= last:
            if first < day < last and not self._paused_on(day, cuts):
                if day.weekday() == 0 and day + 7 * _ONE_DAY < last:
                    week_total, w_start, w_end = self._week(day)
                    if not (cuts and _overlaps(cuts, w_start, w_end)):
                        total += week_total
                        day += 7 * _ONE_DAY
                        continue
                total += self._total(day)
                day += _ONE_DAY
                continue
            for a, b in self._day(day):
                lo, hi = max(a, start), min(b, end)
                if lo < hi:
                    total += sum(y - x for x, y in _without(lo, hi, cuts))
            day += _ONE_DAY
        return total

    def _skip(self, day: date, remaining: int, cuts: Sequence[Span]) -> tuple[date, int] | None:
        """Pass over the whole week or day at ``day`` if the deadline lies beyond it."""
        if day.weekday() == 0:
            week_total, w_start, w_end = self._week(day)
            if remaining > week_total and not (cuts and _overlaps(cuts, w_start, w_end)):
                return day + 7 * _ONE_DAY, remaining - week_total
        total = self._total(day)
        if remaining > total and not self._paused_on(day, cuts):
            return day + _ONE_DAY, remaining - total
        return None

    def _paused_on(self, day: date, cuts: Sequence[Span]) -> bool:
        return bool(cuts) and _overlaps(cuts, *self._week_or_day_span(day, 1))

    # --- per-date intervals and totals -------------------------------------------------

    def _day(self, day: date) -> tuple[Span, ...]:
        cached = self._days.get(day)
        if cached is None:
            spans = [(self._instant(day, s), self._instant(day, e)) for s, e in self._local(day)]
            cached = tuple(_merged([(a, b) for a, b in spans if a < b]))
            self._days[day] = cached
        return cached

    def _total(self, day: date) -> int:
        total = self._totals.get(day)
        if total is None:
            total = sum(b - a for a, b in self._day(day))
            self._totals[day] = total
        return total

    def _week(self, monday: date) -> tuple[int, int, int]:
        week = self._weeks.get(monday)
        if week is None:
            total = sum(self._total(monday + i * _ONE_DAY) for i in range(7))
            span = self._week_or_day_span(monday, 7)
            week = (total, *span)
            self._weeks[monday] = week
        return week

    def _week_or_day_span(self, day: date, days: int) -> Span:
        return self._instant(day, 0), self._instant(day + days * _ONE_DAY, 0)

    def _local(self, day: date) -> list[Interval]:
        """``day``'s hours clipped to the date, with the overnight part of the day before."""
        schedule = self._schedule(day)
        parts = [(s, min(e, DAY_S)) for s, e in schedule.hours(day) if s < DAY_S]
        if schedule.takes_overnight(day):
            before = day - _ONE_DAY
            spill = self._schedule(before).hours(before)
            parts += [(0, e - DAY_S) for s, e in spill if e > DAY_S]
        return _merged(sorted(parts))

    def _schedule(self, day: date) -> Schedule:
        return self._versions[max(0, bisect_right(self._starts, day) - 1)]

    def _date_of(self, moment: int) -> date:
        return from_us(moment).astimezone(self.timezone).date()

    def _instant(self, day: date, seconds: float) -> int:
        """Microseconds of local ``day`` + ``seconds``; a time in a DST gap is the gap's end."""
        wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
        moment = to_us(wall.replace(tzinfo=self.timezone))
        if from_us(moment).astimezone(self.timezone).replace(tzinfo=None) == wall:
            return moment
        return self._gap_end(to_us(wall.replace(tzinfo=self.timezone, fold=1)), moment)

    def _gap_end(self, before: int, after: int) -> int:
        """The instant in ``(before, after]`` at which the zone's offset changes."""
        offset = self._offset(after)
        low, high = before // US, after // US  # transitions fall on whole seconds
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle * US) == offset:
                high = middle
            else:
                low = middle
        return high * US

    def _offset(self, moment: int) -> timedelta | None:
        return from_us(moment).astimezone(self.timezone).utcoffset()


# --- helpers over spans -----------------------------------------------------------------


def to_us(moment: datetime) -> int:
    """An aware instant as µs since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware instant")
    return (moment - _EPOCH) // _ONE_US


def from_us(moment: int) -> datetime:
    """µs since the epoch as an aware UTC instant."""
    return _EPOCH + timedelta(microseconds=moment)


def _merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _cuts(pauses: Pauses) -> list[Span]:
    if not pauses:
        return []
    spans = sorted((to_us(a), to_us(b)) for a, b in pauses)
    return _merged([(a, b) for a, b in spans if a < b])


def _overlaps(cuts: Sequence[Span], start: int, end: int) -> bool:
    index = bisect_right(cuts, (start, start)) - 1
    for a, b in cuts[max(0, index) :]:
        if a >= end:
            return False
        if b > start:
            return True
    return False


def _without(start: int, end: int, cuts: Sequence[Span]) -> Iterator[Span]:
    """``[start, end)`` less the pause spans."""
    if not cuts:
        yield start, end
        return
    position = start
    index = max(0, bisect_right(cuts, (start, start)) - 1)
    for a, b in cuts[index:]:
        if a >= end:
            break
        if b <= position:
            continue
        if a > position:
            yield position, a
        position = max(position, b)
    if position < end:
        yield position, end


# --- building ---------------------------------------------------------------------------


def parse_hours(name: str, where: str, pairs: Sequence[Sequence[str]]) -> tuple[Interval, ...]:
    """Intervals from ``[["08:00", "12:00"], ...]``; ``"24:00"`` ends the day."""
    return tuple(_interval(name, where, pair) for pair in pairs)


def weekly_hours(
    name: str, hours: Mapping[str, Sequence[Sequence[str]]]
) -> tuple[tuple[Interval, ...], ...]:
    unknown = set(hours) - set(WEEKDAYS)
    if unknown:
        raise CalendarError(f"calendar {name}: unknown weekday(s) {sorted(unknown)}")
    return tuple(parse_hours(name, day, hours.get(day, ())) for day in WEEKDAYS)


ALWAYS = tuple(((0, DAY_S),) for _ in WEEKDAYS)


def always_open(name: str = "always", timezone: str = "UTC") -> Calendar:
    return Calendar(name, ZoneInfo(timezone), [Schedule(weekly=ALWAYS)])


def weekly_calendar(
    name: str, timezone: str, hours: Mapping[str, Sequence[Sequence[str]]]
) -> Calendar:
    """A calendar of weekly hours only, ``{"mon": [["08:00", "18:30"]], ...}``."""
    return Calendar(name, ZoneInfo(timezone), [Schedule(weekly=weekly_hours(name, hours))])


def _interval(name: str, where: str, pair: Sequence[str]) -> Interval:
    if len(pair) != 2:
        raise CalendarError(f"calendar {name}: {where}: an interval is [start, end]")
    start, end = (_seconds_of(name, where, text) for text in pair)
    if start >= DAY_S:
        raise CalendarError(f"calendar {name}: {where}: an interval cannot start at 24:00")
    if end <= start:
        end += DAY_S  # overnight into the next day
    return start, end


def _seconds_of(name: str, where: str, text: str) -> int:
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise CalendarError(f"calendar {name}: {where}: {text!r} is not HH:MM") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise CalendarError(f"calendar {name}: {where}: {text!r} is not a time of day")
    return hours * 3600 + minutes * 60
