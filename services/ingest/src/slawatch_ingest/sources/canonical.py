"""What a source normaliser returns: canonical events, or why it produced none.

A normaliser is a pure function of one delivery (body, headers, the source's
configuration). It answers with a ``Normalised``: the canonical events the
delivery means, in order, and an ``Ignored`` for each part it could not use
(an event type slawatch does not track, a change irrelevant to SLAs). A body
that breaks the source's own contract (no issue key, a timestamp that is not
one) raises ``PayloadError``: the sender is answered 422 with the reason.

Event ids are deterministic, so a retried delivery yields the same ids and
consumers drop the repeats: see ``event_id``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import ValidationError

from slawatch_common.events import Alert, MonitoringEvent, Ticket, TicketEvent, TicketEventType
from slawatch_ingest.parsing import Inbound

M = TypeVar("M", TicketEvent, MonitoringEvent)

MAX_ID_LENGTH = 200
"""The longest ``event_id`` the contract allows."""


class IgnoreReason(StrEnum):
    """Why (part of) a delivery produced nothing; the ``reason`` label of the metric."""

    UNTRACKED_EVENT = "untracked_event"
    IRRELEVANT_CHANGE = "irrelevant_change"
    NOT_A_RESPONSE = "not_a_response"
    UNMAPPED_VALUE = "unmapped_value"
    NO_SERVICE = "no_service"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A part of a delivery that was understood but is of no use to SLAs."""

    reason: IgnoreReason
    detail: str


@dataclass(frozen=True, slots=True)
class Normalised:
    """The canonical events of one delivery, in order, and what was ignored."""

    events: tuple[Inbound, ...] = ()
    ignored: tuple[Ignored, ...] = ()

    @classmethod
    def of(cls, events: Iterable[Inbound], ignored: Iterable[Ignored] = ()) -> Normalised:
        return cls(tuple(events), tuple(ignored))

    @classmethod
    def ignore(cls, reason: IgnoreReason, detail: str) -> Normalised:
        return cls((), (Ignored(reason, detail),))

    @classmethod
    def combine(cls, parts: Iterable[Normalised]) -> Normalised:
        """The events and ignored parts of ``parts``, in order."""
        outcomes = list(parts)
        return cls(
            tuple(event for part in outcomes for event in part.events),
            tuple(ignored for part in outcomes for ignored in part.ignored),
        )

    @property
    def summary(self) -> str:
        """Every ignored part's detail, for the sender."""
        return "; ".join(ignored.detail for ignored in self.ignored)


class PayloadError(ValueError):
    """The body lacks or garbles what the source promises to send; answered 422."""


def event_id(
    source: str, change: str, *, delivery: str | None, entity: str, at: datetime, data: object
) -> str:
    """The deterministic id of one event of a delivery.

    With the source's delivery id (stable across the sender's retries) it is
    ``source:delivery:change`` — ``change`` tells the events of one delivery
    apart. Without one it is ``source:`` and a SHA-256 over the entity, the
    change, the instant and the event's data, so a repeated body repeats the id
    while two different changes at the same second do not collide.
    """
    if delivery:
        readable = f"{source}:{delivery}:{change}"
        if len(readable) <= MAX_ID_LENGTH:
            return readable
    basis = json.dumps(
        [source, delivery or "", entity, change, at.isoformat(), data],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return f"{source}:{hashlib.sha256(basis.encode()).hexdigest()[:40]}"


def ticket_event(
    source: str,
    type_: TicketEventType,
    at: datetime,
    ticket: Ticket,
    *,
    delivery: str | None,
    change: str | None = None,
) -> TicketEvent:
    """A ``TicketEvent``; ``change`` (default: the type's last word) names it in its delivery."""
    data = ticket.model_dump(mode="json", exclude_none=True)
    name = change or type_.removeprefix("ticket.")
    identifier = event_id(source, name, delivery=delivery, entity=ticket.id, at=at, data=data)
    return _validated(
        TicketEvent, event_id=identifier, type=type_, occurred_at=at, source=source, data=ticket
    )


def alert_event(source: str, alert: Alert, *, firing: bool) -> MonitoringEvent:
    """A ``MonitoringEvent`` at the alert's start (firing) or end (resolved).

    Keyed by fingerprint, state and that instant: Alertmanager repeats a firing
    alert every ``repeat_interval`` with the same three, so the repeats share
    one id and consumers keep the first.
    """
    state = "firing" if firing else "resolved"
    at = alert.starts_at if firing or alert.ends_at is None else alert.ends_at
    data = alert.model_dump(mode="json", exclude_none=True)
    identifier = event_id(source, state, delivery=None, entity=alert.fingerprint, at=at, data=data)
    return _validated(
        MonitoringEvent,
        event_id=identifier,
        type=f"monitor.alert_{state}",
        occurred_at=at,
        source=source,
        data=alert,
    )


def _validated(model: type[M], **fields: object) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise PayloadError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
