"""What the notifier deletes once it has been settled for ``SLAWATCH_RETENTION_DAYS``.

Each rule keeps whatever is still pending, however old:

- ``notifier_notifications`` (recipient, address, rendered message) with their
  ``notifier_attempts``: in a final state (sent, failed, folded, cancelled,
  refused), their record published (the outbox publishes sent, failed and
  folded ones), last changed before the cutoff, and no notification that is
  not final yet stands in for one (``fallback_of``) or is the digest it was
  folded into (``digest_id``);
- ``notifier_escalations`` (the event with the ticket's facts, who
  acknowledged) with their ``notifier_scheduled_steps``: acknowledged or
  stopped, last changed before the cutoff, with no step still pending and no
  notification of theirs not final yet;
- ``notifier_rate_windows`` (keyed by recipient, or by phone number for the
  SMS cap): ended and last changed before the cutoff, their digest (if any)
  final;
- ``notifier_reports`` (report mails: recipient and address): sent or failed,
  their record published, last changed before the cutoff;
- ``notifier_dead_letters`` last seen before the cutoff.

Deleting a contract's last report mails means the last-sent gauge of a
contract that has had no report mail within the retention period starts
unset after a restart (``ReportDelivery.recover`` reads it from the rows).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from slawatch_common.retention import Dependent, Pruner, Rule
from slawatch_common.settings import ServiceSettings
from slawatch_notifier import store
from slawatch_notifier.escalation import Status as EscalationStatus
from slawatch_notifier.escalation_store import StepStatus
from slawatch_notifier.retry import Status

FINAL = (Status.SENT, Status.FAILED, Status.FOLDED, Status.CANCELLED, Status.REFUSED)
PUBLISHED_WHEN_FINAL = (Status.SENT, Status.FAILED, Status.FOLDED)
"""The final states whose record the outbox publishes (``store.unpublished``)."""
ENDED = (EscalationStatus.ACKNOWLEDGED, EscalationStatus.STOPPED)
REPORTS_FINAL = (Status.SENT, Status.FAILED)


def _notification_settled(cutoff: datetime) -> sa.ColumnElement[bool]:
    """Final, published where it is published at all, and needed by no live notification."""
    table = store.notifications
    live = store.notifications.alias("live_notification")
    needed = (
        sa.select(live.c.id)
        .where(
            live.c.status.not_in(FINAL),
            sa.or_(live.c.fallback_of == table.c.id, live.c.id == table.c.digest_id),
        )
        .correlate(table)
    )
    return sa.and_(
        table.c.status.in_(FINAL),
        sa.or_(table.c.published.is_(True), table.c.status.not_in(PUBLISHED_WHEN_FINAL)),
        ~sa.exists(needed),
    )


def _escalation_settled(cutoff: datetime) -> sa.ColumnElement[bool]:
    """Ended, with no pending step and no notification that is not final yet."""
    table = store.escalations
    step = store.scheduled_steps.alias("pending_step")
    notification = store.notifications.alias("live_notification")
    pending = (
        sa.select(step.c.id)
        .where(
            step.c.clock_id == table.c.clock_id,
            step.c.cycle == table.c.cycle,
            step.c.status == StepStatus.PENDING,
        )
        .correlate(table)
    )
    live = (
        sa.select(notification.c.id)
        .where(
            notification.c.clock_id == table.c.clock_id,
            notification.c.cycle == table.c.cycle,
            notification.c.status.not_in(FINAL),
        )
        .correlate(table)
    )
    return sa.and_(table.c.status.in_(ENDED), ~sa.exists(pending), ~sa.exists(live))


def _window_settled(cutoff: datetime) -> sa.ColumnElement[bool]:
    """Untouched since ``cutoff``, its digest (if any) final."""
    table = store.rate_windows
    digest = store.notifications.alias("live_digest")
    live = (
        sa.select(digest.c.id)
        .where(digest.c.id == table.c.digest_id, digest.c.status.not_in(FINAL))
        .correlate(table)
    )
    return sa.and_(table.c.updated_at < cutoff, ~sa.exists(live))


def _report_settled(cutoff: datetime) -> sa.ColumnElement[bool]:
    table = store.reports
    return sa.and_(table.c.status.in_(REPORTS_FINAL), table.c.published.is_(True))


RULES = (
    Rule(
        store.notifications,
        "updated_at",
        _notification_settled,
        (Dependent(store.attempts, ("notification_id",), ("id",)),),
    ),
    Rule(
        store.escalations,
        "updated_at",
        _escalation_settled,
        (Dependent(store.scheduled_steps, ("clock_id", "cycle"), ("clock_id", "cycle")),),
    ),
    Rule(store.rate_windows, "ends_at", _window_settled),
    Rule(store.reports, "updated_at", _report_settled),
    Rule(store.dead_letters, "last_seen"),
)


def pruner(
    settings: ServiceSettings, registry: CollectorRegistry, now: Callable[[], datetime]
) -> Pruner:
    """The notifier's pruner (``RULES``), keeping rows ``settings.retention_days`` after
    they settled."""
    return Pruner.of_settings(RULES, settings, registry, now, "notifier")
