"""The customer's satisfaction rating (``Rating``) and ``ticket.rated``, which carries it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from slawatch_common.events import (
    EVENT_ADAPTER,
    INBOUND_ADAPTER,
    Rating,
    Ticket,
    TicketEvent,
)


def rated(rating: Any = None, type_: str = "ticket.rated", **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "OPS-42", **data}
    if rating is not None:
        body["rating"] = rating
    return {
        "event_id": "jira:d-1:rated",
        "type": type_,
        "occurred_at": "2026-11-27T09:12:00+08:00",
        "source": "jira",
        "data": body,
    }


@pytest.mark.parametrize(
    ("score", "scale_max"),
    [(1, 1), (0, 1), (4, 5), (4.5, 5), (0, 5), (5, 5), (10, 1e6), (1e6, 1e6)],
)
def test_a_score_from_zero_to_the_scale_max_is_a_rating(score: float, scale_max: float) -> None:
    rating = Rating(score=score, scale_max=scale_max)
    assert (rating.score, rating.scale_max) == (score, scale_max)
    assert isinstance(rating.score, float)


def test_a_score_above_the_scale_max_is_refused_naming_both() -> None:
    with pytest.raises(ValidationError) as raised:
        Rating(score=6, scale_max=5)
    [error] = raised.value.errors()
    assert error["type"] == "score_above_scale"
    assert error["msg"] == "score (6.0) is greater than scale_max (5.0)"


@pytest.mark.parametrize(
    ("fields", "where", "kind"),
    [
        ({"score": -1, "scale_max": 5}, "score", "greater_than_equal"),
        ({"score": -0.01, "scale_max": 5}, "score", "greater_than_equal"),
        ({"score": 0, "scale_max": 0}, "scale_max", "greater_than"),
        ({"score": 0, "scale_max": -5}, "scale_max", "greater_than"),
        ({"score": 1, "scale_max": 1_000_001}, "scale_max", "less_than_equal"),
        ({"score": math.nan, "scale_max": 5}, "score", "finite_number"),
        ({"score": math.inf, "scale_max": 5}, "score", "finite_number"),
        ({"score": 1, "scale_max": math.inf}, "scale_max", "finite_number"),
        ({"score": 1, "scale_max": math.nan}, "scale_max", "finite_number"),
        ({"score": "4", "scale_max": 5}, "score", "float_type"),
        ({"score": True, "scale_max": 5}, "score", "float_type"),
        ({"score": 1, "scale_max": 5, "comment": "great"}, "comment", "extra_forbidden"),
        ({"score": 1}, "scale_max", "missing"),
    ],
)
def test_out_of_range_or_not_a_number_is_refused(
    fields: dict[str, Any], where: str, kind: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Rating.model_validate(fields)
    assert [(e["loc"], e["type"]) for e in raised.value.errors()] == [((where,), kind)]


def test_ticket_rated_carries_its_rating_through_json() -> None:
    event = EVENT_ADAPTER.validate_python(rated({"score": 4, "scale_max": 5}))
    assert isinstance(event, TicketEvent)
    assert event.type == "ticket.rated"
    assert event.data.rating == Rating(score=4, scale_max=5)
    assert event.key == "jira:OPS-42"
    again = INBOUND_ADAPTER.validate_json(event.model_dump_json(exclude_none=True))
    assert again == event
    assert json.loads(event.model_dump_json(exclude_none=True))["data"] == {
        "id": "OPS-42",
        "rating": {"score": 4.0, "scale_max": 5.0},
    }


@pytest.mark.parametrize("missing", [None, {"rating": None}])
def test_ticket_rated_without_a_rating_is_refused_naming_data_rating(
    missing: dict[str, Any] | None,
) -> None:
    event = rated(**(missing or {}))
    with pytest.raises(ValidationError) as raised:
        TicketEvent.model_validate(event)
    [error] = raised.value.errors()
    assert (error["loc"], error["type"]) == (("data",), "rating_missing")
    assert "data.rating" in error["msg"]


@pytest.mark.parametrize(
    "type_", ["ticket.created", "ticket.updated", "ticket.closed", "ticket.responded"]
)
def test_other_types_carrying_a_rating_are_refused_naming_data_rating(type_: str) -> None:
    with pytest.raises(ValidationError) as raised:
        TicketEvent.model_validate(rated({"score": 1, "scale_max": 1}, type_=type_))
    [error] = raised.value.errors()
    assert (error["loc"], error["type"]) == (("data",), "rating_unexpected")
    assert error["msg"] == f"data.rating is carried by ticket.rated only, not by {type_}"


def test_a_bad_rating_on_ticket_rated_is_located_under_data_rating() -> None:
    with pytest.raises(ValidationError) as raised:
        INBOUND_ADAPTER.validate_python(rated({"score": 9, "scale_max": 5}))
    [error] = raised.value.errors()
    assert error["loc"][-2:] == ("data", "rating")
    assert error["msg"] == "score (9.0) is greater than scale_max (5.0)"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_scores_are_refused(literal: str) -> None:
    text = json.dumps(rated({"score": 1, "scale_max": 5})).replace(
        '"score": 1', f'"score": {literal}'
    )
    assert literal in text
    with pytest.raises(ValidationError):
        INBOUND_ADAPTER.validate_json(text)


def test_a_ticket_on_its_own_may_hold_a_rating() -> None:
    """A stored snapshot of a ticket keeps its last rating; only events restrict where it goes."""
    ticket = Ticket.model_validate(
        {"id": "1", "status": "closed", "rating": {"score": 0, "scale_max": 1}}
    )
    assert ticket.rating == Rating(score=0, scale_max=1)
