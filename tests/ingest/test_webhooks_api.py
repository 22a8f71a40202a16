"""POST /v1/webhooks/{source}, served by uvicorn, producing to the real broker.

The reference samples go through the app byte for byte, signed as their
sources sign, and are read back from the topics.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml

from ingest import payloads
from ingest.harness import read_topic
from ingest.payloads import sample
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.prom import metric
from support.serving import serving

pytestmark = pytest.mark.kafka

SECRET = "webhook-secret"
CONFIG = f"""
jira: {{secret: {SECRET}}}
zammad: {{secret: {SECRET}}}
zendesk: {{secret: {SECRET}}}
glpi: {{secret: {SECRET}}}
alertmanager:
  tokens: [am-token]
grafana:
  secret: {SECRET}
  service_labels: [service, team]
snow:
  kind: generic
  tokens: [snow-token]
  statuses: {{"6": resolved}}
  mapping:
    ticket_id: /number
    occurred_at: /sys_updated_on
    fields: {{status: /state, priority: /priority}}
tiny:
  kind: generic
  tokens: [tiny-token]
  max_body_bytes: 1024
  rate_limit: {{per_second: 0.01, burst: 2}}
  mapping: {{ticket_id: /id, occurred_at: /at}}
zendesk-tokens:
  kind: zendesk
  tokens: [zd-token]
survey:
  kind: generic
  tokens: [survey-token]
  mapping:
    ticket_id: /ticket
    occurred_at: /at
    event: /event
    events: {{rated: ticket.rated}}
    fields: {{rating: /csat}}
    rating_scale_max: 5
