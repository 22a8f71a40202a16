"""Jira (Cloud, Server, Data Center, Service Management) webhooks → ticket events.

| webhook event           | what slawatch makes of it                                         |
|-------------------------|-------------------------------------------------------------------|
| ``jira:issue_created``  | ``ticket.created`` at ``issue.fields.created``                    |
| ``jira:issue_updated``  | one event per SLA-relevant ``changelog`` item, at ``timestamp``:  |
|                         | status → resolved/closed/reopened/status_changed (by the map);    |
|                         | resolution set → resolved, cleared → reopened;                    |
|                         | priority → priority_changed; assignee → assigned;                 |
|                         | Urgency/Impact (Service Management) → updated;                    |
|                         | Satisfaction (Service Management) → rated                         |
|                         | (a ``comment`` in the body is judged as ``comment_created``)      |
| ``comment_created``     | ``ticket.responded`` at ``comment.created`` for a public comment  |
|                         | by someone other than the reporter                                |
| anything else           | ignored (``untracked_event``)                                     |

A comment is internal when ``jsdPublic`` is false (Service Management) or it
has a ``visibility`` restriction. The ticket id is the issue key (``OPS-42``);
every event carries the issue as the body shows it. The delivery id is
``X-Atlassian-Webhook-Identifier`` (the same on Jira Cloud's retries).

Service Management's customer satisfaction (CSAT, 1 to 5 stars) is a custom
field named *Satisfaction* whose value is ``{"rating": 4}``. A changelog item
of that field, by its name or by the custom field id in ``fields.rating``,
is ``ticket.rated``, the rating read at ``fields.rating`` (default
``$.issue.fields.*.rating``: any field of the issue holding a ``rating``) on
a scale of 5; a cleared rating is ignored, one that is not a number from 0
to 5 refused (422). ``ticket.rated`` carries the issue's key and the rating
only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slawatch_common.events import Ticket, TicketEvent, TicketEventType
from slawatch_ingest.sources.canonical import (
    Ignored,
    IgnoreReason,
    Normalised,
    PayloadError,
    ticket_event,
)
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.instants import instant
from slawatch_ingest.sources.lifecycle import CLOSED, PENDING, RESOLVED, status_of, transition
from slawatch_ingest.sources.paths import find
from slawatch_ingest.sources.ratings import number_rating, rated_ticket
from slawatch_ingest.sources.tickets import build_ticket

DELIVERY_HEADER = "x-atlassian-webhook-identifier"

SATISFACTION_FIELD = "satisfaction"
"""The name Service Management gives its CSAT field (changelog ``field``, compared casefolded)."""
RATING_PATH = "$.issue.fields.*.rating"
"""Where the rating is read unless ``fields.rating`` says: any issue field with a ``rating``."""
SCALE_MAX = 5.0
"""Service Management's CSAT: 1 to 5 stars."""
_CUSTOM_FIELD = re.compile(r"customfield_\d+")

