"""The body → events step, without HTTP or Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.harness import alert, event
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_ingest.parsing import (
    MAX_EVENT_BYTES,
    NDJSON,
    InvalidEventsError,
    MalformedBodyError,
    UnsupportedMediaTypeError,
    media_type,
    read_items,
    validate_items,
)


def parse(body: str | bytes, content_type: str | None = "application/json") -> list[Any]:
    raw = body.encode() if isinstance(body, str) else body
    return validate_items(read_items(raw, content_type))


def errors_of(body: str, content_type: str = "application/json") -> list[dict[str, Any]]:
    with pytest.raises(InvalidEventsError) as caught:
        parse(body, content_type)
    return caught.value.errors


def test_a_single_object_is_one_event() -> None:
    [parsed] = parse(json.dumps(event(7)))
    assert isinstance(parsed, TicketEvent)
    assert parsed.key == "jira:T-7"


def test_an_array_is_a_batch_in_order() -> None:
    parsed = parse(json.dumps([event(1), alert("db"), event(2)]))
    assert [type(e) for e in parsed] == [TicketEvent, MonitoringEvent, TicketEvent]
    assert [e.key for e in parsed] == ["jira:T-1", "db", "jira:T-2"]


def test_ndjson_is_one_event_per_line_and_blank_lines_are_skipped() -> None:
    body = f"\n{json.dumps(event(1))}\n   \n{json.dumps(alert())}\r\n\n"
    parsed = parse(body, NDJSON)
    assert [e.type for e in parsed] == ["ticket.created", "monitor.alert_firing"]


def test_ndjson_lines_split_on_newline_only() -> None:
    title = "line\u2028separator"  # legal unescaped inside a JSON string
    line = json.dumps(event(1, data={"id": "T-1", "title": title}), ensure_ascii=False)
    [parsed] = parse(line, NDJSON)
    assert parsed.data.title == title


def test_ndjson_items_know_their_batch_index_and_line() -> None:
    items = read_items(f"\n{json.dumps(event(1))}\n\n{json.dumps(event(2))}".encode(), NDJSON)
    assert [(item.loc, item.line) for item in items] == [((0,), 2), ((1,), 4)]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("Application/X-NDJSON", NDJSON),
    ],
)
def test_media_type_ignores_parameters_and_case(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


def test_json_suffix_types_are_json() -> None:
    assert len(parse(json.dumps(event()), "application/vnd.slawatch+json")) == 1


def test_other_content_types_are_refused() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        read_items(b"{}", "text/plain")


def test_malformed_json_names_line_and_column() -> None:
    with pytest.raises(MalformedBodyError, match=r"line 2 column 11: Expecting ',' delimiter"):
        read_items(b'[{"a": 1},\n {"b": 2} {"c": 3}]', "application/json")


def test_malformed_ndjson_names_the_physical_line() -> None:
    body = f"{json.dumps(event(1))}\n\n{{not json}}\n".encode()
    with pytest.raises(MalformedBodyError, match=r"line 3 column 2"):
        read_items(body, NDJSON)


def test_a_body_that_is_not_utf8_is_malformed() -> None:
    with pytest.raises(MalformedBodyError, match="offset 2"):
        read_items(b'{"\xff"}', "application/json")


def test_an_empty_batch_is_invalid() -> None:
    assert errors_of("[]")[0]["type"] == "empty_batch"
    assert errors_of("\n\n", NDJSON)[0]["type"] == "empty_batch"


def test_a_scalar_document_is_invalid() -> None:
    assert errors_of("42") == [
        {
            "loc": ["body"],
            "msg": "expected an event object or an array of events",
            "type": "body_type",
        }
    ]


def test_every_bad_field_of_every_item_is_reported_with_its_path() -> None:
    bad_ticket = event(2, data={"id": "T-2", "priority": "P9"})
    del bad_ticket["occurred_at"]
    body = json.dumps([event(1), bad_ticket, "not an object", {"type": "nope"}, {}])
    errors = errors_of(body)
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["body", 1, "occurred_at"], "missing"),
        (["body", 1, "data", "priority"], "enum"),
        (["body", 2], "model_attributes_type"),
        (["body", 3, "type"], "union_tag_invalid"),
        (["body", 4, "type"], "union_tag_not_found"),
    ]
    assert all(e["msg"] for e in errors)


def test_a_single_object_error_has_no_batch_index() -> None:
    assert [e["loc"] for e in errors_of(json.dumps(alert() | {"extra": 1}))] == [["body", "extra"]]


def test_ndjson_errors_carry_index_and_line() -> None:
    body = "\n".join(["", json.dumps(event(1)), "", json.dumps(event(2, source=""))])
    assert errors_of(body, NDJSON) == [
        {
            "loc": ["body", 1, "source"],
            "msg": "String should have at least 1 character",
            "type": "string_too_short",
            "line": 4,
        }
    ]


def test_an_event_too_large_to_produce_is_invalid() -> None:
    huge = alert() | {"data": alert()["data"] | {"labels": {"x": "y" * MAX_EVENT_BYTES}}}
    [error] = errors_of(json.dumps([huge]))
    assert (error["loc"], error["type"]) == (["body", 0], "event_too_large")
