"""The ``ingest.sources`` configuration: defaults, overrides, environment, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slawatch_common.runtime import ConfigError
from slawatch_ingest.ratelimit import TokenBucket
from slawatch_ingest.recent import RecentIds
from slawatch_ingest.webhook_config import load_sources, parse_sources

REPO = Path(__file__).resolve().parents[2]


def test_every_kind_but_generic_exists_with_defaults_and_no_credentials() -> None:
    sources = parse_sources(None, {})
    assert sorted(sources) == [
        "alertmanager",
        "glpi",
        "grafana",
        "jira",
        "servicenow",
        "zammad",
        "zendesk",
    ]
    jira = sources["jira"]
    assert (jira.kind, jira.name, jira.secret, jira.tokens) == ("jira", "jira", None, ())
    assert jira.priorities["Blocker"] == "P1"
    assert sources["zendesk"].replay_window_s == 300
    assert sources["glpi"].replay_window_s == 86400


def test_the_shipped_configuration_is_valid() -> None:
    sources = load_sources(REPO / "deploy" / "config" / "slawatch.yaml", {})
    assert sources["grafana"].service_labels == ("service", "team", "job")


def test_given_maps_replace_the_defaults_and_mapping_keys_merge() -> None:
    sources = parse_sources(
        {
            "jira": {"priorities": {"Urgent": "P1"}},
            "glpi": {"mapping": {"ticket_id": "/ticket/id"}},
            "snow-eu": {"kind": "servicenow", "enabled": False},
        },
        {},
    )
    assert sources["jira"].priorities == {"Urgent": "P1"}
    mapping = sources["glpi"].mapping
    assert mapping is not None
    assert (mapping.ticket_id, mapping.created_at) == ("/ticket/id", "/item/date_creation")
    assert (sources["snow-eu"].kind, sources["snow-eu"].enabled) == ("servicenow", False)


@pytest.mark.parametrize(
    ("section", "says"),
    [
        (
            {"jira": {"service_labels": ["x"]}},
            "ingest.sources.jira: service_labels: not an option of a jira source",
        ),
        ({"alertmanager": {"secret": "x"}}, "secret: not an option of a alertmanager source"),
        ({"mine": {}}, "ingest.sources.mine: kind: 'mine' is not a kind of source"),
        ({"Bad Name": {"kind": "jira"}}, "a name is lower-case letters"),
        ({"mine": {"kind": "generic"}}, "a generic source needs a mapping"),
        ({"jira": {"priorities": {"High": "P9"}}}, "ingest.sources.jira.priorities.High"),
        (
            {"x": {"kind": "generic", "mapping": {"ticket_id": "id", "occurred_at": "/at"}}},
            "ingest.sources.x.mapping.ticket_id",
        ),
        (
            {"x": {"kind": "generic", "mapping": {"ticket_id": "$[", "occurred_at": "/at"}}},
            "is not a JSONPath",
        ),
        (
            {
                "x": {
                    "kind": "generic",
                    "mapping": {"ticket_id": "/id", "occurred_at": "/at", "timezone": "Mars/Base"},
                }
            },
            "unknown time zone",
        ),
        ([], "must be a mapping of source names"),
    ],
)
def test_invalid_configuration_says_where(section: Any, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_sources(section, {})
    assert says in str(raised.value)


def rating_mapping(**changes: Any) -> dict[str, Any]:
    """A generic source whose mapping reads a rating, with ``changes`` to it."""
    mapping = {
        "ticket_id": "/id",
        "occurred_at": "/at",
        "event": "/e",
        "events": {"rated": "ticket.rated"},
        "fields": {"rating": "/csat"},
        "rating_scale_max": 5,
    }
    return {"x": {"kind": "generic", "mapping": mapping | changes}}


@pytest.mark.parametrize(
    ("section", "says"),
    [
        (
            rating_mapping(rating_scale_max=None),
            "ingest.sources.x.mapping: fields.rating needs rating_scale_max",
        ),
        (
            rating_mapping(fields={"status": "/s"}, events={}),
            "ingest.sources.x.mapping: rating_scale_max: there is no fields.rating to read",
        ),
        (
            rating_mapping(fields={}, rating_scale_max=None, events={"r": "ticket.rated"}),
            "ingest.sources.x.mapping: events: 'r' means ticket.rated, which needs fields.rating",
        ),
        (rating_mapping(rating_scale_max=0), "ingest.sources.x.mapping.rating_scale_max"),
        (rating_mapping(rating_scale_max=2e6), "ingest.sources.x.mapping.rating_scale_max"),
        (
            rating_mapping(rating_scale_max=float("inf")),
            "ingest.sources.x.mapping.rating_scale_max",
        ),
        (rating_mapping(rating_scale_max="five"), "ingest.sources.x.mapping.rating_scale_max"),
        (
            {"zendesk": {"fields": {"rating": "/detail/csat"}}},
            "ingest.sources.zendesk: fields.rating: not an option of a zendesk source",
        ),
        (
            {"zammad": {"fields": {"rating": "/csat"}}},
            "fields.rating: not an option of a zammad source",
        ),
        (
            {"zammad": {"triggers": {"slawatch: rated": "ticket.rated"}}},
            "triggers: 'slawatch: rated' means ticket.rated, but a zammad trigger carries no",
        ),
    ],
)
def test_a_rating_without_a_scale_or_a_path_says_where(section: Any, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_sources(section, {})
    assert says in str(raised.value)


def test_rating_options_that_fit() -> None:
    sources = parse_sources(
        {
            **rating_mapping(),
            "jira": {"fields": {"rating": "/issue/fields/customfield_10031"}},
            "glpi": {
                "mapping": {"fields": {"rating": "/item/satisfaction"}, "rating_scale_max": 5}
            },
        },
        {},
    )
    mapping = sources["x"].mapping
    assert mapping is not None
    assert (mapping.fields["rating"], mapping.rating_scale_max) == ("/csat", 5.0)
    assert sources["jira"].fields == {"rating": "/issue/fields/customfield_10031"}
    glpi = sources["glpi"].mapping
    assert glpi is not None
    assert (glpi.rating_scale_max, glpi.ticket_id) == (5.0, "/item/id")  # merged over defaults


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources(tmp_path / "absent.yaml", {})


def test_token_bucket_bursts_then_refills() -> None:
    bucket = TokenBucket.full(per_second=2, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert bucket.take(100.25) == 0.25  # half a token back
    assert bucket.take(100.5) == 0.0
    assert bucket.take(1000.0) == 0.0  # refills to the burst, no further
    assert bucket.tokens == 2.0


def test_recent_ids_forget_the_least_recently_seen() -> None:
    recent = RecentIds(capacity=2)
    recent.remember(["a", "b"])
    recent.remember(["a"])
    recent.remember(["c"])
    assert ("a" in recent, "b" in recent, "c" in recent) == (True, False, True)
