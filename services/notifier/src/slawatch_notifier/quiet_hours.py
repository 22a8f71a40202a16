"""Quiet hours: when a person is not woken for a warning. Pure; ``now`` comes in.

    notifier:
      quiet_hours: {from: "22:00", to: "07:00", time_zone: Asia/Shanghai}   # everyone's default
      people:
        li.wei: {..., quiet_hours: {from: "23:00", to: "08:00", time_zone: Europe/Berlin}}

``from``/``to`` are local wall times in ``time_zone``: ``from`` is quiet,
``to`` is not. ``from`` later than ``to`` is a night that crosses midnight
(22:00 → 07:00); earlier, a span within one day (12:00 → 13:30).

A *warning* due to a person inside their quiet hours is deferred to the end
of them (its ``next_attempt_at``); a breach never waits. Robots posting to a
group's chat (recipient ``group:<id>``) are not a person and never wait. An
acknowledgement or a stop of the escalation, or its breach, cancels a deferred
warning that has not gone out yet (``store.cancel_pending``): once the clock
breached, the breach notice (which never waits) says more than the warning.

Daylight saving: the end is the local ``to`` on the right day; a ``to`` that
falls in a gap (the clock jumps over it) ends at the gap's end, one that
occurs twice ends at its first occurrence (``oncall.local_instant``). If that
first occurrence has already passed (``now`` is inside the repeated hour),
the person is treated as out of quiet hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slawatch_notifier.oncall import LocalTime, ZoneName, local_instant, wall_time

GROUP_RECIPIENT = "group:"
"""Recipients starting with this are a group's robot, not a person."""


class QuietHours(BaseModel):
    """``{from: "22:00", to: "07:00", time_zone: Asia/Shanghai}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    starts: LocalTime = Field(alias="from")
    ends: LocalTime = Field(alias="to")
    time_zone: ZoneName

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.starts == self.ends:
            raise ValueError("'from' and 'to' are equal; quiet hours need a span")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The instant the quiet period around ``now`` ends, or None if ``now`` is not quiet."""
    zone = quiet.zone
    wall = wall_time(now, zone)
    moment, day = wall.time(), wall.date()
    if quiet.starts < quiet.ends:  # within one day
        if not quiet.starts <= moment < quiet.ends:
            return None
    elif moment >= quiet.starts:  # the evening part of a night: ends tomorrow
        day += timedelta(days=1)
    elif moment >= quiet.ends:  # between the morning's end and the evening's start
        return None
    end = local_instant(datetime.combine(day, quiet.ends), zone)
    return end if end > now else None


def deferral(stage: str, quiet: QuietHours | None, now: datetime) -> datetime | None:
    """When a notification of ``stage`` planned at ``now`` may go out; None means at once.

    Only warnings wait for the end of quiet hours; a breach goes out at once.
    """
    if quiet is None or not stage.startswith("warning"):
        return None
    return quiet_until(quiet, now)


def is_person(recipient: str) -> bool:
    """False for a group's robot (``group:<id>``), which has no quiet hours."""
    return not recipient.startswith(GROUP_RECIPIENT)
