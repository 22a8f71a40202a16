"""Unauthenticated floods, served by uvicorn on the shared broker: genuine deliveries go on.

The flood comes from its own client address, 127.0.0.2 (all of 127/8 is
loopback on Linux), the genuine sender from 127.0.0.1. Failed
authentication spends the flooding address's bucket only
(``SLAWATCH_UNAUTH_PER_MINUTE``, ``SLAWATCH_UNAUTH_BURST``): once it is empty
the address is answered 429 before anything of its body is read, and a
source's own rate limit is spent only by authenticated deliveries. What the
headers alone prove (a bearer token of ``POST /v1/events``, a webhook's token
or basic-auth user) still goes through from a limited address: senders behind
one address share its budget only for deliveries signed over their body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import yaml

from ingest import payloads
from ingest.harness import AUTH, event, read_topic
from ingest.payloads import sample
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.prom import metric
from support.threaded import serving_in_thread

pytestmark = pytest.mark.kafka

SECRET = "webhook-secret"
CONFIG = f"""
jira:
  secret: {SECRET}
  rate_limit: {{per_second: 0.001, burst: 5}}
alertmanager:
  tokens: [am-token]
  basic_auth: {{am: am-password}}
"""
SOURCES = parse_sources(yaml.safe_load(CONFIG), {})
FLOOD = "127.0.0.2"
ISSUE = sample("jira-issue_created.json")
SIGNED = {"Content-Type": "application/json", "X-Hub-Signature": payloads.hub(SECRET, ISSUE)}
# Half of the flood sends no credentials, half a signature that does not match.
FORGED = {"Content-Type": "application/json", "X-Hub-Signature": "sha256=" + "0" * 64}
UNSIGNED = {"Content-Type": "application/json"}
ALERTS = sample("alertmanager-v4-firing.json")
# jira has a webhook secret here, so it takes no events from the ingest token: another source.
BRIDGED = json.dumps(event(1, source="bridge")).encode()

Serve = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, httpx.AsyncClient]]]


@pytest.fixture
def serve(settings: IngestSettings) -> Serve:
    """Serves an app with ``SOURCES`` and the given limits of failed authentication; yields a
    client from 127.0.0.1 and one from ``FLOOD``, neither with credentials of its own."""

    @asynccontextmanager
    async def served(
        **limits: Any,
    ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        app = create_app(settings.model_copy(update=limits), SOURCES)
        # Served from a thread of its own: a client in the server's own loop waits some
        # 40 ms for each answer, which makes a flood of 1,000 take most of a minute.
        with serving_in_thread(app) as base:
            async with (
                httpx.AsyncClient(base_url=base, timeout=30) as genuine,
                httpx.AsyncClient(
                    base_url=base,
                    timeout=30,
                    transport=httpx.AsyncHTTPTransport(local_address=FLOOD),
                ) as flood,
            ):
                yield genuine, flood

    return served


async def flood_of(client: httpx.AsyncClient, requests: int) -> list[httpx.Response]:
    """``requests`` unauthenticated deliveries to jira, one after the other."""
    return [
        await client.post("/v1/webhooks/jira", content=ISSUE, headers=FORGED if n % 2 else UNSIGNED)
        for n in range(requests)
    ]


async def test_after_a_flood_of_1000_unauthenticated_requests_a_signed_delivery_is_202(
    serve: Serve, kafka_bootstrap: str, topics: Topics
) -> None:
    async with serve(unauth_burst=20, unauth_per_minute=1.0) as (genuine, flood):
        answers = await flood_of(flood, 1000)
        signed = await genuine.post("/v1/webhooks/jira", content=ISSUE, headers=SIGNED)
        flooder_signed = await flood.post("/v1/webhooks/jira", content=ISSUE, headers=SIGNED)
        text = (await genuine.get("/metrics")).text

    assert [a.status_code for a in answers] == [401] * 20 + [429] * 980
    # A failure a minute refills: the next is a minute away, less what the flood took.
    waits = [int(a.headers["Retry-After"]) for a in answers[20:]]
    assert all(50 <= wait <= 60 for wait in waits)
    assert answers[-1].json() == {
        "detail": f"too many failed authentications from this address; retry in {waits[-1]} s"
    }
    assert (signed.status_code, signed.json()["accepted"]) == (202, 1)
    # A signature is checked against the body: a limited address does not have one read.
    assert flooder_signed.status_code == 429
    [(key, _)] = await read_topic(kafka_bootstrap, topics.tickets)
    assert key == b"jira:TEST-4"
    counts = {
        outcome: metric(text, "slawatch_ingest_webhooks_total", source="jira", outcome=outcome)
        for outcome in ("unauthorized", "address_limited", "rate_limited", "accepted")
    }
    assert counts == {"unauthorized": 20, "address_limited": 981, "rate_limited": 0, "accepted": 1}


async def test_an_unauthenticated_flood_spends_nothing_of_the_source_s_rate_limit(
    serve: Serve,
) -> None:
    """jira takes a burst of 5 deliveries; 1000 failed ones before them leave all 5."""
    async with serve(unauth_burst=1_000_000, unauth_per_minute=60.0) as (genuine, flood):
        answers = await flood_of(flood, 1000)
        signed = [
            await genuine.post("/v1/webhooks/jira", content=ISSUE, headers=SIGNED) for _ in range(6)
        ]

    assert {a.status_code for a in answers} == {401}
    assert [s.status_code for s in signed] == [202] * 5 + [429]
    assert "over the rate limit of source 'jira'" in signed[5].json()["detail"]


async def test_what_the_headers_refuse_is_refused_before_the_body_is_read(
    serve: Serve, settings: IngestSettings
) -> None:
    """A body over the size cap is only ever judged once the headers pass: no credentials,
    a wrong token or an address over its limit are answered without reading it; a body
    still to be checked against its signature spends the address's bucket if it is refused."""
    huge = b"{" + b" " * (settings.max_body_bytes * 4) + b"}"
    am = "/v1/webhooks/alertmanager"
    async with serve(unauth_burst=3, unauth_per_minute=1.0) as (genuine, flood):
        unsigned = await genuine.post("/v1/webhooks/jira", content=huge, headers=UNSIGNED)
        wrong_token = await genuine.post(am, content=huge, headers={"Authorization": "Bearer x"})
        right_token = await genuine.post(
            am, content=huge, headers={"Authorization": "Bearer am-token"}
        )
        forged = [
            await flood.post("/v1/webhooks/jira", content=huge, headers=FORGED) for _ in range(4)
        ]

    assert [unsigned.status_code, wrong_token.status_code] == [401, 401]
    assert right_token.status_code == 413
    # Three signatures whose bodies were too large to check, then the address is refused.
    assert [f.status_code for f in forged] == [413, 413, 413, 429]


