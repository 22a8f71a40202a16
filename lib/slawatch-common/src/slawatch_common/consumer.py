"""The consumer runtime of the engine's and the notifier's intake: no record stops it.

A service reads a batch, then hands it to ``Isolator.apply``, which calls the
service's own ``apply(records, letters)``: decode, validate and apply every
record in ONE transaction, writing ``letters`` (dead letters) in that same
transaction. Only after it returns does the service commit the offsets.

When ``apply`` raises:

- a *transient* fault (the database or the network is away: ``is_transient``)
  is waited out: the same records are tried again after a capped backoff,
  forever; nothing is dead-lettered because the database blinked;
- a *fatal* fault (the schema is missing or wrong: ``is_fatal``) or one of the
  service's ``passthrough`` types (e.g. a fence against another writer)
  propagates to the service;
- anything else is blamed on the data: the batch is split in halves, each
  applied on its own (first half first, so the order of every partition is
  kept), down to the single record that fails. That record becomes a dead
  letter, written by ``apply([], [letter])`` in a transaction of its own, and
  the rest of the batch is applied without it. One bad record therefore costs
  its neighbours some retries, never their effect, and never blocks its
  partition.

Dead letters live in a table of one shape in both services
(``dead_letter_table``): topic, partition, 64-bit offset, the raw key and
value as bytes (a null value and non-UTF-8 bytes are kept as they came), the
reason (a closed word for metrics), the error class and message, when the
record was first and last seen and how often. A record that fails again after
a redelivery updates its row (``keep_dead_letters``). ``replay`` produces a
dead letter's key and value to its topic again once its cause is fixed; the
service consumes it like any other record, in order behind what its partition
holds then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.db import UtcDateTime

log = logging.getLogger(__name__)

ERROR_MAX = 4000
"""Characters of an error message kept with a dead letter."""

BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 30.0


class Record(Protocol):
    """What the runtime reads of a consumed record (aiokafka's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class PoisonRecordError(ValueError):
    """A record the service refuses by itself; ``reason`` is a closed word for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_Model = TypeVar("_Model", bound=BaseModel)


def decode_record(value: bytes | None, model: type[_Model]) -> _Model:
    """The ``model`` in a record's value, or ``PoisonRecordError`` (``invalid``) saying why
    not: a null value, bytes that are not UTF-8 JSON, or JSON that is not a valid ``model``."""
    if value is None:
        raise PoisonRecordError("invalid", "the record has no value (null)")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise PoisonRecordError("invalid", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error_class: str
    error: str

    @classmethod
    def of(cls, record: Record, reason: str, exc: BaseException) -> DeadLetter:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            reason=reason,
            error_class=type(exc.__cause__ or exc).__name__,
            error=_one_line(str(exc))[:ERROR_MAX],
        )

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def log(self, service: str) -> None:
        log.warning(
            "%s: dead letter %s[%d]@%d (%s, %s): %s",
            service,
            self.topic,
            self.partition,
            self.offset,
            self.reason,
            self.error_class,
            self.error[:1000],
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def dead_letter_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The dead-letter table of one service, in the shape both services share."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("error_class", sa.String(200), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("first_seen", UtcDateTime, nullable=False),
        sa.Column("last_seen", UtcDateTime, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("replayed_at", UtcDateTime, nullable=True),
        sa.UniqueConstraint("topic", "partition", "offset", name=f"uq_{name}_record"),
    )


async def keep_dead_letters(
    conn: AsyncConnection, table: sa.Table, letters: Sequence[DeadLetter], now: datetime
) -> None:
    """Store ``letters`` in the caller's transaction; a record seen before counts again."""
    if not letters:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [
        {**letter.values(), "first_seen": now, "last_seen": now, "count": 1} for letter in letters
    ]
    # one row per record even when a batch names it twice
    unique = list({(r["topic"], r["partition"], r["offset"]): r for r in rows}.values())
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["topic", "partition", "offset"],
        set_={
            "last_seen": statement.excluded.last_seen,
            "count": table.c.count + 1,
            "reason": statement.excluded.reason,
            "error_class": statement.excluded.error_class,
            "error": statement.excluded.error,
        },
    )
    await conn.execute(statement, unique)


