"""``POST /v1/webhooks/{source}``: ticketing systems and monitoring post their own webhooks.

The steps, in order; each refusal ends the request and produces nothing:

1. the source is configured and enabled                → 404
2. what the headers alone decide (``signatures.screen``): credentials are
   configured and presented, a bearer token or basic-auth user is right, a
   signature's timestamp is readable and inside the replay window → 401,
   spending a token of the client address's bucket (``ratelimit.FailureLimit``,
   shared with ``POST /v1/events``); once that is empty → 429 with ``Retry-After``.
   A right token or basic-auth user goes on whatever that bucket holds.
3. a body signature, unproven until its body is read: the address's bucket is
   empty → 429 with ``Retry-After``; else a token of it is taken, the body
   read, at most the source's size cap (→ 413), and the signature checked
   against it (``signatures.verify_body``) → 401; the token is given back only
   once the signature matches
4. the source's rate limit (a token bucket), spent only by authenticated
   deliveries                                          → 429 with ``Retry-After``
5. read the body if step 3 did not                     → 413
   (and check a signature presented besides a right token → 401)
6. decode the JSON object                              → 400
7. normalise it (``sources.registry``, a pure function) → 422 with the reason
   and check its events' instants against the window (``window``) → 422 naming
   each instant outside it, as ``events[<index>].<field>``, at most
   ``SLAWATCH_MAX_ERRORS_LISTED`` of them
8. nothing of use in it                                → 202 ``{"ignored": reason}``
   (at most ``SLAWATCH_MAX_ERRORS_LISTED`` reasons, then how many more)
9. publish the events not acknowledged lately (``recent``, ``publishing.Publisher``)
                                                       → 503 with ``Retry-After``
10. → 202 ``{"accepted": N, "event_ids": [...]}`` once the broker has them all.

A delivery is bounded by its source's size cap, not by how many events it
makes: Alertmanager does not retry a 4xx and sends the same group again and
again, so a group of more alerts than ``SLAWATCH_MAX_EVENTS_PER_REQUEST``
(the cap of ``POST /v1/events``) is published whole.

Every failed authentication spends a token of the client address's bucket,
and so does a 413 or a disconnect while the body of a signature still
unchecked is read. Since the token is taken before the body is read, an
address has at most its burst of unproven bodies read however many requests
it sends at once; past that it is answered 429 before anything of its
request is read, and an unauthenticated flood never spends a source's own
bucket, so the source's genuine deliveries go on. A delivery a token or
basic auth proves is never refused for its address's failures; one signed
over its body is, while its address is limited: senders sharing an address
(a SaaS sender's pool of addresses, a proxy not in ``FORWARDED_ALLOW_IPS``)
share its budget for signed deliveries. The client address is the one
uvicorn gives the app (behind a proxy, the ``X-Forwarded-For`` of a proxy
trusted by ``FORWARDED_ALLOW_IPS``).

Event ids derive from the source's delivery id or from the change itself
(``sources.canonical.event_id``), so a retried delivery repeats them: this
process does not produce an id it had acknowledged lately, and consumers
drop any repeat that still gets through. Ignored deliveries are answered 202 so the
sender does not retry them forever.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from slawatch_ingest.events_api import Accepted, ClientGoneError, read_capped
from slawatch_ingest.metrics import IngestMetrics, Rejection, WebhookOutcome
from slawatch_ingest.parsing import BodyTooLargeError, Inbound
from slawatch_ingest.publishing import BrokerUnavailableError, Publisher
from slawatch_ingest.ratelimit import FailureLimit, TokenBucket
from slawatch_ingest.recent import RecentIds
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.signatures import (
    BodyCheck,
    Credentials,
    Scheme,
    Screening,
    UnauthenticatedError,
    screen,
    verify_body,
)
from slawatch_ingest.sources.canonical import Normalised, PayloadError
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.window import Bounds, Clock, InstantWindow, reason, wall_clock

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5

Monotonic = Callable[[], float]


class IgnoredDelivery(BaseModel):
    ignored: str = Field(description="Why nothing was produced; the sender need not retry.")


class WebhookRefusal(BaseModel):
    detail: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": WebhookRefusal, "description": "Not UTF-8 JSON, or not an object."},
    401: {"model": WebhookRefusal, "description": "Missing or wrong signature or credentials."},
    404: {"model": WebhookRefusal, "description": "No such source is configured."},
    413: {"model": WebhookRefusal, "description": "The body exceeds the source's size limit."},
    422: {
        "model": WebhookRefusal,
        "description": "Not what this source sends, or a time outside the accepted window;"
        " says why.",
    },
    429: {
        "model": WebhookRefusal,
        "description": "Over the source's rate limit, or the client address failed"
        " authentication too often; see Retry-After.",
    },
    503: {"model": WebhookRefusal, "description": "The broker did not store the events; retry."},
}


class _RefusedError(Exception):
    def __init__(
        self,
        code: int,
        outcome: WebhookOutcome,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code, self.outcome, self.detail, self.headers = code, outcome, detail, headers


class WebhookIntake:
    """Handles ``POST /v1/webhooks/{source}`` for one app; see the module docstring."""

    def __init__(
        self,
        settings: IngestSettings,
        sources: Mapping[str, SourceConfig],
        publisher: Publisher,
        metrics: IngestMetrics,
        *,
        clock: Clock,
        monotonic: Monotonic = time.monotonic,
        failures: FailureLimit | None = None,
    ) -> None:
        self._sources = {name: cfg for name, cfg in sources.items() if cfg.enabled}
        self._default_cap = settings.max_body_bytes
        self._max_errors = settings.max_errors_listed
        self._failures = FailureLimit.of(settings, monotonic) if failures is None else failures
        self._window = InstantWindow.of(settings)
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        now = monotonic()
        self._buckets = {
            name: TokenBucket.full(cfg.rate_limit.per_second, cfg.rate_limit.burst, now)
            for name, cfg in self._sources.items()
        }
        self._credentials = {name: credentials_of(cfg) for name, cfg in self._sources.items()}
        self._recent = RecentIds()

    async def post_webhook(self, source: str, request: Request) -> Response:
        """Authenticate, normalise and publish one delivery of ``source``."""
        config = self._sources.get(source)
        if config is None:
            self._metrics.requests_rejected.labels(reason=Rejection.UNKNOWN_SOURCE).inc()
            known = ", ".join(sorted(self._sources)) or "none"
            detail = f"no webhook source {source!r} is configured (configured: {known})"
            return JSONResponse({"detail": detail}, status_code=status.HTTP_404_NOT_FOUND)
        host = request.client.host if request.client else None
        with self._metrics.webhook_duration.labels(source=source).time():
            try:
                response = await self._handle(config, request, host)
            except _RefusedError as refused:
                response = JSONResponse(
                    {"detail": refused.detail}, status_code=refused.code, headers=refused.headers
                )
                self._metrics.webhooks.labels(source=source, outcome=refused.outcome).inc()
                # An address over its limit may send thousands: those go unlogged at INFO.
                limited = refused.outcome is WebhookOutcome.ADDRESS_LIMITED
                level = logging.DEBUG if limited else logging.INFO
                log.log(level, "webhook %s refused (%d): %s", source, refused.code, refused.detail)
            except ClientGoneError:
                return Response(status_code=status.HTTP_400_BAD_REQUEST)  # no one to answer
        return response

    async def _handle(self, config: SourceConfig, request: Request, host: str | None) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        now = self._clock()
        screening = self._screen(config, headers, now, host)
        if screening.proven:  # a token or basic auth, before a byte of the body
            self._throttle(config.name)
            body = await self._read(config, request)
            if screening.pending is not None:  # a signature besides: it must match too
                try:
                    self._verify(config, screening.pending, body)
                except _RefusedError:
                    self._failures.charge(host)
                    raise
        else:  # a signature: its body is read on a token of the address's bucket
            assert screening.pending is not None
            self._take(host)
            body = await self._read(config, request)  # a 413 or disconnect keeps the token
            self._verify(config, screening.pending, body)  # so does a 401
            self._failures.refund(host)
            self._throttle(config.name)
        document = _object(body)
        normalised = self._normalise(config, document, headers)
        bounds = self._window.at(now)
        self._check_window(normalised.events, bounds)
        for ignored in normalised.ignored:
            self._metrics.webhook_ignored.labels(source=config.name, reason=ignored.reason).inc()
        if not normalised.events:
            self._metrics.webhooks.labels(source=config.name, outcome=WebhookOutcome.IGNORED).inc()
            answer = IgnoredDelivery(ignored=self._summary(normalised))
            return JSONResponse(answer.model_dump(), status_code=status.HTTP_202_ACCEPTED)
        fresh = [event for event in normalised.events if event.event_id not in self._recent]
        if fresh:
            await self._publish(fresh)
            self._recent.remember(event.event_id for event in fresh)
        for event in fresh:
            self._metrics.events_produced.labels(type=event.type).inc()
            self._metrics.event_skew.observe(bounds.skew_s(event))
        self._metrics.webhooks.labels(source=config.name, outcome=WebhookOutcome.ACCEPTED).inc()
        ids = [event.event_id for event in normalised.events]
        accepted = Accepted(accepted=len(ids), event_ids=ids)
        return JSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)

    def _take(self, host: str | None) -> None:
        """Take a token of the client address's bucket, for a failure or for a body read
        unproven; refuse the request (429) if none is left."""
        wait = self._failures.take(host)
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            raise _RefusedError(
                status.HTTP_429_TOO_MANY_REQUESTS,
                WebhookOutcome.ADDRESS_LIMITED,
                f"too many failed authentications from this address; retry in {retry_after} s",
                {"Retry-After": retry_after},
            )

    def _throttle(self, source: str) -> None:
        wait = self._buckets[source].take(self._monotonic())
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            raise _RefusedError(
                status.HTTP_429_TOO_MANY_REQUESTS,
                WebhookOutcome.RATE_LIMITED,
                f"over the rate limit of source {source!r}; retry in {retry_after} s",
                {"Retry-After": retry_after},
            )

    async def _read(self, config: SourceConfig, request: Request) -> bytes:
        """The body, at most the source's cap (413). An unproven sender's read has already
        cost a token of its address's bucket (``_take``), kept if the read fails."""
        try:
            return await read_capped(
                request.receive,
                request.headers.get("content-length"),
                config.max_body_bytes or self._default_cap,
            )
        except BodyTooLargeError as exc:
            raise _RefusedError(
                status.HTTP_413_CONTENT_TOO_LARGE, WebhookOutcome.TOO_LARGE, str(exc)
            ) from exc

    def _screen(
        self, config: SourceConfig, headers: Mapping[str, str], now: datetime, host: str | None
    ) -> Screening:
        """What the headers decide; when they fail the request, a 401 that spends a token of
        the client address's bucket, or a 429 when none is left."""
        try:
            return screen(self._credentials[config.name], headers, now)
        except UnauthenticatedError as exc:
            self._take(host)
            raise self._unauthorized(config, exc) from exc

    def _verify(self, config: SourceConfig, pending: BodyCheck, body: bytes) -> None:
        try:
            verify_body(pending, body)
        except UnauthenticatedError as exc:
            raise self._unauthorized(config, exc) from exc

    def _unauthorized(self, config: SourceConfig, exc: UnauthenticatedError) -> _RefusedError:
        return _RefusedError(
            status.HTTP_401_UNAUTHORIZED,
            WebhookOutcome.UNAUTHORIZED,
            str(exc),
            {"WWW-Authenticate": _challenge(config)},
        )

    def _normalise(
        self, config: SourceConfig, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Normalised:
        try:
            return KINDS[config.kind].normalise(body, headers, config)
        except PayloadError as exc:
            raise _RefusedError(
                status.HTTP_422_UNPROCESSABLE_CONTENT, WebhookOutcome.INVALID, str(exc)
            ) from exc

    def _check_window(self, events: Sequence[Inbound], bounds: Bounds) -> None:
        """Refuse the delivery if an instant of one of its events is outside the window.

        Names at most ``max_errors_listed`` instants, then says how many more there are.
        """
        described: list[str] = []
        problems_found = 0
        for index, event in enumerate(events):
            problems = bounds.problems(event)
            if problems:
                self._metrics.events_out_of_window.labels(reason=reason(problems)).inc()
            problems_found += len(problems)
            for problem in problems[: max(0, self._max_errors - len(described))]:
                field = ".".join(str(part) for part in problem.loc)
                described.append(f"events[{index}].{field}: {problem.msg}")
        if problems_found > len(described):
            described.append(
                f"and {problems_found - len(described)} more: listing stopped after"
                f" {self._max_errors} problems"
            )
        if described:
            raise _RefusedError(
                status.HTTP_422_UNPROCESSABLE_CONTENT, WebhookOutcome.INVALID, "; ".join(described)
            )

    def _summary(self, normalised: Normalised) -> str:
        """Why nothing was produced: the first ``max_errors_listed`` ignored parts, then how
        many more."""
        ignored = normalised.ignored
        if len(ignored) <= self._max_errors:
            return normalised.summary
        shown = "; ".join(part.detail for part in ignored[: self._max_errors])
        return f"{shown}; and {len(ignored) - self._max_errors} more"

    async def _publish(self, events: Sequence[Inbound]) -> None:
        try:
            await self._publisher.publish(events)
        except BrokerUnavailableError as exc:
            raise _RefusedError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                WebhookOutcome.BROKER_UNAVAILABLE,
                f"{exc}; nothing may be stored: retry the delivery",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from exc


def credentials_of(config: SourceConfig) -> Credentials:
    """What ``config`` accepts, in the terms of ``signatures``."""
    return Credentials(
        scheme=Scheme(config.signature_scheme or KINDS[config.kind].scheme),
        secret=config.secret.get_secret_value().encode() if config.secret else None,
        tokens=tuple(token.get_secret_value() for token in config.tokens),
        basic_auth={user: pw.get_secret_value() for user, pw in config.basic_auth.items()},
        signature_header=config.signature_header,
        timestamp_header=config.timestamp_header,
        replay_window_s=config.replay_window_s,
    )


def _challenge(config: SourceConfig) -> str:
    if config.tokens:
        return 'Bearer realm="slawatch"'
    if config.basic_auth:
        return 'Basic realm="slawatch"'
    return f'Signature realm="slawatch", source="{config.name}"'


def _object(body: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _RefusedError(
            status.HTTP_400_BAD_REQUEST, WebhookOutcome.MALFORMED, "the body is not UTF-8"
        ) from exc
    except json.JSONDecodeError as exc:
        detail = f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise _RefusedError(status.HTTP_400_BAD_REQUEST, WebhookOutcome.MALFORMED, detail) from exc
    if not isinstance(document, dict):
        raise _RefusedError(
            status.HTTP_400_BAD_REQUEST, WebhookOutcome.MALFORMED, "the body is not a JSON object"
        )
    return document


def webhooks_router(
    settings: IngestSettings,
    sources: Mapping[str, SourceConfig],
    publisher: Publisher,
    metrics: IngestMetrics,
    *,
    clock: Clock | None = None,
    monotonic: Monotonic = time.monotonic,
    failures: FailureLimit | None = None,
) -> APIRouter:
    """The router serving ``POST /v1/webhooks/{source}``.

    ``failures`` is the app's limit of failed authentication per client
    address (one of its own, from ``settings``, if not given).
    """
    intake = WebhookIntake(
        settings,
        sources,
        publisher,
        metrics,
        clock=clock or wall_clock,
        monotonic=monotonic,
        failures=failures,
    )
    router = APIRouter()
    enabled = sorted(name for name, cfg in sources.items() if cfg.enabled)
    router.add_api_route(
        "/v1/webhooks/{source}",
        intake.post_webhook,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted | IgnoredDelivery,
        responses=_RESPONSES,
        summary="Receive a webhook of a configured source (Jira, Zendesk, Alertmanager, ...)",
        description=(
            "The body is the source's own webhook, authenticated as the source signs it."
            f" Configured sources: {', '.join(enabled) or 'none'}."
        ),
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The source's webhook body, byte for byte as it signed it.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    return router
