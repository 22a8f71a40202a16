"""Compliance reports by mail: each ``report.due`` becomes one mail per recipient, sent once.

The SLA engine publishes a ``ReportEvent`` on ``<prefix>.reports`` (key: the
contract) when a contract's period ends (``issue`` ``scheduled``: once per
contract and period) or an operator issues one by hand (``manual:<id>``).
Three workers carry it to the people the configuration names for the contract:

1. intake (``ReportIntake``, group ``<prefix>.notifier-reports``): per batch,
   in ONE transaction, every person of the contract's ``report_to`` in the
   notifier's configuration file (``contracts.<name>.report_to``, read by
   ``config.load_config`` into ``NotifierConfig.reports``; ``group:<id>``:
   each member of the group) who has an email address there gets a row in
   ``notifier_reports``, keyed ``report:<contract>:<period>:<issue>:<person>:email``
   and inserted with ``ON CONFLICT DO NOTHING``, so a redelivered event changes
   nothing; then the offsets are committed. Recipients, addresses and names
   come from the configuration alone: nothing in an event chooses where a mail
   goes, so a wrong or forged event cannot mail a contract's figures to anyone
   else (the event's own ``report_to`` is for the record and is ignored). An
   event for a contract the configuration does not have gets no row: it is
   logged and counted (``unknown_contract``), and the rest goes on. A person
   the configuration names but does not know, or knows without an address, is
   logged and counted, and the others get theirs. A record that is not a
   valid event is a dead letter in that transaction, and the rest goes on
   (``slawatch_common.consumer``);
2. delivery (``ReportDelivery``): claims the due rows (pending,
   ``next_attempt_at`` reached) in one transaction — ``sending``, the attempt
   counted — and commits before anything leaves the process; fetches each
   report once per pass, language and ``as_of`` from the engine (``GET
   /v1/reports/{contract}``, the PDF and the static HTML); sends one mail per
   row; records each outcome, guarded on ``sending`` and the attempt number:
   ``sent``, ``pending`` again after a full-jitter backoff (``retry.py``), or
   ``failed`` once the retry budget (``SLAWATCH_REPORT_RETRY_BUDGET_S``, a
   day from the first attempt) is spent;
3. records: an outbox over ``RECORDS`` publishes the ``NotificationRecord`` of
   every sent or failed row to ``<prefix>.notifications`` (key
   ``contract:<contract>``, stage ``report``).

Every fetch asks the engine for the report as judged at the event's ``as_of``
(``as_of=<ISO 8601 UTC>``, stored with each row), not as of the moment of the
fetch: the mails of one report, whether sent in one pass, in later batches,
after retries over the day or again after a crash, all carry the same
figures, though tickets keep changing in the engine meanwhile.

A report goes out once a period, and most of what stops it can be mended
within a day: the engine down or restarting, a token not yet configured, a
relay refusing with a 4xx or a 5xx (misconfigured, a mailbox full). So every
fault is retried within the budget but those that cannot change: the engine
saying the report does not exist or cannot be asked for so (``FINAL_STATUSES``)
and an address that is not one plain address.

A crash between a mail's acceptance and its record leaves its row
``sending``: ``ReportDelivery.recover`` (at start) makes it pending again and
it is sent again with the same Message-ID, so mail clients show it once; after
``max_interrupted`` crashes it is failed instead, as a notification is
(``dispatch.py``). ``recover`` takes every ``sending`` row for one a crash
left, so it assumes one notifier process per database, as ``dispatch.py``'s
``recover`` does: a second process starting beside a running one would take
that one's mails in flight for interrupted and send them again. At a stop
(``drain``) the rows claimed and not yet sent are given back, the attempt
uncounted.

The mail is ``multipart/mixed``: a ``multipart/alternative`` (a short text
summary, the engine's HTML report as the body) and the PDF as
``<contract>-<period>.pdf``. Its headers are built with ``channels/email.py``'s
helpers, as every notification's: one line, clipped, RFC 2047-encoded; the
envelope names the one recipient; the subject is in the report's language.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import aiosmtplib
import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from slawatch_common.consumer import (
    DeadLetter,
    Isolator,
    PoisonRecordError,
    decode_record,
    keep_dead_letters,
)
from slawatch_common.events import Channel, ReportEvent, bounded_id
from slawatch_common.runtime import Backoff
from slawatch_notifier import intake, store
from slawatch_notifier.addresses import AddressHasher, redacted
from slawatch_notifier.channels.email import (
    UnusableAddressError,
    address_header,
    classify_smtp_error,
    mail_header,
    message_id,
    parse_sender,
    smtp_options,
    usable_address,
)
from slawatch_notifier.channels.port import Delivered, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.config import NotifierConfig
from slawatch_notifier.metrics import DeadLetterReason, NotifierMetrics, ReportSkip
from slawatch_notifier.outbox import RecordSource
from slawatch_notifier.retry import NextStep, Progress, RetryPolicy, Status, next_step
from slawatch_notifier.sanitize import SUBJECT_MAX_CHARS, one_line
from slawatch_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

BATCH_MAX_RECORDS = 100
BATCH_WAIT_MS = 500

CLAIM_BATCH = 20
"""Report mails claimed in one pass: a pass fetches each of their reports once."""

ID_MAX = 1000
"""The length of ``notifier_reports.id``."""

STAGE = "report"
TICKET_SOURCE = "contract"

FETCH_TIMEOUT_S = 120.0
"""One request to the engine: it counts the period's tickets and renders the PDF on
request, one report at a time, so a report may take a while when others are asked for."""

IDLE_WAIT_S = 5.0
"""Longest sleep with nothing due; intake rings the bell sooner."""

MIN_WAIT_S = 0.01

FINAL_STATUSES = frozenset({400, 404, 410, 422})
"""The engine's answers that no retry changes: no such contract, a period or format it
refuses. Any other failure (down, 5xx, 401/403 while a token is being set up) is retried."""

ERROR_BODY_CHARS = 300

PDF = "application/pdf"
HTML = "text/html"

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
DocumentKey = tuple[str, str, str, str]
"""(contract, period, language, as_of in ISO 8601 UTC): what one fetch from the engine is
for; each mail of one report has the same key, so all of them show the same figures."""


# --- words ---------------------------------------------------------------------


_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "SLA compliance report: {customer}, {period}",
        "summary": "The SLA compliance report of {customer} for {period} (contract "
        "{contract}) is attached as {filename}; the same report follows as the body of "
        "this mail.\n\n-- \nslawatch SLA monitoring\n",
    },
    "zh-CN": {
        "subject": "服务水平报告：{customer} {period}",
        "summary": "{customer} {period} 的服务水平报告（合同 {contract}）见附件 {filename}；"
        "邮件正文为同一份报告。\n\n-- \nslawatch SLA 监控\n",
    },
}
DEFAULT_LANGUAGE = "en"


def words(language: str) -> Mapping[str, str]:
    return _WORDS.get(language, _WORDS[DEFAULT_LANGUAGE])


def attachment_name(contract: str, period: str) -> str:
    """``<contract>-<period>.pdf`` with every character but letters, digits, ``.``, ``_``
    and ``-`` made ``_``: no path, quote or control character reaches a mail client."""
    stem = "".join(
        ch if ch.isalnum() or ch in "._-" else "_" for ch in one_line(f"{contract}-{period}")
    )
    return f"{stem.lstrip('.')[:150] or 'report'}.pdf"


# --- intake --------------------------------------------------------------------


def decode(value: bytes | None) -> ReportEvent:
    """The report event in a record's value, or ``PoisonRecordError`` with the notifier's
    reason: ``invalid_json`` (null, not UTF-8 JSON) or ``invalid_event``."""
    try:
        return decode_record(value, ReportEvent)
    except PoisonRecordError as exc:
        cause = exc.__cause__
        bad_json = value is None or (
            isinstance(cause, ValidationError)
            and any(error["type"] == "json_invalid" for error in cause.errors())
        )
        reason = DeadLetterReason.INVALID_JSON if bad_json else DeadLetterReason.INVALID_EVENT
        raise PoisonRecordError(reason, str(exc)) from cause


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC, ``Z`` for the offset: how ``as_of`` is asked for."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def report_id(event: ReportEvent, person: str) -> str:
    """The dedup key of one report mail: one per contract, period, issue and person."""
    data = event.data
    return bounded_id(f"report:{data.contract}:{data.period}:{data.issue}:{person}:email", ID_MAX)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A person the configuration names for a report who gets no mail, and why; or, with
    ``unknown_contract``, a report whose contract the configuration does not have (``person``
    is then the event's contract name)."""

    event_id: str
    person: str
    reason: ReportSkip


