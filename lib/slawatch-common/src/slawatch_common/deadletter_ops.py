"""Dead letters for operators: an HTTP API and a command, the same in both services.

    GET  /v1/dead-letters?after_id=0&limit=100     list, oldest first
    POST /v1/dead-letters/replay {"from_id": 3, "to_id": 9}   produce them again

Both need a bearer token of ``SLAWATCH_ADMIN_TOKENS``. The command
(``slawatch-engine dead-letters …``, ``slawatch-notifier dead-letters …``)
does the same against the configured database and broker:

    dead-letters list [--after ID] [--limit N]
    dead-letters replay ID [TO_ID]

A replayed record goes back to its topic with its key and value as they came
(``consumer.replay``), so the service reads it again in the order of its
partition; if it fails again it is a new dead letter.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.auth import Scope, TokenBook
from slawatch_common.consumer import Producer, list_dead_letters, replay
from slawatch_common.db import create_engine
from slawatch_common.kafka import start_producer
from slawatch_common.settings import DEV_ADMIN_TOKEN

log = logging.getLogger(__name__)


REPLAY_MAX = 1000
"""Dead letters one request replays at most."""


class ReplayRequest(BaseModel):
    from_id: int = Field(ge=1, le=2**31 - 1)
    to_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Last id of the range; default from_id."
    )

    @model_validator(mode="after")
    def _bounded(self) -> ReplayRequest:
        last = self.from_id if self.to_id is None else self.to_id
        if not 0 <= last - self.from_id < REPLAY_MAX:
            raise ValueError(f"to_id must be from_id … from_id + {REPLAY_MAX - 1}")
        return self


def dead_letter_router(
    table: sa.Table,
    db: Callable[[], AsyncEngine],
    producer: Callable[[], Producer],
    tokens: Sequence[str] | TokenBook,
) -> APIRouter:
    """The dead-letter API over ``table``; ``db`` and ``producer`` give the running
    service's database engine and Kafka producer."""
    if not isinstance(tokens, TokenBook) and DEV_ADMIN_TOKEN in tokens:
        log.warning(
            "SLAWATCH_ADMIN_TOKENS holds the development token %r: anyone can read and "
            "replay dead letters with it; set your own outside development",
            DEV_ADMIN_TOKEN,
        )

    book = tokens if isinstance(tokens, TokenBook) else TokenBook.of(plain={Scope.ADMIN: tokens})
    router = APIRouter(prefix="/v1/dead-letters", dependencies=[Depends(book.require(Scope.ADMIN))])

    @router.get("")
    async def listing(
        after_id: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Dead letters with ids above ``after_id``, oldest first."""
        rows = await list_dead_letters(db(), table, limit=limit, after_id=after_id)
        return {"dead_letters": rows}

    @router.post("/replay")
    async def replaying(request: Annotated[ReplayRequest, Body()]) -> dict[str, Any]:
        """Produce the dead letters ``from_id`` … ``to_id`` to their topics again."""
        done = await replay(
            db(), table, producer(), request.from_id, request.to_id, datetime.now(UTC)
        )
        return {"replayed": done}

    return router


def add_command(commands: Any) -> None:
    """Add ``dead-letters list|replay`` to an argparse subparsers object."""
    parser = commands.add_parser("dead-letters", help="list or replay dead letters")
    verbs = parser.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="print dead letters as JSON lines")
    listing.add_argument("--after", type=int, default=0, help="ids above this one")
    listing.add_argument("--limit", type=int, default=100)
    replaying = verbs.add_parser("replay", help="produce dead letters to their topics again")
    replaying.add_argument("first", type=int, help="id of the (first) dead letter")
    replaying.add_argument("last", type=int, nargs="?", help="last id of a range")


async def run_command(
    args: argparse.Namespace,
    table: sa.Table,
    database_url: str,
    bootstrap: str,
    *,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Carry out a parsed ``dead-letters`` command; prints JSON lines; exit status.
    ``options`` are the Kafka clients' connection options (``kafka.client_options``)."""
    db = create_engine(database_url)
    try:
        if args.verb == "list":
            for row in await list_dead_letters(db, table, limit=args.limit, after_id=args.after):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        producer = await start_producer(bootstrap, attempts=10, options=options)
        try:
            done = await replay(db, table, producer, args.first, args.last, datetime.now(UTC))
        finally:
            await producer.stop()
        print(json.dumps({"replayed": done}))
        return 0
    finally:
        await db.dispose()
