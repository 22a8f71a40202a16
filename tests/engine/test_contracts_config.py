"""The ``contracts`` section of the configuration: what loads, and where each error is."""

from __future__ import annotations

from pathlib import Path

import pytest

from slawatch_common.runtime import ConfigError
from slawatch_engine.contracts import Contract
from slawatch_engine.main import main
from slawatch_engine.policy import load_policies

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"

ENGINE = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: net
    match: {service: [network]}
    calendar: always
    targets: {P1: {response: 15m, resolution: 4h}}
  - name: office
    calendar: always
    targets: {P3: {response: 1h, resolution: 16h}}
"""

CONTRACT = """
contracts:
  acme:
    customer: ACME Ltd
    provider: Example Ops Co
    time_zone: Asia/Shanghai
    term: {start: "2026-01-01", end: "2026-12-31"}
    review: quarterly
    policies: [net, office]
    targets: {mean_response_time: 20m, on_time_resolution_rate: 95}
    availability:
      network: {services: [core-net], target: 99.9}
    maintenance:
      - {services: [core-net], rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", duration: 2h}
      - {services: [core-net], start: "2026-11-08T02:00:00+08:00", end: "2026-11-08T04:00:00+08:00"}
    credits:
      cap_percent: 30
      tiers:
        - {indicator: on_time_resolution_rate, below: 95, percent: 5}
        - {indicator: mean_response_time, above: 20, percent: 5}
        - {indicator: response_overdue_rate, at_least: 10, percent: 5}
        - {indicator: "availability:network", below: 99.9, percent: 10}
    report_to: [supervisor, "group:l2"]
    escalation: standard
  globex:
    customer: Globex
    provider: Example Ops Co
    policies: [office]
"""

NOTIFIER = """
notifier:
  people:
    supervisor: {name: Service desk supervisor, email: supervisor@example.com}
    zhang.min: {name: Zhang Min, email: zhang.min@example.com}
  groups:
    l2: {name: Second line, members: [zhang.min]}
  escalations:
    standard:
      - on: breach
        notify: [{to: supervisor, via: email}]
"""

VALID = ENGINE + CONTRACT + NOTIFIER


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slawatch.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_policies(write(tmp_path, text))
    return str(caught.value)


def test_a_valid_contract_loads_and_names_the_policies_it_covers(tmp_path: Path) -> None:
    book = load_policies(write(tmp_path, VALID))
    assert set(book.contracts) == {"acme", "globex"}
    assert book.contracts_of("net") == ("acme",)
    assert book.contracts_of("office") == ("acme", "globex")
    assert book.contracts_of("unknown") == ()
    acme = book.contracts["acme"]
    assert (acme.time_zone, acme.review, acme.escalation) == (
        "Asia/Shanghai",
        "quarterly",
        "standard",
    )
    assert acme.targets.mean_response_time == 1200
    assert acme.targets.on_time_resolution_rate == 95
    assert acme.targets.response_overdue_rate == 10  # the defaults fill what is not given
    assert acme.credits is not None
    assert acme.credits.cap_percent == 30
    assert [tier.bound for tier in acme.credits.tiers] == [
        ("below", 95),
        ("above", 20),
        ("at_least", 10),
        ("below", 99.9),
    ]
    assert acme.services() == ["core-net"]
    assert acme.report_to == ["supervisor", "group:l2"]


def test_the_defaults_of_a_contract(tmp_path: Path) -> None:
    globex: Contract = load_policies(write(tmp_path, VALID)).contracts["globex"]
    assert (globex.time_zone, globex.review, globex.term) == ("UTC", "monthly", None)
    targets = globex.targets
    assert (
        targets.mean_response_time,
        targets.on_time_resolution_rate,
        targets.response_overdue_rate,
        targets.mean_satisfaction,
    ) == (1800, 90, 10, 90)
    assert (globex.availability, globex.maintenance, globex.credits) == ({}, [], None)
    assert (globex.report_to, globex.escalation) == ([], None)


def test_the_example_configuration_passes_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == f"{EXAMPLE}: ok"


def test_check_config_refuses_a_bad_contract_naming_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, VALID.replace("policies: [net, office]", "policies: [nowhere]"))
    assert main(["check-config", str(bad)]) == 1
    assert "contracts.acme.policies.0: unknown policy 'nowhere'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "place", "message"),
    [
        pytest.param(
            ("policies: [net, office]", "policies: [net, nowhere]"),
            "contracts.acme.policies.1",
            "unknown policy 'nowhere'",
            id="unknown-policy",
        ),
        pytest.param(
            ("indicator: on_time_resolution_rate", "indicator: uptime"),
            "contracts.acme",
            "credits.tiers.0.indicator: unknown indicator 'uptime'",
            id="unknown-indicator",
        ),
        pytest.param(
            ('indicator: "availability:network"', 'indicator: "availability:apps"'),
            "contracts.acme",
            "credits.tiers.3.indicator: unknown indicator 'availability:apps'",
            id="unknown-group",
        ),
        pytest.param(
            ("mean_response_time, above: 20", "mean_response_time, below: 20"),
            "contracts.acme.credits.tiers.1",
            "a tier of mean_response_time names one bound: above or at_least",
            id="below-for-a-low-indicator",
        ),
        pytest.param(
            ("on_time_resolution_rate, below: 95", "on_time_resolution_rate, above: 95"),
            "contracts.acme.credits.tiers.0",
            "a tier of on_time_resolution_rate names one bound: below",
            id="above-for-a-high-indicator",
        ),
        pytest.param(
            ("at_least: 10, percent", "at_least: 10, above: 12, percent"),
            "contracts.acme.credits.tiers.2",
            "a tier of response_overdue_rate names one bound: above or at_least",
            id="two-bounds",
        ),
        pytest.param(
            ("below: 95, percent: 5", "percent: 5"),
            "contracts.acme.credits.tiers.0",
            "names one bound",
            id="no-bound",
        ),
        pytest.param(
            ("time_zone: Asia/Shanghai", "time_zone: Mars/Olympus"),
            "contracts.acme",
            "time_zone: unknown time zone 'Mars/Olympus'",
            id="unknown-zone",
        ),
        pytest.param(
            ("BYDAY=SU;BYHOUR=2", "BYHOUR=2"),
            "contracts.acme.maintenance.0",
            "rrule: FREQ=WEEKLY needs BYDAY",
            id="rrule-without-days",
        ),
        pytest.param(
            ("BYDAY=SU;BYHOUR=2", "BYDAY=SU;BYHOUR=2;COUNT=3"),
            "contracts.acme.maintenance.0",
            "rrule: no COUNT",
            id="rrule-with-count",
        ),
        pytest.param(
            ("network: {services: [core-net]", "network: {services: [core-net, core-net]"),
            "contracts.acme.availability.network",
            "listed twice: core-net",
            id="service-listed-twice",
        ),
        pytest.param(
            ("duration: 2h", "duration: 8d"),
            "contracts.acme.maintenance.0",
            "longer than the rule's frequency",
            id="window-longer-than-its-week",
        ),
        pytest.param(
            ('end: "2026-11-08T04:00:00+08:00"', 'end: "2026-11-08T01:00:00+08:00"'),
            "contracts.acme.maintenance.1",
            "a maintenance window must end after it starts",
            id="window-ending-before-it-starts",
        ),
        pytest.param(
            ("on_time_resolution_rate: 95}", "on_time_resolution_rate: 101}"),
            "contracts.acme.targets.on_time_resolution_rate",
            "less than or equal to 100",
            id="target-over-100",
        ),
        pytest.param(
            ('end: "2026-12-31"', 'end: "2025-12-31"'),
            "contracts.acme.term",
            "term.end is before term.start",
            id="term-backwards",
        ),
        pytest.param(
            ("review: quarterly", "review: weekly"),
            "contracts.acme.review",
            "'monthly', 'quarterly' or 'yearly'",
            id="unknown-review",
        ),
        pytest.param(
            ("cap_percent: 30", "cap_percent: 30\n      ceiling: 40"),
            "contracts.acme.credits.ceiling",
            "Extra inputs are not permitted",
            id="unknown-key",
        ),
    ],
)
def test_each_contract_error_names_its_place(
    tmp_path: Path, change: tuple[str, str], place: str, message: str
) -> None:
    old, new = change
    assert old in VALID
    error = error_of(tmp_path, VALID.replace(old, new, 1))
    assert place in error
    assert message in error


def test_report_to_names_people_or_groups_of_the_notifier(tmp_path: Path) -> None:
    error = error_of(tmp_path, VALID.replace('[supervisor, "group:l2"]', "[supervisor, nobody]"))
    assert "contracts.acme.report_to.1: 'nobody' is no person of the notifier" in error
    error = error_of(tmp_path, VALID.replace('"group:l2"', '"group:l9"'))
    assert "contracts.acme.report_to.1: 'group:l9' is no person of the notifier" in error
    book = load_policies(write(tmp_path, VALID.replace('"group:l2"', "zhang.min")))
    assert book.contracts["acme"].report_to == ["supervisor", "zhang.min"]


def test_the_escalation_chain_must_be_one_of_the_notifier(tmp_path: Path) -> None:
    error = error_of(tmp_path, VALID.replace("escalation: standard", "escalation: urgent"))
    assert "contracts.acme.escalation: unknown escalation chain 'urgent'" in error


def test_both_cross_checks_are_reported_together(tmp_path: Path) -> None:
    text = VALID.replace("escalation: standard", "escalation: urgent").replace(
        '"group:l2"', "nobody"
    )
    error = error_of(tmp_path, text)
    assert "contracts.acme.report_to.1" in error
    assert "contracts.acme.escalation" in error


def test_without_a_notifier_section_the_cross_checks_are_skipped(tmp_path: Path) -> None:
    text = (ENGINE + CONTRACT).replace("escalation: standard", "escalation: urgent")
    book = load_policies(write(tmp_path, text.replace('"group:l2"', "nobody")))
    acme = book.contracts["acme"]
    assert (acme.report_to, acme.escalation) == (["supervisor", "nobody"], "urgent")
