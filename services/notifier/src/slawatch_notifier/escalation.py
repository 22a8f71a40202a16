"""Escalations: the life of one clock cycle's chain. Pure; ``now`` comes in, nothing is read.

An escalation is keyed by ``clock_id`` + ``cycle``. The first warning or breach
event of a cycle starts it and snapshots the chain its clock names
(``data.clock.escalation``): later steps follow that snapshot, never the
current configuration. People, groups and schedules are looked up when a step
fires (who is on call *then*).

    (none) ──warning/breach──▶ active ──ack──▶ acknowledged
                                 │                  │
               sla.met, sla.cancelled, sla.retracted (of the breach)
                                 ▼                  ▼
                              stopped ◀─────────────┘
    a new breach after a retraction: active again, generation + 1

Steps of a stage fire two ways:

- *immediately*, when the stage's event arrives: every step whose ``on``
  matches and that has no ``after``. Stage notices are facts, so they are sent
  whatever the status (an acknowledged ticket that then breaches still tells
  its breach step's people);
- *scheduled*, for an active breach only: a step with ``after`` fires at
  breach + after, and a step with ``repeat`` again every ``every``, ``times``
  more times. Each firing is a ``ScheduledStep`` row; only the next firing of
  a step exists at a time, and it fires only if the escalation is still active
  in the same generation (``fire_scheduled``). They chase an unacknowledged
  breach: an ack, a stop or a retraction cancels them.

Dedup keys (``step_key``, ``notification_id``)::

    clock_id[#cycle]:<stage>[.g<generation>]:<step>[.r<repeat>]:<recipient>:<channel>

``#cycle`` from a clock's second cycle on; ``<step>`` is the step's index in
the snapshotted chain; ``.r<n>`` the n-th repeat; ``.g<n>`` counts the
retractions before this breach, so a re-breach after a retraction (a new
``sla.breach`` event id) is notified again while a redelivered one is not.
The same step reaches one recipient on one channel at most once.

A key longer than the column that stores it (``STEP_KEY_MAX``,
``NOTIFICATION_ID_MAX``) is shortened to its head and a hash of the whole
(``bounded_id``): still deterministic, so dedup holds; every key that fits is
itself, so the rows stored before stay valid. A notification's record on
``slawatch.notifications`` bounds it again to the 200 characters of the
contract (``outbox.record_for``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from slawatch_common.events import SlaEvent, bounded_id
from slawatch_notifier.config import BREACH, Step
from slawatch_notifier.targets import Skip, SkipReason

STEP_KEY_MAX = 600
"""The length of ``notifier_scheduled_steps.id``, where a step key is stored."""
NOTIFICATION_ID_MAX = 1000
"""The length of ``notifier_notifications.id`` (and ``fallback_of``, ``notifier_attempts``)."""

NOTIFYING_TYPES = frozenset({"sla.warning", "sla.breach"})
"""Event types that notify; ``STOPPING_TYPES`` end an escalation; the rest are ignored."""


class UnroutableEventError(ValueError):
    """A warning or breach event whose stage is missing or contradicts its type."""


class Status(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    STOPPED = "stopped"


class Reason(StrEnum):
    """Why an escalation stopped or a scheduled step was cancelled."""

    ACKNOWLEDGED = "acknowledged"
    MET = "met"
    CANCELLED = "cancelled"
    RETRACTED = "retracted"
    SUPERSEDED = "superseded"


STOPPING_TYPES: Mapping[str, Reason] = {
    "sla.met": Reason.MET,
    "sla.cancelled": Reason.CANCELLED,
    "sla.retracted": Reason.RETRACTED,
}
ESCALATION_TYPES = NOTIFYING_TYPES | frozenset(STOPPING_TYPES)

_WARNING_STAGE = re.compile(r"^warning:(([1-9][0-9]?|100)|[0-9]+s-before)$")


class ChainSnapshot(BaseModel):
    """The chain as it was when the escalation started; stored as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    steps: tuple[Step, ...]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True)
class Firing:
    """Step ``step`` of the chain fires for ``stage``: plan its notifications."""

    step: int
    stage: str
    repeat: int = 0
    generation: int = 0
    scheduled: bool = False


@dataclass(frozen=True, slots=True)
class ScheduledStep:
    """The next firing of a breach step, due at ``due_at``."""

    clock_id: str
    cycle: int
    generation: int
    step: int
    repeat: int
    due_at: datetime

    @property
    def id(self) -> str:
        return step_key(
            self.clock_id,
            BREACH,
            self.step,
            cycle=self.cycle,
            repeat=self.repeat,
            generation=self.generation,
        )