TRANSIENT_SQLSTATES = ("08", "57P", "53", "40001", "40P01", "55P03")
"""PostgreSQL error classes that say nothing about the data: connection exceptions,
operator intervention (shutdown, cannot connect now), insufficient resources,
serialization failure, deadlock, lock not available."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or the network is away, not that the data is bad."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if any(_sqlstate(cause).startswith(TRANSIENT_SQLSTATES) for cause in _chain(exc)):
        return True
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return not _sqlite_data_error(exc)
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | NodeNotReadyError):
        return True
    if getattr(exc, "retriable", False) is True:  # aiokafka marks its retriable errors
        return True
    name = type(exc).__name__
    # asyncpg's connection faults, when they escape SQLAlchemy's wrapping
    return name in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "InterfaceError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
    }


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver error it wraps and their causes (a few levels)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 8:
        item = todo.pop()
        if item is None or any(item is known for known in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else ""


def _sqlite_data_error(exc: Exception) -> bool:
    """SQLite reports some data faults as OperationalError (e.g. a too large integer)."""
    orig = getattr(exc, "orig", None)
    text = str(orig).lower() if orig is not None else ""
    return "too large" in text or "too big" in text


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` says the schema is not what the code expects: no retry helps."""
    return isinstance(exc, ProgrammingError) and not is_transient(exc)


Apply = Callable[[list[Any], list[DeadLetter]], Awaitable[None]]


class Isolator:
    """Applies a batch through the service's ``apply``; see the module docstring."""

    def __init__(
        self,
        service: str,
        *,
        passthrough: tuple[type[BaseException], ...] = (),
        retry_on: tuple[type[BaseException], ...] = (),
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        on_transient: Callable[[BaseException], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._service = service
        self._passthrough = passthrough
        self._retry_on = retry_on
        self._on_dead_letter = on_dead_letter
        self._on_transient = on_transient
        self._sleep = sleep

    async def apply(self, records: list[Any], apply: Apply) -> None:
        """Apply ``records`` (dead-lettering what fails on its own); returns once all are
        applied or kept as dead letters."""
        await self._retrying(records, [], apply)

    async def _retrying(self, records: list[Any], letters: list[DeadLetter], apply: Apply) -> None:
        failures = 0
        while True:
            try:
                await apply(records, letters)
                return
            except self._passthrough:
                raise
            except Exception as exc:
                if is_fatal(exc):
                    raise
                if not (is_transient(exc) or isinstance(exc, self._retry_on)):
                    await self._isolate(records, letters, apply, exc)
                    return
                failures += 1
                wait = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(failures - 1, 16))
                log.warning(
                    "%s: %s while applying %d records; trying again in %.1f s: %s",
                    self._service,
                    type(exc).__name__,
                    len(records),
                    wait,
                    _one_line(str(exc))[:500],
                )
                if self._on_transient is not None:
                    self._on_transient(exc)
                await self._sleep(wait)

    async def _isolate(
        self, records: list[Any], letters: list[DeadLetter], apply: Apply, exc: Exception
    ) -> None:
        if letters or not records:
            raise exc  # writing dead letters alone failed: not a fault of the data
        if len(records) == 1:
            record = records[0]
            letter = DeadLetter.of(record, "failed", exc)
            log.warning(
                "%s: record %s[%d]@%d fails on its own",
                self._service,
                record.topic,
                record.partition,
                record.offset,
                exc_info=exc,
            )
            await self._retrying([], [letter], apply)
            letter.log(self._service)
            if self._on_dead_letter is not None:
                self._on_dead_letter(letter)
            return
        middle = len(records) // 2
        await self._retrying(records[:middle], [], apply)
        await self._retrying(records[middle:], [], apply)


# --- operating on dead letters --------------------------------------------------


async def list_dead_letters(
    db: AsyncEngine, table: sa.Table, *, limit: int = 100, after_id: int = 0
) -> list[dict[str, Any]]:
    """Dead letters by id, as JSON-ready mappings (key and value as text where they are
    UTF-8, else marked as bytes in hex)."""
    query = sa.select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_jsonable(row) for row in rows]


