"""The SLA clock: a timeline of what happened, and what follows from it. Pure; no I/O.

A clock measures one metric (response, resolution, update) of one ticket in
the business time of its calendar. Its **timeline** records every transition
at the instant it happened — start, pause, resume, stop, reopen, restart,
target change, cancel — and everything else is derived by replaying it in
time order (``replay``): the state, the business time used, the deadline,
and the instant each *stage* is crossed (each warning threshold, then the
breach at 100 % of the target).

Because the state is a function of the timeline, an event that arrives late
is simply inserted at its instant and the clock replayed: earlier pauses are
kept, and an outcome already emitted that no longer holds (a breach, say, when
the stop that arrives late came before the deadline) is reported for
correction (``Outcome.retracted``).

Replay semantics:
- ``pause`` / ``resume`` stop and restart the accrual of business time;
- ``stop`` ends the clock; stopped after the deadline, it is breached (at the
  deadline instant itself it is met);
- ``reopen`` continues a stopped clock: ``exclude`` (the time it was stopped
  does not count), or ``include`` (it does); ``restart`` begins a new cycle
  from zero with every stage ahead again (a reopen in restart mode, or the
  update clock re-armed by an agent's update);
- ``retarget`` replaces the target from then on *for the whole cycle*: the
  deadline is recomputed from the cycle's start with the new target, keeping
  every pause (a priority change);
- ``cancel`` ends the clock without an outcome (nothing is promised).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from slawatch_common.events import Metric
from slawatch_engine.calendar import Calendar

EntryKind = Literal["start", "pause", "resume", "stop", "reopen", "restart", "retarget", "cancel"]
ReopenMode = Literal["exclude", "include", "restart"]
BREACH = "breach"
_LEAD = re.compile(r"^warning:(\d+)s-before$")
_PERCENT = re.compile(r"^warning:(\d+)$")


class State(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Entry:
    """One transition of the timeline, at the instant it happened."""

    at: datetime
    kind: EntryKind
    target: int | None = None
    """Seconds: for ``start``, ``restart`` and ``retarget``."""
    paused: bool = False
    """For ``start`` and ``restart``: begin paused."""
    mode: ReopenMode = "exclude"
    cause: str = ""
    """The id of the event that caused it (for the record)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"at": self.at.isoformat(), "kind": self.kind}
        if self.target is not None:
            data["target"] = self.target
        if self.paused:
            data["paused"] = True
        if self.kind == "reopen":
            data["mode"] = self.mode
        if self.cause:
            data["cause"] = self.cause
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            at=datetime.fromisoformat(data["at"]),
            kind=data["kind"],
            target=data.get("target"),
            paused=data.get("paused", False),
            mode=data.get("mode", "exclude"),
            cause=data.get("cause", ""),
        )


@dataclass(frozen=True, slots=True)
class Clock:
    """What is stored of a clock: identity, policy snapshot, timeline, stages emitted."""

    id: str
    ticket_key: str
    partition: int
    metric: Metric
    policy: str
    escalation: str | None
    calendar: str
    stages: tuple[str, ...]
    """Warning stage names (``warning:<percent>``, ``warning:<seconds>s-before``); the
    breach always follows."""
    timeline: tuple[Entry, ...]
    fired: frozenset[str] = frozenset()
    """Stages of the current cycle already emitted (or passed over)."""
    cycle: int = 1
    version: int = 0

    def record(self, entry: Entry) -> Clock:
        """The clock with ``entry`` in its timeline, at its instant (after equal instants)."""
        timeline = sorted((*self.timeline, entry), key=lambda e: e.at)  # stable
        return replace(self, timeline=tuple(timeline))


@dataclass(frozen=True, slots=True)
class View:
    """A replayed clock: its state at the end of its timeline."""

    state: State
    target: int
    used: float
    """Business seconds used up to the last entry (all of it unless running)."""
    running_since: datetime | None
    started_at: datetime
    stopped_at: datetime | None
    cycle: int
    crossings: dict[str, datetime | None] = field(default_factory=dict)
    """Each stage of the current cycle → the instant it is (or was) crossed, if ever."""

    @property
    def deadline(self) -> datetime | None:
        return self.crossings.get(BREACH)

    @property
    def is_open(self) -> bool:
        return self.state in (State.RUNNING, State.PAUSED)

    def used_at(self, at: datetime, calendar: Calendar) -> float:
        if self.state is not State.RUNNING or self.running_since is None:
            return self.used
        return self.used + calendar.between(self.running_since, max(at, self.running_since))

    def breached_by(self, now: datetime) -> bool:
        """Whether the breach was crossed by ``now`` within the clock's measured time."""
        if self.deadline is None or self.deadline > now:
            return False
        return self.stopped_at is None or self.deadline < self.stopped_at


def stage_offset(stage: str, target: int) -> float | None:
    """Business seconds into the cycle at which ``stage`` is crossed; None if never."""
    if stage == BREACH:
        return float(target)
    if match := _PERCENT.match(stage):
        return target * int(match.group(1)) / 100
    if match := _LEAD.match(stage):
        lead = int(match.group(1))
        return float(target - lead) if lead < target else None
    raise ValueError(f"unknown stage {stage!r}")


