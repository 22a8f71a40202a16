"""What each source's changes mean: the rules beyond the samples, on bodies derived from them.

Pure: normalisers only. Each case states the change and the event expected.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ingest.payloads import sample_json
from slawatch_common.events import MonitoringEvent, Rating, TicketEvent
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised, PayloadError
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.webhook_config import parse_sources

SOURCES = parse_sources(
    {
        "jira": {"fields": {"customer": "/issue/fields/customfield_10002/0/name"}},
        "zammad": {"triggers": {"slawatch: reopened": "ticket.reopened"}},
        # a Service Management site whose CSAT field is customfield_10031, named in Korean
        "jsm": {"kind": "jira", "fields": {"rating": "/issue/fields/customfield_10031"}},
    },
    {},
)


def run(
    source: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Normalised:
    config = SOURCES[source]
    return KINDS[config.kind].normalise(body, headers or {}, config)


def kinds(outcome: Normalised) -> list[tuple[str, str | None]]:
    """(type, status) of each event."""
    return [(e.type, getattr(e.data, "status", None)) for e in outcome.events]


def ticket_events(outcome: Normalised) -> list[TicketEvent]:
    assert all(isinstance(event, TicketEvent) for event in outcome.events)
    return [event for event in outcome.events if isinstance(event, TicketEvent)]


def reasons(outcome: Normalised) -> list[IgnoreReason]:
    return [ignored.reason for ignored in outcome.ignored]


# --- Jira -------------------------------------------------------------------


def jira_update(*items: dict[str, Any], status: str = "To Do") -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(sample_json("jira-issue_updated-fields_changelog.json"))
    body["changelog"]["items"] = list(items)
    body["issue"]["fields"]["status"]["name"] = status
    return body


def item(field: str, before: str | None, after: str | None) -> dict[str, Any]:
    return {"field": field, "fieldtype": "jira", "fromString": before, "toString": after}


@pytest.mark.parametrize(
    ("change", "now", "expected"),
    [
        (
            item("status", "In Progress", "Waiting for customer"),
            "Waiting for customer",
            ("ticket.status_changed", "pending_customer"),
        ),
        (
            item("status", "Waiting for customer", "In Progress"),
            "In Progress",
            ("ticket.status_changed", "In Progress"),
        ),
        (item("status", "Done", "To Do"), "To Do", ("ticket.reopened", "To Do")),
        (item("status", "Resolved", "Closed"), "Closed", ("ticket.closed", "closed")),
        (item("resolution", "Fixed", None), "To Do", ("ticket.reopened", "To Do")),
        (item("assignee", "admin", "jdoe"), "To Do", ("ticket.assigned", "To Do")),
    ],
)
def test_jira_changelog_items(
    change: dict[str, Any], now: str, expected: tuple[str, str | None]
) -> None:
    assert kinds(run("jira", jira_update(change, status=now))) == [expected]


def test_jira_urgency_change_carries_the_new_urgency() -> None:
    [event] = ticket_events(run("jira", jira_update(item("Urgency", "Low", "Critical"))))
    assert (event.type, event.data.urgency) == ("ticket.updated", "Critical")


def test_jira_update_of_nothing_relevant_is_ignored() -> None:
    outcome = run("jira", jira_update(item("summary", "a", "b"), item("labels", "", "x")))
    assert outcome.events == ()
    assert outcome.summary == "the jira update changed summary, labels: not relevant to SLAs"


def test_jira_fields_paths_add_to_the_ticket() -> None:
    body = jira_update(item("priority", "Major", "Blocker"))
    body["issue"]["fields"]["customfield_10002"] = [{"id": "7", "name": "ACME"}]
    [event] = ticket_events(run("jira", body))
    assert event.data.customer == "ACME"


def jira_comment(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(sample_json("jira-comment_created-cloud.json"))
    body["comment"].update(changes)
    return body


def test_jira_internal_comments_and_the_reporters_are_no_response() -> None:
    internal = run("jira", jira_comment(jsdPublic=False))
    restricted = run("jira", jira_comment(visibility={"type": "role", "value": "Developers"}))
    by_reporter = jira_comment()
    by_reporter["issue"]["fields"]["reporter"] = {
        "accountId": by_reporter["comment"]["author"]["accountId"]
    }
    assert [reasons(o) for o in (internal, restricted, run("jira", by_reporter))] == [
        [IgnoreReason.NOT_A_RESPONSE]
    ] * 3
    assert kinds(run("jira", jira_comment(jsdPublic=True))) == [("ticket.responded", "To Do")]


def test_jira_server_comment_inside_an_update_is_judged_as_a_comment() -> None:
    body = jira_update()
    del body["changelog"]
    body["comment"] = jira_comment()["comment"]
    outcome = run("jira", body)
    assert (kinds(outcome), outcome.ignored) == ([("ticket.responded", "To Do")], ())


def test_jira_untracked_events_and_bodies_without_an_issue() -> None:
    assert reasons(run("jira", {"webhookEvent": "worklog_created"})) == [
        IgnoreReason.UNTRACKED_EVENT
    ]
    with pytest.raises(PayloadError, match=r"issue\.key is missing"):
        run("jira", {"webhookEvent": "jira:issue_created", "issue": {}})
    with pytest.raises(PayloadError, match="webhookEvent is missing"):
        run("jira", {})


def satisfaction(name: str = "Satisfaction", field_id: str = "customfield_10031") -> dict[str, Any]:
    """The changelog item of Service Management's CSAT field, as a rating sets it."""
    return {"field": name, "fieldtype": "custom", "fieldId": field_id, "from": None, "to": None}


