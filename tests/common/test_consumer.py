"""The consumer runtime: halving to the record that fails, waiting out a database that is
away, dead letters of one shape kept once per record, and the older shape migrated."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from slawatch_common.consumer import DeadLetter, Isolator, is_transient, keep_dead_letters
from slawatch_common.db import alembic_config, create_engine, upgrade
from slawatch_common.runtime import one_line
from slawatch_engine import store as engine_store
from support.records import Rec


def recs(*values: bytes | None) -> list[Rec]:
    return [Rec("t", 0, n, b"k", value) for n, value in enumerate(values)]


class Target:
    """An ``apply`` that fails on poison values, or on the first ``blips`` calls."""

    def __init__(self, blips: int = 0) -> None:
        self.applied: list[bytes | None] = []
        self.letters: list[DeadLetter] = []
        self.calls = 0
        self.blips = blips

    async def __call__(self, records: list[Rec], letters: list[DeadLetter]) -> None:
        self.calls += 1
        if self.calls <= self.blips:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        if any(r.value == b"poison" for r in records):
            raise OverflowError("date value out of range")
        self.applied.extend(r.value for r in records)  # commits all or nothing
        self.letters.extend(letters)


async def no_sleep(_: float) -> None:
    return None


async def test_halving_finds_each_record_that_fails_and_applies_the_rest_in_order() -> None:
    target = Target()
    values = [b"a", b"poison", b"b", b"c", b"d", b"poison", b"e", b"f", b"g", b"h"]
    dead: list[DeadLetter] = []
    isolator = Isolator("test", on_dead_letter=dead.append, sleep=no_sleep)
    await isolator.apply(recs(*values), target)
    assert target.applied == [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"]
    assert [(d.offset, d.reason, d.error_class) for d in target.letters] == [
        (1, "failed", "OverflowError"),
        (5, "failed", "OverflowError"),
    ]
    assert target.letters == dead
    assert target.letters[0].error == "date value out of range"


async def test_a_database_that_is_away_is_waited_out_and_nothing_dead_lettered() -> None:
    target = Target(blips=3)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    faults: list[BaseException] = []
    await Isolator("test", on_transient=faults.append, sleep=sleep).apply(recs(b"a", b"b"), target)
    assert target.applied == [b"a", b"b"]
    assert target.letters == []
    assert waits == [0.5, 1.0, 2.0]
    assert len(faults) == 3


async def test_schema_errors_and_fences_are_not_blamed_on_the_data() -> None:
    class FenceError(Exception):
        pass

    async def missing_table(records: list[Rec], letters: list[DeadLetter]) -> None:
        raise ProgrammingError("SELECT", {}, Exception("no such table"))

    async def fenced(records: list[Rec], letters: list[DeadLetter]) -> None:
        raise FenceError()

    with pytest.raises(ProgrammingError):
        await Isolator("test", sleep=no_sleep).apply(recs(b"a"), missing_table)
    with pytest.raises(FenceError):
        await Isolator("test", passthrough=(FenceError,), sleep=no_sleep).apply(recs(b"a"), fenced)


def test_connection_faults_are_transient_and_data_faults_are_not() -> None:
    assert is_transient(OperationalError("x", {}, ConnectionRefusedError()))
    assert is_transient(ConnectionResetError())
    assert not is_transient(OverflowError())
    assert not is_transient(ValueError())
    assert not is_transient(OperationalError("x", {}, Exception("integer too large")))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/engine.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.mark.postgres
async def test_a_record_seen_again_counts_on_its_one_row(db_url: str) -> None:
    db = create_engine(db_url)
    try:
        await upgrade(db, engine_store.MIGRATIONS, engine_store.VERSION_TABLE)
        (record,) = recs(b"\xff\xfe not utf-8")
        letter = DeadLetter.of(record, "invalid", ValueError("bad"))
        first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        async with db.begin() as conn:
            await keep_dead_letters(conn, engine_store.dead_letters, [letter, letter], first)
        async with db.begin() as conn:
            await keep_dead_letters(conn, engine_store.dead_letters, [letter], later)
        async with db.connect() as conn:
            rows = (await conn.execute(sa.select(engine_store.dead_letters))).mappings().all()
    finally:
        await db.dispose()
    (row,) = rows
    assert row["value"] == b"\xff\xfe not utf-8"
    assert (row["first_seen"], row["last_seen"], row["count"]) == (first, later, 2)
    assert (row["reason"], row["error_class"], row["error"]) == ("invalid", "ValueError", "bad")


@pytest.mark.postgres
async def test_dead_letters_of_the_older_shape_are_kept_by_the_migration(db_url: str) -> None:
    db = create_engine(db_url)
    try:

        def to(revision: str) -> Callable[[sa.Connection], None]:
            def run(connection: sa.Connection) -> None:
                cfg = alembic_config(engine_store.MIGRATIONS, engine_store.VERSION_TABLE)
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, revision)

            return run

        async with db.begin() as conn:
            await conn.run_sync(to("0001"))
            for offset, reason in ((7, "first"), (7, "again"), (8, "other")):
                await conn.execute(
                    sa.text(
                        'INSERT INTO engine_dead_letters (topic, partition, "offset", key, '
                        "value, reason, received_at) VALUES ('t', 0, :o, 'k', '{x', :r, :at)"
                    ),
                    {"o": offset, "r": reason, "at": datetime(2026, 1, 1, tzinfo=UTC)},
                )
        async with db.begin() as conn:
            await conn.run_sync(to("head"))
        async with db.connect() as conn:
            query = sa.select(engine_store.dead_letters).order_by(
                engine_store.dead_letters.c.offset
            )
            rows = (await conn.execute(query)).mappings().all()
    finally:
        await db.dispose()
    assert [(r["offset"], r["key"], r["value"], r["error"]) for r in rows] == [
        (7, b"k", b"{x", "again"),
        (8, b"k", b"{x", "other"),
    ]


async def test_the_command_lists_dead_letters(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/engine.db"
    db = create_engine(url)
    try:
        await upgrade(db, engine_store.MIGRATIONS, engine_store.VERSION_TABLE)
        letters = [DeadLetter.of(r, "invalid", ValueError("bad")) for r in recs(b"{x", None)]
        async with db.begin() as conn:
            await keep_dead_letters(conn, engine_store.dead_letters, letters, datetime.now(UTC))
    finally:
        await db.dispose()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "slawatch_engine.main", "dead-letters", "list", "--after", "1"),
        env={**os.environ, "SLAWATCH_ENGINE_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    (line,) = stdout.decode().splitlines()
    row = json.loads(line)
    assert (row["id"], row["offset"], row["value"], row["error"]) == (2, 1, None, "bad")


def test_a_server_shutting_down_is_transient_wherever_the_driver_wraps_it() -> None:
    class AdminShutdownError(Exception):
        sqlstate = "57P01"

    class UniqueViolationError(Exception):
        sqlstate = "23505"

    shutdown = DBAPIError("SELECT 1", {}, AdminShutdownError("terminating connection"))
    assert is_transient(shutdown)
    assert not is_transient(DBAPIError("INSERT", {}, UniqueViolationError("duplicate key")))


def test_a_log_message_with_line_breaks_stays_on_its_line() -> None:
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "sending %s raised", ("id\nReply-To: evil",), None
    )
    assert one_line(record)
    assert record.getMessage() == "sending id\\nReply-To: evil raised"
