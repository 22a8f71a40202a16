"""What the fuzz tests feed the webhook sources: configurations, real bodies, generated ones.

``source_section()`` configures every kind of source (and four generic
ones); ``SAMPLES`` holds the real bodies each is fed (``tests/ingest/samples``,
the README's ServiceNow and GLPI bodies, and samples turned into satisfaction
ratings); the strategies generate

* ``objects``: arbitrary JSON objects whose keys are mostly the ones real
  deliveries use, so they reach past a normaliser's first ``is missing``;
* ``mutated(sample)``: a sample after one to four mutations anywhere in it
  (a key dropped, a value replaced by any JSON, a type swapped, an instant or
  a text at its limits);
* ``headers``: headers, mostly with the names normalisers read.

Instants and texts at the edges (year 1 with an offset, epochs past
``datetime``, NaN, 201 characters…) are drawn often on purpose: that is
where parsers break.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import strategies as st

from ingest.payloads import PAYLOADS, sample_json
from ingest.test_generic_mapping import CONFIG as README_GENERIC_SOURCES
from ingest.test_generic_mapping import GLPI_BODY, SNOW_BODY

Json = Any

# Besides the README's generic sources (snow, helpdesk) and every built-in kind:
# options that make normalisers read more of the body and the headers.
EXTRA_SOURCES = """
jira: {fields: {customer: /issue/fields/customfield_10002/0/name}}
zammad: {triggers: {"slawatch: reopened": ticket.reopened}}
grafana: {service_labels: [service, team]}
jsm: {kind: jira, fields: {rating: /issue/fields/customfield_10031}}
csat:
  kind: generic
  mapping:
    ticket_id: /ticket/id
    occurred_at: /at
    event: /event
    events: {rated: ticket.rated, other: derive}
    fields: {rating: /ticket/csat, status: /ticket/status}
    rating_scale_max: 5
    values: {rating: {good: "5", bad: "1"}}
relay:
  kind: generic
  statuses: {done: resolved}
  mapping:
    ticket_id: $.ticket.key
    occurred_at: [$.when, /ticket/updated]
    delivery_header: X-Relay-Delivery
    fields: {status: $.ticket.state, priority: /ticket/prio, assignee.id: "$.people[0].id",
             assignee.email: "$.people[0].mail", assignee.phone: "$.people[0].phone"}
"""


def source_section() -> dict[str, Any]:
    """``ingest.sources`` for the fuzz: the README's generic sources and the extras above."""
    section: dict[str, Any] = yaml.safe_load(README_GENERIC_SOURCES)
    section.update(yaml.safe_load(EXTRA_SOURCES))
    return section


RELAY_BODY: dict[str, Json] = {
    "when": "2026-11-26T10:30:00+01:00",
    "ticket": {"key": "R-7", "state": "done", "prio": "P2", "updated": 1795000000000},
    "people": [{"id": "u1", "mail": "u1@example.com", "phone": "+49 30 1234"}],
}
# The built-in servicenow source reads the README's business-rule body with `event`.
SERVICENOW_BODY = {"event": "update"} | {k: v for k, v in SNOW_BODY.items() if k != "operation"}
CSAT_BODY: dict[str, Json] = {
    "event": "rated",
    "at": "2026-11-27T09:12:00+08:00",
    "ticket": {"id": "T-9", "csat": 4, "status": "closed"},
}


def _zendesk_rated() -> dict[str, Json]:
    """A Zendesk trigger's body on a changed satisfaction (docs/SOURCES.md)."""
    body: dict[str, Json] = copy.deepcopy(
        sample_json("zendesk-ticket.agent_assignment_changed.json")
    )
    body["type"] = "zen:event-type:ticket.satisfaction_rating_changed"
    body["detail"]["satisfaction_rating"] = {"id": 77, "score": "good", "comment": "Thanks"}
    return body


