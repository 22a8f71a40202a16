"""Command line: ``slawatch-notifier [run | migrate | check-config FILE]``.

slawatch-notifier                  serve (same as ``run``)
slawatch-notifier run              serve on SLAWATCH_HTTP_HOST:SLAWATCH_NOTIFIER_PORT
slawatch-notifier migrate          bring the database to the newest revision
slawatch-notifier check-config F   validate the notifier section of F: "ok", exit 0,
                                   or the errors, exit 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from slawatch_common.db import create_engine
from slawatch_common.runtime import ConfigError, configure_logging
from slawatch_notifier import store
from slawatch_notifier.app import create_app
from slawatch_notifier.channels.setup import parse_channels
from slawatch_notifier.config import load_config
from slawatch_notifier.settings import NotifierSettings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "check-config":
        return check_config(args.file)
    settings = NotifierSettings()
    configure_logging(settings.log_level)
    if command == "migrate":
        asyncio.run(migrate(settings))
        return 0
    serve(settings)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slawatch-notifier", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve the notifier (the default)")
    commands.add_parser("migrate", help="migrate the notifier's database")
    check = commands.add_parser("check-config", help="validate the notifier section of FILE")
    check.add_argument("file", type=Path)
    return parser


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


def serve(settings: NotifierSettings) -> None:
    app = create_app(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="info")


if __name__ == "__main__":
    sys.exit(main())
