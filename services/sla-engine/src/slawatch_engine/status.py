"""The status view of a ticket's clocks: how far along its deadline each one is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slawatch_engine import clock as clocks
from slawatch_engine.calendar import Calendar
from slawatch_engine.clock import Clock


def clock_status(clock: Clock, calendar: Calendar, now: datetime) -> dict[str, Any]:
    """One clock as the operator sees it at ``now`` (business seconds, rounded down)."""
    used = clocks.used_at(clock, now, calendar)
    deadline = clocks.deadline(clock, calendar)
    return {
        "clock_id": clock.id,
        "metric": clock.metric.value,
        "state": clock.state.value,
        "policy": clock.policy,
        "calendar": clock.calendar,
        "target_seconds": clock.target_seconds,
        "business_seconds_used": int(used),
        "remaining_seconds": max(0, int(clock.target_seconds - used)),
        "percent_used": round(100 * used / clock.target_seconds, 1)
        if clock.target_seconds
        else 100.0,
        "started_at": clock.started_at.isoformat(),
        "deadline": deadline.isoformat() if deadline else None,
        "breached": clock.breached,
        "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
        "stages_passed": [
            "breach" if p >= clocks.BREACH_PERCENT else f"warning:{p}"
            for p in clock.stages[: clock.next_stage]
        ],
    }
