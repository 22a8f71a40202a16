"""Chaos: 10,000 tickets flow while the engine and the notifier are SIGKILLed and restarted.

One engine and one notifier run as OS processes against the real broker,
PostgreSQL, SMTP sink and SMS sink. Tickets are created over a feed window,
each dated when it is produced, under a P1 response target of 80 s: its
warning (50 %) falls due 40 s after creation and goes to the ticket's own
assignee by email, its breach 80 s after creation and goes to on-call by SMS.
(The 40 s between them leave room for the engine's outages: a warning and a
breach both crossed while the engine was blind are emitted as the breach
alone, by design, and the test must not depend on that happening.)

- 30 % are answered before their warning: the ``ticket.responded`` (dated
  1–39 s after creation) is produced with the ``ticket.created``, so they
  expect nothing;
- 10 % are answered between warning and breach: once their warning is on the
  SLA topic, a ``ticket.responded`` dated then is produced (at least 12 s
  before the breach instant), so they expect the warning only. Produced
  blindly instead, it could reach an engine that was down at the warning
  instant and stop the clock before the warning is judged — and a stopped
  clock gets no stale warning, by design — so the expectation would hang on
  the kill timing. One whose warning shows too late for the margin is left
  unanswered and expects both;
- the rest are never answered and expect both.

Meanwhile two monkeys SIGKILL and restart the engine and the notifier at
random instants (seeded; 10 kills each, 25 each with ``SLAWATCH_CHAOS=long``,
which ``make chaos`` sets; the engine is left up at least ``ENGINE_MIN_UP_S``
after it has caught up with its input). Once the kills are done and everything has
drained, every expected notification was delivered and nothing else was —
counted by the provider-side identity (mail ``Message-ID``, SMS
``idempotency_key``); raw repeats (re-sends inside the at-least-once window of
``slawatch_notifier/dispatch.py``) are reported and bounded by the notifier's
send concurrency (8) per notifier kill. The SLA topic carries each expected
(clock, stage) under exactly one event id, and no other warning or breach.

``SLAWATCH_CHAOS_SEED`` replays a seed (the kill instants still depend on the
machine's timing); ``SLAWATCH_CHAOS_TICKETS`` changes the ticket count.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from deploy.dev.sms_sink import SmsSink

from slawatch_common.events import Channel
from slawatch_common.topics import Topics
from slawatch_notifier.channels.email import message_id, sender_domain
from slawatch_notifier.routing import notification_id
from support.chaos import Monkey
from support.kafka import TopicReader, fresh_topics
from support.net import free_port
from support.processes import ServiceProcess
from support.smtp import SmtpSink

LONG = os.environ.get("SLAWATCH_CHAOS") == "long"
TICKETS = int(os.environ.get("SLAWATCH_CHAOS_TICKETS", "10000"))
KILLS_EACH = 25 if LONG else 10
FEED_S = 420.0 if LONG else 130.0
"""Tickets are created evenly over this window; the kills spread until its last breach."""
ENGINE_MIN_UP_S = 6.0
"""After a restart (a ~6 s rebalance) the engine holds its timer until it has read its input
backlog, then fires what fell due meanwhile; the monkey waits for that release (its log line)
and then at least this long before the next kill. Killed sooner again and again, the engine
could stay blind for a clock's whole warning-to-breach span, and a warning and a breach
crossed unseen are emitted as the breach alone (as designed), so the expectation would hang
on the kill timing."""
ENGINE_RELEASED = "input caught up: timer released"
DRAIN_S = 300.0 if LONG else 150.0
"""After the last kill and the last breach instant: how long everything may take to arrive."""
SETTLE_S = 3.0
"""Once everything expected arrived: how long to keep looking for repeats and strays."""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.smtp,
    pytest.mark.chaos,
    pytest.mark.timeout(3600 if LONG else 600),
]

PARTITIONS = 4
SOURCE = "chaos"
TARGET_S = 80
WARN_S = 40  # 50 % of the target
ANSWER_MARGIN_S = 12.0
"""A late answer is produced at least this long before the breach instant."""
WARNING = "warning:50"
BREACH = "breach"
ONCALL_PHONE = "+8613800000002"
SEND_CONCURRENCY = 8
CONFIG = f"""
calendars:
  always: {{timezone: UTC, always_open: true}}
policies:
  - name: chaos
    calendar: always
    escalation: chaos
    warn_at: [50]
    targets:
      P1: {{response: {TARGET_S}s}}