def jira_rated(value: Any, *items: dict[str, Any], field_id: str = "customfield_10031") -> Any:
    body = jira_update(*(items or (satisfaction(field_id=field_id),)))
    body["issue"]["fields"][field_id] = value
    return body


JIRA_DELIVERY = {"x-atlassian-webhook-identifier": "1736942400000-7"}


@pytest.mark.parametrize(
    ("value", "score"),
    [({"rating": 1}, 1.0), ({"rating": 4}, 4.0), ({"rating": 5}, 5.0), ({"rating": "3"}, 3.0)],
)
def test_jira_satisfaction_is_rated_on_a_scale_of_five(value: Any, score: float) -> None:
    [event] = ticket_events(run("jira", jira_rated(value), JIRA_DELIVERY))
    assert event.model_dump(mode="json", exclude_none=True) == {
        "event_id": "jira:1736942400000-7:rated",
        "schema_version": 1,
        "type": "ticket.rated",
        "occurred_at": "2016-01-14T23:01:40.356000Z",  # the update's timestamp
        "source": "jira",
        # the key and the rating only: nothing a clock follows
        "data": {"id": "TEST-11", "rating": {"score": score, "scale_max": 5.0}},
    }


def test_jira_rating_and_priority_in_one_update_are_two_events() -> None:
    body = jira_rated({"rating": 2}, satisfaction(), item("priority", "Major", "Blocker"))
    outcome = run("jira", body, JIRA_DELIVERY)
    assert [(e.type, e.event_id) for e in outcome.events] == [
        ("ticket.rated", "jira:1736942400000-7:rated"),
        ("ticket.priority_changed", "jira:1736942400000-7:priority_changed"),
    ]
    rated, changed = ticket_events(outcome)
    assert (rated.data.status, rated.data.priority, rated.data.rating) == (
        None,
        None,
        Rating(score=2, scale_max=5),
    )
    assert (changed.data.priority, changed.data.rating) == ("P1", None)


def test_jira_cleared_satisfaction_is_ignored_the_rest_kept() -> None:
    alone = run("jira", jira_rated(None))
    assert (alone.events, alone.summary) == ((), "the satisfaction rating was cleared")
    assert reasons(alone) == [IgnoreReason.IRRELEVANT_CHANGE]
    both = run("jira", jira_rated(None, satisfaction(), item("assignee", "a", "b")))
    assert [e.type for e in both.events] == ["ticket.assigned"]
    assert both.summary == "the satisfaction rating was cleared"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"rating": 6}, "the rating 6 is outside 0 to 5"),
        ({"rating": -1}, "the rating -1 is outside 0 to 5"),
        ({"rating": "five"}, "the rating 'five' is not a number"),
        ({"rating": True}, "the rating True is not a number"),
        ({"rating": [4]}, r"the rating \[4\] is not a number"),
        ({"rating": float("nan")}, "the rating nan is not a finite number"),
        ({"rating": "1e999"}, "the rating '1e999' is not a finite number"),
        ({"rating": 10**400}, "the rating 10+… is not a number"),  # shown cut short
    ],
)
def test_jira_satisfaction_that_is_no_rating_is_malformed_naming_the_field(
    value: Any, says: str
) -> None:
    with pytest.raises(
        PayloadError, match=r"^fields\.rating \(\$\.issue\.fields\.\*\.rating\): " + says
    ):
        run("jira", jira_rated(value))


def test_jira_rating_field_named_in_the_config_is_found_by_its_id() -> None:
    # The field's name is localised (만족), its id is the one fields.rating reads.
    body = jira_rated({"rating": 5}, satisfaction("만족"))
    [event] = ticket_events(run("jsm", body))
    assert event.data.rating == Rating(score=5, scale_max=5)
    # the default source knows the field by its English name only
    assert reasons(run("jira", body)) == [IgnoreReason.IRRELEVANT_CHANGE]
    # the configured path is the one read: a rating held by another field is not this one
    elsewhere = jira_rated({"rating": 5}, satisfaction(), field_id="customfield_99999")
    assert run("jsm", elsewhere).summary == "the satisfaction rating was cleared"


