"""Zendesk event webhooks (``zen:event-type:ticket.*``) → ticket events.

| event type                             | what slawatch makes of it                           |
|----------------------------------------|-----------------------------------------------------|
| ``ticket.created``                     | ``ticket.created`` at ``detail.created_at``         |
| ``ticket.status_changed``              | resolved (solved), closed, reopened (from solved or |
|                                        | closed), else status_changed; pending pauses        |
| ``ticket.priority_changed``            | ``ticket.priority_changed``                         |
| ``ticket.agent_assignment_changed``    | ``ticket.assigned`` (an unassignment is ignored)    |
| ``ticket.group_assignment_changed``    | ``ticket.assigned``                                 |
| ``ticket.comment_added``               | ``ticket.responded`` for a public comment by staff; |
|                                        | internal notes and customer comments are ignored    |
| ``ticket.satisfaction_rating_changed`` | ``ticket.rated`` with                               |
| (sent by a trigger, see below)         | ``detail.satisfaction_rating.score``: ``good`` is   |
|                                        | 1 of 1, ``bad`` 0 of 1; ``offered``, ``unoffered``  |
|                                        | or no rating is ignored (``irrelevant_change``)     |
| other ``ticket.*`` events              | ignored (``irrelevant_change``)                     |
| user, organization, … events           | ignored (``untracked_event``)                       |

Every event but ``created`` is dated by the envelope's ``time``. The envelope's
``id`` is the delivery id. Zendesk writes enums in upper case (``OPEN``,
``URGENT``); the maps compare without regard to case. The ticket's customer
is its organization id.

Zendesk's event catalogue has no satisfaction event: a rating arrives from a
trigger (condition *Satisfaction* changed to *Good* or *Bad*) that notifies
this webhook with a body in the same envelope, typed
``zen:event-type:ticket.satisfaction_rating_changed`` and carrying the score
as the Tickets API shows it (``detail.satisfaction_rating.score``; see
docs/SOURCES.md for the body). A score that is none of Zendesk's four is
refused (422).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slawatch_common.events import TicketEventType
from slawatch_ingest.sources.canonical import (
    IgnoreReason,
    Normalised,
    PayloadError,
    ticket_event,
)
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.instants import instant
from slawatch_ingest.sources.lifecycle import CLOSED, PENDING, RESOLVED, status_of, transition
from slawatch_ingest.sources.paths import mapping_at
from slawatch_ingest.sources.ratings import rated_ticket, word_rating
from slawatch_ingest.sources.tickets import build_ticket

PREFIX = "zen:event-type:"

DEFAULTS: dict[str, Any] = {
    "priorities": {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"},
    "statuses": {
        "new": "new",
        "open": "open",
        "pending": PENDING,
        "hold": "on_hold",
        "solved": RESOLVED,
        "closed": CLOSED,
    },
    "replay_window_s": 300,
}

_TRACKED = (
    "ticket.created",
    "ticket.status_changed",
    "ticket.priority_changed",
    "ticket.agent_assignment_changed",
    "ticket.group_assignment_changed",
    "ticket.comment_added",
    "ticket.satisfaction_rating_changed",
)

SCORES: dict[str, float | None] = {"good": 1.0, "bad": 0.0, "offered": None, "unoffered": None}
"""Zendesk's satisfaction scores on a scale of 1; ``None``: offered or not, not rated."""
SCALE_MAX = 1.0


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The ticket events of one Zendesk event delivery (see the module docstring)."""
    kind = str(body.get("type", "")).removeprefix(PREFIX)
    if not kind:
        raise PayloadError("type is missing")
    if not kind.startswith("ticket."):
        detail = f"the zendesk event {kind!r} is not tracked"
        return Normalised.ignore(IgnoreReason.UNTRACKED_EVENT, detail)
    if kind not in _TRACKED:
        detail = f"the zendesk event {kind!r} is not relevant to SLAs"
        return Normalised.ignore(IgnoreReason.IRRELEVANT_CHANGE, detail)
    ticket_detail = body.get("detail")
    if not isinstance(ticket_detail, Mapping):
        raise PayloadError("detail is missing")
    if kind == "ticket.satisfaction_rating_changed":
        return _rated(body, ticket_detail, config)
    change = mapping_at(body.get("event"))
    type_or_ignored = _meaning(kind, change, config)
    if isinstance(type_or_ignored, Normalised):
        return type_or_ignored
    at = _at(body, ticket_detail, type_or_ignored)
    ticket = build_ticket(_raw(ticket_detail, kind, change), config, body)
    delivery = str(body["id"]) if body.get("id") else None
    return Normalised.of(
        [ticket_event(config.name, type_or_ignored, at, ticket, delivery=delivery)]
    )


def _rated(body: Mapping[str, Any], detail: Mapping[str, Any], config: SourceConfig) -> Normalised:
    """``ticket.rated`` for a good or bad score; nothing for an offered one or none."""
    satisfaction = detail.get("satisfaction_rating")
    if satisfaction is not None and not isinstance(satisfaction, Mapping):
        raise PayloadError("detail.satisfaction_rating: not an object")
    score = (satisfaction or {}).get("score")
    rating = word_rating(score, SCORES, SCALE_MAX, "detail.satisfaction_rating.score")
    if rating is None:
        if score is None:
            return Normalised.ignore(
                IgnoreReason.IRRELEVANT_CHANGE, "the ticket has no satisfaction rating"
            )
        said = str(score).strip().lower()
        return Normalised.ignore(
            IgnoreReason.IRRELEVANT_CHANGE, f"the satisfaction rating is {said!r}: not rated"
        )
    ticket = build_ticket(_raw(detail, "ticket.satisfaction_rating_changed", {}), config, body)
    rated = rated_ticket(ticket.id, rating)
    at = _at(body, detail, "ticket.rated")
    delivery = str(body["id"]) if body.get("id") else None
    return Normalised.of([ticket_event(config.name, "ticket.rated", at, rated, delivery=delivery)])


def _meaning(
    kind: str, change: Mapping[str, Any], config: SourceConfig
) -> TicketEventType | Normalised:
    if kind == "ticket.created":
        return "ticket.created"
    if kind == "ticket.status_changed":
        before = status_of(change.get("previous"), config.statuses)
        return transition(before, status_of(change.get("current"), config.statuses))
    if kind == "ticket.priority_changed":
        return "ticket.priority_changed"
    if kind == "ticket.comment_added":
        return _response(change.get("comment"))
    if kind == "ticket.agent_assignment_changed" and not change.get("current"):
        detail = "an unassigned ticket has no assignee to record"
        return Normalised.ignore(IgnoreReason.IRRELEVANT_CHANGE, detail)
    return "ticket.assigned"


def _response(comment: Any) -> TicketEventType | Normalised:
    if not isinstance(comment, Mapping):
        raise PayloadError("event.comment is missing")
    author = mapping_at(comment.get("author"))
    if comment.get("is_public") is not True:
        detail = "an internal note is not a response"
        return Normalised.ignore(IgnoreReason.NOT_A_RESPONSE, detail)
    if author.get("is_staff") is not True:
        detail = "a comment by the requester is not a response"
        return Normalised.ignore(IgnoreReason.NOT_A_RESPONSE, detail)
    return "ticket.responded"


def _raw(detail: Mapping[str, Any], kind: str, change: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket as ``detail`` shows it, with the event's new value where it has one."""
    raw = {
        "id": detail.get("id"),
        "status": detail.get("status"),
        "priority": detail.get("priority"),
        "title": detail.get("subject"),
        "type": _lower(detail.get("type")),
        "group": detail.get("group_id"),
        "customer": detail.get("organization_id"),
        "assignee.id": detail.get("assignee_id"),
    }
    current = change.get("current")
    field = {
        "ticket.status_changed": "status",
        "ticket.priority_changed": "priority",
        "ticket.agent_assignment_changed": "assignee.id",
        "ticket.group_assignment_changed": "group",
    }.get(kind)
    if field is not None and current is not None and not isinstance(current, Mapping):
        raw[field] = current
    return raw


def _at(body: Mapping[str, Any], detail: Mapping[str, Any], type_: TicketEventType) -> datetime:
    value = body.get("time")
    if type_ == "ticket.created" and detail.get("created_at"):
        value = detail["created_at"]
    try:
        return instant(value)
    except ValueError as exc:
        raise PayloadError(f"time: {exc}") from exc


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
