"""The result of a run: figures from the SLA records and the readings taken.

Pure: ``analyse`` takes the plan, every record the SLA topic held and what the
run observed, and returns the result dict. Lateness is the broker's append time
minus the crossing instant the event carries, over every warning and breach due
in the window. ``coverage`` checks every band stage: emitted once, passed over
by a higher stage, or missed; stopped clocks must not breach.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.scale.plan import DOWN_S, SOURCE, Plan
from bench.scale.probes import Tables
from bench.scale.topics import Emitted
from slawatch_engine.clock import BREACH

STAGE_TYPES = frozenset({"sla.warning", "sla.breach"})


@dataclass
class Observed:
    """What the run measured beside the SLA records (instants: epoch seconds)."""

    seed_s: float = 0.0
    rss_empty: int = 0
    rss_loaded: int = 0
    rss_window_max: int = 0
    rss_peak: int = 0
    load_s: float = 0.0
    cpu_window_s: float = 0.0
    cpu_window_wall: float = 1.0
    machine_busy_s: float = 0.0
    sessions: dict[str, int] = field(default_factory=dict)
    """The engine's database sessions sampled through the window, by state and wait."""
    tables: Tables = field(default_factory=dict)
    assignments: dict[str, int] = field(default_factory=dict)
    """Partition assignments of each engine (one each is the healthy case: each one
    reloads every clock)."""
    late_stops: int = 0
    killed: float = 0.0
    spawn2: float = 0.0
    release2: float = 0.0
    ingest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """The engine's /metrics when ready (``ready``) and at the window's end (``window``)."""


def analyse(plan: Plan, records: list[Emitted], observed: Observed) -> dict[str, Any]:
    copies: Counter[str] = Counter(r.event_id for r in records)
    first: dict[str, Emitted] = {}
    for record in sorted(records, key=lambda r: r.appended_ms):
        first.setdefault(record.event_id, record)
    events = list(first.values())  # each event once, at its first append
    stages = [e for e in events if e.type in STAGE_TYPES]
    window = [e for e in stages if plan.start <= e.at <= plan.window_end]
    lateness = sorted(e.appended_ms - e.at * 1000 for e in window)
    return {
        "open_clocks": plan.clocks,
        **_memory(plan, observed),
        "engine_load_clocks_s": round(observed.load_s, 1),
        "window_s": plan.window_s,
        "due_per_s_in_window": round(_expected_in_window(plan) / (plan.window_end - plan.start)),
        "window_moved_s": round(plan.start - plan.w0, 1),
        "window_stage_events": len(window),
        "lateness_ms": percentiles(lateness),
        "lateness_p99_ms_by_30s": _by_slice(plan, window),
        "early": sum(e.appended_ms < math.floor(e.at * 1000) for e in stages),
        **coverage(plan, stages, events, observed.release2),
        "republished": sum(n - 1 for n in copies.values()),
        "engine_cpu_cores_in_window": round(observed.cpu_window_s / observed.cpu_window_wall, 2),
        "machine_busy_cores_in_window": round(
            observed.machine_busy_s / observed.cpu_window_wall, 2
        ),
        "engine_metrics_window": _metrics_delta(observed.metrics),
        "ingest": observed.ingest,
        "late_stops": observed.late_stops,
        "engine_assignments": observed.assignments,
        "postgres_sessions_sampled": dict(sorted(observed.sessions.items(), key=lambda x: -x[1])),
        "postgres_tables": observed.tables,
        **_restart(events, observed),
        "seed_s": round(observed.seed_s),
        "load": _load(plan),
    }


def _memory(plan: Plan, observed: Observed) -> dict[str, int]:
    return {
        "rss_empty_bytes": observed.rss_empty,
        "rss_loaded_bytes": observed.rss_loaded,
        "rss_bytes_per_clock": round((observed.rss_loaded - observed.rss_empty) / plan.clocks),
        "rss_window_max_bytes": observed.rss_window_max,
        "rss_peak_bytes": observed.rss_peak,
    }


def _load(plan: Plan) -> str:
    return (
        f"{plan.clocks:,} open clocks ({plan.tickets:,} tickets, 2 clocks each) seeded by COPY; "
        f"band of {plan.per_s * (len(plan.leads) - 0.3):.0f} stages due/s "
        f"({plan.per_s:.0f} P1 response deadlines/s and their warnings) through a "
        f"{plan.window_s:.0f} s window, 30 % of those due from its 60th second stopped "
        f"via Kafka 10-60 s before the deadline; slawatch-ingest at "
        f"{plan.ingest_rate:.0f} single events/s (0: none; half new tickets, half updates) "
        f"through the window; SIGKILL, {DOWN_S:.0f} s down, restart; 4 partitions, "
        "PostgreSQL 15"
    )


def _expected_in_window(plan: Plan) -> int:
    count = 0
    for j in range(plan.band):
        due, stop = plan.deadline(j), plan.stop_of(j)
        for lead in plan.leads.values():
            at = due - lead
            count += plan.start <= at <= plan.window_end and (stop is None or at < stop)
    return count


