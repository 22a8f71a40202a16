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
two for one scope while rotating) and from the older settings, each with its
scope: ``SLAWATCH_INGEST_TOKENS`` (events:write), ``SLAWATCH_REPORT_TOKENS``
(reports:read), ``SLAWATCH_ADMIN_TOKENS`` (admin). A token is compared by its
digest against every known one, in time independent of where they differ. No
token, or an unknown one: 401; a known token without the route's scope: 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class TokenBook:
    """The tokens a service accepts, each with its scopes."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        self._credentials = tuple(credentials)

    @classmethod
    def of(
        cls, entries: Iterable[ApiToken] = (), plain: Mapping[Scope, Sequence[str]] | None = None
    ) -> TokenBook:
        """From ``SLAWATCH_API_TOKENS`` entries and plain tokens by scope."""
        credentials = [Credential(e.name, e.digest(), frozenset(e.scopes)) for e in entries]
        for scope, tokens in (plain or {}).items():
            credentials += [Credential(str(scope), _digest(t), frozenset({scope})) for t in tokens]
        return cls(credentials)

    def scopes_of(self, token: str) -> frozenset[Scope] | None:
        """The scopes of ``token`` (admin: every scope), or ``None`` for an unknown token;
        every known digest is compared, so the time tells nothing."""
        presented = _digest(token)
        found: set[Scope] = set()
        known = False
        for credential in self._credentials:
            if hmac.compare_digest(presented, credential.digest):
                known = True
                found |= credential.scopes
        if not known:
            return None
        return frozenset(Scope) if Scope.ADMIN in found else frozenset(found)

    def check(self, authorization: str | None, scope: Scope) -> int | None:
        """``None`` when the header's token has ``scope``; else the status to answer: 401
        (no token, or an unknown one) or 403 (a token without the scope)."""
        token = bearer_token(authorization)
        scopes = None if token is None else self.scopes_of(token)
        if scopes is None:
            return 401
        return None if scope in scopes else 403

    def require(self, scope: Scope) -> Callable[..., None]:
        """A FastAPI dependency: 401 or 403 unless the request's token has ``scope``."""

        def authorised_for(authorization: Annotated[str | None, Header()] = None) -> None:
            answer = self.check(authorization, scope)
            if answer == 401:
                raise HTTPException(
                    401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
                )
            if answer == 403:
                raise HTTPException(403, f"the token lacks the scope {scope.value!r}")

        return authorised_for


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
