"""The compliance API: contracts and their reports, from the engine's stored ledger.

    GET /v1/contracts
    GET /v1/reports/{contract}?period=2026-11            (or from=…&to=…)
        [&as_of=…]          default: now
        [&format=json|csv|html|pdf]
                            csv: one row per indicator; html, pdf: the document
                            (``documents``), a year's with its yearly review
        [&tickets=false]    json without the per-ticket list
        [&part=tickets]     with format=csv: one row per ticket
        [&lang=en|zh-CN]    html, pdf: the document's language (default: the contract's)
        [&charts=static]    html: charts drawn as SVG, no script (a mail body)

Both need a bearer token of ``SLAWATCH_REPORT_TOKENS`` (or of
``SLAWATCH_ADMIN_TOKENS``). A report spans at most ``MAX_SPAN`` (a year and a
month), so no request can ask the engine to expand years of maintenance; it
is read in chunks and counted, and rendered, in a worker thread, one report
at a time (``reporting.stored_report``), so the engine's loops run on
meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.auth import Scope, TokenBook
from slawatch_engine.compliance import Report
from slawatch_engine.contracts import Language
from slawatch_engine.periods import choose_period, parse_instant
from slawatch_engine.policy import PolicyBook
from slawatch_engine.reporting import in_thread, one_at_a_time, stored_report, stored_review
from slawatch_engine.settings import DEV_REPORT_TOKEN

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_SPAN = timedelta(days=400)
MAX_LISTED_SPAN = timedelta(days=100)
"""The longest span whose tickets a report lists one by one (the list is held until it
is sent: about 1.4 KB a ticket); longer reports are asked for with ``tickets=false``."""


def reports_router(
    book: PolicyBook,
    db: Callable[[], AsyncEngine],
    tokens: Sequence[str] | TokenBook,
    now: Callable[[], datetime],
) -> APIRouter:
    if not isinstance(tokens, TokenBook) and DEV_REPORT_TOKEN in tokens:
        log.warning(
            "SLAWATCH_REPORT_TOKENS holds the development token %r: anyone can read the "
            "compliance reports with it; set your own outside development",
            DEV_REPORT_TOKEN,
        )

    readers = (
        tokens
        if isinstance(tokens, TokenBook)
        else TokenBook.of(plain={Scope.REPORTS_READ: tokens})
    )
    router = APIRouter(prefix="/v1", dependencies=[Depends(readers.require(Scope.REPORTS_READ))])

    @router.get("/contracts")
    async def contracts() -> dict[str, Any]:
        """Every configured contract: parties, zone, policies, targets, availability groups."""
        return {
            "contracts": [
                {
                    "name": name,
                    "customer": c.customer,
                    "provider": c.provider,
                    "time_zone": c.time_zone,
                    "review": c.review,
                    "term": c.term.model_dump(mode="json") if c.term else None,
                    "policies": c.policies,
                    "targets": c.targets.model_dump(mode="json"),
                    "availability": {
                        g: a.model_dump(mode="json") for g, a in c.availability.items()
                    },
                }
                for name, c in book.contracts.items()
            ]
        }

    @router.get("/reports/{name}", response_model=None)
    async def report(
        name: str,
        period: Annotated[str | None, Query(max_length=40)] = None,
        start: Annotated[str | None, Query(alias="from", max_length=60)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=60)] = None,
        as_of: Annotated[str | None, Query(max_length=60)] = None,
        format: Literal["json", "csv", "html", "pdf"] = "json",
        tickets: bool = True,
        part: Literal["indicators", "tickets"] = "indicators",
        lang: Language | None = None,
        charts: Literal["interactive", "static"] = "interactive",
    ) -> Any:
        contract = book.contracts.get(name)
        if contract is None:
            raise HTTPException(404, f"no contract {name!r}")
        try:
            chosen = choose_period(period, start, end, contract.zone)
        except ValueError as exc:
            raise HTTPException(422, f"period/from/to: {exc}") from None
        if chosen.end - chosen.start > MAX_SPAN:
            raise HTTPException(422, f"from/to: a report spans at most {MAX_SPAN.days} days")
        try:
            at = parse_instant(as_of, contract.zone) if as_of else now()
        except ValueError as exc:
            raise HTTPException(422, f"as_of: {exc}") from None
        if at - chosen.end > MAX_SPAN or chosen.start - at > MAX_SPAN:
            raise HTTPException(
                422, f"as_of: at most {MAX_SPAN.days} days before or after the period"
            )
        document = format in ("html", "pdf")
        listed = False if document else tickets if format == "json" else part == "tickets"
        if listed and chosen.end - chosen.start > MAX_LISTED_SPAN:
            raise HTTPException(
                422,
                f"tickets: a report lists the tickets of at most {MAX_LISTED_SPAN.days} days; "
                "ask for tickets=false (or a shorter span)",
            )
        figures = await stored_report(db(), book, name, contract, chosen, at, with_tickets=listed)
        review = (
            await stored_review(db(), book, name, contract, figures)
            if chosen.kind == "year" and (document or format == "json")
            else {}
        )
        if document:
            data = {**figures.as_json(), **review}
            filename = _safe(f"{name}-{chosen.label}".replace("/", "_").replace(":", ""))
            if format == "pdf":
                pdf = await rendered(render_pdf, data, language=lang)
                return Response(
                    pdf,
                    media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'},
                )
            html = await rendered(
                render_html, data, language=lang, interactive=charts == "interactive"
            )
            return Response(html, media_type="text/html; charset=utf-8")
        if review:
            body = await asyncio.to_thread(_json, figures, review)
            return Response(body, media_type="application/json")
        if format == "json":
            # rendered in a worker thread: a month's ticket list is megabytes of JSON
            body = await asyncio.to_thread(_json, figures)
            return Response(body, media_type="application/json")
        render = figures.tickets_csv if part == "tickets" else figures.as_csv
        text = await asyncio.to_thread(render)
        filename = f"{name}-{chosen.label}-{part}.csv".replace("/", "_").replace(":", "")
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_safe(filename)}"'},
        )

    return router


def _json(figures: Report, extra: dict[str, Any] | None = None) -> bytes:
    return json.dumps({**figures.as_json(), **(extra or {})}, ensure_ascii=False).encode()


async def rendered(render: Callable[..., _T], data: dict[str, Any], **options: Any) -> _T:
    """A document rendered in a worker thread, one at a time in the process (with the
    reports: ``reporting.one_at_a_time``)."""
    async with one_at_a_time():
        return await in_thread(render, data, **options)


def render_html(data: dict[str, Any], **options: Any) -> str:
    from slawatch_engine import documents  # WeasyPrint and the chart renderer load slowly

    html: str = documents.render_html(data, **options)
    return html


def render_pdf(data: dict[str, Any], **options: Any) -> bytes:
    from slawatch_engine import documents

    pdf: bytes = documents.render_pdf(data, **options)
    return pdf


def _safe(filename: str) -> str:
    """A header value from configured names: printable ASCII, no quotes."""
    return "".join(
        ch if ch.isascii() and ch.isprintable() and ch != '"' else "_" for ch in filename
    )