notifier:
  event_addresses: {{sources: [chaos], mail_domains: [example.com]}}
  people:
    oncall: {{name: On-call, email: oncall@example.com, phone: "{ONCALL_PHONE}"}}
  escalations:
    chaos:
      - on: warning
        notify: [{{to: assignee, via: email}}]
      - on: breach
        notify: [{{to: oncall, via: sms}}]
"""


@dataclass
class Ticket:
    """One ticket of the plan: ``early``, ``late`` or ``open`` (see the module docstring)."""

    n: int
    kind: str
    delay: float
    """early: seconds after creation its answer is dated; late: seconds after the warning
    instant its answer is produced at the earliest."""
    created: float | None = None
    respond_at: float | None = None
    answered: bool = False
    demoted: bool = False

    @property
    def id(self) -> str:
        return f"T-{self.n:05d}"

    @property
    def key(self) -> str:
        return f"{SOURCE}:{self.id}"

    @property
    def clock(self) -> str:
        return f"{self.key}:response"

    @property
    def assignee(self) -> str:
        return f"agent-{self.n}"

    @property
    def email(self) -> str:
        return f"agent-{self.n}@example.com"

    @property
    def warning_at(self) -> float:
        assert self.created is not None
        return self.created + WARN_S

    @property
    def breach_at(self) -> float:
        assert self.created is not None
        return self.created + TARGET_S

    def stages(self) -> set[str]:
        """The stages this ticket must be notified of."""
        if self.kind == "early":
            return set()
        if self.kind == "late" and self.answered:
            return {WARNING}
        return {WARNING, BREACH}

    def notification(self, stage: str) -> str:
        if stage == WARNING:
            return notification_id(self.clock, WARNING, self.assignee, Channel.EMAIL)
        return notification_id(self.clock, BREACH, "oncall", Channel.SMS, step=1)

    def created_event(self) -> dict[str, Any]:
        assert self.created is not None
        return {
            "event_id": f"{SOURCE}:{self.id}:created",
            "type": "ticket.created",
            "occurred_at": _iso(self.created),
            "source": SOURCE,
            "data": {
                "id": self.id,
                "priority": "P1",
                "assignee": {"id": self.assignee, "email": self.email},
            },
        }

    def responded_event(self, at: float) -> dict[str, Any]:
        return {
            "event_id": f"{SOURCE}:{self.id}:responded",
            "type": "ticket.responded",
            "occurred_at": _iso(at),
            "source": SOURCE,
            "data": {"id": self.id},
        }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def make_plan(rng: random.Random, count: int) -> list[Ticket]:
    kinds = ["early"] * (count * 3 // 10) + ["late"] * (count // 10)
    kinds += ["open"] * (count - len(kinds))
    rng.shuffle(kinds)
    plan = []
    for n, kind in enumerate(kinds):
        delay = rng.uniform(1.0, WARN_S - 1.0) if kind == "early" else rng.uniform(0.5, 4.0)
        plan.append(Ticket(n, kind, delay))
    return plan


@dataclass
class Deliveries:
    """What reached the sinks, read incrementally, keyed by the provider-side identity."""

    smtp: SmtpSink
    sms: SmsSink
    raw: Counter[str] = field(default_factory=Counter)
    """identity (``mail:<Message-ID>`` / ``sms:<idempotency key>``) → arrivals"""
    notification: dict[str, str] = field(default_factory=dict)
    """identity → notification id"""
    recipients: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """notification id → every address it reached (mail recipients, SMS numbers)"""
    texts: dict[str, str] = field(default_factory=dict)
    """notification id → SMS text"""
    first: dict[str, float] = field(default_factory=dict)
    """notification id → when it first arrived"""
    problems: list[str] = field(default_factory=list)
    _mails: int = 0
    _sms: int = 0

    def refresh(self) -> None:
        mails = self.smtp.snapshot()
        for arrived, rcpts, message in mails[self._mails :]:
            nid = "".join(str(message["X-Slawatch-Notification-Id"]).split())  # unfolded
            mid = str(message["Message-ID"])
            if mid != message_id(nid, sender_domain(str(message["From"]))):
                self.problems.append(f"mail {nid}: Message-ID {mid} is not the one of its id")
            self._record(f"mail:{mid}", nid, rcpts, arrived)
        self._mails = len(mails)
        messages = self.sms.received()
        for sms in messages[self._sms :]:
            key = sms.idempotency_key or f"missing-key:{sms.id}"
            self._record(f"sms:{key}", key, [sms.to], sms.received_at)
            self.texts[key] = sms.message
        self._sms = len(messages)

    def _record(self, identity: str, nid: str, addresses: list[str], arrived: float) -> None:
        self.raw[identity] += 1
        self.first.setdefault(nid, arrived)
        known = self.notification.setdefault(identity, nid)
        if known != nid:
            self.problems.append(f"{identity} carried both {known} and {nid}")
        self.recipients[nid].update(addresses)

    @property
    def delivered(self) -> set[str]:
        return set(self.notification.values())

    @property
    def repeats(self) -> int:
        return sum(self.raw.values()) - len(self.raw)


@dataclass
class Run:
    """Everything the chaos run saw, for the assertions and the report."""

    seed: int
    plan: list[Ticket]
    deliveries: Deliveries
    monkeys: list[Monkey]
    log_dir: Path
    stage_ids: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    """(clock, stage) → distinct SLA event ids of its warning/breach events"""
    sla_counts: Counter[str] = field(default_factory=Counter)
    sla_lag: dict[tuple[str, str], float] = field(default_factory=dict)
    """(clock, stage) → seconds from its instant to its first record on the SLA topic"""
    marks: dict[str, float] = field(default_factory=dict)

    def expected(self) -> dict[str, tuple[Ticket, str]]:
        """notification id → (ticket, stage) of every notification that must arrive."""
        return {t.notification(s): (t, s) for t in self.plan for s in t.stages()}

    def expected_stages(self) -> set[tuple[str, str]]:
        return {(t.clock, s) for t in self.plan for s in t.stages()}

    def complete(self) -> bool:
        self.deliveries.refresh()
        return (
            self.deliveries.delivered >= set(self.expected())
            and set(self.stage_ids) >= self.expected_stages()
        )

    def explain(self, nids: list[str]) -> list[str]:
        """Each missing notification with what the SLA topic and the plan say about it."""
        expected, notes = self.expected(), []
        for nid in nids:
            ticket, _ = expected[nid]
            on_topic = sorted(s for c, s in self.stage_ids if c == ticket.clock)
            notes.append(
                f"{nid} ({ticket.kind}{', demoted' if ticket.demoted else ''}, created "
                f"+{(ticket.created or 0) - self.marks['t0']:.1f}s; SLA topic has {on_topic})"
            )
        return notes

    def resent(self) -> int:
        """How many interrupted sends the notifier's restarts resent (from its log)."""
        log = self.log_dir / "slawatch-notifier.log"
        if not log.exists():
            return 0
        found = re.findall(r"resending (\d+) notifications interrupted", log.read_text())
        return sum(int(n) for n in found)

    def kills(self, script: str) -> int:
        return sum(len(m.outages) for m in self.monkeys if m.proc.script == script)

    def report(self) -> str:
        d, t0 = self.deliveries, self.marks["t0"]
        kinds = Counter(t.kind for t in self.plan)
        engine = [m for m in self.monkeys if m.proc.script == "slawatch-engine"]
        notifier = [m for m in self.monkeys if m.proc.script == "slawatch-notifier"]
        engine_ready = _spread(r - k for m in engine for k, r, _ in m.outages)
        engine_released = _spread(s - k for m in engine for k, _, s in m.outages)
        notifier_ready = _spread(r - k for m in notifier for k, r, _ in m.outages)
        phases = ", ".join(f"{name} +{at - t0:.1f}s" for name, at in self.marks.items())
        notified = _spread(
            d.first[nid] - (t.warning_at if stage == WARNING else t.breach_at)
            for nid, (t, stage) in self.expected().items()
            if nid in d.first
        )
        return (
            f"seed {self.seed} (SLAWATCH_CHAOS_SEED={self.seed} replays it); "
            f"{len(self.plan)} tickets ({kinds['early']} early, {kinds['late']} late of which "
            f"{sum(t.answered for t in self.plan)} answered, {kinds['open']} open); "
            f"kills: engine {self.kills('slawatch-engine')}, "
            f"notifier {self.kills('slawatch-notifier')}; "
            f"p50/p90/max engine kill→ready {engine_ready}, kill→timer released "
            f"{engine_released}, notifier kill→ready {notifier_ready}; "
            f"expected {len(self.expected())} notifications, delivered {len(d.delivered)} "
            f"distinct in {sum(d.raw.values())} raw messages ({d.repeats} raw repeats; "
            f"the notifier resent {self.resent()} interrupted at its restarts), "
            f"last at +{max(d.first.values(), default=t0) - t0:.1f}s, arriving after their "
            f"instant by p50/p90/max {notified}; "
            f"SLA topic {dict(self.sla_counts)}, stages on it after their instant by "
            f"p50/p90/max {_spread(self.sla_lag.values())}; phases: {phases}; "
            f"logs in {self.log_dir}"
        )