def coverage(
    plan: Plan, stages: list[Emitted], events: list[Emitted], horizon: float
) -> dict[str, int]:
    """Every band stage crossed from the window's start until ``horizon`` (the restarted
    engine's timer released): emitted once, or passed over by a higher stage of its
    clock (right after a restart only), or missed; stopped clocks must not breach."""
    order = sorted(plan.leads, key=lambda s: -plan.leads[s])
    by_clock: dict[str, dict[str, list[Emitted]]] = defaultdict(lambda: defaultdict(list))
    for e in stages:
        by_clock[e.clock_id][e.stage or ""].append(e)
    met = {e.clock_id for e in events if e.type == "sla.met"}
    counts: Counter[str] = Counter()
    for j in range(plan.band):
        clock = f"{SOURCE}:b{j}:response"
        got = by_clock.pop(clock, {})
        due, stop = plan.deadline(j), plan.stop_of(j)
        counts["duplicate_stage_events"] += sum(len(v) - 1 for v in got.values())
        if stop is not None:
            counts["stopped"] += 1
            counts["false_breaches"] += BREACH in got
            counts["stopped_met"] += clock in met
        breach_at = min((e.appended_ms for e in got.get(BREACH, [])), default=None)
        if breach_at is not None:
            counts["warning_after_breach"] += sum(
                e.appended_ms > breach_at for s, v in got.items() if s != BREACH for e in v
            )
        for stage in order:
            at = due - plan.leads[stage]
            if at <= plan.w0:
                counts["unexpected"] += stage in got  # fired before the window: never again
                continue
            if at >= horizon or (stop is not None and at >= stop) or stage in got:
                continue
            where = "" if plan.start <= at <= plan.window_end else "_outside_window"
            if any(s in got for s in order[order.index(stage) + 1 :]):
                counts["passed_over" + where] += 1
            else:
                counts[("missed" if stage == BREACH else "missed_warnings") + where] += 1
    counts["unexpected"] += sum(len(v) for got in by_clock.values() for v in got.values())
    counts["retracted"] = sum(e.type == "sla.retracted" for e in events)
    keys = (
        *("missed", "missed_warnings", "false_breaches", "stopped", "stopped_met", "unexpected"),
        *("duplicate_stage_events", "warning_after_breach", "passed_over", "retracted"),
        *("missed_outside_window", "missed_warnings_outside_window"),
        "passed_over_outside_window",
    )
    return {key: counts[key] for key in keys}


def _restart(events: list[Emitted], observed: Observed) -> dict[str, Any]:
    """From the new engine's spawn: its first record, its first stage crossed after the
    kill, and the overdue backlog (stages crossed before its timer was released)."""
    after = sorted(
        (e for e in events if e.appended >= observed.spawn2), key=lambda e: e.appended_ms
    )
    backlog = [e for e in after if e.type in STAGE_TYPES and e.at < observed.release2]
    first = after[0] if after else None
    # crossed after the kill: fired by the new engine's timer, not left in the outbox
    fired = next((e for e in after if e.type in STAGE_TYPES and e.at > observed.killed), None)
    span = (backlog[-1].appended - backlog[0].appended) if len(backlog) > 1 else 0.0
    return {
        "restart_first_emission_s": _since(first, observed.spawn2),
        "restart_first_emission": (
            f"{first.type} {first.stage} due {first.at - observed.killed:+.1f} s from the kill"
            if first
            else None
        ),
        "restart_first_fired_s": _since(fired, observed.spawn2),
        "restart_timer_released_s": round(observed.release2 - observed.spawn2, 2),
        "backlog": len(backlog),
        "backlog_drain_per_s": round((len(backlog) - 1) / span) if span else None,
        "backlog_drain_s": round(span, 1),
        "down_s": round(observed.spawn2 - observed.killed, 1),
    }


def _since(event: Emitted | None, instant: float) -> float | None:
    return round(event.appended - instant, 2) if event else None


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p99, p99.9 and max of ``values``, sorted ascending (None when empty)."""

    def at(q: float) -> float | None:
        return round(values[min(len(values) - 1, int(q * len(values)))], 1) if values else None

    return {"p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": at(1.0)}


def _by_slice(plan: Plan, window: list[Emitted], width: float = 30.0) -> list[float | None]:
    slices: dict[int, list[float]] = defaultdict(list)
    for e in window:
        slices[int((e.at - plan.start) // width)].append(e.appended_ms - e.at * 1000)
    return [percentiles(sorted(slices[n]))["p99"] for n in range(max(slices, default=-1) + 1)]


def _metrics_delta(scrapes: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The engine's own counters over the window (from its ready state to the kill)."""
    before, after = scrapes.get("ready", {}), scrapes.get("window", {})

    def delta(prefix: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for key, value in after.items():
            if key.startswith(prefix):
                label = key[len(prefix) :].split("}")[0].split(",")
                totals[",".join(x for x in label if not x.startswith("priority="))] += (
                    value - before.get(key, 0.0)
                )
        return {k: v for k, v in totals.items() if v}

    buckets = delta("slawatch_engine_fire_lateness_seconds_bucket{")
    count = max(buckets.values(), default=0.0)
    return {
        "events_in": delta("slawatch_engine_events_in_total{"),
        "rejected": delta("slawatch_engine_events_rejected_total{"),
        "sla_events": delta("slawatch_engine_sla_events_total{"),
        "published": delta("slawatch_engine_outbox_published_total{").get("", 0.0),
        "fire_lateness_share_within_s": {
            k.removeprefix("le="): round(v / count, 4) for k, v in buckets.items()
        },
    }