DEFAULTS: dict[str, Any] = {
    "priorities": {
        "Highest": "P1",
        "Blocker": "P1",
        "High": "P2",
        "Critical": "P2",
        "Medium": "P3",
        "Major": "P3",
        "Low": "P4",
        "Minor": "P4",
        "Lowest": "P5",
        "Trivial": "P5",
    },
    "statuses": {
        "Waiting for customer": PENDING,
        "Pending": PENDING,
        "Resolved": RESOLVED,
        "Done": RESOLVED,
        "Closed": CLOSED,
        "Canceled": CLOSED,
        "Cancelled": CLOSED,
    },
}


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The ticket events of one Jira delivery (see the module docstring)."""
    event = body.get("webhookEvent")
    if not isinstance(event, str):
        raise PayloadError("webhookEvent is missing")
    handler = _HANDLERS.get(event)
    if handler is None:
        detail = f"the jira event {event!r} is not tracked"
        return Normalised.ignore(IgnoreReason.UNTRACKED_EVENT, detail)
    return handler(_Delivery.of(body, headers, config))


@dataclass(frozen=True, slots=True)
class _Delivery:
    body: Mapping[str, Any]
    issue: Mapping[str, Any]
    fields: Mapping[str, Any]
    config: SourceConfig
    delivery: str | None

    @classmethod
    def of(
        cls, body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
    ) -> _Delivery:
        issue = body.get("issue")
        if not isinstance(issue, Mapping) or not issue.get("key"):
            raise PayloadError("issue.key is missing")
        fields = issue.get("fields")
        return cls(
            body,
            issue,
            fields if isinstance(fields, Mapping) else {},
            config,
            headers.get(DELIVERY_HEADER),
        )

    def ticket(self) -> Ticket:
        fields = self.fields
        raw: dict[str, Any] = {
            "id": self.issue["key"],
            "priority": _name(fields.get("priority")),
            "status": _name(fields.get("status")),
            "title": fields.get("summary"),
            "type": _name(fields.get("issuetype")),
            **_person(fields.get("assignee")),
        }
        return build_ticket(raw, self.config, self.body)

    def event(
        self,
        type_: TicketEventType,
        at: datetime,
        change: str | None = None,
        ticket: Ticket | None = None,
    ) -> TicketEvent:
        ticket = ticket or self.ticket()
        source = self.config.name
        return ticket_event(source, type_, at, ticket, delivery=self.delivery, change=change)

    @property
    def timestamp(self) -> datetime:
        return _instant(self.body.get("timestamp"), "timestamp")


def _created(delivery: _Delivery) -> Normalised:
    created = delivery.fields.get("created") or delivery.body.get("timestamp")
    at = _instant(created, "issue.fields.created")
    return Normalised.of([delivery.event("ticket.created", at)])


def _updated(delivery: _Delivery) -> Normalised:
    commented = isinstance(delivery.body.get("comment"), Mapping)  # Jira Server's issue_commented
    parts = []
    if delivery.body.get("changelog") or not commented:
        parts.append(_changes(delivery))
    if commented:
        parts.append(_commented(delivery))
    return Normalised.combine(parts)


def _changes(delivery: _Delivery) -> Normalised:
    """One event per SLA-relevant changelog item, the first of each type only."""
    changelog = delivery.body.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    events: dict[TicketEventType, TicketEvent] = {}
    irrelevant: list[str] = []
    unrated: list[Ignored] = []
    for item in items if isinstance(items, list) else []:
        meaning = _meaning(item, delivery.config) if isinstance(item, Mapping) else None
        if meaning is None:
            irrelevant.append(str(item.get("field")) if isinstance(item, Mapping) else "?")
            continue
        type_, update = meaning
        if type_ in events or (type_ == "ticket.rated" and unrated):
            continue
        if type_ == "ticket.rated":
            rated = _rated(delivery)
            if isinstance(rated, Ignored):
                unrated.append(rated)
            else:
                events[type_] = rated
            continue
        ticket = delivery.ticket().model_copy(update=update)
        events[type_] = delivery.event(type_, delivery.timestamp, ticket=ticket)
    if events or unrated:
        return Normalised.of(events.values(), unrated)
    changed = ", ".join(irrelevant) or "nothing"
    return Normalised.ignore(
        IgnoreReason.IRRELEVANT_CHANGE, f"the jira update changed {changed}: not relevant to SLAs"
    )


def _rated(delivery: _Delivery) -> TicketEvent | Ignored:
    """``ticket.rated`` with the rating the issue holds now; ``Ignored`` when it holds none."""
    path = _rating_path(delivery.config)
    rating = number_rating(find(delivery.body, path), SCALE_MAX, f"fields.rating ({path})")
    if rating is None:
        return Ignored(IgnoreReason.IRRELEVANT_CHANGE, "the satisfaction rating was cleared")
    ticket = rated_ticket(delivery.ticket().id, rating)
    return delivery.event("ticket.rated", delivery.timestamp, ticket=ticket)


def _rating_path(config: SourceConfig) -> str:
    return config.fields.get("rating", RATING_PATH)


def _is_satisfaction(item: Mapping[str, Any], config: SourceConfig) -> bool:
    """A changelog item of the CSAT field: by its name, or by the custom field ``fields.rating``
    reads (``/issue/fields/customfield_10031`` names ``customfield_10031``)."""
    if str(item.get("field", "")).strip().casefold() == SATISFACTION_FIELD:
        return True
    named = _CUSTOM_FIELD.findall(config.fields.get("rating", ""))
    return bool(named) and item.get("fieldId") in named


def _meaning(
    item: Mapping[str, Any], config: SourceConfig
) -> tuple[TicketEventType, dict[str, Any]] | None:
    """The event type a changelog item means, with the data it changes; ``None``: irrelevant."""
    if _is_satisfaction(item, config):
        return "ticket.rated", {}
    field = str(item.get("field", "")).casefold()
    before, after = item.get("fromString"), item.get("toString")
    if field == "status":
        return transition(status_of(before, config.statuses), status_of(after, config.statuses)), {}
    if field == "resolution":
        if not before and after:
            return "ticket.resolved", {}
        if before and not after:
            return "ticket.reopened", {}
        return None
    if field == "priority":
        return "ticket.priority_changed", {}
    if field == "assignee":
        return "ticket.assigned", {}
    if field in ("urgency", "impact") and after:
        return "ticket.updated", {field: str(after)}
    return None


def _commented(delivery: _Delivery) -> Normalised:
    comment = delivery.body.get("comment")
    if not isinstance(comment, Mapping):
        raise PayloadError("comment is missing")
    if comment.get("jsdPublic") is False or comment.get("visibility"):
        detail = "an internal comment is not a response"
        return Normalised.ignore(IgnoreReason.NOT_A_RESPONSE, detail)
    if _same_person(comment.get("author"), delivery.fields.get("reporter")):
        detail = "a comment by the reporter is not a response"
        return Normalised.ignore(IgnoreReason.NOT_A_RESPONSE, detail)
    at = _instant(comment.get("created") or delivery.body.get("timestamp"), "comment.created")
    return Normalised.of([delivery.event("ticket.responded", at)])


_HANDLERS: dict[str, Callable[[_Delivery], Normalised]] = {
    "jira:issue_created": _created,
    "jira:issue_updated": _updated,
    "comment_created": _commented,
}


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, Mapping) else value


def _user_id(user: Any) -> str | None:
    if not isinstance(user, Mapping):
        return None
    for key in ("accountId", "key", "name"):
        if user.get(key):
            return str(user[key])
    return None


def _person(user: Any) -> dict[str, Any]:
    if not isinstance(user, Mapping):
        return {}
    return {
        "assignee.id": _user_id(user),
        "assignee.name": user.get("displayName"),
        "assignee.email": user.get("emailAddress"),
    }


def _same_person(one: Any, other: Any) -> bool:
    first, second = _user_id(one), _user_id(other)
    return first is not None and first == second


def _instant(value: Any, where: str) -> datetime:
    try:
        return instant(value)
    except ValueError as exc:
        raise PayloadError(f"{where}: {exc}") from exc
