"""POST /v1/events and the probes, served by uvicorn, producing to the real broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from ingest.harness import alert, event, read_partitions, read_topic, serve
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.publishing import OWN_BATCHES_FROM
from slawatch_ingest.settings import IngestSettings
from support.prom import metric

pytestmark = pytest.mark.kafka

NDJSON = {"Content-Type": "application/x-ndjson"}


async def test_accepted_events_are_on_their_topics_with_their_keys(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    batch = [event(1), alert("db"), event(2)]
    response = await client.post("/v1/events", json=batch)

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "event_ids": [e["event_id"] for e in batch]}
    tickets = await read_topic(kafka_bootstrap, topics.tickets)
    assert sorted((key, json.loads(value)) for key, value in tickets) == [
        (b"jira:T-1", batch[0] | {"schema_version": 1}),
        (b"jira:T-2", batch[2] | {"schema_version": 1}),
    ]
    [(key, value)] = await read_topic(kafka_bootstrap, topics.monitoring)
    assert key == b"db"
    assert json.loads(value)["event_id"] == batch[1]["event_id"]


async def test_ndjson_is_accepted(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    lines = [event(1), event(1, type="ticket.responded")]
    body = "\n".join(json.dumps(e) for e in lines) + "\n"

    response = await client.post("/v1/events", content=body, headers=NDJSON)

    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    records = await read_topic(kafka_bootstrap, topics.tickets)
    assert [json.loads(value)["type"] for _, value in records] == [
        "ticket.created",
        "ticket.responded",
    ]  # one key, one partition: in order


async def test_a_large_batch_lands_where_single_events_do_and_in_order(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    """A request of ``OWN_BATCHES_FROM`` events or more is sent as batches of its own."""
    batch = [event(n % 7, event_id=f"big:{n}") for n in range(OWN_BATCHES_FROM + 50)]
    singles = [event(n, event_id=f"single:{n}") for n in range(7)]

    assert (await client.post("/v1/events", json=batch[:3])).status_code == 202
    assert (await client.post("/v1/events", json=batch[3:])).status_code == 202
    for single in singles:
        assert (await client.post("/v1/events", json=single)).status_code == 202

    stored = await read_partitions(kafka_bootstrap, topics.tickets)
    partitions_of: dict[bytes, set[int]] = {}
    for partition, records in stored.items():
        for key, _ in records:
            partitions_of.setdefault(key, set()).add(partition)
    assert all(len(found) == 1 for found in partitions_of.values()), partitions_of
    ids = [json.loads(value)["event_id"] for records in stored.values() for _, value in records]
    for n in range(7):  # each ticket's events in the order they were sent
        sent = [e["event_id"] for e in [*batch, *singles] if e["data"]["id"] == f"T-{n}"]
        assert [i for i in ids if i in sent] == sent


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json() == {"detail": "Method Not Allowed"}


async def test_a_trailing_slash_is_redirected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events/", json=event())
    assert response.status_code == 307
    assert httpx.URL(response.headers["Location"]).path == "/v1/events"


async def test_an_invalid_request_stores_none_of_its_events(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    before, after = event(1), event(3)
    invalid_batch = [event(2), alert("db"), event(4, data={"id": "T-4", "priority": "urgent"})]

    assert (await client.post("/v1/events", json=before)).status_code == 202
    refused = await client.post("/v1/events", json=invalid_batch)
    assert (await client.post("/v1/events", json=after)).status_code == 202

    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", 2, "data", "priority"]]
    stored = [
        json.loads(v)["event_id"] for _, v in await read_topic(kafka_bootstrap, topics.tickets)
    ]
    assert sorted(stored) == sorted([before["event_id"], after["event_id"]])
    assert await read_topic(kafka_bootstrap, topics.monitoring) == []


async def test_a_rating_belongs_to_ticket_rated_and_only_there(
    client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics
) -> None:
    rating = {"score": 4, "scale_max": 5}
    rated = event(1, type="ticket.rated", data={"id": "T-1", "rating": rating})
    unrated = event(2, type="ticket.rated", data={"id": "T-2"})
    closed = event(3, type="ticket.closed", data={"id": "T-3", "rating": rating})
    above = event(
        4, type="ticket.rated", data={"id": "T-4", "rating": {"score": 6, "scale_max": 5}}
    )

    accepted = await client.post("/v1/events", json=rated)
    refused = await client.post("/v1/events", json=[unrated, closed, above])

    assert accepted.status_code == 202
    assert refused.status_code == 422
    assert [(e["loc"], e["msg"]) for e in refused.json()["detail"]] == [
        (["body", 0, "data"], "a ticket.rated event needs data.rating (the customer's rating)"),
        (["body", 1, "data"], "data.rating is carried by ticket.rated only, not by ticket.closed"),
        (["body", 2, "data", "rating"], "score (6.0) is greater than scale_max (5.0)"),
    ]
    [(key, value)] = await read_topic(kafka_bootstrap, topics.tickets)
    assert (key, json.loads(value)["data"]) == (b"jira:T-1", {"id": "T-1", "rating": rating})


async def test_ndjson_errors_name_line_and_index(client: httpx.AsyncClient) -> None:
    body = f"{json.dumps(event(1))}\n\n{json.dumps(event(2, occurred_at='yesterday'))}\n"

    response = await client.post("/v1/events", content=body, headers=NDJSON)

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["line"]) == (["body", 1, "occurred_at"], 3)


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        ('[{"a": 1} {"b": 2}]', {}, 400, "line 1 column 11"),
        ("[]", {}, 422, "no events"),
        ("{}", {"Content-Type": "text/plain"}, 415, "text/plain"),
        ("x" * (64 * 1024 + 1), {}, 413, "at most 65536"),
    ],
)
async def test_unreadable_bodies_are_refused_with_a_reason(
    client: httpx.AsyncClient, content: str, headers: dict[str, str], status: int, says: str
) -> None:
    response = await client.post("/v1/events", content=content, headers=headers)
    assert response.status_code == status
    assert says in json.dumps(response.json()["detail"])


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        for _ in range(3):
            yield b" " * 30_000

    response = await client.post("/v1/events", content=chunks())

    assert response.status_code == 413
    assert response.json() == {"detail": "the body exceeds 65536 bytes"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dGVzdC10b2tlbg=="])
async def test_a_missing_or_wrong_token_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    client.headers.pop("Authorization")

    response = await client.post("/v1/events", json=event(), headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_configured_token_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", json=event(), headers={"Authorization": "Bearer other-token"}
    )
    assert response.status_code == 202


async def test_metrics_count_what_happened(client: httpx.AsyncClient) -> None:
    start = (await client.get("/metrics")).text
    assert metric(start, "slawatch_ingest_events_produced_total", type="ticket.closed") == 0
    assert metric(start, "slawatch_ingest_broker_failures_total", reason="timeout") == 0

    await client.post("/v1/events", json=[event(1), event(2), alert()])
    await client.post("/v1/events", json=[event(3), {"type": "bogus"}])
    await client.post("/v1/events", json=event(), headers={"Authorization": "Bearer nope"})

    text = (await client.get("/metrics")).text
    assert metric(text, "slawatch_ingest_events_received_total", type="ticket.created") == 3
    assert metric(text, "slawatch_ingest_events_received_total", type="unknown") == 1
    assert metric(text, "slawatch_ingest_events_produced_total", type="ticket.created") == 2
    assert metric(text, "slawatch_ingest_events_produced_total", type="monitor.alert_firing") == 1
    assert metric(text, "slawatch_ingest_events_rejected_total", reason="invalid") == 2
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="invalid") == 1
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="unauthorized") == 1
    assert metric(text, "slawatch_ingest_request_duration_seconds_count") == 2


async def test_healthz_and_readyz_are_200(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_docs_describe_the_three_body_encodings(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()

    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson"}
    [one, many] = body["application/json"]["schema"]["oneOf"]
    assert one == many["items"] == {"$ref": "#/components/schemas/InboundEvent"}
    schemas = spec["components"]["schemas"]
    assert {"InboundEvent", "TicketEvent", "MonitoringEvent", "Ticket", "Alert"} <= set(schemas)
    assert set(spec["paths"]["/v1/events"]["post"]["responses"]) >= {"202", "401", "422", "503"}


async def test_more_events_than_a_request_may_carry_are_refused_before_validation(
    settings: IngestSettings, kafka_bootstrap: str, topics: Topics
) -> None:
    """1,000 events a request at most (``SLAWATCH_MAX_EVENTS_PER_REQUEST``), as JSON or
    NDJSON: one more and the request is refused whole, its events unread."""
    roomy = settings.model_copy(update={"max_body_bytes": 5 * 1024 * 1024})
    async with serve(create_app(roomy)) as client:
        await _many_events(client, kafka_bootstrap, topics)


async def _many_events(client: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics) -> None:
    events = [event(n % 5, event_id=f"many:{n}") for n in range(1001)]
    for body, headers in (
        (json.dumps(events), {"Content-Type": "application/json"}),
        ("\n".join(json.dumps(e) for e in events), NDJSON),
    ):
        refused = await client.post("/v1/events", content=body, headers=headers)
        assert refused.status_code == 422
        assert refused.json()["detail"] == [
            {
                "loc": ["body"],
                "msg": "at most 1000 events a request; this one has 1001: send them in "
                "several requests",
                "type": "too_many_events",
            }
        ]
    # invalid ones too: the count refuses them, not 5,000 validation errors
    for body, headers in (
        (json.dumps([{}] * 5000), {"Content-Type": "application/json"}),
        ("\n".join(["{}"] * 5000), NDJSON),
    ):
        refused = await client.post("/v1/events", content=body, headers=headers)
        assert refused.status_code == 422
        assert [p["type"] for p in refused.json()["detail"]] == ["too_many_events"]
        assert "this one has 5000" in refused.json()["detail"][0]["msg"]
    accepted = await client.post("/v1/events", json=events[:1000])
    assert accepted.status_code == 202
    assert accepted.json()["accepted"] == 1000
    stored = await read_topic(kafka_bootstrap, topics.tickets)
    assert len(stored) == 1000


async def test_a_422_lists_at_most_a_hundred_problems(client: httpx.AsyncClient) -> None:
    """An array of empty objects (the review's 23 MB answer) gives 100 problems and a note."""
    refused = await client.post("/v1/events", json=[{}] * 900)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert len(detail) == 101
    assert detail[-1] == {
        "loc": ["body"],
        "msg": "validation stopped after 100 problems",
        "type": "too_many_errors",
    }
    assert [problem["loc"][:2] for problem in detail[:-1]] == [["body", n] for n in range(100)]
    assert len(refused.content) < 50_000
