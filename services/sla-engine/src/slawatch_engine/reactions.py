"""Which timeline entries a ticket event adds to each clock: pure decisions, no I/O.

For each clock of the ticket, at the event's ``occurred_at``:
1. a priority change re-targets the clock from its policy (no target for the
   new priority: the clock is cancelled);
2. an event type the policy lists under ``stops`` for the metric stops it
   (by default ``responded`` stops the response clock; ``resolved`` and
   ``closed`` stop every clock);
3. ``responded`` — an agent's public reply — re-arms the update clock: its
   next update is due a full target later (a restart);
4. ``reopened`` continues a stopped resolution clock as the policy's
   ``reopen`` says (exclude, include, restart) and restarts the update clock;
   the response clock stays answered;
5. a status the policy pauses the metric for pauses it; any other status
   resumes it.
Entries that would change nothing are left out, except for a late event
(dated before the clock's last entry): it is recorded as it is and the replay
decides what it changes.
"""

from __future__ import annotations

from slawatch_common.events import Metric, Priority, TicketEvent
from slawatch_engine.calendar import Calendar
from slawatch_engine.clock import Clock, Entry, State, View
from slawatch_engine.policy import Policy, target_seconds


def entries_for(
    clock: Clock,
    view: View,
    event: TicketEvent,
    policy: Policy,
    priority: Priority,
    priority_changed: bool,
    calendar: Calendar,
) -> list[Entry]:
    """The entries ``event`` adds to ``clock`` (``view`` is its replay before them)."""
    at, cause = event.occurred_at, event.event_id
    late = bool(clock.timeline) and at < clock.timeline[-1].at
    target = policy.target(priority, clock.metric)
    entries: list[Entry] = []
    if priority_changed:
        if target is None:
            return [Entry(at, "cancel", cause=cause)] if view.is_open or late else []
        seconds = target_seconds(target, view.started_at, calendar)
        if seconds != view.target:
            entries.append(Entry(at, "retarget", target=seconds, cause=cause))
    if policy.stopped_by(clock.metric, event.type):
        if view.is_open or late:
            entries.append(Entry(at, "stop", cause=cause))
        return entries
    restarted = target_seconds(target, at, calendar) if target is not None else view.target
    if event.type == "ticket.responded" and clock.metric is Metric.UPDATE:
        entries.append(Entry(at, "restart", target=restarted, cause=cause))
    elif _reopens(event, clock, view, late):
        if clock.metric is Metric.UPDATE or policy.reopen == "restart":
            entries.append(Entry(at, "restart", target=restarted, cause=cause))
        else:
            entries.append(Entry(at, "reopen", mode=policy.reopen, cause=cause))
    if event.data.status is not None:
        pausing = policy.pauses(clock.metric, event.data.status)
        entries += _follow_status(view, entries, pausing, event, late)
    return entries


def _reopens(event: TicketEvent, clock: Clock, view: View, late: bool) -> bool:
    """A reopen continues the resolution and update clocks; the response stays answered."""
    return (
        event.type == "ticket.reopened"
        and clock.metric is not Metric.RESPONSE
        and (view.state is State.STOPPED or late)
    )


def _follow_status(
    view: View, so_far: list[Entry], pausing: bool, event: TicketEvent, late: bool
) -> list[Entry]:
    """Pause or resume for the ticket's status, if that changes the clock's state."""
    running = view.state is State.RUNNING or any(e.kind in ("restart", "reopen") for e in so_far)
    paused = view.state is State.PAUSED and not running
    if pausing and (running or late):
        return [Entry(event.occurred_at, "pause", cause=event.event_id)]
    if not pausing and (paused or late):
        return [Entry(event.occurred_at, "resume", cause=event.event_id)]
    return []
