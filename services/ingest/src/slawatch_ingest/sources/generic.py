"""Any system that can POST JSON → ticket events, by a declarative mapping in configuration.

The mapping (``ingest.sources.<name>.mapping``) names where the body keeps
each thing, as a JSON pointer (``/number``) or a JSONPath (``$.item.id``):

* ``ticket_id`` (required) and ``fields`` (status, priority, title, …,
  ``assignee.id`` …); ``values`` maps raw values of other fields
  (``type: {"1": incident}``); ``statuses`` and ``priorities`` of the source
  map statuses and priorities;
* ``occurred_at`` (one path or several, the first present wins) and
  ``created_at`` (the instant of ``ticket.created``, if elsewhere); instants
  without an offset are read in ``timezone``;
* ``event``: the body's word for what happened, and ``events``: what each
  word means — a ticket event type, ``derive``, or ``ignore``. A word not in
  ``events`` is ignored (``untracked_event``); without ``event`` every
  delivery is ``derive``;
* ``previous.status`` / ``previous.priority``: the values before the change,
  when the sender includes them;
* ``delivery_id`` (a path) or ``delivery_header``: the sender's delivery id;
* ``fields.rating`` and ``rating_scale_max``: where a customer's satisfaction
  rating is and the best rating on its scale (5 for 1-5 stars). A word mapped
  to ``ticket.rated`` reads it: a number from 0 to ``rating_scale_max``
  (``values.rating`` may turn words into numbers, ``{good: "1", bad: "0"}``);
  no rating there is ignored (``irrelevant_change``), anything else refused.
  ``ticket.rated`` carries the ticket's id and the rating only; no other event
  carries a rating.

``derive`` reads the change from the statuses: with the previous status, a
change of status is resolved, closed, reopened or status_changed (see
``lifecycle``) and, the status unchanged, a change of priority is
priority_changed; without it, a status mapped to ``resolved`` or ``closed``
is that event. Anything else is ``ticket.updated``, carrying the ticket as
the body shows it (the SLA engine re-targets on a new priority and pauses on
a pending status).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slawatch_common.events import Ticket, TicketEventType
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised, PayloadError, ticket_event
from slawatch_ingest.sources.config import FieldName, SourceConfig, TicketMapping, event_type
from slawatch_ingest.sources.instants import instant
from slawatch_ingest.sources.lifecycle import DONE, lookup, priority_of, status_of, transition
from slawatch_ingest.sources.paths import find
from slawatch_ingest.sources.ratings import number_rating, rated_ticket
from slawatch_ingest.sources.tickets import build_ticket

DEFAULTS: dict[str, Any] = {}


def normalise(
    body: Mapping[str, Any], headers: Mapping[str, str], config: SourceConfig
) -> Normalised:
    """The ticket event one delivery means under ``config.mapping``."""
    mapping = config.mapping
    if mapping is None:
        raise PayloadError(f"the source {config.name!r} has no mapping")
    word = find(body, mapping.event) if mapping.event else None
    rule = lookup(mapping.events, word) if mapping.events and word is not None else "derive"
    if rule is None or rule == "ignore":
        how = "not mapped" if rule is None else "configured to be ignored"
        return Normalised.ignore(IgnoreReason.UNTRACKED_EVENT, f"the event {word!r} is {how}")
    paths: dict[FieldName, str] = {"id": mapping.ticket_id, **mapping.fields}
    ticket = build_ticket({}, config, body, paths=paths, values=mapping.values)
    type_ = event_type(rule) or derive(body, mapping, config, ticket)
    if type_ == "ticket.rated":
        rated = _rated(body, mapping, ticket)
        if rated is None:
            detail = f"no rating at {mapping.fields.get('rating')}"
            return Normalised.ignore(IgnoreReason.IRRELEVANT_CHANGE, detail)
        ticket = rated
    if type_ == "ticket.priority_changed" and ticket.priority is None:
        raw = find(body, mapping.fields.get("priority", "/priority"))
        detail = f"the priority {raw!r} is not in the priorities of {config.name!r}"
        return Normalised.ignore(IgnoreReason.UNMAPPED_VALUE, detail)
    at = _occurred_at(body, mapping, type_)
    delivery = _delivery(body, headers, mapping)
    return Normalised.of([ticket_event(config.name, type_, at, ticket, delivery=delivery)])


def derive(
    body: Any, mapping: TicketMapping, config: SourceConfig, ticket: Ticket
) -> TicketEventType:
    """The event type of an update, read from the status (and priority) before and after."""
    previous = mapping.previous
    before = status_of(find(body, previous.status), config.statuses) if previous.status else None
    if previous.status and before is not None and before != ticket.status:
        return transition(before, ticket.status)
    if previous.priority and ticket.priority is not None:
        earlier = priority_of(find(body, previous.priority), config.priorities)
        if earlier is not None and earlier != ticket.priority:
            return "ticket.priority_changed"
    if before is None and ticket.status in DONE:
        return transition(None, ticket.status)
    return "ticket.updated"


def _rated(body: Any, mapping: TicketMapping, ticket: Ticket) -> Ticket | None:
    """The ticket as ``ticket.rated`` carries it: its id and the rating; ``None``: no rating."""
    path, scale_max = mapping.fields.get("rating"), mapping.rating_scale_max
    if path is None or scale_max is None:  # the configuration refuses this; a safeguard
        raise PayloadError("ticket.rated needs fields.rating and rating_scale_max")
    raw = find(body, path)
    table = mapping.values.get("rating")
    if table and raw is not None and not isinstance(raw, dict | list | bool):
        raw = table.get(str(raw).strip(), raw)
    rating = number_rating(raw, scale_max, f"fields.rating ({path})")
    return None if rating is None else rated_ticket(ticket.id, rating)


def _occurred_at(body: Any, mapping: TicketMapping, type_: TicketEventType) -> datetime:
    paths = mapping.occurred_at
    if type_ == "ticket.created" and mapping.created_at:
        paths = (mapping.created_at, *paths)
    for path in paths:
        value = find(body, path)
        if value is None or value == "":
            continue
        try:
            return instant(value, zone=mapping.zone)
        except ValueError as exc:
            raise PayloadError(f"{path}: {exc}") from exc
    raise PayloadError(f"no instant at {' or '.join(paths)}")


def _delivery(body: Any, headers: Mapping[str, str], mapping: TicketMapping) -> str | None:
    if mapping.delivery_id:
        found = find(body, mapping.delivery_id)
        if found is not None and not isinstance(found, dict | list):
            return str(found)
    if mapping.delivery_header:
        return headers.get(mapping.delivery_header.lower())
    return None
