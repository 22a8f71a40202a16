"""The interactive HTML report in a real browser: headless Chromium through Playwright.

The page is opened from a file, as a recipient would open it: every chart must
be drawn, no request may leave the page and nothing may be logged as an
error. Skipped where Debian's chromium is not installed (``make reports``
installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request, sync_playwright

from slawatch_engine.documents import chart_specs, render_html

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make reports)")

DRAWN = """() => [...document.querySelectorAll('.chart[data-chart]')].every(chart => {
    const svg = chart.querySelector('svg');
    if (!svg) return false;
    const box = svg.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && svg.querySelectorAll('.role-mark > *').length > 0;
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize(
    ("name", "language"), [("month", "en"), ("month", "zh-CN"), ("year", "zh-CN"), ("year", "en")]
)
def test_the_interactive_report_draws_every_chart_offline(
    browser: Browser,
    report: Callable[[str], dict[str, Any]],
    shown: Callable[[str, str], dict[str, str]],
    tmp_path: Path,
    name: str,
    language: str,
) -> None:
    data = report(name)
    path = tmp_path / "report.html"
    path.write_text(render_html(data, language=language), encoding="utf-8")
    url = path.as_uri()
    errors: list[str] = []
    requests: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def request(sent: Request) -> None:
        if sent.url != url and not sent.url.startswith(("data:", "about:")):
            requests.append(sent.url)

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.on("console", console)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", request)
        page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
        page.goto(url, wait_until="load")
        charts = page.eval_on_selector_all(
            ".chart[data-chart]", "charts => charts.map(c => c.dataset.chart)"
        )
        assert charts == list(chart_specs(data, language=language))
        page.wait_for_function(DRAWN, timeout=20_000)
        screenshot = tmp_path / "report.png"
        page.screenshot(path=screenshot, full_page=True)
        assert screenshot.stat().st_size > 50_000

        cells = page.eval_on_selector_all(
            "td[data-indicator]",
            "cells => cells.map(c => [c.dataset.indicator, c.innerText.trim()])",
        )
        assert dict(cells) == shown(name, language)
        assert page.get_by_text("<script>alert(1)</script>").count() >= 1
    finally:
        page.close()
    assert errors == []
    assert requests == []
