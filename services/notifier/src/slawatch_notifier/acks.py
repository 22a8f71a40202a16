"""Acknowledgements over HTTP: the API and the signed links in every message.

    POST /v1/acks   {"clock_id": "jira:OPS-42:response", "cycle": 1, "by": "li.wei"}
                    {"ticket_source": "jira", "ticket_id": "OPS-42", "by": "Li Wei (phone)"}
    GET  /v1/acks/<token>     the link of a notification (``acklink.py``); ``by`` = its recipient;
                              a digest's link acknowledges every escalation folded into it

An ack marks the escalation acknowledged (guarded on status and version) and
cancels its pending scheduled steps and the not-yet-sent notifications of
fired ones; what was already sent stays sent (``escalation_store.acknowledge``).
By ticket, every escalation of the ticket is acknowledged. Acknowledging again
changes nothing and answers the same 200.

Answers: 200 with each escalation's state and what this request cancelled;
404 for an unknown clock or ticket; 410 for an expired link; 403 for a bad
signature; 422 naming the bad field (``loc``).

A GET that changes state is what a link in an email or SMS can do; a mail
scanner that follows links acknowledges too (see docs/ARCHITECTURE.md).
"""

# No ``from __future__ import annotations``: the route signatures carry a
# dependency bound in ``acks_router``, which FastAPI must see as an object.
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.events import Identifier, Name
from slawatch_notifier import escalation_store
from slawatch_notifier.acklink import (
    BadSignatureError,
    DigestClaim,
    ExpiredLinkError,
    LinkError,
    verify,
)
from slawatch_notifier.escalation_store import AckOutcome
from slawatch_notifier.metrics import AckMethod, FinalReason, NotifierMetrics, StepResult
from slawatch_notifier.retry import Status

log = logging.getLogger(__name__)


class AckRequest(BaseModel):
    """One clock cycle (``clock_id``, ``cycle``) or every escalation of one ticket."""

    model_config = ConfigDict(extra="forbid")

    clock_id: Identifier | None = None
    cycle: Annotated[int, Field(ge=1)] = 1
    ticket_source: Identifier | None = None
    ticket_id: Identifier | None = None
    by: Name = Field(description="Who acknowledges: a person id or free text.")


class EscalationView(BaseModel):
    clock_id: str
    cycle: int
    status: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    changed: bool = Field(description="This request acknowledged it.")
    cancelled_steps: list[str]
    cancelled_notifications: list[str]


class AckAnswer(BaseModel):
    escalations: list[EscalationView]


def acks_router(
    engine: Callable[[], AsyncEngine],
    secret: bytes,
    metrics: NotifierMetrics,
    now: Callable[[], datetime],
) -> APIRouter:
    """The ack routes; ``engine`` is a dependency (503 until the lifespan has made it)."""
    api = APIRouter(tags=["acknowledgements"])
    Engine = Annotated[AsyncEngine, Depends(engine)]  # noqa: N806

    @api.post("/v1/acks", response_model=AckAnswer, summary="Acknowledge escalations")
    async def post_ack(request: AckRequest, db: Engine) -> AckAnswer | JSONResponse:
        problem = _subject_problem(request)
        if problem is not None:
            return problem
        if request.clock_id is not None:
            outcome = await escalation_store.in_transaction(
                db,
                partial(
                    escalation_store.acknowledge,
                    key=(request.clock_id, request.cycle),
                    by=request.by,
                    now=now(),
                ),
            )
            outcomes = [] if outcome is None else [outcome]
            missing = f"no escalation for clock {request.clock_id!r} cycle {request.cycle}"
        else:
            source, ticket_id = request.ticket_source or "", request.ticket_id or ""
            outcomes = await escalation_store.in_transaction(
                db,
                partial(
                    escalation_store.acknowledge_ticket,
                    source=source,
                    ticket_id=ticket_id,
                    by=request.by,
                    now=now(),
                ),
            )
            missing = f"no escalation for ticket {source}:{ticket_id}"
        return _answer(outcomes, missing, AckMethod.API, metrics)

    @api.get(
        "/v1/acks/{token}",
        response_model=AckAnswer,
        summary="Acknowledge through the signed link of a notification",
    )
    async def follow_link(token: str, db: Engine) -> AckAnswer:
        try:
            claim = verify(token, secret, now())
        except BadSignatureError as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except ExpiredLinkError as exc:
            raise HTTPException(status.HTTP_410_GONE, str(exc)) from exc
        except LinkError as exc:
            detail = [{"loc": ["path", "token"], "msg": str(exc), "type": "value_error"}]
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
        if isinstance(claim, DigestClaim):
            outcomes = await escalation_store.in_transaction(
                db,
                partial(
                    escalation_store.acknowledge_digest,
                    digest_id=claim.digest_id,
                    by=claim.recipient,
                    now=now(),
                ),
            )
            missing = f"nothing was folded into digest {claim.digest_id!r}"
            return _answer(outcomes, missing, AckMethod.LINK, metrics)
        outcome = await escalation_store.in_transaction(
            db,
            partial(
                escalation_store.acknowledge,
                key=(claim.clock_id, claim.cycle),
                by=claim.recipient,
                now=now(),
            ),
        )
        missing = f"no escalation for clock {claim.clock_id!r} cycle {claim.cycle}"
        return _answer([] if outcome is None else [outcome], missing, AckMethod.LINK, metrics)

    return api


def _subject_problem(request: AckRequest) -> JSONResponse | None:
    by_ticket = request.ticket_source is not None or request.ticket_id is not None
    if request.clock_id is not None and by_ticket:
        return _unprocessable("clock_id", "give clock_id or ticket_source and ticket_id, not both")
    if request.clock_id is None and request.ticket_source is None:
        return _unprocessable(
            "ticket_source" if by_ticket else "clock_id",
            "required: clock_id (with cycle) or ticket_source and ticket_id",
        )
    if request.clock_id is None and request.ticket_id is None:
        return _unprocessable("ticket_id", "required with ticket_source")
    return None


def _unprocessable(field: str, message: str) -> JSONResponse:
    detail: list[dict[str, Any]] = [{"loc": ["body", field], "msg": message, "type": "missing"}]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _answer(
    outcomes: list[AckOutcome], missing: str, method: AckMethod, metrics: NotifierMetrics
) -> AckAnswer:
    if not outcomes:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing)
    for outcome in outcomes:
        if outcome.changed:
            state = outcome.state
            log.info(
                "escalation %s#%d acknowledged by %s (%s)",
                *state.key,
                state.acknowledged_by,
                method,
            )
            metrics.acks.labels(method).inc()
            metrics.escalation_steps.labels(StepResult.CANCELLED).inc(len(outcome.cancelled_steps))
            for notification in outcome.cancelled_notifications:
                metrics.notifications.labels(
                    notification.channel, Status.CANCELLED, FinalReason.ACKNOWLEDGED
                ).inc()
    return AckAnswer(escalations=[_view(outcome) for outcome in outcomes])


def _view(outcome: AckOutcome) -> EscalationView:
    state = outcome.state
    return EscalationView(
        clock_id=state.clock_id,
        cycle=state.cycle,
        status=str(state.status),
        acknowledged_by=state.acknowledged_by,
        acknowledged_at=state.acknowledged_at,
        changed=outcome.changed,
        cancelled_steps=list(outcome.cancelled_steps),
        cancelled_notifications=[n.id for n in outcome.cancelled_notifications],
    )