def _jira_rated() -> dict[str, Json]:
    """A Service Management update setting the CSAT field (customfield_10031)."""
    body: dict[str, Json] = copy.deepcopy(sample_json("jira-issue_updated-fields_changelog.json"))
    body["changelog"]["items"].insert(
        0, {"field": "Satisfaction", "fieldtype": "custom", "fieldId": "customfield_10031"}
    )
    body["issue"]["fields"]["customfield_10031"] = {"rating": 4}
    return body


def _samples() -> dict[str, list[dict[str, Json]]]:
    by_source: dict[str, list[dict[str, Json]]] = {
        "servicenow": [SERVICENOW_BODY],
        "snow": [SNOW_BODY],
        "glpi": [GLPI_BODY],
        "helpdesk": [GLPI_BODY],
        "relay": [RELAY_BODY],
        "csat": [CSAT_BODY],
        "jsm": [_jira_rated()],
    }
    for path in sorted(PAYLOADS.glob("*.json")):
        kind = path.name.split("-", 1)[0]
        by_source.setdefault(kind, []).append(sample_json(path.name))
    by_source["zendesk"].append(_zendesk_rated())
    by_source["jira"].append(_jira_rated())
    return by_source


SAMPLES = _samples()
"""Source name → the real bodies it is fed (each file of ``PAYLOADS`` by its kind)."""

HEADERS: dict[str, list[str]] = {
    "x-atlassian-webhook-identifier": ["1736942400000-1", "", " ", "x" * 300],
    "x-zammad-delivery": ["d-1", "", "x" * 300],
    "x-zammad-trigger": ["slawatch: reopened", "", "SLAWATCH: REOPENED "],
    "x-relay-delivery": ["r-1", "", "x" * 300],
}
"""The headers normalisers read, the real value first."""

_READS: dict[str, tuple[str, ...]] = {
    "jira": ("x-atlassian-webhook-identifier",),
    "zammad": ("x-zammad-delivery", "x-zammad-trigger"),
    "relay": ("x-relay-delivery",),
}


def sample_headers(source: str) -> dict[str, str]:
    """The headers the real sender sends with a sample of ``source``."""
    return {name: HEADERS[name][0] for name in _READS.get(source, ())}


def _keys_of(document: Json) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from _keys_of(value)
    elif isinstance(document, list):
        for value in document:
            yield from _keys_of(value)


KNOWN_KEYS = sorted(
    {key for bodies in SAMPLES.values() for body in bodies for key in _keys_of(body)}
)

INSTANTS: list[Json] = [
    "2026-11-26T01:00:00Z",
    "2026-11-26 10:30:00",
    "2015-12-20T18:25:09.582+0000",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31 23:59:59",
    "1764118800123456789",
    "²",
    "",
    0,
    -1,
    1795000000000,
    10**20,
    -(10**20),
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
]
"""Instants in every spelling sources use, at and past the edges of ``datetime``."""

TEXTS: list[Json] = ["", " ", "\t\n", "x" * 201, "x" * 501, "é" * 300, "\x00", "P1", "firing", "4"]
"""Texts at the contract's limits (200 for identifiers, 500 for names) and blank ones."""

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±Infinity too: Python's json.loads reads them
    | st.text()
    | st.sampled_from(INSTANTS)
    | st.sampled_from(TEXTS)
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
json_values: st.SearchStrategy[Json] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=24,
)
objects: st.SearchStrategy[dict[str, Json]] = st.dictionaries(keys, json_values, max_size=10)
headers: st.SearchStrategy[dict[str, str]] = st.dictionaries(
    st.sampled_from(sorted(HEADERS)) | st.text(max_size=20).map(str.lower),
    st.sampled_from([value for values in HEADERS.values() for value in values]) | st.text(),
    max_size=4,
)


