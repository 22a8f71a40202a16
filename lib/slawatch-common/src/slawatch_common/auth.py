"""Bearer tokens: reading the ``Authorization`` header, comparing in constant time, scopes.

Every route but the probes (``/healthz``, ``/readyz``, ``/metrics``), the API
documentation (``/docs``, ``/openapi.json``: no data) and the routes that carry
their own credential (signed ack links, webhooks verified by their source's
signature) needs a bearer token with the route's scope:

| scope | routes |
|---|---|
| ``events:write`` | ingest ``POST /v1/events`` |
| ``sla:read`` | engine ``GET /v1/tickets/{source}/{id}/sla``, ``POST /v1/preview`` |
| ``reports:read`` | engine ``GET /v1/contracts``, ``GET /v1/reports/{contract}`` |
| ``acks:write`` | notifier ``POST /v1/acks`` |
| ``oncall:read`` | notifier ``GET /v1/oncall``, ``GET /v1/oncall/{schedule}`` |
| ``admin`` | dead letters, redrive; and every other scope |

Tokens come from ``SLAWATCH_API_TOKENS`` (a JSON list of ``{"name", "sha256" or
"token", "scopes"}``: store the SHA-256 of a token rather than the token, list
two for one scope while rotating; ``"sources"`` binds an events:write token to
the ticket sources it may post for) and from the older settings, each with its
scope: ``SLAWATCH_INGEST_TOKENS`` (events:write, any unprotected source),
``SLAWATCH_REPORT_TOKENS`` (reports:read), ``SLAWATCH_ADMIN_TOKENS`` (admin). A
token is compared by its digest against every known one, in time independent
of where they differ. A token that is none of them is tried as a JWT when
``SLAWATCH_JWT_JWKS`` is set (``jwt_auth.py``): scopes and sources from its
claims. No token, or an unknown one: 401; a known token without the route's
scope: 403.

Who a request is, the ``Principal`` (the token's name, or a JWT's ``sub``), is
what a route records, e.g. as the author of an acknowledgement.

FastAPI reads and parses a route's JSON body before it solves the route's
dependencies, so ``require`` alone would answer a malformed body 422, and
read a large one whole, before its 401. ``RequireCredential`` therefore runs
ahead of the app, in the engine and the notifier: a request that is not open
(``public_route``, and the notifier's signed ack links) without a token the
book knows is answered 401 from its ``Authorization`` header alone, its body
never read. A known token passes whatever its scopes; the route's
``require`` answers 403 for one without the route's scope (after FastAPI has
read the body).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from slawatch_common.jwt_auth import JwtVerifier, looks_like_jwt


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    SLA_READ = "sla:read"
    REPORTS_READ = "reports:read"
    ACKS_WRITE = "acks:write"
    ONCALL_READ = "oncall:read"
    ADMIN = "admin"


class ApiToken(BaseModel):
    """One entry of ``SLAWATCH_API_TOKENS``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    token: str | None = Field(None, min_length=16)
    scopes: tuple[Scope, ...] = Field(min_length=1)
    sources: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="The ticket sources an events:write token may post for; absent: any source "
        "no webhook or bound token protects (ingest events_api.protected_sources).",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> ApiToken:
        if (self.sha256 is None) == (self.token is None):
            raise ValueError("give either sha256 (hex of the token's SHA-256) or token")
        return self

    def digest(self) -> bytes:
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        return _digest(self.token or "")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Credential:
    name: str
    digest: bytes
    scopes: frozenset[Scope]
    sources: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a known token: its name (a JWT's subject; ``""`` for a token of the
    older settings, which have none), its scopes (admin: all of them) and the sources it
    may post events for (``None``: any)."""

    subject: str
    scopes: frozenset[Scope]
    sources: frozenset[str] | None = None

    def may_post_for(self, source: str) -> bool:
        return self.sources is None or source in self.sources


class TokenBook:
    """The tokens a service accepts, each with its scopes; JWTs too when ``jwt`` is given."""

    def __init__(self, credentials: Iterable[Credential], jwt: JwtVerifier | None = None) -> None:
        self._credentials = tuple(credentials)
        self._jwt = jwt

    @classmethod
    def of(
        cls,
        entries: Iterable[ApiToken] = (),
        plain: Mapping[Scope, Sequence[str]] | None = None,
        jwt: JwtVerifier | None = None,
    ) -> TokenBook:
        """From ``SLAWATCH_API_TOKENS`` entries, plain tokens by scope and a JWT verifier."""
        credentials = [
            Credential(
                e.name,
                e.digest(),
                frozenset(e.scopes),
                None if e.sources is None else frozenset(e.sources),
            )
            for e in entries
        ]
        for scope, tokens in (plain or {}).items():
            credentials += [Credential("", _digest(t), frozenset({scope})) for t in tokens]
        return cls(credentials, jwt)

    @property
    def verifies_jwt(self) -> bool:
        return self._jwt is not None

    def principal(self, token: str) -> Principal | None:
        """Who ``token`` is, or ``None`` for an unknown one. Every known digest is compared,
        so the time tells nothing; then, if none matched, the token is tried as a JWT
        (which may fetch keys: ``jwt_auth.JwksKeys``)."""
        presented = _digest(token)
        found: list[Credential] = []
        for credential in self._credentials:
            if hmac.compare_digest(presented, credential.digest):
                found.append(credential)
        if found:
            scopes = frozenset().union(*(c.scopes for c in found))
            bound = [c.sources for c in found]
            sources = None if None in bound else frozenset().union(*(b or () for b in bound))
            return _principal(found[0].name, scopes, sources)
        if self._jwt is None or not looks_like_jwt(token):
            return None
        claims = self._jwt.claims(token)
        if claims is None:
            return None
        scopes = frozenset(Scope(s) for s in claims.scopes if s in _SCOPE_VALUES)
        sources = None if claims.sources is None else frozenset(claims.sources)
        return _principal(claims.subject, scopes, sources)

    def scopes_of(self, token: str) -> frozenset[Scope] | None:
        """The scopes of ``token`` (admin: every scope), or ``None`` for an unknown token."""
        found = self.principal(token)
        return None if found is None else found.scopes

    def authenticate(self, authorization: str | None, scope: Scope) -> Principal | int:
        """The header's principal when it has ``scope``; else the status to answer: 401
        (no token, or an unknown one) or 403 (a token without the scope)."""
        token = bearer_token(authorization)
        found = None if token is None else self.principal(token)
        if found is None:
            return 401
        return found if scope in found.scopes else 403

    def check(self, authorization: str | None, scope: Scope) -> int | None:
        """``None`` when the header's token has ``scope``; else 401 or 403 (``authenticate``)."""
        answer = self.authenticate(authorization, scope)
        return answer if isinstance(answer, int) else None

    def require(self, scope: Scope) -> Callable[..., Principal]:
        """A FastAPI dependency giving the request's ``Principal``: 401 or 403 unless its
        token has ``scope``. A plain function, so FastAPI runs it in a worker thread and a
        JWKS fetch never stalls the event loop."""

        def authorised_for(authorization: Annotated[str | None, Header()] = None) -> Principal:
            answer = self.authenticate(authorization, scope)
            if answer == 401:
                raise HTTPException(
                    401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
                )
            if answer == 403:
                raise HTTPException(403, f"the token lacks the scope {scope.value!r}")
            assert isinstance(answer, Principal)
            return answer

        return authorised_for


