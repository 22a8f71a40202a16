"""Plain test data: SLA events and configuration files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from slawatch_common.events import SlaEvent

STARTED = datetime(2026, 11, 26, 0, 15, tzinfo=UTC)

CONFIG: dict[str, Any] = {
    "people": {
        "oncall": {
            "name": "On-call engineer",
            "email": "oncall@example.com",
            "phone": "+8613800000002",
        },
        "supervisor": {"name": "Service desk supervisor", "email": "supervisor@example.com"},
    },
    "escalations": {
        "standard": [
            {"on": "warning", "notify": [{"to": "assignee", "via": "email"}]},
            {
                "on": "breach",
                "notify": [{"to": "oncall", "via": "sms"}, {"to": "supervisor", "via": "email"}],
            },
        ],
    },
}

ASSIGNEE = {"id": "li.wei", "name": "Li Wei", "email": "li.wei@example.com"}


def sla_event(
    stage: str = "warning:75",
    *,
    ticket_id: str = "OPS-42",
    metric: str = "response",
    escalation: str | None = "standard",
    assignee: dict[str, str] | None = ASSIGNEE,
    event_type: str | None = None,
) -> SlaEvent:
    """A warning (``warning:<pct>``) or breach (``breach``) event for a P1 ticket."""
    target = 900
    digits = stage.partition(":")[2]
    percent = 100 if stage == "breach" else int(digits) if digits.isdigit() else 50
    used = target * percent // 100
    return SlaEvent.model_validate(
        {
            "event_id": f"jira:{ticket_id}:{metric}:{stage}:1",
            "type": event_type or ("sla.breach" if stage == "breach" else "sla.warning"),
            "occurred_at": (STARTED + timedelta(seconds=used)).isoformat(),
            "source": "slawatch-engine",
            "data": {
                "ticket": {
                    "source": "jira",
                    "id": ticket_id,
                    "priority": "P1",
                    "title": "Core switch down in building B",
                    "service": "network",
                    "assignee": assignee,
                },
                "clock": {
                    "clock_id": f"jira:{ticket_id}:{metric}",
                    "metric": metric,
                    "policy": "network-critical",
                    "escalation": escalation,
                    "target_seconds": target,
                    "business_seconds_used": used,
                    "started_at": STARTED.isoformat(),
                    "deadline": (STARTED + timedelta(seconds=target)).isoformat(),
                },
                "stage": stage,
                "threshold_percent": percent,
            },
        }
    )


def write_config(folder: Path, notifier: dict[str, Any] | None = None) -> Path:
    """A slawatch.yaml with an engine section to ignore and the given notifier section."""
    document = {"calendars": {"always": {"timezone": "UTC", "always_open": True}}}
    document["notifier"] = notifier if notifier is not None else CONFIG
    path = folder / "slawatch.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
