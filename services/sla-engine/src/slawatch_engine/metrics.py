"""The engine's metrics: a closed vocabulary, registered once against a given registry.

Every label value is known up front and initialised, so each series exists
(at zero) from start-up and a dashboard never sees a missing series.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from slawatch_common.events import Priority, SlaEventType, TicketEventType
from slawatch_common.runtime import Heartbeats

if TYPE_CHECKING:
    from slawatch_engine.availability import GroupFigures
    from slawatch_engine.ledger import Changes
    from slawatch_engine.policy import PolicyBook

REJECT_REASONS = ("invalid", "failed", "duplicate", "unknown_ticket", "no_policy")
DEAD_LETTER_REASONS = ("invalid", "failed")
LOOPS = (
    "intake",
    "timer",
    "publisher",
    "gauges",
    "prune",
    "monitoring",
    "budgets",
    "allowances",
    "reports",
)
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


REPORTED_METRICS = ("response", "resolution")
OUTCOMES = ("met", "breached")
RESPONSE_BUCKETS = (60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
RATING_BUCKETS = (20, 40, 60, 80, 90, 100)


class ComplianceMetrics:
    """Compliance series per contract (``deploy/prometheus/rules`` records the six
    indicators from them, and alerts on their error budgets).

    A ticket of a policy that several contracts name counts for each of them.
    The availability counters hold the current period so far and restart from
    zero when the next period begins (a counter reset to Prometheus).
    """

    def __init__(self, registry: CollectorRegistry, book: PolicyBook) -> None:
        self._book = book
        self.completed = Counter(
            "slawatch_compliance_clocks_completed_total",
            "Response and resolution clocks stopped, by outcome: met (stopped at or before "
            "the deadline) or breached.",
            ["contract", "policy", "metric", "priority", "outcome"],
            registry=registry,
        )
        self.response_seconds = Histogram(
            "slawatch_compliance_response_business_seconds",
            "Business seconds a response clock counted until it stopped.",
            ["contract", "policy", "priority"],
            buckets=RESPONSE_BUCKETS,
            registry=registry,
        )
        self.ratings = Histogram(
            "slawatch_compliance_rating_percent",
            "Customer ratings, in percent of their scale.",
            ["contract", "policy"],
            buckets=RATING_BUCKETS,
            registry=registry,
        )
        objective_ratio = Gauge(
            "slawatch_compliance_objective_ratio",
            "A contract's target of a rate (met when >=, or for the overdue rate when <).",
            ["contract", "indicator"],
            registry=registry,
        )
        objective_seconds = Gauge(
            "slawatch_compliance_objective_seconds",
            "A contract's target of the mean response time (met when <=).",
            ["contract", "indicator"],
            registry=registry,
        )
        availability_objective = Gauge(
            "slawatch_compliance_availability_objective_ratio",
            "A contract's availability target of a group of services (met when >=).",
            ["contract", "group"],
            registry=registry,
        )
        self.allowance = Gauge(
            "slawatch_compliance_allowance",
            "More late items the current period tolerates before the target is missed "
            "(negative: missed by that many).",
            ["contract", "indicator"],
            registry=registry,
        )
        self.availability = AvailabilityCollector()
        registry.register(self.availability)
        for name, contract in book.contracts.items():
            targets = contract.targets
            objective_ratio.labels(name, "on_time_resolution_rate").set(
                targets.on_time_resolution_rate / 100
            )
            objective_ratio.labels(name, "response_overdue_rate").set(
                targets.response_overdue_rate / 100
            )
            objective_ratio.labels(name, "mean_satisfaction").set(targets.mean_satisfaction / 100)
            objective_seconds.labels(name, "mean_response_time").set(targets.mean_response_time)
            for group, figures in contract.availability.items():
                availability_objective.labels(name, group).set(figures.target / 100)
            for policy in contract.policies:
                self.ratings.labels(name, policy)
                for priority in Priority:
                    self.response_seconds.labels(name, policy, priority.value)
                    for metric in REPORTED_METRICS:
                        for outcome in OUTCOMES:
                            self.completed.labels(name, policy, metric, priority.value, outcome)

    def count(self, changes: Changes) -> None:
        """Count what a committed transaction completed and rated."""
        for done in changes.completed:
            outcome = "met" if done.met else "breached"
            for contract in self._book.contracts_of(done.policy):
                self.completed.labels(
                    contract, done.policy, done.metric.value, done.priority, outcome
                ).inc()
                if done.metric.value == "response":
                    self.response_seconds.labels(contract, done.policy, done.priority).observe(
                        done.business_seconds
                    )
        for rated in changes.rated:
            for contract in self._book.contracts_of(rated.policy):
                self.ratings.labels(contract, rated.policy).observe(rated.percent)


class AvailabilityCollector(Collector):
    """The availability series from the latest figures of each contract's groups.

    The outage counter never goes down within a period: an alert counts as down up to
    now while it fires, and its resolution may come later dated earlier (Alertmanager
    sends it a group interval after ``endsAt``); Prometheus would read the drop as a
    counter reset and count the whole period's outage again in every window. So the
    counter is taken from the ``counted`` figures (each interval as far as it was ever
    counted, kept in the database: the same after a restart and in every engine), and
    holds the most it has shown this period besides.
    """

    def __init__(self) -> None:
        self._figures: dict[tuple[str, str], GroupFigures] = {}
        self._most: dict[tuple[str, str, str], tuple[datetime, float]] = {}

    def update(
        self,
        contract: str,
        group: str,
        figures: GroupFigures,
        counted: GroupFigures | None = None,
    ) -> None:
        self._figures[(contract, group)] = figures
        for service in (counted or figures).services:
            key = (contract, group, service.service)
            period, most = self._most.get(key, (figures.start, 0.0))
            if period != figures.start:
                most = 0.0
            self._most[key] = (figures.start, max(most, service.outage_seconds))

    def outage_seconds(self, contract: str, group: str, service: str) -> float:
        return self._most.get((contract, group, service), (None, 0.0))[1]

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        outage, planned, monitored, availability, budget = self._families()
        for (contract, group), figures in sorted(self._figures.items()):
            for service in figures.services:
                labels = [contract, group, service.service]
                outage.add_metric(labels, self.outage_seconds(contract, group, service.service))
                planned.add_metric(labels, service.planned_seconds)
                monitored.add_metric(labels, service.period_seconds - service.planned_seconds)
            if figures.availability is not None:
                availability.add_metric([contract, group], figures.availability / 100)
            budget.add_metric([contract, group], figures.budget_remaining_ratio)
        return [outage, planned, monitored, availability, budget]

    @staticmethod
    def _families() -> list[Any]:
        service_labels = ["contract", "group", "service"]
        group_labels = ["contract", "group"]
        return [
            CounterMetricFamily(
                "slawatch_compliance_outage_seconds",
                "Unplanned outage of a monitored service in the current period so far "
                "(outside maintenance; overlapping alerts counted once).",
                labels=service_labels,
            ),
            CounterMetricFamily(
                "slawatch_compliance_planned_seconds",
                "Planned maintenance of a monitored service in the current period so far.",
                labels=service_labels,
            ),
            CounterMetricFamily(
                "slawatch_compliance_monitored_seconds",
                "The current period so far minus its maintenance, per monitored service.",
                labels=service_labels,
            ),
            GaugeMetricFamily(
                "slawatch_compliance_availability_ratio",
                "A group's availability in the current period so far.",
                labels=group_labels,
            ),
            GaugeMetricFamily(
                "slawatch_compliance_error_budget_remaining_ratio",
                "Share of the group's error budget for the whole current period left "
                "(negative once overspent).",
                labels=group_labels,
            ),
        ]