def stage_percent(stage: str, target: int) -> int:
    """The stage as a percent of the target (1–100), for the event's ``threshold_percent``."""
    offset = stage_offset(stage, target)
    if not target or offset is None:
        return 100
    return min(100, max(1, round(100 * offset / target)))


def replay(clock: Clock, calendar: Calendar) -> View:
    """Fold the timeline into the clock's state and its stage crossings."""
    state, target, used = State.RUNNING, 0, 0.0
    since: datetime | None = None
    started = stopped = None
    cycle = 0
    segments: list[tuple[datetime, datetime | None]] = []
    for entry in clock.timeline:
        at = entry.at
        if entry.kind in ("start", "restart"):
            cycle += 1
            target = entry.target if entry.target is not None else target
            state = State.PAUSED if entry.paused else State.RUNNING
            since = None if entry.paused else at
            started, stopped, used, segments = entry.at, None, 0.0, []
        elif entry.kind == "retarget" and entry.target is not None:
            target = entry.target
        elif entry.kind == "resume" and state is State.PAUSED:
            state, since = State.RUNNING, at
        elif entry.kind == "reopen" and state is State.STOPPED:
            if entry.mode == "include" and stopped is not None and stopped < entry.at:
                segments.append((stopped, entry.at))
                used += calendar.between(stopped, entry.at)
            state, since, stopped = State.RUNNING, entry.at, None
        elif entry.kind in ("pause", "stop", "cancel") and state in (State.RUNNING, State.PAUSED):
            if state is State.RUNNING and since is not None:
                segments.append((since, at))
                used += calendar.between(since, at)
            since = None
            state = {"pause": State.PAUSED, "stop": State.STOPPED}.get(entry.kind, State.CANCELLED)
            if entry.kind != "pause":
                stopped = entry.at
    if state is State.RUNNING and since is not None:
        segments.append((since, None))
    if started is None:
        raise ValueError(f"clock {clock.id} has no start")
    stages = (*clock.stages, BREACH)
    offsets = {stage: stage_offset(stage, target) for stage in stages}
    crossings = _crossings(offsets, segments, calendar)
    return View(state, target, used, since, started, stopped, max(cycle, 1), crossings)


def _crossings(
    offsets: dict[str, float | None],
    segments: list[tuple[datetime, datetime | None]],
    calendar: Calendar,
) -> dict[str, datetime | None]:
    """Each stage → the instant the running segments accumulate its offset, if they do.

    The stages reached in the open segment (a running clock) are found in one
    walk of the calendar.
    """
    crossings: dict[str, datetime | None] = dict.fromkeys(offsets)
    waiting = sorted((offset, stage) for stage, offset in offsets.items() if offset is not None)
    before = 0.0  # business seconds of the segments already passed
    for begin, end in segments:
        if not waiting:
            break
        if end is None:
            moments = calendar.add_many(begin, [offset - before for offset, _ in waiting])
            crossings.update((stage, at) for (_, stage), at in zip(waiting, moments, strict=True))
            break
        length = calendar.between(begin, end)
        while waiting and waiting[0][0] - before <= length:
            offset, stage = waiting.pop(0)
            crossings[stage] = calendar.add(begin, offset - before)
        before += length
    return crossings


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do after a replay at ``now``."""

    emit: tuple[str, datetime] | None
    """The stage to emit now, with the instant it was crossed: the highest stage
    crossed and not yet emitted (for a stopped clock, only a breach)."""
    passed: tuple[str, ...]
    """Every stage crossed and not yet emitted (``emit``'s included): from now on
    counted as done, so a stale warning never follows a breach."""
    retracted: tuple[str, ...]
    """Emitted stages that, replayed, are no longer crossed: to be corrected."""
    next_due: datetime | None
    """When the next stage still ahead is crossed, if the clock keeps running."""

    def fired(self, before: frozenset[str]) -> frozenset[str]:
        return (before | set(self.passed)) - set(self.retracted)


def _within(at: datetime, view: View, now: datetime) -> bool:
    """Whether a crossing at ``at`` has happened by ``now`` inside the measured time.

    A clock stopped exactly at its deadline met it: only a crossing strictly
    before the stop counts.
    """
    return at <= now and (view.stopped_at is None or at < view.stopped_at)


def assess(clock: Clock, view: View, now: datetime) -> Outcome:
    """Compare the replayed crossings with what was emitted, as of ``now``."""
    if view.state is State.CANCELLED:
        return Outcome(None, (), (), None)
    crossed = {
        s: at for s, at in view.crossings.items() if at is not None and _within(at, view, now)
    }
    pending = sorted(
        ((s, at) for s, at in crossed.items() if s not in clock.fired),
        key=lambda item: (item[1], stage_offset(item[0], view.target) or 0.0),
    )
    emit = pending[-1] if pending and (view.is_open or pending[-1][0] == BREACH) else None
    passed = tuple(s for s, _ in pending)
    retracted = (BREACH,) if BREACH in clock.fired and BREACH not in crossed else ()
    done = (clock.fired | set(passed)) - set(retracted)
    ahead = [
        at for s, at in view.crossings.items() if at is not None and at > now and s not in done
    ]
    next_due = min(ahead, default=None) if view.state is State.RUNNING else None
    return Outcome(emit, passed, retracted, next_due)
