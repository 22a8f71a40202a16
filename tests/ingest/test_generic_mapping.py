"""The generic source: systems connected by configuration alone, and the built-in mappings.

The two configurations below are the ones services/ingest/README.md shows:
a ServiceNow business rule's body and a GLPI webhook with a custom payload,
each read by a ``kind: generic`` source — no code of their own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from slawatch_common.events import Rating, TicketEvent
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised, PayloadError
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.webhook_config import parse_sources

CONFIG = """
snow:
  kind: generic
  priorities: {"1": P1, "2": P2, "3": P3, "4": P4, "5": P5}
  statuses: {"1": new, "2": in_progress, "3": pending_customer, "6": resolved, "7": closed}
  mapping:
    ticket_id: /number
    event: /operation
    events: {insert: ticket.created, update: derive, comment: ticket.responded}
    occurred_at: /sys_updated_on
    created_at: /opened_at
    timezone: Asia/Shanghai
    delivery_id: /sys_mod_id
    previous: {status: /previous_state, priority: /previous_priority}
    fields:
      status: /state
      priority: /priority
      urgency: /urgency
      impact: /impact
      title: /short_description
      customer: /company
      service: /business_service
      group: /assignment_group
      assignee.id: /assigned_to/user_name
      assignee.name: /assigned_to/name
      assignee.email: /assigned_to/email
helpdesk:
  kind: generic
  signature_scheme: glpi        # X-GLPI-signature, as GLPI signs
  priorities: {"6": P1, "5": P1, "4": P2, "3": P3, "2": P4, "1": P5}
  statuses: {"4": pending_customer, "5": resolved, "6": closed}
  mapping:
    ticket_id: $.item.id
    event: $.event
    events: {new: ticket.created, update: derive, followup: ticket.responded}
    occurred_at: [$.item.date_mod, $.item.date_creation]
    created_at: $.item.date_creation
    fields:
      status: $.item.status.id
      priority: $.item.priority
      urgency: $.item.urgency
      impact: $.item.impact
      title: $.item.name
      type: $.item.type
      customer: $.item.entity.name
      assignee.id: $.item.team[?role == "assigned"].name
    values:
      type: {"1": incident, "2": service_request}
