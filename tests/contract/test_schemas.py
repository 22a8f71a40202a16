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


def test_every_topic_has_a_contract_file() -> None:
    names = {yaml.safe_load(p.read_text())["topic"] for p in SCHEMAS.glob("topics/*.yaml")}
    assert names == set(Topics().all())
    for path in SCHEMAS.glob("topics/*.yaml"):
        contract = yaml.safe_load(path.read_text())
        assert {"owner", "key", "schema", "producers", "consumers"} <= contract.keys()
        assert (SCHEMAS / contract["schema"]).is_file()
