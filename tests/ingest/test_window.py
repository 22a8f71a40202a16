"""The window of accepted instants, without HTTP or Kafka: a fixed ``now``, real events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.harness import alert, event
from slawatch_common.events import INBOUND_ADAPTER, MonitoringEvent, TicketEvent
from slawatch_ingest.parsing import (
    NDJSON,
    Inbound,
    InvalidEventsError,
    read_items,
    valid_events,
    validate_items,
)
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.window import INSTANT_PATHS, InstantWindow, OutOfWindow

NOW = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
WINDOW = InstantWindow(datetime(2000, 1, 1, tzinfo=UTC), 3600.0)  # the defaults
BOUNDS = WINDOW.at(NOW)


def ticket_at(occurred_at: str) -> Inbound:
    return INBOUND_ADAPTER.validate_python(event(occurred_at=occurred_at))


def alert_at(**instants: str) -> Inbound:
    body = alert()
    body["data"] |= instants
    return INBOUND_ADAPTER.validate_python(body)


def test_every_instant_field_of_the_inbound_contracts_is_checked() -> None:
    assert dict(INSTANT_PATHS) == {
        TicketEvent: (("occurred_at",),),
        MonitoringEvent: (("occurred_at",), ("data", "starts_at"), ("data", "ends_at")),
    }


def test_the_bounds_at_an_instant() -> None:
    assert (BOUNDS.earliest, BOUNDS.latest) == (WINDOW.earliest, NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2000-01-01T00:00:00Z",
        "2000-01-01T01:00:00+01:00",  # the same instant
        "2026-11-26T09:00:00Z",  # exactly an hour ahead
        "2026-11-26T08:59:00Z",
        "2026-11-26T08:00:00Z",
        "2026-11-26T22:00:00+14:00",
    ],
)
def test_instants_inside_the_window_pass(occurred_at: str) -> None:
    assert BOUNDS.problems(ticket_at(occurred_at)) == []


@pytest.mark.parametrize(
    ("occurred_at", "reason", "says"),
    [
        (
            "1999-12-31T23:59:59Z",
            OutOfWindow.TOO_EARLY,
            "1999-12-31T23:59:59+00:00 is before 2000-01-01T00:00:00+00:00,"
            " the earliest instant accepted",
        ),
        ("2000-01-01T00:30:00+01:00", OutOfWindow.TOO_EARLY, "2000-01-01T00:30:00+01:00 is before"),
        ("0001-01-01T00:00:00Z", OutOfWindow.TOO_EARLY, "is before"),
        # No UTC form in datetime's range: the year 0 and the year 10000 in UTC.
        ("0001-01-01T00:00:00+14:00", OutOfWindow.TOO_EARLY, "is before"),
        ("9999-12-31T23:59:59-14:00", OutOfWindow.TOO_FAR_AHEAD, "s ahead of the server's clock"),
        ("9999-12-31T23:59:59.999999Z", OutOfWindow.TOO_FAR_AHEAD, "s ahead"),
        (
            "2026-11-26T09:00:00.000001Z",
            OutOfWindow.TOO_FAR_AHEAD,
            "2026-11-26T09:00:00.000001+00:00 is 3600 s ahead of the server's clock;"
            " at most 3600 s ahead is accepted",
        ),
        ("2026-11-26T09:01:00Z", OutOfWindow.TOO_FAR_AHEAD, "is 3660 s ahead"),
    ],
)
def test_instants_outside_the_window_are_named_with_the_reason(
    occurred_at: str, reason: OutOfWindow, says: str
) -> None:
    [problem] = BOUNDS.problems(ticket_at(occurred_at))
    assert (problem.loc, problem.type) == (("occurred_at",), reason)
    assert says in problem.msg


def test_an_alert_s_own_instants_are_checked_too() -> None:
    inside = alert_at(starts_at="2026-11-26T07:00:00Z", ends_at="2026-11-26T07:30:00Z")
    outside = alert_at(starts_at="1970-01-01T00:00:00Z", ends_at="2999-01-01T00:00:00Z")

    assert BOUNDS.problems(inside) == []
    assert [(p.loc, p.type) for p in BOUNDS.problems(outside)] == [
        (("data", "starts_at"), OutOfWindow.TOO_EARLY),
        (("data", "ends_at"), OutOfWindow.TOO_FAR_AHEAD),
    ]


def test_a_configured_window() -> None:
    settings = IngestSettings(earliest_instant="2026-01-01T00:00:00+01:00", max_future_s=60)
    bounds = InstantWindow.of(settings).at(NOW)

    assert bounds.problems(ticket_at("2025-12-31T23:00:00Z")) == []
    assert bounds.problems(ticket_at("2026-11-26T08:01:00Z")) == []
    assert [p.type for p in bounds.problems(ticket_at("2025-12-31T22:59:59Z"))] == ["too_early"]
    assert [p.type for p in bounds.problems(ticket_at("2026-11-26T08:01:01Z"))] == ["too_far_ahead"]


@pytest.mark.parametrize(
    ("occurred_at", "skew"),
    [
        ("2026-11-26T08:00:00Z", 0.0),
        ("2026-11-26T07:58:30Z", -90.0),
        ("2026-11-26T16:30:00+08:00", 1800.0),
        ("2000-01-01T00:00:00Z", -(NOW - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds()),
    ],
)
def test_the_skew_is_occurred_at_minus_now(occurred_at: str, skew: float) -> None:
    assert BOUNDS.skew_s(ticket_at(occurred_at)) == skew


def errors_of(body: str, content_type: str = "application/json") -> list[dict[str, Any]]:
    with pytest.raises(InvalidEventsError) as caught:
        validate_items(read_items(body.encode(), content_type), BOUNDS.problems)
    return caught.value.errors


def test_an_instant_out_of_the_window_is_an_error_located_like_any_other() -> None:
    batch = [event(1), event(2, occurred_at="1999-12-31T23:59:59Z", data={"priority": "P9"})]
    ndjson = "\n".join(json.dumps(e) for e in [event(1), event(2, occurred_at="9999-01-01T00:00Z")])

    assert [(e["loc"], e["type"]) for e in errors_of(json.dumps(batch))] == [
        (["body", 1, "data", "id"], "missing"),  # not valid: its instants are not checked
        (["body", 1, "data", "priority"], "enum"),
    ]
    batch[1]["data"] = {"id": "T-2"}
    assert [(e["loc"], e["type"]) for e in errors_of(json.dumps(batch))] == [
        (["body", 1, "occurred_at"], "too_early")
    ]
    [error] = errors_of(json.dumps(alert() | {"occurred_at": "1999-01-01T00:00:00Z"}))
    assert (error["loc"], error["type"]) == (["body", "occurred_at"], "too_early")
    [error] = errors_of(f"\n{ndjson}", NDJSON)
    assert (error["loc"], error["line"], error["type"]) == (
        ["body", 1, "occurred_at"],
        3,
        "too_far_ahead",
    )


def test_the_fast_path_leaves_an_instant_out_of_the_window_to_the_exact_path() -> None:
    inside = json.dumps([event(1), alert()]).encode()
    outside = json.dumps([event(1), event(2, occurred_at="0001-01-01T00:00:00Z")]).encode()

    assert valid_events(inside, None, BOUNDS.problems) is not None
    assert valid_events(outside, None) is not None  # without a window: any instant
    assert valid_events(outside, None, BOUNDS.problems) is None