async def test_post_events_shares_the_limit_of_failed_authentication(
    serve: Serve, kafka_bootstrap: str, topics: Topics
) -> None:
    body = BRIDGED
    wrong = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
    right = AUTH | {"Content-Type": "application/json"}
    async with serve(unauth_burst=5, unauth_per_minute=1.0) as (genuine, flood):
        webhook = await flood.post("/v1/webhooks/jira", content=ISSUE, headers=UNSIGNED)
        answers = [await flood.post("/v1/events", content=body, headers=wrong) for _ in range(6)]
        flooder_right = await flood.post("/v1/events", content=body, headers=right)
        genuine_right = await genuine.post("/v1/events", content=body, headers=right)
        text = (await genuine.get("/metrics")).text

    # One failure on a webhook and four on /v1/events spend the address's five.
    assert webhook.status_code == 401
    assert [a.status_code for a in answers] == [401] * 4 + [429] * 2
    assert 50 <= int(answers[4].headers["Retry-After"]) <= 60
    # A valid token is checked before the address's record, and served whatever that is.
    assert flooder_right.status_code == 202
    assert genuine_right.status_code == 202
    assert len(await read_topic(kafka_bootstrap, topics.tickets)) == 2
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="address_limited") == 2
    assert metric(text, "slawatch_ingest_requests_rejected_total", reason="unauthorized") == 4


