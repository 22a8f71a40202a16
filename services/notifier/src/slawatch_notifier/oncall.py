"""On-call schedules: who holds the pager at a given instant, as a pure function.

A schedule lives in the notifier's configuration under ``notifier.schedules``:

    schedules:
      l1:
        time_zone: Asia/Shanghai
        rotations:
          - people: [alice, bob, carol]           # rotation 0: around the clock
            shift: weekly                         # daily, weekly, "14d", "12h"
            handoff: {day: monday, at: "09:00"}
            start: 2024-01-01
          - people: [dave, erin]                  # rotation 1: business hours, above 0
            shift: daily
            handoff: "09:00"
            start: 2024-01-01
            active: {days: [mon, tue, wed, thu, fri], hours: ["09:00", "18:00"]}
        overrides:
          - {person: frank, start: "2024-02-09T18:00:00+08:00", end: "2024-02-18T09:00:00+08:00"}

``on_call(schedule, at)`` answers with the person, the bounds of their current
stretch and where the answer came from. The rules it keeps:

- **Layers.** Overrides are above rotations, a later-listed override above an
  earlier one (append a correction, it wins), and a later rotation above an
  earlier one (GoAlert's and Grafana OnCall's layers). At an instant the
  highest *active* layer answers: an override is active in ``[start, end)``; a
  rotation from its first handoff on, and only inside its ``active`` window if
  it has one. Where no layer is active nobody is on call (``None``).
- **Shifts** are counted on the schedule's local wall clock: ``weekly`` is 7
  local days, ``daily`` 1, ``Nd`` N local days and ``Nh`` N wall-clock hours.
  A Monday 09:00 handoff therefore stays at 09:00 across a DST change, and
  that week lasts 167 or 169 hours; a ``12h`` rotation handing off at 09:00
  and 21:00 has an 11- or 13-hour night shift on the night of the change.
- **Local times** that do not exist (the hour skipped when clocks go forward)
  mean the first instant after the gap; an ambiguous local time (the hour
  repeated when clocks go back) means its first occurrence, as in the SLA
  engine's calendars. If two handoffs fall on the same instant (an hourly
  rotation inside the gap) that shift is empty and its person loses the turn.
- **Start.** A rotation begins at its first handoff at or after ``start`` (a
  date means local midnight of that date), and the first person listed holds
  that first shift. Before it the rotation is inactive: it does not run
  backwards, so the layers below (or nobody) apply. To hand the first person a
  shift already under way, give the earlier handoff as ``start``.
- **Active windows** restrict a rotation to local weekdays and hours
  ``[from, to)``. Hours whose end is at or before their start run overnight
  and belong to the day they start on (``["18:00", "09:00"]`` on ``fri`` is
  Friday night until Saturday 09:00); ``["00:00", "00:00"]`` is the whole day.
  The shift grid ignores the window: a daily rotation handing off at 09:00 and
  active 09:00–18:00 gives each person one business day, and the weekend's
  days still count as turns (use ``shift: weekly`` for a business-hours week).
- **since/until** bound the stretch during which the answer (person and
  source) holds without interruption: the current shift or override, cut by
  the rotation's window and by higher layers. ``until`` is the earliest of the
  shift end, the override end, the window's close and the next start of a
  higher override or rotation; ``since`` is the mirror image. At ``until``
  either the person or the source changes, or the next shift begins.

Everything here is pure: no clock is read, and ``at`` is always passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from slawatch_common.events import Identifier

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SHORT = {name: name[:3] for name in _FULL_NAMES}
SHIFT_PATTERN = r"^(weekly|daily|[1-9][0-9]{0,3}[dh])$"

_ONE_DAY = timedelta(days=1)
_ONE_WEEK = timedelta(days=7)
_SEARCH_DAYS = 9
"""How far window searches look: a window with at least one weekday recurs within a week."""


def _weekday(value: Any) -> Any:
    """``Monday``, ``monday`` and ``mon`` all mean ``mon``."""
    if isinstance(value, str):
        name = value.strip().lower()
        return _SHORT.get(name, name)
    return value


def _quoted_time(value: Any) -> Any:
    # PyYAML reads an unquoted 9:00 as the base-60 integer 540, and pydantic
    # would take that as 00:09:00; refuse numbers instead of guessing.
    if isinstance(value, int | float):
        raise ValueError(
            'write a local time as a quoted string like "09:00" '
            "(unquoted, YAML reads 9:00 as the number 540)"
        )
    return value


def _without_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time has no offset: the schedule's time_zone applies")
    return value


def _start_kind(value: Any) -> str:
    if isinstance(value, datetime):
        return "instant"
    if isinstance(value, date):
        return "date"
    return "date" if isinstance(value, str) and len(value.strip()) <= 10 else "instant"


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float):
        raise ValueError(
            "a date like 2024-01-01 or an instant with an offset like 2024-01-01T09:00:00+08:00"
        )
    return value


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Asia/Shanghai)") from exc
    return name


ZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name the system knows (``Asia/Shanghai``)."""
Weekday = Annotated[Day, BeforeValidator(_weekday)]
LocalTime = Annotated[time, BeforeValidator(_quoted_time), AfterValidator(_without_offset)]
Start = Annotated[
    Annotated[AwareDatetime, Tag("instant")] | Annotated[date, Tag("date")],
    Discriminator(_start_kind),
    BeforeValidator(_not_a_number),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Handoff(_Model):
    """When shifts change: a local time, and the weekday for whole-week shifts.

    A bare time (``handoff: "09:00"``) is short for ``{at: "09:00"}``.
    """

    day: Weekday | None = None
    at: LocalTime

    @model_validator(mode="before")
    @classmethod
    def _bare_time(cls, data: Any) -> Any:
        return {"at": data} if isinstance(data, str | time | int | float) else data


class Window(_Model):
    """Local weekdays and hours ``[from, to)`` in which a rotation applies."""

    days: Annotated[tuple[Weekday, ...], Field(min_length=1)] = WEEKDAYS
    hours: tuple[LocalTime, LocalTime] = (time(0), time(0))


class Rotation(_Model):
    """People taking turns, one shift each, in the order listed."""

    people: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    shift: Annotated[str, Field(pattern=SHIFT_PATTERN)]
    handoff: Handoff
    start: Start
    active: Window | None = None

    @field_validator("handoff")
    @classmethod
    def _day_fits_shift(cls, handoff: Handoff, info: ValidationInfo) -> Handoff:
        shift = info.data.get("shift")
        if shift is None:  # the shift itself is invalid and already reported
            return handoff
        if shift == "weekly" and handoff.day is None:
            raise ValueError('a weekly shift needs the handoff day: {day: monday, at: "09:00"}')
        if handoff.day is not None and shift_length(shift) % _ONE_WEEK:
            raise ValueError(f"a {shift} shift does not keep a weekday: drop day")
        return handoff

    @property
    def length(self) -> timedelta:
        """The shift length on the local wall clock."""
        return shift_length(self.shift)


class Override(_Model):
    """``person`` is on call in ``[start, end)``, above every rotation."""

    person: Identifier
    start: AwareDatetime
    end: AwareDatetime

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after start ({start.isoformat()})")
        return end


class Schedule(_Model):
    """A time zone, rotation layers (later ones on top) and overrides (on top of all)."""

    time_zone: ZoneName
    rotations: tuple[Rotation, ...] = ()
    overrides: tuple[Override, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)  # ZoneInfo caches instances by key


@dataclass(frozen=True, slots=True)
class OnCall:
    """Who is on call, in ``[since, until)`` (UTC), and from which layer.

    ``source`` is ``"override"`` or ``"rotation:<index>"`` (index in ``rotations``).
    """

    person: str
    since: datetime
    until: datetime
    source: str


def shift_length(shift: str) -> timedelta:
    """``weekly``, ``daily``, ``<N>d`` or ``<N>h`` as a wall-clock length."""
    if shift == "weekly":
        return _ONE_WEEK
    if shift == "daily":
        return _ONE_DAY
    count = int(shift[:-1])
    return timedelta(days=count) if shift.endswith("d") else timedelta(hours=count)


def on_call(schedule: Schedule, at: datetime) -> OnCall | None:
    """Who is on call at ``at`` under ``schedule``, or ``None`` when nobody is.

    ``at`` must be timezone-aware (``ValueError`` otherwise); the returned
    bounds are in UTC. Pure and deterministic; see the module docstring for
    the rules.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got {at.isoformat()}")
    at = at.astimezone(UTC)
    layers = _layers(schedule)
    for position, layer in enumerate(layers):
        held = layer.holder(at)
        if held is None:
            continue
        person, since, until = held
        above = layers[:position]
        ends = [end for higher in above if (end := higher.last_end(at)) is not None]
        starts = [start for higher in above if (start := higher.next_start(at)) is not None]
        return OnCall(person, max([since, *ends]), min([until, *starts]), layer.source)
    return None


def schedule_errors(
    schedules: Mapping[str, Schedule], people: AbstractSet[str], path_prefix: str
) -> list[str]:
    """Rotation members and override persons that are not in ``people``, by dotted path."""
    known = ", ".join(sorted(people)) or "none"
    problems: list[str] = []
    for name, schedule in schedules.items():
        path = f"{path_prefix}.{name}" if path_prefix else name
        for index, rotation in enumerate(schedule.rotations):
            problems += [
                f"{path}.rotations.{index}.people.{position}: "
                f"unknown person {person!r} (known: {known})"
                for position, person in enumerate(rotation.people)
                if person not in people
            ]
        problems += [
            f"{path}.overrides.{index}.person: unknown person {override.person!r} (known: {known})"
            for index, override in enumerate(schedule.overrides)
            if override.person not in people
        ]
    return problems


# --- local wall time ---------------------------------------------------------


def wall_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall time of ``moment`` in ``zone``."""
    return moment.astimezone(zone).replace(tzinfo=None)


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of local ``wall``: in a DST gap the gap's end, if ambiguous the first."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall_time(first, zone) == wall:
        return first
    # In a gap, fold=0 applies the offset from before the change (the later
    # instant) and fold=1 the one after it; the change lies in between.
    return _change_between(wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first, zone)


def _change_between(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The instant in ``(before, after]`` at which ``zone``'s offset changes."""
    offset = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:  # offsets change on whole seconds
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --- layers ------------------------------------------------------------------

Held = tuple[str, datetime, datetime]
"""A person and the bounds of their stretch within one layer."""


class _Layer(Protocol):
    @property
    def source(self) -> str: ...

    def holder(self, at: datetime) -> Held | None:
        """Who this layer puts on call at ``at``, if the layer is active then."""
        ...

    def last_end(self, at: datetime) -> datetime | None:
        """When the layer last stopped being active, at or before ``at`` (inactive at ``at``)."""
        ...

    def next_start(self, at: datetime) -> datetime | None:
        """When the layer next becomes active after ``at`` (inactive at ``at``)."""
        ...


def _layers(schedule: Schedule) -> list[_Layer]:
    """Highest precedence first: overrides last-listed first, then rotations likewise."""
    zone = schedule.zone
    overrides: list[_Layer] = [_OverrideLayer(o) for o in reversed(schedule.overrides)]
    rotations: list[_Layer] = [
        _RotationLayer.of(rotation, index, zone)
        for index, rotation in reversed(list(enumerate(schedule.rotations)))
    ]
    return overrides + rotations


@dataclass(frozen=True, slots=True)
class _OverrideLayer:
    override: Override
    source: str = "override"

    def holder(self, at: datetime) -> Held | None:
        start, end = self.override.start.astimezone(UTC), self.override.end.astimezone(UTC)
        return (self.override.person, start, end) if start <= at < end else None

    def last_end(self, at: datetime) -> datetime | None:
        return self.override.end.astimezone(UTC) if self.override.end <= at else None

    def next_start(self, at: datetime) -> datetime | None:
        return self.override.start.astimezone(UTC) if self.override.start > at else None


@dataclass(frozen=True, slots=True)
class _Grid:
    """Handoff ``k`` is at local wall time ``first + k * step`` (``k >= 0``)."""

    zone: ZoneInfo
    first: datetime
    step: timedelta

    @classmethod
    def of(cls, rotation: Rotation, zone: ZoneInfo) -> _Grid:
        """The grid whose first handoff is the first one at or after the rotation's start."""
        step = rotation.length
        start = rotation.start
        if not isinstance(start, datetime):
            start = local_instant(datetime.combine(start, time()), zone)
        local = wall_time(start, zone)
        first = datetime.combine(local.date(), rotation.handoff.at)
        if rotation.handoff.day is not None:  # back to that weekday; step is whole weeks
            behind = (first.weekday() - WEEKDAYS.index(rotation.handoff.day)) % 7
            first -= timedelta(days=behind)
        if first < local:
            first += (local - first) // step * step
        while local_instant(first, zone) < start:
            first += step
        while local_instant(first - step, zone) >= start:
            first -= step
        return cls(zone, first, step)

    def handoff(self, index: int) -> datetime:
        return local_instant(self.first + index * self.step, self.zone)

    def index(self, at: datetime) -> int:
        """The shift ``k`` with ``handoff(k) <= at < handoff(k + 1)``; ``at`` is not before it."""
        index = max(0, (wall_time(at, self.zone) - self.first) // self.step)
        while index > 0 and self.handoff(index) > at:
            index -= 1
        while self.handoff(index + 1) <= at:
            index += 1
        return index


@dataclass(frozen=True, slots=True)
class _Hours:
    """An active window as instants; one span per listed local day."""

    zone: ZoneInfo
    days: frozenset[int]
    opens: time
    closes: time

    @classmethod
    def of(cls, window: Window | None, zone: ZoneInfo) -> _Hours | None:
        """``None`` for no window or one that is always open."""
        if window is None:
            return None
        opens, closes = window.hours
        days = frozenset(WEEKDAYS.index(day) for day in window.days)
        return None if len(days) == 7 and opens == closes else cls(zone, days, opens, closes)

    def on(self, day: date) -> tuple[datetime, datetime] | None:
        """The span that opens on local ``day``, if it is a listed day and not empty."""
        if day.weekday() not in self.days:
            return None
        close_day = day if self.closes > self.opens else day + _ONE_DAY
        opens = local_instant(datetime.combine(day, self.opens), self.zone)
        closes = local_instant(datetime.combine(close_day, self.closes), self.zone)
        return (opens, closes) if opens < closes else None

    def around(self, at: datetime) -> tuple[date, datetime, datetime] | None:
        """The day whose span contains ``at``, and that span."""
        today = wall_time(at, self.zone).date()
        for day in (today - _ONE_DAY, today):
            span = self.on(day)
            if span is not None and span[0] <= at < span[1]:
                return day, *span
        return None

    def run(self, at: datetime, low: datetime, high: datetime) -> tuple[datetime, datetime] | None:
        """The spans touching end to end around ``at``, clipped to ``[low, high)``."""
        found = self.around(at)
        if found is None:
            return None
        day, opens, closes = found
        later = day
        while closes < high and (span := self.on(later + _ONE_DAY)) and span[0] == closes:
            later, closes = later + _ONE_DAY, span[1]
        earlier = day
        while opens > low and (span := self.on(earlier - _ONE_DAY)) and span[1] == opens:
            earlier, opens = earlier - _ONE_DAY, span[0]
        return max(opens, low), min(closes, high)

    def next_open(self, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` inside a span."""
        if self.around(at) is not None:
            return at
        today = wall_time(at, self.zone).date()
        for offset in range(-1, _SEARCH_DAYS):
            span = self.on(today + offset * _ONE_DAY)
            if span is not None and span[0] >= at:
                return span[0]
        return None

    def last_close(self, at: datetime) -> datetime | None:
        """The latest end of a span at or before ``at``."""
        today = wall_time(at, self.zone).date()
        for offset in range(_SEARCH_DAYS):
            span = self.on(today - offset * _ONE_DAY)
            if span is not None and span[1] <= at:
                return span[1]
        return None


@dataclass(frozen=True, slots=True)
class _RotationLayer:
    people: Sequence[str]
    grid: _Grid
    begins: datetime
    hours: _Hours | None
    source: str

    @classmethod
    def of(cls, rotation: Rotation, index: int, zone: ZoneInfo) -> _RotationLayer:
        grid = _Grid.of(rotation, zone)
        hours = _Hours.of(rotation.active, zone)
        return cls(rotation.people, grid, grid.handoff(0), hours, f"rotation:{index}")

    def holder(self, at: datetime) -> Held | None:
        if at < self.begins:
            return None
        index = self.grid.index(at)
        since, until = self.grid.handoff(index), self.grid.handoff(index + 1)
        if self.hours is not None:
            run = self.hours.run(at, since, until)
            if run is None:
                return None
            since, until = run
        return self.people[index % len(self.people)], since, until

    def last_end(self, at: datetime) -> datetime | None:
        if self.hours is None:  # inactive only before it begins: never active before
            return None
        close = self.hours.last_close(at)
        return close if close is not None and close > self.begins else None

    def next_start(self, at: datetime) -> datetime | None:
        if self.hours is None:
            return self.begins if self.begins > at else None
        return self.hours.next_open(max(at, self.begins))
