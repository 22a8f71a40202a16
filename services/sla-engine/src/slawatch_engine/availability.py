"""Availability of services from outage intervals, with planned maintenance excluded.

For one service over a period ``[start, end)`` measured up to
``until = min(end, as_of)``:

- P is ``until - start``;
- M (planned) is the union of the service's maintenance windows inside
  ``[start, until)``;
- U (outage) is the union of its firing alerts inside ``[start, until)``
  minus M: outage time during maintenance is planned, not outage, and
  overlapping alerts count once;
- availability A = (P − U − M) ÷ (P − M) × 100, and None when P − M is zero
  (nothing to measure, e.g. maintenance covering the whole period).

An alert is a firing interval ``(starts_at, ends_at)``; ``ends_at`` None means
still firing. An alert that began before ``start`` counts from ``start`` and
one still firing (or ending after ``until``) counts up to ``until``, so an
outage across a period boundary is split at it; alerts starting at or after
``until`` do not count.

A group of services sums seconds, never averages percentages:
A = (Σ(P − Mₛ) − ΣUₛ) ÷ Σ(P − Mₛ) × 100. Its error budget is for the whole
period, ``(1 − target/100) × Σ(P − Mₛ)`` with P and Mₛ over all of
``[start, end)``, and spending it is the group's outage time so far.

Maintenance windows come from the configuration, one-off (``start``/``end``,
aware instants) or recurring (``rrule`` and ``duration``). A recurring rule
is one RFC 5545 RRULE line read in the contract's local wall time:
``FREQ=WEEKLY;BYDAY=SU;BYHOUR=2`` means 02:00 on Sundays in the contract's
time zone, and each window lasts ``duration`` of elapsed time from there.
The rule has no DTSTART of its own: every series is laid out from a local
midnight, so a time of day not given by BYHOUR, BYMINUTE or BYSECOND is
00:00:00. Since nothing else may depend on where a series starts, a rule
must not carry DTSTART or COUNT (end a series with UNTIL instead), its
INTERVAL is 1, and a WEEKLY, MONTHLY or YEARLY rule names its days with
BYDAY, BYMONTHDAY, BYYEARDAY or BYWEEKNO. UNTIL is a local time such as
``20261231T235959`` or a UTC time such as ``20261231T155959Z``, and a window
starting after it does not occur. Local times follow PEP 495 (``fold=0``):
a time in the spring-forward gap is read with the offset before the change
(02:30 on that night in Europe/Berlin is 03:30 summer time), and an ambiguous
time in the repeated autumn hour is its first occurrence.

All sums are exact integer microseconds; figures are reported in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from math import floor
from typing import Annotated
from zoneinfo import ZoneInfo

from dateutil import rrule as rfc5545
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from slawatch_common.durations import Duration

Interval = tuple[datetime, datetime]
"""``[start, end)`` of two aware instants."""

Alert = tuple[datetime, datetime | None]
"""A firing alert: ``(starts_at, ends_at)``, ``ends_at`` None while still firing."""

MAX_OCCURRENCES_PER_MONTH = 10_000
"""A recurring maintenance rule may start at most this many windows in a month."""

DEFAULT_THRESHOLDS = (50, 75, 90)
"""Percentages of the error budget that raise a warning stage."""

_US = timedelta(microseconds=1)
_DAY = timedelta(days=1)
_US_PER_S = 1_000_000


# --- interval arithmetic ---------------------------------------------------------------
# Every result is normalised: sorted, disjoint, not touching, none empty.


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals``: overlapping or touching ones joined, empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted((start, end) for start, end in intervals if end > start):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The union of ``intervals`` cut to ``[start, end)``."""
    return merge((max(a, start), min(b, end)) for a, b in intervals)


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals`` without the time covered by any of ``holes``."""
    cuts = merge(holes)
    out: list[Interval] = []
    index = 0
    for start, end in merge(intervals):
        while index < len(cuts) and cuts[index][1] <= start:
            index += 1
        at = start
        for cut_start, cut_end in cuts[index:]:
            if cut_start >= end:
                break
            if cut_start > at:
                out.append((at, cut_start))
            at = max(at, cut_end)
        if at < end:
            out.append((at, end))
    return out


def total_seconds(intervals: Iterable[Interval]) -> float:
    """The length of the union of ``intervals``, in seconds."""
    return _total_us(intervals) / _US_PER_S


def _total_us(intervals: Iterable[Interval]) -> int:
    return sum((end - start) // _US for start, end in merge(intervals))


# --- maintenance windows ---------------------------------------------------------------

_REACH = {
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(days=7),
    "MONTHLY": timedelta(days=31),
    "YEARLY": timedelta(days=366),
}
"""The longest stretch of each frequency; a window may not last longer."""

_DATE_PARTS = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
_NONZERO_PARTS = ("BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYSETPOS")
_UNTIL = re.compile(r"(\d{8}T\d{6})(Z?)")
_CYCLE = datetime(9600, 1, 1)
"""The last whole 400-year Gregorian cycle: a rule with no window in it has none ever."""


@dataclass(frozen=True, slots=True)
class _Rule:
    text: str
    """The rule as given to dateutil, without UNTIL."""
    until: datetime | None
    """Naive: a local time in the contract's zone; aware: a UTC instant."""
    reach: timedelta

    def series(self, anchor: datetime) -> rfc5545.rrule:
        series = rfc5545.rrulestr(self.text, dtstart=anchor)
        assert isinstance(series, rfc5545.rrule)  # one RRULE line, never a set
        return series


