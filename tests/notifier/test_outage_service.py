"""The notifier as a whole through an SMTP outage: real Kafka, SQLite, a real SMTP server.

The mail server is stopped before the warnings arrive and started again later.
Shorter than the retry budget, the outage delays each mail, which then arrives
exactly once; longer, each notification is recorded failed with its reason,
and a redrive (``slawatch-notifier redrive``, here its function) sends each
exactly once after the server is back.
"""

from __future__ import annotations

import asyncio
import email
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from notifier.factories import CONFIG, NOW, sla_event, slots
from notifier.harness import (
    SettingsMaker,
    migrated,
    produce,
    read_records,
    running_notifier,
)
from slawatch_common.db import create_engine
from slawatch_notifier import main, store
from slawatch_notifier.channels.port import Permanent
from slawatch_notifier.config import parse_config
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.routing import route
from slawatch_notifier.settings import NotifierSettings
from slawatch_notifier.templates import render
from support.net import free_port
from support.prom import metric

TICKETS = ("OPS-1", "OPS-2", "OPS-3")


class SwitchableSmtp:
    """A real SMTP server (aiosmtpd) on one loopback port that can be stopped and started
    again; keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(message["Message-ID"]) for message in self.messages)


@pytest.fixture
def mail_server() -> Iterator[SwitchableSmtp]:
    server = SwitchableSmtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(
    make_settings: SettingsMaker, server: SwitchableSmtp, budget_s: float
) -> NotifierSettings:
    settings = make_settings(retry_base_s=0.05, retry_cap_s=0.3, retry_budget_s=budget_s)
    return settings.model_copy(update={"smtp_port": server.port})


async def _rows(database_url: str) -> dict[str, sa.RowMapping]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(store.notifications))).mappings()
            return {row["ticket_id"]: row for row in rows}
    finally:
        await engine.dispose()


async def _until_rows(
    database_url: str, check: Any, wait_s: float = 30.0
) -> dict[str, sa.RowMapping]:
    """Poll the notifications (by ticket) until ``check(rows)`` holds."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = await _rows(database_url)
        if len(rows) == len(TICKETS) and check(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {wait_s}s: {dict(rows)}")
        await asyncio.sleep(0.05)


async def _first_attempts(database_url: str) -> datetime:
    """Wait until every warning was tried at least once; when the last first try began."""
    rows = await _until_rows(database_url, lambda rows: all(r["attempts"] for r in rows.values()))
    latest: datetime = max(row["retry_from"] for row in rows.values())
    return latest


async def _outage_until(first_tried: datetime, outage_s: float) -> None:
    """Sleep until ``outage_s`` after ``first_tried``."""
    left = first_tried + timedelta(seconds=outage_s) - datetime.now(UTC)
    await asyncio.sleep(max(0.0, left.total_seconds()))


async def test_an_outage_shorter_than_the_budget_delays_every_mail_which_arrives_once(
    make_settings: SettingsMaker, mail_server: SwitchableSmtp
) -> None:
    settings = _settings(make_settings, mail_server, budget_s=6)
    mail_server.stop()
    async with running_notifier(settings):
        warnings = [sla_event("warning:75", ticket_id=ticket) for ticket in TICKETS]
        await produce(settings.kafka_bootstrap, settings.topics.sla, warnings)
        first_tried = await _first_attempts(settings.database_url)
        await _outage_until(first_tried, 3.0)
        assert mail_server.message_ids() == Counter()
        mail_server.start()
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 3)
        await asyncio.sleep(0.5)  # time for any (wrong) further send
    assert sorted((r.type, r.data.ticket_id) for _, r in records) == [
        ("notification.sent", ticket) for ticket in TICKETS
    ]
    assert all(r.data.attempts >= 2 for _, r in records)
    ids = mail_server.message_ids()
    assert len(ids) == 3
    assert set(ids.values()) == {1}
    rows = await _rows(settings.database_url)
    assert {row["status"] for row in rows.values()} == {"sent"}


