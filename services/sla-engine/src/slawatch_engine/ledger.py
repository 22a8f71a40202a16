"""The engine's service layer: applies ticket events and fires due stages. No I/O.

Both entry points work on a ``store.Workset`` (the batch's tickets and clocks,
loaded and locked once) and return the SLA events they produce; the caller
writes the working set and stages those events in the outbox in ONE
transaction, so a state change and its events commit together or not at all.
They also return what the timer index needs to learn (each touched clock's
next due instant).

Every change goes the same way (``_settle``): the clock's timeline gets its
new entries, the clock is replayed, the replay is compared with what was
already emitted (``clock.assess``), and the differences become SLA events:
transitions (paused, resumed, met, cancelled), the stage now due (warning or
breach) and corrections (a breach retracted).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from slawatch_common.events import (
    ClockState,
    Metric,
    Priority,
    SlaData,
    SlaEvent,
    SlaEventType,
    Ticket,
    TicketEvent,
    TicketRef,
    bounded_id,
)
from slawatch_engine import outbox
from slawatch_engine.clock import (
    BREACH,
    Clock,
    Entry,
    State,
    View,
    assess,
    replay,
    stage_percent,
)
from slawatch_engine.policy import Policy, PolicyBook, target_seconds
from slawatch_engine.reactions import entries_for
from slawatch_engine.store import Derived, TicketRow, Workset

SOURCE = "slawatch-engine"
TICKET_METRICS = (Metric.RESPONSE, Metric.RESOLUTION, Metric.UPDATE)
_EVENT_IDS = uuid.UUID("0b7f3a52-5b8e-4d2b-9d6e-3f3c1f0c9a11")


def sla_event_id(*parts: str) -> str:
    """A deterministic event id, so a replayed input yields the very same SLA event."""
    return str(uuid.uuid5(_EVENT_IDS, "|".join(parts)))


@dataclass(frozen=True, slots=True)
class Completion:
    """A response or resolution clock that stopped: counted by the compliance metrics."""

    policy: str
    metric: Metric
    priority: str
    met: bool
    business_seconds: float


@dataclass(frozen=True, slots=True)
class Rated:
    """A rating applied to a ticket of ``policy``, in percent of its scale."""

    policy: str
    percent: float


@dataclass
class Changes:
    """What a transaction did: clocks whose next due instant changed, events staged."""

    due: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    emitted: list[SlaEvent] = field(default_factory=list)
    partition_of: dict[str, int] = field(default_factory=dict)
    """event id → the input partition of its ticket (whose owner publishes it)."""
    rejected: str | None = None
    completed: list[Completion] = field(default_factory=list)
    rated: list[Rated] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.due.update(other.due)
        self.emitted.extend(other.emitted)
        self.partition_of.update(other.partition_of)
        self.completed.extend(other.completed)
        self.rated.extend(other.rated)


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """The ticket as the SLA events describe it."""

    snapshot: Mapping[str, Any]
    priority: Priority

    def ref(self, source: str) -> TicketRef:
        fields = {k: self.snapshot[k] for k in _REF_FIELDS if self.snapshot.get(k) is not None}
        return TicketRef(source=source, priority=self.priority, **fields)


_REF_FIELDS = ("id", "title", "customer", "service", "assignee", "group")


class Ledger:
    def __init__(self, book: PolicyBook, sla_topic: str) -> None:
        self._book = book
        self._topic = sla_topic

    # --- ticket events -------------------------------------------------------

    def apply(self, work: Workset, event: TicketEvent, partition: int, now: datetime) -> Changes:
        """Apply one ticket event (already deduplicated) read from ``partition``.

        ``work`` holds the event's ticket and clocks if they exist (``store.load_tickets``).
        """
        row = work.tickets.get(event.key)
        if row is None:
            if event.type != "ticket.created":
                return Changes(rejected="unknown_ticket")
            return self._open(work, event, partition, now)
        if event.type == "ticket.rated":
            # a rating says how the customer liked it: no clock moves for it
            changes = Changes()
            self._rate(row, event, changes)
            work.touch_ticket(event.key)
            return changes
        old_priority = Priority(row.priority)
        info = TicketInfo(
            _merged(row.snapshot, event.data), self._book.priority(event.data, old_priority)
        )
        stored = self._book.named(row.policy) if row.policy else None
        policy = self._book.select(Ticket.model_validate(info.snapshot), info.priority) or stored
        moved = policy is not None and stored is not None and policy.name != stored.name
        changes = Changes()
        if policy is not None and stored is not None:
            retarget = moved or info.priority != old_priority
            for clock in work.clocks_of(event.key):
                before = _under(clock, policy) if moved else clock
                after = self._react(before, event, policy, info.priority, retarget)
                self._settle(work, clock, after, info, event, now, changes)
            row.policy = policy.name
        row.snapshot = dict(info.snapshot)
        row.priority = info.priority.value
        work.touch_ticket(event.key)
        return changes

    @staticmethod
    def _rate(row: TicketRow, event: TicketEvent, changes: Changes) -> None:
        """Keep the ticket's latest rating (a rating that occurred earlier changes nothing)."""
        rating = event.data.rating
        if rating is None or (row.rated_at is not None and event.occurred_at < row.rated_at):
            return
        row.rating_score, row.rating_scale = rating.score, rating.scale_max
        row.rated_at = event.occurred_at
        if row.policy is not None:
            changes.rated.append(Rated(row.policy, rating.score * 100 / rating.scale_max))

    def _react(
        self, clock: Clock, event: TicketEvent, policy: Policy, priority: Priority, retarget: bool
    ) -> Clock:
        """``clock`` with the timeline entries ``event`` adds to it."""
        calendar = self._book.calendar(clock.calendar)
        view = replay(clock, calendar)
        for entry in entries_for(clock, view, event, policy, priority, retarget, calendar):
            clock = clock.record(entry)
        return clock

    def _open(self, work: Workset, event: TicketEvent, partition: int, now: datetime) -> Changes:
        info = TicketInfo(_merged({}, event.data), self._book.priority(event.data, None))
        policy = self._book.select(event.data, info.priority)
        work.add_ticket(
            TicketRow(
                key=event.key,
                source=event.source,
                ticket_id=event.data.id,
                partition=partition,
                priority=info.priority.value,
                policy=policy.name if policy else None,
                snapshot=dict(info.snapshot),
                created_at=event.occurred_at,
            )
        )
        if policy is None:
            return Changes(rejected="no_policy")
        changes = Changes()
        for clock in self._started(event, partition, policy, info.priority):
            self._settle(work, None, clock, info, event, now, changes)
        return changes

    def _started(
        self, event: TicketEvent, partition: int, policy: Policy, priority: Priority
    ) -> list[Clock]:
        calendar = self._book.calendar(policy.calendar)
        started = []
        for metric in TICKET_METRICS:
            target = policy.target(priority, metric)
            if target is None:
                continue
            status = event.data.status
            entry = Entry(
                event.occurred_at,
                "start",
                target=target_seconds(target, event.occurred_at, calendar),
                paused=status is not None and policy.pauses(metric, status),
                cause=event.event_id,
            )
            started.append(
                Clock(
                    id=bounded_id(f"{event.key}:{metric.value}"),
                    ticket_key=event.key,
                    partition=partition,
                    metric=metric,
                    policy=policy.name,
                    escalation=policy.escalation,
                    calendar=policy.calendar,
                    stages=policy.stages,
                    timeline=(entry,),
                )
            )
        return started

    # --- the timer -----------------------------------------------------------

    def fire(self, work: Workset, clock_ids: list[str], now: datetime) -> Changes:
        """Emit every stage of these clocks that has come due by ``now``.

        ``work`` holds the clocks and their tickets (``store.load_clocks``).
        Idempotent: a clock whose stage already fired, or that stopped or paused
        meanwhile, is left as it is (its current next due instant is reported).
        """
        changes = Changes()
        for clock in work.clocks(clock_ids):
            row = work.tickets[clock.ticket_key]  # a clock is created with its ticket
            info = TicketInfo(row.snapshot, Priority(row.priority))
            self._settle(work, clock, clock, info, None, now, changes)
        return changes

    async def stage(self, conn: AsyncConnection, changes: Changes, now: datetime) -> None:
        """Put the SLA events of ``changes`` in the outbox of the caller's transaction."""
        await outbox.stage(conn, changes.emitted, changes.partition_of, self._topic, now)

    # --- shared ----------------------------------------------------------------

    def _settle(
        self,
        work: Workset,
        before: Clock | None,
        after: Clock,
        info: TicketInfo,
        cause: TicketEvent | None,
        now: datetime,
        into: Changes,
    ) -> None:
        """Replay ``after``, emit what differs from what was emitted, and keep it in ``work``."""
        calendar = self._book.calendar(after.calendar)
        view = replay(after, calendar)
        if view.cycle != after.cycle:
            after = replace(after, cycle=view.cycle, fired=frozenset())
        outcome = assess(after, view, now)
        events = [
            self._event("sla.retracted", after, view, info, now, f"retract:{stage}", stage)
            for stage in outcome.retracted
        ]
        old = replay(before, calendar) if cause is not None and before is not None else None
        if cause is not None:
            changed = _transition(old, view)
            if changed is not None:
                at, why = cause.occurred_at, cause.event_id
                events.append(self._event(changed, after, view, info, at, why))
        if outcome.emit is not None:
            stage, crossed = outcome.emit
            reached: SlaEventType = "sla.breach" if stage == BREACH else "sla.warning"
            why = f"{stage}@{crossed.isoformat()}"
            events.append(self._event(reached, after, view, info, crossed, why, stage))
        after = replace(after, fired=outcome.fired(after.fired))
        stopped_now = old is not None and old.is_open and view.state is State.STOPPED
        if stopped_now and after.metric is not Metric.UPDATE:
            met = _transition(old, view) == "sla.met"
            into.completed.append(
                Completion(after.policy, after.metric, info.priority.value, met, view.used)
            )
        derived = Derived(view, view.breached_by(now), outcome.next_due)
        if before is None:
            work.put_clock(after, derived, new=True)
        elif after != before or events:
            work.put_clock(after, derived)
        into.due[after.id] = (after.partition, outcome.next_due)
        into.emitted.extend(events)
        into.partition_of.update((event.event_id, after.partition) for event in events)

    def _event(
        self,
        kind: SlaEventType,
        clock: Clock,
        view: View,
        info: TicketInfo,
        at: datetime,
        cause: str,
        stage: str | None = None,
    ) -> SlaEvent:
        calendar = self._book.calendar(clock.calendar)
        source, _, _ = clock.ticket_key.partition(":")
        return SlaEvent(
            event_id=sla_event_id(clock.id, str(clock.cycle), kind, cause),
            type=kind,
            occurred_at=at,
            source=SOURCE,
            data=SlaData(
                ticket=info.ref(source),
                clock=ClockState(
                    clock_id=clock.id,
                    metric=clock.metric,
                    policy=clock.policy,
                    escalation=clock.escalation,
                    target_seconds=view.target,
                    business_seconds_used=int(view.used_at(at, calendar)),
                    started_at=view.started_at,
                    deadline=view.deadline if view.state is not State.PAUSED else None,
                    cycle=clock.cycle,
                ),
                stage=stage,
                threshold_percent=stage_percent(stage, view.target) if stage else None,
            ),
        )


def _under(clock: Clock, policy: Policy) -> Clock:
    """The clock moved to another policy: its chain, calendar and stages from now on.

    The new calendar and target apply to the whole cycle, recalculated from its
    start (the target change is recorded by ``entries_for``).
    """
    return replace(
        clock,
        policy=policy.name,
        escalation=policy.escalation,
        calendar=policy.calendar,
        stages=policy.stages,
    )


def _transition(old: View | None, new: View) -> SlaEventType | None:
    """The SLA event a change of state is reported as, if any (a clock born paused too)."""
    if old is None:
        return "sla.paused" if new.state is State.PAUSED else None
    if old.state is new.state:
        return None
    if new.state is State.PAUSED:
        return "sla.paused"
    if new.state is State.RUNNING:
        return "sla.resumed"
    if new.state is State.CANCELLED:
        return "sla.cancelled"
    met = new.deadline is None or new.stopped_at is None or new.stopped_at <= new.deadline
    return "sla.met" if met else None


def _merged(snapshot: Mapping[str, Any], ticket: Ticket) -> dict[str, Any]:
    """The stored snapshot with every field the event carries replacing the old one."""
    return {**snapshot, **ticket.model_dump(mode="json", exclude_none=True)}
