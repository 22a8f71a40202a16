"""The conformance table: worked cases from public SLA and business-time test suites.

Each case in ``conformance/cases.yaml`` cites the test it comes from (Znuny,
Zammad, GLPI, biz, business_time, businesstime, businesstimedelta) and, where
the source's convention differs from ours, how its expectation was converted.
Deadlines are compared as instants.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from slawatch_engine.preview import Previewer

CASES = yaml.safe_load((Path(__file__).parent / "conformance" / "cases.yaml").read_text())


def test_the_table_is_large_and_cited() -> None:
    assert len(CASES) >= 40
    assert len({case["id"] for case in CASES}) == len(CASES)
    assert all(case["source"].strip() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case: dict[str, Any]) -> None:
    answer = Previewer({}).answer(_jsonable(case["request"]))
    expected = case["expect"]
    assert "error" not in answer, answer
    if "deadline" in expected:
        got = datetime.fromisoformat(answer["deadline"])
        assert got == datetime.fromisoformat(str(expected["deadline"])), case["note"]
    else:
        assert answer["business_seconds"] == pytest.approx(expected["business_seconds"])


def _jsonable(value: Any) -> Any:
    """YAML reads bare dates and times as objects; requests carry them as text."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
