"""``slawatch-engine``: run the engine, migrate its database, check a policy file, preview.

slawatch-engine [run]                 serve (migrates first)
slawatch-engine migrate               bring the database to the newest revision
slawatch-engine check-config FILE     validate a policy file; exit 1 naming each error
slawatch-engine preview [--config F]  answer deadline / elapsed-time requests from stdin
slawatch-engine dead-letters list [--after ID] [--limit N] | replay ID [TO_ID]
slawatch-engine report --events F --contract C (--period P | --from T --to T) [--as-of T]
                      [--format json|csv|tickets-csv|html|pdf] [--lang en|zh-CN] [--out FILE]
                                      a contract's compliance report from a file of events
slawatch-engine report issue --contract C --period P
                                      issue a period's report now (the notifier mails it to
                                      the contract's report_to), again if it was issued before
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn

from slawatch_common import deadletter_ops
from slawatch_common.db import create_engine, upgrade
from slawatch_common.kafka import client_options
from slawatch_common.runtime import ConfigError, configure_logging, serve
from slawatch_common.settings import DevelopmentValuesError
from slawatch_engine import compliance, store
from slawatch_engine.app import create_app, utc_now
from slawatch_engine.contracts import LANGUAGES
from slawatch_engine.issuing import issue_by_hand
from slawatch_engine.periods import choose_period, parse_instant
from slawatch_engine.policy import load_policies
from slawatch_engine.preview import Previewer, TooManyRequestsError
from slawatch_engine.reporting import OfflineLedger, read_events
from slawatch_engine.review import months_of, review_of
from slawatch_engine.settings import EngineSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slawatch-engine", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve (the default)")
    commands.add_parser("migrate", help="upgrade the database schema")
    check = commands.add_parser("check-config", help="validate a policy file")
    check.add_argument("file", type=Path)
    preview = commands.add_parser("preview", help="answer preview requests read from stdin")
    preview.add_argument("--config", type=Path, help="policy file with the named calendars")
    deadletter_ops.add_command(commands)
    report = commands.add_parser(
        "report",
        help="a contract's compliance report, replaying a file of canonical events (NDJSON)",
    )
    report.add_argument(
        "action",
        nargs="?",
        choices=("issue",),
        help="issue: have the running system mail the report of --period now",
    )
    report.add_argument("--config", type=Path, help="the configuration file (policies, contracts)")
    report.add_argument("--events", help="NDJSON file of events; - for stdin")
    report.add_argument("--contract", required=True)
    report.add_argument("--period", help="2026-11, 2026-Q4 or 2026, in the contract's zone")
    report.add_argument("--from", dest="start", help="instant (or date, in the contract's zone)")
    report.add_argument("--to", dest="end", help="instant (or date): the period ends before it")
    report.add_argument("--as-of", dest="as_of", help="instant; default: the end of the period")
    report.add_argument(
        "--format", choices=("json", "csv", "tickets-csv", "html", "pdf"), default="json"
    )
    report.add_argument("--lang", choices=LANGUAGES, help="the document's language (html, pdf)")
    report.add_argument("--out", type=Path, help="write to FILE, not stdout (needed for pdf)")
    report.add_argument("--summary", action="store_true", help="leave out the per-ticket list")
    args = parser.parse_args(argv)
    if args.command == "report" and args.action is None and args.events is None:
        parser.error("report: --events is required (or: report issue …)")
    if args.command == "report" and args.action == "issue" and args.period is None:
        parser.error("report issue: --period is required")

    if args.command == "check-config":
        return _check(args.file)
    if args.command == "preview":
        return _preview(args.config or EngineSettings().config_file)
    if args.command == "report" and args.action is None:
        return offline_report(args, args.config or EngineSettings().config_file)
    settings = EngineSettings()
    configure_logging(settings.log_level)
    if args.command == "report":
        return issue_report(settings, args)
    if args.command == "migrate":
        asyncio.run(_migrate(settings.database_url))
        return 0
    if args.command == "dead-letters":
        return asyncio.run(
            deadletter_ops.run_command(
                args,
                store.dead_letters,
                settings.database_url,
                settings.kafka_bootstrap,
                options=client_options(settings),
            )
        )
    try:
        settings.refuse_development_values()
    except DevelopmentValuesError as exc:
        print(f"slawatch-engine: {exc}", file=sys.stderr)
        return 2
    try:
        book = load_policies(settings.config_file)
    except ConfigError as exc:
        print(f"slawatch-engine: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    app = create_app(settings, book, shifted_clock(settings.clock_shift_s))
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning"
    )
    return 0 if serve(config) else 3


def offline_report(args: argparse.Namespace, config: Path) -> int:
    """Print the report of ``args.contract`` computed from ``args.events``; 2 on bad input."""
    try:
        book = load_policies(config)
        contract = book.contracts.get(args.contract)
        if contract is None:
            known = ", ".join(sorted(book.contracts)) or "none"
            raise ValueError(f"unknown contract {args.contract!r} (known: {known})")
        period = choose_period(args.period, args.start, args.end, contract.zone)
        as_of = parse_instant(args.as_of, contract.zone) if args.as_of else period.end
        if args.events == "-":
            events = list(read_events(sys.stdin))
        else:
            with open(args.events, encoding="utf-8") as lines:
                events = list(read_events(lines))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"slawatch-engine report: {exc}", file=sys.stderr)
        return 2
    if args.format == "pdf" and args.out is None:
        print("slawatch-engine report: --format pdf needs --out FILE", file=sys.stderr)
        return 2
    ledger = OfflineLedger(book)
    ledger.run(events, as_of)
    facts, alerts = ledger.facts(as_of), ledger.alerts()
    document = args.format in ("html", "pdf")
    figures = compliance.build(
        args.contract,
        contract,
        period,
        as_of,
        facts,
        alerts,
        book.calendars,
        with_tickets=not (args.summary or document),
    )
    if args.format == "csv":
        _write(args.out, figures.as_csv())
        return 0
    if args.format == "tickets-csv":
        _write(args.out, figures.tickets_csv())
        return 0
    data = figures.as_json()
    if period.kind == "year":
        months = [
            compliance.build(
                args.contract,
                contract,
                month,
                as_of,
                facts,
                alerts,
                book.calendars,
                with_tickets=False,
            )
            for month in months_of(period, contract.zone)
            if month.start <= as_of
        ]
        data.update(review_of(figures, months))
    if document:
        from slawatch_engine import documents  # WeasyPrint and the chart renderer load slowly

    if args.format == "html":
        _write(args.out, documents.render_html(data, language=args.lang))
    elif args.format == "pdf":
        args.out.write_bytes(documents.render_pdf(data, language=args.lang))
    else:
        _write(args.out, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return 0


def _write(out: Path | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def issue_report(settings: EngineSettings, args: argparse.Namespace) -> int:
    """Stage a ``report.due`` of ``args.contract`` for ``args.period`` in the engine's
    outbox (a running engine publishes it); print its event id. 2 on bad input."""
    try:
        book = load_policies(args.config or settings.config_file)
    except ConfigError as exc:
        print(f"slawatch-engine report issue: {exc}", file=sys.stderr)
        return 2

    async def run() -> str:
        db = create_engine(settings.database_url)
        try:
            await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
            now = shifted_clock(settings.clock_shift_s)()
            event = await issue_by_hand(
                db, book, args.contract, args.period, settings.topics.reports, now
            )
            return event.event_id
        finally:
            await db.dispose()

    try:
        event_id = asyncio.run(run())
    except ValueError as exc:
        print(f"slawatch-engine report issue: {exc}", file=sys.stderr)
        return 2
    print(f"issued {event_id}")
    return 0


def shifted_clock(shift_s: float) -> Callable[[], datetime]:
    """The engine's clock: real time, moved by ``shift_s`` seconds (a test clock)."""
    if not shift_s:
        return utc_now
    shift = timedelta(seconds=shift_s)
    logging.getLogger(__name__).warning(
        "SLAWATCH_CLOCK_SHIFT_S=%s: the engine's clock is moved by %s", shift_s, shift
    )
    return lambda: utc_now() + shift


def _check(path: Path) -> int:
    try:
        load_policies(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def _preview(config: Path) -> int:
    """Read one request or an array from stdin; print the answers as JSON."""
    try:
        body = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        print(json.dumps({"error": f"stdin is not JSON: {exc}"}))
        return 1
    named = load_policies(config).calendars if config.is_file() else {}
    try:
        answers = Previewer(named).answer_all(body)
    except TooManyRequestsError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(answers, ensure_ascii=False))
    return 0


async def _migrate(url: str) -> None:
    db = create_engine(url)
    try:
        await upgrade(db, store.MIGRATIONS, store.VERSION_TABLE)
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
