"""Reporting periods of a contract: calendar months, quarters and years in its time zone.

A period is half-open, ``[start, end)``, and its bounds are instants: local
midnight of the first day in the contract's time zone, converted to UTC. A
monthly report for an Asia/Shanghai contract therefore starts at 16:00 UTC on
the last day of the previous month, and a period in a zone with summer time
is as long as the clocks say (March 2026 in Europe/Berlin has 743 hours).

Labels name calendar periods: ``"2026-11"`` (a month), ``"2026-Q4"`` (a
quarter; ``"2026-q4"`` is read the same) and ``"2026"`` (a year), for years
1970 to 9998. An explicit range of instants is a period too (kind
``"range"``), labelled by its two ends in ISO 8601; ``choose_period`` makes
either kind from the text of a request.

Where a zone skips local midnight (its clocks jump from 00:00 to 01:00 at the
start of the first day), the period starts at the instant of the jump: a
local time in a gap is read with the offset in force before it (PEP 495,
``fold=0``), which for a gap starting at midnight is the instant the gap ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["month", "quarter", "year", "range"]
CalendarKind = Literal["month", "quarter", "year"]
"""The kinds of period a label names."""

FIRST_YEAR = 1970
LAST_YEAR = 9998
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-[Qq](\d)")
_YEAR = re.compile(r"\d{4}")


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` as aware UTC instants, with the label it was made from."""

    start: datetime
    end: datetime
    label: str
    kind: PeriodKind

    @property
    def seconds(self) -> float:
        """The length of the period in elapsed seconds."""
        return (self.end - self.start).total_seconds()

    def contains(self, at: datetime) -> bool:
        """Whether ``start <= at < end``."""
        return self.start <= at < self.end


def period_of(label: str, zone: ZoneInfo) -> Period:
    """The calendar period named by ``label`` in ``zone``.

    ``"2026-11"`` is November 2026, ``"2026-Q4"`` (or ``"2026-q4"``) October
    to December 2026 and ``"2026"`` the whole year; anything else is a
    ValueError that says which forms are understood.
    """
    text = label.strip()
    if match := _MONTH.fullmatch(text):
        year, month = _year(match.group(1), label), int(match.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"period {label!r}: month {match.group(2)} is not 01 to 12")
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        return _period(zone, (year, month), following, f"{year:04d}-{month:02d}", "month")
    if match := _QUARTER.fullmatch(text):
        year, quarter = _year(match.group(1), label), int(match.group(2))
        if not 1 <= quarter <= 4:
            raise ValueError(f"period {label!r}: quarter Q{quarter} is not Q1 to Q4")
        first = 3 * quarter - 2
        following = (year + 1, 1) if quarter == 4 else (year, first + 3)
        return _period(zone, (year, first), following, f"{year:04d}-Q{quarter}", "quarter")
    if _YEAR.fullmatch(text):
        year = _year(text, label)
        return _period(zone, (year, 1), (year + 1, 1), f"{year:04d}", "year")
    raise ValueError(
        f"period {label!r} is not a month like '2026-11', a quarter like '2026-Q4' "
        "or a year like '2026'"
    )


def period_containing(at: datetime, kind: CalendarKind | str, zone: ZoneInfo) -> Period:
    """The calendar month, quarter or year of ``zone`` that contains the instant ``at``;
    ``kind`` is ``"month"``, ``"quarter"`` or ``"year"``."""
    local = _aware(at, "at").astimezone(zone)
    if kind == "month":
        return period_of(f"{local.year:04d}-{local.month:02d}", zone)
    if kind == "quarter":
        return period_of(f"{local.year:04d}-Q{(local.month + 2) // 3}", zone)
    if kind == "year":
        return period_of(f"{local.year:04d}", zone)
    raise ValueError(f"{kind!r} is not a calendar period (month, quarter or year)")


def next_period(period: Period, zone: ZoneInfo) -> Period:
    """The period that follows ``period``: the next month, quarter or year in ``zone``;
    for a range, the range of the same length that starts at its end."""
    if period.kind == "range":
        return span(period.end, period.end + (period.end - period.start))
    return period_containing(period.end, period.kind, zone)


def span(start: datetime, end: datetime) -> Period:
    """An explicit range ``[start, end)`` of aware instants (kind ``"range"``).

    The label is the two ends as given, in ISO 8601, joined by ``/``;
    ``end <= start`` is a ValueError.
    """
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        raise ValueError(f"a period must end after it starts ({start} to {end})")
    label = f"{start.isoformat()}/{end.isoformat()}"
    return Period(start.astimezone(UTC), end.astimezone(UTC), label, "range")


def choose_period(label: str | None, start: str | None, end: str | None, zone: ZoneInfo) -> Period:
    """A period from a request: a label (see ``period_of``), or a range ``start`` to
    ``end`` given as text (see ``parse_instant``), never both."""
    if label is not None and start is None and end is None:
        return period_of(label, zone)
    if label is None and start is not None and end is not None:
        return span(parse_instant(start, zone), parse_instant(end, zone))
    raise ValueError("give either a period like '2026-11', or both a start and an end")


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An instant from ISO 8601 text: with an offset (``2026-11-01T08:00:00+08:00``,
    ``…Z``) it is that instant; without one it is local time in ``zone``
    (``2026-11-01T08:00``), and a date alone is local midnight (``2026-11-01``).
    A local time is read as ``period_of`` reads midnight (PEP 495, ``fold=0``).
    The instant is returned in UTC, and it must lie in the years 1970-9998."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 instant like '2026-11-01T08:00:00+08:00' "
            "or a date like '2026-11-01'"
        ) from None
    local = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        instant = local.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} has no UTC instant (out of range)") from None
    if not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise ValueError(f"{text!r} is outside the years {FIRST_YEAR}-{LAST_YEAR}")
    return instant


def _period(
    zone: ZoneInfo,
    first: tuple[int, int],
    following: tuple[int, int],
    label: str,
    kind: PeriodKind,
) -> Period:
    return Period(_midnight(zone, *first), _midnight(zone, *following), label, kind)


def _midnight(zone: ZoneInfo, year: int, month: int) -> datetime:
    """Local midnight of the first of the month in ``zone``, as a UTC instant."""
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def _year(text: str, label: str) -> int:
    year = int(text)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"period {label!r}: year {text} is not {FIRST_YEAR} to {LAST_YEAR}")
    return year


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {moment}; pass an aware instant")
    return moment
