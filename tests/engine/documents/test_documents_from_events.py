"""Documents made from events, through ``slawatch-engine report``: the worked month (late
tickets, outages, maintenance, a credit) and twelve months of events for the yearly review.

The HTML opens in headless Chromium with every chart drawn, no console error
and no request; its indicator table states the JSON report's figures. The PDF
holds the cover and the indicator table on its first pages, in English and in
Chinese with an embedded CJK font.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from slawatch_engine.main import main

COMPLIANCE = Path(__file__).parents[1] / "compliance"
CONFIG = COMPLIANCE / "contract.yaml"
AS_OF = "2026-12-01T09:30:00+08:00"
CHROMIUM = shutil.which("chromium")
DRAWN = """() => [...document.querySelectorAll('.chart[data-chart]')].every(chart => {
    const svg = chart.querySelector('svg');
    return svg && svg.getBoundingClientRect().width > 0
        && svg.querySelectorAll('.role-mark > *').length > 0;
})"""


def report(tmp_path: Path, events: Path, period: str, fmt: str, *extra: str) -> Path:
    out = tmp_path / f"{period}-{'-'.join(extra) or 'default'}.{fmt}"
    args = ["report", "--config", str(CONFIG), "--events", str(events), "--contract", "acme"]
    args += ["--period", period, "--as-of", AS_OF if period != "2026" else "2027-01-02T00:00Z"]
    assert main([*args, "--format", fmt, "--out", str(out), *extra]) == 0
    return out


def pdf_text(path: Path, last_page: int) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-l", str(last_page), str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def embedded_cjk(path: Path) -> bool:
    fonts = subprocess.run(
        ["pdffonts", str(path)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    return any("CJK" in line and " yes " in line for line in fonts)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make reports)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_offline(browser: Browser, path: Path, screenshot: Path) -> dict[str, str]:
    """Open ``path``; assert every chart drew, nothing was requested or logged as an error;
    save a screenshot; the indicator cells' exact values (``data-value``)."""
    errors: list[str] = []
    requests: list[str] = []
    url = path.as_uri()
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "request",
            lambda r: None if r.url == url or r.url.startswith("data:") else requests.append(r.url),
        )
        page.goto(url, wait_until="load")
        assert page.locator(".chart[data-chart]").count() >= 3
        page.wait_for_function(DRAWN, timeout=20_000)
        page.screenshot(path=screenshot, full_page=True)
        cells = page.eval_on_selector_all(
            "td[data-indicator]", "cells => cells.map(c => [c.dataset.indicator, c.dataset.value])"
        )
    finally:
        page.close()
    assert errors == []
    assert requests == []
    assert screenshot.stat().st_size > 50_000
    return dict(cells)


def indicator_values(data: dict[str, Any]) -> dict[str, str]:
    figures = {k: v for k, v in data["indicators"].items() if k != "availability"}
    figures |= {f"availability:{g}": v for g, v in data["indicators"]["availability"].items()}
    return {key: "" if f["value"] is None else str(f["value"]) for key, f in figures.items()}


def test_the_worked_month_as_html_in_a_browser_and_as_pdf(browser: Browser, tmp_path: Path) -> None:
    events = COMPLIANCE / "month.ndjson"
    data = json.loads(report(tmp_path, events, "2026-11", "json", "--summary").read_text())
    assert data["late"]["total"] >= 1
    assert data["credit_percent"] == 25.0
    assert any(s["outages"] for s in data["services"].values())
    html = report(tmp_path, events, "2026-11", "html")
    cells = open_offline(browser, html, tmp_path / "month.png")
    assert {k: float(v) for k, v in cells.items() if v} == {
        k: float(v) for k, v in indicator_values(data).items() if v
    }
    assert set(cells) == set(indicator_values(data))
    for language, title in (("en", "Service level report"), ("zh-CN", "服务水平报告")):
        pdf = report(tmp_path, events, "2026-11", "pdf", "--lang", language)
        text = pdf_text(pdf, 3)
        assert title in text
        assert "ACME Ltd" in text
        assert "Example Ops Co" in text
        assert "2026-11" in text
        for figure in ("30 ", "10 %", "90 %", "75 %", "99.81 %", "97.83 %"):
            assert figure in text, figure
        assert embedded_cjk(pdf)


def twelve_months() -> list[dict[str, Any]]:
    """A year of contract ``acme``: each month four network tickets (P1: 15 min to respond,
    4 h to resolve), the n-th month's last one answered late; and each month one outage of
    the core network of n × 10 minutes."""
    events: list[dict[str, Any]] = []

    def add(kind: str, at: str, data: dict[str, Any]) -> None:
        events.append(
            {
                "event_id": f"y-{len(events)}",
                "type": kind,
                "occurred_at": at,
                "source": "alertmanager" if kind.startswith("monitor.") else "helpdesk",
                "data": data,
            }
        )

    for month in range(1, 13):
        for n in range(1, 5):
            ticket = f"Y{month}-{n}"
            day = f"2026-{month:02d}-{10 + n:02d}"
            add(
                "ticket.created",
                f"{day}T09:00:00+08:00",
                {"id": ticket, "priority": "P1", "service": "network", "title": f"Link down {n}"},
            )
            late = n == 4
            add("ticket.responded", f"{day}T09:{40 if late else 10}:00+08:00", {"id": ticket})
            add("ticket.resolved", f"{day}T11:00:00+08:00", {"id": ticket})
        starts, minutes = f"2026-{month:02d}-05T03:00:00+08:00", month * 10
        ends = f"2026-{month:02d}-05T{3 + minutes // 60:02d}:{minutes % 60:02d}:00+08:00"
        alert = {"service": "core-net", "name": "Down", "fingerprint": f"M{month}"}
        add("monitor.alert_firing", starts, {**alert, "starts_at": starts})
        add("monitor.alert_resolved", ends, {**alert, "starts_at": starts, "ends_at": ends})
    return events


def test_the_yearly_review_of_twelve_months_of_events(browser: Browser, tmp_path: Path) -> None:
    events = tmp_path / "year.ndjson"
    events.write_text("\n".join(json.dumps(e) for e in twelve_months()) + "\n")
    data = json.loads(report(tmp_path, events, "2026", "json").read_text())
    months = data["months"]
    assert [m["period"] for m in months] == [f"2026-{n:02d}" for n in range(1, 13)]
    assert all(m["tickets"] == 4 for m in months)
    assert all(m["indicators"]["response_overdue_rate"]["value"] == 25.0 for m in months)
    causes = {c["cause"]: c["total"] for c in data["breaches_by_cause"]}
    assert causes["response"] == 12
    core = data["reliability"]["core-net"]
    assert core["outages"] == 12
    assert core["downtime_minutes"] == sum(10 * n for n in range(1, 13))
    assert core["mtrs_minutes"] == 65.0

    html = report(tmp_path, events, "2026", "html")
    open_offline(browser, html, tmp_path / "year.png")
    pdf = report(tmp_path, events, "2026", "pdf", "--lang", "zh-CN")
    text = pdf_text(pdf, 99)
    assert "服务回顾" in text
    for month in range(1, 13):
        assert f"2026-{month:02d}" in text
    assert "平均故障间隔" in text  # MTBF
    assert embedded_cjk(pdf)
