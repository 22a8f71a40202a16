"""The sample reports of the document tests, and how their indicators must read.

``month.json`` is November 2026 of contract ``acme`` (Asia/Shanghai, ACME Ltd,
Example Ops Co) in the report JSON's shape with the documents' keys: late
tickets, outages and maintenance, two credits, a ticket title holding a
script tag, Chinese service names. ``year.json`` is the year 2026 of the same
contract, with ``months``, ``breaches_by_cause`` and ``reliability``; its
November is the month's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent

SHOWN: dict[str, dict[str, str]] = {
    "month": {
        "mean_response_time_minutes": "12.5 {min}",
        "response_overdue_rate": "7.5 %",
        "on_time_resolution_rate": "86.84 %",
        "mean_satisfaction": "93.33 %",
        "availability:network": "99.81 %",
        "availability:critical_applications": "97.83 %",
    },
    "year": {
        "mean_response_time_minutes": "14.35 {min}",
        "response_overdue_rate": "6.41 %",
        "on_time_resolution_rate": "92.73 %",
        "mean_satisfaction": "92.47 %",
        "availability:network": "99.84 %",
        "availability:critical_applications": "99.69 %",
    },
}
"""How each indicator of the samples is written in the table, by hand."""
MINUTES = {"en": "min", "zh-CN": "分钟"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def report() -> Callable[[str], dict[str, Any]]:
    """A fresh copy of a sample report by name (``month`` or ``year``)."""
    return load


@pytest.fixture
def shown() -> Callable[[str, str], dict[str, str]]:
    """Each indicator of a sample as its table cell must read in a language."""

    def written(name: str, language: str) -> dict[str, str]:
        return {key: text.format(min=MINUTES[language]) for key, text in SHOWN[name].items()}

    return written
