"""The notifier's metrics: every name and label value it may emit, defined once.

Built against a registry passed in (``create_app`` makes one per app), with
every label combination initialised so that each series exists from start-up.

| metric                                            | labels                   |
|---------------------------------------------------|--------------------------|
| slawatch_notifier_sla_events_total                | outcome                  |
| slawatch_notifier_dead_letters_total              | reason                   |
| slawatch_notifier_skipped_targets_total           | reason                   |
| slawatch_notifier_planned_total                   | channel, result          |
| slawatch_notifier_notifications_total             | channel, outcome, reason |
| slawatch_notifier_attempts_total                  | channel, outcome         |
| slawatch_notifier_retries_total                   | channel                  |
| slawatch_notifier_send_duration_seconds           | channel                  |
| slawatch_notifier_delivery_seconds                | channel                  |
| slawatch_notifier_sends_in_flight                 | channel                  |
| slawatch_notifier_deferred_total                  | channel                  |
| slawatch_notifier_fallbacks_total                 | channel                  |
| slawatch_notifier_digests_total                   | channel                  |
| slawatch_notifier_records_published_total         | type                     |
| slawatch_notifier_records_unpublishable_total     |                          |
| slawatch_notifier_escalation_steps_total          | outcome                  |
| slawatch_notifier_acks_total                      | method                   |
| slawatch_notifier_report_recipients_skipped_total | reason                   |
| slawatch_report_sent_total                        | contract                 |
| slawatch_report_failed_total                      | contract                 |
| slawatch_report_last_sent_timestamp_seconds       | contract                 |

``notifications_total`` counts notifications in their final state, with the
class of reason (``FINAL_REASONS``): sent (delivered); failed (permanent: the
provider refused; send_error: the channel's ``send`` raised, a bug or a
message that could not be built; budget_exhausted: transient failures until
the channel's retry budget was spent; interrupted: a crash cut its send short
``max_interrupted`` times — the notification is kept with its reason, its
record published as ``notification.failed``, and ``slawatch-notifier
redrive`` sends it again); folded (rate_limited: into a digest); cancelled
(acknowledged, stopped: the escalation ended; superseded: a warning quiet
hours held back when the clock breached; not_needed: a fallback whose
channel before it delivered); refused (untrusted_source, address_not_allowed:
an address only the event gave that ``notifier.event_addresses`` does not
allow, counted when its row is first stored; sms_cap: a number only an event
gave that had its SMS for the window). A refusal is also logged as a warning,
kept as a ``refused`` row with its reason, and, for the first two, counted in
``skipped_targets_total`` under the same reason each time a step names it.
``send_duration_seconds`` is one attempt, ``delivery_seconds`` from the
instant a notification fell due to its delivery (retries and queueing
included). ``deferred_total`` counts warnings
deferred by quiet hours, ``fallbacks_total`` fallbacks that took over (by
their channel; also those released while the one before kept retrying),
``digests_total`` digests opened. ``escalation_steps_total``
counts scheduled steps fired and cancelled (by an ack, a stop, or at their
instant because the escalation no longer chases the breach); ``acks_total``
counts escalations acknowledged, by ``POST /v1/acks`` (``api``) or a signed
link (``link``). ``dead_letters_total`` counts SLA records that could not be used.
``records_unpublishable_total`` counts finished notifications whose record
could not be built: each is logged and marked published (its note says why),
and the outbox goes on with the rest.

Compliance reports (``reports.py``): ``report_recipients_skipped_total``
counts people the configuration names for a due report who get no mail
(``unknown_person``: not in the configuration; ``no_email``: no address), and
``report.due`` events for a contract the configuration does not have
(``unknown_contract``: once per event; nobody is mailed). The ``contract``
label is only ever a contract of the configuration (an event's unknown
contract name never becomes one); ``slawatch_report_sent_total``
and ``slawatch_report_failed_total`` count report mails (one per recipient) in
their final state, and ``slawatch_report_last_sent_timestamp_seconds`` is when
a contract's last report mail went out (read back from the database at start,
so a restart does not make a contract look as if it never had one): an alert
on its age catches a report that never came.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from itertools import product

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from slawatch_common.events import Channel
from slawatch_common.runtime import Heartbeats
from slawatch_notifier.retry import AttemptOutcome, Status
from slawatch_notifier.store import Draft
from slawatch_notifier.targets import SkipReason


class EventOutcome(StrEnum):
    ROUTED = "routed"  # a warning or breach
    TRACKED = "tracked"  # met, cancelled, retracted: may stop an escalation
    IGNORED = "ignored"
    DEAD_LETTER = "dead_letter"


class DeadLetterReason(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    UNROUTABLE = "unroutable"
    FAILED = "failed"  # recording it raised


LOOPS = (
    "intake",
    "dispatcher",
    "scheduler",
    "outbox",
    "report_intake",
    "report_delivery",
    "report_outbox",
)


class ReportSkip(StrEnum):
    """Why a person the configuration names for a report gets no mail, or (``unknown_contract``)
    why a whole report does."""

    UNKNOWN_PERSON = "unknown_person"
    NO_EMAIL = "no_email"
    UNKNOWN_CONTRACT = "unknown_contract"  # the event's contract is not configured


class PlanResult(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"


class StepResult(StrEnum):
    FIRED = "fired"
    CANCELLED = "cancelled"
    FAILED = "failed"  # firing raised; tried again later


class AckMethod(StrEnum):
    API = "api"
    LINK = "link"


class FinalReason(StrEnum):
    """Why a notification ended as it did; see ``FINAL_REASONS``."""

    DELIVERED = "delivered"
    PERMANENT = "permanent"
    SEND_ERROR = "send_error"
    BUDGET_EXHAUSTED = "budget_exhausted"
    INTERRUPTED = "interrupted"
    RATE_LIMITED = "rate_limited"
    ACKNOWLEDGED = "acknowledged"
    STOPPED = "stopped"
    SUPERSEDED = "superseded"
    NOT_NEEDED = "not_needed"
    UNTRUSTED_SOURCE = "untrusted_source"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    SMS_CAP = "sms_cap"


FINAL_REASONS: dict[Status, tuple[FinalReason, ...]] = {
    Status.SENT: (FinalReason.DELIVERED,),
    Status.FAILED: (
        FinalReason.PERMANENT,
        FinalReason.SEND_ERROR,
        FinalReason.BUDGET_EXHAUSTED,
        FinalReason.INTERRUPTED,
    ),
    Status.FOLDED: (FinalReason.RATE_LIMITED,),
    Status.CANCELLED: (
        FinalReason.ACKNOWLEDGED,
        FinalReason.STOPPED,
        FinalReason.SUPERSEDED,
        FinalReason.NOT_NEEDED,
    ),
    Status.REFUSED: (
        FinalReason.UNTRUSTED_SOURCE,
        FinalReason.ADDRESS_NOT_ALLOWED,
        FinalReason.SMS_CAP,
    ),
}
"""Every (final status, reason) pair ``notifications_total`` may carry."""
RECORD_TYPES = ("notification.sent", "notification.failed")
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class NotifierMetrics:
    """Counters and histograms of the notifier; label values come from the enums above."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"slawatch_notifier_{name}", doc, labels, registry=registry)

        self.sla_events = counter("sla_events", "SLA events consumed, by outcome.", ("outcome",))
        self.dead_letters = counter(
            "dead_letters", "Messages dropped as invalid, by reason.", ("reason",)
        )
        self.skipped_targets = counter(
            "skipped_targets", "Escalation targets that could not be reached.", ("reason",)
        )
        self.planned = counter(
            "planned", "Planned notifications: new or already known.", ("channel", "result")
        )
        self.notifications = counter(
            "notifications",
            "Notifications in their final state, by outcome and reason class.",
            ("channel", "outcome", "reason"),
        )
        self.deferred = counter(
            "deferred", "Warnings deferred to the end of quiet hours.", ("channel",)
        )
        self.fallbacks = counter(
            "fallbacks", "Fallback notifications that took over, by their channel.", ("channel",)
        )
        self.digests = counter("digests", "Digests opened by a rate limit.", ("channel",))
        self.in_flight = Gauge(
            "slawatch_notifier_sends_in_flight",
            "Sends under way, by channel (each channel has its own slots).",
            ("channel",),
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "slawatch_notifier_delivery_seconds",
            "From the instant a notification fell due to its delivery.",
            ("channel",),
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.attempts = counter("attempts", "Delivery attempts.", ("channel", "outcome"))
        self.retries = counter("retries", "Attempts rescheduled to retry.", ("channel",))
        self.records_published = counter(
            "records_published", "NotificationRecords published.", ("type",)
        )
        self.records_unpublishable = counter(
            "records_unpublishable",
            "Finished notifications whose record could not be built (marked, skipped).",
            (),
        )
        self.escalation_steps = counter(
            "escalation_steps", "Scheduled escalation steps fired or cancelled.", ("outcome",)
        )
        self.acks = counter("acks", "Escalations acknowledged, by method.", ("method",))
        self.report_skipped = counter(
            "report_recipients_skipped",
            "People named for a due report who get no mail (or reports of an unknown "
            "contract), by reason.",
            ("reason",),
        )
        self.reports_sent = Counter(
            "slawatch_report_sent_total",
            "Compliance-report mails sent (one per recipient), by contract.",
            ("contract",),
            registry=registry,
        )
        self.reports_failed = Counter(
            "slawatch_report_failed_total",
            "Compliance-report mails failed for good (one per recipient), by contract.",
            ("contract",),
            registry=registry,
        )
        self.report_last_sent = Gauge(
            "slawatch_report_last_sent_timestamp_seconds",
            "Unix time a contract's last compliance-report mail was sent.",
            ("contract",),
            registry=registry,
        )
        self.heartbeats = Heartbeats(registry, "slawatch_notifier", LOOPS)
        self.send_seconds = Histogram(
            "slawatch_notifier_send_duration_seconds",
            "Time one delivery attempt took.",
            ("channel",),
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self._initialise()

    def _initialise(self) -> None:
        for outcome in EventOutcome:
            self.sla_events.labels(outcome)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason)
        for skip in SkipReason:
            self.skipped_targets.labels(skip)
        for step_result in StepResult:
            self.escalation_steps.labels(step_result)
        for method in AckMethod:
            self.acks.labels(method)
        for skip_reason in ReportSkip:
            self.report_skipped.labels(skip_reason)
        for kind in RECORD_TYPES:
            self.records_published.labels(kind)
        for channel in Channel:
            for per_channel in (self.retries, self.deferred, self.fallbacks, self.digests):
                per_channel.labels(channel)
            self.send_seconds.labels(channel)
            self.delivery_seconds.labels(channel)
            self.in_flight.labels(channel)
            for result in PlanResult:
                self.planned.labels(channel, result)
            for status, finals in FINAL_REASONS.items():
                for final in finals:
                    self.notifications.labels(channel, status, final)
        for channel, attempt in product(Channel, AttemptOutcome):
            self.attempts.labels(channel, attempt)

    def initialise_contracts(self, contracts: Iterable[str]) -> None:
        """Start the report counters of each configured contract (``NotifierConfig.reports``),
        so their series exist from start-up; the last-sent gauge is set only once a contract
        has had a mail (``ReportDelivery.recover``)."""
        for contract in contracts:
            self.reports_sent.labels(contract)
            self.reports_failed.labels(contract)


def count_planned(metrics: NotifierMetrics, draft: Draft, new: bool) -> None:
    """Count one planned notification: new or already known, and deferred if it is; a
    refused one as a notification in its final state, once."""
    channel = draft.planned.channel
    refused = draft.planned.refused
    if refused is not None:
        if new:
            reason = FinalReason(refused.reason.value)
            metrics.notifications.labels(channel, Status.REFUSED, reason).inc()
        return
    metrics.planned.labels(channel, PlanResult.NEW if new else PlanResult.DUPLICATE).inc()
    if new and draft.deferred_until is not None and draft.planned.fallback_of is None:
        metrics.deferred.labels(channel).inc()