async def test_a_flooded_address_is_served_what_its_headers_prove(
    serve: Serve, kafka_bootstrap: str, topics: Topics
) -> None:
    """Genuine senders behind the flooding address (a proxy, a SaaS sender's pool) go on
    with a valid bearer token on /v1/events, or a webhook's token or basic-auth user; a
    wrong one, or a delivery whose signature needs its body read, is answered 429."""
    am = "/v1/webhooks/alertmanager"
    json_body = {"Content-Type": "application/json"}
    async with serve(unauth_burst=3, unauth_per_minute=1.0) as (genuine, flood):
        spent = await flood_of(flood, 3)
        answers = {
            "events bearer": await flood.post(
                "/v1/events", content=BRIDGED, headers=AUTH | json_body
            ),
            "webhook token": await flood.post(
                am, content=ALERTS, headers=json_body | {"Authorization": "Bearer am-token"}
            ),
            "webhook basic": await flood.post(
                am,
                content=ALERTS,
                headers=json_body | {"Authorization": payloads.basic("am", "am-password")},
            ),
            "events wrong bearer": await flood.post(
                "/v1/events",
                content=BRIDGED,
                headers={"Authorization": "Bearer wrong"} | json_body,
            ),
            "webhook wrong token": await flood.post(
                am, content=ALERTS, headers=json_body | {"Authorization": "Bearer wrong"}
            ),
            "webhook wrong basic": await flood.post(
                am,
                content=ALERTS,
                headers=json_body | {"Authorization": payloads.basic("am", "wrong")},
            ),
            "signed": await flood.post("/v1/webhooks/jira", content=ISSUE, headers=SIGNED),
        }
        text = (await genuine.get("/metrics")).text

    assert [a.status_code for a in spent] == [401] * 3
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "events bearer": 202,
        "webhook token": 202,
        "webhook basic": 202,
        "events wrong bearer": 429,
        "webhook wrong token": 429,
        "webhook wrong basic": 429,
        "signed": 429,
    }
    assert len(await read_topic(kafka_bootstrap, topics.tickets)) == 1
    assert len(await read_topic(kafka_bootstrap, topics.monitoring)) > 0
    accepted = metric(
        text, "slawatch_ingest_webhooks_total", source="alertmanager", outcome="accepted"
    )
    assert accepted == 2


async def test_concurrent_forged_signatures_have_at_most_the_burst_of_bodies_read(
    serve: Serve,
) -> None:
    """50 forged deliveries at once, their bodies held back until every request's headers
    are in: a token of the address's bucket is taken before a body is read, so three bodies
    are read (and answered 401), the rest answered 429 without reading theirs."""
    gate = asyncio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        await gate.wait()
        yield ISSUE

    async with serve(unauth_burst=3, unauth_per_minute=1.0) as (genuine, flood):

        async def forged() -> httpx.Response:
            return await flood.post("/v1/webhooks/jira", content=held_body(), headers=FORGED)

        requests = [asyncio.ensure_future(forged()) for _ in range(50)]
        await asyncio.sleep(1.0)  # every request's headers reach the app; no body has
        gate.set()
        answers = await asyncio.gather(*requests)
        text = (await genuine.get("/metrics")).text

    assert sorted(a.status_code for a in answers) == [401] * 3 + [429] * 47
    counts = {
        outcome: metric(text, "slawatch_ingest_webhooks_total", source="jira", outcome=outcome)
        for outcome in ("unauthorized", "address_limited")
    }
    assert counts == {"unauthorized": 3, "address_limited": 47}
