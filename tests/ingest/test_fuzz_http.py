"""The ingest API under fuzzing, served on the shared broker: no request gets a 5xx.

The app is served by uvicorn (in a thread, lifespan and all) with every kind
of webhook source configured (``ingest.fuzzing``) to take the test's bearer
token and without rate limits, so generated requests get past
authentication into parsing, normalising and producing.

* ``test_no_request_by_the_document_gets_a_5xx``: schemathesis reads the
  app's own OpenAPI document and runs its phases on every operation
  (explicit examples, coverage, fuzzing; valid and invalid data). The one
  check is ``not_a_server_error``.
* ``test_no_mutated_delivery_gets_a_5xx``: the document can only say that a
  webhook body is an object, so hypothesis posts mutated real deliveries
  (``ingest.fuzzing.mutated``) to each source.

A few dozen examples an operation or source in ``make test``, thousands in
``make fuzz`` (``support.fuzz``). 4xx answers to garbage are the contract;
a 5xx is a bug (503 would mean the broker failed, which it does not here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error

from ingest.fuzzing import FOUND, mutated_sample, sample_headers, source_section
from ingest.harness import AUTH, TOKEN
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.sources.config import KINDS
from slawatch_ingest.webhook_config import parse_sources
from support.fuzz import examples
from support.threaded import serving_in_thread

pytestmark = pytest.mark.kafka

UNLIMITED = {"per_second": 1_000_000, "burst": 1_000_000}
UNLIMITED_FAILURES = {"unauth_per_minute": 1e12, "unauth_burst": 1_000_000_000}


def open_sources() -> dict[str, Any]:
    """Every source of the fuzz, each taking ``TOKEN`` and never rate-limited.

    Every kind accepts bearer tokens besides its signature, so signing is not
    in the way; without limits the fuzzer never meets a 429 instead of a bug.
    """
    section = source_section()
    for kind in KINDS:
        if kind != "generic":
            section.setdefault(kind, {})
    for entry in section.values():
        entry.update(tokens=[TOKEN], rate_limit=UNLIMITED)
    return section


SOURCES = parse_sources(open_sources(), {})


def openapi_document() -> dict[str, Any]:
    """The document the app serves with ``SOURCES`` (building the app does no I/O)."""
    return create_app(IngestSettings(), SOURCES).openapi()


def aimed_at_the_sources(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``{source}`` narrowed to the configured names.

    The app documents it as any string, and random strings would all be 404;
    schemathesis' invalid-data phases still send other names.
    """
    narrowed = copy.deepcopy(document)
    for parameter in narrowed["paths"]["/v1/webhooks/{source}"]["post"]["parameters"]:
        if parameter["name"] == "source":
            parameter["schema"] = {"type": "string", "enum": sorted(SOURCES)}
    return narrowed


# NDJSON bodies are documented as one string: send it as text, as a client would.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Loaded from the document, not from a fixture: schemathesis' lazy
# ``from_fixture`` fails under pytest 9 (it sets ``Function._nodeid``). The
# fixture below checks that the served document is this one.
schema = schemathesis.openapi.from_dict(aimed_at_the_sources(openapi_document()))


@pytest.fixture
def base_url(settings: IngestSettings) -> Iterator[str]:
    """The app on the shared broker, under the test's own topics.

    Failed authentication is never limited: generated requests the app refuses
    401 would otherwise soon have every later one answered 429, unexamined.
    """
    unlimited = settings.model_copy(update=UNLIMITED_FAILURES)
    with serving_in_thread(create_app(unlimited, SOURCES)) as base:
        assert httpx.get(f"{base}/openapi.json").json() == openapi_document()
        yield base


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
        yield client


@schema.parametrize()
@settings(
    max_examples=examples(short=25, long=2_000),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_by_the_document_gets_a_5xx(case: Case[Any], base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=AUTH, checks=[not_a_server_error])


def deliver(client: httpx.Client, source: str, body: dict[str, Any]) -> None:
    """Post ``body`` to ``source``; fails on a 5xx, showing the request to replay."""
    content = json.dumps(body)
    headers = {"Content-Type": "application/json", **sample_headers(source)}
    response = client.post(f"/v1/webhooks/{source}", content=content, headers=headers)
    assert response.status_code < 500, (
        f"POST /v1/webhooks/{source} {headers} {content} → {response.status_code}"
    )


@pytest.mark.parametrize("source", sorted(SOURCES))
@settings(
    max_examples=examples(short=50, long=2_000),
    deadline=None,
    # One served app answers every example: its state (recent ids) is harmless to share.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_mutated_delivery_gets_a_5xx(
    client: httpx.Client, source: str, data: st.DataObject
) -> None:
    deliver(client, source, data.draw(mutated_sample(source), label="body"))


@pytest.mark.parametrize(("source", "body"), FOUND.values(), ids=FOUND.keys())
def test_deliveries_found_by_fuzzing_get_no_5xx(
    client: httpx.Client, source: str, body: dict[str, Any]
) -> None:
    deliver(client, source, body)
