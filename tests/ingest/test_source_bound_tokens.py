"""``events:write`` bound to sources: a token (static or JWT) posts events of its sources only.

Served by uvicorn, producing to the real broker: a request with one event of
another source is refused whole (403 naming each such event's ``source``) and
nothing of it reaches the topic. A token bound to no source posts for any source
but the protected ones: those with a webhook that has credentials, and those a
token is bound to; an admin token posts for any.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from common.jwt_keys import SigningKey, jwks_file
from ingest.harness import event, read_topic, serve
from slawatch_common.auth import ApiToken, Scope
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.prom import metric

pytestmark = pytest.mark.kafka

JIRA_TOKEN = "token-of-the-jira-bridge"
ZAMMAD_TOKEN = "token-of-the-zammad-bridge"
UNBOUND_TOKEN = "token-of-the-ops-console"
ADMIN_TOKEN = "token-of-the-operators"
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


async def test_an_unbound_token_cannot_post_for_a_protected_source(
    settings: IngestSettings, kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """jira has a webhook secret and zammad a token bound to it: neither takes events from
    SLAWATCH_INGEST_TOKENS, an API token without sources or a JWT without the claim. glpi,
    left at its defaults without credentials, is not protected."""
    sources = parse_sources(yaml.safe_load("jira: {secret: webhook-secret}"), {})
    tokens = (
        ApiToken(
            name="zammad-bridge",
            token=ZAMMAD_TOKEN,
            scopes=(Scope.EVENTS_WRITE,),
            sources=("zammad",),
        ),
        ApiToken(name="ops-console", token=UNBOUND_TOKEN, scopes=(Scope.EVENTS_WRITE,)),
    )
    jwks = jwks_file(tmp_path / "jwks.json", KEY)
    unbound_jwt = KEY.sign({"sub": "x", "exp": int(time.time()) + 60, "scope": "events:write"})
    app = create_app(
        settings.model_copy(
            update={"api_tokens": tokens, "admin_tokens": (ADMIN_TOKEN,), "jwt_jwks": str(jwks)}
        ),
        sources,
    )
    async with serve(app) as client:  # the client's own token: SLAWATCH_INGEST_TOKENS
        answers = {
            "legacy jira": await client.post("/v1/events", json=[event(1)]),
            "legacy zammad": await client.post("/v1/events", json=[event(2, source="zammad")]),
            "legacy mixed": await client.post(
                "/v1/events",
                json=[event(3, source="other"), event(4), event(5, source="zammad")],
            ),
            "legacy other": await client.post("/v1/events", json=[event(6, source="other")]),
            "legacy glpi": await client.post("/v1/events", json=[event(7, source="glpi")]),
            "api unbound jira": await client.post(
                "/v1/events", json=[event(8)], headers=bearer(UNBOUND_TOKEN)
            ),
            "jwt unbound jira": await client.post(
                "/v1/events", json=[event(9)], headers=bearer(unbound_jwt)
            ),
            "bound zammad": await client.post(
                "/v1/events", json=[event(10, source="zammad")], headers=bearer(ZAMMAD_TOKEN)
            ),
            "admin jira": await client.post(
                "/v1/events", json=[event(11)], headers=bearer(ADMIN_TOKEN)
            ),
        }
        text = (await client.get("/metrics")).text

    codes = {name: answer.status_code for name, answer in answers.items()}
    assert codes == {
        "legacy jira": 403,
        "legacy zammad": 403,
        "legacy mixed": 403,
        "legacy other": 202,
        "legacy glpi": 202,
        "api unbound jira": 403,
        "jwt unbound jira": 403,
        "bound zammad": 202,
        "admin jira": 202,
    }
    assert answers["legacy jira"].json() == {
        "detail": [
            {
                "loc": ["body", 0, "source"],
                "msg": "the source 'jira' takes events only from its own webhook or a token"
                " bound to it",
                "type": "source_not_allowed",
            }
        ]
    }
    mixed = answers["legacy mixed"].json()["detail"]
    assert [(p["loc"], p["msg"].split(" takes")[0]) for p in mixed] == [
        (["body", 1, "source"], "the source 'jira'"),
        (["body", 2, "source"], "the source 'zammad'"),
    ]
    stored = await read_topic(kafka_bootstrap, topics.tickets)
    assert sorted(key for key, _ in stored) == [
        b"glpi:T-7",
        b"jira:T-11",
        b"other:T-6",
        b"zammad:T-10",
    ]
    rejected = metric(text, "slawatch_ingest_requests_rejected_total", reason="source_not_allowed")
    assert rejected == 5
