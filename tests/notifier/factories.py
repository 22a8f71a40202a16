"""Plain test data: SLA events and configuration files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier.acklink import DEV_SECRET
from slawatch_notifier.addresses import AddressHasher

STARTED = datetime(2026, 11, 26, 0, 15, tzinfo=UTC)

HASHER = AddressHasher(DEV_SECRET.encode())
"""What records show for an address in the tests: the service's without SLAWATCH_ACK_SECRET."""

EVENT_ADDRESSES: dict[str, Any] = {
    "sources": ["jira"],
    "mail_domains": ["example.com"],
    "phone_prefixes": ["+86"],
}
"""``notifier.event_addresses`` of ``CONFIG``: the addresses Jira events give for assignees
who are not configured (li.wei) are used, within example.com and +86."""

CONFIG: dict[str, Any] = {
    "people": {
        "oncall": {
            "name": "On-call engineer",
            "email": "oncall@example.com",
            "phone": "+8613800000002",
        },
        "supervisor": {"name": "Service desk supervisor", "email": "supervisor@example.com"},
    },
    "event_addresses": EVENT_ADDRESSES,
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
    stage: str | None = "warning:75",
    *,
    ticket_id: str = "OPS-42",
    metric: str = "response",
    escalation: str | None = "standard",
    assignee: dict[str, str] | None = ASSIGNEE,
    event_type: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    group: str | None = None,
    cycle: int = 1,
) -> SlaEvent:
    """A warning (``warning:<pct>``) or breach (``breach``) event for a P1 ticket.

    With ``event_type`` any SLA event (``sla.met`` …); ``occurred_at`` defaults
    to the instant the stage's share of the 15-minute target was used.
    """
    target = 900
    digits = (stage or "").partition(":")[2]
    percent = 100 if stage == "breach" else int(digits) if digits.isdigit() else 50
    used = target * percent // 100
    kind = event_type or ("sla.breach" if stage == "breach" else "sla.warning")
    at = occurred_at or STARTED + timedelta(seconds=used)
    return SlaEvent.model_validate(
        {
            "event_id": event_id or f"jira:{ticket_id}:{metric}:{kind}:{stage}:{cycle}",
            "type": kind,
            "occurred_at": at.isoformat(),
            "source": "slawatch-engine",
            "data": {
                "ticket": {
                    "source": "jira",
                    "id": ticket_id,
                    "priority": "P1",
                    "title": "Core switch down in building B",
                    "service": "network",
                    "assignee": assignee,
                    "group": group,
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
                    "cycle": cycle,
                },
                "stage": stage,
                "threshold_percent": percent if stage else None,
            },
        }
    )


def write_config(
    folder: Path,
    notifier: dict[str, Any] | None = None,
    contracts: dict[str, Any] | None = None,
) -> Path:
    """A slawatch.yaml with an engine section to ignore, the engine's ``contracts`` section if
    given (the notifier reads each contract's ``report_to``) and the given notifier section."""
    document: dict[str, Any] = {"calendars": {"always": {"timezone": "UTC", "always_open": True}}}
    if contracts is not None:
        document["contracts"] = contracts
    document["notifier"] = notifier if notifier is not None else CONFIG
    path = folder / "slawatch.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


NOW = datetime(2026, 11, 26, 4, 15, tzinfo=UTC)
"""A fake ``now`` for pure tests: after every instant of ``sla_event``."""

ESCALATING: dict[str, Any] = {
    "people": {
        "li.wei": {"name": "Li Wei", "email": "li.wei@example.com", "supervisor": "wang.fang"},
        "zhao.lei": {
            "name": "Zhao Lei",
            "email": "zhao.lei@example.com",
            "phone": "+8613800000011",
            "locale": "zh-CN",
            "supervisor": "wang.fang",
        },
        "chen.jie": {
            "name": "Chen Jie",
            "email": "chen.jie@example.com",
            "phone": "+8613800000012",
            "supervisor": "wang.fang",
        },
        "wang.fang": {
            "name": "Wang Fang",
            "email": "wang.fang@example.com",
            "phone": "+8613800000020",
            "locale": "en",
        },
    },
    "groups": {
        "l2": {
            "name": "Second line",
            "members": ["zhao.lei", "chen.jie"],
            "robots": {"dingtalk": "l2-robot"},
        },
    },
    "channels": {"dingtalk": {"l2-robot": {"access_token": "l2-robot-token"}}},
    "schedules": {
        # zhao.lei from 09:00 UTC each day, chen.jie from 09:00 the next, and so on
        "l2": {
            "time_zone": "UTC",
            "rotations": [
                {
                    "people": ["zhao.lei", "chen.jie"],
                    "shift": "daily",
                    "handoff": "09:00",
                    "start": "2026-11-01",
                }
            ],
        },
    },
    "escalations": {
        "tiered": [
            {"on": "warning", "notify": [{"to": "assignee", "via": "email"}]},
            {"on": "breach", "notify": [{"to": "oncall:l2", "via": "sms"}]},
            {
                "on": "breach",
                "after": "1s",
                "notify": [
                    {"to": "supervisor:oncall:l2", "via": "sms"},
                    {"to": "supervisor:oncall:l2", "via": "email"},
                ],
            },
        ],
        "chasing": [
            {
                "on": "breach",
                "repeat": {"every": "10m", "times": 2},
                "notify": [{"to": "group:l2", "via": "dingtalk"}],
            },
            {
                "on": "breach",
                "after": "30m",
                "notify": [{"to": "supervisor:assignee", "via": "email"}],
            },
        ],
    },
}
"""A chain over the support lines: warnings to the assignee, the breach to L2's on-call,
their supervisor a second later unless someone acknowledged (``tiered``); and one that
repeats and waits (``chasing``)."""


def slots(free: int) -> dict[Channel, int]:
    """``free`` dispatch slots on every channel (``store.claim_due``)."""
    return dict.fromkeys(Channel, free)
