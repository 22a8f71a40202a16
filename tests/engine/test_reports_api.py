"""The compliance API over HTTP: credentials, parameters, JSON and CSV, on a stored month.

The hand-worked month (``compliance/``) is applied to a SQLite database the
way intake applies it; the API router is served by uvicorn on a free port.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_engine import store
from slawatch_engine.ledger import Ledger
from slawatch_engine.monitoring import note_alerts
from slawatch_engine.policy import load_policies
from slawatch_engine.reporting import read_events
from slawatch_engine.reports_api import reports_router
from support.serving import serving

HERE = Path(__file__).parent / "compliance"
BOOK = load_policies(HERE / "contract.yaml")
TOKEN = "reader-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = "2026-12-01T09:30:00+08:00"
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[str]:
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/engine.db")
    ledger = Ledger(BOOK, "slawatch.sla")
    await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
    lines = (HERE / "month.ndjson").read_text().splitlines()
    for event in sorted(read_events(lines), key=lambda e: e.occurred_at):
        async with db.begin() as conn:
            if isinstance(event, MonitoringEvent):
                await note_alerts(conn, [event], event.occurred_at)
                continue
            assert isinstance(event, TicketEvent)
            work = await store.load_tickets(conn, {event.key})
            ledger.apply(work, event, 0, event.occurred_at)
            await work.save(conn, event.occurred_at)
    app = FastAPI()
    app.include_router(reports_router(BOOK, lambda: db, (TOKEN,), lambda: NOW))
    try:
        async with serving(app) as url:
            yield url
    finally:
        await db.dispose()


async def get(url: str, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
        return await client.get(path, params=params)


async def test_every_route_needs_a_reader_token(api: str) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        for path in ("/v1/contracts", "/v1/reports/acme?period=2026-11"):
            assert (await client.get(path)).status_code == 401
            wrong = {"Authorization": "Bearer dev-report-token"}
            assert (await client.get(path, headers=wrong)).status_code == 401


async def test_contracts_are_listed_with_their_targets(api: str) -> None:
    answer = await get(api, "/v1/contracts")
    assert answer.status_code == 200
    (acme,) = answer.json()["contracts"]
    assert (acme["name"], acme["customer"], acme["time_zone"]) == (
        "acme",
        "ACME Ltd",
        "Asia/Shanghai",
    )
    assert acme["targets"]["mean_response_time"] == 1800
    assert acme["availability"]["critical_applications"]["services"] == ["erp", "mail"]


async def test_a_months_report_as_json_with_and_without_tickets(api: str) -> None:
    full = (await get(api, "/v1/reports/acme", period="2026-11", as_of=AS_OF)).json()
    assert full["indicators"]["response_overdue_rate"]["value"] == 10.0
    assert full["credit_percent"] == 25.0
    assert len(full["tickets"]) == 12
    summary = await get(api, "/v1/reports/acme", period="2026-11", as_of=AS_OF, tickets="false")
    assert "tickets" not in summary.json()
    assert summary.json()["indicators"] == full["indicators"]
    # from/to name the same month; as_of defaults to now (a week later: T6, T7 judged since)
    same = await get(
        api,
        "/v1/reports/acme",
        **{"from": "2026-11-01", "to": "2026-12-01", "as_of": AS_OF, "tickets": "false"},
    )
    assert same.json()["indicators"] == full["indicators"]
    now = (await get(api, "/v1/reports/acme", period="2026-11")).json()
    assert now["as_of"] == NOW.isoformat()
    assert now["counts"]["resolution"]["open_late"] == 2


async def test_csv_of_indicators_and_of_tickets(api: str) -> None:
    answer = await get(api, "/v1/reports/acme", period="2026-11", as_of=AS_OF, format="csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        'attachment; filename="acme-2026-11-indicators.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["indicator"]: r["met"] for r in rows} == {
        "mean_response_time_minutes": "true",
        "response_overdue_rate": "false",
        "on_time_resolution_rate": "true",
        "mean_satisfaction": "false",
        "availability:network": "true",
        "availability:critical_applications": "false",
    }
    tickets = await get(
        api, "/v1/reports/acme", period="2026-11", as_of=AS_OF, format="csv", part="tickets"
    )
    table = list(csv.DictReader(io.StringIO(tickets.text)))
    assert len(table) == 12
    t4 = next(row for row in table if row["ticket"] == "helpdesk:T4")
    assert (t4["resolution_outcome"], t4["resolution_late_by"]) == ("breached", "3600.0")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"period": "2026-13"}, "period"),
        ({"period": "2026-11", "from": "2026-11-01", "to": "2026-12-01"}, "period"),
        ({"from": "2026-11-01"}, "period"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "period"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from/to"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "from/to"),
        ({"period": "2026-11", "as_of": "2030-01-01"}, "as_of"),
        ({"period": "2026-11", "as_of": "yesterday"}, "as_of"),
        ({"period": "2026-11", "as_of": "9999-12-31T23:59:59-23:59"}, "as_of"),
    ],
)
async def test_bad_parameters_are_refused_naming_them(
    api: str, params: dict[str, str], named: str
) -> None:
    answer = await get(api, "/v1/reports/acme", **params)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]


async def test_the_last_years_an_instant_may_have_are_answered(api: str) -> None:
    for params in (
        {"period": "9998", "as_of": "9998-06-01", "tickets": "false"},
        {"from": "9998-12-01", "to": "9998-12-31", "as_of": "9998-12-15"},
    ):
        answer = await get(api, "/v1/reports/acme", **params)
        assert answer.status_code == 200, answer.text
        assert answer.json()["counts"]["tickets"] == 0


async def test_a_year_is_one_report(api: str) -> None:
    listed = await get(api, "/v1/reports/acme", period="2026", as_of=AS_OF)
    assert listed.status_code == 422
    assert "tickets=false" in listed.json()["detail"]
    year = (await get(api, "/v1/reports/acme", period="2026", as_of=AS_OF, tickets="false")).json()
    assert (year["from"], year["to"]) == ("2025-12-31T16:00:00+00:00", "2026-12-31T16:00:00+00:00")
    assert year["counts"]["tickets"] == 14  # T8 (October) and T9 (December) too


async def test_an_unknown_contract_is_404(api: str) -> None:
    assert (await get(api, "/v1/reports/nobody", period="2026-11")).status_code == 404


async def test_the_document_as_html_and_pdf(api: str) -> None:
    month = {"period": "2026-11", "as_of": AS_OF}
    html = await get(api, "/v1/reports/acme", **month, format="html")
    assert html.status_code == 200, html.text
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script" in html.text
    assert "vegaEmbed" in html.text
    static = await get(api, "/v1/reports/acme", **month, format="html", charts="static")
    assert "<script" not in static.text
    assert "<svg" in static.text
    chinese = await get(api, "/v1/reports/acme", **month, format="html", lang="zh-CN")
    assert 'lang="zh-CN"' in chinese.text
    assert "服务水平报告" in chinese.text
    pdf = await get(api, "/v1/reports/acme", **month, format="pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'inline; filename="acme-2026-11.pdf"'
    assert pdf.content.startswith(b"%PDF")
    bad = await get(api, "/v1/reports/acme", **month, format="pdf", lang="fr")
    assert bad.status_code == 422
    assert "lang" in bad.text


async def test_a_year_carries_its_review(api: str) -> None:
    year = (await get(api, "/v1/reports/acme", period="2026", tickets="false")).json()
    assert [m["period"] for m in year["months"]] == [f"2026-{n:02d}" for n in range(1, 13)]
    november = year["months"][10]
    assert november["tickets"] == 12
    alone = (await get(api, "/v1/reports/acme", period="2026-11", tickets="false")).json()
    assert november["indicators"] == alone["indicators"]  # as of the same instant: now
    assert november["credit_percent"] == alone["credit_percent"]
    assert {c["cause"] for c in year["breaches_by_cause"]} == {
        "response",
        "resolution",
        "availability:network",
        "availability:critical_applications",
    }
    assert set(year["reliability"]) == {"core-net", "erp", "mail"}
    assert year["reliability"]["erp"]["outages"] >= 1
    # a year with its per-ticket list is refused (more than 100 days)
    assert (await get(api, "/v1/reports/acme", period="2026")).status_code == 422
    pdf = await get(api, "/v1/reports/acme", period="2026", format="pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
