"""TLS to PostgreSQL, asked for in the database URL as libpq has it (``db.tls_of``).

A server of the test's own takes TLS connections only (``hostnossl … reject``),
with a certificate for 127.0.0.1 made by openssl: ``verify-full`` against it
connects; against another CA, or in clear, the connection is refused.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from slawatch_common.db import create_engine, tls_of
from support.certs import self_signed
from support.pg_instance import PgInstance

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pg-tls")
    server, key = self_signed(folder, "server")
    foreign, _ = self_signed(folder, "foreign")
    return {"server": server, "key": key, "foreign": foreign}


@pytest.fixture(scope="module")
def pg(certificates: dict[str, Path]) -> Iterator[PgInstance]:
    instance = PgInstance()
    try:
        instance.create()
        instance.stop()
        instance.require_tls(certificates["server"], certificates["key"])
        instance.start()
        yield instance
    finally:
        instance.destroy()


async def ssl_in_use(url: str) -> bool:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return bool((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_verify_full_against_the_servers_ca_connects_over_tls(
    pg: PgInstance, certificates: dict[str, Path]
) -> None:
    url = f"{pg.url}?sslmode=verify-full&sslrootcert={certificates['server']}"
    assert await ssl_in_use(url)
    assert await ssl_in_use(f"{pg.url}?sslmode=require")


async def test_another_ca_or_clear_text_is_refused(
    pg: PgInstance, certificates: dict[str, Path]
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await ssl_in_use(f"{pg.url}?sslmode=verify-ca&sslrootcert={certificates['foreign']}")
    with pytest.raises(sa.exc.DBAPIError, match=r"pg_hba\.conf rejects .* no encryption"):
        await ssl_in_use(f"{pg.url}?sslmode=disable")


def test_the_url_parameters_and_their_meaning(certificates: dict[str, Path]) -> None:
    root = certificates["server"]
    base = "postgresql+asyncpg://u:p%40ss@db:5432/slawatch"
    assert tls_of(base) == (base, {})
    bare, args = tls_of(f"{base}?sslmode=verify-full&sslrootcert={root}&application_name=x")
    assert bare == f"{base}?application_name=x"
    context = args["ssl"]
    assert (context.check_hostname, context.verify_mode) == (True, ssl.CERT_REQUIRED)
    _, args = tls_of(f"{base}?sslmode=verify-ca&sslrootcert={root}")
    assert (args["ssl"].check_hostname, args["ssl"].verify_mode) == (False, ssl.CERT_REQUIRED)
    _, args = tls_of(f"{base}?sslmode=require")
    assert args["ssl"].verify_mode == ssl.CERT_NONE
    _, args = tls_of(f"{base}?sslmode=require&sslrootcert={root}")  # libpq: as verify-ca
    assert args["ssl"].verify_mode == ssl.CERT_REQUIRED
    assert tls_of(f"{base}?sslmode=prefer")[1] == {"ssl": "prefer"}
    assert tls_of(f"{base}?sslmode=disable")[1] == {"ssl": False}
    with pytest.raises(ValueError, match="sslmode='verify'"):
        tls_of(f"{base}?sslmode=verify")
    with pytest.raises(ValueError, match="sslrootcert"):
        tls_of(f"{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