def _jsonable(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, bytes):
            try:
                out[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                out[name] = None
                out[f"{name}_hex"] = value.hex()
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out


class Producer(Protocol):
    async def send_and_wait(self, topic: str, value: bytes | None, key: bytes | None) -> Any: ...


async def replay(
    db: AsyncEngine,
    table: sa.Table,
    producer: Producer,
    first_id: int,
    last_id: int | None,
    now: datetime,
) -> list[int]:
    """Produce the dead letters with ids ``first_id`` … ``last_id`` (one when ``last_id`` is
    None) to their topics again, key and value as they came, and mark them replayed.
    Those replayed before are skipped. Returns the ids replayed."""
    last = first_id if last_id is None else last_id
    query = (
        sa.select(table.c.id, table.c.topic, table.c.key, table.c.value)
        .where(table.c.id.between(first_id, last), table.c.replayed_at.is_(None))
        .order_by(table.c.id)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    done: list[int] = []
    for row in rows:
        await producer.send_and_wait(row.topic, value=row.value, key=row.key)
        async with db.begin() as conn:
            await conn.execute(sa.update(table).where(table.c.id == row.id).values(replayed_at=now))
        done.append(row.id)
    return done


def rebuild_dead_letter_table(name: str, detail_column: str | None) -> None:
    """Alembic step: bring an older dead-letter table ``name`` (text key and value, a
    ``reason`` and optionally a ``detail_column``, ``received_at``) to the shared shape,
    keeping its rows (the last of each record)."""
    from alembic import op

    bind = op.get_bind()
    old = f"{name}_old"
    op.rename_table(name, old)
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {name}_pkey RENAME TO {old}_pkey")
        op.execute(f"ALTER SEQUENCE {name}_id_seq RENAME TO {old}_id_seq")

        def blob(column: str) -> str:
            return f"convert_to({column}, 'UTF8')"
    else:

        def blob(column: str) -> str:
            return f"CAST({column} AS BLOB)"

    dead_letter_table(name, sa.MetaData()).create(bind)
    error = detail_column or "reason"
    kind = "reason" if detail_column else "'invalid'"
    op.execute(
        f'INSERT INTO {name} (topic, partition, "offset", key, value, reason, error_class, '
        f"error, first_seen, last_seen, count) "
        f'SELECT topic, partition, "offset", {blob("key")}, {blob("value")}, {kind}, '
        f"'unknown', {error}, received_at, received_at, 1 FROM {old} "
        f'WHERE id IN (SELECT MAX(id) FROM {old} GROUP BY topic, partition, "offset")'
    )
    op.drop_table(old)


class _Topics(Protocol):
    async def topics(self) -> set[str]: ...


async def reachable(db: AsyncEngine, kafka: _Topics, timeout_s: float = 2.0) -> dict[str, bool]:
    """Whether the database answers a query and the broker a metadata request, each within
    ``timeout_s``: what ``/readyz`` reports besides a service's own readiness."""

    async def database() -> None:
        async with db.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def broker() -> None:
        await kafka.topics()

    async def answers(probe: Callable[[], Awaitable[None]], name: str) -> bool:
        try:
            await asyncio.wait_for(probe(), timeout_s)
        except Exception as exc:  # any failure to answer means not ready
            log.info("readiness: %s unreachable: %s", name, type(exc).__name__)
            return False
        return True

    db_ok, broker_ok = await asyncio.gather(
        answers(database, "database"), answers(broker, "broker")
    )
    return {"database": db_ok, "broker": broker_ok}
