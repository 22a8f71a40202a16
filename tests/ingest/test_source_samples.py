"""Every reference sample (tests/ingest/samples), normalised to the exact canonical events.

Pure: the normalisers only, under the built-in defaults (Grafana told which
label names its service, as its sample has neither ``service`` nor ``job``).
The expected events are written out; the event ids without a delivery id are
SHA-256 digests, recorded here so that any change to how they derive shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ingest.payloads import PAYLOADS, sample_json
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.webhook_config import parse_sources

SOURCES = parse_sources({"grafana": {"service_labels": ["service", "team"]}}, {})


def normalised(name: str, source: str, headers: Mapping[str, str] | None = None) -> Normalised:
    config: SourceConfig = SOURCES[source]
    return KINDS[config.kind].normalise(sample_json(name), headers or {}, config)


def events(name: str, source: str, headers: Mapping[str, str] | None = None) -> list[Any]:
    outcome = normalised(name, source, headers)
    return [event.model_dump(mode="json", exclude_none=True) for event in outcome.events]


ADMIN = {"id": "admin", "name": "admin", "email": "admin@example.com"}


def test_every_sample_is_covered_here() -> None:
    covered = {
        "alertmanager-v4-firing.json",
        "alertmanager-v4-resolved.json",
        "grafana-alerting-firing.json",
        "jira-comment_created-cloud.json",
        "jira-issue_created.json",
        "jira-issue_updated-fields_changelog.json",
        "jira-issue_updated-status_changelog.json",
        "zammad-ticket-default.json",
        "zendesk-ticket.agent_assignment_changed.json",
        "zendesk-ticket.created.json",
        "zendesk-user.active_changed.json",
    }
    assert {path.name for path in PAYLOADS.glob("*.json")} == covered


def test_jira_issue_created() -> None:
    assert events("jira-issue_created.json", "jira") == [
        {
            "event_id": "jira:4208ddd9318f5af3ee1db4ec52837e9b172c73f0",
            "schema_version": 1,
            "type": "ticket.created",
            "occurred_at": "2015-12-20T18:25:09.582000Z",  # issue.fields.created, +0000
            "source": "jira",
            "data": {
                "id": "TEST-4",
                "priority": "P3",  # Medium
                "status": "To Do",  # not in the status map: as Jira names it
                "type": "Task",
                "title": "a",
            },
        }
    ]


def test_jira_changelog_of_priority_and_resolution() -> None:
    # summary and description changed too: not SLA-relevant, no event of their own.
    ticket = {
        "id": "TEST-11",
        "priority": "P1",  # Blocker
        "status": "To Do",
        "type": "Task",
        "title": "summary updated",
        "assignee": ADMIN,
    }
    assert events("jira-issue_updated-fields_changelog.json", "jira") == [
        {
            "event_id": "jira:b346ece3cb57cfad9d11f9d1a6b0dc49ca116d53",
            "schema_version": 1,
            "type": "ticket.priority_changed",  # Major → Blocker
            "occurred_at": "2016-01-14T23:01:40.356000Z",  # the webhook's timestamp
            "source": "jira",
            "data": ticket,
        },
        {
            "event_id": "jira:72926ae0ee1e2412164b72bf2fc2ae020f81f0be",
            "schema_version": 1,
            "type": "ticket.resolved",  # resolution set: (none) → Fixed
            "occurred_at": "2016-01-14T23:01:40.356000Z",
            "source": "jira",
            "data": ticket,
        },
    ]


def test_jira_changelog_of_status_to_done() -> None:
    # resolution Fixed → Done changes nothing; status To Do → Done resolves.
    assert events("jira-issue_updated-status_changelog.json", "jira") == [
        {
            "event_id": "jira:b1294672cc93c5c3fdbee2d6044b74a4b5f42820",
            "schema_version": 1,
            "type": "ticket.resolved",
            "occurred_at": "2016-01-14T23:06:37.049000Z",
            "source": "jira",
            "data": {
                "id": "TEST-11",
                "priority": "P1",
                "status": "resolved",  # Done, through the status map
                "type": "Task",
                "title": "summary updated",
                "assignee": ADMIN,
            },
        }
    ]


def test_jira_cloud_comment_is_a_response() -> None:
    headers = {"x-atlassian-webhook-identifier": "f6c8d1b2-1111-4c1e-9f00-000000000001"}
    assert events("jira-comment_created-cloud.json", "jira", headers) == [
        {
            "event_id": "jira:f6c8d1b2-1111-4c1e-9f00-000000000001:responded",
            "schema_version": 1,
            "type": "ticket.responded",
            "occurred_at": "2018-04-20T06:24:52.300000Z",  # comment.created, +0100
            "source": "jira",
            "data": {
                "id": "TEST-24",
                "priority": "P3",
                "status": "To Do",
                "type": "Task",
                "title": "test",
            },
        }
    ]


def test_jira_without_a_delivery_id_hashes_the_change() -> None:
    [event] = events("jira-comment_created-cloud.json", "jira")
    assert event["event_id"] == "jira:f4adc49e78a98aab48c899e9d9dddd1b7b151208"


def test_zammad_default_payload_is_the_creation() -> None:
    headers = {"x-zammad-delivery": "2b7c1a9e-8f7e-4a55-9d3f-4a0e1c1f0b01"}
    assert events("zammad-ticket-default.json", "zammad", headers) == [
        {
            "event_id": "zammad:2b7c1a9e-8f7e-4a55-9d3f-4a0e1c1f0b01:created",
            "schema_version": 1,
            "type": "ticket.created",  # it brings the first article
            "occurred_at": "2020-11-13T14:34:35.282000Z",  # ticket.created_at
            "source": "zammad",
            "data": {
                "id": "10081",  # the ticket number
                "priority": "P3",  # 2 normal
                "status": "open",
                "customer": "Awesome Customer Inc.",
                "title": "Webhook-Test",
                "group": "Service Desk",
                "assignee": {"id": "5", "name": "Emma Taylor", "email": "emma@chrispresso.com"},
            },
        }
    ]


def test_zendesk_ticket_created() -> None:
    assert events("zendesk-ticket.created.json", "zendesk") == [
        {
            "event_id": "zendesk:01HNXXXX-CTEXAMPLE:created",
            "schema_version": 1,
            "type": "ticket.created",
            "occurred_at": "2024-04-17T17:18:10Z",  # detail.created_at
            "source": "zendesk",
            "data": {"id": "35436", "status": "open"},
        }
    ]


def test_zendesk_agent_assignment() -> None:
    assert events("zendesk-ticket.agent_assignment_changed.json", "zendesk") == [
        {
            "event_id": "zendesk:c6d7e8f9-0a1b-2c3d-4e5f-6a7b8c9d0e1f:assigned",
            "schema_version": 1,
            "type": "ticket.assigned",
            "occurred_at": "2025-01-08T12:15:45.789012Z",  # time, cut to microseconds
            "source": "zendesk",
            "data": {
                "id": "5158",
                "priority": "P1",  # URGENT
                "status": "open",  # OPEN
                "customer": "8447346622462",  # the organization
                "type": "problem",
                "title": "Cannot login to mobile app",
                "group": "8447320466430",
                "assignee": {"id": "8447388090496"},  # event.current
            },
        }
    ]


def test_zendesk_user_event_is_ignored() -> None:
    outcome = normalised("zendesk-user.active_changed.json", "zendesk")
    assert outcome.events == ()
    assert [(i.reason, i.detail) for i in outcome.ignored] == [
        (IgnoreReason.UNTRACKED_EVENT, "the zendesk event 'user.active_changed' is not tracked")
    ]


def test_alertmanager_firing() -> None:
    labels = {
        "alertname": "ProbeFailure",
        "instance": "https://server.example.org",
        "job": "http_checks",
        "monitor": "master",
        "severity": "critical",
    }
    assert events("alertmanager-v4-firing.json", "alertmanager") == [
        {
            "event_id": "alertmanager:df921c7605ee523d1e8d94cd6cee8af08813484d",
            "schema_version": 1,
            "type": "monitor.alert_firing",
            "occurred_at": "2023-02-06T13:08:45.828000Z",  # startsAt
            "source": "alertmanager",
            "data": {
                "service": "http_checks",  # no service label: job
                "name": "ProbeFailure",
                "fingerprint": "1a30ba71cca2921f",
                "severity": "critical",
                "starts_at": "2023-02-06T13:08:45.828000Z",  # endsAt 0001-01-01: none
                "labels": labels,
            },
        }
    ]


def test_alertmanager_resolved() -> None:
    [event] = events("alertmanager-v4-resolved.json", "alertmanager")
    labels = event["data"].pop("labels")
    assert event == {
        "event_id": "alertmanager:752b29b4dbcdb422ec17545285f6bc62feb31233",
        "schema_version": 1,
        "type": "monitor.alert_resolved",
        "occurred_at": "2022-07-29T11:17:27.300000Z",  # endsAt
        "source": "alertmanager",
        "data": {
            "service": "eric-pm-kube-state-metrics",
            "name": "Deployment",
            "fingerprint": "fbab788ec4c1018b",
            "severity": "Warning",
            "starts_at": "2022-07-29T11:13:27.300000Z",
            "ends_at": "2022-07-29T11:17:27.300000Z",
        },
    }
    assert len(labels) == 13
    assert (labels["job"], labels["namespace"]) == (
        "eric-pm-kube-state-metrics",
        "eric-eo-cm-ci406",
    )


def test_grafana_firing_with_team_as_the_service() -> None:
    assert events("grafana-alerting-firing.json", "grafana") == [
        {
            "event_id": "grafana:a06663b14f65dd3b3768fd505ecb9e7ea22b8ba6",
            "schema_version": 1,
            "type": "monitor.alert_firing",
            "occurred_at": "2021-10-12T07:51:03.157076Z",  # 09:51:03+02:00
            "source": "grafana",
            "data": {
                "service": "blue",
                "name": "High memory usage",
                "fingerprint": "c6eadffa33fcdf37",
                "starts_at": "2021-10-12T07:51:03.157076Z",
                "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            },
        },
        {
            "event_id": "grafana:7041d22adca57399f8d26ef1699006b48a8d8190",
            "schema_version": 1,
            "type": "monitor.alert_firing",
            "occurred_at": "2021-10-12T07:56:03.157076Z",
            "source": "grafana",
            "data": {
                "service": "blue",
                "name": "High CPU usage",
                "fingerprint": "bc97ff14869b13e3",
                "starts_at": "2021-10-12T07:56:03.157076Z",
                "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            },
        },
    ]


def test_grafana_alerts_without_a_service_label_are_ignored_by_default() -> None:
    config = parse_sources(None, {})["grafana"]
    outcome = KINDS["grafana"].normalise(sample_json("grafana-alerting-firing.json"), {}, config)
    assert outcome.events == ()
    assert outcome.summary == (
        "High memory usage: no service or job label; High CPU usage: no service or job label"
    )


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("jira-issue_updated-fields_changelog.json", "jira"),
        ("zammad-ticket-default.json", "zammad"),
        ("alertmanager-v4-firing.json", "alertmanager"),
    ],
)
def test_a_repeated_delivery_repeats_its_event_ids(name: str, source: str) -> None:
    assert events(name, source) == events(name, source)
