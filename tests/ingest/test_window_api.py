"""The window of accepted instants over HTTP: POST /v1/events and the webhooks, on the real broker.

The app runs on its own clock, the real one: the instants near the upper
bound are a minute either side of it, far more than a request takes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from ingest import payloads
from ingest.harness import alert, event, read_topic
from ingest.payloads import sample_json
from ingest.test_generic_mapping import GLPI_BODY
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.prom import metric
from support.serving import serving

pytestmark = pytest.mark.kafka

NDJSON = {"Content-Type": "application/x-ndjson"}
SECRET = "webhook-secret"
SOURCES = f"""
jira: {{secret: {SECRET}}}
zammad: {{secret: {SECRET}}}
glpi: {{secret: {SECRET}}}
"""


def ahead(minutes: float) -> str:
    """The instant ``minutes`` from now (negative: ago), in RFC 3339."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


REFUSED = [
    # id, occurred_at (str, or minutes from now), reason
    ("year 1", "0001-01-01T00:00:00Z", "too_early"),
    ("year 1 at +14:00, the year 0 in UTC", "0001-01-01T00:00:00+14:00", "too_early"),
    ("a second before 2000", "1999-12-31T23:59:59Z", "too_early"),
    ("year 9999", "9999-12-31T23:59:59Z", "too_far_ahead"),
    ("year 9999 at -14:00, the year 10000 in UTC", "9999-12-31T23:59:59-14:00", "too_far_ahead"),
    ("61 minutes ahead", 61, "too_far_ahead"),
]
ACCEPTED = [
    ("2000 at midnight", "2000-01-01T00:00:00Z"),
    ("59 minutes ahead", 59),
    ("a minute ago", -1),
]


def instant(value: str | float) -> str:
    return value if isinstance(value, str) else ahead(value)


@pytest.mark.parametrize(
    ("occurred_at", "reason"), [pytest.param(v, r, id=i) for i, v, r in REFUSED]
)
async def test_an_event_outside_the_window_is_422_naming_the_field(
    client: httpx.AsyncClient,
    kafka_bootstrap: str,
    topics: Topics,
    occurred_at: str | float,
    reason: str,
) -> None:
    response = await client.post("/v1/events", json=event(occurred_at=instant(occurred_at)))

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "occurred_at"], reason)
    assert await read_topic(kafka_bootstrap, topics.tickets) == []
    text = (await client.get("/metrics")).text
    assert metric(text, "slawatch_ingest_events_out_of_window_total", reason=reason) == 1
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="invalid") == 1
    assert metric(text, "slawatch_ingest_event_skew_seconds_count") == 0


@pytest.mark.parametrize("occurred_at", [pytest.param(v, id=i) for i, v in ACCEPTED])
async def test_an_event_inside_the_window_is_accepted_as_sent(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics, occurred_at: str | float
) -> None:
    sent = event(occurred_at=instant(occurred_at))

    response = await client.post("/v1/events", json=sent)

    assert response.status_code == 202
    [(_, value)] = await read_topic(kafka_bootstrap, topics.tickets)
    assert json.loads(value)["occurred_at"] == sent["occurred_at"]


