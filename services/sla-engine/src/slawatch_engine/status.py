"""The status view of a ticket's clocks: how far along its deadline each one is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slawatch_engine.calendar import Calendar
from slawatch_engine.clock import Clock, State, replay


def clock_status(clock: Clock, calendar: Calendar, now: datetime) -> dict[str, Any]:
    """One clock as the operator sees it at ``now``: time used, left, pauses and history."""
    view = replay(clock, calendar)
    used = view.used_at(now, calendar)
    return {
        "clock_id": clock.id,
        "metric": clock.metric.value,
        "state": view.state.value,
        "policy": clock.policy,
        "calendar": clock.calendar,
        "cycle": view.cycle,
        "target_seconds": view.target,
        "business_seconds_used": int(used),
        "remaining_seconds": max(0, int(view.target - used)),
        "percent_used": round(100 * used / view.target, 1) if view.target else 100.0,
        "started_at": view.started_at.isoformat(),
        "deadline": view.deadline.isoformat() if view.deadline and view.is_open else None,
        "breached": view.breached_by(now),
        "stopped_at": view.stopped_at.isoformat() if view.stopped_at else None,
        "stages": {stage: at.isoformat() if at else None for stage, at in view.crossings.items()},
        "stages_done": sorted(clock.fired),
        "pauses": _pauses(clock),
        "history": [entry.to_json() for entry in clock.timeline],
    }


def _pauses(clock: Clock) -> list[list[str | None]]:
    """``[from, to]`` of every pause, ``to`` null while still paused."""
    spans: list[list[str | None]] = []
    paused = False
    for entry in clock.timeline:
        if entry.kind == "pause" and not paused:
            spans.append([entry.at.isoformat(), None])
            paused = True
        elif entry.kind in ("resume", "stop", "cancel", "restart") and paused:
            spans[-1][1] = entry.at.isoformat()
            paused = False
    return spans


__all__ = ["State", "clock_status"]
