"""Acknowledgements over HTTP: the API and the signed links in every message.

    POST /v1/acks   {"clock_id": "jira:OPS-42:response", "cycle": 1, "by": "li.wei"}
                    {"ticket_source": "jira", "ticket_id": "OPS-42", "by": "Li Wei (phone)"}
    GET  /v1/acks/<token>     the page of a notification's link (``acklink.py``): what the
                              link acknowledges and for whom; it changes nothing
    POST /v1/acks/<token>     the page's button: acknowledge, ``by`` = the link's recipient;
                              a digest's link acknowledges every escalation folded into it

An ack marks the escalation acknowledged (guarded on status and version) and
cancels its pending scheduled steps and the not-yet-sent notifications of
fired ones; what was already sent stays sent (``escalation_store.acknowledge``).
By ticket, every escalation of the ticket is acknowledged. Acknowledging again
changes nothing and answers the same 200.

Following a link only reads: mail gateways fetch every link of an incoming
mail to scan it, and a ``GET`` that acknowledged would silence escalations
nobody read. The signed token is the only credential of the ``POST``; the link
pages (``ackpage.py``) are never cached, indexed or sent on as a Referer.

Answers of the API: 200 (JSON) with each escalation's state and what this
request cancelled; 404 for an unknown clock or ticket; 422 naming the bad field
(``loc``). Of a link, on either method, an HTML page: 200; 403 for a bad
signature, 410 for an expired link, 422 for a malformed one, 404 for an unknown
clock or a digest with nothing folded into it.

``by`` of the API is free text: control characters become spaces (format
characters such as bidirectional overrides go), runs of spaces one, and it is
cut at ``BY_MAX_CHARS``, before it is logged or stored. The acknowledgement
records it with the caller's credential: ``"<by> via <token name or JWT
subject>"`` (``recorded_by``); a link's records its recipient.
"""

# No ``from __future__ import annotations``: the route signatures carry a
# dependency bound in ``acks_router``, which FastAPI must see as an object.
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.auth import Principal, Scope, TokenBook, public_route
from slawatch_common.events import Identifier, Name, SlaEvent
from slawatch_notifier import ackpage, escalation_store, store
from slawatch_notifier.acklink import (
    AckClaim,
    BadSignatureError,
    DigestClaim,
    ExpiredLinkError,
    LinkError,
    verify,
)
from slawatch_notifier.ackpage import Recipient, Subject
from slawatch_notifier.escalation import Escalation
from slawatch_notifier.escalation_store import AckOutcome
from slawatch_notifier.metrics import AckMethod, FinalReason, NotifierMetrics, StepResult
from slawatch_notifier.retry import Status

log = logging.getLogger(__name__)


LINK_PATH = re.compile(r"/v1/acks/[^/]+")
"""The path of a signed link (``/v1/acks/{token}``); not ``POST /v1/acks`` itself."""


def open_route(method: str, path: str) -> bool:
    """Whether a request needs no bearer token (``auth.RequireCredential``): the probes and
    docs (``auth.public_route``), and a signed link's page and button, whose token is the
    credential."""
    link = method in ("GET", "HEAD", "POST") and LINK_PATH.fullmatch(path) is not None
    return link or public_route(method, path)


BY_MAX_CHARS = 200
"""The longest ``by`` kept; a longer one is cut (a person id is at most 200 characters)."""

_REMOVED = frozenset({"Cf", "Cs"})  # format characters (bidi overrides, zero widths), surrogates
_SPACED = frozenset({"Cc", "Zl", "Zp"})  # controls (CR, LF, tab, ESC, …), line/paragraph breaks


