"""The three services as OS processes on one test's topics and database, and what reads them.

``run_system`` starts ingest, engine and notifier (the ``system`` fixture of
``conftest.py``) under ``CONFIG``: policy ``e2e``, P1 responded within 4 s
(warning at 50 %, 2 s, by mail to the assignee; breach by SMS to on-call and
by mail to the supervisor). ``System`` posts events and reads the sinks; the
helpers below read mails the way a mail client would (the plain-text part,
its facts) or the way a relay sees them (the raw header block), and read a
topic's records as they were stored.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from deploy.dev.sms_sink import SmsSink

from slawatch_common.topics import Topics
from support.net import free_port
from support.processes import ServiceProcess
from support.smtp import SmtpSink

TOKEN = "e2e-token"
ADMIN_TOKEN = "e2e-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
"""The admin token's header: every scope (the SLA state of a ticket, acks, …)."""
ONCALL_PHONE = "+8613800000002"
SUPERVISOR = "supervisor@example.com"
CONFIG = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: e2e
    calendar: always
    escalation: standard
    warn_at: [50]
    targets:
      P1: {response: 4s, resolution: 1h}
      P2: {response: 8s, resolution: 1h}
notifier:
  event_addresses: {sources: [e2e], mail_domains: [example.com]}
  people:
    oncall: {name: On-call, email: oncall@example.com, phone: "+8613800000002"}
    supervisor: {name: Supervisor, email: supervisor@example.com, phone: "+8613800000003"}
  escalations:
    standard:
      - on: warning
        notify: [{to: assignee, via: email}]
      - on: breach
        notify: [{to: oncall, via: sms}, {to: supervisor, via: email}]
"""


@dataclass
class System:
    ingest: ServiceProcess
    engine: ServiceProcess
    notifier: ServiceProcess
    smtp: SmtpSink
    sms: SmsSink

    def post(self, *events: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.ingest.url}/v1/events",
            json=list(events),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

    def mails(self, ticket: str) -> list[tuple[float, list[str], Message]]:
        return [m for m in self.smtp.snapshot() if ticket in str(m[2]["Subject"])]

    def sms_about(self, ticket: str) -> list[Any]:
        return [s for s in self.sms.received() if ticket in s.message]

    def dead_letters(
        self, service: ServiceProcess, token: str | None = ADMIN_TOKEN
    ) -> httpx.Response:
        """``GET /v1/dead-letters`` of ``service``, with the admin token unless ``None``."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.get(f"{service.url}/v1/dead-letters", headers=headers, timeout=10)


class SmsEndpoint(Protocol):
    """Where the notifier's default SMS channel posts, and its token."""

    @property
    def url(self) -> str: ...
    @property
    def token(self) -> str: ...


