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

The token is judged before the body is read (``auth.RequireCredential``):
without a known token, a malformed body is 401 (not FastAPI's 422), a large
one streamed in is refused 401 with none of it received, and a real server
answers 401 to a request whose 50 MB body has not even been sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Iterator
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
from support.serving import serving

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


GUARDED_SERVICES = ["engine", "notifier"]
"""The services whose routes ``RequireCredential`` guards (ingest serves ``POST /v1/events``
ahead of FastAPI, its token checked first there: ``events_api.EventIntake``)."""
CHUNK = b"x" * 65536


def guarded(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if p not in OPEN | CAPABILITY | SIGNED]


def refused_tokens() -> dict[str, str | None]:
    return {
        "no token": None,
        "unknown token": "not-a-token-anyone-has",
        "expired jwt": jwt_of(Scope.ADMIN, exp=int(time.time()) - 120),
    }


@pytest.mark.parametrize("service", GUARDED_SERVICES)
async def test_without_a_known_token_a_malformed_body_is_401_not_422(
    apps: dict[str, FastAPI], service: str
) -> None:
    app = apps[service]
    transport = httpx.ASGITransport(app=app)
    posts = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for method, path in guarded(app):
            posts += method == "POST"
            for why, token in refused_tokens().items():
                headers = {"Content-Type": "application/json"}
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                response = await client.request(
                    method, concrete(path), headers=headers, content=b"{not json"
                )
                assert response.status_code == 401, (method, path, why, response.text)
                assert response.headers["www-authenticate"] == "Bearer", (method, path, why)
                assert response.json() == {"detail": "a bearer token is required"}
            # a known token of the route's scope gets past: the body is the route's to judge
            scope = scope_of(method, path)
            for allowed in (token_of(scope), jwt_of(scope)):
                headers = {"Authorization": f"Bearer {allowed}"}
                headers["Content-Type"] = "application/json"
                passed = await client.request(
                    method, concrete(path), headers=headers, content=b"{not json"
                )
                assert passed.status_code not in (401, 403), (method, path)
    assert posts >= {"engine": 2, "notifier": 2}[service]  # replay, preview; acks, replay


@pytest.mark.parametrize("service", GUARDED_SERVICES)
async def test_without_a_known_token_a_large_body_is_refused_unread(
    apps: dict[str, FastAPI], service: str
) -> None:
    """The ASGI transport hands the app each chunk only when the app asks for it: a
    refusal that asked for none read none."""
    app = apps[service]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for method, path in guarded(app):
            for why, token in refused_tokens().items():
                taken: list[int] = []

                async def body(taken: list[int] = taken) -> AsyncIterator[bytes]:
                    for _ in range(8 * 1024 * 1024 // len(CHUNK)):  # 8 MB
                        taken.append(len(CHUNK))
                        yield CHUNK

                headers = {"Content-Type": "application/json"}
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                response = await client.request(
                    method, concrete(path), headers=headers, content=body()
                )
                assert response.status_code == 401, (method, path, why)
                assert sum(taken) == 0, (method, path, why, sum(taken))


async def test_a_real_server_refuses_before_a_50_mb_body_is_sent(
    apps: dict[str, FastAPI],
) -> None:
    """Over TCP: the headers announce 50 MB, 64 KB of it follows, and the 401 comes back
    while the client still holds the rest (without the check first, FastAPI waits for
    the whole body and no answer comes)."""
    asked = {
        "engine": ["/v1/dead-letters/replay", "/v1/preview"],
        "notifier": ["/v1/acks", "/v1/dead-letters/replay"],
    }
    for service, paths in asked.items():
        async with serving(apps[service], lifespan="off") as base:
            host, port = base.removeprefix("http://").split(":")
            for path in paths:
                reader, writer = await asyncio.open_connection(host, int(port))
                try:
                    head = (
                        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                        "Content-Type: application/json\r\n"
                        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
                    )
                    writer.write(head.encode() + CHUNK)
                    await writer.drain()
                    async with asyncio.timeout(10):
                        status_line = await reader.readline()
                        answer = await reader.readuntil(b"\r\n\r\n")
                finally:
                    writer.close()
                assert status_line.startswith(b"HTTP/1.1 401 "), (service, path, status_line)
                assert b"www-authenticate: bearer\r\n" in answer.lower(), (service, path)


@pytest.mark.parametrize("service", GUARDED_SERVICES)
async def test_the_open_routes_need_no_token(apps: dict[str, FastAPI], service: str) -> None:
    """Probes, docs and the signed links pass the check; ``POST /v1/acks`` itself does not."""
    transport = httpx.ASGITransport(app=apps[service])
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/metrics"):
            response = await client.get(path)
            assert response.status_code in (200, 503), (service, path)
        if service == "notifier":
            for method in ("GET", "POST"):
                link = await client.request(method, "/v1/acks/not.a-link")
                assert link.status_code != 401, method  # the link's own checks answer
            bare = await client.post("/v1/acks", content=b"{not json")
            assert bare.status_code == 401