"""

SOURCES = parse_sources(yaml.safe_load(CONFIG), {})
README = Path(__file__).resolve().parents[2] / "services" / "ingest" / "README.md"

SNOW_BODY: dict[str, Any] = {
    "sys_id": "9d385017c611228701d22104cc95c371",
    "sys_mod_id": "9d385017c611228701d22104cc95c371-7",
    "number": "INC0010023",
    "operation": "update",
    "opened_at": "2026-11-26 09:02:03",
    "sys_updated_on": "2026-11-26 10:30:00",
    "state": "6",
    "previous_state": "2",
    "priority": "1",
    "previous_priority": "1",
    "urgency": "1",
    "impact": "1",
    "short_description": "Core switch down in building B",
    "company": "ACME",
    "business_service": "network",
    "assignment_group": "Network L2",
    "assigned_to": {"user_name": "jli", "name": "Jie Li", "email": "jie.li@example.com"},
}

GLPI_BODY: dict[str, Any] = {
    "event": "new",
    "external_id": "ext1234",
    "item": {
        "id": 42,
        "name": "Printer jams on floor 3",
        "type": 1,
        "status": {"id": 1, "name": "New"},
        "urgency": 4,
        "impact": 3,
        "priority": 4,
        "entity": {"id": 0, "name": "Root entity"},
        "date_creation": "2026-11-26T09:00:00+08:00",
        "date_mod": "2026-11-26T09:00:00+08:00",
        "team": [
            {"type": "User", "role": "requester", "name": "alice"},
            {"type": "User", "role": "assigned", "name": "tech1"},
        ],
    },
}


def run(source: str, body: Mapping[str, Any], sources: Any = SOURCES) -> Normalised:
    config = sources[source]
    return KINDS[config.kind].normalise(body, {}, config)


def ticket_events(outcome: Normalised) -> list[TicketEvent]:
    assert all(isinstance(event, TicketEvent) for event in outcome.events)
    return [event for event in outcome.events if isinstance(event, TicketEvent)]


def dumped(outcome: Normalised) -> list[Any]:
    return [event.model_dump(mode="json", exclude_none=True) for event in outcome.events]


def test_a_servicenow_business_rule_body_from_config_alone() -> None:
    assert dumped(run("snow", SNOW_BODY)) == [
        {
            "event_id": "snow:9d385017c611228701d22104cc95c371-7:resolved",
            "schema_version": 1,
            "type": "ticket.resolved",  # state 2 → 6
            "occurred_at": "2026-11-26T02:30:00Z",  # sys_updated_on, read in Asia/Shanghai
            "source": "snow",
            "data": {
                "id": "INC0010023",
                "priority": "P1",
                "status": "resolved",
                "customer": "ACME",
                "service": "network",
                "urgency": "1",
                "impact": "1",
                "title": "Core switch down in building B",
                "group": "Network L2",
                "assignee": {"id": "jli", "name": "Jie Li", "email": "jie.li@example.com"},
            },
        }
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"operation": "insert", "state": "1", "previous_state": None}, "ticket.created"),
        ({"state": "3"}, "ticket.status_changed"),
        ({"state": "2", "previous_state": "6"}, "ticket.reopened"),
        ({"state": "2", "previous_priority": "3"}, "ticket.priority_changed"),
        ({"state": "2"}, "ticket.updated"),
        ({"operation": "comment", "state": "2"}, "ticket.responded"),
    ],
)
def test_servicenow_style_changes(changes: dict[str, Any], expected: str) -> None:
    [event] = run("snow", SNOW_BODY | changes).events
    assert event.type == expected


def test_created_is_dated_by_the_opening() -> None:
    body = SNOW_BODY | {"operation": "insert", "previous_state": None}
    [event] = run("snow", body).events
    assert event.occurred_at.isoformat() == "2026-11-26T01:02:03+00:00"


def test_a_glpi_custom_template_body_from_config_alone() -> None:
    assert dumped(run("helpdesk", GLPI_BODY)) == [
        {
            # no delivery id in the body: a digest of source, ticket, change, instant, data
            "event_id": "helpdesk:e6b7cb92df9dbbd8cb9bd020c2e6046dd43c5803",
            "schema_version": 1,
            "type": "ticket.created",
            "occurred_at": "2026-11-26T01:00:00Z",
            "source": "helpdesk",
            "data": {
                "id": "42",
                "priority": "P2",  # 4: High
                "status": "1",  # not in the map: as GLPI sends it
                "customer": "Root entity",
                "type": "incident",
                "urgency": "4",
                "impact": "3",
                "title": "Printer jams on floor 3",
                "assignee": {"id": "tech1"},  # the JSONPath filter on the team
            },
        }
    ]


def test_glpi_style_pending_is_an_update_carrying_the_pause_status() -> None:
    body = copy.deepcopy(GLPI_BODY)
    body["event"] = "update"
    body["item"]["status"] = {"id": 4, "name": "Pending"}
    [event] = ticket_events(run("helpdesk", body))
    assert (event.type, event.data.status) == ("ticket.updated", "pending_customer")


def test_unmapped_and_ignored_event_words() -> None:
    unmapped = run("helpdesk", GLPI_BODY | {"event": "purge"})
    assert unmapped.summary == "the event 'purge' is not mapped"
    assert [i.reason for i in unmapped.ignored] == [IgnoreReason.UNTRACKED_EVENT]


def test_a_priority_change_to_an_unmapped_priority_is_ignored() -> None:
    outcome = run("snow", SNOW_BODY | {"state": "2", "priority": "9", "previous_priority": "1"})
    assert outcome.events[0].type == "ticket.updated"  # unknown before/after: no change seen
    sources = parse_sources(
        {
            "x": {
                "kind": "generic",
                "mapping": {
                    "ticket_id": "/id",
                    "occurred_at": "/at",
                    "event": "/e",
                    "events": {"p": "ticket.priority_changed"},
                },
            }
        },
        {},
    )
    ignored = run(
        "x", {"id": "1", "at": "2026-01-01T00:00:00Z", "e": "p", "priority": "9"}, sources
    )
    assert [i.reason for i in ignored.ignored] == [IgnoreReason.UNMAPPED_VALUE]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": None}, "the ticket's id is missing"),
        ({"sys_updated_on": "yesterday"}, "/sys_updated_on: 'yesterday' is not an ISO 8601 time"),
        ({"sys_updated_on": None}, "no instant at /sys_updated_on"),
    ],
)
def test_bodies_without_what_the_mapping_needs_are_malformed(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        run("snow", SNOW_BODY | changes)


def test_the_built_in_servicenow_mapping_reads_the_readme_business_rule() -> None:
    body = {
        "event": "update",
        "number": "INC0010024",
        "state": "3",
        "previous_state": "2",
        "priority": "2 - High",
        "short_description": "VPN slow",
        "sys_updated_on": "2026-11-26 10:30:00",
        "opened_at": "2026-11-26 09:00:00",
    }
    [event] = ticket_events(run("servicenow", body, parse_sources(None, {})))
    assert (event.type, event.data.status, event.data.priority) == (
        "ticket.status_changed",
        "pending_customer",  # On Hold
        "P2",
    )
    assert event.occurred_at.isoformat() == "2026-11-26T10:30:00+00:00"


def test_the_built_in_glpi_mapping_reads_glpi_s_default_payload() -> None:
    body = copy.deepcopy(GLPI_BODY)
    body["event"] = "update"
    body["item"]["status"] = {"id": 5, "name": "Solved"}
    body["item"]["category"] = {"id": 3, "name": "Printers"}
    [event] = run("glpi", body, parse_sources(None, {})).events
    data = event.model_dump(mode="json", exclude_none=True)["data"]
    assert (event.type, data) == (
        "ticket.resolved",
        {
            "id": "42",
            "priority": "P2",
            "status": "resolved",
            "customer": "Root entity",
            "service": "Printers",
            "type": "incident",
            "urgency": "4",
            "impact": "3",
            "title": "Printer jams on floor 3",
        },
    )


def test_the_readme_shows_this_configuration() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    shown = [yaml.safe_load(block) for block in blocks]
    assert {"ingest": {"sources": yaml.safe_load(CONFIG)}} in shown


# --- customer satisfaction ----------------------------------------------------

RATING_CONFIG = """
survey:
  kind: generic
  mapping:
    ticket_id: /ticket/id
    event: /event
    events: {created: ticket.created, updated: derive, rated: ticket.rated}
    occurred_at: /at
    fields: {status: /ticket/status, rating: /ticket/csat}
    rating_scale_max: 5
