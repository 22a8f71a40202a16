"""Every signature scheme, fed any header value over HTTP: 401, never a 500.

The app is served by uvicorn (in a thread, lifespan and all) on the shared
broker, with a source for each way a webhook authenticates: ``hub-sha256``
(Jira), ``hub-sha1`` (Zammad), ``zendesk``, ``glpi``, ``hmac`` with and
without a signed timestamp (Grafana), a generic source signing as GLPI, and
bearer tokens and basic auth (Alertmanager). Its limit of failed
authentication per address is lifted, so every request reaches the
signature check.

Hypothesis draws the values of each source's signature, timestamp and
``Authorization`` headers: epochs past ``datetime`` and ``time_t`` (10^18,
1e400, thirty nines, negative ones), ``-0``, NaN, Unicode digits, ISO times
at the years 1 and 9999, non-ASCII and empty values, a header repeated,
values of thousands of characters, and arbitrary bytes a header may carry.
None of them is a valid credential, so each request must be answered 401
with a challenge. A few dozen requests a source in ``make test``, thousands
in ``make fuzz`` (``support.fuzz``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.payloads import sample
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import parse_sources
from support.fuzz import examples
from support.threaded import serving_in_thread

pytestmark = pytest.mark.kafka

SECRET = "fuzz-secret"
TIMESTAMP = "X-Signature-Timestamp"
MAPPING = {"ticket_id": "/id", "occurred_at": "/at"}
SOURCES = parse_sources(
    {
        "jira": {"secret": SECRET},
        "zammad": {"secret": SECRET},
        "zendesk": {"secret": SECRET},
        "glpi": {"secret": SECRET},
        "grafana": {"secret": SECRET},
        "grafana-ts": {"kind": "grafana", "secret": SECRET, "timestamp_header": TIMESTAMP},
        "glpi-style": {
            "kind": "generic",
            "secret": SECRET,
            "signature_scheme": "glpi",
            "mapping": MAPPING,
        },
        "alertmanager": {"tokens": ["am-token"], "basic_auth": {"am": "pw"}},
        "servicenow": {"basic_auth": {"snow": "pw"}},
    },
    {},
)

HEADERS: dict[str, tuple[str, ...]] = {
    "jira": ("X-Hub-Signature",),
    "zammad": ("X-Hub-Signature",),
    "zendesk": ("X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"),
    "glpi": ("X-GLPI-signature", "X-GLPI-timestamp"),
    "grafana": ("X-Grafana-Alerting-Signature",),
    "grafana-ts": ("X-Grafana-Alerting-Signature", TIMESTAMP),
    "glpi-style": ("X-GLPI-signature", "X-GLPI-timestamp"),
    "alertmanager": (),
    "servicenow": (),
}
"""Each source's signature and timestamp headers; every one is sent ``Authorization`` too."""

BODIES = {
    "jira": sample("jira-issue_created.json"),
    "zammad": sample("zammad-ticket-default.json"),
    "zendesk": sample("zendesk-ticket.created.json"),
    "grafana": sample("grafana-alerting-firing.json"),
    "grafana-ts": sample("grafana-alerting-firing.json"),
    "alertmanager": sample("alertmanager-v4-firing.json"),
}
GENERIC_BODY = b'{"id": "T-1", "at": "2026-11-26T08:00:00Z"}'

EDGES = [
    "1000000000000000000",  # 10^18: past the platform's gmtime
    "-1000000000000000000",
    "1e18",
    "1e400",
    "9" * 30,  # past time_t
    "-" + "9" * 30,
    "9" * 5000,  # past int()'s digit limit
    "253402300800",  # 10000-01-01
    "-62135596801",  # before the year 1
    "-0",
    "+0",
    "0",
    "00",
    "0x10",
    "1_000",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "١٢٣",  # Arabic-Indic digits, which int() reads
    "１２３",  # fullwidth digits
    "²",
    "1.5",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "10000-01-01T00:00:00Z",
    "2026-11-26T08:00:00Z",
    "2026-02-30T00:00:00Z",
    "",
    "é",
    "\u2028",
    "sha256=",
    "sha1=",
    "=",
    "sha256=" + "g" * 64,
    "sha256=" + "é" * 64,
    "md5=abc",
    "Bearer",
    "Bearer ",
    "Bearer é",
    "bearer am-token-not",
    "Basic",
    "Basic é",
    "Basic !!!!",
    "Basic /w==",  # base64 of a byte that is not UTF-8
    "Basic YW0=",  # "am", no colon
    "Basic " + "A" * 6000,
    "x" * 6000,
]
"""Values at and past the edges of what each header's parser reads."""

