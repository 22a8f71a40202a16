"""How a clock reacts to a ticket event: pure decisions, no I/O.

For each clock of a ticket, in this order:
1. a priority change re-targets the clock from the policy (no target for the
   new priority: the clock is cancelled);
2. ``responded`` stops the response clock; ``resolved`` and ``closed`` stop
   every clock (resolving a ticket answers it too);
3. ``reopened`` continues the resolution clock without counting the time the
   ticket was resolved;
4. a status in the policy's ``pause_statuses`` pauses a running clock; any
   other status resumes a paused one.
Each step may yield the SLA event type it produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from slawatch_common.events import Metric, Priority, SlaEventType, TicketEvent
from slawatch_engine import clock as clocks
from slawatch_engine.calendar import Calendar
from slawatch_engine.clock import Clock, State
from slawatch_engine.policy import Policy

_STOPS_ALL = frozenset({"ticket.resolved", "ticket.closed"})


@dataclass(frozen=True, slots=True)
class Reaction:
    clock: Clock
    emitted: tuple[SlaEventType, ...]


def react(
    clock: Clock,
    event: TicketEvent,
    policy: Policy | None,
    new_priority: Priority | None,
    calendar: Calendar,
) -> Reaction:
    """The clock after ``event``, and the SLA events that produces (in order)."""
    at = event.occurred_at
    emitted: list[SlaEventType] = []
    if new_priority is not None and policy is not None:
        target = policy.target(new_priority, clock.metric)
        if target is None:
            if clock.is_open:
                emitted.append("sla.cancelled")
            return Reaction(clocks.cancel(clock, at, calendar), tuple(emitted))
        clock = clocks.retarget(clock, target, at, calendar)
    if _stops(event, clock):
        stopped = clocks.stop(clock, at, calendar)
        if stopped is not clock and not stopped.breached:
            emitted.append("sla.met")
        return Reaction(stopped, tuple(emitted))
    if event.type == "ticket.reopened" and clock.metric is Metric.RESOLUTION:
        reopened = clocks.reopen(clock, at)
        if reopened is not clock:
            clock = reopened
            emitted.append("sla.resumed")
    status = event.data.status
    if status is not None and policy is not None:
        clock, change = _follow_status(clock, status in policy.pause_statuses, at, calendar)
        if change is not None:
            emitted.append(change)
    return Reaction(clock, tuple(emitted))


def _stops(event: TicketEvent, clock: Clock) -> bool:
    if event.type in _STOPS_ALL:
        return True
    return event.type == "ticket.responded" and clock.metric is Metric.RESPONSE


def _follow_status(
    clock: Clock, pausing: bool, at: datetime, calendar: Calendar
) -> tuple[Clock, SlaEventType | None]:
    if pausing and clock.state is State.RUNNING:
        return clocks.pause(clock, at, calendar), "sla.paused"
    if not pausing and clock.state is State.PAUSED:
        return clocks.resume(clock, at), "sla.resumed"
    return clock, None