async def test_an_outage_longer_than_the_budget_fails_each_and_a_redrive_sends_each_once(
    make_settings: SettingsMaker, mail_server: SwitchableSmtp
) -> None:
    settings = _settings(make_settings, mail_server, budget_s=2)
    mail_server.stop()
    began = datetime.now(UTC)
    async with running_notifier(settings) as client:
        warnings = [sla_event("warning:75", ticket_id=ticket) for ticket in TICKETS]
        await produce(settings.kafka_bootstrap, settings.topics.sla, warnings)
        first_tried = await _first_attempts(settings.database_url)
        rows = await _until_rows(
            settings.database_url,
            lambda rows: all(r["status"] == "failed" for r in rows.values()),
        )
        failed = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 3)
        exposition = (await client.get("/metrics")).text
        await _outage_until(first_tried, 5.0)
        mail_server.start()
        await asyncio.sleep(0.5)
        assert mail_server.message_ids() == Counter()  # failed stays failed

        redriven = await main.redrive(settings, store.RedriveFilter(failed_from=began))
        assert sorted(ref.id for ref in redriven) == sorted(row["id"] for row in rows.values())
        await _until_rows(
            settings.database_url,
            lambda rows: all(r["status"] == "sent" for r in rows.values()),
            wait_s=15,  # the dispatcher looks for due rows every few seconds without a doorbell
        )
        records = await read_records(settings.kafka_bootstrap, settings.topics.notifications, 6)
        await asyncio.sleep(0.5)  # time for any (wrong) further send

    for row in rows.values():
        error = row["last_error"]
        assert error.startswith(f"retry budget of 2s exhausted after {row['attempts']} attempt(s)")
        assert "; last error: SMTP " in error
        assert "Connect call failed" in error
    assert sorted((r.type, r.data.ticket_id) for _, r in failed) == [
        ("notification.failed", ticket) for ticket in TICKETS
    ]
    assert all(r.data.error == rows[r.data.ticket_id]["last_error"] for _, r in failed)
    exhausted = {"channel": "email", "outcome": "failed", "reason": "budget_exhausted"}
    assert metric(exposition, "slawatch_notifier_notifications_total", **exhausted) == 3
    # after the redrive each is sent, told under a new event id
    sent = [r for _, r in records if r.type == "notification.sent"]
    assert sorted(r.data.ticket_id for r in sent) == list(TICKETS)
    assert {r.event_id for r in sent} == {
        f"notification:{r.data.notification_id}:sent:r1" for r in sent
    }
    assert len({r.event_id for _, r in records}) == 6
    ids = mail_server.message_ids()
    assert len(ids) == 3
    assert set(ids.values()) == {1}
    after = await _rows(settings.database_url)
    assert all(row["note"].startswith("redriven at ") for row in after.values())
    assert {row["redrives"] for row in after.values()} == {1}


def test_the_redrive_command_moves_failed_notifications_of_the_configured_database(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/notifier.db"
    ids = asyncio.run(_two_failed(url))
    env = {**os.environ, "SLAWATCH_NOTIFIER_DATABASE_URL": url, "SLAWATCH_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "slawatch_notifier.main", "redrive"]
    done = subprocess.run(
        [*command, "--ticket", "jira:OPS-1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"redriven 1 failed notification(s)\n{ids['OPS-1']} (email)\n",
    ), done.stderr
    again = subprocess.run(
        [*command, "--ticket", "jira:OPS-1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (again.returncode, again.stdout) == (0, "redriven 0 failed notification(s)\n")
    statuses = asyncio.run(_statuses(url))
    assert statuses == {ids["OPS-1"]: "pending", ids["OPS-2"]: "failed"}


@pytest.mark.parametrize(
    "arguments",
    [[], ["--since", "2026-12-07T10:00:00"], ["--ticket", "OPS-1"], ["--until", "yesterday"]],
    ids=["no filter", "no offset", "no source", "not an instant"],
)
def test_the_redrive_command_refuses_what_it_cannot_read(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.main(["redrive", *arguments])
    assert exit_.value.code == 2
    assert "redrive" in capsys.readouterr().err


async def _two_failed(url: str) -> dict[str, str]:
    """Warnings of OPS-1 and OPS-2 stored and failed; their ids by ticket."""
    config = parse_config(CONFIG)
    drafts = [
        store.Draft(p, render(p))
        for ticket in ("OPS-1", "OPS-2")
        for p in route(sla_event("warning:75", ticket_id=ticket), config, NOW).notifications
    ]
    async with migrated(url) as engine, engine.begin() as conn:
        await store.insert_new(conn, drafts, NOW)
        refused = store.Attempt(NOW, 1, Permanent("550 refused"))
        failed = NextStep(Status.FAILED, error="550 refused")
        claimed = await store.claim_due(conn, NOW, slots(5))
        await store.finish_attempts(conn, [(c, refused, failed) for c in claimed], NOW)
    return {d.planned.event.data.ticket.id: d.planned.notification_id for d in drafts}


async def _statuses(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            table = store.notifications
            rows = await conn.execute(sa.select(table.c.id, table.c.status))
            return {row.id: row.status for row in rows}
    finally:
        await engine.dispose()
