"""What the engine deletes once it has been settled for ``SLAWATCH_RETENTION_DAYS``.

- ``engine_tickets`` — the snapshot of a ticket, with its title, assignee,
  customer and group — together with its ``engine_clocks`` (timelines), once
  the ticket is settled: none of its clocks is open (running or paused: the
  resolution clock stops when it is resolved or closed), and neither the
  ticket nor any of its clocks changed, nor did a clock stop, since the
  cutoff. A ticket that still has an open clock is never deleted, however
  old. A compliance report counts the tickets created in its period, and a
  deleted ticket was created before its clocks ended, before the cutoff: the
  reports of every period since the cutoff stay whole. The cutoff is moved
  back to the start of its calendar month (``month_start``), so every
  monthly report of the last 13 months (by default) stays whole, and a
  yearly report while its year began less than the retention ago; an older
  period's report lacks the tickets settled before the cutoff. A ticket the
  engine never tracked (no policy, or no target for its priority: no clock)
  goes once nothing changed it for as long. An event
  for a ticket deleted this way is refused as for an unknown ticket
  (``unknown_ticket``).
- ``engine_dead_letters`` last seen before the cutoff (their raw records
  carry whatever the events carried).

Processed event ids and published outbox rows go far sooner
(``SLAWATCH_DEDUP_RETENTION_DAYS``, ``store.prune``); outages, budget stages
and report issues name no person and stay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from slawatch_common.retention import Dependent, Pruner, Rule
from slawatch_common.settings import ServiceSettings
from slawatch_engine import store
from slawatch_engine.clock import State

OPEN_STATES = (State.RUNNING.value, State.PAUSED.value)


def _ticket_settled(cutoff: datetime) -> sa.ColumnElement[bool]:
    """No clock of the ticket is open, changed or stopped since ``cutoff``."""
    clock = store.clocks.alias("retained_clock")
    lively = (
        sa.select(clock.c.id)
        .where(
            clock.c.ticket_key == store.tickets.c.key,
            sa.or_(
                clock.c.state.in_(OPEN_STATES),
                clock.c.updated_at >= cutoff,
                clock.c.stopped_at >= cutoff,
                clock.c.last_entry_at >= cutoff,
            ),
        )
        .correlate(store.tickets)
    )
    return ~sa.exists(lively)


RULES = (
    Rule(
        store.tickets,
        "updated_at",
        _ticket_settled,
        (Dependent(store.clocks, ("ticket_key",), ("key",)),),
    ),
    Rule(store.dead_letters, "last_seen"),
)


def pruner(
    settings: ServiceSettings, registry: CollectorRegistry, now: Callable[[], datetime]
) -> Pruner:
    """The engine's pruner (``RULES``), keeping rows ``settings.retention_days`` after they
    settled; run it with the lock the intake and the timer hold around their transactions."""
    return Pruner.of_settings(RULES, settings, registry, now, "sla-engine", align=month_start)


def month_start(instant: datetime) -> datetime:
    """The start of ``instant``'s calendar month in the zone furthest ahead of UTC (+14:00):
    no contract's month that has begun after it is cut into by the pruning."""
    ahead = instant.astimezone(UTC) + timedelta(hours=14)
    first = ahead.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first - timedelta(hours=14)