@dataclass(frozen=True, slots=True)
class Escalation:
    """One clock cycle's escalation. ``event`` is the latest breach (or the first event):
    the ticket facts scheduled steps are rendered from. ``version`` is the store's fence."""

    clock_id: str
    cycle: int
    chain: ChainSnapshot
    event: SlaEvent
    status: Status
    started_at: datetime
    updated_at: datetime
    reason: Reason | None = None
    generation: int = 0
    breach_event_id: str | None = None
    breach_at: datetime | None = None
    withdrawn: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    version: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.clock_id, self.cycle)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one event does to an escalation. ``state`` is None when there is none."""

    state: Escalation | None
    changed: bool = False
    firings: tuple[Firing, ...] = ()
    schedule: tuple[ScheduledStep, ...] = ()
    stop: Reason | None = None
    skipped: tuple[Skip, ...] = ()


def step_key(
    clock_id: str, stage: str, step: int, *, cycle: int = 1, repeat: int = 0, generation: int = 0
) -> str:
    """``clock_id[#cycle]:<stage>[.g<generation>]:<step>[.r<repeat>]``, at most
    ``STEP_KEY_MAX`` characters; see the module docstring."""
    clock = clock_id if cycle == 1 else f"{clock_id}#{cycle}"
    stage_part = stage if generation == 0 else f"{stage}.g{generation}"
    step_part = str(step) if repeat == 0 else f"{step}.r{repeat}"
    return bounded_id(f"{clock}:{stage_part}:{step_part}", STEP_KEY_MAX)


def notification_id(
    clock_id: str,
    stage: str,
    recipient: str,
    channel: str,
    *,
    step: int = 0,
    cycle: int = 1,
    repeat: int = 0,
    generation: int = 0,
) -> str:
    """The dedup key of one notification: its step's key, recipient and channel, at most
    ``NOTIFICATION_ID_MAX`` characters."""
    key = step_key(clock_id, stage, step, cycle=cycle, repeat=repeat, generation=generation)
    return bounded_id(f"{key}:{recipient}:{channel}", NOTIFICATION_ID_MAX)


def key_of(event: SlaEvent) -> tuple[str, int]:
    """The escalation an SLA event belongs to."""
    return (event.data.clock.clock_id, event.data.clock.cycle)


def stage_of(event: SlaEvent) -> str:
    """The stage of a warning or breach event; ``UnroutableEventError`` if it does not fit."""
    stage = event.data.stage or ""
    if event.type == "sla.breach":
        fits = stage == BREACH
    else:
        fits = event.type == "sla.warning" and _WARNING_STAGE.match(stage) is not None
    if not fits:
        raise UnroutableEventError(f"{event.type} with stage {event.data.stage!r}")
    return stage


def immediate_firings(chain: ChainSnapshot, stage: str, generation: int = 0) -> tuple[Firing, ...]:
    """The steps that fire as soon as ``stage`` is reached, in chain order."""
    return tuple(
        Firing(index, stage, generation=generation)
        for index, step in enumerate(chain.steps)
        if step.applies_to(stage) and step.immediate
    )


def start(
    event: SlaEvent, chains: Mapping[str, tuple[Step, ...]], now: datetime
) -> Escalation | Skip:
    """A new active escalation for ``event`` with its chain snapshotted, or why there is none."""
    name = event.data.clock.escalation
    if name is None:
        return Skip(SkipReason.NO_CHAIN, event.data.clock.clock_id)
    steps = chains.get(name)
    if steps is None:
        return Skip(SkipReason.UNKNOWN_CHAIN, name)
    clock_id, cycle = key_of(event)
    snapshot = ChainSnapshot(name=name, steps=steps)
    return Escalation(clock_id, cycle, snapshot, event, Status.ACTIVE, now, now)


def on_event(
    current: Escalation | None,
    event: SlaEvent,
    chains: Mapping[str, tuple[Step, ...]],
    now: datetime,
) -> Transition:
    """What ``event`` does to the escalation of its clock cycle (``current``, if it exists).

    Idempotent: applied again to the state it produced, an event changes
    nothing and asks for the same firings (whose notifications are then
    deduplicated by key). ``UnroutableEventError`` for a warning or breach
    without a proper stage.
    """
    if event.type in NOTIFYING_TYPES:
        stage = stage_of(event)
        created = current is None
        if current is None:
            started = start(event, chains, now)
            if isinstance(started, Skip):
                return Transition(None, skipped=(started,))
            current = started
        if stage == BREACH:
            return _on_breach(current, event, now, created)
        return Transition(current, created, immediate_firings(current.chain, stage))
    reason = STOPPING_TYPES.get(event.type)
    if reason is None or current is None:
        return Transition(current)
    return _on_stop(current, event, reason, now)


def _on_breach(state: Escalation, event: SlaEvent, now: datetime, created: bool) -> Transition:
    if event.event_id == state.breach_event_id:  # redelivered: same keys, nothing new
        return Transition(state, created, *_breach_plan(state))
    if state.breach_event_id is None:
        status = Status.ACTIVE if state.status is Status.STOPPED else state.status
        accepted = replace(state, status=status, reason=None)
    elif state.withdrawn:  # a re-breach after a retraction: a new generation
        accepted = replace(
            state,
            status=Status.ACTIVE,
            reason=None,
            generation=state.generation + 1,
            acknowledged_by=None,
            acknowledged_at=None,
        )
    else:  # an older breach of an earlier generation, redelivered
        return Transition(state, created)
    accepted = replace(
        accepted,
        event=event,
        breach_event_id=event.event_id,
        breach_at=event.occurred_at,
        withdrawn=False,
        updated_at=now,
    )
    return Transition(accepted, True, *_breach_plan(accepted))


def _breach_plan(state: Escalation) -> tuple[tuple[Firing, ...], tuple[ScheduledStep, ...]]:
    firings = immediate_firings(state.chain, BREACH, state.generation)
    if state.status is not Status.ACTIVE or state.withdrawn or state.breach_at is None:
        return firings, ()
    return firings, first_scheduled(state, state.breach_at)


def first_scheduled(state: Escalation, breach_at: datetime) -> tuple[ScheduledStep, ...]:
    """The first scheduled firing of every breach step that waits or repeats."""
    firsts: list[ScheduledStep] = []
    for index, step in enumerate(state.chain.steps):
        if not (step.applies_to(BREACH) and step.chases):
            continue
        repeat = 0 if not step.immediate else 1  # an immediate step's firing 0 is not scheduled
        due = firing_due(step, breach_at, repeat)
        firsts.append(
            ScheduledStep(state.clock_id, state.cycle, state.generation, index, repeat, due)
        )
    return tuple(firsts)


def firing_due(step: Step, breach_at: datetime, repeat: int) -> datetime:
    """When firing ``repeat`` (0 = the first) of a breach step is due."""
    every = step.repeat.every if step.repeat is not None else 0
    return breach_at + timedelta(seconds=(step.after or 0) + repeat * every)


def _on_stop(state: Escalation, event: SlaEvent, reason: Reason, now: datetime) -> Transition:
    if state.breach_at is not None and event.occurred_at < state.breach_at:
        return Transition(state)  # about an earlier breach: redelivered after a re-breach
    if reason is Reason.RETRACTED:
        if event.data.stage != BREACH or state.breach_event_id is None or state.withdrawn:
            return Transition(state)
        stopped = replace(state, withdrawn=True)
    elif state.status is Status.STOPPED:
        return Transition(state)
    else:
        stopped = state
    stopped = replace(stopped, status=Status.STOPPED, reason=reason, updated_at=now)
    return Transition(stopped, True, stop=reason)


def acknowledge(state: Escalation, by: str, now: datetime) -> Escalation | None:
    """The acknowledged escalation, or None if it is not active (acked or stopped already)."""
    if state.status is not Status.ACTIVE:
        return None
    return replace(
        state,
        status=Status.ACKNOWLEDGED,
        reason=Reason.ACKNOWLEDGED,
        acknowledged_by=by,
        acknowledged_at=now,
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class Fired:
    firing: Firing
    next: ScheduledStep | None


def fire_scheduled(state: Escalation, row: ScheduledStep, now: datetime) -> Fired | Reason:
    """Fire ``row`` if its escalation still chases this breach; else why it is cancelled.

    ``next`` is the step's next repeat; after an outage it skips to the latest
    repeat already due instead of sending every missed one at once.
    """
    if state.status is not Status.ACTIVE:
        return state.reason or Reason.SUPERSEDED
    if state.generation != row.generation or state.withdrawn or state.breach_at is None:
        return Reason.SUPERSEDED
    step = state.chain.steps[row.step]
    firing = Firing(row.step, BREACH, row.repeat, row.generation, scheduled=True)
    if step.repeat is None or row.repeat >= step.repeat.times:
        return Fired(firing, None)
    following = row.repeat + 1
    while following < step.repeat.times and firing_due(step, state.breach_at, following + 1) <= now:
        following += 1
    due = firing_due(step, state.breach_at, following)
    return Fired(firing, replace(row, repeat=following, due_at=due))
