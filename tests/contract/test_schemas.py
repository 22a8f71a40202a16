"""The files in schemas/ are the contract: models and files agree, examples validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from slawatch_common.events import CONTRACTS, EVENT_ADAPTER
from slawatch_common.schemagen import render
from slawatch_common.topics import Topics

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = sorted(SCHEMAS.glob("examples/*/*.json"))


@pytest.mark.parametrize("stem", sorted(CONTRACTS))
def test_schema_file_matches_the_model(stem: str) -> None:
    committed = (SCHEMAS / f"{stem}.schema.json").read_text(encoding="utf-8")
    assert committed == render(stem), f"schemas/{stem}.schema.json is stale: run `make schemas`"


@pytest.mark.parametrize("stem", sorted(CONTRACTS))
def test_schema_file_is_valid_2020_12(stem: str) -> None:
    schema = json.loads((SCHEMAS / f"{stem}.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_contract_has_examples() -> None:
    assert {path.parent.name for path in EXAMPLES} == set(CONTRACTS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_validates_against_file_and_model(path: Path) -> None:
    example = json.loads(path.read_text(encoding="utf-8"))
    schema = json.loads((SCHEMAS / f"{path.parent.name}.schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(example)]
    assert errors == []
    event = EVENT_ADAPTER.validate_python(example)
    assert isinstance(event, CONTRACTS[path.parent.name])
    # the model's own output is valid under the file too (round trip)
    dumped = json.loads(event.model_dump_json(exclude_none=True))
    assert list(Draft202012Validator(schema).iter_errors(dumped)) == []


def test_schema_rejects_what_the_model_rejects() -> None:
    schema = json.loads((SCHEMAS / "ticket-event.schema.json").read_text(encoding="utf-8"))
    bad = {
        "event_id": "x",
        "type": "ticket.created",
        "occurred_at": "2026-11-26T00:00:00Z",
        "source": "jira",
        "data": {"id": "1", "priority": "P9"},
    }
    assert not Draft202012Validator(schema).is_valid(bad)
    with pytest.raises(ValueError, match="priority"):
        EVENT_ADAPTER.validate_python(bad)


def _ticket_event(type_: str, **data: object) -> dict[str, object]:
    return {
        "event_id": "x",
        "type": type_,
        "occurred_at": "2026-11-26T00:00:00Z",
        "source": "zendesk",
        "data": {"id": "1", **data},
    }


GOOD = {"score": 1, "scale_max": 1}


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (_ticket_event("ticket.rated"), "ticket.rated event needs data.rating"),
        (_ticket_event("ticket.rated", rating=None), "ticket.rated event needs data.rating"),
        (
            _ticket_event("ticket.closed", rating=GOOD),
            "data.rating is carried by ticket.rated only, not by ticket.closed",
        ),
        (_ticket_event("ticket.rated", rating={"score": -1, "scale_max": 5}), "score"),
        (_ticket_event("ticket.rated", rating={"score": 1, "scale_max": 0}), "scale_max"),
        (_ticket_event("ticket.rated", rating={"score": 1, "scale_max": 2e6}), "scale_max"),
        (_ticket_event("ticket.rated", rating={"score": 1}), "scale_max"),
    ],
)
def test_schema_and_model_agree_where_a_rating_belongs(event: dict[str, object], says: str) -> None:
    schema = json.loads((SCHEMAS / "ticket-event.schema.json").read_text(encoding="utf-8"))
    assert not Draft202012Validator(schema).is_valid(event)
    with pytest.raises(ValueError, match=says):
        EVENT_ADAPTER.validate_python(event)


def test_a_rating_on_ticket_rated_and_none_elsewhere_is_valid_in_both() -> None:
    schema = json.loads((SCHEMAS / "ticket-event.schema.json").read_text(encoding="utf-8"))
    for event in (
        _ticket_event("ticket.rated", rating={"score": 0, "scale_max": 1}),
        _ticket_event("ticket.rated", rating={"score": 4.5, "scale_max": 5}),
        _ticket_event("ticket.closed"),
        _ticket_event("ticket.closed", rating=None),
    ):
        assert list(Draft202012Validator(schema).iter_errors(event)) == []
        EVENT_ADAPTER.validate_python(event)


def test_a_score_above_the_scale_is_refused_by_the_model() -> None:
    """JSON Schema cannot compare two fields: the model alone refuses score > scale_max."""
    event = _ticket_event("ticket.rated", rating={"score": 6, "scale_max": 5})
    with pytest.raises(ValueError, match=r"score \(6.0\) is greater than scale_max \(5.0\)"):
        EVENT_ADAPTER.validate_python(event)


def test_every_topic_has_a_contract_file() -> None:
    names = {yaml.safe_load(p.read_text())["topic"] for p in SCHEMAS.glob("topics/*.yaml")}
    assert names == set(Topics().all())
    for path in SCHEMAS.glob("topics/*.yaml"):
        contract = yaml.safe_load(path.read_text())
        assert {"owner", "key", "schema", "producers", "consumers"} <= contract.keys()
        assert (SCHEMAS / contract["schema"]).is_file()
