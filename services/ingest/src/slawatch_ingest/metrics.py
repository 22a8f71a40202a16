"""The ingest service's metrics: a closed vocabulary, defined once, on a registry passed in.

Every label value a series can take is listed here and initialised at
start-up, so a dashboard sees zeros instead of missing series, and a typo in
a label value is a ``KeyError`` in tests rather than a silent new series.

| metric                                     | labels  | counts                               |
|--------------------------------------------|---------|--------------------------------------|
| slawatch_ingest_events_received_total      | type    | events in a readable body            |
| slawatch_ingest_events_produced_total      | type    | events the broker acknowledged       |
| slawatch_ingest_events_rejected_total      | reason  | events in a request answered 422/503 |
| slawatch_ingest_requests_rejected_total    | reason  | requests answered 4xx/503            |
| slawatch_ingest_request_duration_seconds   |         | POST /v1/events, start to answer     |
| slawatch_ingest_broker_failures_total      | reason  | batches the broker did not take      |
| slawatch_ingest_webhooks_total             | source, outcome | webhook deliveries, by end  |
| slawatch_ingest_webhook_ignored_total      | source, reason  | delivery parts unused       |
| slawatch_ingest_webhook_duration_seconds   | source  | POST /v1/webhooks/{source}           |
| slawatch_ingest_event_skew_seconds         |         | occurred_at minus the server's clock |
| slawatch_ingest_events_out_of_window_total | reason  | events with an instant out of window |

Requests and events are counted apart because a request refused before its
body is read (401, 413, malformed JSON) has no countable events. Webhook
series are labelled by the configured source names (known at start-up);
a request for an unknown source counts as ``requests_rejected{reason="unknown_source"}``.
A request refused because its client address failed authentication too
often (``ratelimit.FailureLimit``) counts as ``address_limited``: in
``webhooks{outcome}`` for a webhook, in ``requests_rejected{reason}`` for
``POST /v1/events``.
Events a webhook produced count in ``events_produced`` like any other.

``event_skew_seconds`` observes, for every event produced, its ``occurred_at``
minus this server's clock when the request arrived: negative for the past
(transit, a sender's queue), positive for a sender whose clock runs ahead.
An event with an instant outside the accepted window (``window``) is counted
once in ``events_out_of_window``, by the reason of its first such instant,
from either endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from slawatch_common.events import MonitoringEvent, TicketEventType
from slawatch_ingest.sources.canonical import IgnoreReason
from slawatch_ingest.window import OutOfWindow

UNKNOWN_TYPE = "unknown"
EVENT_TYPES: tuple[str, ...] = (
    *get_args(TicketEventType),
    *get_args(MonitoringEvent.model_fields["type"].annotation),
)
"""Label values of ``type``: every inbound event type, plus ``unknown``."""


class Rejection(StrEnum):
    """Why a request was refused; the label value of ``reason``."""

    UNAUTHORIZED = "unauthorized"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED = "malformed"
    INVALID = "invalid"
    BROKER_UNAVAILABLE = "broker_unavailable"
    UNKNOWN_SOURCE = "unknown_source"
    SOURCE_NOT_ALLOWED = "source_not_allowed"  # 403: the token may not post for an event's source
    ADDRESS_LIMITED = "address_limited"  # 429: its client address failed authentication too often


class WebhookOutcome(StrEnum):
    """How a webhook delivery ended; the label value of ``outcome``."""

    ACCEPTED = "accepted"  # 202, events produced
    IGNORED = "ignored"  # 202, nothing of use in it
    UNAUTHORIZED = "unauthorized"  # 401
    TOO_LARGE = "too_large"  # 413
    RATE_LIMITED = "rate_limited"  # 429: over the source's rate limit
    SOURCE_NOT_ALLOWED = "source_not_allowed"  # 403: the token may not post for an event's source
    ADDRESS_LIMITED = "address_limited"  # 429: its client address failed authentication too often
    MALFORMED = "malformed"  # 400: not JSON
    INVALID = "invalid"  # 422: JSON, but not what the source sends
    BROKER_UNAVAILABLE = "broker_unavailable"  # 503


EVENT_REJECTIONS = (Rejection.INVALID, Rejection.BROKER_UNAVAILABLE)
"""The rejections that happen once the events are known, so they can be counted."""


SKEW_BUCKETS = (-604800, -86400, -3600, -600, -60, -10, -1, 0, 1, 10, 60, 600, 3600)
"""Upper bounds of ``event_skew_seconds``: a week old to an hour ahead (the default limit)."""


class BrokerFailure(StrEnum):
    """How the broker failed a batch; the label value of ``reason``."""

    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    events_received: Counter
    events_produced: Counter
    events_rejected: Counter
    requests_rejected: Counter
    request_duration: Histogram
    broker_failures: Counter
    webhooks: Counter
    webhook_ignored: Counter
    webhook_duration: Histogram
    event_skew: Histogram
    events_out_of_window: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry, sources: Iterable[str] = ()) -> IngestMetrics:
        """Create every series on ``registry`` (webhook ones for ``sources``). Call once."""
        metrics = cls(
            events_received=Counter(
                "slawatch_ingest_events_received",
                "Events in readable request bodies, by type.",
                ["type"],
                registry=registry,
            ),
            events_produced=Counter(
                "slawatch_ingest_events_produced",
                "Events acknowledged by the broker, by type.",
                ["type"],
                registry=registry,
            ),
            events_rejected=Counter(
                "slawatch_ingest_events_rejected",
                "Events in requests that were refused (none of them produced), by reason.",
                ["reason"],
                registry=registry,
            ),
            requests_rejected=Counter(
                "slawatch_ingest_requests_rejected",
                "Requests answered with 4xx or 503, by reason.",
                ["reason"],
                registry=registry,
            ),
            request_duration=Histogram(
                "slawatch_ingest_request_duration_seconds",
                "Time to answer POST /v1/events, broker acknowledgement included.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=registry,
            ),
            broker_failures=Counter(
                "slawatch_ingest_broker_failures",
                "Requests whose events the broker did not acknowledge, by reason.",
                ["reason"],
                registry=registry,
            ),
            webhooks=Counter(
                "slawatch_ingest_webhooks",
                "Webhook deliveries, by source and outcome.",
                ["source", "outcome"],
                registry=registry,
            ),
            webhook_ignored=Counter(
                "slawatch_ingest_webhook_ignored",
                "Parts of webhook deliveries that produced no event, by source and reason.",
                ["source", "reason"],
                registry=registry,
            ),
            webhook_duration=Histogram(
                "slawatch_ingest_webhook_duration_seconds",
                "Time to answer POST /v1/webhooks/{source}, broker acknowledgement included.",
                ["source"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=registry,
            ),
            event_skew=Histogram(
                "slawatch_ingest_event_skew_seconds",
                "occurred_at of produced events minus the server's clock at receipt"
                " (negative: in the past).",
                buckets=SKEW_BUCKETS,
                registry=registry,
            ),
            events_out_of_window=Counter(
                "slawatch_ingest_events_out_of_window",
                "Events refused for an instant outside the accepted window, by reason.",
                ["reason"],
                registry=registry,
            ),
        )
        metrics._initialise_series(tuple(sources))
        return metrics

    def _initialise_series(self, sources: tuple[str, ...]) -> None:
        for source in sources:
            self.webhook_duration.labels(source=source)
            for outcome in WebhookOutcome:
                self.webhooks.labels(source=source, outcome=outcome)
            for reason in IgnoreReason:
                self.webhook_ignored.labels(source=source, reason=reason)
        for event_type in (*EVENT_TYPES, UNKNOWN_TYPE):
            self.events_received.labels(type=event_type)
            self.events_produced.labels(type=event_type)
        for rejection in Rejection:
            self.requests_rejected.labels(reason=rejection)
        for rejection in EVENT_REJECTIONS:
            self.events_rejected.labels(reason=rejection)
        for failure in BrokerFailure:
            self.broker_failures.labels(reason=failure)
        for out_of_window in OutOfWindow:
            self.events_out_of_window.labels(reason=out_of_window)


def type_label(value: object) -> str:
    """The ``type`` label for a raw item: its event type if known, else ``unknown``."""
    event_type = value.get("type") if isinstance(value, dict) else None
    if isinstance(event_type, str) and event_type in EVENT_TYPES:
        return event_type
    return UNKNOWN_TYPE


class TypeSeries:
    """The ``type`` series of one counter, looked up once.

    ``Counter.labels`` costs more than validating an event, and ``inc`` takes
    a lock, so the intake counts through this: no lookup, one ``inc`` per type.
    """

    def __init__(self, counter: Counter) -> None:
        self._series = {name: counter.labels(type=name) for name in (*EVENT_TYPES, UNKNOWN_TYPE)}

    def count(self, event_types: Iterable[str]) -> None:
        """One more in the series of each of ``event_types`` (``type_label`` values)."""
        tally: dict[str, int] = {}
        for event_type in event_types:
            tally[event_type] = tally.get(event_type, 0) + 1
        for event_type, count in tally.items():
            self._series[event_type].inc(count)