_SCOPE_VALUES = frozenset(s.value for s in Scope)


def _principal(subject: str, scopes: frozenset[Scope], sources: frozenset[str] | None) -> Principal:
    if Scope.ADMIN in scopes:
        return Principal(subject, frozenset(Scope), None)
    return Principal(subject, scopes, sources)


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme in any case); else ``None``.

    Reads the header as FastAPI's ``HTTPBearer`` does: another scheme, or no
    token after it, counts as no credentials.
    """
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_accepted(presented: str, accepted: Sequence[str]) -> bool:
    """Whether ``presented`` equals one of ``accepted``, in time independent of where they differ.

    Every accepted token is compared (no early exit), so the timing does not
    reveal which one came close either.
    """
    matches = [hmac.compare_digest(presented.encode(), token.encode()) for token in accepted]
    return any(matches)


def authorised(authorization: str | None, accepted: Sequence[str]) -> bool:
    """Whether the ``Authorization`` header carries one of the ``accepted`` bearer tokens."""
    token = bearer_token(authorization)
    return token is not None and token_accepted(token, accepted)


PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Paths every request may ask without a bearer token: the probes, ``/metrics`` (which
has its own token when ``SLAWATCH_METRICS_TOKEN`` is set) and the API documentation."""


def public_route(method: str, path: str) -> bool:
    """Whether ``path`` is one of ``PUBLIC_PATHS`` (on any method: their routes read no body)."""
    return path in PUBLIC_PATHS


class RequireCredential:
    """ASGI middleware: a known bearer token before the app sees an HTTP request.

    Every HTTP request whose ``(method, path)`` is not ``is_open`` is answered
    401 (``{"detail": ...}``, ``WWW-Authenticate: Bearer``) unless its
    ``Authorization`` header carries a token ``tokens`` knows, with any scope;
    nothing but that header is read, so the body of a refused request is never
    received. A token that looks like a JWT, when the book verifies JWTs, is
    verified in a worker thread (its keys may have to be fetched); a static
    token is compared inline. Requests that pass go
    to the app unchanged, where the route's ``TokenBook.require`` decides on the
    scope (403). The path is the route's path (without the ``root_path``), as
    Starlette's router matches it.
    """

    def __init__(
        self, app: ASGIApp, tokens: TokenBook, is_open: Callable[[str, str], bool]
    ) -> None:
        self._app = app
        self._tokens = tokens
        self._open = is_open

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["method"], _route_path(scope)):
            await self._app(scope, receive, send)
            return
        if await self._known(_header(scope, b"authorization")):
            await self._app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": "a bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)

    async def _known(self, authorization: str | None) -> bool:
        token = bearer_token(authorization)
        if token is None:
            return False
        if self._tokens.verifies_jwt and looks_like_jwt(token):
            return await asyncio.to_thread(self._tokens.principal, token) is not None
        return self._tokens.principal(token) is not None


def _header(scope: AsgiScope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case), as Starlette decodes it."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _route_path(scope: AsgiScope) -> str:
    """The path the router matches: ``path`` without the ``root_path`` it starts with."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path
