"""Database plumbing: async engines for PostgreSQL and SQLite, and Alembic upgrades.

Each service owns its tables and its Alembic history (``<package>/migrations``)
with a version table of its own, so two services may share one database.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Dialect, MetaData, TypeDecorator, event, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite keeps no offset of its own).

    Naive datetimes are refused: every instant in slawatch carries its zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: slawatch stores aware UTC instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url`` (``postgresql+asyncpg://`` or ``sqlite+aiosqlite://``).

    Errors never quote bound parameters (``hide_parameters``): they may hold event
    text, addresses or signed links, and errors are logged and kept with dead letters.
    TLS to PostgreSQL is asked for in the URL as libpq has it (``tls_of``).
    For SQLite the file's folder is created, WAL journaling is switched on and
    writers wait for each other instead of failing with "database is locked".
    """
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    url, connect_args = tls_of(url)
    return create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=5,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=connect_args,
    )


TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
"""libpq's TLS parameters, read from the query of a ``postgresql+asyncpg://`` URL."""


def tls_of(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without libpq's TLS parameters, and the driver's ``ssl`` argument they make.

    ``?sslmode=verify-full&sslrootcert=/etc/slawatch/db-ca.pem`` means what it
    means to ``psql``: ``disable`` (never TLS), ``allow``/``prefer`` (TLS when the
    server offers it, unverified; with ``sslcert``, TLS required), ``require``
    (TLS, unverified — verified against ``sslrootcert`` when one is given, as
    libpq does), ``verify-ca`` (the server's
    certificate chains to ``sslrootcert``, or to the system's CAs), ``verify-full``
    (and names the host). ``sslcert``/``sslkey``: a client certificate. Anything
    else is a ``ValueError`` naming the parameter.
    """
    parsed = make_url(url)
    query = dict(parsed.query)
    given = {name: query.pop(name) for name in TLS_PARAMETERS if name in query}
    if not given:
        return url, {}
    values = {name: value if isinstance(value, str) else value[-1] for name, value in given.items()}
    mode = values.get("sslmode", "prefer")
    root, cert, key = values.get("sslrootcert"), values.get("sslcert"), values.get("sslkey")
    bare = parsed.set(query=query).render_as_string(hide_password=False)
    if mode == "disable":
        return bare, {"ssl": False}
    if mode in ("allow", "prefer") and cert is None:
        return bare, {"ssl": "prefer"}
    if mode not in ("allow", "prefer", "require", "verify-ca", "verify-full"):
        raise ValueError(
            f"database URL: sslmode={mode!r} is none of disable, allow, prefer, require, "
            "verify-ca, verify-full"
        )
    verify = mode.startswith("verify") or (mode == "require" and root is not None)
    try:
        context = ssl.create_default_context(cafile=root)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"database URL: sslrootcert/sslcert/sslkey not usable: {exc}") from exc
    context.check_hostname = mode == "verify-full"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return bare, {"ssl": context}


def _ensure_sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(script_location: Path, version_table: str, url: str = "") -> Config:
    """An Alembic config for one service's migrations, without an ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("version_table", version_table)
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, script_location: Path, version_table: str) -> None:
    """Bring the database behind ``engine`` to the newest revision. Idempotent."""

    def run(connection: Connection) -> None:
        cfg = alembic_config(script_location, version_table)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def run_env(metadata: MetaData) -> None:
    """The body of a service's ``migrations/env.py``.

    Uses the connection handed in by ``upgrade``; from the ``alembic`` command
    line it connects to ``sqlalchemy.url`` itself.
    """
    cfg = context.config
    version_table = cfg.get_main_option("version_table") or "alembic_version"
    connection = cfg.attributes.get("connection")
    if connection is not None:
        _migrate(connection, metadata, version_table)
        return
    url, connect_args = tls_of(cfg.get_main_option("sqlalchemy.url") or "")
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)

    async def run() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate, metadata, version_table)
        await engine.dispose()

    asyncio.run(run())


def _migrate(connection: Connection, metadata: MetaData, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
