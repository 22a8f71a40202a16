"""Prometheus Alertmanager webhooks (version 4) → monitoring events.

Each alert of the group becomes one event: ``monitor.alert_firing`` dated by
``startsAt`` or ``monitor.alert_resolved`` dated by ``endsAt``. The service
is the value of the first of ``service_labels`` (default ``service``, then
``job``) the alert carries; an alert with none of them is ignored
(``no_service``). The alert's name is its ``alertname``, its severity the
``severity`` label, its identity Alertmanager's ``fingerprint``. A firing
alert has no end yet (Alertmanager's zero time ``0001-01-01`` means none).

Alertmanager repeats a firing group every ``repeat_interval``; each repeat
yields the same event ids (fingerprint, state and instant), so consumers
keep the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from slawatch_common.events import Alert
from slawatch_common.runtime import describe_errors
from slawatch_ingest.sources.canonical import (
    IgnoreReason,
    Normalised,
    PayloadError,
    alert_event,
)
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.instants import instant, optional_instant

VERSIONS = ("4",)

DEFAULTS: dict[str, Any] = {}


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The monitoring events of one Alertmanager notification."""
    return normalise_alerts(body, config, versions=VERSIONS, product="Alertmanager")


def normalise_alerts(
    body: Mapping[str, Any], config: SourceConfig, *, versions: Sequence[str], product: str
) -> Normalised:
    """Alertmanager-shaped ``alerts`` (Alertmanager, Grafana) as monitoring events."""
    version = str(body.get("version", ""))
    if version not in versions:
        accepted = " or ".join(versions)
        raise PayloadError(f"version {version!r}: {product} webhook version {accepted} is read")
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts is missing")
    outcomes = [_one(alert, index, body, config) for index, alert in enumerate(alerts)]
    if not outcomes:
        return Normalised.ignore(IgnoreReason.IRRELEVANT_CHANGE, "the notification has no alerts")
    return Normalised.combine(outcomes)


def _one(alert: Any, index: int, body: Mapping[str, Any], config: SourceConfig) -> Normalised:
    where = f"alerts[{index}]"
    if not isinstance(alert, Mapping):
        raise PayloadError(f"{where} is not an object")
    labels = _labels(alert.get("labels"), where)
    name = labels.get("alertname")
    if not name:
        raise PayloadError(f"{where}.labels.alertname is missing")
    service = next((labels[key] for key in config.service_labels if labels.get(key)), None)
    if service is None:
        wanted = " or ".join(config.service_labels)
        return Normalised.ignore(IgnoreReason.NO_SERVICE, f"{name}: no {wanted} label")
    status = alert.get("status") or body.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.status must be firing or resolved, not {status!r}")
    firing = status == "firing"
    try:
        starts_at = instant(alert.get("startsAt"))
        ends_at = None if firing else optional_instant(alert.get("endsAt"))
    except ValueError as exc:
        raise PayloadError(f"{where}: {exc}") from exc
    if not firing and ends_at is None:
        raise PayloadError(f"{where}.endsAt is missing from a resolved alert")
    try:
        data = Alert(
            service=service[:200],
            name=name[:500],
            fingerprint=str(alert.get("fingerprint") or _fingerprint(labels)),
            severity=labels.get("severity") or None,
            starts_at=starts_at,
            ends_at=ends_at,
            labels=labels,
        )
    except ValidationError as exc:
        raise PayloadError(f"{where}: {describe_errors(exc)}") from None
    return Normalised.of([alert_event(config.name, data, firing=firing)])


def _labels(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}.labels is missing")
    return {str(key): str(label) for key, label in value.items()}


def _fingerprint(labels: Mapping[str, str]) -> str:
    """A stable identity for senders that send no fingerprint: a hash of the labels."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