def _places(document: Json, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value under ``document`` (not ``document`` itself)."""
    children: Iterator[tuple[Any, Json]]
    if isinstance(document, dict):
        children = iter(document.items())
    elif isinstance(document, list):
        children = enumerate(document)
    else:
        return
    for key, value in children:
        yield (*at, key)
        yield from _places(value, (*at, key))


def _swapped(value: Json) -> list[Json]:
    """``value`` as other JSON types, the way a sender's bug or a version change would have it."""
    text = value if isinstance(value, str) else json.dumps(value)
    variants: list[Json] = [None, text, [value], {"value": value}, True, 0]
    if isinstance(value, str):
        variants += [len(value), float(len(value))]
    if isinstance(value, int | float) and not isinstance(value, bool):
        variants += [-value, value * 10**12]
    if isinstance(value, dict):
        variants += [list(value.values()), list(value)]
    if isinstance(value, list):
        variants += [value[0] if value else "", dict(enumerate(map(str, value)))]
    return variants


@st.composite
def mutated(draw: st.DrawFn, sample: dict[str, Json]) -> dict[str, Json]:
    """``sample`` (unchanged itself) after one to four mutations at places drawn anywhere in it."""
    document = copy.deepcopy(sample)
    for _ in range(draw(st.integers(1, 4))):
        places = list(_places(document))
        if not places:
            break
        place = draw(st.sampled_from(places))
        parent = document
        for step in place[:-1]:
            parent = parent[step]
        key = place[-1]
        operation = draw(st.sampled_from(["drop", "replace", "swap", "instant", "text"]))
        if operation == "drop":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(json_values)
        elif operation == "swap":
            parent[key] = draw(st.sampled_from(_swapped(parent[key])))
        elif operation == "instant":
            parent[key] = draw(st.sampled_from(INSTANTS))
        else:
            parent[key] = draw(st.sampled_from(TEXTS))
    return document


def mutated_sample(source: str) -> st.SearchStrategy[dict[str, Json]]:
    """A sample of ``source``, mutated."""
    return st.sampled_from(SAMPLES[source]).flatmap(mutated)


def _alert(**changes: Json) -> dict[str, Json]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "InstanceDown", "service": "core-network"},
        "startsAt": "2026-11-26T01:00:00Z",
    }
    return {"version": "4", "status": "firing", "alerts": [alert | changes]}


def _with(name: str, **changes: Json) -> dict[str, Json]:
    body: dict[str, Json] = sample_json(name)
    return body | changes


def _glpi_dated(value: Json) -> dict[str, Json]:
    body = copy.deepcopy(GLPI_BODY)
    body["item"]["date_creation"] = value
    return body


JIRA_UPDATE = "jira-issue_updated-status_changelog.json"
ZENDESK_ASSIGNED = "zendesk-ticket.agent_assignment_changed.json"

FOUND: dict[str, tuple[str, dict[str, Json]]] = {
    # instants.instant: astimezone(UTC) leaves datetime's range → OverflowError
    "am-year-1-plus-0100": ("alertmanager", _alert(startsAt="0001-01-01T00:00:00+01:00")),
    "jira-year-9999-minus-0100": (
        "jira",
        _with(JIRA_UPDATE, timestamp="9999-12-31T23:59:59-01:00"),
    ),
    "glpi-year-1-plus-0100": ("glpi", _glpi_dated("0001-01-01T00:00:00+01:00")),
    # instants.instant: datetime.fromtimestamp past time_t → OverflowError / OSError(EOVERFLOW)
    "am-epoch-1e20": ("alertmanager", _alert(startsAt=10**20)),
    "am-epoch-infinity": ("alertmanager", _alert(startsAt=float("inf"))),
    "jira-epoch-1e20": ("jira", _with(JIRA_UPDATE, timestamp=10**20)),
    "zendesk-epoch-digits": ("zendesk", _with(ZENDESK_ASSIGNED, time="100000000000000000000")),
    "snow-epoch-1e20": ("snow", SNOW_BODY | {"sys_updated_on": 10**20}),
    # alertmanager._one builds Alert unchecked → pydantic ValidationError
    "am-fingerprint-201": ("alertmanager", _alert(fingerprint="f" * 201)),
    "am-severity-blank": (
        "alertmanager",
        _alert(labels={"alertname": "InstanceDown", "service": "core-network", "severity": ""}),
    ),
}
"""Deliveries that crashed a normaliser (a 500 from the app), each by its root cause."""
