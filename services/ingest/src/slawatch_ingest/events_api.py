"""``POST /v1/events``: the webhook that takes canonical events in.

The steps, in order; each refusal ends the request and stores nothing:

1. bearer token (``auth``)                          → 401
2. read the body, at most ``max_body_bytes``        → 413
3. decode it (``parsing.read_items``)               → 415, 400 (malformed JSON)
4. validate every event (``parsing.validate_items``) → 422 listing every bad field
5. publish them all (``publishing.Publisher``)      → 503 with ``Retry-After``
6. → 202 ``{"accepted": N, "event_ids": [...]}``, only once the broker has
   acknowledged every event.

After a 503 some events of a multi-event request may have been stored. That
is safe: ``event_id`` is the idempotency key and consumers deduplicate, so the
client retries the whole request unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from slawatch_ingest.auth import bearer_auth
from slawatch_ingest.metrics import BrokerFailure, IngestMetrics, Rejection, type_label
from slawatch_ingest.openapi import events_request_body
from slawatch_ingest.parsing import (
    BodyError,
    BodyTooLargeError,
    Inbound,
    InvalidEventsError,
    MalformedBodyError,
    UnsupportedMediaTypeError,
    read_items,
    validate_items,
)
from slawatch_ingest.publishing import BrokerUnavailableError, Publisher
from slawatch_ingest.settings import IngestSettings

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
    413: {"model": Refusal, "description": "The body exceeds the size limit."},
    415: {"model": Refusal, "description": "Neither application/json nor NDJSON."},
    422: {"model": Invalid, "description": "Every invalid field; nothing was stored."},
    503: {"model": Refusal, "description": "The broker did not store the events; retry."},
}


class EventIntake:
    """Handles ``POST /v1/events`` for one app; see the module docstring."""

    def __init__(
        self, settings: IngestSettings, publisher: Publisher, metrics: IngestMetrics
    ) -> None:
        self._max_body_bytes = settings.max_body_bytes
        self._publisher = publisher
        self._metrics = metrics

    async def post_events(self, request: Request) -> Response:
        """Validate every event of the request, publish them all, then answer 202."""
        with self._metrics.request_duration.time():
            try:
                events = await self._read_events(request)
            except BodyError as exc:
                return self._refuse(exc)
            try:
                await self._publisher.publish(events)
            except BrokerUnavailableError as exc:
                return self._unavailable(exc, events)
            for event in events:
                self._metrics.events_produced.labels(type=event.type).inc()
            accepted = Accepted(accepted=len(events), event_ids=[e.event_id for e in events])
            return JSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)

    async def _read_events(self, request: Request) -> list[Inbound]:
        body = await read_capped(request, self._max_body_bytes)
        items = read_items(body, request.headers.get("content-type"))
        for item in items:
            self._metrics.events_received.labels(type=type_label(item.value)).inc()
        try:
            return validate_items(items)
        except InvalidEventsError:
            self._metrics.events_rejected.labels(reason=Rejection.INVALID).inc(len(items))
            raise

    def _refuse(self, exc: BodyError) -> Response:
        code, reason = _REFUSALS[type(exc)]
        self._metrics.requests_rejected.labels(reason=reason).inc()
        detail = exc.errors if isinstance(exc, InvalidEventsError) else str(exc)
        return JSONResponse({"detail": detail}, status_code=code)

    def _unavailable(self, exc: BrokerUnavailableError, events: list[Inbound]) -> Response:
        failure = BrokerFailure.TIMEOUT if exc.timed_out else BrokerFailure.ERROR
        self._metrics.broker_failures.labels(reason=failure).inc()
        self._metrics.requests_rejected.labels(reason=Rejection.BROKER_UNAVAILABLE).inc()
        self._metrics.events_rejected.labels(reason=Rejection.BROKER_UNAVAILABLE).inc(len(events))
        detail = f"{exc}; the events may not be stored: retry the whole request"
        return JSONResponse(
            {"detail": detail},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


_REFUSALS: dict[type[BodyError], tuple[int, Rejection]] = {
    BodyTooLargeError: (status.HTTP_413_CONTENT_TOO_LARGE, Rejection.TOO_LARGE),
    UnsupportedMediaTypeError: (
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        Rejection.UNSUPPORTED_MEDIA_TYPE,
    ),
    MalformedBodyError: (status.HTTP_400_BAD_REQUEST, Rejection.MALFORMED),
    InvalidEventsError: (status.HTTP_422_UNPROCESSABLE_CONTENT, Rejection.INVALID),
}


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, or ``BodyTooLargeError`` as soon as it exceeds ``limit`` bytes.

    Stops reading at the limit, so an oversized body is never held in memory.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is {declared} bytes; at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"the body exceeds {limit} bytes")
    return bytes(body)


def events_router(
    settings: IngestSettings, publisher: Publisher, metrics: IngestMetrics
) -> APIRouter:
    """The router serving ``POST /v1/events``."""
    intake = EventIntake(settings, publisher, metrics)
    router = APIRouter()
    router.add_api_route(
        "/v1/events",
        intake.post_events,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_RESPONSES,
        dependencies=[Depends(bearer_auth(settings.ingest_tokens, metrics))],
        openapi_extra=events_request_body(),
        summary="Submit canonical events (one, an array, or NDJSON)",
    )
    return router
