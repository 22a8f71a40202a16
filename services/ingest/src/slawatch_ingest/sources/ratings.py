"""Customer satisfaction ratings, as sources write them, into ``Rating``.

A rating is a number on the source's scale (Jira Service Management's 1-5
stars, a generic body's 0-5) or a word (Zendesk's ``good``/``bad``). No
rating (absent, ``null``, an empty text; Zendesk's ``offered``/``unoffered``)
is ``None``: the delivery is ignored. A value that cannot be a rating (a
word where a number belongs, NaN, a score below 0 or above the scale) is a
``PayloadError`` naming where it was read: the sender is answered 422.

``ticket.rated`` events carry the ticket's id and its rating only: a rating
says nothing about the SLA clocks, so it changes none of the fields they
follow (status, priority).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from slawatch_common.events import Rating, Ticket
from slawatch_ingest.sources.canonical import PayloadError


def number_rating(value: Any, scale_max: float, where: str) -> Rating | None:
    """``value`` (a number, numeric text, or an object with a ``rating``) on 0…``scale_max``."""
    if isinstance(value, Mapping) and "rating" in value:  # Jira Service Management: {"rating": 4}
        value = value["rating"]
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    score = _number(value, where)
    if score < 0 or score > scale_max:
        raise PayloadError(f"{where}: the rating {_shown(value)} is outside 0 to {scale_max:g}")
    return Rating(score=score, scale_max=scale_max)


def word_rating(
    value: Any, words: Mapping[str, float | None], scale_max: float, where: str
) -> Rating | None:
    """The rating a word means by ``words`` (case-insensitive; ``None``: not a rating)."""
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().casefold() not in words:
        known = ", ".join(words)
        raise PayloadError(f"{where}: {_shown(value)} is not a rating (one of {known})")
    score = words[value.strip().casefold()]
    return None if score is None else Rating(score=score, scale_max=scale_max)


def rated_ticket(ticket_id: str, rating: Rating) -> Ticket:
    """What a ``ticket.rated`` event carries: the ticket's id and the rating, nothing else."""
    return Ticket(id=ticket_id, rating=rating)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{where}: the rating {_shown(value)} is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise PayloadError(f"{where}: the rating {_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise PayloadError(f"{where}: the rating {_shown(value)} is not a finite number")
    return number


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
