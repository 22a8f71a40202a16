"""The webhook route against a fake publisher: broker failures, retries, rate limits.

No broker: the ``Publisher`` port is replaced by a fake that records or fails,
and the app runs in-process through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from ingest.payloads import sample
from slawatch_ingest.metrics import IngestMetrics
from slawatch_ingest.parsing import Inbound
from slawatch_ingest.publishing import BrokerUnavailableError, Publisher
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from slawatch_ingest.webhooks_api import webhooks_router

AUTH = {"Authorization": "Bearer am-token"}
FIRING = sample("alertmanager-v4-firing.json")


class FakePublisher(Publisher):
    """Keeps what it is asked to publish; fails while ``down``."""

    def __init__(self) -> None:
        self.published: list[list[str]] = []
        self.down = False

    async def publish(self, events: Sequence[Inbound]) -> None:
        if self.down:
            raise BrokerUnavailableError(
                "the broker did not acknowledge within 5 s", timed_out=True
            )
        self.published.append([event.event_id for event in events])


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def client(
    publisher: FakePublisher, monotonic: FakeMonotonic
) -> AsyncIterator[httpx.AsyncClient]:
    sources = parse_sources(
        {"alertmanager": {"tokens": ["am-token"], "rate_limit": {"per_second": 0.5, "burst": 3}}},
        {},
    )
    metrics = IngestMetrics.register(CollectorRegistry(), sources)
    app = FastAPI()
    settings = IngestSettings(ingest_tokens=("t",))
    app.include_router(webhooks_router(settings, sources, publisher, metrics, monotonic=monotonic))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield client


async def post(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/v1/webhooks/alertmanager", content=FIRING, headers=AUTH)


async def test_a_broker_failure_is_503_and_the_retry_publishes_again(
    client: httpx.AsyncClient, publisher: FakePublisher
) -> None:
    publisher.down = True
    refused = await post(client)
    publisher.down = False
    retried = await post(client)
    again = await post(client)

    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "5")
    assert "retry the delivery" in refused.json()["detail"]
    assert retried.status_code == again.status_code == 202
    assert retried.json() == again.json()
    # the retry after the 503 is produced; the repeat of an acknowledged one is not
    assert publisher.published == [retried.json()["event_ids"]]


async def test_over_the_rate_limit_is_429_until_a_token_is_back(
    client: httpx.AsyncClient, monotonic: FakeMonotonic
) -> None:
    answers = [(await post(client)).status_code for _ in range(3)]
    limited = await post(client)
    monotonic.now += 1.0  # half a token back
    still = await post(client)
    monotonic.now += 1.0
    back = await post(client)

    assert answers == [202, 202, 202]
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert (still.status_code, still.headers["Retry-After"]) == (429, "1")
    assert back.status_code == 202