def _spread(values: Iterable[float]) -> str:
    """p50/p90/max of ``values`` in seconds."""
    ordered = sorted(values)
    if not ordered:
        return "-"
    n = len(ordered)
    return f"{ordered[n // 2]:.1f}/{ordered[n * 9 // 10]:.1f}/{ordered[-1]:.1f}s"


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    with fresh_topics(kafka_bootstrap, "ch", PARTITIONS) as fresh:
        yield fresh


@pytest.fixture
def services(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
) -> Iterator[dict[str, ServiceProcess]]:
    config = tmp_path / "slawatch.yaml"
    config.write_text(CONFIG)
    env = {
        "SLAWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
        "SLAWATCH_CONFIG_FILE": str(config),
        "DATABASE_URL": pg_url,
        "SLAWATCH_SMTP_PORT": str(smtp_sink.port),
        "SLAWATCH_SMS_URL": sms_sink.url,
        "SLAWATCH_SMS_TOKEN": sms_sink.token,
        "SLAWATCH_ENGINE_PORT": str(free_port()),
        "SLAWATCH_NOTIFIER_PORT": str(free_port()),
        "SLAWATCH_RETRY_BASE_S": "0.2",
        "SLAWATCH_RETRY_CAP_S": "2",
        "SLAWATCH_RETRY_BUDGET_S": "3600",
        # every kill interrupts the sends in flight and those claimed ahead: with 50
        # kills one notification may be caught more than the default three times
        "SLAWATCH_MAX_INTERRUPTED": "100",
        "SLAWATCH_SEND_CONCURRENCY": str(SEND_CONCURRENCY),
    }
    procs = {
        "engine": ServiceProcess(
            "slawatch-engine", int(env["SLAWATCH_ENGINE_PORT"]), env, tmp_path
        ),
        "notifier": ServiceProcess(
            "slawatch-notifier", int(env["SLAWATCH_NOTIFIER_PORT"]), env, tmp_path
        ),
    }
    try:
        for proc in procs.values():
            proc.start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def test_tickets_flow_through_kills_and_every_stage_is_notified_exactly_once(
    services: dict[str, ServiceProcess],
    kafka_bootstrap: str,
    topics: Topics,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("SLAWATCH_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    plan = make_plan(rng, TICKETS)
    t0 = time.time()
    until = t0 + FEED_S + TARGET_S  # the last breach instant
    monkeys = [
        Monkey(
            services["engine"],
            KILLS_EACH,
            until,
            random.Random(rng.random()),
            min_up=ENGINE_MIN_UP_S,
            settled=(tmp_path / "slawatch-engine.log", ENGINE_RELEASED),
        ),
        Monkey(services["notifier"], KILLS_EACH, until, random.Random(rng.random()), min_up=1.0),
    ]
    run = Run(seed, plan, Deliveries(smtp_sink, sms_sink), monkeys, tmp_path, marks={"t0": t0})
    for monkey in monkeys:
        monkey.start()
    try:
        asyncio.run(_flow(run, kafka_bootstrap, topics))
    finally:
        for monkey in monkeys:
            monkey.cancel()
        for monkey in monkeys:
            monkey.join(timeout=120)
    print(run.report())

    for monkey in monkeys:
        assert monkey.error is None, f"{monkey.name}: {monkey.error!r}; {run.report()}"
    engine_kills, notifier_kills = run.kills("slawatch-engine"), run.kills("slawatch-notifier")
    assert engine_kills + notifier_kills >= 2 * KILLS_EACH, run.report()
    d = run.deliveries
    expected = run.expected()
    missing = sorted(set(expected) - d.delivered)
    unexpected = sorted(d.delivered - set(expected))
    assert (missing, unexpected) == ([], []), (
        f"{len(missing)} not delivered, e.g. {run.explain(missing[:10])}; "
        f"{len(unexpected)} unexpected, e.g. {unexpected[:10]}; {run.report()}"
    )
    assert not d.problems, f"{d.problems[:10]}; {run.report()}"
    wrong = []
    for nid, (ticket, stage) in expected.items():
        want = {ticket.email} if stage == WARNING else {ONCALL_PHONE}
        if d.recipients[nid] != want:
            wrong.append(f"{nid} reached {sorted(d.recipients[nid])}")
        if stage == BREACH and ticket.key not in d.texts[nid]:
            wrong.append(f"{nid} SMS text {d.texts[nid]!r} does not name {ticket.key}")
    assert not wrong, f"{wrong[:10]}; {run.report()}"
    # a kill interrupts at most the sends in flight: SEND_CONCURRENCY per channel
    assert d.repeats <= SEND_CONCURRENCY * 2 * notifier_kills, (
        f"{d.repeats} raw repeats for {notifier_kills} notifier kills; {run.report()}"
    )

    stages = run.expected_stages()
    assert set(run.stage_ids) == stages, (
        f"SLA topic: missing {sorted(stages - set(run.stage_ids))[:10]}, "
        f"unexpected {sorted(set(run.stage_ids) - stages)[:10]}; {run.report()}"
    )
    twice = {k: v for k, v in run.stage_ids.items() if len(v) > 1}
    assert not twice, f"stages under several event ids: {list(twice.items())[:5]}; {run.report()}"


async def _flow(run: Run, bootstrap: str, topics: Topics) -> None:
    """Feed the tickets, answer the late ones, then wait for the kills and the drain."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with TopicReader(bootstrap, topics.sla) as reader:
            feeding = asyncio.create_task(_feed(run, producer, topics.tickets))
            watching = asyncio.create_task(_watch(run, reader, producer, topics.tickets))
            try:
                await feeding
                run.marks["fed"] = time.time()
                while any(m.is_alive() for m in run.monkeys):
                    await asyncio.sleep(0.5)
                    if watching.done():
                        break
                run.marks["kills done"] = time.time()
                deadline = max(time.time(), max(t.breach_at for t in run.plan)) + DRAIN_S
                while time.time() < deadline and not watching.done():
                    if run.complete():
                        break
                    await asyncio.sleep(0.5)
                run.marks["drained"] = time.time()
                await asyncio.sleep(SETTLE_S)
                run.deliveries.refresh()
            finally:
                watching.cancel()
                feeding.cancel()
                results = await asyncio.gather(watching, feeding, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result
    finally:
        await producer.stop()


async def _feed(run: Run, producer: AIOKafkaProducer, topic: str) -> None:
    """Create the tickets evenly over ``FEED_S``, each dated when it is produced."""
    t0, step, sent = run.marks["t0"], FEED_S / len(run.plan), 0
    while sent < len(run.plan):
        upto = min(len(run.plan), int((time.time() - t0) / step) + 1)
        now = time.time()
        pending = []
        for ticket in run.plan[sent:upto]:
            ticket.created = now
            pending.append(await _send(producer, topic, ticket, ticket.created_event()))
            if ticket.kind == "early":
                answer = ticket.responded_event(now + ticket.delay)
                pending.append(await _send(producer, topic, ticket, answer))
        await asyncio.gather(*pending)
        sent = upto
        await asyncio.sleep(0.2)


async def _send(
    producer: AIOKafkaProducer, topic: str, ticket: Ticket, event: dict[str, Any]
) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = await producer.send(
        topic, key=ticket.key.encode(), value=json.dumps(event).encode()
    )
    return future


async def _watch(run: Run, reader: TopicReader, producer: AIOKafkaProducer, topic: str) -> None:
    """Tail the SLA topic; answer each late ticket once its warning is out."""
    by_clock = {t.clock: t for t in run.plan}
    late = [t for t in run.plan if t.kind == "late"]
    seen = 0
    while True:
        await reader.poll(0.2)
        for _, value, stamp in reader.records[seen:]:
            run.sla_counts[value["type"]] += 1
            if value["type"] not in ("sla.warning", "sla.breach"):
                continue
            ticket = by_clock.get(value["data"]["clock"]["clock_id"])
            stage = value["data"]["stage"]
            if ticket is None:
                run.stage_ids[(value["data"]["clock"]["clock_id"], stage)].add(value["event_id"])
                continue
            run.stage_ids[(ticket.clock, stage)].add(value["event_id"])
            instant = datetime.fromisoformat(value["occurred_at"]).timestamp()
            run.sla_lag.setdefault((ticket.clock, stage), stamp / 1000 - instant)
            if ticket.kind == "late" and stage == WARNING and ticket.respond_at is None:
                ticket.respond_at = max(time.time(), ticket.warning_at + ticket.delay)
        seen = len(reader.records)
        now = time.time()
        pending = []
        for ticket in late:
            if ticket.answered or ticket.demoted or ticket.created is None:
                continue
            if now > ticket.breach_at - ANSWER_MARGIN_S:
                ticket.demoted = True  # its warning came too late to answer it safely
            elif ticket.respond_at is not None and ticket.respond_at <= now:
                ticket.answered = True
                answer = ticket.responded_event(now)
                pending.append(await _send(producer, topic, ticket, answer))
        await asyncio.gather(*pending)
        if all(t.answered or t.demoted for t in late) and "answers done" not in run.marks:
            run.marks["answers done"] = time.time()