def services_env(
    config: Path,
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    smtp_port: int,
    sms: SmsEndpoint,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The settings the three services run with: this test's topics, database and sinks,
    fresh ports, the rig's tokens; ``extra_env`` adds or overrides."""
    engine_port = free_port()
    return {
        "SLAWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "2",
        "SLAWATCH_CONFIG_FILE": str(config),
        "DATABASE_URL": database_url,
        "SLAWATCH_SMTP_PORT": str(smtp_port),
        "SLAWATCH_SMS_URL": sms.url,
        "SLAWATCH_SMS_TOKEN": sms.token,
        "SLAWATCH_INGEST_TOKENS": TOKEN,
        "SLAWATCH_ADMIN_TOKENS": f'["{ADMIN_TOKEN}"]',
        "SLAWATCH_INGEST_PORT": str(free_port()),
        "SLAWATCH_ENGINE_PORT": str(engine_port),
        "SLAWATCH_ENGINE_URL": f"http://127.0.0.1:{engine_port}",
        "SLAWATCH_NOTIFIER_PORT": str(free_port()),
        **(extra_env or {}),
    }


@contextmanager
def services(env: Mapping[str, str], log_dir: Path) -> Iterator[list[ServiceProcess]]:
    """Ingest, engine and notifier started in that order (each ready); stopped on leaving."""
    procs = [
        ServiceProcess(script, int(env[port]), dict(env), log_dir)
        for script, port in (
            ("slawatch-ingest", "SLAWATCH_INGEST_PORT"),
            ("slawatch-engine", "SLAWATCH_ENGINE_PORT"),
            ("slawatch-notifier", "SLAWATCH_NOTIFIER_PORT"),
        )
    ]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@contextmanager
def run_system(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp: SmtpSink,
    sms: SmsSink,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[System]:
    """Ingest, engine and notifier started (each ready) under ``CONFIG``; stopped on leaving."""
    config = tmp_path / "slawatch.yaml"
    config.write_text(CONFIG)
    env = services_env(config, kafka_bootstrap, topics, pg_url, smtp.port, sms, extra_env)
    with services(env, tmp_path) as (ingest, engine, notifier):
        yield System(ingest, engine, notifier, smtp, sms)


def created(
    ticket: str,
    at: datetime,
    priority: str = "P1",
    *,
    title: str | None = None,
    assignee_id: str | None = None,
    email: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``ticket.created`` event; by default titled ``Incident <ticket>`` and assigned to
    ``agent-<ticket>@example.com``."""
    return {
        "event_id": event_id or f"e2e:{ticket}:created:{uuid.uuid4().hex[:6]}",
        "type": "ticket.created",
        "occurred_at": at.isoformat(),
        "source": "e2e",
        "data": {
            "id": ticket,
            "priority": priority,
            "title": f"Incident {ticket}" if title is None else title,
            "assignee": {
                "id": assignee_id or f"agent-{ticket}",
                "email": email or f"agent-{ticket.lower()}@example.com",
            },
        },
    }


def responded(ticket: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"e2e:{ticket}:responded",
        "type": "ticket.responded",
        "occurred_at": at.isoformat(),
        "source": "e2e",
        "data": {"id": ticket},
    }


def wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- reading mails ---------------------------------------------------------------

_FACT = re.compile(r"^([A-Za-z][A-Za-z ()]*):[ ]+(.*)$")
_KEY_IN_SMS = re.compile(r"\be2e:\S+")


def plain_text(message: Message) -> str:
    """The decoded text/plain part of a notification mail."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/plain part in {message['Message-ID']}")


def facts(message: Message) -> dict[str, str]:
    """The labelled facts of a notification mail (``Ticket``, ``Stage``, ``Title`` …) as its
    plain-text part shows them, in full: a subject may be clipped, these are not."""
    found: dict[str, str] = {}
    for line in plain_text(message).splitlines():
        if match := _FACT.match(line):
            found.setdefault(match[1], match[2])
    return found


def unfolded(value: str) -> str:
    """A header value as one line: folding (a line break before white space) undone."""
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def header_block(raw: bytes) -> bytes:
    """The header section of a raw message: up to the first empty line."""
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]


def sms_ticket_key(text: str) -> str:
    """The ticket key an SMS names first (``e2e:<id>``; ends in "…" when the text was clipped
    inside it)."""
    match = _KEY_IN_SMS.search(text)
    assert match is not None, text
    return match[0]


def sms_names(text: str, key: str) -> bool:
    """Whether an SMS is about the ticket ``key``, whose key may be clipped in it."""
    named = sms_ticket_key(text)
    return named == key or (named.endswith("…") and key.startswith(named[:-1]))


# --- raw topic access ----------------------------------------------------------------


def produce_raw(
    bootstrap: str,
    topic: str,
    records: list[tuple[int, bytes | None, bytes | None]],
    options: Mapping[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """Write ``(partition, key, value)`` records exactly as given (a ``None`` value is a null
    record), acknowledged by every replica; their ``(partition, offset)``. ``options``: the
    clients' connection options (``kafka.client_options``)."""

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(options or {}))
        await producer.start()
        try:
            stored = []
            for partition, key, value in records:
                meta = await producer.send_and_wait(
                    topic, value=value, key=key, partition=partition
                )
                stored.append((meta.partition, meta.offset))
            return stored
        finally:
            await producer.stop()

    return asyncio.run(run())


@dataclass(frozen=True, slots=True)
class Stored:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_topic(
    bootstrap: str, topic: str, options: Mapping[str, Any] | None = None
) -> list[Stored]:
    """Every record of ``topic`` up to its end offsets at the call, by partition and offset;
    ``options``: the clients' connection options."""

    async def run() -> list[Stored]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **(options or {}),
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + 30
            while not consumer.assignment():  # without a group: every partition, once known
                assert time.monotonic() < deadline, f"{topic}: no partitions in 30 s"
                await consumer.getmany(timeout_ms=100)
            ends = await consumer.end_offsets(list(consumer.assignment()))
            await consumer.seek_to_beginning(*ends)
            found: list[Stored] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                assert time.monotonic() < deadline, f"{topic} not read to its end in 30 s"
                batches = await consumer.getmany(timeout_ms=500)
                for tp, batch in batches.items():
                    found += [Stored(tp.partition, r.offset, r.key, r.value) for r in batch]
            return sorted(found, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()

    return asyncio.run(run())
