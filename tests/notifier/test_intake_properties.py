"""Property: no schema-valid SLA event stops the notifier's intake, dispatcher or scheduler.

Batches of events drawn from ``schemas/sla-event.schema.json`` (extreme
instants, 200-character ids, unicode and control characters, header and
markup look-alikes) go as Kafka records through the real intake
(``Intake.handle``) on a real database, a normal warning first and a normal
breach last. About half of the drawn events are nudged to be routable: a
``warning:50`` or a ``breach`` of the chain ``fuzz``, to an assignee with an
email address and a phone number, the rest of their drawn content kept, so
routing, the templates, the planner, folding into digests (those without an
assignee of their own share one drawn person, beyond their rate limit),
dispatch and the channels' message building all see it; a few follow-ups
stop, retract or breach again an earlier event's clock. The real dispatcher
then sends everything due through fake channel ports: each builds what the
real adapter of its channel would send (the MIME message, the SMS body, the
DingTalk body) and keeps it; the SMS port raises for a text with a character
outside the BMP. Last the scheduler fires the waiting breach steps at a
far-future instant.

Nothing raises out of any of them and no step fails to fire; every record is
recorded (a routable event's escalation and notifications exist; other events
are tracked, ignored or skipped) or a dead letter whose reason fits it (only
an instant in the first or last year a datetime holds may make one fail on its
own); both normal events' notifications were delivered through the fake
ports; every notification rests in a state it may rest in (never ``sending``,
nothing overdue ``pending``, a failure with its error, a fold with its digest,
a standby only while the one before it may still fail); no mail has a header
the email adapter does not set, twice, or with a line break, and no subject,
SMS or chat title has a line break. The short form runs in ``make test``, the
long one in ``make fuzz``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.db import create_engine
from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier import store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.channels import dingtalk, sms
from slawatch_notifier.channels.email import UnusableAddressError, build_message
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import parse_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.escalation import NOTIFYING_TYPES, UnroutableEventError, stage_of
from slawatch_notifier.intake import Intake
from slawatch_notifier.metrics import DeadLetterReason, NotifierMetrics, StepResult
from slawatch_notifier.planner import Planner
from slawatch_notifier.rate_limits import limit_for
from slawatch_notifier.retry import RetryPolicy, Status
from slawatch_notifier.scheduler import Scheduler
from support.fuzz import examples
from support.records import Rec
from support.schema_strategies import contract, from_contract, strategy

CHAIN = "fuzz"
UNLIMITED = {"max": 10_000, "per": "1s"}
CONFIG = parse_config(
    {
        "people": {
            "oncall": {
                "name": "On-call engineer",
                "email": "oncall@example.com",
                "phone": "+8613800000002",
                "supervisor": "boss",
                "rate_limits": {"email": UNLIMITED, "sms": UNLIMITED},
            },
            "boss": {
                "name": "王芳",
                "email": "boss@example.com",
                "phone": "+8613800000020",
                "locale": "zh-CN",
            },
            # the normal events' assignees: what they are told is never folded
            **{
                f"normal.{ticket}": {"rate_limits": {"email": UNLIMITED, "sms": UNLIMITED}}
                for ticket in ("first", "last")
            },
        },
        "groups": {
            "l2": {"name": "Second line", "members": ["oncall", "boss"], "locale": "zh-CN"}
            | {"robots": {"dingtalk": "l2-robot"}},
        },
        "channels": {"dingtalk": {"l2-robot": {"access_token": "l2-robot-token"}}},
        # the normal events' addresses are used; a drawn one is refused (another source)
        # unless drawn from jira within example.com or +86
        "event_addresses": {
            "sources": ["jira"],
            "mail_domains": ["example.com"],
            "phone_prefixes": ["+86"],
        },
        # a second email or SMS to one recipient within the hour is folded into a digest
        "rate_limits": {"email": {"max": 1, "per": "1h"}, "sms": {"max": 1, "per": "1h"}},
        "escalations": {
            CHAIN: [
                {
                    "on": "warning",
                    "notify": [
                        {"to": "assignee", "via": "email"},
                        {"to": "oncall", "via": "email"},
                    ],
                },
                {
                    "on": "breach",
                    "notify": [
                        {"to": "assignee", "via": ["sms", "email"]},
                        {"to": "oncall", "via": "sms"},
                        {"to": "group:l2", "via": "dingtalk"},
                    ],
                },
                {
                    "on": "breach",
                    "after": "30m",
                    "repeat": {"every": "10m", "times": 2},
                    "notify": [
                        {"to": "supervisor:oncall", "via": "email"},
                        {"to": "assignee", "via": "email"},
                    ],
                },
            ],
        },
    }
)
LINKS = AckLinks(b"fuzz-ack-secret", "https://slawatch.example", timedelta(days=1))
PLANNER = Planner(CONFIG, LINKS)
ROBOT = dingtalk.DingTalkRobot(access_token="l2-robot-token")
SENDER = "slawatch <slawatch@example.com>"
TOPIC = "fuzz.sla"
FAR = datetime(9999, 1, 1, tzinfo=UTC)
"""The scheduler's clock: far in the future, so every waiting breach step but those of
breaches in the year 9999 is due; a year short of the end of ``datetime``, so what the
notifier adds to its own clock (an ack link's lifetime, a retry's delay) still fits."""
DISPATCH_S = 60.0
"""Longest the dispatcher may take to send everything due in one example."""

MAIL_HEADERS = frozenset(
    {
        "content-type",
        "mime-version",
        "content-transfer-encoding",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "x-slawatch-notification-id",
    }
)
"""Every header the email adapter sets; event text must not add one."""


def routable(
    event: dict[str, Any], person: dict[str, Any], title: str, breach: bool
) -> dict[str, Any]:
    """The drawn event as a warning (``warning:50``) or a breach of the chain ``fuzz``, to an
    assignee with an email address and a phone number (the drawn one, else ``person``),
    with a title (the drawn one, else ``title``)."""
    data, clock = event["data"], event["data"]["clock"]
    assignee = data["ticket"].get("assignee") or person
    assignee = {
        **assignee,
        "email": assignee.get("email") or "assignee@example.com",
        "phone": assignee.get("phone") or "+8613800000099",
    }
    return {
        **event,
        "type": "sla.breach" if breach else "sla.warning",
        "data": {
            **data,
            "stage": "breach" if breach else "warning:50",
            "ticket": {
                **data["ticket"],
                "assignee": assignee,
                "title": data["ticket"].get("title") or title,
            },
            "clock": {**clock, "escalation": CHAIN},
        },
    }


_SLA = contract("sla-event")
_people = strategy(_SLA["$defs"]["Person"], _SLA["$defs"])
_titles = strategy(_SLA["$defs"]["TicketRef"]["properties"]["title"]["anyOf"][0], _SLA["$defs"])


def follow_up(event: dict[str, Any], kind: str, event_id: str) -> dict[str, Any]:
    """An event of ``kind`` about the clock of ``event``, at its instant: a stop (met,
    cancelled, its breach retracted) or a breach again under a new id (a re-breach)."""
    return {
        **event,
        "event_id": event_id,
        "type": kind,
        "data": {**event["data"], "stage": "breach"},
    }


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1 to 12 drawn events, about half of them routable, and up to 3 follow-ups of them.

    Those routable that came without an assignee share one drawn person, so a batch tells
    them more than their rate limit allows; a follow-up stops, retracts or breaches again
    the clock of an earlier event of the batch."""
    stranger = draw(_people)
    nudged = st.builds(
        routable, from_contract("sla-event"), st.just(stranger), _titles, st.booleans()
    )
    drawn = draw(st.lists(from_contract("sla-event") | nudged, min_size=1, max_size=12))
    for number in range(draw(st.integers(0, 3))):
        earlier = draw(st.integers(0, len(drawn) - 1))
        kind = draw(st.sampled_from(["sla.met", "sla.cancelled", "sla.retracted", "sla.breach"]))
        at = draw(st.integers(earlier + 1, len(drawn)))
        drawn.insert(at, follow_up(drawn[earlier], kind, f"follow-up-{number}"))
    return drawn


