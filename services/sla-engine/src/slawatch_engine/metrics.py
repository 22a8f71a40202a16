"""The engine's metrics: a closed vocabulary, registered once against a given registry.

Every label value is known up front and initialised, so each series exists
(at zero) from start-up and a dashboard never sees a missing series.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from slawatch_common.events import Priority, SlaEventType, TicketEventType
from slawatch_common.runtime import Heartbeats

REJECT_REASONS = ("invalid", "failed", "duplicate", "unknown_ticket", "no_policy")
DEAD_LETTER_REASONS = ("invalid", "failed")
LOOPS = ("intake", "timer", "publisher", "gauges", "prune")
OPEN_STATES = ("running", "paused")


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_in = Counter(
            "slawatch_engine_events_in_total",
            "Ticket events applied, by type.",
            ["type"],
            registry=registry,
        )
        self.events_rejected = Counter(
            "slawatch_engine_events_rejected_total",
            "Input records not applied, by reason.",
            ["reason"],
            registry=registry,
        )
        self.sla_events = Counter(
            "slawatch_engine_sla_events_total",
            "SLA events emitted (warnings, breaches, ...), by type and ticket priority.",
            ["type", "priority"],
            registry=registry,
        )
        self.clocks_open = Gauge(
            "slawatch_engine_clocks_open",
            "Open clocks held by this engine, by state.",
            ["state"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "slawatch_engine_outbox_published_total",
            "SLA events published from the outbox to Kafka.",
            registry=registry,
        )
        self.fire_lateness = Histogram(
            "slawatch_engine_fire_lateness_seconds",
            "Time from a stage's due instant to the commit of its SLA event.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300),
            registry=registry,
        )
        self.due_index = Gauge(
            "slawatch_engine_due_index_clocks",
            "Clocks with a stage ahead in this engine's in-memory timer index.",
            registry=registry,
        )
        self.gc_pause = Histogram(
            "slawatch_engine_gc_pause_seconds",
            "Pauses of Python's cyclic garbage collector in this process.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1),
            registry=registry,
        )
        self.dead_letters = Counter(
            "slawatch_engine_dead_letters_total",
            "Input records kept as dead letters instead of applied: invalid (cannot be read "
            "as a ticket event) or failed (applying it raised).",
            ["reason"],
            registry=registry,
        )
        self.timer_failures = Counter(
            "slawatch_engine_timer_failures_total",
            "Clocks whose due stage could not be fired (tried again later).",
            registry=registry,
        )
        self.heartbeats = Heartbeats(registry, "slawatch_engine", LOOPS)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for event_type in get_args(TicketEventType):
            self.events_in.labels(event_type)
        for reason in REJECT_REASONS:
            self.events_rejected.labels(reason)
        for sla_type in get_args(SlaEventType):
            for priority in Priority:
                self.sla_events.labels(sla_type, priority.value)
        for state in OPEN_STATES:
            self.clocks_open.labels(state)

    @contextmanager
    def timing_gc(self) -> Iterator[None]:
        """Observe every collector pause while the block runs (the engine's lifetime)."""
        started: list[float] = []

        def callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[:] = [time.perf_counter()]
            elif started:
                self.gc_pause.observe(time.perf_counter() - started.pop())

        gc.callbacks.append(callback)
        try:
            yield
        finally:
            gc.callbacks.remove(callback)

    def applied(self, event_type: str) -> None:
        self.events_in.labels(event_type).inc()

    def rejected(self, reason: str, count: int = 1) -> None:
        self.events_rejected.labels(reason).inc(count)

    def emitted(self, sla_type: str, priority: str) -> None:
        self.sla_events.labels(sla_type, priority).inc()

    def published(self, count: int) -> None:
        self.outbox_published.inc(count)

    def open_clocks(self, state: str, count: int) -> None:
        self.clocks_open.labels(state).set(count)
