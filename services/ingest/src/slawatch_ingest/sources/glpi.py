"""GLPI 11 webhooks → ticket events, through the generic mapping with GLPI's default payload.

GLPI 11 sends ``{"event": "new" | "update" | "delete", "item": …}`` where the
item is the ticket in GLPI's high-level API shape (``id``, ``name``,
``status: {id, name}``, ``urgency``, ``impact``, ``priority``, ``type``,
``entity``, ``category``, ``date_creation``, ``date_mod``…), unless the
webhook has a custom payload — then replace the mapping's keys to fit it.
It signs with ``X-GLPI-signature`` (hex HMAC-SHA256 of the body followed by
``X-GLPI-timestamp``). GLPI queues webhooks and its cron sends them later,
with the timestamp of when they were queued, so the replay window is a day
by default.

Statuses: 1 New, 2 Processing (assigned), 3 Processing (planned), 4 Pending
(``pending_customer``), 5 Solved (resolved), 6 Closed. Priorities: 6 Major
and 5 Very high are P1, 4 High P2, 3 Medium P3, 2 Low P4, 1 Very low P5.
Ticket type 1 is an incident, 2 a service request.
"""

from __future__ import annotations

from typing import Any

from slawatch_ingest.sources.generic import normalise
from slawatch_ingest.sources.lifecycle import CLOSED, PENDING, RESOLVED

DEFAULTS: dict[str, Any] = {
    "priorities": {"6": "P1", "5": "P1", "4": "P2", "3": "P3", "2": "P4", "1": "P5"},
    "statuses": {
        "1": "new",
        "2": "assigned",
        "3": "planned",
        "4": PENDING,
        "5": RESOLVED,
        "6": CLOSED,
    },
    "replay_window_s": 86400,
    "mapping": {
        "ticket_id": "/item/id",
        "event": "/event",
        "events": {"new": "ticket.created", "update": "derive", "delete": "ignore"},
        "occurred_at": ["/item/date_mod", "/item/date_creation"],
        "created_at": "/item/date_creation",
        "fields": {
            "status": "/item/status/id",
            "priority": "/item/priority",
            "urgency": "/item/urgency",
            "impact": "/item/impact",
            "title": "/item/name",
            "type": "/item/type",
            "customer": "/item/entity/name",
            "service": "/item/category/name",
        },
        "values": {"type": {"1": "incident", "2": "service_request"}},
    },
}

__all__ = ["DEFAULTS", "normalise"]