def normal(ticket: str, stage: str) -> dict[str, Any]:
    """A routable event of a fresh P1 ticket, as the engine sends it."""
    now = datetime.now(UTC)
    breach = stage == "breach"
    return {
        "event_id": uuid.uuid4().hex,
        "type": "sla.breach" if breach else "sla.warning",
        "occurred_at": now.isoformat(),
        "source": "slawatch-engine",
        "data": {
            "ticket": {
                "source": "jira",
                "id": ticket,
                "priority": "P1",
                "title": "Core switch down",
                "assignee": {
                    "id": f"normal.{ticket.lower()}",
                    "name": "Li Wei",
                    "email": f"{ticket.lower()}@example.com",
                    "phone": "+8613800000011",
                },
            },
            "clock": {
                "clock_id": f"jira:{ticket}:response",
                "metric": "response",
                "policy": "network-critical",
                "escalation": CHAIN,
                "target_seconds": 900,
                "business_seconds_used": 900 if breach else 450,
                "started_at": (now - timedelta(minutes=15)).isoformat(),
                "deadline": now.isoformat(),
            },
            "stage": stage,
            "threshold_percent": 100 if breach else 50,
        },
    }


@dataclass
class Port:
    """A channel port that builds what the real adapter of ``channel`` would send, keeps it
    and delivers; an email address the adapter refuses is a permanent failure, as there."""

    channel: Channel
    sent: list[str] = field(default_factory=list)
    mails: list[Mapping[str, list[str]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    async def send(self, outbound: Outbound) -> Outcome:
        self.subjects.append(outbound.content.subject)
        if self.channel is Channel.EMAIL:
            try:
                built = build_message(outbound, sender=SENDER, now=datetime.now(UTC))
            except UnusableAddressError as exc:
                return Permanent(str(exc))
            parsed = message_from_bytes(built.as_bytes(), policy=policy.default)
            headers: dict[str, list[str]] = {}
            for name, value in parsed.items():
                headers.setdefault(name.lower(), []).append(str(value))
            self.mails.append(headers)
        elif self.channel is Channel.SMS:
            self.lines.append(sms.request_body(outbound)["message"])
        else:
            self.lines.append(dingtalk.request_body(outbound, ROBOT)["markdown"]["title"])
        self.sent.append(outbound.notification_id)
        return Delivered(f"{self.channel}-{len(self.sent)}")


@dataclass
class Fussy(Port):
    """``Port``, but raises for a text with a character outside the BMP (as an adapter with
    a bug would): the dispatcher must record that as a failure and go on."""

    raised: int = 0

    async def send(self, outbound: Outbound) -> Outcome:
        text = outbound.content.text
        for at, char in enumerate(text):
            if ord(char) > 0xFFFF:
                self.raised += 1
                raise UnicodeEncodeError("ucs-2", text, at, at + 1, "outside the BMP")
        return await super().send(outbound)


class Committer:
    """The consumer as intake sees it: takes the offsets it commits."""

    def __init__(self) -> None:
        self.committed: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))