def plan(
    event: ReportEvent, config: NotifierConfig, now: datetime
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """The rows of a report's mails, due ``now``: one per person the configuration names
    for the event's contract (``config.reports``; ``group:<id>``: each member of the
    group) who has an email address, each person once; and who was skipped. The event's
    ``report_to`` chooses nobody; a contract the configuration does not have gets no row
    and one ``unknown_contract`` skip. Pure."""
    data = event.data
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    named = config.reports.get(data.contract)
    if named is None:
        return rows, [Skipped(event.event_id, data.contract, ReportSkip.UNKNOWN_CONTRACT)]
    for person_id in dict.fromkeys(_people(named, config)):
        person = config.people.get(person_id)
        if person is None or person.email is None:
            reason = ReportSkip.UNKNOWN_PERSON if person is None else ReportSkip.NO_EMAIL
            skipped.append(Skipped(event.event_id, person_id, reason))
            continue
        rows.append(
            {
                "id": report_id(event, person_id),
                "event_id": event.event_id,
                "contract": data.contract,
                "customer": data.customer,
                "period": data.period,
                "issue": data.issue,
                "as_of": data.as_of,
                "language": data.language,
                "recipient": person_id,
                "recipient_name": person.name,
                "address": person.email,
                "status": Status.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "retry_from": None,
                "last_error": None,
                "interrupted": 0,
                "created_at": now,
                "updated_at": now,
                "sent_at": None,
                "published": False,
            }
        )
    return rows, skipped


def _people(named: Sequence[str], config: NotifierConfig) -> list[str]:
    """``named`` with each ``group:<id>`` replaced by its members (an unknown group: its
    name, skipped as an unknown person)."""
    people: list[str] = []
    for name in named:
        kind, _, group_id = name.partition(":")
        group = config.groups.get(group_id) if kind == "group" else None
        if kind == "group" and group is not None:
            people += group.members
        else:
            people.append(name)
    return people


async def insert_new(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the report mails of ``rows`` that are not stored yet; the ids inserted."""
    unique = list({row["id"]: row for row in rows}.values())
    if not unique:
        return set()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(store.reports)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(store.reports.c.id)
    )
    return set((await conn.execute(statement, unique)).scalars())


def consumer_group(settings: NotifierSettings) -> str:
    return f"{settings.topic_prefix}.notifier-reports"


async def start_consumer(settings: NotifierSettings, *, attempts: int = 60) -> AIOKafkaConsumer:
    """A started consumer of the reports topic in its own group; waits for the broker."""
    return await intake.start_consumer(
        settings, topic=settings.topics.reports, group=consumer_group(settings), attempts=attempts
    )


class ReportIntake:
    """The consumer loop of ``report.due`` events; ``run`` never returns and raises only on
    bugs or a dead database."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        engine: AsyncEngine,
        config: NotifierConfig,
        metrics: NotifierMetrics,
        *,
        bell: asyncio.Event,
        clock: Clock,
        hasher: AddressHasher | None = None,
    ) -> None:
        """``hasher``: what the log shows for a recipient's address (without it, nothing)."""
        self._consumer = consumer
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._bell = bell
        self._clock = clock
        self._hasher = hasher
        self._inserted = False
        self._isolator = Isolator(
            "notifier-reports",
            on_dead_letter=self._counted,
            on_transient=lambda _: metrics.heartbeats.fault("report_intake"),
        )

    async def run(self) -> None:
        while True:
            batch: Batch = await self._consumer.getmany(
                timeout_ms=BATCH_WAIT_MS, max_records=BATCH_MAX_RECORDS
            )
            if batch:
                await self.handle(batch)
            self._metrics.heartbeats.tick("report_intake")

    async def handle(self, batch: Batch) -> None:
        """Store the batch's report mails (dead-lettering what fails on its own), then commit
        its offsets, then ring the delivery's bell."""
        records = [record for records in batch.values() for record in records]
        self._inserted = False
        await self._isolator.apply(records, self._apply)
        await self._commit(batch)
        if self._inserted:
            self._bell.set()

    async def _apply(
        self, records: list[ConsumerRecord[bytes, bytes]], letters: list[DeadLetter]
    ) -> None:
        """One transaction: the records' report mails stored, ``letters`` and the records
        that are no report event kept as dead letters; logged and counted once committed."""
        now = self._clock.now()
        invalid: list[DeadLetter] = []
        rows: list[dict[str, Any]] = []
        skipped: list[Skipped] = []
        for record in records:
            try:
                event = decode(record.value)
            except PoisonRecordError as exc:
                invalid.append(DeadLetter.of(record, exc.reason, exc))
                continue
            planned, skips = plan(event, self._config, now)
            rows += planned
            skipped += skips
        inserted: set[str] = set()
        if rows or letters or invalid:
            async with self._engine.begin() as conn:
                await keep_dead_letters(conn, store.dead_letters, [*letters, *invalid], now)
                inserted = await insert_new(conn, rows)
        for letter in invalid:
            letter.log("notifier")
            self._counted(letter)
        for skip in skipped:
            if skip.reason is ReportSkip.UNKNOWN_CONTRACT:
                log.warning(
                    "report %s: no mail: contract %r is not in the configuration "
                    "(contracts.<name>.report_to)",
                    skip.event_id,
                    skip.person,
                )
            else:
                log.warning(
                    "report %s: no mail to %s (%s)", skip.event_id, skip.person, skip.reason.value
                )
            self._metrics.report_skipped.labels(skip.reason).inc()
        for row in rows:
            known = "" if row["id"] in inserted else " (known already)"
            to = row["recipient"]
            if self._hasher is not None:
                to = f"{to} ({self._hasher(Channel.EMAIL, row['address'])})"
            log.info("report %s: mail %s to %s%s", row["event_id"], row["id"], to, known)
        self._inserted = self._inserted or bool(inserted)

    def _counted(self, letter: DeadLetter) -> None:
        self._metrics.dead_letters.labels(letter.reason).inc()

    async def _commit(self, batch: Batch) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us: the batch will be redelivered and deduplicated.
            log.warning("offset commit failed; the batch will be redelivered: %s", exc)


# --- delivery: statements ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedReport:
    """A report mail this process has marked ``sending`` for attempt number ``attempts``."""

    id: str
    event_id: str
    contract: str
    customer: str
    period: str
    as_of: datetime
    language: str
    recipient: str
    recipient_name: str | None
    address: str
    attempts: int
    retry_from: datetime | None

    @property
    def document(self) -> DocumentKey:
        return (self.contract, self.period, self.language, iso_utc(self.as_of))


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[ClaimedReport]:
    """Mark up to ``limit`` due pending report mails ``sending`` (+1 attempt), oldest due
    first, and return them. Rows another claimer locked are skipped on PostgreSQL; the
    guarded update makes a double claim impossible on every dialect. The first claim starts
    the mail's retry budget (``retry_from``)."""
    table = store.reports
    due = (
        sa.select(table.c.id)
        .where(table.c.status == Status.PENDING, table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await conn.execute(due)).scalars())
    return [
        ClaimedReport(
            id=row["id"],
            event_id=row["event_id"],
            contract=row["contract"],
            customer=row["customer"],
            period=row["period"],
            as_of=row["as_of"],
            language=row["language"],
            recipient=row["recipient"],
            recipient_name=row["recipient_name"],
            address=row["address"],
            attempts=row["attempts"],
            retry_from=row["retry_from"],
        )
        for row in await store.mark_sending(conn, table, ids, now)
    ]


async def finish(
    conn: AsyncConnection, report: ClaimedReport, status: Status, now: datetime, **values: Any
) -> bool:
    """Move a claimed mail to ``status`` (with ``values``); whether it moved. Guarded on
    (``sending``, the claimed attempt number), so a stale finisher changes nothing. A mail
    that ends (sent, failed) is left unpublished for the outbox."""
    table = store.reports
    final = status in (Status.SENT, Status.FAILED)
    moved = await conn.execute(
        sa.update(table)
        .where(
            table.c.id == report.id,
            table.c.status == Status.SENDING,
            table.c.attempts == report.attempts,
        )
        .values(
            status=status,
            updated_at=now,
            **({"published": False} if final else {}),
            **({"sent_at": now} if status is Status.SENT else {}),
            **values,
        )
    )
    return bool(moved.rowcount == 1)


async def release(conn: AsyncConnection, claimed: Sequence[ClaimedReport], now: datetime) -> None:
    """Give claimed mails never sent back (at a stop): pending, the attempt uncounted, a
    retry budget the claim began begun again at the next claim."""
    if not claimed:
        return
    table = store.reports
    await conn.execute(
        sa.update(table)
        .where(
            sa.tuple_(table.c.id, table.c.attempts).in_([(r.id, r.attempts) for r in claimed]),
            table.c.status == Status.SENDING,
        )
        .values(
            status=Status.PENDING,
            attempts=table.c.attempts - 1,
            retry_from=sa.case(
                (table.c.retry_from == table.c.updated_at, sa.null()),
                else_=table.c.retry_from,
            ),
            updated_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A report mail a crash left ``sending``; ``failed`` when that happened too often."""

    id: str
    contract: str
    times: int
    failed: bool

    @property
    def error(self) -> str:
        return f"interrupted {self.times} times while sending"


async def recover_interrupted(
    conn: AsyncConnection, now: datetime, max_interrupted: int
) -> list[Interrupted]:
    """Make every ``sending`` report mail pending again, due ``now``, or ``failed`` once a
    crash interrupted it ``max_interrupted`` times; each one found. Call at start, before
    delivering, while no other process delivers reports from this database."""
    table = store.reports
    rows = (
        await conn.execute(
            sa.select(table.c.id, table.c.contract, table.c.attempts, table.c.interrupted)
            .where(table.c.status == Status.SENDING)
            .with_for_update()
        )
    ).all()
    found = [
        Interrupted(
            row.id, row.contract, row.interrupted + 1, row.interrupted + 1 >= max_interrupted
        )
        for row in rows
    ]
    for item in found:
        failed = {"last_error": item.error, "published": False} if item.failed else {}
        await conn.execute(
            sa.update(table)
            .where(table.c.id == item.id, table.c.status == Status.SENDING)
            .values(
                status=Status.FAILED if item.failed else Status.PENDING,
                interrupted=table.c.interrupted + 1,
                next_attempt_at=now,
                updated_at=now,
                **failed,
            )
        )
    return found


async def last_sent(conn: AsyncConnection) -> dict[str, datetime]:
    """When each contract's last report mail was sent."""
    table = store.reports
    query = (
        sa.select(table.c.contract, sa.func.max(table.c.sent_at))
        .where(table.c.sent_at.is_not(None))
        .group_by(table.c.contract)
    )
    return {contract: at for contract, at in await conn.execute(query) if at is not None}


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest pending report mail falls due, if there is one."""
    table = store.reports
    query = sa.select(sa.func.min(table.c.next_attempt_at)).where(table.c.status == Status.PENDING)
    moment: datetime | None = (await conn.execute(query)).scalar()
    return moment


# --- records -------------------------------------------------------------------


async def unpublished(conn: AsyncConnection, limit: int) -> list[store.Finished]:
    """Sent and failed report mails whose record is not published, oldest first, in the
    shape of finished notifications (``outbox.record_for``)."""
    table = store.reports
    query = (
        sa.select(table)
        .where(
            table.c.published.is_(False),
            table.c.status.in_([Status.SENT, Status.FAILED]),
        )
        .order_by(table.c.updated_at)
        .limit(limit)
    )
    return [
        store.Finished(
            id=row["id"],
            sla_event_id=row["event_id"],
            clock_id=f"report:{row['contract']}:{row['period']}",
            stage=STAGE,
            ticket_source=TICKET_SOURCE,
            ticket_id=row["contract"],
            recipient=row["recipient"],
            channel=Channel.EMAIL,
            address=row["address"],
            status=Status(row["status"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            updated_at=row["updated_at"],
            digest_id=None,
            redrives=0,
        )
        for row in (await conn.execute(query)).mappings()
    ]


async def mark_published(conn: AsyncConnection, ids: Sequence[str]) -> None:
    table = store.reports
    await conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(published=True))


async def mark_unpublishable(conn: AsyncConnection, reasons: Mapping[str, str]) -> None:
    """Mark report mails whose record cannot be built as published (the outbox logged why)."""
    if reasons:
        await mark_published(conn, list(reasons))


RECORDS = RecordSource(unpublished, mark_published, mark_unpublishable)
"""The report mails' ``NotificationRecord``s, for an ``outbox.Outbox`` of their own."""


# --- delivery: the engine's documents and the mail ----------------------------


@dataclass(frozen=True, slots=True)
class Documents:
    """One report as the engine renders it: the PDF and the HTML mail body."""

    pdf: bytes
    html: str


def engine_client(settings: NotifierSettings) -> httpx.AsyncClient:
    """A client of the engine's report API, with the notifier's bearer token."""
    token = settings.engine_report_token.get_secret_value()
    return httpx.AsyncClient(
        base_url=settings.engine_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=FETCH_TIMEOUT_S,
    )


async def fetch(client: httpx.AsyncClient, key: DocumentKey) -> Documents | Outcome:
    """The report of ``key`` from the engine, as judged at its ``as_of`` (both documents),
    or the failure that kept it (retryable unless the engine's answer is one no retry
    changes)."""
    contract, period, language, as_of = key
    path = f"/v1/reports/{quote(contract, safe='')}"
    query = {"period": period, "lang": language, "as_of": as_of}
    pdf = await _get(client, path, {**query, "format": "pdf"}, PDF)
    if not isinstance(pdf, httpx.Response):
        return pdf
    if not pdf.content.startswith(b"%PDF-"):
        return Retryable("engine: pdf: not a PDF (it does not start with %PDF-)")
    html = await _get(client, path, {**query, "format": "html", "charts": "static"}, HTML)
    if not isinstance(html, httpx.Response):
        return html
    return Documents(pdf.content, html.text)


async def _get(
    client: httpx.AsyncClient, path: str, params: Mapping[str, str], media_type: str
) -> httpx.Response | Outcome:
    kind = params["format"]
    try:
        response = await client.get(path, params=params)
    except httpx.HTTPError as exc:
        text = f": {exc}" if str(exc) else ""
        return Retryable(f"engine: {kind}: {type(exc).__name__}{text}")
    if response.status_code != httpx.codes.OK:
        detail = one_line(response.text[:ERROR_BODY_CHARS])
        reason = f"engine: {kind}: HTTP {response.status_code} {detail}".strip()
        return Permanent(reason) if response.status_code in FINAL_STATUSES else Retryable(reason)
    answered = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if answered != media_type:
        return Retryable(f"engine: {kind}: answered {answered or 'no content type'}")
    return response


def build_message(
    report: ClaimedReport, documents: Documents, *, sender: str, now: datetime
) -> Message:
    """The mail of one report to one recipient; ``UnusableAddressError`` if its address is
    not one plain address. Header values go through ``channels/email.py``'s helpers (one
    line, clipped, RFC 2047); the Message-ID comes from the row id alone, so a resend
    after a crash carries the same one."""
    if not usable_address(report.address):
        raise UnusableAddressError(f"not a usable email address: {report.address!r}")
    origin = parse_sender(sender)
    wording = words(report.language)
    filename = attachment_name(report.contract, report.period)
    facts = {
        "customer": one_line(report.customer),
        "period": one_line(report.period),
        "contract": one_line(report.contract),
        "filename": filename,
    }
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(wording["summary"].format(**facts), "plain", "utf-8"))
    body.attach(MIMEText(documents.html, "html", "utf-8"))
    pdf = MIMEApplication(documents.pdf, "pdf")
    pdf.add_header(
        "Content-Disposition",
        "attachment",
        filename=filename if filename.isascii() else ("utf-8", "", filename),
    )
    message = MIMEMultipart("mixed")
    message.attach(body)
    message.attach(pdf)
    message["From"] = origin.header
    message["To"] = address_header(report.recipient_name or "", report.address)
    message["Subject"] = mail_header(
        wording["subject"].format(**facts), "Subject", SUBJECT_MAX_CHARS
    )
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(report.id, origin.domain)
    message["X-Slawatch-Report-Id"] = mail_header(report.id, "X-Slawatch-Report-Id")
    return message


# --- delivery: the loop --------------------------------------------------------


class ReportDelivery:
    """The report sender loop; ``run`` never returns and raises only on bugs or a dead
    database."""

    def __init__(
        self,
        engine: AsyncEngine,
        client: httpx.AsyncClient,
        settings: NotifierSettings,
        metrics: NotifierMetrics,
        *,
        clock: Clock,
        rand: random.Random,
        bell: asyncio.Event,
        outbox_bell: asyncio.Event,
        policy: RetryPolicy | None = None,
        hasher: AddressHasher | None = None,
    ) -> None:
        """``client``: the engine's report API (``engine_client``); ``policy``: backoff, the
        retry budget and the interruption cap (``settings.report_retry_policy()``);
        ``hasher``: what the log shows for an address (without it, nothing)."""
        self._engine = engine
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._rand = rand
        self._bell = bell
        self._outbox_bell = outbox_bell
        self._policy = policy or settings.report_retry_policy()
        self._hasher = hasher
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def recover(self) -> list[Interrupted]:
        """Make mails a crash left ``sending`` due again (or failed, once interrupted
        ``max_interrupted`` times) and show each contract's last sent mail; each one found.
        Call before ``run``; assumes one notifier process per database (every ``sending``
        row is taken for one a crash left), as ``Dispatcher.recover`` does."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            found = await recover_interrupted(conn, now, self._policy.max_interrupted)
            sent = await last_sent(conn)
        for contract, at in sent.items():
            self._metrics.report_last_sent.labels(contract).set(at.timestamp())
        for item in found:
            if item.failed:
                log.error("report mail %s failed: %s", item.id, item.error)
                self._metrics.reports_failed.labels(item.contract).inc()
            else:
                log.warning("report mail %s was interrupted by a crash; resending it", item.id)
        if any(item.failed for item in found):
            self._outbox_bell.set()
        return found

    async def run(self) -> None:
        backoff = Backoff("report_delivery", self._metrics.heartbeats)
        while True:
            self._bell.clear()
            try:
                while not self._draining and await self.deliver_due() == CLAIM_BATCH:
                    pass
                async with self._engine.connect() as conn:
                    due = await next_due(conn)
            except Exception as exc:
                await backoff.after(exc)
                continue
            backoff.ok()
            if self._draining:
                await asyncio.Event().wait()  # until cancelled: claim nothing more
            wait = IDLE_WAIT_S
            if due is not None:
                ahead = (due - self._clock.now()).total_seconds()
                wait = min(IDLE_WAIT_S, max(MIN_WAIT_S, ahead))
            try:
                async with asyncio.timeout(wait):
                    await self._bell.wait()
            except TimeoutError:
                pass

    async def drain(self, deadline_s: float) -> bool:
        """Claim nothing more, send no further claimed mail (they are given back), and wait
        at most ``deadline_s`` for the mail being sent to end and be recorded; whether it
        did. Then cancel ``run``: a mail still being sent stays ``sending`` for ``recover``."""
        self._draining = True
        try:
            async with asyncio.timeout(deadline_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("a report mail was still being sent at the shutdown deadline")
            return False
        return True

    async def deliver_due(self) -> int:
        """One pass: claim due mails, fetch their reports, send and record each; how many
        were claimed. The mails of a report that could not be fetched fail at one instant
        with one backoff drawn, so they fall due together again and share the next fetch."""
        async with self._engine.begin() as conn:
            claimed = await claim_due(conn, self._clock.now(), CLAIM_BATCH)
        if not claimed:
            return 0
        self._idle.clear()
        waiting = list(claimed)
        fetched: dict[DocumentKey, _Fetched] = {}
        try:
            while waiting and not self._draining:
                report = waiting[0]
                key = report.document
                if key not in fetched:
                    documents = await fetch(self._client, key)
                    fetched[key] = _Fetched(documents, self._clock.now(), self._rand.random())
                waiting.pop(0)
                await self._deliver(report, fetched[key])
        finally:
            if waiting:
                await asyncio.shield(self._release(waiting))
            self._idle.set()
        return len(claimed)

    async def _deliver(self, report: ClaimedReport, fetched: _Fetched) -> None:
        started_at = self._clock.now()
        if isinstance(fetched.documents, Documents):
            outcome = await self._send(report, fetched.documents)
            now = self._clock.now()
        else:
            outcome, now = fetched.documents, fetched.at
        progress = Progress(report.attempts, Channel.EMAIL, report.retry_from or started_at)
        step = next_step(outcome, progress, self._policy, now, fetched.draw)
        values = {"next_attempt_at": step.next_attempt_at or now, "last_error": step.error}
        if await self._record(report, step.status, values):
            self._count(report, step, now)
        else:
            log.warning("report mail %s was moved by someone else; outcome dropped", report.id)

    async def _send(self, report: ClaimedReport, documents: Documents) -> Outcome:
        """One attempt. Every refusal of the relay is retryable (see the module docstring);
        what building or sending raises otherwise is a permanent failure, logged once."""
        settings = self._settings
        try:
            message = build_message(
                report, documents, sender=settings.smtp_sender, now=self._clock.now()
            )
            async with asyncio.timeout(settings.send_timeout_s):
                await aiosmtplib.send(
                    message,
                    sender=parse_sender(settings.smtp_sender).address,
                    recipients=[report.address],
                    **smtp_options(settings),
                )
        except UnusableAddressError as exc:
            return Permanent(str(exc))
        except aiosmtplib.SMTPException as exc:
            return Retryable(classify_smtp_error(exc).reason)
        except OSError as exc:  # refused connection, reset, overall timeout
            return Retryable(f"SMTP connection: {type(exc).__name__}: {exc}")
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc)).rstrip()
            log.error(  # the traceback in the message: its words may quote the address
                "sending report mail %s raised; it fails\n%s", report.id, self._shown(report, trace)
            )
            return Permanent(f"{type(exc).__name__}: {exc}")
        return Delivered(str(message["Message-ID"]))

    async def _record(self, report: ClaimedReport, status: Status, values: dict[str, Any]) -> bool:
        """Record an attempt's outcome, waiting out a database that is away: the mail has
        gone or not, and only this process knows which."""
        backoff = Backoff("report_delivery", self._metrics.heartbeats)
        while True:
            try:
                async with self._engine.begin() as conn:
                    return await finish(conn, report, status, self._clock.now(), **values)
            except Exception as exc:
                await backoff.after(exc)

    async def _release(self, claimed: list[ClaimedReport]) -> None:
        try:
            async with self._engine.begin() as conn:
                await release(conn, claimed, self._clock.now())
        except Exception:  # the next start's recover resends them
            log.warning("could not give back %d claimed report mails", len(claimed), exc_info=True)

    def _count(self, report: ClaimedReport, step: NextStep, now: datetime) -> None:
        to = report.recipient
        if self._hasher is not None:
            to = f"{to} ({self._hasher(Channel.EMAIL, report.address)})"
        attempt = f"report mail {report.id} to {to}, attempt {report.attempts}"
        if step.status is Status.SENT:
            log.info("%s: sent", attempt)
            self._metrics.reports_sent.labels(report.contract).inc()
            self._metrics.report_last_sent.labels(report.contract).set(now.timestamp())
        elif step.status is Status.FAILED:
            log.error("%s: failed for good: %s", attempt, self._shown(report, step.error or ""))
            self._metrics.reports_failed.labels(report.contract).inc()
        else:
            retry_at = step.next_attempt_at.isoformat() if step.next_attempt_at else "now"
            error = self._shown(report, step.error or "")
            log.warning("%s: failed, retrying at %s: %s", attempt, retry_at, error)
        if step.final:
            self._outbox_bell.set()

    def _shown(self, report: ClaimedReport, text: str) -> str:
        """``text`` (the relay's words, an exception's) as a log line shows it: the address
        replaced by its hash (by its masked form without a ``hasher``)."""
        return redacted(text, Channel.EMAIL, report.address, self._hasher)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A report as one pass fetched it (or why not), when, and the backoff drawn for it."""

    documents: Documents | Outcome
    at: datetime
    draw: float