"""


@pytest.fixture
async def client(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client (no credentials of its own) of an app with the sources above."""
    sources = parse_sources(yaml.safe_load(CONFIG), {})
    async with (
        serving(create_app(settings, sources)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        yield client


def zendesk_signed(body: bytes) -> dict[str, str]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "X-Zendesk-Webhook-Signature": payloads.zendesk(SECRET, stamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Id": "01HWEBHOOK",
    }


async def post(
    client: httpx.AsyncClient, source: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    headers = {"Content-Type": "application/json", **headers}
    return await client.post(f"/v1/webhooks/{source}", content=body, headers=headers)


async def topic(bootstrap: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(key.decode(), json.loads(value)) for key, value in await read_topic(bootstrap, name)]


async def test_samples_reach_their_topics_keyed_by_ticket_and_service(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    jira, zammad = sample("jira-issue_created.json"), sample("zammad-ticket-default.json")
    zendesk, alerts = sample("zendesk-ticket.created.json"), sample("alertmanager-v4-firing.json")
    grafana = sample("grafana-alerting-firing.json")
    answers = [
        await post(
            client,
            "jira",
            jira,
            {
                "X-Hub-Signature": payloads.hub(SECRET, jira),
                "X-Atlassian-Webhook-Identifier": "jira-delivery-1",
            },
        ),
        await post(
            client,
            "zammad",
            zammad,
            {
                "X-Hub-Signature": payloads.hub(SECRET, zammad, "sha1"),
                "X-Zammad-Delivery": "zammad-delivery-1",
                "X-Zammad-Trigger": "slawatch",
            },
        ),
        await post(client, "zendesk", zendesk, zendesk_signed(zendesk)),
        await post(client, "alertmanager", alerts, {"Authorization": "Bearer am-token"}),
        await post(
            client,
            "grafana",
            grafana,
            {"X-Grafana-Alerting-Signature": payloads.grafana(SECRET, grafana)},
        ),
    ]

    assert [(a.status_code, a.json()["accepted"]) for a in answers] == [(202, 1)] * 4 + [(202, 2)]
    assert answers[0].json()["event_ids"] == ["jira:jira-delivery-1:created"]
    tickets = sorted(await topic(kafka_bootstrap, topics.tickets))
    assert [(key, value["type"], value["event_id"]) for key, value in tickets] == [
        ("jira:TEST-4", "ticket.created", "jira:jira-delivery-1:created"),
        ("zammad:10081", "ticket.created", "zammad:zammad-delivery-1:created"),
        ("zendesk:35436", "ticket.created", "zendesk:01HNXXXX-CTEXAMPLE:created"),
    ]
    assert tickets[0][1]["data"] == {
        "id": "TEST-4",
        "priority": "P3",
        "status": "To Do",
        "type": "Task",
        "title": "a",
    }
    monitoring = await topic(kafka_bootstrap, topics.monitoring)
    assert sorted((key, value["data"]["name"]) for key, value in monitoring) == [
        ("blue", "High CPU usage"),
        ("blue", "High memory usage"),
        ("http_checks", "ProbeFailure"),
    ]


async def test_a_retried_delivery_produces_nothing_new(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    body = sample("jira-issue_updated-fields_changelog.json")
    signed = {"X-Hub-Signature": payloads.hub(SECRET, body)}

    first = await post(client, "jira", body, signed)
    retry = await post(client, "jira", body, signed)

    assert first.status_code == retry.status_code == 202
    assert (
        first.json()
        == retry.json()
        == {
            "accepted": 2,
            "event_ids": [
                "jira:b346ece3cb57cfad9d11f9d1a6b0dc49ca116d53",
                "jira:72926ae0ee1e2412164b72bf2fc2ae020f81f0be",
            ],
        }
    )
    records = await topic(kafka_bootstrap, topics.tickets)
    assert [value["type"] for _, value in records] == [
        "ticket.priority_changed",
        "ticket.resolved",
    ]


@pytest.mark.parametrize(
    ("source", "headers"),
    [
        ("jira", {}),
        ("jira", {"X-Hub-Signature": "sha256=" + "0" * 64}),
        ("zammad", {"X-Hub-Signature": "sha1=" + "0" * 40}),
        ("zendesk", {"X-Zendesk-Webhook-Signature": "AAAA"}),
        ("alertmanager", {"Authorization": "Bearer wrong"}),
        ("servicenow", {"Authorization": "Bearer anything"}),  # no credentials configured
        # Timestamps no datetime holds: refused as any bad signature, never a 500.
        ("glpi", {"X-GLPI-signature": "0" * 64, "X-GLPI-timestamp": "1000000000000000000"}),
        ("glpi", {"X-GLPI-signature": "0" * 64, "X-GLPI-timestamp": "1e18"}),
        ("glpi", {"X-GLPI-signature": "0" * 64, "X-GLPI-timestamp": "9" * 30}),
        (
            "zendesk",
            {
                "X-Zendesk-Webhook-Signature": "AAAA",
                "X-Zendesk-Webhook-Signature-Timestamp": "9999-12-31T23:59:59-14:00",
            },
        ),
    ],
)
async def test_a_bad_or_missing_signature_is_401_and_produces_nothing(
    client: httpx.AsyncClient,
    kafka_bootstrap: str,
    topics: Topics,
    source: str,
    headers: dict[str, str],
) -> None:
    response = await post(client, source, sample("jira-issue_created.json"), headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"]
    assert response.json()["detail"]
    assert await read_topic(kafka_bootstrap, topics.tickets) == []
    text = (await client.get("/metrics")).text
    assert (
        metric(text, "slawatch_ingest_webhooks_total", source=source, outcome="unauthorized") == 1
    )


async def test_ignored_malformed_unknown_and_oversized_deliveries(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    start = (await client.get("/metrics")).text
    assert metric(start, "slawatch_ingest_webhooks_total", source="snow", outcome="accepted") == 0
    user_event = sample("zendesk-user.active_changed.json")

    ignored = await post(client, "zendesk", user_event, zendesk_signed(user_event))
    not_json = await post(client, "snow", b"{oops", {"Authorization": "Bearer snow-token"})
    no_ticket = await post(
        client, "snow", b'{"state": "6"}', {"Authorization": "Bearer snow-token"}
    )
    unknown = await post(client, "otrs", b"{}", {})
    too_large = await post(client, "tiny", b" " * 2000, {"Authorization": "Bearer tiny-token"})

    assert (ignored.status_code, ignored.json()) == (
        202,
        {"ignored": "the zendesk event 'user.active_changed' is not tracked"},
    )
    assert (not_json.status_code, not_json.json()["detail"]) == (
        400,
        "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes",
    )
    assert (no_ticket.status_code, no_ticket.json()["detail"]) == (
        422,
        "the ticket's id is missing",
    )
    assert unknown.status_code == 404
    assert "no webhook source 'otrs'" in unknown.json()["detail"]
    assert (too_large.status_code, too_large.json()["detail"]) == (
        413,
        "the body is 2000 bytes; at most 1024",
    )
    assert await read_topic(kafka_bootstrap, topics.tickets) == []
    text = (await client.get("/metrics")).text
    assert metric(text, "slawatch_ingest_webhooks_total", source="zendesk", outcome="ignored") == 1
    assert (
        metric(
            text,
            "slawatch_ingest_webhook_ignored_total",
            source="zendesk",
            reason="untracked_event",
        )
        == 1
    )
    assert metric(text, "slawatch_ingest_webhooks_total", source="snow", outcome="malformed") == 1
    assert metric(text, "slawatch_ingest_webhooks_total", source="snow", outcome="invalid") == 1
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="unknown_source") == 1


async def test_a_generic_source_and_its_rate_limit(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    body = json.dumps(
        {
            "number": "INC0010023",
            "state": "6",
            "priority": "P2",
            "sys_updated_on": "2026-11-26 10:30",
        }
    ).encode()
    resolved = await post(client, "snow", body, {"Authorization": "Bearer snow-token"})
    tiny = [
        await post(
            client,
            "tiny",
            b'{"id": "T-%d", "at": 1764152000}' % n,
            {"Authorization": "Bearer tiny-token"},
        )
        for n in range(3)
    ]

    assert resolved.status_code == 202
    assert [r.status_code for r in tiny] == [202, 202, 429]
    assert int(tiny[2].headers["Retry-After"]) >= 1
    records = sorted(await topic(kafka_bootstrap, topics.tickets))
    assert [(key, value["type"], value["occurred_at"]) for key, value in records] == [
        ("snow:INC0010023", "ticket.resolved", "2026-11-26T10:30:00Z"),
        ("tiny:T-0", "ticket.updated", "2025-11-26T10:13:20Z"),
        ("tiny:T-1", "ticket.updated", "2025-11-26T10:13:20Z"),
    ]


def zendesk_rating(score: str) -> bytes:
    """A Zendesk trigger's body on a changed satisfaction (docs/SOURCES.md)."""
    body = payloads.sample_json("zendesk-ticket.agent_assignment_changed.json")
    body["type"] = "zen:event-type:ticket.satisfaction_rating_changed"
    body["id"] = f"csat-{score}"
    body["event"] = {}
    body["detail"]["satisfaction_rating"] = {"score": score}
    return json.dumps(body).encode()


def jira_rating(rating: object) -> bytes:
    """A Service Management issue update whose changelog shows the CSAT field set."""
    body = payloads.sample_json("jira-issue_updated-fields_changelog.json")
    body["changelog"]["items"] = [{"field": "Satisfaction", "fieldId": "customfield_10031"}]
    body["issue"]["fields"]["customfield_10031"] = {"rating": rating}
    return json.dumps(body).encode()


def survey(csat: object) -> bytes:
    return json.dumps(
        {"ticket": "T-5", "event": "rated", "csat": csat, "at": "2026-11-27T01:00:00Z"}
    ).encode()


async def test_ratings_reach_the_tickets_topic_and_bad_ones_are_refused(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    def jira_signed(body: bytes, delivery: str) -> dict[str, str]:
        return {
            "X-Hub-Signature": payloads.hub(SECRET, body),
            "X-Atlassian-Webhook-Identifier": delivery,
        }

    survey_auth = {"Authorization": "Bearer survey-token"}
    good, meh = zendesk_rating("good"), zendesk_rating("meh")
    offered = zendesk_rating("offered")
    four, nine = jira_rating(4), jira_rating(9)
    answers = [
        await post(client, "zendesk", good, zendesk_signed(good)),
        await post(client, "jira", four, jira_signed(four, "jira-rated-1")),
        await post(client, "survey", survey("4.5"), survey_auth),
        await post(client, "zendesk", offered, zendesk_signed(offered)),
        await post(client, "zendesk", meh, zendesk_signed(meh)),
        await post(client, "jira", nine, jira_signed(nine, "jira-rated-2")),
        await post(client, "survey", survey("excellent"), survey_auth),
        await post(client, "survey", survey(float("nan")), survey_auth),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [
        (202, {"accepted": 1, "event_ids": ["zendesk:csat-good:rated"]}),
        (202, {"accepted": 1, "event_ids": ["jira:jira-rated-1:rated"]}),
        (202, {"accepted": 1, "event_ids": [answers[2].json()["event_ids"][0]]}),
        (202, {"ignored": "the satisfaction rating is 'offered': not rated"}),
        (
            422,
            {
                "detail": "detail.satisfaction_rating.score: 'meh' is not a rating"
                " (one of good, bad, offered, unoffered)"
            },
        ),
        (
            422,
            {"detail": "fields.rating ($.issue.fields.*.rating): the rating 9 is outside 0 to 5"},
        ),
        (422, {"detail": "fields.rating (/csat): the rating 'excellent' is not a number"}),
        (422, {"detail": "fields.rating (/csat): the rating nan is not a finite number"}),
    ]
    records = sorted(await topic(kafka_bootstrap, topics.tickets))
    assert [(key, value["type"], value["data"]) for key, value in records] == [
        ("jira:TEST-11", "ticket.rated", {"id": "TEST-11", "rating": {"score": 4, "scale_max": 5}}),
        ("survey:T-5", "ticket.rated", {"id": "T-5", "rating": {"score": 4.5, "scale_max": 5}}),
        ("zendesk:5158", "ticket.rated", {"id": "5158", "rating": {"score": 1, "scale_max": 1}}),
    ]
    text = (await client.get("/metrics")).text
    assert metric(text, "slawatch_ingest_webhooks_total", source="zendesk", outcome="invalid") == 1
    assert metric(text, "slawatch_ingest_webhooks_total", source="jira", outcome="invalid") == 1
    assert metric(text, "slawatch_ingest_webhooks_total", source="survey", outcome="invalid") == 2


async def test_zendesk_ratings_from_a_trigger_webhook_by_bearer_token(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    """The setup docs/SOURCES.md gives: Zendesk signs each webhook with a secret of its own,
    so the events webhook and the trigger's share a bearer token and the source has no secret."""
    bad = zendesk_rating("bad")
    foreign = zendesk_signed(bad) | {"X-Zendesk-Webhook-Signature": "c2lnbmVkIGVsc2V3aGVyZQ=="}
    token = {"Authorization": "Bearer zd-token"}

    answer = await post(client, "zendesk-tokens", bad, foreign | token)
    refused = await post(client, "zendesk-tokens", bad, foreign)

    assert (answer.status_code, answer.json()["event_ids"]) == (
        202,
        ["zendesk-tokens:csat-bad:rated"],
    )
    assert refused.status_code == 401
    [(key, value)] = await topic(kafka_bootstrap, topics.tickets)
    assert (key, value["data"]) == (
        "zendesk-tokens:5158",
        {"id": "5158", "rating": {"score": 0, "scale_max": 1}},
    )


async def test_docs_list_the_webhook_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/webhooks/{source}"]["post"]
    assert set(operation["responses"]) >= {"202", "401", "404", "413", "422", "429", "503"}
    assert "snow" in operation["description"]


def notification(*alerts: Any, version: str = "4") -> bytes:
    return json.dumps({"version": version, "status": "firing", "alerts": list(alerts)}).encode()


def firing(n: int, starts_at: str = "2026-11-26T01:00:00Z", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": f"Alert{n}", **labels},
        "startsAt": starts_at,
        "fingerprint": f"f{n}",
    }


async def test_a_notification_of_more_alerts_than_a_request_of_events_may_carry_is_published(
    settings: IngestSettings, kafka_bootstrap: str, topics: Topics
) -> None:
    """SLAWATCH_MAX_EVENTS_PER_REQUEST caps POST /v1/events only: Alertmanager does not retry
    a 4xx and sends the same group again, so a group refused for its size would never
    arrive. A delivery is bounded by its source's size cap; every alert of it is published."""
    config = f"""
alertmanager: {{tokens: [am-token], max_body_bytes: 1048576}}
grafana: {{secret: {SECRET}, max_body_bytes: 1048576}}
"""
    sources = parse_sources(yaml.safe_load(config), {})
    # 1,200 alerts of a default SLAWATCH_MAX_EVENTS_PER_REQUEST of 1,000.
    outage = notification(*(firing(n, service=f"svc-{n}") for n in range(1200)))
    grafana = notification(*(firing(n, service="core") for n in range(1001)), version="1")
    garbage = notification(*(["not an alert"] * 1001))
    signed = {"X-Grafana-Alerting-Signature": payloads.grafana(SECRET, grafana)}
    async with (
        serving(create_app(settings, sources)) as base,
        httpx.AsyncClient(base_url=base, timeout=60) as client,
    ):
        answers = [
            await post(client, "alertmanager", outage, {"Authorization": "Bearer am-token"}),
            await post(client, "grafana", grafana, signed),
            await post(client, "alertmanager", garbage, {"Authorization": "Bearer am-token"}),
        ]

    assert [a.status_code for a in answers] == [202, 202, 422]
    assert [a.json()["accepted"] for a in answers[:2]] == [1200, 1001]
    assert answers[2].json() == {"detail": "alerts[0] is not an object"}
    stored = await read_topic(kafka_bootstrap, topics.monitoring)
    assert len(stored) == 2201
    assert len({key for key, _ in stored}) == 1201  # svc-0 ... svc-1199, and core


async def test_what_a_422_or_an_ignored_delivery_lists_is_capped(
    settings: IngestSettings, kafka_bootstrap: str, topics: Topics
) -> None:
    """What a 422 or an ignored delivery lists is capped like a 422 of POST /v1/events."""
    limited = settings.model_copy(update={"max_errors_listed": 2})
    sources = parse_sources(yaml.safe_load(CONFIG), {})
    am = {"Authorization": "Bearer am-token"}
    early = notification(*(firing(n, "1999-01-01T00:00:00Z", service="core") for n in range(3)))
    no_service = notification(*(firing(n) for n in range(3)))
    async with (
        serving(create_app(limited, sources)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        answers = [
            await post(client, "alertmanager", early, am),
            await post(client, "alertmanager", no_service, am),
        ]

    assert answers[0].status_code == 422
    listed = answers[0].json()["detail"].split("; ")
    assert listed == [
        "events[0].occurred_at: 1999-01-01T00:00:00+00:00 is before 2000-01-01T00:00:00+00:00,"
        " the earliest instant accepted",
        "events[0].data.starts_at: 1999-01-01T00:00:00+00:00 is before"
        " 2000-01-01T00:00:00+00:00, the earliest instant accepted",
        "and 4 more: listing stopped after 2 problems",
    ]
    assert answers[1].json() == {
        "ignored": "Alert0: no service or job label; Alert1: no service or job label; and 1 more"
    }
    assert await read_topic(kafka_bootstrap, topics.monitoring) == []
