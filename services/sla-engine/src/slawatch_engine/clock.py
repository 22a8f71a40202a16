"""The SLA clock: a pure state machine over plain data.

A clock measures one metric (response or resolution) of one ticket in the
business time of its calendar. It runs, pauses (while the ticket waits on the
customer), resumes and stops; it passes *stages* — each warning threshold in
percent of its target, then the breach at 100 % — and each stage fires once.

Nothing here reads the time or does I/O: every transition takes the instant it
happens at (the event's ``occurred_at``, or ``now`` for firing) and returns a
new ``Clock``. A transition that does not apply returns the clock unchanged,
so applying the same event twice changes nothing twice.

Semantics (documented in docs/ARCHITECTURE.md):
- a transition dated before the current running segment began is applied at
  the segment's start (a late event never makes business time negative);
- stopping after the breach leaves the clock breached (a late stop);
- reopening continues the clock without counting the time it was stopped, and
  stages already fired are not fired again;
- a target change keeps the business time used and the stages already fired;
  any stage that the new target makes overdue fires at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from slawatch_common.events import Metric
from slawatch_engine.calendar import Calendar

BREACH_PERCENT = 100


class State(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Clock:
    id: str
    ticket_key: str
    partition: int
    metric: Metric
    policy: str
    escalation: str | None
    calendar: str
    target_seconds: int
    thresholds: tuple[int, ...]
    """Warning percentages, ascending; the breach (100 %) follows them as the last stage."""
    state: State
    started_at: datetime
    used_seconds: float
    """Business seconds used before ``running_since`` (all of them unless running)."""
    running_since: datetime | None
    next_stage: int
    """Index into ``stages``: every stage before it has fired."""
    breached: bool = False
    stopped_at: datetime | None = None
    version: int = 0

    @property
    def stages(self) -> tuple[int, ...]:
        return (*self.thresholds, BREACH_PERCENT)

    @property
    def is_open(self) -> bool:
        return self.state in (State.RUNNING, State.PAUSED)


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage that fired: its percent, and the instant its threshold was crossed."""

    percent: int
    crossed_at: datetime

    @property
    def name(self) -> str:
        return "breach" if self.is_breach else f"warning:{self.percent}"

    @property
    def is_breach(self) -> bool:
        return self.percent >= BREACH_PERCENT


def start(
    *,
    clock_id: str,
    ticket_key: str,
    partition: int,
    metric: Metric,
    policy: str,
    escalation: str | None,
    calendar: str,
    target_seconds: int,
    thresholds: tuple[int, ...],
    at: datetime,
    paused: bool,
) -> Clock:
    """A new clock started at ``at``, paused from the start if ``paused``."""
    return Clock(
        id=clock_id,
        ticket_key=ticket_key,
        partition=partition,
        metric=metric,
        policy=policy,
        escalation=escalation,
        calendar=calendar,
        target_seconds=target_seconds,
        thresholds=thresholds,
        state=State.PAUSED if paused else State.RUNNING,
        started_at=at,
        used_seconds=0.0,
        running_since=None if paused else at,
        next_stage=0,
    )


def used_at(clock: Clock, at: datetime, calendar: Calendar) -> float:
    """Business seconds used by ``at``."""
    if clock.state is not State.RUNNING or clock.running_since is None:
        return clock.used_seconds
    return clock.used_seconds + calendar.between(clock.running_since, at)


def due_at(clock: Clock, stage_index: int, calendar: Calendar) -> datetime | None:
    """When the stage crosses, if the clock keeps running; None unless running."""
    if clock.state is not State.RUNNING or clock.running_since is None:
        return None
    if stage_index >= len(clock.stages):
        return None
    threshold = clock.target_seconds * clock.stages[stage_index] / 100
    left = max(0.0, threshold - clock.used_seconds)
    return calendar.add(clock.running_since, left)


def deadline(clock: Clock, calendar: Calendar) -> datetime | None:
    """When the target is used up, if the clock keeps running."""
    return due_at(clock, len(clock.stages) - 1, calendar)


def next_due(clock: Clock, calendar: Calendar) -> datetime | None:
    """When the next stage fires, or None (paused, stopped, all stages fired)."""
    return due_at(clock, clock.next_stage, calendar)


def pause(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    if clock.state is not State.RUNNING or clock.running_since is None:
        return clock
    at = max(at, clock.running_since)
    return replace(
        clock,
        state=State.PAUSED,
        used_seconds=used_at(clock, at, calendar),
        running_since=None,
    )


def resume(clock: Clock, at: datetime) -> Clock:
    if clock.state is not State.PAUSED:
        return clock
    return replace(clock, state=State.RUNNING, running_since=at)


def stop(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """Stop an open clock at ``at``; the outcome is ``breached`` (late) or met."""
    if not clock.is_open:
        return clock
    used = used_at(clock, max(at, clock.running_since or at), calendar)
    late = clock.breached or used >= clock.target_seconds
    return replace(
        clock,
        state=State.STOPPED,
        used_seconds=used,
        running_since=None,
        stopped_at=at,
        breached=late,
    )


def cancel(clock: Clock, at: datetime, calendar: Calendar) -> Clock:
    """End an open clock that no longer has a target (nothing was promised)."""
    if not clock.is_open:
        return clock
    stopped = stop(clock, at, calendar)
    return replace(stopped, state=State.CANCELLED, breached=clock.breached)


def reopen(clock: Clock, at: datetime) -> Clock:
    """Continue a stopped clock from ``at``; the stopped interval is not counted."""
    if clock.state is not State.STOPPED:
        return clock
    return replace(clock, state=State.RUNNING, running_since=at, stopped_at=None)


def retarget(clock: Clock, target_seconds: int, at: datetime, calendar: Calendar) -> Clock:
    """Apply a new target (a priority change) from ``at``, keeping the time used."""
    if not clock.is_open or target_seconds == clock.target_seconds:
        return clock
    if clock.state is State.RUNNING and clock.running_since is not None:
        at = max(at, clock.running_since)
        clock = replace(clock, used_seconds=used_at(clock, at, calendar), running_since=at)
    return replace(clock, target_seconds=target_seconds)


def fire(clock: Clock, now: datetime, calendar: Calendar) -> tuple[Clock, Stage | None]:
    """Fire the highest stage that has crossed by ``now``; lower ones are passed over.

    Passing over keeps a clock that crossed several stages while the engine was
    down (or after a shorter target) from sending stale warnings after a breach.
    """
    fired: Stage | None = None
    index = clock.next_stage
    while True:
        due = due_at(clock, index, calendar)
        if due is None or due > now:
            break
        fired = Stage(clock.stages[index], due)
        index += 1
    if fired is None:
        return clock, None
    return replace(clock, next_stage=index, breached=clock.breached or fired.is_breach), fired
