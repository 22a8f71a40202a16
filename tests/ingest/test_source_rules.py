"""What each source's changes mean: the rules beyond the samples, on bodies derived from them.

Pure: normalisers only. Each case states the change and the event expected.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ingest.payloads import sample_json
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_ingest.sources.canonical import IgnoreReason, Normalised, PayloadError
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.webhook_config import parse_sources

SOURCES = parse_sources(
    {
        "jira": {"fields": {"customer": "/issue/fields/customfield_10002/0/name"}},
        "zammad": {"triggers": {"slawatch: reopened": "ticket.reopened"}},
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
