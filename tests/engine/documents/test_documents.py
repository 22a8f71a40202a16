"""The compliance report document: HTML (interactive and static) and PDF from the report JSON.

The PDFs are read back with poppler's ``pdftotext`` and ``pdffonts`` (installed
by ``make reports``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from slawatch_engine.documents import (
    CHART_WIDTH,
    LANGUAGES,
    WORDS,
    chart_specs,
    render_html,
    render_pdf,
)

Report = Callable[[str], dict[str, Any]]
Shown = Callable[[str, str], dict[str, str]]
SCRIPT_TITLE = "<script>alert(1)</script>"
MONTH_CHARTS = [
    "daily_response_time",
    "daily_on_time_resolution",
    "availability_timeline",
    "common_services",
]
MONTH_LABELS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "zh-CN": [f"{n}月" for n in range(1, 13)],
}
COVER = {
    "en": ["Service level report", "November 2026", "2026-11-01 – 2026-11-30"],
    "zh-CN": ["服务水平报告", "2026年11月", "2026-11-01 至 2026-11-30"],
}
LABELS = {
    "en": {
        "mean_response_time_minutes": "Mean response time",
        "response_overdue_rate": "Response overdue rate",
        "on_time_resolution_rate": "On-time resolution rate",
        "mean_satisfaction": "Mean satisfaction",
        "availability:network": "Availability (network)",
        "availability:critical_applications": "Availability (critical_applications)",
    },
    "zh-CN": {
        "mean_response_time_minutes": "平均响应时间",
        "response_overdue_rate": "响应超时率",
        "on_time_resolution_rate": "按时解决率",
        "mean_satisfaction": "客户满意度",
        "availability:network": "可用性（network）",
        "availability:critical_applications": "可用性（critical_applications）",
    },
}


class _Cells(HTMLParser):
    """The indicator table's value cells: key → (data-value, text); and the review's months."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, tuple[str, str]] = {}
        self.repeated: list[str] = []
        self.month_headers: list[list[str]] = []
        self._open: tuple[str, str] | None = None
        self._text: list[str] = []
        self._in_months = False
        self._header: list[str] | None = None
        self._th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and "data-indicator" in a:
            self._open = (a["data-indicator"] or "", a.get("data-value") or "")
            self._text = []
        if tag == "table" and "months" in (a.get("class") or "").split():
            self._in_months = True
        if self._in_months and tag == "thead":
            self._header = []
        if self._header is not None and tag == "th":
            self._th, self._text = True, []

    def handle_data(self, data: str) -> None:
        if self._open is not None or self._th:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            key, value = self._open
            if key in self.cells:
                self.repeated.append(key)
            self.cells[key] = (value, "".join(self._text).strip())
            self._open = None
        if tag == "th" and self._th and self._header is not None:
            self._header.append("".join(self._text).strip())
            self._th = False
        if tag == "thead" and self._header is not None:
            self.month_headers.append(self._header)
            self._header = None
        if tag == "table":
            self._in_months = False