@lru_cache(maxsize=256)
def _parse_rule(text: str) -> _Rule:
    """Check a maintenance RRULE (see the module docstring); ValueError says what is wrong."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if "DTSTART" in body.upper():
        raise ValueError(
            "rrule: no DTSTART; windows are laid out in the contract's local time from "
            "midnight, with the time of day from BYHOUR/BYMINUTE/BYSECOND"
        )
    if ":" in body or "\n" in body:
        raise ValueError("rrule: one RRULE line like 'FREQ=WEEKLY;BYDAY=SU;BYHOUR=2'")
    parts: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in body.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        if not sep or not key:
            raise ValueError(f"rrule: {item!r} is not NAME=VALUE")
        if key in parts:
            raise ValueError(f"rrule: {key} is given twice")
        parts[key] = value.strip()
    freq = parts.get("FREQ", "").upper()
    if freq in ("SECONDLY", "MINUTELY"):
        raise ValueError(f"rrule: FREQ={freq} is finer than HOURLY")
    if freq not in _REACH:
        raise ValueError("rrule: FREQ is HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY")
    if "COUNT" in parts:
        raise ValueError("rrule: no COUNT (a window series has no start to count from); use UNTIL")
    if parts.get("INTERVAL", "1") != "1":
        raise ValueError("rrule: INTERVAL must be 1 (a window series has no start to count from)")
    if "BYEASTER" in parts:
        raise ValueError("rrule: BYEASTER is not part of RFC 5545")
    for key in _NONZERO_PARTS:
        if key in parts and any(_is_zero(value) for value in parts[key].split(",")):
            raise ValueError(f"rrule: {key} values are never 0")
    if freq != "HOURLY" and freq != "DAILY" and not any(key in parts for key in _DATE_PARTS):
        raise ValueError(
            f"rrule: FREQ={freq} needs BYDAY, BYMONTHDAY, BYYEARDAY or BYWEEKNO to say "
            "which days (a window series has no start date to take them from)"
        )
    until = _until(parts.pop("UNTIL")) if "UNTIL" in parts else None
    rule = _Rule(";".join(f"{key}={value}" for key, value in parts.items()), until, _REACH[freq])
    try:
        series = rule.series(_CYCLE)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"rrule: {exc}") from None
    per_day = 1
    for key, default in (
        ("BYHOUR", 24 if freq == "HOURLY" else 1),
        ("BYMINUTE", 1),
        ("BYSECOND", 1),
    ):
        per_day *= len(parts[key].split(",")) if key in parts else default
    if 31 * per_day > MAX_OCCURRENCES_PER_MONTH:
        raise ValueError(
            f"rrule: up to {31 * per_day} windows in a month; "
            f"at most {MAX_OCCURRENCES_PER_MONTH:,} are allowed"
        )
    if series.after(_CYCLE, inc=True) is None:
        raise ValueError("rrule: the rule never matches a date")
    return rule


def _is_zero(value: str) -> bool:
    try:
        return int(value) == 0
    except ValueError:
        return False  # dateutil names what is wrong with it


def _until(value: str) -> datetime:
    match = _UNTIL.fullmatch(value.upper())
    try:
        if not match:
            raise ValueError
        until = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S")
    except ValueError:
        raise ValueError(
            f"rrule: UNTIL={value} is neither a local time like 20261231T235959 "
            "nor a UTC time like 20261231T155959Z"
        ) from None
    return until.replace(tzinfo=UTC) if match.group(2) else until


class MaintenanceWindow(BaseModel):
    """Planned downtime of some services: one-off (``start``, ``end``) or recurring
    (``rrule``, ``duration``), in the contract's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    rrule: str | None = Field(
        default=None,
        description="One RRULE line in the contract's local time, e.g. "
        "'FREQ=WEEKLY;BYDAY=SU;BYHOUR=2'; no DTSTART or COUNT, INTERVAL 1.",
    )
    duration: Duration | None = Field(
        default=None, description="How long each recurring window lasts, e.g. '2h'."
    )

    @model_validator(mode="after")
    def _usable(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.rrule is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("a maintenance window has either start and end, or rrule and duration")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off maintenance window needs both start and end")
            if self.end <= self.start:
                raise ValueError("a maintenance window must end after it starts")
            return self
        if self.rrule is None or self.duration is None:
            raise ValueError("a recurring maintenance window needs both rrule and duration")
        if self.duration <= 0:
            raise ValueError("a maintenance window's duration must be positive")
        rule = _parse_rule(self.rrule)
        if timedelta(seconds=self.duration) > rule.reach:
            raise ValueError(
                f"duration {self.duration}s is longer than the rule's frequency ({rule.reach})"
            )
        return self

    def intervals(self, start: datetime, end: datetime, zone: ZoneInfo) -> list[Interval]:
        """This window's time inside ``[start, end)``, merged, as UTC instants."""
        start, end = _utc(start, "start"), _utc(end, "end")
        if self.start is not None and self.end is not None:
            return clip([(self.start.astimezone(UTC), self.end.astimezone(UTC))], start, end)
        assert self.rrule is not None  # checked at load
        assert self.duration is not None
        rule = _parse_rule(self.rrule)
        length = timedelta(seconds=self.duration)
        # Lay the series out from a local midnight early enough to catch a window that
        # began before ``start``; a day of margin either side absorbs offset changes.
        first = (start - length).astimezone(zone).replace(tzinfo=None)
        anchor = datetime.combine(first.date() - _DAY, time())
        last = end.astimezone(zone).replace(tzinfo=None) + _DAY
        until = rule.until
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=zone)
        found: list[Interval] = []
        for local in rule.series(anchor).between(anchor, last, inc=True):
            begin = local.replace(tzinfo=zone).astimezone(UTC)
            if until is None or begin <= until:
                found.append((begin, begin + length))
        return clip(found, start, end)


