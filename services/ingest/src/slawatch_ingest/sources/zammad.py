"""Zammad trigger webhooks (the default payload: ``ticket`` and ``article``) → ticket events.

Zammad sends the ticket as it is after the change, not the change itself, so
a delivery is read as a snapshot:

* its trigger (``X-Zammad-Trigger``) is named in ``triggers``: the event
  type configured for it;
* it brings the ticket's first article (``article_count`` 1):
  ``ticket.created`` at ``ticket.created_at``;
* it brings a public article (``internal`` false) sent by an ``Agent``:
  ``ticket.responded`` at the article's ``created_at`` (an internal note or a
  customer's article is no response);
* the state maps to ``closed`` (closed, merged, removed): ``ticket.closed`` at
  ``ticket.updated_at``; to ``resolved`` (none by default): ``ticket.resolved``;
* otherwise ``ticket.updated``, whose status pauses or resumes the clocks
  (pending reminder and pending close map to ``pending_customer``).

A reopen is a state change Zammad does not show in its payload; a trigger for
it ("state changed from closed") mapped to ``ticket.reopened`` in
``triggers`` makes one. The ticket id is the ticket number (``10081``); the
assignee is the owner (unless it is Zammad's system user, id 1); the customer
is the organization's name. ``X-Zammad-Delivery`` (the same on retries) is
the delivery id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slawatch_common.events import Ticket, TicketEvent, TicketEventType
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised, PayloadError, ticket_event
from slawatch_ingest.sources.config import SourceConfig, event_type
from slawatch_ingest.sources.instants import instant
from slawatch_ingest.sources.lifecycle import CLOSED, PENDING, RESOLVED
from slawatch_ingest.sources.paths import mapping_at
from slawatch_ingest.sources.tickets import build_ticket

DELIVERY_HEADER = "x-zammad-delivery"
TRIGGER_HEADER = "x-zammad-trigger"
SYSTEM_USER_ID = 1

DEFAULTS: dict[str, Any] = {
    "priorities": {"3 high": "P2", "2 normal": "P3", "1 low": "P4"},
    "statuses": {
        "pending reminder": PENDING,
        "pending close": PENDING,
        "closed": CLOSED,
        "merged": CLOSED,
        "removed": CLOSED,
    },
}


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The ticket events of one Zammad delivery (see the module docstring)."""
    ticket = body.get("ticket")
    if not isinstance(ticket, Mapping) or not ticket:
        raise PayloadError("ticket is missing")
    article = mapping_at(body.get("article"))
    snapshot = build_ticket(_raw(ticket), config, body)
    delivery = headers.get(DELIVERY_HEADER)

    def event(type_: TicketEventType, at: datetime) -> TicketEvent:
        return ticket_event(config.name, type_, at, snapshot, delivery=delivery)

    trigger = headers.get(TRIGGER_HEADER, "")
    rule = config.triggers.get(trigger)
    if rule == "ignore":
        detail = f"the trigger {trigger!r} is configured to be ignored"
        return Normalised.ignore(IgnoreReason.UNTRACKED_EVENT, detail)
    configured = event_type(rule) if rule is not None else None
    if configured is not None:
        return Normalised.of([event(configured, _at(ticket, "updated_at"))])
    if _creates(ticket, article):
        return Normalised.of([event("ticket.created", _at(ticket, "created_at"))])
    events = []
    if _agent_reply(article):
        events.append(event("ticket.responded", _at(article, "created_at")))
    state_event = _state_event(snapshot)
    if state_event is not None or not events:
        events.append(event(state_event or "ticket.updated", _at(ticket, "updated_at")))
    return Normalised.of(events)


def _raw(ticket: Mapping[str, Any]) -> dict[str, Any]:
    owner = mapping_at(ticket.get("owner"))
    owner_id = ticket.get("owner_id", owner.get("id"))
    assigned = owner_id not in (None, SYSTEM_USER_ID, str(SYSTEM_USER_ID))
    name = " ".join(str(owner[k]) for k in ("firstname", "lastname") if owner.get(k))
    return {
        "id": ticket.get("number") or ticket.get("id"),
        "status": ticket.get("state"),
        "priority": _name(ticket.get("priority")),
        "title": ticket.get("title"),
        "group": _name(ticket.get("group")),
        "customer": _name(ticket.get("organization")),
        "assignee.id": owner_id if assigned else None,
        "assignee.name": name if assigned else None,
        "assignee.email": owner.get("email") if assigned else None,
    }


def _creates(ticket: Mapping[str, Any], article: Mapping[str, Any]) -> bool:
    """Whether the delivery is the ticket's creation: it brings the first article."""
    if not article:
        return ticket.get("article_count") == 0
    return ticket.get("article_count") == 1


def _agent_reply(article: Mapping[str, Any]) -> bool:
    return bool(article) and article.get("sender") == "Agent" and article.get("internal") is False


def _state_event(ticket: Ticket) -> TicketEventType | None:
    if ticket.status == CLOSED:
        return "ticket.closed"
    if ticket.status == RESOLVED:
        return "ticket.resolved"
    return None


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, Mapping) else value


def _at(record: Mapping[str, Any], key: str) -> datetime:
    try:
        return instant(record.get(key))
    except ValueError as exc:
        raise PayloadError(f"{key}: {exc}") from exc