def cells_of(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def indicator_values(report: dict[str, Any]) -> dict[str, Any]:
    """Each indicator's value as the JSON states it, by the table's key."""
    indicators = report["indicators"]
    values = {key: indicators[key]["value"] for key in LABELS["en"] if key in indicators}
    for group, figure in indicators["availability"].items():
        values[f"availability:{group}"] = figure["value"]
    return values


def pdf_text(pdf: bytes, tmp_path: Path, first: int, last: int) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    command = ["pdftotext", "-layout", "-f", str(first), "-l", str(last), str(path), "-"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def embedded_fonts(pdf: bytes, tmp_path: Path) -> list[tuple[str, str]]:
    """(name, emb) of each font of the PDF, as pdffonts lists them."""
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(
        ["pdffonts", str(path)], check=True, capture_output=True, text=True
    ).stdout
    fonts = []
    for line in listing.splitlines()[2:]:
        columns = line.split()
        fonts.append((columns[0], columns[-5]))
    return fonts


@pytest.mark.parametrize("name", ["month", "year"])
@pytest.mark.parametrize("interactive", [True, False])
def test_each_indicator_cell_states_the_json_value(
    report: Report, shown: Shown, name: str, interactive: bool
) -> None:
    data = report(name)
    for language in LANGUAGES:
        parsed = cells_of(render_html(data, language=language, interactive=interactive))
        expected = indicator_values(data)
        assert parsed.repeated == []
        assert set(parsed.cells) == set(expected)
        for key, value in expected.items():
            data_value, text = parsed.cells[key]
            assert json.loads(data_value) == value, key
            assert text == shown(name, language)[key], key


def test_a_null_indicator_reads_as_a_dash_and_no_data(report: Report) -> None:
    data = report("month")
    data["indicators"]["mean_satisfaction"].update(value=None, met=None)
    html = render_html(data, language="en", interactive=False)
    assert cells_of(html).cells["mean_satisfaction"] == ("null", "—")
    row = re.search(r'<tr class="none">.*?</tr>', html, re.S)
    assert row is not None
    assert "no data" in row.group(0)


def test_a_rounded_value_never_contradicts_its_verdict(report: Report) -> None:
    data = report("month")
    indicators = data["indicators"]
    indicators["on_time_resolution_rate"].update(value=89.9996, met=False)
    indicators["response_overdue_rate"].update(value=9.9981, met=True)
    indicators["availability"]["network"].update(value=99.9999, target=99.99, met=True)
    cells = cells_of(render_html(data, language="en", interactive=False)).cells
    assert cells["on_time_resolution_rate"][1] == "89.9996 %"
    assert cells["response_overdue_rate"][1] == "9.998 %"
    assert cells["availability:network"][1] == "99.99 %"


@pytest.mark.parametrize("interactive", [True, False])
def test_text_from_the_report_is_escaped(report: Report, interactive: bool) -> None:
    data = report("month")
    data["customer"] = "ACME <b>Ltd</b>"
    data["common_problems"]["services"][0]["name"] = "</script><script>alert(2)</script>"
    data["services"]["<img src=x onerror=alert(3)>"] = data["services"].pop("erp")
    html = render_html(data, interactive=interactive)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "ACME &lt;b&gt;Ltd&lt;/b&gt;" in html
    for raw in (SCRIPT_TITLE, "<script>alert(2)", "<img src=x", "<b>Ltd"):
        assert raw not in html
    scripts = re.findall(r"<script[^>]*>", html)
    if interactive:
        specs = [s for s in scripts if s.startswith('<script type="application/json"')]
        assert len(specs) == len(chart_specs(data))
        assert scripts.count("<script>") == 2
        assert len(scripts) == len(specs) + 2
    else:
        assert scripts == []


def test_the_language_defaults_to_the_reports(report: Report) -> None:
    data = report("month")
    assert '<html lang="zh-CN">' in render_html(data)
    assert "服务水平报告" in render_html(data)
    english = render_html(data, language="en")
    assert '<html lang="en">' in english
    assert "Service level report" in english
    data["language"] = "en"
    assert '<html lang="en">' in render_html(data, interactive=False)


def test_an_unknown_language_is_refused(report: Report) -> None:
    data = report("month")
    with pytest.raises(ValueError, match="fr"):
        render_html(data, language="fr")
    with pytest.raises(ValueError, match="fr"):
        render_pdf(data, language="fr")
    data["language"] = "de"
    with pytest.raises(ValueError, match="de"):
        render_html(data)


def test_the_interactive_page_embeds_each_chart_as_data(report: Report) -> None:
    data = report("month")
    html = render_html(data, language="en")
    assert render_html(data, language="en") == html
    for name in MONTH_CHARTS:
        assert f'<div class="chart" data-chart="{name}">' in html
        source = re.search(
            rf'<script type="application/json" id="spec-{name}">(.*?)</script>', html, re.S
        )
        assert source is not None
        spec = json.loads(source.group(1))
        assert spec == json.loads(json.dumps(chart_specs(data, language="en")[name]))
    assert "actions: false" in html
    assert 'renderer: "svg"' in html
    assert "vegaEmbed" in html
    assert "<svg" not in html.split("<body>", 1)[1]


def test_the_static_page_draws_each_chart_as_svg(report: Report) -> None:
    html = render_html(report("month"), language="zh-CN", interactive=False)
    for name in MONTH_CHARTS:
        drawn = re.search(
            rf'<div class="chart" data-chart="{name}"><svg .*?</svg></div>', html, re.S
        )
        assert drawn is not None, name
    assert "Noto Sans CJK SC" in html
    assert "办公网络" in html


@pytest.mark.parametrize("name", ["month", "year"])
def test_charts_are_vega_lite_with_inline_data_and_a_cjk_font(report: Report, name: str) -> None:
    specs = chart_specs(report(name))
    assert list(specs) == MONTH_CHARTS + (["monthly_review"] if name == "year" else [])
    for spec in specs.values():
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert spec["width"] == CHART_WIDTH
        assert spec["config"]["font"].startswith("Noto Sans CJK SC")
        for part in [spec, *spec.get("layer", [])]:
            assert "url" not in part.get("data", {})
    timeline = specs["availability_timeline"]
    kinds = {row["kind"] for row in timeline["data"]["values"]}
    assert kinds == {"故障", "计划维护"}
    assert timeline["encoding"]["y"]["scale"]["domain"] == ["core-net", "erp", "邮件系统"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_pdf_cover_and_indicator_table(
    report: Report, shown: Shown, tmp_path: Path, language: str
) -> None:
    pdf = render_pdf(report("month"), language=language)
    assert pdf.startswith(b"%PDF-")
    cover = pdf_text(pdf, tmp_path, 1, 1)
    for text in ["Example Ops Co", "ACME Ltd", "acme", "slawatch", *COVER[language]]:
        assert text in cover, text
    assert LABELS[language]["mean_satisfaction"] not in cover
    second = pdf_text(pdf, tmp_path, 2, 2)
    lines = second.splitlines()
    assert "acme" in lines[0]
    assert COVER[language][1] in lines[0]
    assert re.search(r"\b2 ?/ ?\d+\b", second)
    for key, label in LABELS[language].items():
        row = [line for line in lines if label in line]
        assert row, label
        assert shown("month", language)[key] in row[0], (label, row[0])
    assert WORDS[language]["missed"] in second
    assert "ERP 系统" in pdf_text(pdf, tmp_path, 1, 3)
    fonts = embedded_fonts(pdf, tmp_path)
    assert any("CJK" in font and emb == "yes" for font, emb in fonts), fonts


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_year_has_its_service_review(report: Report, tmp_path: Path, language: str) -> None:
    data = report("year")
    html = render_html(data, language=language, interactive=False)
    headers = cells_of(html).month_headers
    assert headers
    assert headers[0][1:] == MONTH_LABELS[language]
    assert WORDS[language]["review"] in html
    assert 'data-chart="monthly_review"' in html

    pdf = render_pdf(data, language=language)
    pages = re.search(r"Pages:\s+(\d+)", _pdfinfo(pdf, tmp_path))
    assert pages is not None
    text = pdf_text(pdf, tmp_path, 1, int(pages.group(1)))
    review = text[text.index(WORDS[language]["months"]) :]
    header = next(line for line in review.splitlines() if MONTH_LABELS[language][0] in line)
    assert header.split() == MONTH_LABELS[language]
    for word in ("causes", "reliability", "credit_percent"):
        assert WORDS[language][word] in review


def _pdfinfo(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout


def test_thousands_of_outages_are_drawn_few_and_listed_longest_first(report: Report) -> None:
    from datetime import datetime, timedelta

    from slawatch_engine import documents

    data = report("month")
    start = datetime.fromisoformat(data["from"])
    flapping = [
        {
            "start": (start + timedelta(minutes=14 * n)).isoformat(),
            "end": (start + timedelta(minutes=14 * n + 3)).isoformat(),
            "minutes": 3.0,
        }
        for n in range(3000)
    ]
    flapping[777]["end"] = (start + timedelta(minutes=14 * 777 + 10)).isoformat()
    flapping[777]["minutes"] = 10.0
    drawn = documents.drawn_intervals(flapping)
    assert len(drawn) <= documents.CHART_INTERVALS
    assert sum(i["minutes"] for i in drawn) == pytest.approx(3 * 2999 + 10)
    assert (drawn[0]["start"], drawn[-1]["end"]) == (flapping[0]["start"], flapping[-1]["end"])
    service = next(iter(data["services"]))
    data["services"][service]["outages"] = flapping
    total = sum(len(figures["outages"]) for figures in data["services"].values())
    html = documents.render_html(data, language="en", interactive=False)
    assert f"{total} outages in the period; the 30 longest are listed." in html
    listed = html.split("the 30 longest are listed.")[1].split("</table>")[0]
    assert listed.count("<tr>") == documents.LISTED_OUTAGES + 1  # and the heading
    assert "10 min" in listed  # the longest of the flapping ones
