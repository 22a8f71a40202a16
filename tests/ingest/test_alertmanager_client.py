"""A real Alertmanager notifies ingest: its alerts arrive on Kafka as monitoring events.

Debian's ``prometheus-alertmanager`` (``make alertmanager``) runs as a
process of the test with a webhook receiver pointing at the ingest app
(served in the test, on the shared broker): bearer token in ``http_config``,
``send_resolved``, one-second grouping. An alert posted to Alertmanager's
API must come out of the monitoring topic as ``monitor.alert_firing`` keyed
by its service, and its resolution as ``monitor.alert_resolved``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.alertmanager import Alertmanager, webhook_config
from support.kafka import TopicReader
from support.serving import serving

pytestmark = [pytest.mark.kafka, pytest.mark.alertmanager]

TOKEN = "am-token"
LABELS = {
    "alertname": "InstanceDown",
    "service": "core-network",
    "severity": "critical",
    "instance": "sw-b1:9100",
}


@pytest.fixture
async def alertmanager(settings: IngestSettings, tmp_path: Path) -> AsyncIterator[Alertmanager]:
    """Alertmanager notifying an ingest app whose ``alertmanager`` source takes ``TOKEN``."""
    sources = parse_sources({"alertmanager": {"tokens": [TOKEN]}}, {})
    async with serving(create_app(settings, sources)) as base:
        webhook = f"{base}/v1/webhooks/alertmanager"
        manager = Alertmanager(webhook_config(webhook, TOKEN), tmp_path)
        try:
            await manager.start()
            yield manager
        finally:
            await manager.stop()


def of_type(type_: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda values: any(value["type"] == type_ for value in values)


async def test_an_alert_and_its_resolution_arrive_as_monitoring_events(
    alertmanager: Alertmanager, settings: IngestSettings, topics: Topics
) -> None:
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    async with TopicReader(settings.kafka_bootstrap, topics.monitoring) as reader:
        await alertmanager.post_alert(LABELS, starts_at, starts_at + timedelta(hours=1))
        await reader.wait_for(of_type("monitor.alert_firing"), within=10)
        ends_at = datetime.now(UTC).replace(microsecond=0)
        await alertmanager.post_alert(LABELS, starts_at, ends_at)
        await reader.wait_for(of_type("monitor.alert_resolved"), within=10)

    # One notification each: the unchanged group is not re-sent within repeat_interval.
    assert [value["type"] for value in reader.values] == [
        "monitor.alert_firing",
        "monitor.alert_resolved",
    ]
    (key, firing, _), (resolved_key, resolved, _) = reader.records
    assert key == "core-network"
    assert firing["source"] == "alertmanager"
    assert datetime.fromisoformat(firing["occurred_at"]) == starts_at
    fingerprint = firing["data"]["fingerprint"]
    assert len(fingerprint) == 16  # Alertmanager's own, a hash of the labels
    assert firing["data"] == {
        "service": "core-network",
        "name": "InstanceDown",
        "fingerprint": fingerprint,
        "severity": "critical",
        "starts_at": firing["data"]["starts_at"],
        "labels": LABELS,
    }
    assert datetime.fromisoformat(firing["data"]["starts_at"]) == starts_at

    assert resolved_key == "core-network"
    assert datetime.fromisoformat(resolved["occurred_at"]) == ends_at
    assert resolved["data"]["fingerprint"] == fingerprint
    assert datetime.fromisoformat(resolved["data"]["ends_at"]) == ends_at
    assert resolved["event_id"] != firing["event_id"]
