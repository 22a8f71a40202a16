"""From a request body to validated canonical events: pure, no I/O.

The body comes in one of three encodings:

* a JSON object: one event;
* a JSON array of objects: a batch;
* NDJSON (``application/x-ndjson``): one event per line, blank lines ignored.

``read_items`` decodes the body into raw items, each remembering where it came
from; ``validate_items`` turns every item into an event or, if any is invalid,
raises ``InvalidEventsError`` listing every bad field of every item. A request is
all-or-nothing: callers publish only what ``validate_items`` returned. Both take
an optional ``check`` of what the contract cannot say (``window``: instants
outside the accepted window); its problems are errors like any other.

``valid_events`` is the fast path in front of those two: pydantic parses and
validates the body straight from bytes, and each event is encoded once (the
size check and the record value share that encoding). It answers only when
every event is valid; for any other body it returns ``None`` and the two steps
above decide, with the same errors as ever. Both accept the same bodies
(``tests/ingest/test_parsing.py`` holds them side by side): the fast path is
several times cheaper, which is most of a single event's validation cost.

Error locations follow FastAPI's shape, ``["body", <index>, <field>, ...]``:
the index is the event's position in the batch (absent for a single object)
and NDJSON errors also carry the 1-based ``line``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError

from slawatch_common.events import INBOUND_ADAPTER, InboundEvent, MonitoringEvent, TicketEvent

Inbound: TypeAlias = TicketEvent | MonitoringEvent
Loc: TypeAlias = tuple[str | int, ...]

NDJSON = "application/x-ndjson"
JSON_TYPES = ("application/json",)
MAX_EVENT_BYTES = 1_000_000
"""An event's serialized size limit: the producer refuses requests over 1 MiB."""
MAX_EVENTS = 1000
"""Events a request may carry by default (``SLAWATCH_MAX_EVENTS_PER_REQUEST``)."""
MAX_ERRORS = 100
"""Problems a 422 lists by default (``SLAWATCH_MAX_ERRORS_LISTED``)."""

_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


@functools.lru_cache(maxsize=8)
def _batch_adapter(max_events: int) -> TypeAdapter[list[Inbound]]:
    """Arrays of at most ``max_events`` events: validation stops at the one past it."""
    return TypeAdapter(Annotated[list[InboundEvent], Field(max_length=max_events)])


class BodyError(ValueError):
    """The body is refused; the subclass says why, ``str(error)`` says where."""


class BodyTooLargeError(BodyError):
    """The body exceeds the size limit."""


class MalformedBodyError(BodyError):
    """Not UTF-8 or not JSON; the message names the line and column."""


class UnsupportedMediaTypeError(BodyError):
    """A ``Content-Type`` that is neither JSON nor NDJSON."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a valid event is refused all the same: where in the event, the message, its type."""

    loc: Loc
    msg: str
    type: str


EventCheck: TypeAlias = Callable[[Inbound], Sequence[Problem]]
"""A check of valid events beyond their contract: an empty answer accepts the event."""


class InvalidEventsError(BodyError):
    """At least one item is not a valid event; ``errors`` lists every problem."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Item:
    """One decoded but unvalidated event and where it sits in the body."""

    value: Any
    loc: Loc
    line: int | None = None

    def error(self, msg: str, type_: str, loc: Loc = ()) -> dict[str, Any]:
        """An error entry in FastAPI's shape, located inside this item."""
        entry: dict[str, Any] = {"loc": ["body", *self.loc, *loc], "msg": msg, "type": type_}
        if self.line is not None:
            entry["line"] = self.line
        return entry


@dataclass(frozen=True, slots=True)
class Encoded:
    """A valid event and its record value, encoded once."""

    event: Inbound
    value: bytes

    @classmethod
    def of(cls, event: Inbound) -> Encoded:
        return cls(event, encode(event))


