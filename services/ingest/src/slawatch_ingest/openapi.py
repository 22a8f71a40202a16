"""OpenAPI documentation of ``POST /v1/events``, whose body FastAPI cannot infer.

The endpoint reads the raw body itself (it takes three encodings), so the
request body is described here by hand, from the same models that validate it:
``event_schemas()`` goes into ``components/schemas`` and
``events_request_body()`` into the operation's ``openapi_extra``.
"""

from __future__ import annotations

from typing import Any

from slawatch_common.events import INBOUND_ADAPTER
from slawatch_ingest.parsing import NDJSON

COMPONENTS = "#/components/schemas/{model}"
INBOUND_EVENT = "InboundEvent"

_NDJSON_EXAMPLE = (
    '{"event_id": "jira:10042:created", "type": "ticket.created",'
    ' "occurred_at": "2026-11-26T08:15:00+08:00", "source": "jira",'
    ' "data": {"id": "OPS-42", "priority": "P1", "status": "open"}}\n'
    '{"event_id": "alertmanager:3f2a:firing", "type": "monitor.alert_firing",'
    ' "occurred_at": "2026-11-26T01:00:00Z", "source": "alertmanager",'
    ' "data": {"service": "core-network", "name": "InstanceDown", "fingerprint": "3f2a",'
    ' "starts_at": "2026-11-26T01:00:00Z"}}\n'
)


def event_schemas() -> dict[str, Any]:
    """``InboundEvent`` (ticket or monitoring event, by ``type``) and the models it uses."""
    schema = INBOUND_ADAPTER.json_schema(ref_template=COMPONENTS)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    schema["description"] = "A ticket event or a monitoring event, told apart by `type`."
    return {**definitions, INBOUND_EVENT: schema}


def events_request_body() -> dict[str, Any]:
    """The ``requestBody`` of ``POST /v1/events``: JSON object or array, or NDJSON."""
    event_ref = {"$ref": COMPONENTS.format(model=INBOUND_EVENT)}
    return {
        "requestBody": {
            "required": True,
            "description": (
                "One event, a non-empty array of events, or NDJSON (one event per line)."
                " The request is all-or-nothing: if any event is invalid, none is stored."
            ),
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            event_ref,
                            {"type": "array", "items": event_ref, "minItems": 1},
                        ]
                    }
                },
                NDJSON: {
                    "schema": {
                        "type": "string",
                        "description": f"One `{INBOUND_EVENT}` JSON object per line.",
                    },
                    "example": _NDJSON_EXAMPLE,
                },
            },
        }
    }
