"""The body → events step, without HTTP or Kafka."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fuzzing import mutated
from ingest.harness import alert, event
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_ingest.parsing import (
    MAX_EVENT_BYTES,
    NDJSON,
    BodyError,
    Encoded,
    InvalidEventsError,
    MalformedBodyError,
    UnsupportedMediaTypeError,
    encode,
    media_type,
    read_items,
    valid_events,
    validate_items,
)
from support.fuzz import examples


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


# valid_events (the fast path) beside read_items + validate_items (the exact one):
# whatever the fast path accepts, the exact one accepts with the same events.
ONE = json.dumps(event(1))
ACCEPTED_BY_BOTH = {
    "object": (ONE, "application/json"),
    "no content type": (ONE, None),
    "array": (json.dumps([event(1), alert(), event(2)]), "application/json"),
    "array after whitespace": ("\n  " + json.dumps([event(1)]), "application/json"),
    "+json type": (ONE, "application/vnd.slawatch+json"),
    "ndjson": (f"\n{ONE}\r\n\n{json.dumps(alert())}\n", NDJSON),
    "a repeated key: the last wins": (ONE[:-1] + ', "source": "zammad"}', "application/json"),
    "schema_version 1.0": (json.dumps(event(1, schema_version=1.0)), "application/json"),
    "unicode": (
        json.dumps(event(1, data={"id": "工单-1", "title": "é\u2028"}), ensure_ascii=False),
        None,
    ),
}
REFUSED_BY_THE_FAST_PATH = {
    "empty array": ("[]", "application/json"),
    "blank ndjson": ("\n \n", NDJSON),
    "scalar": ("42", "application/json"),
    "malformed": ('[{"a": 1} {"b": 2}]', "application/json"),
    "invalid field": (json.dumps(event(1, source="")), "application/json"),
    "one invalid in a batch": (json.dumps([event(1), {"type": "nope"}]), "application/json"),
    "not UTF-8": ('{"\xff"}', "application/json"),
    "lone surrogate": (ONE.replace("T-1", "\\ud800"), "application/json"),
    "other media type": (ONE, "text/plain"),
    "too large": (
        json.dumps(
            [alert() | {"data": alert()["data"] | {"labels": {"x": "y" * MAX_EVENT_BYTES}}}]
        ),
        "application/json",
    ),
}


@pytest.mark.parametrize(("body", "content_type"), ACCEPTED_BY_BOTH.values(), ids=ACCEPTED_BY_BOTH)
def test_the_fast_path_accepts_what_the_exact_path_accepts(
    body: str, content_type: str | None
) -> None:
    raw = body.encode()
    fast = valid_events(raw, content_type)
    exact = validate_items(read_items(raw, content_type))
    assert fast is not None
    assert [item.event for item in fast] == exact
    assert [item.value for item in fast] == [encode(e) for e in exact]


@pytest.mark.parametrize(
    ("body", "content_type"), REFUSED_BY_THE_FAST_PATH.values(), ids=REFUSED_BY_THE_FAST_PATH
)
def test_the_fast_path_leaves_every_refusal_to_the_exact_path(
    body: str, content_type: str | None
) -> None:
    raw = body.encode("latin-1") if "\xff" in body else body.encode()
    assert valid_events(raw, content_type) is None
    with pytest.raises(BodyError):
        validate_items(read_items(raw, content_type))


def test_a_line_only_python_calls_blank_is_left_to_the_exact_path() -> None:
    body = f"{ONE}\n\u00a0\n".encode()  # NO-BREAK SPACE: blank to str.strip, not to bytes.strip
    assert valid_events(body, NDJSON) is None
    assert len(validate_items(read_items(body, NDJSON))) == 1


def exact_path(body: bytes, content_type: str) -> list[Encoded] | None:
    try:
        return [Encoded.of(e) for e in validate_items(read_items(body, content_type))]
    except BodyError:
        return None


@settings(max_examples=examples(short=200, long=5_000), deadline=None)
@given(
    batch=st.lists(
        mutated(event(1)) | mutated(alert()) | st.just(event(2)), min_size=1, max_size=3
    ),
    encoding=st.sampled_from(["object", "array", "ndjson"]),
)
def test_the_fast_path_never_accepts_what_the_exact_path_refuses(
    batch: list[dict[str, Any]], encoding: str
) -> None:
    if encoding == "object":
        body, content_type = json.dumps(batch[0]), "application/json"
    elif encoding == "array":
        body, content_type = json.dumps(batch), "application/json"
    else:
        body, content_type = "\n".join(json.dumps(item) for item in batch), NDJSON
    fast = valid_events(body.encode(), content_type)
    if fast is not None:
        assert fast == exact_path(body.encode(), content_type)
