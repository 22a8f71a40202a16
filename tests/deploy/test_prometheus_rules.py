"""The shipped Prometheus rules (deploy/prometheus): promtool, and a real Prometheus.

``promtool`` checks the rule files and the example configuration and runs the
rule unit tests of ``deploy/prometheus/tests``, so ``pytest`` guards them as
``make rules-test`` does; every recording rule and every alert must be
exercised there. Then a real Prometheus (Debian's, ``make prometheus``)
scrapes a small exposition written with ``prometheus_client``, as the SLA
engine writes its own, evaluates the rules and answers the queries a
dashboard would make.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from support.prometheus import (
    DEPLOY,
    PROMTOOL,
    Prometheus,
    Sample,
    one_value,
    require,
    rule_files,
)
from support.serving import serving

UNIT_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))


def promtool(*args: str | Path) -> str:
    """Run promtool; its output, after asserting that it succeeded."""
    done = subprocess.run(
        [str(require(PROMTOOL)), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_the_rule_files_pass_promtool_check() -> None:
    files = rule_files()
    assert [path.name for path in files] == ["slawatch-compliance.rules.yml"]
    output = promtool("check", "rules", *files)
    assert "SUCCESS: 41 rules found" in output


def test_the_rule_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 4
    output = promtool("test", "rules", *UNIT_TESTS)
    assert output.count("SUCCESS") == len(UNIT_TESTS), output


def test_the_example_configuration_passes_promtool_check() -> None:
    output = promtool("check", "config", DEPLOY / "prometheus.yml")
    assert "1 rule files found" in output
    assert "SUCCESS: 41 rules found" in output


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            yield from group["rules"]


def unit_tests() -> Iterator[dict[str, Any]]:
    for path in UNIT_TESTS:
        yield from yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]


def test_every_recording_rule_has_expected_samples() -> None:
    expressions = [
        case["expr"]
        for test in unit_tests()
        for case in test.get("promql_expr_test", [])
        if case["exp_samples"]
    ]
    records = [rule["record"] for rule in rules() if "record" in rule]
    assert len(records) == 29
    untested = [
        name
        for name in records
        if not any(re.search(re.escape(name) + r"(?![\w:])", expr) for expr in expressions)
    ]
    assert untested == []


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for test in unit_tests():
        for case in test.get("alert_rule_test", []):
            if not case["exp_alerts"]:
                silent.add(case["alertname"])
            for alert in case["exp_alerts"]:
                fired.add((case["alertname"], alert["exp_labels"]["severity"]))
    alerts = {(rule["alert"], rule["labels"]["severity"]) for rule in rules() if "alert" in rule}
    assert len(alerts) == 12  # 3 burn-rate alerts x page/ticket, 5 target misses, 1 allowance
    assert alerts - fired == set()
    assert {name for name, _ in alerts} - silent == set()


def exposition() -> tuple[CollectorRegistry, dict[str, Any]]:
    """The engine's compliance series for contract acme, every one at 0 to begin with."""
    registry = CollectorRegistry()
    clocks = Counter(
        "slawatch_compliance_clocks_completed",
        "Clocks stopped, by outcome.",
        ["contract", "policy", "metric", "priority", "outcome"],
        registry=registry,
    )
    response = Histogram(
        "slawatch_compliance_response_business_seconds",
        "Business seconds counted by stopped response clocks.",
        ["contract", "policy", "priority"],
        buckets=[60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400],
        registry=registry,
    )
    objective = Gauge(
        "slawatch_compliance_objective_ratio",
        "Ratio objectives.",
        ["contract", "indicator"],
        registry=registry,
    )
    objective_seconds = Gauge(
        "slawatch_compliance_objective_seconds",
        "Duration objectives.",
        ["contract", "indicator"],
        registry=registry,
    )
    objective.labels("acme", "on_time_resolution_rate").set(0.9)
    objective.labels("acme", "response_overdue_rate").set(0.1)
    objective_seconds.labels("acme", "mean_response_time").set(1800)
    children: dict[str, Any] = {
        f"{metric}_{outcome}": clocks.labels("acme", "p1", metric, "P2", outcome)
        for metric in ("resolution", "response")
        for outcome in ("met", "breached")
    }
    for child in children.values():
        child.inc(0)
    children["response_time"] = response.labels("acme", "p1", "P2")
    return registry, children


def labels_only(samples: list[Sample]) -> list[dict[str, str]]:
    return [labels for labels, _ in samples]


async def test_a_real_prometheus_records_the_indicators_and_fires_an_alert(
    tmp_path: Path,
) -> None:
    registry, series = exposition()
    app = FastAPI()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async with serving(app) as base:
        target = base.removeprefix("http://")
        async with Prometheus([target], tmp_path) as prometheus:
            # increase() extrapolates from the samples it has to the ends of
            # its range, so a counter already at 10 in its only samples
            # would count 0, and one seen for a few seconds is scaled by
            # (seconds to the evaluation + sampled seconds) / sampled
            # seconds. Hence every counter is exposed at 0 first and steps
            # up only once Prometheus holds those zeros: a counter starting
            # at 0 is not extrapolated backwards (it cannot have been below
            # 0), and all of them are scraped together, so each increase is
            # scaled by the same factor, which a ratio of two sums cancels.
            await prometheus.wait_for(
                "slawatch_compliance_clocks_completed_total == 0", lambda got: len(got) == 4
            )
            await prometheus.wait_for(
                "slawatch_compliance_response_business_seconds_count == 0",
                lambda got: len(got) == 1,
            )

            series["resolution_met"].inc(9)
            series["resolution_breached"].inc(1)
            series["response_met"].inc(8)
            series["response_breached"].inc(2)
            for seconds in (600, 1200, 1800, 2400):
                series["response_time"].observe(seconds)

            # 9 of 10 resolutions on time; (600 + 1200 + 1800 + 2400) / 4 s
            # to respond; 2 of 10 responses overdue.
            expected = {
                "contract:slawatch_on_time_resolution:ratio_rate30d": 0.9,
                "contract:slawatch_response_business_seconds:mean30d": 1500.0,
                "contract:slawatch_response_overdue:ratio_rate30d": 0.2,
            }
            for name, value in expected.items():
                samples = await prometheus.wait_for(name, one_value(value))
                # One series per contract: the scrape's job and instance are summed away.
                assert labels_only(samples) == [{"__name__": name, "contract": "acme"}]

            # 20 % overdue against a limit of < 10 %: the miss fires, matched
            # with the objective gauge the exposition carries.
            firing = await prometheus.wait_for(
                'ALERTS{alertname="SlawatchResponseOverdueAtOrAboveLimit",alertstate="firing"}',
                lambda got: len(got) == 1,
            )
            assert labels_only(firing) == [
                {
                    "__name__": "ALERTS",
                    "alertname": "SlawatchResponseOverdueAtOrAboveLimit",
                    "alertstate": "firing",
                    "contract": "acme",
                    "indicator": "response_overdue_rate",
                    "severity": "ticket",
                }
            ]
            (alert,) = [
                alert
                for alert in await prometheus.alerts()
                if alert["labels"]["alertname"] == "SlawatchResponseOverdueAtOrAboveLimit"
            ]
            assert alert["annotations"] == {
                "summary": "Contract acme misses its response overdue limit",
                "description": "20% of the responses of contract acme in the last 30 days "
                "were overdue, not below its limit.",
            }


def test_a_missing_binary_skips_the_test_outside_ci_and_fails_it_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = Path("/nonexistent/prometheus")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make prometheus"):
        require(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="make prometheus"):
        require(missing)
    assert require(PROMTOOL) == PROMTOOL
