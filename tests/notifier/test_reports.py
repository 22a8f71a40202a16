"""Compliance reports by mail: real Kafka, PostgreSQL (or SQLite), SMTP and an engine over HTTP.

Each service test runs the notifier's app in-process with fresh topics and a
fresh database, produces ``report.due`` events and watches the SMTP sink, the
notifications topic, the notifier's tables and its metrics. The engine is the
engine's own report API (``reports_router``) over an empty engine database,
served on loopback, with each request it answered noted. The notifier's
configuration file has a ``contracts:`` section (``CONTRACTS``): who gets a
report is its contract's ``report_to`` there, whatever the event says.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import random
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import CONFIG, HASHER, write_config
from notifier.harness import SettingsMaker, eventually, migrated, rewind_group, running_notifier
from slawatch_common.db import create_engine, upgrade
from slawatch_common.events import Channel, ReportEvent
from slawatch_engine import store as engine_store
from slawatch_engine.policy import load_policies
from slawatch_engine.reports_api import reports_router
from slawatch_notifier import reports, store
from slawatch_notifier.channels.email import message_id
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import parse_config
from slawatch_notifier.metrics import NotifierMetrics, ReportSkip
from slawatch_notifier.retry import Status
from slawatch_notifier.settings import NotifierSettings
from support.kafka import TopicReader, produce
from support.processes import started
from support.prom import metric
from support.serving import serving
from support.smtp import RefusingRelay, SmtpSink

REPORT_TOKEN = "dev-report-token"
BOOK = load_policies(Path(__file__).parents[1] / "engine" / "compliance" / "contract.yaml")
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)

PEOPLE: dict[str, Any] = {
    **CONFIG["people"],
    "wang-li": {"name": "王丽", "email": "wang.li@example.com"},
    "chen.jie": {"name": "Chen Jie", "email": "chen.jie@example.com"},
    "sms.only": {"name": "SMS Only", "phone": "+8613800000099"},
    "zhao.lei": {"name": "Zhao Lei", "email": "zhao.lei@example.com"},
}
NOTIFIER = {
    **CONFIG,
    "people": PEOPLE,
    "groups": {"managers": {"members": ["chen.jie", "supervisor"]}},
}

CONTRACTS: dict[str, Any] = {
    # the engine's keys, which the notifier does not read, and report_to, which it does
    "acme": {
        "customer": "ACME Ltd",
        "time_zone": "Asia/Shanghai",
        "policies": ["net", "office"],
        "review": "monthly",
        "report_to": ["wang-li", "chen.jie", "sms.only", "group:managers"],
    },
    "gone": {"customer": "Gone Ltd", "policies": ["net"], "report_to": ["chen.jie"]},
}
"""The configuration's contracts: acme's report goes to wang-li, chen.jie and supervisor
(chen.jie once; sms.only has no address); the engine does not know ``gone``."""

ACME_ADDRESSES = ["chen.jie@example.com", "supervisor@example.com", "wang.li@example.com"]

WANG_LI = "report:acme:2026-11:scheduled:wang-li:email"
CHEN_JIE = "report:acme:2026-11:scheduled:chen.jie:email"
SUPERVISOR = "report:acme:2026-11:scheduled:supervisor:email"

AS_OF = "2026-12-01T00:30:00+08:00"
"""The instant the engine judged November's report at (in its zone) ..."""
AS_OF_UTC = "2026-11-30T16:30:00Z"
"""... and as the notifier asks the engine for it."""


def report_event(
    report_to: Sequence[str] = ("zhao.lei",),
    *,
    contract: str = "acme",
    issue: str = "scheduled",
    language: str = "zh-CN",
    as_of: str = AS_OF,
) -> ReportEvent:
    """The engine's ``report.due`` of ``contract`` for November 2026 (Asia/Shanghai); its
    ``report_to`` (by default someone the configuration does not name for the contract) is
    for the record only."""
    return ReportEvent.model_validate(
        {
            "event_id": f"report:{contract}:2026-11:{issue}",
            "type": "report.due",
            "occurred_at": "2026-11-30T17:00:00Z",
            "source": "slawatch-engine",
            "data": {
                "contract": contract,
                "customer": "ACME Ltd",
                "period": "2026-11",
                "start": "2026-10-31T16:00:00Z",
                "end": "2026-11-30T16:00:00Z",
                "as_of": as_of,
                "review": "monthly",
                "language": language,
                "report_to": list(report_to),
                "issue": issue,
            },
        }
    )


