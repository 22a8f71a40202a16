"""``POST /v1/events``: the webhook that takes canonical events in.

The steps, in order; each refusal ends the request and stores nothing:

1. bearer token (``auth``), checked from the headers alone (a JWT in a worker
   thread): a valid one goes on whatever the client address's record of failed
   authentication (``ratelimit.FailureLimit``, shared with the webhooks)
                                                    → 403 without the scope
   no token or an unknown one                       → 401, spending a token of the
   address's bucket; once that is empty             → 429 with ``Retry-After``
2. read the body, at most ``max_body_bytes``        → 413
3. decode it (``parsing.read_items``)               → 415, 400 (malformed JSON)
4. validate every event (``parsing.validate_items``), its instants inside the
   accepted window (``window``)                     → 422 listing every bad field
   and each event's ``source`` for the caller: a token bound to sources posts
   theirs only, and one bound to none (admin aside) no protected source
   (``protected_sources``)                          → 403 listing each other one
5. publish them all (``publishing.Publisher``)      → 503 with ``Retry-After``
6. → 202 ``{"accepted": N, "event_ids": [...]}``, only once the broker has
   acknowledged every event.

A protected source is one that speaks only through its own credentials: a
webhook source with credentials configured, or a source an
``SLAWATCH_API_TOKENS`` entry is bound to. What the notifier trusts a source
for (``notifier.event_addresses``) holds only if no other sender can post for
it, so an unbound ``events:write`` token (``SLAWATCH_INGEST_TOKENS``, an API
token without ``sources``, a JWT without the sources claim) cannot.

Senders sharing a client address share its budget of failed authentication,
but a valid bearer token is never refused for what others at its address did.

Steps 3 and 4 take ``parsing.valid_events`` first, which validates a good body
straight from its bytes; only a body it does not accept goes through them.

After a 503 some events of a multi-event request may have been stored. That
is safe: ``event_id`` is the idempotency key and consumers deduplicate, so the
client retries the whole request unchanged.

``EventIntake`` is a plain ASGI app, served ahead of FastAPI (``app.IngestAPI``):
this is the path that carries the load, and FastAPI's middleware, routing,
dependency injection and response handling cost more than everything above
together (profiled under load: about half of the process's time per event).
FastAPI still describes it in the OpenAPI document (``events_operation``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from fastapi import Depends, status
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.types import Message, Receive, Scope, Send

from slawatch_common.auth import Principal, bearer_token
from slawatch_common.auth import Scope as TokenScope
from slawatch_common.jwt_auth import looks_like_jwt
from slawatch_ingest.auth import BEARER
from slawatch_ingest.metrics import BrokerFailure, IngestMetrics, Rejection, TypeSeries, type_label
from slawatch_ingest.openapi import events_request_body
from slawatch_ingest.parsing import (
    BodyError,
    BodyTooLargeError,
    Encoded,
    Inbound,
    InvalidEventsError,
    MalformedBodyError,
    Problem,
    UnsupportedMediaTypeError,
    read_items,
    valid_events,
    validate_items,
)
from slawatch_ingest.publishing import BrokerUnavailableError, Publisher
from slawatch_ingest.ratelimit import FailureLimit
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.window import Bounds, Clock, InstantWindow, OutOfWindow, reason, wall_clock

EVENTS_PATH = "/v1/events"
RETRY_AFTER_S = 5


class Accepted(BaseModel):
    accepted: int = Field(description="How many events the broker stored.")
    event_ids: list[str] = Field(description="Their event_ids, in request order.")


class Refusal(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='["body", <index in the batch>, <field>, ...]')
    msg: str
    type: str
    line: int | None = Field(None, description="NDJSON only: the 1-based line.")


class Invalid(BaseModel):
    detail: list[FieldError]


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Refusal, "description": "Not UTF-8 or malformed JSON; says where."},
    401: {"model": Refusal, "description": "Missing or wrong bearer token."},
    403: {
        "description": "The token lacks events:write, or may not post for the source of an"
        " event (each named, as a 422 names fields); nothing was stored."
    },
    413: {"model": Refusal, "description": "The body exceeds the size limit."},
    415: {"model": Refusal, "description": "Neither application/json nor NDJSON."},
    422: {"model": Invalid, "description": "Every invalid field; nothing was stored."},
    429: {
        "model": Refusal,
        "description": "The client address failed authentication too often; see Retry-After.",
    },
    503: {"model": Refusal, "description": "The broker did not store the events; retry."},
}


class ClientGoneError(Exception):
    """The client disconnected before its body arrived: there is no one to answer."""


class EventIntake:
    """Serves ``EVENTS_PATH`` as an ASGI app; see the module docstring."""

    def __init__(
        self,
        settings: IngestSettings,
        publisher: Publisher,
        metrics: IngestMetrics,
        *,
        clock: Clock = wall_clock,
        failures: FailureLimit | None = None,
        protected: Collection[str] | None = None,
    ) -> None:
        """``protected``: the sources an unbound token may not post for (``protected_sources``;
        by default those the settings' API tokens are bound to)."""
        self._failures = FailureLimit.of(settings) if failures is None else failures
        self._protected = frozenset(
            protected_sources(settings, {}) if protected is None else protected
        )
        self._tokens = settings.token_book({TokenScope.EVENTS_WRITE: settings.ingest_tokens})
        self._max_body_bytes = settings.max_body_bytes
        self._max_events = settings.max_events_per_request
        self._max_errors = settings.max_errors_listed
        self._window = InstantWindow.of(settings)
        self._clock = clock
        self._publisher = publisher
        self._metrics = metrics
        self._received = TypeSeries(metrics.events_received)
        self._produced = TypeSeries(metrics.events_produced)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await answer(send, 405, _json({"detail": "Method Not Allowed"}), [(b"allow", b"POST")])
            return
        headers = _headers(scope, b"authorization", b"content-type", b"content-length")
        refusal = await self._caller(headers.get(b"authorization"))
        if not isinstance(refusal, Principal):
            await self._refuse_caller(refusal, scope, send)
            return
        with self._metrics.request_duration.time():
            try:
                code, body, extra = await self._post_events(headers, receive, refusal)
            except ClientGoneError:
                return
            await answer(send, code, body, extra)

    async def _refuse_caller(self, refusal: int, scope: Scope, send: Send) -> None:
        """403 for a known token without the scope; 401 for no token or an unknown one, which
        spends a token of the client address's bucket, or 429 once that bucket is empty."""
        if refusal == 403:
            self._metrics.requests_rejected.labels(reason=Rejection.UNAUTHORIZED).inc()
            await answer(send, 403, _json({"detail": "the token lacks the scope 'events:write'"}))
            return
        client = scope.get("client")
        wait = self._failures.take(client[0] if client else None)
        if wait > 0:
            self._metrics.requests_rejected.labels(reason=Rejection.ADDRESS_LIMITED).inc()
            retry_after = str(max(1, math.ceil(wait)))
            detail = _json(
                {
                    "detail": "too many failed authentications from this address;"
                    f" retry in {retry_after} s"
                }
            )
            await answer(send, 429, detail, [(b"retry-after", retry_after.encode())])
            return
        self._metrics.requests_rejected.labels(reason=Rejection.UNAUTHORIZED).inc()
        detail = _json({"detail": "a valid bearer token is required"})
        await answer(send, 401, detail, [(b"www-authenticate", b"Bearer")])

    async def _caller(self, authorization: str | None) -> Principal | int:
        """The request's principal with ``events:write``, or 401/403. A JWT may need its keys
        fetched (``jwt_auth``), so it is verified in a worker thread; a static token here."""
        token = bearer_token(authorization)
        if token is not None and self._tokens.verifies_jwt and looks_like_jwt(token):
            return await asyncio.to_thread(
                self._tokens.authenticate, authorization, TokenScope.EVENTS_WRITE
            )
        return self._tokens.authenticate(authorization, TokenScope.EVENTS_WRITE)

    async def _post_events(
        self, headers: dict[bytes, str], receive: Receive, caller: Principal
    ) -> _Answer:
        """Validate every event of the request, publish them all, then answer 202."""
        try:
            body = await read_capped(receive, headers.get(b"content-length"), self._max_body_bytes)
            bounds = self._window.at(self._clock())
            events = self._events(body, headers.get(b"content-type"), bounds)
        except BodyError as exc:
            return self._refuse(exc)
        foreign = _foreign_sources(events, caller, self._protected, self._max_errors)
        if foreign:
            self._metrics.requests_rejected.labels(reason=Rejection.SOURCE_NOT_ALLOWED).inc()
            return status.HTTP_403_FORBIDDEN, _json({"detail": foreign}), []
        try:
            await self._publisher.publish_encoded(events)
        except BrokerUnavailableError as exc:
            return self._unavailable(exc, events)
        self._produced.count(e.event.type for e in events)
        for encoded in events:
            self._metrics.event_skew.observe(bounds.skew_s(encoded.event))
        accepted = Accepted(accepted=len(events), event_ids=[e.event.event_id for e in events])
        return status.HTTP_202_ACCEPTED, accepted.model_dump_json().encode(), []

    def _events(self, body: bytes, content_type: str | None, bounds: Bounds) -> list[Encoded]:
        events = valid_events(body, content_type, bounds.problems, self._max_events)
        if events is not None:
            self._received.count(e.event.type for e in events)
            return events
        items = read_items(body, content_type, self._max_events)
        self._received.count(type_label(item.value) for item in items)
        out_of_window: list[OutOfWindow] = []

        def check(event: Inbound) -> list[Problem]:
            problems = bounds.problems(event)
            if problems:
                out_of_window.append(reason(problems))
            return problems

        try:
            valid = validate_items(items, check, self._max_errors)
            return [Encoded.of(event) for event in valid]
        except InvalidEventsError:
            self._metrics.events_rejected.labels(reason=Rejection.INVALID).inc(len(items))
            for why in out_of_window:
                self._metrics.events_out_of_window.labels(reason=why).inc()
            raise

    def _refuse(self, exc: BodyError) -> _Answer:
        code, reason = _REFUSALS[type(exc)]
        self._metrics.requests_rejected.labels(reason=reason).inc()
        detail = exc.errors if isinstance(exc, InvalidEventsError) else str(exc)
        return code, _json({"detail": detail}), []

    def _unavailable(self, exc: BrokerUnavailableError, events: Sequence[Encoded]) -> _Answer:
        failure = BrokerFailure.TIMEOUT if exc.timed_out else BrokerFailure.ERROR
        self._metrics.broker_failures.labels(reason=failure).inc()
        self._metrics.requests_rejected.labels(reason=Rejection.BROKER_UNAVAILABLE).inc()
        self._metrics.events_rejected.labels(reason=Rejection.BROKER_UNAVAILABLE).inc(len(events))
        detail = f"{exc}; the events may not be stored: retry the whole request"
        retry_after = [(b"retry-after", str(RETRY_AFTER_S).encode())]
        return status.HTTP_503_SERVICE_UNAVAILABLE, _json({"detail": detail}), retry_after


def protected_sources(
    settings: IngestSettings, webhooks: Mapping[str, SourceConfig]
) -> frozenset[str]:
    """The sources that take events only from their own credentials: every enabled webhook
    source with credentials configured (a secret, tokens or basic-auth users; a kind left
    at its defaults has none), and every source an ``SLAWATCH_API_TOKENS`` entry is bound
    to. A token bound to no source may post for any other (``_foreign_sources``)."""
    signed = {
        config.name
        for config in webhooks.values()
        if config.enabled and (config.secret or config.tokens or config.basic_auth)
    }
    bound = {source for token in settings.api_tokens for source in token.sources or ()}
    return frozenset(signed | bound)


def _foreign_sources(
    events: Sequence[Encoded], caller: Principal, protected: frozenset[str], max_errors: int
) -> list[dict[str, Any]]:
    """A problem per event whose ``source`` the caller may not post for (at most
    ``max_errors``, then one that counts the rest): a token bound to sources posts theirs
    only; one bound to none posts any but the ``protected`` ones; admin posts any."""
    if TokenScope.ADMIN in caller.scopes:
        return []
    if caller.sources is None:
        found = [
            {
                "loc": ["body", index, "source"],
                "msg": f"the source {encoded.event.source!r} takes events only from its own"
                " webhook or a token bound to it",
                "type": "source_not_allowed",
            }
            for index, encoded in enumerate(events)
            if encoded.event.source in protected
        ]
    else:
        allowed = ", ".join(sorted(caller.sources))
        found = [
            {
                "loc": ["body", index, "source"],
                "msg": f"this token may post events of the sources {allowed} only",
                "type": "source_not_allowed",
            }
            for index, encoded in enumerate(events)
            if not caller.may_post_for(encoded.event.source)
        ]
    if len(found) > max_errors:
        rest = len(found) - max_errors
        found = found[:max_errors]
        found.append({"loc": ["body"], "msg": f"and {rest} more", "type": "source_not_allowed"})
    return found


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""Status, JSON body and extra headers of a response."""

_REFUSALS: dict[type[BodyError], tuple[int, Rejection]] = {
    BodyTooLargeError: (status.HTTP_413_CONTENT_TOO_LARGE, Rejection.TOO_LARGE),
    UnsupportedMediaTypeError: (
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        Rejection.UNSUPPORTED_MEDIA_TYPE,
    ),
    MalformedBodyError: (status.HTTP_400_BAD_REQUEST, Rejection.MALFORMED),
    InvalidEventsError: (status.HTTP_422_UNPROCESSABLE_CONTENT, Rejection.INVALID),
}


async def answer(
    send: Send, code: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send the JSON ``body``, headed as Starlette's ``JSONResponse`` is, plus ``headers``."""
    start: Message = {
        "type": "http.response.start",
        "status": code,
        "headers": [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            *headers,
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _json(content: Any) -> bytes:
    """``content`` as JSON, byte for byte as Starlette's ``JSONResponse`` renders it."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode()


def _headers(scope: Scope, *names: bytes) -> dict[bytes, str]:
    """The first value of each of ``names`` (lower case) the request carries."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def read_capped(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, from ASGI ``receive``, or ``BodyTooLargeError`` once it exceeds ``limit`` bytes.

    ``declared`` is the ``Content-Length``; one over the limit is refused
    before reading. Stops reading at the limit, so an oversized body is never
    held in memory. Raises ``ClientGoneError`` if the client disconnects first.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is {declared} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body exceeds {limit} bytes")
        more = message.get("more_body", False)
    return b"".join(chunks)  # one chunk, the usual small body, is returned as it is


def events_operation() -> APIRoute:
    """How ``POST /v1/events`` appears in the OpenAPI document.

    Only a description: ``EventIntake`` serves the path, ahead of FastAPI's
    router, so this route is never mounted and its endpoint never runs.
    """

    async def post_events() -> Accepted:
        raise NotImplementedError("EventIntake serves POST /v1/events")

    return APIRoute(
        EVENTS_PATH,
        post_events,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_RESPONSES,
        dependencies=[Depends(BEARER)],
        openapi_extra=events_request_body(),
        summary="Submit canonical events (one, an array, or NDJSON)",
        description="Validate every event of the request, publish them all, then answer 202.",
    )