def windows(
    maintenance: Sequence[MaintenanceWindow],
    service: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> list[Interval]:
    """The union of ``service``'s maintenance windows inside ``[start, end)``, as UTC
    instants; recurring rules are laid out in ``zone``, the contract's time zone."""
    found: list[Interval] = []
    for window in maintenance:
        if service in window.services:
            found.extend(window.intervals(start, end, zone))
    return merge(found)


# --- figures ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    """Availability of one service over ``[start, until)``.

    ``outages`` is what ``outage_seconds`` is made of (merged, clipped, without
    maintenance) and ``planned`` what ``planned_seconds`` is made of, all as UTC
    instants. ``down`` says whether an outage was under way at ``as_of`` (inside
    the period and outside maintenance).
    """

    service: str
    start: datetime
    until: datetime
    period_seconds: float
    planned_seconds: float
    outage_seconds: float
    availability: float | None
    outages: list[Interval]
    planned: list[Interval]
    down: bool

    @property
    def measured_seconds(self) -> float:
        """P − M: the time availability is measured over."""
        return self.period_seconds - self.planned_seconds

    @property
    def _period_us(self) -> int:
        return (self.until - self.start) // _US


def service_figures(
    service: str,
    start: datetime,
    end: datetime,
    as_of: datetime,
    alerts: Iterable[Alert],
    maintenance_windows: Sequence[Interval],
) -> ServiceFigures:
    """The figures of ``service`` for the period ``[start, end)`` as known at ``as_of``."""
    start, end, as_of = _utc(start, "start"), _utc(end, "end"), _utc(as_of, "as_of")
    if end <= start:
        raise ValueError(f"a period must end after it starts ({start} to {end})")
    until = max(start, min(end, as_of))
    maintenance = [
        (_utc(a, "maintenance start"), _utc(b, "maintenance end")) for a, b in maintenance_windows
    ]
    planned = clip(maintenance, start, until)
    firing: list[Interval] = []
    down = False
    for began_at, ended_at in alerts:
        began = _utc(began_at, "alert start")
        ended = None if ended_at is None else _utc(ended_at, "alert end")
        if began <= as_of and (ended is None or ended > as_of):
            down = True
        if began < until:
            firing.append((max(began, start), until if ended is None else min(ended, until)))
    outages = subtract(firing, planned)
    down = down and start <= as_of < end and not any(a <= as_of < b for a, b in maintenance)
    period_us, planned_us, outage_us = (
        (until - start) // _US,
        _total_us(planned),
        _total_us(outages),
    )
    measured = period_us - planned_us
    return ServiceFigures(
        service=service,
        start=start,
        until=until,
        period_seconds=period_us / _US_PER_S,
        planned_seconds=planned_us / _US_PER_S,
        outage_seconds=outage_us / _US_PER_S,
        availability=100 * (measured - outage_us) / measured if measured else None,
        outages=outages,
        planned=planned,
        down=down,
    )


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """Availability and error budget of a group of services against its target.

    ``met`` compares exactly (the availability float is only its rounding);
    ``budget_us`` and ``spent_us`` are exact microseconds of the whole period's
    error budget and of the outage time spent from it so far.
    """

    group: str
    target: float
    availability: float | None
    met: bool | None
    services: list[ServiceFigures]
    start: datetime
    end: datetime
    as_of: datetime
    budget_us: int
    spent_us: int
    measured_us: int = 0
    """Σ(P − Mₛ) up to ``as_of``, in microseconds: the denominator of ``availability``."""

    @property
    def exact_availability(self) -> Fraction | None:
        """The availability in percent as an exact fraction (None: nothing to measure)."""
        if not self.measured_us:
            return None
        return Fraction(100 * (self.measured_us - self.spent_us), self.measured_us)

    @property
    def budget_seconds(self) -> float:
        """(1 − target/100) × Σ(P − Mₛ) over the whole period, in seconds."""
        return self.budget_us / _US_PER_S

    @property
    def spent_seconds(self) -> float:
        """ΣUₛ so far, in seconds."""
        return self.spent_us / _US_PER_S

    @property
    def budget_remaining_ratio(self) -> float:
        """1 − spent/budget: 1.0 untouched, 0.0 used up exactly, negative when overspent.

        With no budget at all (a 100 % target, or nothing to measure) it is 1.0
        while nothing is spent and −1.0 once anything is.
        """
        if self.budget_us == 0:
            return 1.0 if self.spent_us == 0 else -1.0
        return 1 - self.spent_us / self.budget_us

    def stages_crossed(self, thresholds: Sequence[int] = DEFAULT_THRESHOLDS) -> list[str]:
        """``warning:<t>`` for each threshold percentage of the budget spent, then
        ``breach`` once more than the budget is spent (the target can no longer be
        met; spending exactly the budget still meets it). Nothing is crossed while
        nothing is spent."""
        return [stage for stage, need in self._stages(thresholds) if self.spent_us >= need]

    def next_crossing(
        self, now: datetime | None = None, thresholds: Sequence[int] = DEFAULT_THRESHOLDS
    ) -> datetime | None:
        """The earliest instant at which the next stage not yet crossed could be
        reached, not before ``now`` (default: ``as_of``); None when no outage is
        under way at ``as_of``, no stage is left, or none can be reached by the end
        of the period.

        It is a lower bound: with k services down at ``as_of``, spending grows by at
        most k seconds per second until something changes. The caller evaluates the
        group again at that instant, and whenever an alert or a maintenance window
        starts or ends.
        """
        down = sum(f.down for f in self.services)
        need = next((n for _, n in self._stages(thresholds) if self.spent_us < n), None)
        if not down or need is None:
            return None
        at = self.as_of + timedelta(microseconds=-(-(need - self.spent_us) // down))
        if now is not None:
            at = max(at, _utc(now, "now"))
        return at if at <= self.end else None

    def _stages(self, thresholds: Sequence[int]) -> list[tuple[str, int]]:
        """Each stage with the microseconds spent at which it is crossed, in order."""
        if any(isinstance(t, bool) or not 0 < t < 100 for t in thresholds):
            raise ValueError(f"budget thresholds are percentages from 1 to 99: {thresholds}")
        stages = [
            (f"warning:{t}", max(1, -(-t * self.budget_us // 100))) for t in sorted(set(thresholds))
        ]
        stages.append(("breach", self.budget_us + 1))
        return stages


def group_figures(
    group: str,
    target: float,
    services: Sequence[str],
    start: datetime,
    end: datetime,
    as_of: datetime,
    alerts: Mapping[str, Iterable[Alert]],
    maintenance: Sequence[MaintenanceWindow],
    zone: ZoneInfo,
) -> GroupFigures:
    """The figures of ``services`` together for ``[start, end)`` as known at ``as_of``.

    ``alerts`` are by service (a service missing from them had none; other keys
    are ignored); ``maintenance`` is the contract's, laid out in ``zone``.
    """
    if not 0 <= target <= 100:
        raise ValueError(f"target {target} is not a percentage between 0 and 100")
    if len(set(services)) != len(services):
        raise ValueError(f"group {group}: a service is listed twice")
    start, end, as_of = _utc(start, "start"), _utc(end, "end"), _utc(as_of, "as_of")
    figures: list[ServiceFigures] = []
    whole = 0
    for name in services:
        planned = windows(maintenance, name, start, end, zone)
        figures.append(service_figures(name, start, end, as_of, alerts.get(name, ()), planned))
        whole += (end - start) // _US - _total_us(planned)
    measured = sum(f._period_us - _total_us(f.planned) for f in figures)
    spent = sum(_total_us(f.outages) for f in figures)
    share = Fraction(str(target))
    return GroupFigures(
        group=group,
        target=target,
        availability=100 * (measured - spent) / measured if measured else None,
        met=(measured - spent) * 100 >= share * measured if measured else None,
        services=figures,
        start=start,
        end=end,
        as_of=as_of,
        budget_us=floor((100 - share) * whole / 100),
        spent_us=spent,
        measured_us=measured,
    )


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {moment}; pass an aware instant")
    return moment.astimezone(UTC)