def record(event: ReportEvent) -> tuple[str, Any]:
    return event.key, event.model_dump(mode="json")


# --- the engine -----------------------------------------------------------------


@dataclass
class Engine:
    """The engine's report API over ``db``, and every request it answered (auth passed)."""

    db: AsyncEngine
    requests: list[dict[str, str | None]] = field(default_factory=list)

    def fetches(self) -> list[tuple[str | None, ...]]:
        return sorted(
            (r["contract"], r["period"], r["format"], r["lang"], r["charts"], r["as_of"])
            for r in self.requests
        )


def engine_app(engine: Engine) -> FastAPI:
    """The engine's ``GET /v1/reports/{contract}`` (contract ``acme`` of the worked month's
    configuration), noting each request that passed the token check."""
    app = FastAPI()
    app.include_router(reports_router(BOOK, lambda: engine.db, (REPORT_TOKEN,), lambda: NOW))

    @app.middleware("http")
    async def note(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if response.status_code != 401 and request.url.path.startswith("/v1/reports/"):
            query = request.query_params
            engine.requests.append(
                {
                    "contract": request.url.path.removeprefix("/v1/reports/"),
                    "period": query.get("period"),
                    "format": query.get("format", "json"),
                    "lang": query.get("lang"),
                    "charts": query.get("charts", "interactive"),
                    "as_of": query.get("as_of"),
                }
            )
        return response

    return app


@pytest.fixture
async def engine_db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine database with its schema and nothing in it."""
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path}/engine.db")
    await upgrade(db, engine_store.MIGRATIONS, engine_store.VERSION_TABLE)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def engine(engine_db: AsyncEngine) -> AsyncIterator[tuple[Engine, str]]:
    """The engine's report API, served, and its URL."""
    served = Engine(engine_db)
    async with serving(engine_app(served)) as url:
        yield served, url


@pytest.fixture
def reserved() -> Iterator[socket.socket]:
    """A loopback socket bound but not listening: connections to its port are refused
    until an app is served on it (``serving_on``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@asynccontextmanager
async def serving_on(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """``app`` served on ``sock`` (``support.serving`` picks a port of its own)."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                raise RuntimeError("the app did not start") from task.exception()
            await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await task


def _settings(
    make_settings: SettingsMaker, engine_url: str, database_url: str | None = None
) -> NotifierSettings:
    """Quick retries, the test's engine, ``CONTRACTS`` in the configuration file and, if
    given, a database instead of SQLite."""
    settings = make_settings(
        notifier=NOTIFIER, retry_base_s=0.05, retry_cap_s=0.2, engine_url=engine_url
    )
    assert write_config(settings.config_file.parent, NOTIFIER, CONTRACTS) == settings.config_file
    if database_url is None:
        return settings
    return settings.model_copy(update={"database_url": database_url})


# --- looking at what happened ----------------------------------------------------


def _mails(sink: SmtpSink) -> dict[str, tuple[list[str], EmailMessage]]:
    """Every mail by its To address: the envelope's recipients and the parsed message."""
    found: dict[str, tuple[list[str], EmailMessage]] = {}
    for received in sink.received_snapshot():
        message = email.message_from_bytes(received.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found[message["To"].addresses[0].addr_spec] = (received.recipients, message)
    return found


async def _rows(database_url: str) -> dict[str, sa.RowMapping]:
    db = create_engine(database_url)
    try:
        async with db.connect() as conn:
            return {
                row["id"]: row for row in (await conn.execute(sa.select(store.reports))).mappings()
            }
    finally:
        await db.dispose()


async def _until_rows(database_url: str, check: Any, wait_s: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        rows = await _rows(database_url)
        if check(rows):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true after {wait_s}s: {rows}")
        await asyncio.sleep(0.05)


async def _dead_letters(database_url: str) -> list[tuple[str, str, bytes, int]]:
    db = create_engine(database_url)
    try:
        async with db.connect() as conn:
            table = store.dead_letters
            query = sa.select(table.c.topic, table.c.reason, table.c.value, table.c.count)
            rows = (await conn.execute(query)).all()
    finally:
        await db.dispose()
    return [(row.topic, row.reason, row.value, row[3]) for row in rows]


SKIPPED = "slawatch_notifier_report_recipients_skipped_total"


async def _until_metric(
    client: httpx.AsyncClient, name: str, value: float, wait_s: float = 30.0
) -> None:
    """Poll the notifier's ``/metrics`` until ``name`` (summed) reaches ``value``."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while metric((await client.get("/metrics")).text, name) < value:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} below {value} after {wait_s}s")
        await asyncio.sleep(0.05)


def _assert_report_mail(message: EmailMessage, row_id: str, name: str, address: str) -> None:
    assert message.get_content_type() == "multipart/mixed"
    assert message["Subject"] == "服务水平报告：ACME Ltd 2026-11"
    assert message["Message-ID"] == message_id(row_id, "localhost")
    assert (message["To"].addresses[0].display_name, message["To"].addresses[0].addr_spec) == (
        name,
        address,
    )
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    html = body.get_content()
    assert "ACME Ltd" in html
    assert "2026-11" in html
    assert "服务水平报告" in html
    assert "<script" not in html
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "acme-2026-11.pdf" in text.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "acme-2026-11.pdf"
    pdf = attachment.get_content()
    assert isinstance(pdf, bytes)
    assert len(pdf) > 100
    assert pdf.startswith(b"%PDF")


# --- the service -----------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.smtp
@pytest.mark.postgres
async def test_a_due_report_mails_each_configured_recipient_once_with_its_pdf(
    make_settings: SettingsMaker, pg_url: str, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    fake, url = engine
    settings = _settings(make_settings, url, database_url=pg_url)
    # the event names zhao.lei (and a stranger): the configuration's acme people get it
    due = report_event(["zhao.lei", "ghost", "zhao.lei"])
    async with (
        TopicReader(settings.kafka_bootstrap, settings.topics.notifications) as notifications,
        running_notifier(settings) as client,
    ):
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(due)])
        await eventually(lambda: len(smtp_sink.snapshot()) >= 3)
        records = await notifications.wait_for(lambda values: len(values) >= 3)
        await asyncio.sleep(0.3)  # time for any (wrong) further mail
        exposition = (await client.get("/metrics")).text

    mails = _mails(smtp_sink)
    assert sorted(mails) == ACME_ADDRESSES
    assert len(smtp_sink.snapshot()) == 3
    for address, (envelope, _) in mails.items():
        assert envelope == [address]
    _assert_report_mail(mails["wang.li@example.com"][1], WANG_LI, "王丽", "wang.li@example.com")
    _assert_report_mail(
        mails["chen.jie@example.com"][1], CHEN_JIE, "Chen Jie", "chen.jie@example.com"
    )
    # one fetch of each document for all mails, in the report's language, both as of the
    # instant the event names
    assert fake.fetches() == [
        ("acme", "2026-11", "html", "zh-CN", "static", AS_OF_UTC),
        ("acme", "2026-11", "pdf", "zh-CN", "interactive", AS_OF_UTC),
    ]

    keys = {key for key, _, _ in notifications.records}
    assert keys == {"contract:acme"}
    by_id = {value["data"]["notification_id"]: value for value in records}
    assert sorted(by_id) == [CHEN_JIE, SUPERVISOR, WANG_LI]
    sent = by_id[WANG_LI]
    assert sent["type"] == "notification.sent"
    assert sent["event_id"] == f"notification:{WANG_LI}:sent"
    assert sent["data"] == {
        "notification_id": WANG_LI,
        "sla_event_id": "report:acme:2026-11:scheduled",
        "clock_id": "report:acme:2026-11",
        "stage": "report",
        "ticket_source": "contract",
        "ticket_id": "acme",
        "recipient": "wang-li",
        "channel": "email",
        "address": HASHER(Channel.EMAIL, "wang.li@example.com"),  # never the address itself
        "attempts": 1,
        "error": None,
        "digest_id": None,
    }

    assert metric(exposition, SKIPPED, reason="unknown_person") == 0
    assert metric(exposition, SKIPPED, reason="no_email") == 1
    assert metric(exposition, SKIPPED, reason="unknown_contract") == 0
    assert metric(exposition, "slawatch_report_sent_total", contract="acme") == 3
    assert metric(exposition, "slawatch_report_failed_total", contract="gone") == 0
    last = metric(exposition, "slawatch_report_last_sent_timestamp_seconds", contract="acme")
    assert abs(last - datetime.now(UTC).timestamp()) < 60
    rows = await _rows(pg_url)
    assert sorted(rows) == [CHEN_JIE, SUPERVISOR, WANG_LI]
    assert {row["status"] for row in rows.values()} == {Status.SENT}
    assert all(row["published"] and row["sent_at"] for row in rows.values())
    assert {row["as_of"] for row in rows.values()} == {datetime.fromisoformat(AS_OF)}


@pytest.mark.kafka
@pytest.mark.smtp
async def test_a_report_of_a_contract_the_configuration_lacks_mails_nobody_and_is_counted(
    make_settings: SettingsMaker, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    fake, url = engine
    settings = _settings(make_settings, url)
    # a forged or wrong event: a contract the notifier's configuration does not have,
    # naming people it knows
    stranger = report_event(["wang-li", "chen.jie"], contract="stranger")
    then = report_event(issue="manual:1", language="en")
    async with running_notifier(settings) as client:
        await produce(
            settings.kafka_bootstrap, settings.topics.reports, [record(stranger), record(then)]
        )
        await eventually(lambda: len(smtp_sink.snapshot()) >= 3)
        await _until_rows(
            settings.database_url,
            lambda rows: len(rows) == 3 and all(row["published"] for row in rows.values()),
        )
        await asyncio.sleep(0.3)  # time for any (wrong) further mail
        exposition = (await client.get("/metrics")).text

    # the consumer went on: the next event's mails went out, to acme's people only
    assert sorted(_mails(smtp_sink)) == ACME_ADDRESSES
    assert len(smtp_sink.snapshot()) == 3
    rows = await _rows(settings.database_url)
    assert {row["contract"] for row in rows.values()} == {"acme"}
    assert {row["issue"] for row in rows.values()} == {"manual:1"}
    assert {request["contract"] for request in fake.requests} == {"acme"}
    assert metric(exposition, SKIPPED, reason="unknown_contract") == 1
    assert metric(exposition, SKIPPED, reason="no_email") == 1
    assert await _dead_letters(settings.database_url) == []
    # no series is labelled with a contract the configuration does not have
    assert 'contract="stranger"' not in exposition
    assert metric(exposition, "slawatch_report_sent_total", contract="acme") == 3


@pytest.mark.kafka
@pytest.mark.smtp
@pytest.mark.postgres
async def test_a_report_read_again_and_again_and_after_a_restart_is_mailed_once(
    make_settings: SettingsMaker, pg_url: str, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    fake, url = engine
    settings = _settings(make_settings, url, database_url=pg_url)
    due = report_event(["wang-li", "ghost"])
    by_hand = report_event(["wang-li"], issue="manual:7", as_of="2026-12-07T09:15:00+08:00")
    sent: list[tuple[str, Any]] = [("acme", b"{not json"), record(due), record(due)]
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.reports, sent)
        await eventually(lambda: len(smtp_sink.snapshot()) >= 1)
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(due)])
        await _until_metric(client, SKIPPED, 3)  # sms.only (no address), per event read
        await _until_rows(
            pg_url, lambda rows: len(rows) == 3 and all(r["published"] for r in rows.values())
        )
        exposition = (await client.get("/metrics")).text
    assert metric(exposition, "slawatch_notifier_dead_letters_total", reason="invalid_json") == 1

    # Redelivery: the group starts over from offset 0 in a second notifier instance.
    group = reports.consumer_group(settings)
    await rewind_group(settings.kafka_bootstrap, group, settings.topics.reports)
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(by_hand)])
        await _until_metric(client, SKIPPED, 4)
        await eventually(lambda: len(smtp_sink.snapshot()) >= 6)
        await asyncio.sleep(0.5)  # time for any (wrong) send to happen
        assert metric((await client.get("/metrics")).text, SKIPPED) == 4

    # the scheduled report once, and the one issued by hand (a distinct issue) once, to
    # each of acme's people
    people = ("wang-li", "chen.jie", "supervisor")
    expected = [
        f"report:acme:2026-11:{issue}:{person}:email"
        for issue in ("scheduled", "manual:7")
        for person in people
    ]
    message_ids = sorted(str(message["Message-ID"]) for _, _, message in smtp_sink.snapshot())
    assert message_ids == sorted(message_id(row_id, "localhost") for row_id in expected)
    assert await _dead_letters(pg_url) == [
        (settings.topics.reports, "invalid_json", b"{not json", 2)
    ]
    rows = await _rows(pg_url)
    assert sorted(rows) == sorted(expected)
    assert {row["attempts"] for row in rows.values()} == {1}
    # each issue fetched as of its own instant
    assert {r["as_of"] for r in fake.requests} == {AS_OF_UTC, "2026-12-07T01:15:00Z"}


@pytest.mark.kafka
@pytest.mark.smtp
@pytest.mark.postgres
async def test_a_report_waits_for_an_engine_that_is_down_and_goes_out_once_it_is_up(
    make_settings: SettingsMaker,
    pg_url: str,
    engine_db: AsyncEngine,
    reserved: socket.socket,
    smtp_sink: SmtpSink,
) -> None:
    port = reserved.getsockname()[1]
    settings = _settings(make_settings, f"http://127.0.0.1:{port}", database_url=pg_url)
    async with (
        TopicReader(settings.kafka_bootstrap, settings.topics.notifications) as notifications,
        running_notifier(settings),
    ):
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(report_event())])
        rows = await _until_rows(
            pg_url,
            lambda rows: len(rows) == 3 and all(row["attempts"] >= 3 for row in rows.values()),
        )
        assert {row["status"] for row in rows.values()} <= {Status.PENDING, Status.SENDING}
        assert "ConnectError" in (rows[WANG_LI]["last_error"] or "")
        assert smtp_sink.snapshot() == []
        fake = Engine(engine_db)
        async with serving_on(engine_app(fake), reserved):
            await eventually(lambda: len(smtp_sink.snapshot()) >= 3)
            records = await notifications.wait_for(lambda values: len(values) >= 3)
            await asyncio.sleep(0.3)
    assert len(smtp_sink.snapshot()) == 3
    assert {value["type"] for value in records} == {"notification.sent"}
    assert all(value["data"]["attempts"] >= 3 for value in records)
    # the mails failed together, so they fell due together and shared one fetch, which
    # asked for the report as of the event's instant, not as of the (later) day it ran
    assert [(r["format"], r["lang"], r["as_of"]) for r in fake.requests] == [
        ("pdf", "zh-CN", AS_OF_UTC),
        ("html", "zh-CN", AS_OF_UTC),
    ]


@pytest.mark.kafka
@pytest.mark.smtp
async def test_a_report_the_engine_does_not_have_fails_at_once_and_says_why(
    make_settings: SettingsMaker, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    _, url = engine
    settings = _settings(make_settings, url)
    gone = report_event(["wang-li"], contract="gone", language="en")
    async with (
        TopicReader(settings.kafka_bootstrap, settings.topics.notifications) as notifications,
        running_notifier(settings) as client,
    ):
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(gone)])
        (failed,) = await notifications.wait_for(lambda values: len(values) >= 1)
        exposition = (await client.get("/metrics")).text
    assert smtp_sink.snapshot() == []
    assert failed["type"] == "notification.failed"
    assert failed["data"]["recipient"] == "chen.jie"  # gone's, not the event's
    assert failed["data"]["attempts"] == 1
    assert failed["data"]["error"].startswith("engine: pdf: HTTP 404")
    assert metric(exposition, "slawatch_report_failed_total", contract="gone") == 1


@pytest.mark.kafka
@pytest.mark.smtp
async def test_a_mail_a_crash_interrupted_is_sent_again_with_its_message_id(
    make_settings: SettingsMaker, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    fake, url = engine
    settings = _settings(make_settings, url)
    now = datetime.now(UTC)
    config = parse_config(NOTIFIER, contracts={"acme": {"report_to": ["chen.jie"]}})
    rows, _ = reports.plan(report_event(language="en"), config, now)
    async with migrated(settings.database_url) as db, db.begin() as conn:
        await reports.insert_new(conn, rows)
        await conn.execute(
            sa.update(store.reports).values(status=Status.SENDING, attempts=1, retry_from=now)
        )
    async with running_notifier(settings):
        await eventually(lambda: len(smtp_sink.snapshot()) >= 1)
        stored = await _until_rows(settings.database_url, lambda rows: rows[CHEN_JIE]["published"])
    ((_, message),) = _mails(smtp_sink).values()
    assert message["Message-ID"] == message_id(CHEN_JIE, "localhost")
    assert message["Subject"] == "SLA compliance report: ACME Ltd, 2026-11"
    row = stored[CHEN_JIE]
    assert (row["status"], row["attempts"], row["interrupted"]) == (Status.SENT, 2, 1)
    # the resend fetched the report as of the stored instant: the same figures
    assert fake.fetches() == [
        ("acme", "2026-11", "html", "en", "static", AS_OF_UTC),
        ("acme", "2026-11", "pdf", "en", "interactive", AS_OF_UTC),
    ]


@pytest.mark.kafka
@pytest.mark.smtp
async def test_a_stop_ends_the_mail_in_flight_gives_back_the_rest_and_a_restart_sends_them(
    make_settings: SettingsMaker, engine: tuple[Engine, str], smtp_sink: SmtpSink
) -> None:
    fake, url = engine
    settings = _settings(make_settings, url)
    smtp_sink.delay_s = 0.5
    due = report_event()
    async with running_notifier(settings):
        await produce(settings.kafka_bootstrap, settings.topics.reports, [record(due)])
        await eventually(lambda: smtp_sink.in_progress() == 1)
    # the stop waited for the mail in flight and recorded it; the others were given back
    rows = await _rows(settings.database_url)
    assert sorted((row["status"], row["attempts"]) for row in rows.values()) == [
        (Status.PENDING, 0),
        (Status.PENDING, 0),
        (Status.SENT, 1),
    ]
    assert len(smtp_sink.snapshot()) == 1
    smtp_sink.delay_s = 0.0
    async with running_notifier(settings):
        await _until_rows(
            settings.database_url,
            lambda rows: all(row["status"] == Status.SENT for row in rows.values()),
        )
        await asyncio.sleep(0.3)
    recipients = sorted(r for _, recipients, _ in smtp_sink.snapshot() for r in recipients)
    assert recipients == ACME_ADDRESSES
    # a batch after the restart fetched the same document as the first
    assert {r["as_of"] for r in fake.requests} == {AS_OF_UTC}
    assert len(fake.requests) == 4


@pytest.mark.smtp
async def test_a_relay_refusal_that_quotes_the_address_is_logged_with_its_hash(
    engine: tuple[Engine, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay quotes each recipient (once in capitals); the log lines of the mails show
    the addresses' hashes, never an address."""
    caplog.set_level(logging.INFO)
    _, url = engine
    config = parse_config(NOTIFIER, contracts=CONTRACTS)
    rows, _ = reports.plan(report_event(), config, datetime(2026, 11, 30, 17, tzinfo=UTC))
    replies = ("450 4.2.1 <{address}>: mailbox busy", "550 5.1.1 <{upper}>: User unknown")
    with started(RefusingRelay(*replies)) as relay:
        settings = NotifierSettings(
            smtp_port=relay.port, send_timeout_s=5, engine_url=url, retry_base_s=0.01
        )
        async with (
            migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as db,
            reports.engine_client(settings) as client,
        ):
            async with db.begin() as conn:
                await reports.insert_new(conn, rows)
            delivery = reports.ReportDelivery(
                db,
                client,
                settings,
                NotifierMetrics(CollectorRegistry()),
                clock=SystemClock(),
                rand=random.Random(1),
                bell=asyncio.Event(),
                outbox_bell=asyncio.Event(),
                hasher=HASHER,
            )
            assert await delivery.deliver_due() == 3
            await asyncio.sleep(0.05)  # past every backoff drawn (at most retry_base_s)
            assert await delivery.deliver_due() == 3
    assert sorted(relay.asked) == ACME_ADDRESSES
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("slawatch")]
    for address in ACME_ADDRESSES:
        hashed = HASHER(Channel.EMAIL, address)
        refusals = [line for line in lines if f"({hashed}), attempt" in line]
        assert len(refusals) == 2, (address, lines)
        assert f"<{hashed}>: mailbox busy" in refusals[0]
        assert f"<{hashed}>: User unknown" in refusals[1]
    everything = "\n".join(lines).lower()
    assert not [address for address in ACME_ADDRESSES if address in everything]


# --- the mail, pure ----------------------------------------------------------------


def _claimed(**fields: Any) -> reports.ClaimedReport:
    values: dict[str, Any] = {
        "id": WANG_LI,
        "event_id": "report:acme:2026-11:scheduled",
        "contract": "acme",
        "customer": "ACME Ltd",
        "period": "2026-11",
        "as_of": datetime.fromisoformat(AS_OF),
        "language": "zh-CN",
        "recipient": "wang-li",
        "recipient_name": "王丽",
        "address": "wang.li@example.com",
        "attempts": 1,
        "retry_from": None,
    }
    return reports.ClaimedReport(**{**values, **fields})


def test_event_text_cannot_add_a_header_or_a_path() -> None:
    claimed = _claimed(
        contract="../../etc/passwd\r\nBcc: x@evil.example",
        customer="ACME\r\nBcc: evil@example.com",
        recipient_name="Wang\nBcc: evil@example.com",
    )
    message = reports.build_message(
        claimed, reports.Documents(b"%PDF-1.7", "<p>hi</p>"), sender="slawatch <s@x.cn>", now=NOW
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert "\n" not in str(parsed["Subject"])
    (attachment,) = list(parsed.iter_attachments())
    filename = attachment.get_filename() or ""
    assert filename.endswith(".pdf")
    assert "/" not in filename
    assert not filename.startswith(".")


def test_an_unusable_address_is_refused() -> None:
    with pytest.raises(ValueError, match="not a usable email address"):
        reports.build_message(
            _claimed(address="a@b.cn, c@d.cn"),
            reports.Documents(b"%PDF-1.7", "<p>hi</p>"),
            sender="slawatch <s@x.cn>",
            now=NOW,
        )


def test_attachment_names_keep_letters_and_lose_the_rest() -> None:
    assert reports.attachment_name("acme", "2026-Q4") == "acme-2026-Q4.pdf"
    assert reports.attachment_name("华东 数据", "2026") == "华东_数据-2026.pdf"
    assert reports.attachment_name('a"b;c', "2026-11") == "a_b_c-2026-11.pdf"


NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_the_configured_report_to_chooses_the_recipients_and_the_event_does_not() -> None:
    config = parse_config(
        NOTIFIER,
        contracts={
            "acme": {"report_to": ["group:managers", "wang-li", "chen.jie", "sms.only"]},
            "quiet": {"customer": "Quiet Ltd"},
        },
    )
    due = report_event(["zhao.lei", "oncall", "group:managers"])
    rows, skipped = reports.plan(due, config, datetime(2026, 11, 30, 17, tzinfo=UTC))
    # each member of the group with an email address, each person once
    assert [row["recipient"] for row in rows] == ["chen.jie", "supervisor", "wang-li"]
    assert {row["as_of"] for row in rows} == {datetime.fromisoformat(AS_OF)}
    assert [(s.person, s.reason) for s in skipped] == [("sms.only", ReportSkip.NO_EMAIL)]
    # a contract configured without report_to mails nobody
    assert reports.plan(report_event(contract="quiet"), config, NOW) == ([], [])


def test_a_contract_the_configuration_lacks_gets_no_row_and_one_skip() -> None:
    config = parse_config(NOTIFIER, contracts={"acme": {"report_to": ["wang-li"]}})
    stranger = report_event(["wang-li"], contract="stranger")
    rows, skipped = reports.plan(stranger, config, NOW)
    assert rows == []
    assert skipped == [
        reports.Skipped(
            "report:stranger:2026-11:scheduled", "stranger", ReportSkip.UNKNOWN_CONTRACT
        )
    ]
    # without a contracts section the notifier mails no report at all
    assert reports.plan(report_event(["wang-li"]), parse_config(NOTIFIER), NOW)[0] == []


def test_the_document_of_a_mail_is_asked_for_as_of_its_instant_in_utc() -> None:
    assert _claimed().document == ("acme", "2026-11", "zh-CN", AS_OF_UTC)
    later = datetime(2026, 12, 7, 1, 15, 0, 250000, tzinfo=UTC)
    assert _claimed(as_of=later).document[3] == "2026-12-07T01:15:00.250000Z"
    assert datetime.fromisoformat(reports.iso_utc(later)) == later
