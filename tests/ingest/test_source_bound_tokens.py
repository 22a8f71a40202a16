"""``events:write`` bound to sources: a token (static or JWT) posts events of its sources only.

Served by uvicorn, producing to the real broker: a request with one event of
another source is refused whole (403 naming each such event's ``source``) and
nothing of it reaches the topic; a token bound to no source posts for any.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.jwt_keys import SigningKey, jwks_file
from ingest.harness import event, read_topic, serve
from slawatch_common.auth import ApiToken, Scope
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from support.prom import metric

pytestmark = pytest.mark.kafka

JIRA_TOKEN = "token-of-the-jira-bridge"
KEY = SigningKey.ec("idp-1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_for(*sources: str) -> str:
    claims = {"sub": "bridge", "exp": int(time.time()) + 60, "scope": "events:write"}
    return KEY.sign({**claims, "slawatch_sources": list(sources)})


async def test_a_token_bound_to_sources_posts_their_events_only(
    settings: IngestSettings, kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    bound = ApiToken(
        name="jira-bridge", token=JIRA_TOKEN, scopes=(Scope.EVENTS_WRITE,), sources=("jira",)
    )
    jwks = jwks_file(tmp_path / "jwks.json", KEY)
    bound_settings = settings.model_copy(update={"api_tokens": (bound,), "jwt_jwks": str(jwks)})
    app = create_app(bound_settings)
    async with serve(app) as client:
        own = [event(1), event(2)]
        mixed = [event(3), event(4, source="zammad"), event(5, source="glpi")]
        answers = {
            "own": await client.post("/v1/events", json=own, headers=bearer(JIRA_TOKEN)),
            "mixed": await client.post("/v1/events", json=mixed, headers=bearer(JIRA_TOKEN)),
            "jwt own": await client.post(
                "/v1/events", json=[event(6)], headers=bearer(jwt_for("jira"))
            ),
            "jwt other": await client.post(
                "/v1/events", json=[event(7)], headers=bearer(jwt_for("zammad"))
            ),
            "unbound": await client.post("/v1/events", json=[event(8, source="zammad")]),
        }
        text = (await client.get("/metrics")).text

    codes = {name: answer.status_code for name, answer in answers.items()}
    assert codes == {"own": 202, "mixed": 403, "jwt own": 202, "jwt other": 403, "unbound": 202}
    assert [p["loc"] for p in answers["mixed"].json()["detail"]] == [
        ["body", 1, "source"],
        ["body", 2, "source"],
    ]
    assert "sources jira only" in answers["mixed"].json()["detail"][0]["msg"]
    stored = await read_topic(kafka_bootstrap, topics.tickets)
    assert sorted(key for key, _ in stored) == [
        b"jira:T-1",
        b"jira:T-2",
        b"jira:T-6",
        b"zammad:T-8",
    ]
    rejected = metric(text, "slawatch_ingest_requests_rejected_total", reason="source_not_allowed")
    assert rejected == 2


async def test_a_jwt_of_another_key_or_expired_is_refused(
    settings: IngestSettings, tmp_path: Path
) -> None:
    jwks = jwks_file(tmp_path / "jwks.json", KEY)
    app = create_app(settings.model_copy(update={"jwt_jwks": str(jwks)}))
    foreign = SigningKey.ec("idp-1")
    expired = KEY.sign({"sub": "x", "exp": int(time.time()) - 60, "scope": "events:write"})
    other = foreign.sign({"sub": "x", "exp": int(time.time()) + 60, "scope": "events:write"})
    async with serve(app) as client:
        for token in (expired, other):
            answer = await client.post("/v1/events", json=[event(1)], headers=bearer(token))
            assert answer.status_code == 401