_FIELD_VALUE = re.compile(
    rb"([\x21-\x7e\x80-\xff]([\x20\x09\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)
"""RFC 9110's field-value: visible characters and obs-text, spaces and tabs only inside."""


def _sendable(value: bytes) -> bytes:
    """``value`` cut to what an HTTP/1.1 header value may hold (no control characters, no
    whitespace at either end): what a client can put on the wire at all."""
    kept = bytes(c for c in value if c in (0x20, 0x09) or 0x21 <= c <= 0x7E or c >= 0x80)
    kept = kept.strip(b" \t")
    assert _FIELD_VALUE.fullmatch(kept)
    return kept


values: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(EDGES).map(str.encode),
    st.text(max_size=40).map(str.encode),
    st.binary(max_size=40),
    st.from_regex(r"-?[0-9]{1,25}", fullmatch=True).map(str.encode),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.floats().map(lambda x: repr(x).encode()),
    st.datetimes().map(lambda at: at.isoformat().encode()),
    # Fresh timestamps: the signature beside them is then checked against the body.
    st.integers(min_value=-600, max_value=600).map(lambda s: str(int(time.time()) + s).encode()),
    st.just(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()),
).map(_sendable)


@st.composite
def header_lists(draw: st.DrawFn, source: str) -> list[tuple[str, bytes]]:
    """The headers of one request to ``source``: each of its headers absent, once, or twice."""
    headers: list[tuple[str, bytes]] = []
    for name in (*HEADERS[source], "Authorization"):
        for value in draw(st.lists(values, max_size=2)):
            headers.append((name, value))
    return headers


@pytest.fixture
def base_url(settings: IngestSettings) -> Iterator[str]:
    """The app with ``SOURCES``, no failed authentication per address ever refused."""
    lifted = settings.model_copy(
        update={"unauth_burst": 1_000_000_000, "unauth_per_minute": 1_000_000_000.0}
    )
    with serving_in_thread(create_app(lifted, SOURCES)) as base:
        yield base


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def deliver(client: httpx.Client, source: str, headers: list[tuple[str, bytes]]) -> str | None:
    """Post ``source``'s body with ``headers``; what is wrong with the answer unless a 401."""
    body = BODIES.get(source, GENERIC_BODY)
    sent = [(b"Content-Type", b"application/json")]
    sent += [(name.encode(), value) for name, value in headers]
    response = client.post(f"/v1/webhooks/{source}", content=body, headers=sent)
    if response.status_code != 401 or not response.headers.get("WWW-Authenticate"):
        return f"POST /v1/webhooks/{source} {headers!r} → {response.status_code} {response.text}"
    assert response.json()["detail"]
    return None


@pytest.mark.parametrize("source", sorted(SOURCES))
@settings(
    max_examples=examples(short=60, long=3_000),
    deadline=None,
    # One served app answers every example: it keeps nothing of a refused request.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_header_value_of_any_scheme_is_401(
    client: httpx.Client, source: str, data: st.DataObject
) -> None:
    wrong = deliver(client, source, data.draw(header_lists(source), label="headers"))
    assert wrong is None, wrong


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_edge_value_is_401(client: httpx.Client, source: str) -> None:
    """Each edge value in all of the source's headers at once, each header sent twice; and
    as the timestamp beside a well-formed signature, where the source signs one."""
    wrong: list[str | None] = []
    for value in EDGES:
        sent = _sendable(value.encode())
        headers = [(name, sent) for name in (*HEADERS[source], "Authorization")]
        wrong.append(deliver(client, source, headers + headers))
        if len(HEADERS[source]) == 2:
            signature, timestamp = HEADERS[source]
            wrong.append(deliver(client, source, [(signature, b"0" * 64), (timestamp, sent)]))
    assert [answer for answer in wrong if answer] == []