async def test_one_event_outside_the_window_refuses_the_whole_batch_naming_its_index(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    late = alert("db")
    late["data"]["starts_at"] = "1999-12-31T23:59:59Z"
    batch = [event(1), event(2, occurred_at=ahead(61)), event(3), late]
    lines = [event(4), event(5), event(6, occurred_at="0001-01-01T00:00:00Z")]
    ndjson = "\n\n".join(json.dumps(e) for e in lines)

    refused = await client.post("/v1/events", json=batch)
    refused_lines = await client.post("/v1/events", content=ndjson, headers=NDJSON)

    assert refused.status_code == refused_lines.status_code == 422
    assert [(e["loc"], e["type"]) for e in refused.json()["detail"]] == [
        (["body", 1, "occurred_at"], "too_far_ahead"),
        (["body", 3, "data", "starts_at"], "too_early"),
    ]
    [error] = refused_lines.json()["detail"]
    assert (error["loc"], error["line"], error["type"]) == (
        ["body", 2, "occurred_at"],
        5,
        "too_early",
    )
    assert await read_topic(kafka_bootstrap, topics.tickets) == []
    assert await read_topic(kafka_bootstrap, topics.monitoring) == []
    text = (await client.get("/metrics")).text
    assert metric(text, "slawatch_ingest_events_out_of_window_total", reason="too_early") == 2
    assert metric(text, "slawatch_ingest_events_out_of_window_total", reason="too_far_ahead") == 1
    assert metric(text, "slawatch_ingest_events_rejected_total", reason="invalid") == 7


async def test_the_skew_of_every_accepted_event_is_observed(client: httpx.AsyncClient) -> None:
    start = (await client.get("/metrics")).text
    assert metric(start, "slawatch_ingest_event_skew_seconds_count") == 0

    accepted = await client.post(
        "/v1/events",
        json=[
            event(1, occurred_at="2000-01-01T00:00:00Z"),  # decades ago
            event(2, occurred_at=ahead(-1.5)),  # 90 s ago
            alert() | {"occurred_at": ahead(30)},  # a clock half an hour ahead
        ],
    )
    refused = await client.post("/v1/events", json=event(3, occurred_at="1999-12-31T23:59:59Z"))

    assert (accepted.status_code, refused.status_code) == (202, 422)
    text = (await client.get("/metrics")).text
    skew = "slawatch_ingest_event_skew_seconds_bucket"
    assert [metric(text, skew, le=le) for le in ("-604800.0", "-600.0", "-60.0", "0.0")] == [
        1,
        1,
        2,
        2,
    ]
    assert [metric(text, skew, le=le) for le in ("600.0", "3600.0", "+Inf")] == [2, 3, 3]
    assert metric(text, "slawatch_ingest_event_skew_seconds_count") == 3


@pytest.fixture
async def webhooks(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client (no credentials of its own) of an app with the sources above."""
    app = create_app(settings, parse_sources(yaml.safe_load(SOURCES), {}))
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        yield client


def jira(timestamp: str) -> tuple[bytes, dict[str, str]]:
    body = sample_json("jira-issue_updated-status_changelog.json") | {"timestamp": timestamp}
    raw = json.dumps(body).encode()
    return raw, {"X-Hub-Signature": payloads.hub(SECRET, raw)}


def zammad(created_at: str) -> tuple[bytes, dict[str, str]]:
    body = sample_json("zammad-ticket-default.json")
    body["ticket"]["created_at"] = created_at
    raw = json.dumps(body).encode()
    return raw, {"X-Hub-Signature": payloads.hub(SECRET, raw, "sha1")}


def glpi(date: str) -> tuple[bytes, dict[str, str]]:
    """A new GLPI ticket, created and modified at ``date``."""
    body: dict[str, Any] = copy.deepcopy(GLPI_BODY)
    body["item"] |= {"date_creation": date, "date_mod": date}
    raw = json.dumps(body).encode()
    stamp = int(datetime.now(UTC).timestamp())
    return raw, {
        "X-GLPI-signature": payloads.glpi(SECRET, raw, stamp),
        "X-GLPI-timestamp": str(stamp),
    }


DELIVERIES = {
    "jira, year 9999": ("jira", jira("9999-12-31T23:59:59Z"), "too_far_ahead"),
    "zammad, year 1": ("zammad", zammad("0001-01-01T00:00:00Z"), "too_early"),
    "glpi, a second before 2000": ("glpi", glpi("1999-12-31 23:59:59"), "too_early"),
}


@pytest.mark.parametrize(("source", "delivery", "reason"), DELIVERIES.values(), ids=DELIVERIES)
async def test_a_delivery_with_a_time_outside_the_window_is_422_naming_the_event_field(
    webhooks: httpx.AsyncClient,
    kafka_bootstrap: str,
    topics: Topics,
    source: str,
    delivery: tuple[bytes, dict[str, str]],
    reason: str,
) -> None:
    body, signed = delivery
    headers = {"Content-Type": "application/json", **signed}

    response = await webhooks.post(f"/v1/webhooks/{source}", content=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"].startswith("events[0].occurred_at: ")
    assert await read_topic(kafka_bootstrap, topics.tickets) == []
    text = (await webhooks.get("/metrics")).text
    assert metric(text, "slawatch_ingest_webhooks_total", source=source, outcome="invalid") == 1
    assert metric(text, "slawatch_ingest_events_out_of_window_total", reason=reason) == 1


async def test_a_delivery_inside_the_window_is_accepted_and_its_skew_observed(
    webhooks: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    body, signed = glpi(ahead(-1.5))
    headers = {"Content-Type": "application/json", **signed}

    response = await webhooks.post("/v1/webhooks/glpi", content=body, headers=headers)

    assert response.status_code == 202
    assert len(await read_topic(kafka_bootstrap, topics.tickets)) == 1
    text = (await webhooks.get("/metrics")).text
    skew = "slawatch_ingest_event_skew_seconds_bucket"
    assert (metric(text, skew, le="-600.0"), metric(text, skew, le="-60.0")) == (0, 1)