def encode(event: Inbound) -> bytes:
    """The record value: the event's canonical JSON, absent fields omitted."""
    return event.model_dump_json(exclude_none=True).encode()


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a ``Content-Type`` header; JSON if absent."""
    if not content_type:
        return JSON_TYPES[0]
    return content_type.split(";", 1)[0].strip().lower()


def read_items(body: bytes, content_type: str | None, max_events: int = MAX_EVENTS) -> list[Item]:
    """Decode ``body`` into items; an empty list is possible.

    Raises ``UnsupportedMediaTypeError`` or ``MalformedBodyError`` when the body
    cannot be read, ``InvalidEventsError`` when it is JSON but neither an
    object nor an array, or holds more than ``max_events`` items (none of
    them is validated then).
    """
    kind = _accepted_kind(content_type)
    text = _utf8(body)
    items = list(_ndjson_items(text)) if kind == NDJSON else _json_items(text)
    if len(items) > max_events:
        raise too_many_events(max_events, len(items))
    return items


def too_many_events(limit: int, count: int | None) -> InvalidEventsError:
    """The refusal of a request with more than ``limit`` events."""
    has = f"this one has {count}" if count is not None else "this one has more"
    return InvalidEventsError(
        [
            {
                "loc": ["body"],
                "msg": f"at most {limit} events a request; {has}: send them in several requests",
                "type": "too_many_events",
            }
        ]
    )


def valid_events(
    body: bytes,
    content_type: str | None,
    check: EventCheck | None = None,
    max_events: int = MAX_EVENTS,
) -> list[Encoded] | None:
    """Every event of ``body`` with its record value, if all are valid and pass ``check``.

    ``None`` means "ask ``read_items`` and ``validate_items``", which refuse the
    body with the reason (or, for the odd body that only Python's ``json``
    reads, such as an NDJSON line of Unicode spaces, accept it). Raises only
    ``InvalidEventsError`` for more than ``max_events`` events: counted before
    any is validated (NDJSON lines), or by the validator that stops there.
    """
    try:
        kind = _accepted_kind(content_type)
        if kind == NDJSON:
            lines = [line for line in body.split(b"\n") if line.strip()]
            if len(lines) > max_events:
                raise too_many_events(max_events, len(lines))
            events = [INBOUND_ADAPTER.validate_json(line) for line in lines]
        elif body.lstrip()[:1] == b"[":
            events = _batch_adapter(max_events).validate_json(body)
        else:
            events = [INBOUND_ADAPTER.validate_json(body)]
    except UnsupportedMediaTypeError:
        return None
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            if error["type"] == "too_long" and error["loc"] == ():
                raise too_many_events(
                    max_events, error.get("ctx", {}).get("actual_length")
                ) from None
        return None
    encoded = [Encoded.of(event) for event in events]
    if not encoded or any(len(item.value) > MAX_EVENT_BYTES for item in encoded):
        return None  # empty, or an event too large: validate_items says which
    if check is not None and any(check(item.event) for item in encoded):
        return None  # validate_items says which and where
    return encoded


def _accepted_kind(content_type: str | None) -> str:
    """``NDJSON`` or a JSON media type; ``UnsupportedMediaTypeError`` for any other."""
    kind = media_type(content_type)
    if kind == NDJSON or kind in JSON_TYPES or kind.endswith("+json"):
        return kind
    raise UnsupportedMediaTypeError(
        f"Content-Type {kind!r} is not accepted; send application/json or {NDJSON}"
    )


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBodyError(
            f"the body is not UTF-8: invalid byte at offset {exc.start}"
        ) from exc


def _json_items(text: str) -> list[Item]:
    document = _loads(text)
    if isinstance(document, list):
        return [Item(value, (index,)) for index, value in enumerate(document)]
    if isinstance(document, dict):
        return [Item(document, ())]
    raise InvalidEventsError(
        [Item(document, ()).error("expected an event object or an array of events", "body_type")]
    )


def _ndjson_items(text: str) -> Iterator[Item]:
    index = 0
    # Split on "\n" only: str.splitlines would also split on U+2028 and kin,
    # which JSON strings may hold unescaped. A "\r" left over is whitespace.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():  # blank lines (and a trailing newline) carry nothing
            continue
        yield Item(_loads(line, line=number), (index,), line=number)
        index += 1


def _loads(text: str, *, line: int | None = None) -> Any:
    """``json.loads``; for an NDJSON ``line`` the error names that line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno if line is None else line} column {exc.colno}"
        raise MalformedBodyError(f"malformed JSON at {where}: {exc.msg}") from exc


def validate_items(
    items: Sequence[Item], check: EventCheck | None = None, max_errors: int = MAX_ERRORS
) -> list[Inbound]:
    """Every item as a validated event, in order, or ``InvalidEventsError`` with its errors:
    every one, up to ``max_errors`` (then validation stops and a last entry says so).

    An empty batch is invalid: a client that sends nothing has made a mistake.
    A valid event's ``check`` problems are errors located in its item.
    """
    if not items:
        raise InvalidEventsError(
            [{"loc": ["body"], "msg": "the batch holds no events", "type": "empty_batch"}]
        )
    events: list[Inbound] = []
    errors: list[dict[str, Any]] = []
    stopped = False
    for item in items:
        if len(errors) >= max_errors:
            stopped = True
            break
        try:
            event = INBOUND_ADAPTER.validate_python(item.value)
        except ValidationError as exc:
            errors.extend(_located(item, exc))
            continue
        size_error = _size_error(item, event)
        if size_error is not None:
            errors.append(size_error)
        if check is not None:
            errors.extend(item.error(p.msg, p.type, p.loc) for p in check(event))
        events.append(event)
    if stopped or len(errors) > max_errors:
        errors = errors[:max_errors]
        errors.append(
            {
                "loc": ["body"],
                "msg": f"validation stopped after {max_errors} problems",
                "type": "too_many_errors",
            }
        )
    if errors:
        raise InvalidEventsError(errors)
    return events


def _located(item: Item, exc: ValidationError) -> Iterator[dict[str, Any]]:
    tag = item.value.get("type") if isinstance(item.value, dict) else None
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc: Loc = tuple(error["loc"])
        if error["type"] in _TAG_ERRORS:
            loc = ("type",)  # pydantic reports these at the root; the culprit is ``type``
        elif loc and loc[0] == tag:
            loc = loc[1:]  # pydantic prefixes the discriminator's value; clients never wrote it
        yield item.error(error["msg"], error["type"], loc)


def _size_error(item: Item, event: Inbound) -> dict[str, Any] | None:
    size = len(encode(event))
    if size <= MAX_EVENT_BYTES:
        return None
    return item.error(f"the event is {size} bytes; at most {MAX_EVENT_BYTES}", "event_too_large")
