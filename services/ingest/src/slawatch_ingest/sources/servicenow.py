"""ServiceNow → ticket events, through the generic mapping with a default for a business rule.

ServiceNow has no standard outbound webhook: an "after" business rule on the
incident table builds the body and sends it (``sn_ws.RESTMessageV2``). The
default mapping reads the body the rule in ``services/ingest/README.md``
builds — the incident's own column names (``number``, ``state``,
``priority``, ``urgency``, ``impact``, ``short_description``,
``sys_updated_on``, ``opened_at``…) plus ``event`` (``current.operation()``,
or ``comment`` for a customer-visible comment by an agent) and the
``previous_state``/``previous_priority`` before the change. Any key of the
mapping can be replaced in configuration.

Incident states: 1 New, 2 In Progress, 3 On Hold (``pending_customer``, as
ServiceNow's own SLA definitions pause on it), 6 Resolved, 7 Closed,
8 Canceled (closed). Priorities 1–5 are P1–P5.
"""

from __future__ import annotations

from typing import Any

from slawatch_ingest.sources.generic import normalise
from slawatch_ingest.sources.lifecycle import CLOSED, PENDING, RESOLVED

DEFAULTS: dict[str, Any] = {
    "priorities": {
        **{str(n): f"P{n}" for n in range(1, 6)},
        "1 - Critical": "P1",
        "2 - High": "P2",
        "3 - Moderate": "P3",
        "4 - Low": "P4",
        "5 - Planning": "P5",
    },
    "statuses": {
        "1": "new",
        "2": "in_progress",
        "3": PENDING,
        "6": RESOLVED,
        "7": CLOSED,
        "8": CLOSED,
    },
    "mapping": {
        "ticket_id": "/number",
        "event": "/event",
        "events": {
            "insert": "ticket.created",
            "update": "derive",
            "comment": "ticket.responded",
            "delete": "ignore",
        },
        "occurred_at": ["/sys_updated_on", "/opened_at"],
        "created_at": "/opened_at",
        "delivery_id": "/sys_mod_id",
        "previous": {"status": "/previous_state", "priority": "/previous_priority"},
        "fields": {
            "status": "/state",
            "priority": "/priority",
            "urgency": "/urgency",
            "impact": "/impact",
            "title": "/short_description",
            "customer": "/company",
            "service": "/business_service",
            "type": "/category",
            "group": "/assignment_group",
            "assignee.id": "/assigned_to",
        },
    },
}

__all__ = ["DEFAULTS", "normalise"]