class FarClock:
    def now(self) -> datetime:
        return FAR


@dataclass
class Seen:
    """What the database holds after an example."""

    letters: dict[int, Any]
    escalations: set[tuple[str, int]]
    notifications: list[Any]
    steps: list[Any]


async def look(db: AsyncEngine) -> Seen:
    table = store.notifications
    async with db.connect() as conn:
        letters = {
            row.offset: row
            for row in await conn.execute(
                sa.select(
                    store.dead_letters.c.offset,
                    store.dead_letters.c.reason,
                    store.dead_letters.c.error_class,
                    store.dead_letters.c.error,
                ).where(store.dead_letters.c.topic == TOPIC)
            )
        }
        keys = await conn.execute(
            sa.select(store.escalations.c.clock_id, store.escalations.c.cycle)
        )
        notifications = (
            await conn.execute(
                sa.select(
                    table.c.id,
                    table.c.sla_event_id,
                    table.c.clock_id,
                    table.c.cycle,
                    table.c.channel,
                    table.c.status,
                    table.c.next_attempt_at,
                    table.c.last_error,
                    table.c.fallback_of,
                    table.c.digest_id,
                    table.c.scheduled,
                )
            )
        ).all()
        steps = (
            await conn.execute(
                sa.select(
                    store.scheduled_steps.c.id,
                    store.scheduled_steps.c.status,
                    store.scheduled_steps.c.due_at,
                )
            )
        ).all()
    return Seen(
        letters, {(row.clock_id, row.cycle) for row in keys}, list(notifications), list(steps)
    )