def test_jira_satisfaction_date_alone_is_not_a_rating() -> None:
    body = jira_rated({"rating": 4}, satisfaction("Satisfaction date", "customfield_10032"))
    outcome = run("jira", body)
    assert outcome.events == ()
    assert outcome.summary == "the jira update changed Satisfaction date: not relevant to SLAs"


def test_jira_created_issue_with_a_rating_is_not_rated() -> None:
    body = jira_rated({"rating": 4})
    body["webhookEvent"] = "jira:issue_created"
    assert [e.type for e in run("jira", body).events] == ["ticket.created"]


# --- Zendesk ----------------------------------------------------------------


def zendesk(kind: str, event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(
        sample_json("zendesk-ticket.agent_assignment_changed.json")
    )
    body["type"] = f"zen:event-type:{kind}"
    body["event"] = event
    body["detail"].update(detail)
    return body


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ("OPEN", "SOLVED", ("ticket.resolved", "resolved")),
        ("SOLVED", "CLOSED", ("ticket.closed", "closed")),
        ("SOLVED", "OPEN", ("ticket.reopened", "open")),
        ("OPEN", "PENDING", ("ticket.status_changed", "pending_customer")),
        ("HOLD", "OPEN", ("ticket.status_changed", "open")),
    ],
)
def test_zendesk_status_changes(previous: str, current: str, expected: tuple[str, str]) -> None:
    body = zendesk("ticket.status_changed", {"previous": previous, "current": current})
    assert kinds(run("zendesk", body)) == [expected]


def test_zendesk_priority_change_carries_the_new_priority() -> None:
    body = zendesk(
        "ticket.priority_changed", {"previous": "LOW", "current": "HIGH"}, priority="LOW"
    )
    [event] = ticket_events(run("zendesk", body))
    assert (event.type, event.data.priority) == ("ticket.priority_changed", "P2")


