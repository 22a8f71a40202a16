"""``EventIntake`` as the ASGI app it is, without a broker: what it does before publishing."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message

from slawatch_common.topics import Topics
from slawatch_ingest.events_api import EventIntake
from slawatch_ingest.metrics import IngestMetrics
from slawatch_ingest.publishing import Publisher
from slawatch_ingest.settings import IngestSettings


def intake() -> EventIntake:
    settings = IngestSettings(ingest_tokens=("t",))
    never_started = Publisher("127.0.0.1:1", Topics(), 1.0)
    return EventIntake(settings, never_started, IngestMetrics.register(CollectorRegistry()))


def scope(authorization: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "headers": [(b"authorization", authorization), (b"content-type", b"application/json")],
    }


async def test_a_client_gone_before_its_body_arrived_gets_no_answer() -> None:
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await intake()(scope(b"Bearer t"), receive, send)

    assert sent == []


async def test_an_unauthorised_request_is_answered_before_its_body_is_read() -> None:
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        pytest.fail("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    await intake()(scope(b"Bearer wrong"), receive, send)

    assert sent[0]["status"] == 401
    assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"detail":"a valid bearer token is required"}'