async def dispatch_all(db: AsyncEngine, dispatcher: Dispatcher) -> datetime:
    """Run the dispatcher until nothing is due or being sent; when it stopped."""
    running = asyncio.create_task(dispatcher.run())
    table = store.notifications
    query = sa.select(table.c.status, table.c.next_attempt_at).where(
        table.c.status.in_([Status.PENDING, Status.SENDING])
    )
    deadline = time.monotonic() + DISPATCH_S
    try:
        while True:
            await asyncio.sleep(0.05)
            assert not running.done(), "the dispatcher stopped"
            now = datetime.now(UTC)
            async with db.connect() as conn:
                busy = [
                    row
                    for row in await conn.execute(query)
                    if row.status == Status.SENDING or row.next_attempt_at <= now
                ]
            if not busy:
                break
            assert time.monotonic() < deadline, f"still due or sending: {busy[:5]}"
        assert await dispatcher.drain(5.0) == 0
    finally:
        running.cancel()
        with suppress(asyncio.CancelledError):
            await running  # what ``run`` raised, if anything, fails the example
    return now


def at_the_edge(event: dict[str, Any]) -> bool:
    """Whether an instant of ``event`` lies in the first or the last year a datetime holds,
    where adding a step's wait or converting to UTC or a local zone may leave its range."""
    clock = event["data"]["clock"]
    instants = (event["occurred_at"], clock["started_at"], clock.get("deadline") or "")
    return any(instant.startswith(("0001-", "9999-")) for instant in instants)


def check_record(offset: int, event: dict[str, Any], seen: Seen, routed: set[str]) -> None:
    """The record at ``offset`` is recorded, or a dead letter with the reason that fits it."""
    letter = seen.letters.get(offset)
    try:
        parsed: SlaEvent | None = SlaEvent.model_validate_json(json.dumps(event))
    except ValidationError:
        parsed = None
    unroutable = False
    if parsed is not None and parsed.type in NOTIFYING_TYPES:
        try:
            stage_of(parsed)
        except UnroutableEventError:
            unroutable = True
    if letter is not None:
        assert letter.error, letter
        if parsed is None:
            assert letter.reason == DeadLetterReason.INVALID_EVENT, letter
        elif unroutable:
            assert letter.reason == DeadLetterReason.UNROUTABLE, letter
        else:  # it failed on its own: only an instant at the edge of the datetime range may
            assert letter.reason == DeadLetterReason.FAILED, letter
            assert letter.error_class == "OverflowError", letter
            assert at_the_edge(event), (letter, event)
        return
    assert parsed is not None, f"record {offset} is invalid yet no dead letter"
    assert not unroutable, f"record {offset} is unroutable yet no dead letter"
    if parsed.type not in NOTIFYING_TYPES:
        return  # tracked (a stop) or ignored
    if parsed.data.clock.escalation not in CONFIG.escalations:
        return  # skipped: no chain or an unknown one
    key = (parsed.data.clock.clock_id, parsed.data.clock.cycle)
    assert key in seen.escalations, (offset, key)
    assert any((n.clock_id, n.cycle) == key for n in seen.notifications), (offset, key)
    routed.add(parsed.event_id)


