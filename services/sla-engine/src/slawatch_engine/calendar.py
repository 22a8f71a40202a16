"""Business calendars: when an SLA clock runs, and the arithmetic over that time.

A calendar is a time zone plus weekly opening hours in local wall-clock time,
or "always open" (7×24). Every instant is timezone-aware; arithmetic is done
on real elapsed time, so a 25-hour DST day really has 25 hours.

Conventions (the deadline convention is the one users expect from a contract):
- ``add(start, s)`` is the earliest instant at which ``s`` business seconds
  have passed since ``start``; a deadline that lands exactly at closing time is
  the closing instant, not the next opening.
- ``add(start, 0)`` is ``start`` itself (callers that want "the first business
  instant" use ``next_open``).
- ``between(a, b)`` is the business time in ``[a, b)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = 86_400
# A calendar with no open hour for this long is treated as never open.
_HORIZON_DAYS = 3_660


class CalendarError(ValueError):
    """A calendar that cannot be used (no open hours, a bad interval)."""


Interval = tuple[int, int]
"""Seconds after local midnight: ``[start, end)``; ``end`` may pass 86,400 (overnight)."""


@dataclass(frozen=True, slots=True)
class Calendar:
    name: str
    timezone: ZoneInfo
    weekly: tuple[tuple[Interval, ...], ...] = field(default=((),) * 7)
    always_open: bool = False

    def __post_init__(self) -> None:
        if not self.always_open and not any(self.weekly):
            raise CalendarError(f"calendar {self.name}: no open hours in the week")

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` of business time after ``start`` are used up."""
        if seconds < 0:
            raise ValueError("a business duration cannot be negative")
        if self.always_open:
            return start + timedelta(seconds=seconds)
        remaining = timedelta(seconds=seconds)
        if not remaining:
            return start
        for open_at, close_at in self.open_intervals(start):
            begin = max(open_at, start)
            if begin + remaining <= close_at:
                return begin + remaining
            remaining -= close_at - begin
        raise CalendarError(f"calendar {self.name}: no deadline within {_HORIZON_DAYS} days")

    def between(self, start: datetime, end: datetime) -> float:
        """Business seconds in ``[start, end)``; zero when ``end <= start``."""
        if end <= start:
            return 0.0
        if self.always_open:
            return (end - start).total_seconds()
        total = timedelta()
        for open_at, close_at in self.open_intervals(start):
            if open_at >= end:
                break
            total += min(close_at, end) - max(open_at, start)
        return total.total_seconds()

    def next_open(self, at: datetime) -> datetime:
        """The first business instant at or after ``at``."""
        if self.always_open:
            return at
        for open_at, _ in self.open_intervals(at):
            return max(open_at, at)
        raise CalendarError(f"calendar {self.name}: never open after {at.isoformat()}")

    def open_intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open ``[from, to)`` intervals in UTC that end after ``since``, in order, merged."""
        local_day = since.astimezone(self.timezone).date() - timedelta(days=1)
        pending: tuple[datetime, datetime] | None = None
        for offset in range(_HORIZON_DAYS):
            for open_at, close_at in self._day_intervals(local_day + timedelta(days=offset)):
                if close_at <= since:
                    continue
                if pending is None:
                    pending = (open_at, close_at)
                elif open_at <= pending[1]:
                    pending = (pending[0], max(pending[1], close_at))
                else:
                    yield pending
                    pending = (open_at, close_at)
        if pending is not None:
            yield pending

    def _day_intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for start, end in self.weekly[day.weekday()]:
            yield self._instant(day, start), self._instant(day, end)

    def _instant(self, day: date, seconds: int) -> datetime:
        """The UTC instant of local wall-clock ``day`` + ``seconds`` after midnight."""
        wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
        return wall.replace(tzinfo=self.timezone).astimezone(UTC)


def always_open(name: str = "always", timezone: str = "UTC") -> Calendar:
    return Calendar(name=name, timezone=ZoneInfo(timezone), always_open=True)


def weekly_calendar(
    name: str, timezone: str, hours: Mapping[str, Sequence[Sequence[str]]]
) -> Calendar:
    """A calendar from ``{"mon": [["08:00", "18:30"]], ...}``; a missing day is closed.

    ``"24:00"`` ends the day; an end at or before its start runs overnight.
    """
    unknown = set(hours) - set(WEEKDAYS)
    if unknown:
        raise CalendarError(f"calendar {name}: unknown weekday(s) {sorted(unknown)}")
    weekly = tuple(
        tuple(_interval(name, day, pair) for pair in hours.get(day, ())) for day in WEEKDAYS
    )
    return Calendar(name=name, timezone=ZoneInfo(timezone), weekly=weekly)


def _interval(name: str, day: str, pair: Sequence[str]) -> Interval:
    if len(pair) != 2:
        raise CalendarError(f"calendar {name}: {day}: an interval is [start, end]")
    start, end = (_seconds_of(name, day, text) for text in pair)
    if start >= _DAY:
        raise CalendarError(f"calendar {name}: {day}: an interval cannot start at 24:00")
    if end <= start:
        end += _DAY  # overnight into the next day
    return start, end


def _seconds_of(name: str, day: str, text: str) -> int:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise CalendarError(f"calendar {name}: {day}: {text!r} is not HH:MM") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise CalendarError(f"calendar {name}: {day}: {text!r} is not a time of day")
    return hours * 3600 + minutes * 60
