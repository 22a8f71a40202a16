"""Command line: ``slawatch-notifier [run | migrate | check-config FILE | redrive FILTER… |
dead-letters …]``.

slawatch-notifier                  serve (same as ``run``)
slawatch-notifier run              serve on SLAWATCH_HTTP_HOST:SLAWATCH_NOTIFIER_PORT
slawatch-notifier migrate          bring the database to the newest revision
slawatch-notifier check-config F   validate the notifier section of F and the
                                   report_to of its contracts: "ok", exit 0,
                                   or the errors, exit 1
slawatch-notifier redrive [--id ID]… [--ticket SOURCE:ID] [--since ISO] [--until ISO]
                                   send failed notifications again: those matching every
                                   filter given (at least one; ``--since``/``--until``:
                                   failed in [since, until), instants with a UTC offset)
                                   become pending, due now, with a fresh retry budget;
                                   prints how many, then their ids; exit 0
                                   (2 for bad arguments). The running notifier sends
                                   them within seconds. Also
                                   ``python -m slawatch_notifier redrive …``.
slawatch-notifier dead-letters list [--after ID] [--limit N] | replay ID [TO_ID]
                                   SLA records that could not be used, as JSON lines;
                                   produce them to their topic again
                                   (``slawatch_common.deadletter_ops``)

uvicorn logs through the logging ``configure_logging`` set up (no configuration
of its own), and no line shows the token of an ack link: a link's path is
logged as ``/v1/acks/<token>``, the placeholder in place of the token
(``RedactAckTokens``, on uvicorn's access log and on the handlers every line
goes through), because a token acknowledges for whoever holds it until it
expires.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from slawatch_common import deadletter_ops, runtime
from slawatch_common.db import create_engine
from slawatch_common.kafka import client_options
from slawatch_common.runtime import ConfigError, configure_logging
from slawatch_common.settings import DevelopmentValuesError
from slawatch_notifier import store
from slawatch_notifier.acklink import redact
from slawatch_notifier.app import create_app
from slawatch_notifier.channels.setup import parse_channels
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import load_config
from slawatch_notifier.settings import NotifierSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "run"
    if command == "check-config":
        return check_config(args.file)
    settings = NotifierSettings()
    configure_logging(settings.log_level)
    redact_ack_tokens(*logging.getLogger().handlers)  # every line, whoever logs it
    if command == "migrate":
        asyncio.run(migrate(settings))
        return 0
    if command == "dead-letters":
        return asyncio.run(
            deadletter_ops.run_command(
                args,
                store.dead_letters,
                settings.database_url,
                settings.kafka_bootstrap,
                options=client_options(settings),
            )
        )
    if command == "redrive":
        matching = _redrive_filter(args)
        if not matching.conditions():
            parser.error("redrive: give --id, --ticket, --since or --until")
        redriven = asyncio.run(redrive(settings, matching))
        print(f"redriven {len(redriven)} failed notification(s)")
        for ref in redriven:
            print(f"{ref.id} ({ref.channel})")
        return 0
    try:
        settings.refuse_development_values(_channel_values(settings))
    except DevelopmentValuesError as exc:
        print(f"slawatch-notifier: {exc}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


def _channel_values(settings: NotifierSettings) -> list[str]:
    """Provider and robot addresses that are not https, and the generic SMS provider's
    development values when no other SMS provider is configured (an invalid
    configuration is reported by the app as it starts)."""
    try:
        config = load_config(settings.config_file)
        channels = parse_channels(config.channels, os.environ)
    except ConfigError:
        return []
    return channels.plain_http() + ([] if channels.sms else settings.generic_sms_values())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slawatch-notifier", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve the notifier (the default)")
    commands.add_parser("migrate", help="migrate the notifier's database")
    check = commands.add_parser(
        "check-config",
        help="validate the notifier section of FILE and its contracts' report_to",
    )
    check.add_argument("file", type=Path)
    again = commands.add_parser(
        "redrive",
        help="send failed notifications again (pending, due now, fresh retry budget)",
        description="Failed notifications matching every filter given become pending, due "
        "now, with a fresh retry budget; the running notifier sends them within seconds.",
    )
    again.add_argument(
        "--id", dest="ids", action="append", default=[], metavar="ID", help="a notification id"
    )
    again.add_argument("--ticket", type=_ticket, metavar="SOURCE:ID", help="their ticket")
    again.add_argument(
        "--since", type=_instant, metavar="ISO", help="failed at or after (e.g. 2026-12-07T10:00Z)"
    )
    again.add_argument("--until", type=_instant, metavar="ISO", help="failed before")
    deadletter_ops.add_command(commands)
    return parser


def _ticket(text: str) -> tuple[str, str]:
    source, _, ticket_id = text.partition(":")
    if not source or not ticket_id:
        raise argparse.ArgumentTypeError(f"not SOURCE:ID: {text!r}")
    return source, ticket_id


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset (e.g. Z or +08:00): {text!r}")
    return moment


def _redrive_filter(args: argparse.Namespace) -> store.RedriveFilter:
    return store.RedriveFilter(
        ids=tuple(args.ids), ticket=args.ticket, failed_from=args.since, failed_until=args.until
    )


def check_config(path: Path) -> int:
    """Print "ok" and return 0, or print the errors and return 1."""
    try:
        config = load_config(path)
        parse_channels(config.channels, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("ok")
    return 0


async def migrate(settings: NotifierSettings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await store.migrate(engine)
    finally:
        await engine.dispose()


async def redrive(
    settings: NotifierSettings, matching: store.RedriveFilter
) -> list[store.NotificationRef]:
    """Move the failed notifications ``matching`` selects back to pending (``store.redrive``)
    in the configured database, in one transaction; which they were."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            return await store.redrive(conn, matching, SystemClock().now())
    finally:
        await engine.dispose()


EXIT_STARTUP_FAILED = 3
"""As ``uvicorn.run``: the app did not start (its lifespan failed)."""


class RedactAckTokens(logging.Filter):
    """Takes the token of every ack link out of a record: out of its message and string
    arguments, or, when another argument's text carries one, out of the whole line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        try:
            line = record.getMessage()
        except (TypeError, ValueError):  # a broken record: logging reports it when it formats
            return True
        if (redacted := redact(line)) != line:
            record.msg, record.args = redacted, ()
        return True


def redact_ack_tokens(*where: logging.Logger | logging.Handler) -> None:
    """Give each logger or handler ``RedactAckTokens``, unless it has one."""
    for target in where:
        if not any(isinstance(f, RedactAckTokens) for f in target.filters):
            target.addFilter(RedactAckTokens())


def server_config(app: FastAPI, settings: NotifierSettings) -> uvicorn.Config:
    """How the notifier is served: uvicorn's access lines through ``RedactAckTokens``."""
    redact_ack_tokens(logging.getLogger("uvicorn.access"))
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        log_config=None,  # keep the logging configured in ``main``
    )


def serve(settings: NotifierSettings) -> None:
    """Serve until SIGINT or SIGTERM (exit 0 after the drain); exit ``EXIT_STARTUP_FAILED`` if
    the app did not start."""
    if not runtime.serve(server_config(create_app(settings), settings)):
        sys.exit(EXIT_STARTUP_FAILED)


if __name__ == "__main__":
    sys.exit(main())