async def scenario(url: str, drawn: list[dict[str, Any]]) -> None:
    db = create_engine(url)
    try:
        await store.migrate(db)
        registry = CollectorRegistry()
        metrics = NotifierMetrics(registry)
        doorbell, scheduler_bell = asyncio.Event(), asyncio.Event()
        consumer = Committer()
        intake = Intake(
            consumer,
            db,
            PLANNER,
            metrics,
            doorbell=doorbell,
            scheduler_bell=scheduler_bell,
            clock=SystemClock(),
        )
        first, last = normal("FIRST", "warning:50"), normal("LAST", "breach")
        batch = [first, *drawn, last]
        records = [
            Rec(
                TOPIC,
                0,
                offset,
                f"{e['data']['ticket']['source']}:{e['data']['ticket']['id']}".encode(),
                json.dumps(e, ensure_ascii=False).encode(),
            )
            for offset, e in enumerate(batch)
        ]
        partition = TopicPartition(TOPIC, 0)
        async with asyncio.timeout(60):
            await intake.handle({partition: records})
        assert consumer.committed == [{partition: len(batch)}]

        ports = {
            Channel.EMAIL: Port(Channel.EMAIL),
            Channel.SMS: Fussy(Channel.SMS),
            Channel.DINGTALK: Port(Channel.DINGTALK),
        }
        dispatcher = Dispatcher(
            db,
            ports,
            RetryPolicy(base_s=0.01, cap_s=0.05, budget_s=1.0),
            metrics=metrics,
            clock=SystemClock(),
            rand=random.Random(0),
            doorbell=doorbell,
            outbox_bell=asyncio.Event(),
            concurrency={Channel.EMAIL: 4, Channel.SMS: 2, Channel.DINGTALK: 2},
            limits=partial(limit_for, CONFIG),
            links=LINKS,
        )
        done = await dispatch_all(db, dispatcher)

        scheduler = Scheduler(
            db, PLANNER, metrics=metrics, clock=FarClock(), bell=scheduler_bell, doorbell=doorbell
        )
        async with asyncio.timeout(60):
            while await scheduler.fire_due():  # until no step is due, repeats included
                pass
        # a step whose firing raised is put back for later (and counted): none may
        unfired = {"outcome": str(StepResult.FAILED)}
        assert not registry.get_sample_value("slawatch_notifier_escalation_steps_total", unfired)
        seen = await look(db)
    finally:
        await db.dispose()

    routed: set[str] = set()
    for offset, event in enumerate(batch):
        check_record(offset, event, seen, routed)
    assert {first["event_id"], last["event_id"]} <= routed

    delivered = {n for port in ports.values() for n in port.sent}
    for event in (first, last):
        own = [
            n
            for n in seen.notifications
            if n.sla_event_id == event["event_id"] and not n.scheduled  # the scheduler's: at FAR
        ]
        assert any(n.status == Status.SENT for n in own), own
        for n in own:
            if n.status == Status.SENT:
                assert n.id in delivered, n
            else:  # a fallback not needed once the first channel delivered
                assert n.status == Status.CANCELLED, n
                assert n.fallback_of, n

    by_id = {n.id: n for n in seen.notifications}
    for n in seen.notifications:
        assert n.status != Status.SENDING, n
        if n.status == Status.PENDING:
            assert n.next_attempt_at > done, n  # a digest's window, a retry: not overdue
        elif n.status in (Status.FAILED, Status.REFUSED):
            assert n.last_error, n
        elif n.status == Status.FOLDED:
            assert n.digest_id in by_id, n
        elif n.status == Status.STANDBY:  # while the one it stands in for may still fail
            before = by_id[n.fallback_of]
            assert before.status in (Status.PENDING, Status.STANDBY, Status.FOLDED), (n, before)
        else:
            assert n.status in (Status.SENT, Status.CANCELLED), n
    for step in seen.steps:
        assert step.status in ("fired", "cancelled") or step.due_at > FAR, step

    for mail in ports[Channel.EMAIL].mails:
        assert set(mail) <= MAIL_HEADERS, mail
        assert all(len(values) == 1 for values in mail.values()), mail
        for values in mail.values():
            assert not any(c in value for value in values for c in "\r\n"), mail
    for port in ports.values():
        for text in [*port.subjects, *port.lines]:
            assert "\r" not in text, (port.channel, text)
            assert "\n" not in text, (port.channel, text)


@settings(
    max_examples=examples(25, 400),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(drawn=batches())
def test_no_sla_event_stops_intake_dispatch_or_scheduler(
    tmp_path_factory: Any, drawn: list[Any]
) -> None:
    folder = Path(tmp_path_factory.mktemp("notifier"))
    asyncio.run(scenario(f"sqlite+aiosqlite:///{folder}/notifier.db", drawn))
