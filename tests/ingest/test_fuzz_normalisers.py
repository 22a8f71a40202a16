"""Every source normaliser, fed generated bodies and headers: a result or ``PayloadError``.

The contract (``sources.canonical``): a normaliser returns a ``Normalised``
whose events the publisher can key and encode, or raises ``PayloadError``
(answered 422). Any other exception escapes ``webhooks_api`` as a 500, so
here it fails the test.

Pure: the normalisers only, every kind configured (``ingest.fuzzing``), fed
arbitrary objects and mutated real samples — a few hundred inputs a source
in ``make test``, thousands in ``make fuzz`` (``support.fuzz``). Inputs that
crashed a normaliser are pinned in ``test_inputs_found_by_fuzzing``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.fuzzing import FOUND, SAMPLES, headers, mutated_sample, objects, sample_headers
from ingest.fuzzing import source_section as fuzz_sources
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_common.topics import Topics
from slawatch_ingest.parsing import encode
from slawatch_ingest.publishing import destination
from slawatch_ingest.sources.canonical import Normalised, PayloadError
from slawatch_ingest.sources.config import KINDS as KIND_NAMES
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.registry import KINDS
from slawatch_ingest.webhook_config import parse_sources
from support.fuzz import examples

SOURCES: dict[str, SourceConfig] = parse_sources(fuzz_sources(), {})

FUZZ = settings(
    max_examples=examples(short=100, long=5_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_contract(source: str, body: Mapping[str, Any], with_headers: Mapping[str, str]) -> None:
    """``source``'s normaliser answers ``body`` with a usable ``Normalised`` or ``PayloadError``."""
    config = SOURCES[source]
    try:
        outcome = KINDS[config.kind].normalise(body, with_headers, config)
    except PayloadError:
        return
    assert isinstance(outcome, Normalised)
    for event in outcome.events:
        assert isinstance(event, TicketEvent | MonitoringEvent)
        # What the publisher does with each event must not fail either.
        destination(event, Topics())
        json.loads(encode(event))


def test_every_kind_is_fuzzed_with_samples() -> None:
    assert {config.kind for config in SOURCES.values()} == set(KIND_NAMES)
    assert set(SAMPLES) == set(SOURCES)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_samples_as_they_are_keep_the_contract(source: str) -> None:
    for body in SAMPLES[source]:
        check_contract(source, body, sample_headers(source))


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(body=objects, with_headers=headers)
def test_arbitrary_objects_keep_the_contract(
    source: str, body: dict[str, Any], with_headers: dict[str, str]
) -> None:
    check_contract(source, body, with_headers)


@pytest.mark.parametrize("source", sorted(SOURCES))
@FUZZ
@given(data=st.data())
def test_mutated_samples_keep_the_contract(source: str, data: st.DataObject) -> None:
    body = data.draw(mutated_sample(source), label="body")
    extra = data.draw(headers, label="extra headers")
    check_contract(source, body, sample_headers(source) | extra)


@pytest.mark.parametrize(("source", "body"), FOUND.values(), ids=FOUND.keys())
def test_inputs_found_by_fuzzing(source: str, body: dict[str, Any]) -> None:
    check_contract(source, body, sample_headers(source))
