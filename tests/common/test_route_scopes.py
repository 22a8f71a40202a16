"""Every route of every service needs a token with its scope, but an allow-list.

Each app is built as the service builds it and asked over HTTP in-process
(its lifespan not started: a route past its credential check answers 503 or
a 4xx of its own, which is all this test needs). For every route: no token →
401; an unknown token → 401; a token of another scope → 403; a token of the
route's scope → past the check; the admin token → past the check. The same
for JWTs signed by a key of the configured JWKS (RS256 and ES256): the
route's scope passes, another scope is 403; an expired one, one signed by a
foreign key under a known ``kid``, one for another audience and an unsigned
one are 401. A route that is neither on the allow-list nor in ``SCOPES``
fails the test, so no new route can go out unguarded.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from common.jwt_keys import SigningKey, jwks_file
from notifier.factories import write_config
from slawatch_common.auth import ApiToken, Scope
from slawatch_engine.app import create_app as engine_app
from slawatch_engine.policy import load_policies
from slawatch_engine.settings import EngineSettings
from slawatch_ingest.app import create_app as ingest_app
from slawatch_ingest.settings import IngestSettings
from slawatch_notifier.app import create_app as notifier_app
from slawatch_notifier.settings import NotifierSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"
ADMIN = "admin-token-of-the-test"
OPEN = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc"}
OPEN |= {"/openapi.json"}
CAPABILITY = {"/v1/acks/{token}"}
"""Signed ack links: the link is the credential (acklink.py)."""
SIGNED = {"/v1/webhooks/{source}"}
"""Webhooks: each source's own signature or token (signatures.py)."""
SCOPES: dict[tuple[str, str], Scope] = {
    ("POST", "/v1/events"): Scope.EVENTS_WRITE,
    ("GET", "/v1/tickets/{source}/{ticket_id}/sla"): Scope.SLA_READ,
    ("POST", "/v1/preview"): Scope.SLA_READ,
    ("GET", "/v1/contracts"): Scope.REPORTS_READ,
    ("GET", "/v1/reports/{name}"): Scope.REPORTS_READ,
    ("POST", "/v1/acks"): Scope.ACKS_WRITE,
    ("GET", "/v1/oncall"): Scope.ONCALL_READ,
    ("GET", "/v1/oncall/{schedule}"): Scope.ONCALL_READ,
}
"""Every other route (dead letters) needs ``admin``."""


def token_of(scope: Scope) -> str:
    return f"token-with-the-scope-{scope.value}"


def api_tokens() -> tuple[ApiToken, ...]:
    """One token per scope; half of them given by their SHA-256 only."""
    tokens = []
    for index, scope in enumerate(Scope):
        secret = token_of(scope)
        if index % 2:
            digest = hashlib.sha256(secret.encode()).hexdigest()
            tokens.append(ApiToken(name=scope.value, sha256=digest, scopes=(scope,)))
        else:
            tokens.append(ApiToken(name=scope.value, token=secret, scopes=(scope,)))
    return tuple(tokens)


RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")
FOREIGN = SigningKey.rsa("rsa-1")
"""Another key under the ``kid`` of a configured one."""
AUDIENCE = "slawatch"
ISSUER = "https://idp.example.com/"


def jwt_of(scope: Scope, key: SigningKey = RSA, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "svc", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now}
    return key.sign({**payload, "scope": f"profile {scope.value}", **claims})


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    jwks = jwks_file(tmp_path_factory.mktemp("jwks") / "jwks.json", RSA, EC)
    common: dict[str, Any] = {
        "api_tokens": api_tokens(),
        "admin_tokens": (ADMIN,),
        "jwt_jwks": str(jwks),
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    folder = tmp_path_factory.mktemp("notifier")
    return {
        "ingest": ingest_app(IngestSettings(ingest_tokens=("ingest-token-1",), **common)),
        "engine": engine_app(
            EngineSettings(report_tokens=("report-token-1",), **common), load_policies(EXAMPLE)
        ),
        "notifier": notifier_app(NotifierSettings(config_file=write_config(folder), **common)),
    }


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app describes in its OpenAPI document, and of
    every route on the app itself (hidden from the document or not)."""
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    for route in app.routes:  # and those hidden from it, mounted on the app itself
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path is not None:
            found |= {(method, path) for method in methods or {"POST"} if method != "HEAD"}
    yield from sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def scope_of(method: str, path: str) -> Scope:
    return SCOPES.get((method, path), Scope.ADMIN)


@pytest.mark.parametrize("service", ["ingest", "engine", "notifier"])
async def test_every_route_needs_a_token_with_its_scope(
    apps: dict[str, FastAPI], service: str
) -> None:
    app = apps[service]
    walked = 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for method, path in routes(app):
            if path in OPEN | CAPABILITY | SIGNED:
                continue
            scope = scope_of(method, path)
            if (method, path) not in SCOPES:  # admin: the dead letters, nothing else
                assert path.startswith("/v1/dead-letters"), f"{method} {path}: no scope"
            url = concrete(path)

            async def ask(token: str | None, method: str = method, url: str = url) -> int:
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                response = await client.request(method, url, headers=headers, json={})
                return response.status_code

            assert await ask(None) == 401, (method, path)
            assert await ask("not-a-token-anyone-has") == 401, (method, path)
            other = next(s for s in Scope if s not in (scope, Scope.ADMIN))
            assert await ask(token_of(other)) == 403, (method, path, other)
            for allowed in (token_of(scope), ADMIN):
                assert await ask(allowed) not in (401, 403), (method, path, allowed)
            for allowed in (jwt_of(scope), jwt_of(scope, EC), jwt_of(Scope.ADMIN)):
                assert await ask(allowed) not in (401, 403), (method, path, "jwt")
            assert await ask(jwt_of(other)) == 403, (method, path, "jwt", other)
            refused = {
                "expired": jwt_of(scope, exp=int(time.time()) - 120),
                "foreign key": jwt_of(scope, FOREIGN),
                "other audience": jwt_of(scope, aud="elsewhere"),
                "other issuer": jwt_of(scope, iss="https://evil.example.com/"),
                "unsigned": RSA.unsigned({"sub": "x", "scope": scope.value}),
            }
            for why, token in refused.items():
                assert await ask(token) == 401, (method, path, why)
            walked += 1
    assert walked >= {"ingest": 1, "engine": 5, "notifier": 3}[service]


async def test_metrics_behind_their_own_token_when_one_is_set(tmp_path: Path) -> None:
    token = "metrics-token-of-the-test"
    common: dict[str, Any] = {"metrics_token": token}
    built = {
        "ingest": ingest_app(IngestSettings(**common)),
        "engine": engine_app(EngineSettings(**common), load_policies(EXAMPLE)),
        "notifier": notifier_app(NotifierSettings(config_file=write_config(tmp_path), **common)),
    }
    for service, app in built.items():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            bare = await client.get("/metrics")
            admin = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
            right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            health = await client.get("/healthz")
        assert (bare.status_code, admin.status_code) == (401, 401), service
        assert right.status_code == 200, service
        assert "# TYPE" in right.text, service
        assert health.status_code in (200, 503), service
