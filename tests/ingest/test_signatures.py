"""Authenticity per source, as each system signs: valid, invalid, missing, replayed.

Pure: ``signatures.authenticate`` over the sources' configurations, the
reference samples as bodies and a fixed ``now``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import payloads
from ingest.payloads import sample
from slawatch_ingest.signatures import UnauthenticatedError, authenticate
from slawatch_ingest.webhook_config import parse_sources
from slawatch_ingest.webhooks_api import credentials_of
from support.fuzz import examples

NOW = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
SECRET = "s3cret"
SOURCES = parse_sources(
    {
        "jira": {"secret": SECRET},
        "zammad": {"secret": SECRET},
        "zendesk": {"secret": SECRET},
        "glpi": {"secret": SECRET},
        "grafana": {"secret": SECRET, "tokens": ["graf-token"]},
        "grafana-ts": {
            "kind": "grafana",
            "secret": SECRET,
            "timestamp_header": "X-Grafana-Alerting-Signature-Timestamp",
        },
        "alertmanager": {"tokens": ["am-token"], "basic_auth": {"am": "pw"}},
        "servicenow": {"basic_auth": {"snow": "pw"}},
        "generic": {
            "secret": SECRET,
            "mapping": {"ticket_id": "/id", "occurred_at": "/at"},
        },
        "glpi-style": {
            "kind": "generic",
            "secret": SECRET,
            "signature_scheme": "glpi",
            "mapping": {"ticket_id": "/id", "occurred_at": "/at"},
        },
        "unconfigured": {"kind": "jira"},
    },
    {},
)

JIRA = sample("jira-issue_created.json")
ZAMMAD = sample("zammad-ticket-default.json")
ZENDESK = sample("zendesk-ticket.created.json")
GRAFANA = sample("grafana-alerting-firing.json")
ALERTS = sample("alertmanager-v4-firing.json")
GENERIC = b'{"id": "T-1", "at": "2026-11-26T08:00:00Z"}'

GENERIC_B64 = base64.b64encode(bytes.fromhex(payloads.grafana(SECRET, GENERIC))).decode()


def zendesk_headers(at: datetime, secret: str = SECRET, body: bytes = ZENDESK) -> dict[str, str]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "x-zendesk-webhook-signature": payloads.zendesk(secret, stamp, body),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }


def glpi_headers(at: datetime, secret: str = SECRET) -> dict[str, str]:
    stamp = int(at.timestamp())
    return {
        "x-glpi-signature": payloads.glpi(secret, ZENDESK, stamp),
        "x-glpi-timestamp": str(stamp),
    }


def grafana_ts(at: datetime) -> dict[str, str]:
    stamp = int(at.timestamp())
    return {
        "x-grafana-alerting-signature": payloads.grafana(SECRET, GRAFANA, stamp),
        "x-grafana-alerting-signature-timestamp": str(stamp),
    }


CASES: list[tuple[str, str, bytes, dict[str, str], str | None]] = [
    # source, case, body, headers, error (None: accepted)
    ("jira", "valid sha256", JIRA, {"x-hub-signature": payloads.hub(SECRET, JIRA)}, None),
    ("jira", "valid sha1", JIRA, {"x-hub-signature": payloads.hub(SECRET, JIRA, "sha1")}, None),
    ("jira", "invalid", JIRA, {"x-hub-signature": payloads.hub("other", JIRA)}, "does not match"),
    (
        "jira",
        "other body",
        JIRA,
        {"x-hub-signature": payloads.hub(SECRET, ZAMMAD)},
        "does not match",
    ),
    ("jira", "unknown algorithm", JIRA, {"x-hub-signature": "md5=abc"}, "sha256 or sha1"),
    ("jira", "missing", JIRA, {}, "missing credentials: send a signature in x-hub-signature"),
    ("zammad", "valid", ZAMMAD, {"x-hub-signature": payloads.hub(SECRET, ZAMMAD, "sha1")}, None),
    (
        "zammad",
        "invalid",
        ZAMMAD,
        {"x-hub-signature": payloads.hub("x", ZAMMAD, "sha1")},
        "does not match",
    ),
    (
        "zammad",
        "sha256 is not zammad's",
        ZAMMAD,
        {"x-hub-signature": payloads.hub(SECRET, ZAMMAD)},
        "sha1",
    ),
    ("zammad", "missing", ZAMMAD, {}, "missing credentials"),
    ("zendesk", "valid", ZENDESK, zendesk_headers(NOW - timedelta(seconds=30)), None),
    ("zendesk", "invalid", ZENDESK, zendesk_headers(NOW, secret="x"), "does not match"),
    ("zendesk", "other body", ZENDESK, zendesk_headers(NOW, body=JIRA), "does not match"),
    ("zendesk", "missing", ZENDESK, {}, "missing credentials"),
    (
        "zendesk",
        "replayed",
        ZENDESK,
        zendesk_headers(NOW - timedelta(minutes=6)),
        "360 s old; the replay window is 300 s",
    ),
    (
        "zendesk",
        "from the future",
        ZENDESK,
        zendesk_headers(NOW + timedelta(minutes=6)),
        "in the future",
    ),
    (
        "zendesk",
        "no timestamp",
        ZENDESK,
        {"x-zendesk-webhook-signature": "abc"},
        "timestamp is missing",
    ),
    ("glpi", "valid", ZENDESK, glpi_headers(NOW - timedelta(hours=2)), None),
    ("glpi", "invalid", ZENDESK, glpi_headers(NOW, secret="x"), "does not match"),
    ("glpi", "missing", ZENDESK, {}, "missing credentials"),
    (
        "glpi",
        "replayed",
        ZENDESK,
        glpi_headers(NOW - timedelta(days=2)),
        "replay window is 86400 s",
    ),
    (
        "grafana",
        "valid",
        GRAFANA,
        {"x-grafana-alerting-signature": payloads.grafana(SECRET, GRAFANA)},
        None,
    ),
    (
        "grafana",
        "invalid",
        GRAFANA,
        {"x-grafana-alerting-signature": payloads.grafana("x", GRAFANA)},
        "does not match",
    ),
    ("grafana", "bearer", GRAFANA, {"authorization": "Bearer graf-token"}, None),
    (
        "grafana",
        "wrong bearer",
        GRAFANA,
        {"authorization": "Bearer nope"},
        "bearer token is not accepted",
    ),
    (
        "grafana",
        "missing",
        GRAFANA,
        {},
        "a signature in x-grafana-alerting-signature or a bearer token",
    ),
    ("grafana-ts", "valid", GRAFANA, grafana_ts(NOW), None),
    ("grafana-ts", "replayed", GRAFANA, grafana_ts(NOW - timedelta(hours=1)), "3600 s old"),
    (
        "grafana-ts",
        "no timestamp",
        GRAFANA,
        {"x-grafana-alerting-signature": payloads.grafana(SECRET, GRAFANA)},
        "timestamp header is missing",
    ),
    ("alertmanager", "bearer", ALERTS, {"authorization": "Bearer am-token"}, None),
    ("alertmanager", "basic", ALERTS, {"authorization": payloads.basic("am", "pw")}, None),
    (
        "alertmanager",
        "wrong password",
        ALERTS,
        {"authorization": payloads.basic("am", "no")},
        "not accepted",
    ),
    ("alertmanager", "wrong token", ALERTS, {"authorization": "Bearer am-tokenx"}, "not accepted"),
    ("alertmanager", "missing", ALERTS, {}, "a bearer token or basic auth"),
    ("servicenow", "basic", GENERIC, {"authorization": payloads.basic("snow", "pw")}, None),
    (
        "servicenow",
        "bearer is not configured",
        GENERIC,
        {"authorization": "Bearer x"},
        "missing credentials",
    ),
    ("generic", "hex", GENERIC, {"x-slawatch-signature": payloads.grafana(SECRET, GENERIC)}, None),
    (
        "generic",
        "sha256= hex",
        GENERIC,
        {"x-slawatch-signature": "sha256=" + payloads.grafana(SECRET, GENERIC)},
        None,
    ),
    ("generic", "base64", GENERIC, {"x-slawatch-signature": GENERIC_B64}, None),
    ("glpi-style", "valid", ZENDESK, glpi_headers(NOW), None),
    (
        "glpi-style",
        "hmac header is not its scheme",
        GENERIC,
        {"x-slawatch-signature": GENERIC_B64},
        "missing",
    ),
    ("generic", "invalid", GENERIC, {"x-slawatch-signature": "00" * 32}, "does not match"),
    (
        "unconfigured",
        "anything",
        JIRA,
        {"x-hub-signature": payloads.hub(SECRET, JIRA)},
        "no credentials are configured",
    ),
]


@pytest.mark.parametrize(
    ("source", "body", "headers", "error"),
    [pytest.param(s, b, h, e, id=f"{s}: {c}") for s, c, b, h, e in CASES],
)
def test_authenticity(source: str, body: bytes, headers: dict[str, str], error: str | None) -> None:
    credentials = credentials_of(SOURCES[source])
    if error is None:
        authenticate(credentials, body, headers, NOW)
    else:
        with pytest.raises(UnauthenticatedError, match=error):
            authenticate(credentials, body, headers, NOW)


def test_a_valid_token_does_not_excuse_a_wrong_signature() -> None:
    headers = {
        "authorization": "Bearer graf-token",
        "x-grafana-alerting-signature": payloads.grafana("wrong", GRAFANA),
    }
    with pytest.raises(UnauthenticatedError, match="does not match"):
        authenticate(credentials_of(SOURCES["grafana"]), GRAFANA, headers, NOW)


def test_secrets_come_from_the_environment_too() -> None:
    sources: Any = parse_sources(
        {"snow-prod": {"kind": "servicenow"}},
        {"SLAWATCH_SOURCE_JIRA_SECRET": "env-secret", "SLAWATCH_SOURCE_SNOW_PROD_TOKENS": "a, b"},
    )
    headers = {"x-hub-signature": payloads.hub("env-secret", JIRA)}
    authenticate(credentials_of(sources["jira"]), JIRA, headers, NOW)
    authenticate(credentials_of(sources["snow-prod"]), GENERIC, {"authorization": "Bearer b"}, NOW)


EPOCH_STAMPS = [
    "1e18",
    "1000000000000000000",  # past the platform's gmtime: OSError (EOVERFLOW)
    "-1000000000000000000",
    "253402300800",  # 10000-01-01: past datetime
    "-62135596801",  # before the year 1
    "9" * 30,  # past time_t: OverflowError
    "9" * 5000,  # past int()'s digit limit
    "nan",
    " ",
]
ISO_STAMPS = [
    ("10000-01-01T00:00:00Z", "not an ISO 8601 time"),
    ("0001-01-01T00:00:00+14:00", "s old"),  # the year 0 in UTC
    ("9999-12-31T23:59:59-14:00", "in the future"),  # the year 10000 in UTC
]


@pytest.mark.parametrize("stamp", EPOCH_STAMPS)
@pytest.mark.parametrize(
    ("source", "signature", "timestamp"),
    [
        ("glpi", "x-glpi-signature", "x-glpi-timestamp"),
        ("glpi-style", "x-glpi-signature", "x-glpi-timestamp"),
        (
            "grafana-ts",
            "x-grafana-alerting-signature",
            "x-grafana-alerting-signature-timestamp",
        ),
    ],
)
def test_an_epoch_timestamp_of_any_size_is_a_bad_signature(
    source: str, signature: str, timestamp: str, stamp: str
) -> None:
    headers = {signature: "0" * 64, timestamp: stamp}
    with pytest.raises(UnauthenticatedError, match="not a Unix time in seconds"):
        authenticate(credentials_of(SOURCES[source]), GRAFANA, headers, NOW)


@pytest.mark.parametrize(("stamp", "says"), ISO_STAMPS)
def test_an_iso_timestamp_at_datetime_s_edges_is_a_bad_signature(stamp: str, says: str) -> None:
    headers = {
        "x-zendesk-webhook-signature": payloads.zendesk(SECRET, stamp, ZENDESK),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }
    with pytest.raises(UnauthenticatedError, match=says):
        authenticate(credentials_of(SOURCES["zendesk"]), ZENDESK, headers, NOW)


HEADER_NAMES = sorted(
    {
        "authorization",
        "x-hub-signature",
        "x-zendesk-webhook-signature",
        "x-zendesk-webhook-signature-timestamp",
        "x-glpi-signature",
        "x-glpi-timestamp",
        "x-grafana-alerting-signature",
        "x-grafana-alerting-signature-timestamp",
        "x-slawatch-signature",
    }
)
EDGE_TEXTS = [
    *EPOCH_STAMPS,
    *(stamp for stamp, _ in ISO_STAMPS),
    "١٢٣",  # Arabic-Indic digits: int() reads them
    "１２３",
    "-0",
    "1e400",
    "sha256=" + "é" * 64,
    "Bearer é",
    "Basic é",
    "Basic /w==",
    "\ud800",  # a lone surrogate: no HTTP header decodes to one, but any str may hold it
]


@pytest.mark.parametrize("source", sorted(SOURCES))
@settings(max_examples=examples(short=200, long=5_000), deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(HEADER_NAMES),
        st.sampled_from(EDGE_TEXTS) | st.text() | st.text(alphabet="0123456789-+.e ", max_size=30),
        max_size=len(HEADER_NAMES),
    ),
    body=st.binary(max_size=64),
)
def test_any_header_text_is_refused_as_unauthenticated(
    source: str, headers: dict[str, str], body: bytes
) -> None:
    """Whatever text a header holds, ``authenticate`` raises ``UnauthenticatedError`` (a
    401): no other exception, which would be a 500. (No drawn text is a valid credential.)"""
    with pytest.raises(UnauthenticatedError):
        authenticate(credentials_of(SOURCES[source]), body, headers, NOW)
