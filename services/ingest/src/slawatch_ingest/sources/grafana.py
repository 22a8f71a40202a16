"""Grafana Alerting webhook contact points → monitoring events.

Grafana's webhook body (``version`` "1") carries Alertmanager-shaped
``alerts``, read exactly as ``alertmanager`` reads them (service from the
``service_labels``, default ``service`` then ``job``: Grafana-managed rules
often need, say, ``team`` added). Grafana signs, when an HMAC secret is set on
the contact point, with ``X-Grafana-Alerting-Signature`` (hex HMAC-SHA256 of
the body, or of ``timestamp:body`` when a timestamp header is configured);
it can also send a bearer token or basic auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slawatch_ingest.sources.alertmanager import normalise_alerts
from slawatch_ingest.sources.canonical import Normalised
from slawatch_ingest.sources.config import SourceConfig

VERSIONS = ("1",)
SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"

DEFAULTS: dict[str, Any] = {"signature_header": SIGNATURE_HEADER}


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The monitoring events of one Grafana notification."""
    return normalise_alerts(body, config, versions=VERSIONS, product="Grafana")