def clean_by(text: str) -> str:
    """``text`` on one line of printable characters, at most ``BY_MAX_CHARS`` long;
    ``ValueError`` if nothing printable is left."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in _SPACED:
            kept.append(" ")
        elif category not in _REMOVED:
            kept.append(char)
    cleaned = " ".join("".join(kept).split())[:BY_MAX_CHARS].rstrip()
    if not cleaned:
        raise ValueError("must contain a printable character")
    return cleaned


def recorded_by(by: str, subject: str) -> str:
    """Who an API acknowledgement is recorded as: the ``by`` the caller gave, and the
    credential it came with (a token's name or a JWT's subject) when that says more:
    ``"Li Wei (phone) via ops-console"``; at most ``BY_MAX_CHARS``, the credential kept."""
    if not subject or by == subject:
        return by
    via = f" via {clean_by(subject)}"[: BY_MAX_CHARS // 2]
    return by[: BY_MAX_CHARS - len(via)].rstrip() + via


class AckRequest(BaseModel):
    """One clock cycle (``clock_id``, ``cycle``) or every escalation of one ticket."""

    model_config = ConfigDict(extra="forbid")

    clock_id: Identifier | None = None
    cycle: Annotated[int, Field(ge=1)] = 1
    ticket_source: Identifier | None = None
    ticket_id: Identifier | None = None
    by: Annotated[Name, AfterValidator(clean_by)] = Field(
        description="Who acknowledges: a person id or free text (one line, at most "
        f"{BY_MAX_CHARS} characters are kept)."
    )


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
    tokens: TokenBook,
) -> APIRouter:
    """The ack routes; ``engine`` is a dependency (503 until the lifespan has made it).
    ``POST /v1/acks`` needs a token with the scope ``acks:write``; a signed link is its own
    credential."""
    api = APIRouter(tags=["acknowledgements"])
    Engine = Annotated[AsyncEngine, Depends(engine)]  # noqa: N806

    writer = tokens.require(Scope.ACKS_WRITE)
    Caller = Annotated[Principal, Depends(writer)]  # noqa: N806

    # FastAPI reads and parses the body before it solves any dependency, so a request
    # without a known token is answered 401 earlier, its body unread, by
    # ``auth.RequireCredential`` (app.py). Here the route's own dependency, solved before
    # those of its parameters, answers 403 to a known token without ``acks:write`` (after
    # the body was parsed: a malformed one is 422 first); the parameter reuses its answer.
    @api.post(
        "/v1/acks",
        response_model=AckAnswer,
        summary="Acknowledge escalations",
        dependencies=[Depends(writer)],
    )
    async def post_ack(request: AckRequest, db: Engine, caller: Caller) -> AckAnswer | JSONResponse:
        problem = _subject_problem(request)
        if problem is not None:
            return problem
        by = recorded_by(request.by, caller.subject)
        if request.clock_id is not None:
            outcomes = await _acknowledge(db, (request.clock_id, request.cycle), by, now())
            missing = f"no escalation for clock {request.clock_id!r} cycle {request.cycle}"
        else:
            source, ticket_id = request.ticket_source or "", request.ticket_id or ""
            outcomes = await escalation_store.in_transaction(
                db,
                partial(
                    escalation_store.acknowledge_ticket,
                    source=source,
                    ticket_id=ticket_id,
                    by=by,
                    now=now(),
                ),
            )
            missing = f"no escalation for ticket {source}:{ticket_id}"
        return _answer(outcomes, missing, AckMethod.API, metrics)

    @api.get(
        "/v1/acks/{token}",
        response_class=HTMLResponse,
        summary="The page of a notification's signed link: what it acknowledges, changing nothing",
    )
    async def show_link(token: str, db: Engine) -> HTMLResponse:
        claim = _verified(token, secret, now())
        if isinstance(claim, HTMLResponse):
            return claim
        async with db.connect() as conn:
            subjects = await _subjects(conn, claim)
            recipient, locale = await _recipient(conn, claim)
        if not subjects:
            return _refusal(status.HTTP_404_NOT_FOUND, _missing(claim))
        page = ackpage.confirm_page(
            subjects, recipient, digest=isinstance(claim, DigestClaim), locale=locale
        )
        return _html(page, status.HTTP_200_OK)

    @api.post(
        "/v1/acks/{token}",
        response_class=HTMLResponse,
        summary="Acknowledge through the signed link of a notification (its page's button)",
    )
    async def follow_link(token: str, db: Engine) -> HTMLResponse:
        claim = _verified(token, secret, now())
        if isinstance(claim, HTMLResponse):
            return claim
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
        else:
            outcomes = await _acknowledge(db, (claim.clock_id, claim.cycle), claim.recipient, now())
        if not outcomes:
            return _refusal(status.HTTP_404_NOT_FOUND, _missing(claim))
        _record(outcomes, AckMethod.LINK, metrics)
        async with db.connect() as conn:
            recipient, locale = await _recipient(conn, claim)
        subjects = [_subject(o.state, changed=o.changed) for o in outcomes]
        page = ackpage.acknowledged_page(subjects, recipient, locale)
        return _html(page, status.HTTP_200_OK)

    return api


async def _acknowledge(
    db: AsyncEngine, key: tuple[str, int], by: str, at: datetime
) -> list[AckOutcome]:
    """Acknowledge one clock cycle's escalation; its outcome, or none if there is none."""
    outcome = await escalation_store.in_transaction(
        db, partial(escalation_store.acknowledge, key=key, by=by, now=at)
    )
    return [] if outcome is None else [outcome]


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
    _record(outcomes, method, metrics)
    return AckAnswer(escalations=[_view(outcome) for outcome in outcomes])