thumbs:
  kind: generic
  mapping:
    ticket_id: /id
    event: /kind
    events: {csat: ticket.rated}
    occurred_at: /at
    fields: {rating: /thumb}
    rating_scale_max: 1
    values: {rating: {up: "1", down: "0"}}
"""

RATING_SOURCES = parse_sources(yaml.safe_load(RATING_CONFIG), {})


def survey(csat: Any = None, event: str = "rated", **ticket: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": event,
        "at": "2026-11-27T09:12:00+08:00",
        "ticket": {"id": "T-9", "status": "closed", **ticket},
    }
    if csat is not None:
        body["ticket"]["csat"] = csat
    return body


@pytest.mark.parametrize(("csat", "score"), [(0, 0.0), (4, 4.0), ("4.5", 4.5), (5, 5.0)])
def test_a_word_mapped_to_rated_reads_the_rating_on_the_configured_scale(
    csat: Any, score: float
) -> None:
    [event] = run("survey", survey(csat), RATING_SOURCES).events
    data = event.model_dump(mode="json", exclude_none=True)
    assert event.event_id.startswith("survey:")
    assert (data["type"], data["occurred_at"], data["data"]) == (
        "ticket.rated",
        "2026-11-27T01:12:00Z",
        # the id and the rating only: the status the body shows is not carried
        {"id": "T-9", "rating": {"score": score, "scale_max": 5.0}},
    )


def test_values_turn_rating_words_into_numbers() -> None:
    def rating(thumb: str) -> Any:
        body = {"id": "T-1", "kind": "csat", "at": "2026-11-27T01:00:00Z", "thumb": thumb}
        [event] = ticket_events(run("thumbs", body, RATING_SOURCES))
        return event.data.rating

    assert (rating("up"), rating("down")) == (
        Rating(score=1, scale_max=1),
        Rating(score=0, scale_max=1),
    )
    with pytest.raises(PayloadError, match=r"fields\.rating \(/thumb\): the rating 'sideways'"):
        rating("sideways")


@pytest.mark.parametrize("csat", [None, "", "  "])
def test_no_rating_where_the_mapping_says_is_ignored(csat: Any) -> None:
    body = survey()
    if csat is not None:
        body["ticket"]["csat"] = csat
    outcome = run("survey", body, RATING_SOURCES)
    assert (outcome.events, outcome.summary) == ((), "no rating at /ticket/csat")
    assert [i.reason for i in outcome.ignored] == [IgnoreReason.IRRELEVANT_CHANGE]


@pytest.mark.parametrize(
    ("csat", "says"),
    [
        (6, "the rating 6 is outside 0 to 5"),
        (-1, "the rating -1 is outside 0 to 5"),
        ("5.01", "the rating '5.01' is outside 0 to 5"),
        ("excellent", "the rating 'excellent' is not a number"),
        (True, "the rating True is not a number"),
        ({"stars": 4}, "the rating {'stars': 4} is not a number"),
        (float("inf"), "the rating inf is not a finite number"),
        ("NaN", "the rating 'NaN' is not a finite number"),
    ],
)
def test_a_rating_that_is_not_one_is_malformed_naming_the_field(csat: Any, says: str) -> None:
    with pytest.raises(PayloadError) as raised:
        run("survey", survey(csat), RATING_SOURCES)
    assert str(raised.value) == f"fields.rating (/ticket/csat): {says}"


@pytest.mark.parametrize(
    ("event", "expected"), [("created", "ticket.created"), ("updated", "ticket.closed")]
)
def test_other_events_of_a_rated_ticket_carry_no_rating(event: str, expected: str) -> None:
    [outcome] = ticket_events(run("survey", survey(4, event=event), RATING_SOURCES))
    assert (outcome.type, outcome.data.status, outcome.data.rating) == (expected, "closed", None)


def test_the_readme_shows_the_rating_configuration() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    shown = [yaml.safe_load(block) for block in blocks]
    assert {"ingest": {"sources": yaml.safe_load(RATING_CONFIG)}} in shown
