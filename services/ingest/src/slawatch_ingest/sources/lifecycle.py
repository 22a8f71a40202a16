"""The ticket lifecycle as slawatch sees it, whatever the source calls its states.

Each source maps its own status names to slawatch's through the ``statuses``
map of its configuration. Three canonical statuses carry meaning here:

* ``pending_customer`` — waiting on the customer: the default policies pause
  their clocks on it;
* ``resolved`` — a change to it is ``ticket.resolved``;
* ``closed`` — a change to it is ``ticket.closed``.

Leaving ``resolved`` or ``closed`` for any other status is ``ticket.reopened``.
Statuses the map does not name pass through as the source wrote them, so a
policy can still pause on them by name.

Priorities map the same way (``priorities``: source name → P1–P5); a value
already written ``P1``…``P5`` needs no entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from slawatch_common.events import Priority, TicketEventType

V = TypeVar("V")

PENDING: Final = "pending_customer"
RESOLVED: Final = "resolved"
CLOSED: Final = "closed"
DONE = frozenset({RESOLVED, CLOSED})


def lookup(table: Mapping[str, V], raw: object) -> V | None:
    """``table[raw]``, comparing names without regard to case or surrounding space."""
    if raw is None:
        return None
    key = str(raw).strip().casefold()
    for name, value in table.items():
        if name.strip().casefold() == key:
            return value
    return None


def status_of(raw: object, statuses: Mapping[str, str]) -> str | None:
    """The canonical status of the source's ``raw`` status: mapped, else as written."""
    if raw is None or str(raw).strip() == "":
        return None
    mapped = lookup(statuses, raw)
    return mapped if mapped is not None else str(raw).strip()


def priority_of(raw: object, priorities: Mapping[str, Priority]) -> Priority | None:
    """The priority the source's ``raw`` value means, or ``None`` when the map has none."""
    mapped = lookup(priorities, raw)
    if mapped is not None:
        return mapped
    text = str(raw).strip().upper() if raw is not None else ""
    return Priority(text) if text in Priority.__members__ else None


def transition(before: str | None, after: str | None) -> TicketEventType:
    """The event type of a status change between canonical statuses.

    ``before`` may be unknown (``None``): then only arriving at ``resolved`` or
    ``closed`` is recognised; a reopen needs the status it left.
    """
    if after == RESOLVED:
        return "ticket.resolved"
    if after == CLOSED:
        return "ticket.closed"
    if before in DONE:
        return "ticket.reopened"
    return "ticket.status_changed"