def _record(outcomes: list[AckOutcome], method: AckMethod, metrics: NotifierMetrics) -> None:
    """Log and count what the acks changed."""
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


# --- the link pages -----------------------------------------------------------------


def _verified(token: str, secret: bytes, now: datetime) -> AckClaim | DigestClaim | HTMLResponse:
    """The token's claim, or the page that refuses it."""
    try:
        return verify(token, secret, now)
    except BadSignatureError as exc:
        return _refusal(status.HTTP_403_FORBIDDEN, str(exc))
    except ExpiredLinkError as exc:
        return _refusal(status.HTTP_410_GONE, str(exc))
    except LinkError as exc:
        return _refusal(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def _missing(claim: AckClaim | DigestClaim) -> str:
    if isinstance(claim, DigestClaim):
        return "nothing was folded into the digest of this link"
    return f"no escalation for clock {claim.clock_id!r} cycle {claim.cycle}"


def _refusal(status_code: int, detail: str) -> HTMLResponse:
    return _html(ackpage.refusal_page(status_code, detail), status_code)


def _html(page: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(page, status_code=status_code, headers=dict(ackpage.HEADERS))


async def _subjects(conn: AsyncConnection, claim: AckClaim | DigestClaim) -> list[Subject]:
    """The escalations the link acknowledges, as they are now (read without a lock:
    showing them changes nothing)."""
    table = store.escalations
    which: sa.ColumnElement[bool]
    if isinstance(claim, DigestClaim):
        folded = store.notifications
        which = sa.exists().where(
            folded.c.digest_id == claim.digest_id,
            folded.c.clock_id == table.c.clock_id,
            folded.c.cycle == table.c.cycle,
        )
    else:
        which = sa.and_(table.c.clock_id == claim.clock_id, table.c.cycle == claim.cycle)
    query = sa.select(table).where(which).order_by(table.c.clock_id, table.c.cycle)
    return [_subject_of_row(row) for row in (await conn.execute(query)).mappings()]


async def _recipient(
    conn: AsyncConnection, claim: AckClaim | DigestClaim
) -> tuple[Recipient, str | None]:
    """Who the link was made for (their name as the latest notification to them says it)
    and the locale their notifications were worded in."""
    table = store.notifications
    which: sa.ColumnElement[bool]
    if isinstance(claim, DigestClaim):
        which = sa.or_(table.c.id == claim.digest_id, table.c.digest_id == claim.digest_id)
    else:
        which = sa.and_(table.c.clock_id == claim.clock_id, table.c.cycle == claim.cycle)
    query = (
        sa.select(table.c.recipient_name, table.c.locale)
        .where(which, table.c.recipient == claim.recipient)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(20)
    )
    rows = (await conn.execute(query)).all()
    name = next((row.recipient_name for row in rows if row.recipient_name), None)
    locale = next((row.locale for row in rows if row.locale), None)
    return Recipient(claim.recipient, name), locale


def _subject_of_row(row: sa.RowMapping) -> Subject:
    event = SlaEvent.model_validate(row["event"])
    return _subject_of(
        event,
        status=row["status"],
        reason=row["reason"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
    )


def _subject(state: Escalation, *, changed: bool) -> Subject:
    return _subject_of(
        state.event,
        status=str(state.status),
        reason=str(state.reason) if state.reason else None,
        acknowledged_by=state.acknowledged_by,
        acknowledged_at=state.acknowledged_at,
        changed=changed,
    )


def _subject_of(
    event: SlaEvent,
    *,
    status: str,
    reason: str | None,
    acknowledged_by: str | None,
    acknowledged_at: datetime | None,
    changed: bool = False,
) -> Subject:
    ticket = event.data.ticket
    return Subject(
        ticket_source=ticket.source,
        ticket_id=ticket.id,
        title=ticket.title,
        metric=str(event.data.clock.metric),
        stage=event.data.stage,
        status=status,
        reason=reason,
        acknowledged_by=acknowledged_by,
        acknowledged_at=acknowledged_at,
        changed=changed,
    )
