"""A ``Ticket`` from what a source says about it, after the source's maps and paths.

A normaliser gathers the source's raw values under canonical names (``status``
as the source names it, ``priority`` likewise, ``assignee.email``, …); the
source's configured ``fields`` paths then override or add values read from the
body; finally statuses and priorities go through the source's maps and text is
cut to the contract's limits. Optional values that cannot be represented (an
e-mail address that is not one) are left out rather than refusing the delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from slawatch_common.events import Person, Ticket
from slawatch_ingest.sources.canonical import PayloadError
from slawatch_ingest.sources.config import FieldName, SourceConfig
from slawatch_ingest.sources.lifecycle import priority_of, status_of
from slawatch_ingest.sources.paths import find

MAX_NAME = 500
MAX_IDENTIFIER = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{3,32}$")
_PLAIN = ("customer", "service", "type", "urgency", "impact", "group")


def build_ticket(
    raw: Mapping[str, Any],
    config: SourceConfig,
    body: Any,
    paths: Mapping[FieldName, str] | None = None,
    values: Mapping[FieldName, Mapping[str, str]] | None = None,
) -> Ticket:
    """The ticket ``raw`` describes, with ``paths`` (default: ``config.fields``) read from ``body``.

    ``values`` maps raw values of other fields (``type: {"1": incident}``).
    Raises ``PayloadError`` when the ticket has no usable id.
    """
    merged: dict[str, Any] = dict(raw)
    for name, path in (config.fields if paths is None else paths).items():
        if name == "rating":  # read by the sources that make ticket.rated (see ``ratings``)
            continue
        found = find(body, path)
        if found is not None:
            merged[name] = found
    for name, table in (values or {}).items():
        if merged.get(name) is not None:
            merged[name] = table.get(_text(merged[name]) or "", merged[name])
    return Ticket(
        id=_identifier(merged.get("id")),
        priority=priority_of(merged.get("priority"), config.priorities),
        status=_limited(status_of(merged.get("status"), config.statuses), MAX_IDENTIFIER),
        title=_limited(_text(merged.get("title")), MAX_NAME),
        assignee=_person(merged),
        **{name: _limited(_text(merged.get(name)), MAX_IDENTIFIER) for name in _PLAIN},
    )


def _identifier(value: Any) -> str:
    text = _text(value)
    if text is None:
        raise PayloadError("the ticket's id is missing")
    if len(text) > MAX_IDENTIFIER:
        raise PayloadError(f"the ticket's id is longer than {MAX_IDENTIFIER} characters")
    return text


def _person(values: Mapping[str, Any]) -> Person | None:
    person_id = _limited(_text(values.get("assignee.id")), MAX_IDENTIFIER)
    if person_id is None:
        return None
    email = _text(values.get("assignee.email"))
    phone = _text(values.get("assignee.phone"))
    return Person(
        id=person_id,
        name=_limited(_text(values.get("assignee.name")), MAX_NAME),
        email=email if email and len(email) <= 320 and _EMAIL.match(email) else None,
        phone=phone if phone and _PHONE.match(phone) else None,
    )


def _text(value: Any) -> str | None:
    """A scalar as trimmed text; ``None`` for absence, blanks and non-scalars."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def _limited(text: str | None, limit: int) -> str | None:
    return text[:limit] if text is not None else None