@pytest.mark.parametrize(
    ("public", "staff", "responded"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_zendesk_only_a_public_staff_comment_is_a_response(
    public: bool, staff: bool, responded: bool
) -> None:
    comment = {
        "id": "1",
        "body": "hi",
        "is_public": public,
        "author": {"id": "9", "is_staff": staff},
    }
    outcome = run("zendesk", zendesk("ticket.comment_added", {"comment": comment}))
    assert [e.type for e in outcome.events] == (["ticket.responded"] if responded else [])
    assert reasons(outcome) == ([] if responded else [IgnoreReason.NOT_A_RESPONSE])


def zendesk_rated(satisfaction: Any = None, **detail: Any) -> dict[str, Any]:
    """The body a Zendesk trigger on a changed satisfaction sends (docs/SOURCES.md)."""
    body = zendesk("ticket.satisfaction_rating_changed", {}, **detail)
    if satisfaction is not None:
        body["detail"]["satisfaction_rating"] = satisfaction
    return body


@pytest.mark.parametrize(
    ("score", "expected"), [("good", 1.0), ("GOOD", 1.0), (" bad ", 0.0), ("Bad", 0.0)]
)
def test_zendesk_good_and_bad_are_rated_one_and_zero_of_one(score: str, expected: float) -> None:
    body = zendesk_rated({"id": 77, "score": score, "comment": "Thanks!"})
    [event] = ticket_events(run("zendesk", body))
    assert event.model_dump(mode="json", exclude_none=True) == {
        "event_id": "zendesk:c6d7e8f9-0a1b-2c3d-4e5f-6a7b8c9d0e1f:rated",
        "schema_version": 1,
        "type": "ticket.rated",
        "occurred_at": "2025-01-08T12:15:45.789012Z",  # the envelope's time
        "source": "zendesk",
        "data": {"id": "5158", "rating": {"score": expected, "scale_max": 1.0}},
    }


@pytest.mark.parametrize(
    ("satisfaction", "says"),
    [
        ({"score": "offered"}, "the satisfaction rating is 'offered': not rated"),
        ({"score": "UNOFFERED"}, "the satisfaction rating is 'unoffered': not rated"),
        ({"score": None}, "the ticket has no satisfaction rating"),
        ({}, "the ticket has no satisfaction rating"),
        (None, "the ticket has no satisfaction rating"),
    ],
)
def test_zendesk_offered_unoffered_or_no_rating_is_ignored(satisfaction: Any, says: str) -> None:
    outcome = run("zendesk", zendesk_rated(satisfaction))
    assert (outcome.events, outcome.summary) == ((), says)
    assert reasons(outcome) == [IgnoreReason.IRRELEVANT_CHANGE]


@pytest.mark.parametrize(
    ("satisfaction", "says"),
    [
        ({"score": "meh"}, r"detail\.satisfaction_rating\.score: 'meh' is not a rating"),
        ({"score": 5}, r"detail\.satisfaction_rating\.score: 5 is not a rating"),
        ({"score": ["good"]}, r"detail\.satisfaction_rating\.score: \['good'\] is not a rating"),
        ("good", r"detail\.satisfaction_rating: not an object"),
    ],
)
def test_zendesk_scores_zendesk_does_not_have_are_malformed(satisfaction: Any, says: str) -> None:
    with pytest.raises(PayloadError, match=says):
        run("zendesk", zendesk_rated(satisfaction))


def test_zendesk_rating_on_other_ticket_events_is_not_a_rated_event() -> None:
    body = zendesk("ticket.status_changed", {"previous": "OPEN", "current": "SOLVED"})
    body["detail"]["satisfaction_rating"] = {"score": "good"}
    [event] = ticket_events(run("zendesk", body))
    assert (event.type, event.data.rating) == ("ticket.resolved", None)


def test_zendesk_irrelevant_ticket_events_and_unassignment_are_ignored() -> None:
    tags = run("zendesk", zendesk("ticket.tags_changed", {"current": ["a"]}))
    unassigned = run("zendesk", zendesk("ticket.agent_assignment_changed", {"current": None}))
    assert reasons(tags) == reasons(unassigned) == [IgnoreReason.IRRELEVANT_CHANGE]


# --- Zammad -----------------------------------------------------------------


def zammad(state: str, article: dict[str, Any] | None, article_count: int = 3) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(sample_json("zammad-ticket-default.json"))
    body["ticket"]["state"] = state
    body["ticket"]["article_count"] = article_count
    body["ticket"]["updated_at"] = "2020-11-13T15:00:00Z"
    if article is None:
        body["article"] = {}
    else:
        body["article"].update(article, created_at="2020-11-13T14:59:00Z")
    return body


def test_zammad_public_agent_reply_is_a_response() -> None:
    outcome = run("zammad", zammad("pending reminder", {"sender": "Agent", "internal": False}))
    assert kinds(outcome) == [("ticket.responded", "pending_customer")]
    assert outcome.events[0].occurred_at.isoformat() == "2020-11-13T14:59:00+00:00"


@pytest.mark.parametrize(
    ("state", "article", "expected"),
    [
        ("open", {"sender": "Agent", "internal": True}, [("ticket.updated", "open")]),
        ("open", {"sender": "Customer", "internal": False}, [("ticket.updated", "open")]),
        ("closed", None, [("ticket.closed", "closed")]),
        ("merged", None, [("ticket.closed", "closed")]),
        (
            "closed",
            {"sender": "Agent", "internal": False},
            [("ticket.responded", "closed"), ("ticket.closed", "closed")],
        ),
    ],
)
def test_zammad_updates(
    state: str, article: dict[str, Any] | None, expected: list[tuple[str, str]]
) -> None:
    assert kinds(run("zammad", zammad(state, article))) == expected


def test_zammad_trigger_named_in_the_config_says_reopened() -> None:
    headers = {"x-zammad-trigger": "slawatch: reopened", "x-zammad-delivery": "d-1"}
    outcome = run("zammad", zammad("open", None), headers)
    assert [(e.type, e.event_id) for e in outcome.events] == [
        ("ticket.reopened", "zammad:d-1:reopened")
    ]


def test_zammad_without_a_ticket_is_malformed() -> None:
    with pytest.raises(PayloadError, match="ticket is missing"):
        run("zammad", {"article": {}})


# --- Alertmanager -----------------------------------------------------------


def test_alertmanager_refuses_other_versions_and_alerts_without_a_name() -> None:
    body: dict[str, Any] = copy.deepcopy(sample_json("alertmanager-v4-firing.json"))
    with pytest.raises(PayloadError, match="version '3'"):
        run("alertmanager", body | {"version": "3"})
    del body["alerts"][0]["labels"]["alertname"]
    with pytest.raises(PayloadError, match=r"alerts\[0\].labels.alertname is missing"):
        run("alertmanager", body)


def test_alertmanager_without_a_fingerprint_hashes_the_labels() -> None:
    body: dict[str, Any] = copy.deepcopy(sample_json("alertmanager-v4-firing.json"))
    del body["alerts"][0]["fingerprint"]
    [event] = run("alertmanager", body).events
    assert isinstance(event, MonitoringEvent)
    assert event.data.fingerprint == "e72058b5da78bbb3"
