"""The engine in-process against the real broker and a real database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from slawatch_common.db import create_engine
from slawatch_common.topics import Topics
from slawatch_engine import store
from slawatch_engine.app import create_app
from slawatch_engine.policy import load_policies
from slawatch_engine.settings import EngineSettings
from support.kafka import TopicReader, produce
from support.serving import serving

POLICY = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: network
    match: {service: [network]}
    calendar: always
    escalation: network-chain
    warn_at: [50]
    targets:
      P1: {response: 1s, resolution: 30s}
  - name: fast
    calendar: always
    escalation: standard
    warn_at: [50]
    pause_statuses: [pending_customer]
    targets:
      P1: {response: 2s, resolution: 30s}
      P2: {response: 4s, resolution: 60s}
      P3: {response: 1h, resolution: 3s}
"""


def ticket_event(
    kind: str, ticket: str, at: datetime | None = None, event_id: str | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "type": f"ticket.{kind}",
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
        "source": "jira",
        "data": {"id": ticket, **data},
    }


async def send(bootstrap: str, topics: Topics, *events: dict[str, Any]) -> None:
    await produce(bootstrap, topics.tickets, [(f"jira:{e['data']['id']}", e) for e in events])


def of_ticket(values: list[dict[str, Any]], ticket: str) -> list[tuple[str, str | None]]:
    return [
        (v["type"], v["data"].get("stage")) for v in values if v["data"]["ticket"]["id"] == ticket
    ]


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/engine.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, database_url: str
) -> EngineSettings:
    config = tmp_path / "policy.yaml"
    config.write_text(POLICY)
    return EngineSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        kafka_partitions=2,
        database_url=database_url,
        config_file=config,
    )


@pytest.fixture
async def engine_url(settings: EngineSettings) -> AsyncIterator[str]:
    async with serving(create_app(settings, load_policies(settings.config_file))) as url:
        yield url


pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
ADMIN = {"Authorization": "Bearer dev-admin-token"}  # the development admin token: every scope


async def test_warning_then_breach_at_their_instants(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    created = datetime.now(UTC)
    await send(kafka_bootstrap, topics, ticket_event("created", "A-1", created, priority="P1"))
    async with TopicReader(kafka_bootstrap, topics.sla) as reader:
        values = await reader.wait_for(
            lambda vs: ("sla.breach", "breach") in of_ticket(vs, "A-1"), within=15
        )
        stamps = {v["data"]["stage"]: k for (_, v, k) in reader.records if v["data"].get("stage")}
    assert of_ticket(values, "A-1") == [("sla.warning", "warning:50"), ("sla.breach", "breach")]
    warning = next(v for v in values if v["type"] == "sla.warning")
    assert warning["occurred_at"].startswith((created + timedelta(seconds=1)).isoformat()[:19])
    assert warning["data"]["clock"]["clock_id"] == "jira:A-1:response"
    assert warning["data"]["clock"]["escalation"] == "standard"
    # emitted at the instant, not on a sweep: broker append within 1 s of the threshold
    for stage, offset_s in (("warning:50", 1.0), ("breach", 2.0)):
        lag = stamps[stage] / 1000 - (created.timestamp() + offset_s)
        assert 0 <= lag < 1.0, (stage, lag)


async def test_response_before_deadline_is_met_and_never_breaches(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "B-1", t0, priority="P1"),
        ticket_event("responded", "B-1", t0 + timedelta(milliseconds=500)),
    )
    async with TopicReader(kafka_bootstrap, topics.sla) as reader:
        await reader.wait_for(lambda vs: of_ticket(vs, "B-1") == [("sla.met", None)], within=10)
        # let the 2 s deadline pass, then look again
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            await reader.poll(0.3)
    assert of_ticket(reader.values, "B-1") == [("sla.met", None)]
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        status = (await client.get("/v1/tickets/jira/B-1/sla")).json()
    clocks = {c["metric"]: c for c in status["clocks"]}
    assert clocks["response"]["state"] == "stopped"
    assert clocks["response"]["breached"] is False
    assert clocks["response"]["business_seconds_used"] == 0
    assert clocks["resolution"]["state"] == "running"


async def test_preview_endpoint_answers_with_the_engines_calendars(engine_url: str) -> None:
    day, next_day = "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"
    requests = [
        {"calendar": {"name": "always"}, "start": day, "target_seconds": 90},
        {"calendar": {"name": "nowhere"}, "from": day, "to": next_day},
    ]
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        answers = (await client.post("/v1/preview", json=requests)).json()
    assert answers[0] == {"deadline": "2026-11-26T00:01:30Z"}
    assert "nowhere" in answers[1]["error"]
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        too_many = await client.post("/v1/preview", json=[requests[0]] * 101)
        too_large = await client.post("/v1/preview", content=b" " * (1024 * 1024 + 1))
    assert too_many.status_code == 422
    assert too_many.json() == {"detail": "body: at most 100 requests a call; this one has 101"}
    assert too_large.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while read
        for _ in range(20):
            yield b" " * 65_536

    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        streamed = await client.post("/v1/preview", content=chunks())
        not_json = await client.post("/v1/preview", content=b"{")
    assert streamed.status_code == 413
    assert not_json.status_code == 422


async def test_pause_and_resume_move_the_deadline(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "C-1", t0, priority="P2"),
        ticket_event("status_changed", "C-1", t0 + timedelta(seconds=1), status="pending_customer"),
        ticket_event("status_changed", "C-1", t0 + timedelta(seconds=3), status="open"),
    )
    values = await until_breach(kafka_bootstrap, topics, "C-1")
    response = [v for v in values if v["data"]["clock"]["clock_id"] == "jira:C-1:response"]
    kinds = [v["type"] for v in response]
    assert kinds == ["sla.paused", "sla.resumed", "sla.warning", "sla.breach"]
    # 4 s target, paused from +1 s to +3 s: the breach is due at +6 s
    breach = datetime.fromisoformat(response[-1]["occurred_at"])
    assert abs((breach - (t0 + timedelta(seconds=6))).total_seconds()) < 0.001


async def test_redelivered_and_invalid_input_change_nothing_twice(
    engine_url: str, kafka_bootstrap: str, topics: Topics, database_url: str
) -> None:
    created = ticket_event("created", "D-1", priority="P2", event_id="jira:D-1:created")
    responded = ticket_event("responded", "D-1", event_id="jira:D-1:responded")
    await send(kafka_bootstrap, topics, created, created, responded, responded)
    await produce(kafka_bootstrap, topics.tickets, [("jira:D-1", b"{not json")])
    async with TopicReader(kafka_bootstrap, topics.sla) as reader:
        await reader.wait_for(lambda vs: ("sla.met", None) in of_ticket(vs, "D-1"))
        for _ in range(5):
            await reader.poll(0.2)
    assert of_ticket(reader.values, "D-1") == [("sla.met", None)]
    db = create_engine(database_url)
    try:
        async with db.connect() as conn:
            clocks = await conn.scalar(
                select(func.count())
                .select_from(store.clocks)
                .where(store.clocks.c.ticket_key == "jira:D-1")
            )
            letters = (
                await conn.execute(
                    select(
                        store.dead_letters.c.reason,
                        store.dead_letters.c.error_class,
                        store.dead_letters.c.error,
                        store.dead_letters.c.value,
                    )
                )
            ).all()
    finally:
        await db.dispose()
    assert clocks == 2
    assert len(letters) == 1
    reason, error_class, error, value = letters[0]
    assert (reason, error_class, value) == ("invalid", "ValidationError", b"{not json")
    assert "Invalid JSON" in error
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        metrics = (await client.get("/metrics")).text
    assert 'slawatch_engine_events_rejected_total{reason="duplicate"} 2.0' in metrics
    assert 'slawatch_engine_events_rejected_total{reason="invalid"} 1.0' in metrics


async def until_breach(bootstrap: str, topics: Topics, ticket: str) -> list[dict[str, Any]]:
    """The SLA topic's events, read until the ticket's breach is among them."""
    async with TopicReader(bootstrap, topics.sla) as reader:
        return await reader.wait_for(
            lambda vs: ("sla.breach", "breach") in of_ticket(vs, ticket), within=15
        )


def clock_events(values: list[dict[str, Any]], clock_id: str) -> list[dict[str, Any]]:
    return [v for v in values if v["data"]["clock"]["clock_id"] == clock_id]


def instant(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


async def test_a_priority_change_recalculates_from_the_start(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "E-1", t0, priority="P2"),
        ticket_event("priority_changed", "E-1", t0 + timedelta(milliseconds=500), priority="P1"),
    )
    values = await until_breach(kafka_bootstrap, topics, "E-1")
    response = clock_events(values, "jira:E-1:response")
    # P1's 2 s from the ticket's start, not from the change: breach at +2 s
    assert [v["type"] for v in response] == ["sla.warning", "sla.breach"]
    assert instant(response[-1]) == t0 + timedelta(seconds=2)
    assert response[-1]["data"]["clock"]["target_seconds"] == 2
    assert response[-1]["data"]["ticket"]["priority"] == "P1"


async def test_reopen_continues_without_the_resolved_time(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "F-1", t0, priority="P3"),
        ticket_event("resolved", "F-1", t0 + timedelta(seconds=1)),
        ticket_event("reopened", "F-1", t0 + timedelta(seconds=2)),
    )
    values = await until_breach(kafka_bootstrap, topics, "F-1")
    resolution = clock_events(values, "jira:F-1:resolution")
    kinds = [v["type"] for v in resolution]
    assert kinds == ["sla.met", "sla.resumed", "sla.warning", "sla.breach"]
    # 3 s target: 1 s before the resolve, 2 s after the reopen at +2 s → +4 s
    assert instant(resolution[-1]) == t0 + timedelta(seconds=4)


async def test_a_late_answer_retracts_the_breach_it_disproves(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(kafka_bootstrap, topics, ticket_event("created", "G-1", t0, priority="P1"))
    async with TopicReader(kafka_bootstrap, topics.sla) as reader:
        await reader.wait_for(lambda vs: ("sla.breach", "breach") in of_ticket(vs, "G-1"))
        # the answer was given at +1.5 s, but its event arrives only now
        await send(
            kafka_bootstrap, topics, ticket_event("responded", "G-1", t0 + timedelta(seconds=1.5))
        )
        values = await reader.wait_for(lambda vs: ("sla.met", None) in of_ticket(vs, "G-1"))
    response = clock_events(values, "jira:G-1:response")
    kinds = [(v["type"], v["data"].get("stage")) for v in response]
    assert kinds == [
        ("sla.warning", "warning:50"),
        ("sla.breach", "breach"),
        ("sla.retracted", "breach"),
        ("sla.met", None),
    ]
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        status = (await client.get("/v1/tickets/jira/G-1/sla")).json()
    clock = next(c for c in status["clocks"] if c["metric"] == "response")
    assert (clock["state"], clock["breached"], clock["business_seconds_used"]) == (
        "stopped",
        False,
        1,
    )
    assert [entry["kind"] for entry in clock["history"]] == ["start", "stop"]


async def test_a_ticket_moving_to_another_policy_is_recalculated_under_it(
    engine_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "H-1", t0, priority="P1"),
        ticket_event("updated", "H-1", t0 + timedelta(milliseconds=200), service="network"),
    )
    values = await until_breach(kafka_bootstrap, topics, "H-1")
    breach = clock_events(values, "jira:H-1:response")[-1]
    # the network policy's 1 s, counted from the ticket's start
    assert instant(breach) == t0 + timedelta(seconds=1)
    assert (breach["data"]["clock"]["policy"], breach["data"]["clock"]["escalation"]) == (
        "network",
        "network-chain",
    )
    async with httpx.AsyncClient(base_url=engine_url, headers=ADMIN) as client:
        status = (await client.get("/v1/tickets/jira/H-1/sla")).json()
    clock = next(c for c in status["clocks"] if c["metric"] == "response")
    assert [entry["kind"] for entry in clock["history"]] == ["start", "retarget"]


async def test_a_stop_waiting_in_the_backlog_prevents_the_breach(
    settings: EngineSettings, kafka_bootstrap: str, topics: Topics
) -> None:
    """The lag guard: the engine was down while the answer came in before the deadline."""
    book = load_policies(settings.config_file)
    t0 = datetime.now(UTC)
    async with serving(create_app(settings, book)):
        await send(kafka_bootstrap, topics, ticket_event("created", "L-1", t0, priority="P1"))
        async with TopicReader(kafka_bootstrap, topics.sla) as reader:
            await reader.wait_for(lambda vs: ("sla.warning", "warning:50") in of_ticket(vs, "L-1"))
    # engine down: the answer at +1.5 s is queued, then the 2 s deadline passes
    await send(
        kafka_bootstrap, topics, ticket_event("responded", "L-1", t0 + timedelta(seconds=1.5))
    )
    await asyncio.sleep(max(0.0, (t0 + timedelta(seconds=3) - datetime.now(UTC)).total_seconds()))
    async with (
        serving(create_app(settings, book)),
        TopicReader(kafka_bootstrap, topics.sla) as reader,
    ):
        await reader.wait_for(lambda vs: ("sla.met", None) in of_ticket(vs, "L-1"))
        for _ in range(5):
            await reader.poll(0.2)
    assert of_ticket(reader.values, "L-1") == [("sla.warning", "warning:50"), ("sla.met", None)]


async def test_poison_records_are_dead_lettered_and_their_neighbours_applied(
    engine_url: str, kafka_bootstrap: str, topics: Topics, database_url: str
) -> None:
    """Absurd but schema-valid events and unreadable records between normal tickets: the
    normal tickets fire once each, every poison record is a dead letter, the engine runs on."""
    long_id = "L" * 200
    now = datetime.now(UTC)
    await send(
        kafka_bootstrap,
        topics,
        ticket_event("created", "N-1", now, priority="P1"),
        ticket_event("created", "Y-1", datetime(1, 1, 1, tzinfo=UTC), priority="P1"),
        ticket_event("created", "Y-9999", datetime(9999, 12, 31, 23, 0, tzinfo=UTC), priority="P1"),
        ticket_event("created", long_id, now, priority="P1"),
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.tickets, key=b"jira:null", value=None)
        await producer.send_and_wait(topics.tickets, key=b"jira:bytes", value=b"\xff\xfe{\x80")
    finally:
        await producer.stop()
    await send(kafka_bootstrap, topics, ticket_event("created", "N-2", now, priority="P1"))
    async with TopicReader(kafka_bootstrap, topics.sla) as reader:
        values = await reader.wait_for(
            lambda vs: all(
                ("sla.breach", "breach") in of_ticket(vs, ticket)
                for ticket in ("N-1", "N-2", long_id)
            ),
            within=20,
        )
        for _ in range(5):
            await reader.poll(0.2)
        values = reader.values
    expected = [("sla.warning", "warning:50"), ("sla.breach", "breach")]
    for ticket in ("N-1", "N-2", long_id):
        assert of_ticket(values, ticket) == expected, ticket
    for value in values:
        assert len(value["event_id"]) <= 200
        assert len(value["data"]["clock"]["clock_id"]) <= 200
    db = create_engine(database_url)
    try:
        async with db.connect() as conn:
            letters = (
                await conn.execute(
                    select(store.dead_letters.c.key, store.dead_letters.c.reason).order_by(
                        store.dead_letters.c.offset
                    )
                )
            ).all()
    finally:
        await db.dispose()
    assert dict(letters) == {
        b"jira:Y-1": "failed",  # the calendar cannot place year 1
        b"jira:Y-9999": "failed",  # nor a deadline past year 9999
        b"jira:null": "invalid",
        b"jira:bytes": "invalid",
    }
    assert of_ticket(values, "Y-1") == of_ticket(values, "Y-9999") == []
    async with httpx.AsyncClient(base_url=engine_url) as client:
        metrics = (await client.get("/metrics")).text
        ready = await client.get("/readyz")
        assert (await client.get("/v1/dead-letters")).status_code == 401
        admin = {"Authorization": "Bearer dev-admin-token"}
        listed = (await client.get("/v1/dead-letters", headers=admin)).json()["dead_letters"]
        by_key = {row["key"]: row for row in listed}
        assert by_key["jira:bytes"]["value"] is None
        assert by_key["jira:bytes"]["value_hex"] == "fffe7b80"
        assert by_key["jira:Y-1"]["error_class"] in ("OverflowError", "ValueError")
        # replayed, it is read again: still failing, it is a dead letter at its new offset
        first = by_key["jira:Y-1"]["id"]
        too_many = {"from_id": 1, "to_id": 5000}
        refused = await client.post("/v1/dead-letters/replay", json=too_many, headers=admin)
        assert refused.status_code == 422  # at most 1000 in one request
        answer = await client.post(
            "/v1/dead-letters/replay", json={"from_id": first}, headers=admin
        )
        assert answer.json() == {"replayed": [first]}
        for _ in range(100):
            listed = (await client.get("/v1/dead-letters", headers=admin)).json()["dead_letters"]
            if len(listed) == 5:
                break
            await asyncio.sleep(0.1)
    assert ready.status_code == 200, ready.text
    assert 'slawatch_engine_dead_letters_total{reason="invalid"} 2.0' in metrics
    assert 'slawatch_engine_dead_letters_total{reason="failed"} 2.0' in metrics
    again = [row for row in listed if row["key"] == "jira:Y-1"]
    assert [row["replayed_at"] is not None for row in again] == [True, False]
    assert again[1]["offset"] > again[0]["offset"]


async def test_alerts_become_outages_and_unreadable_alert_records_dead_letters(
    engine_url: str, kafka_bootstrap: str, topics: Topics, database_url: str
) -> None:
    """The monitoring consumer: a firing and its resolution become one interval; a null
    record and invalid JSON between them are dead letters; the consumer goes on."""
    starts = datetime.now(UTC) - timedelta(minutes=5)

    def alert(kind: str, ends: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": "core-net",
            "name": "Down",
            "fingerprint": "fp-1",
            "starts_at": starts.isoformat(),
        }
        if ends is not None:
            data["ends_at"] = ends.isoformat()
        return {
            "event_id": f"alert:{kind}",
            "type": f"monitor.alert_{kind}",
            "occurred_at": (ends or starts).isoformat(),
            "source": "alertmanager",
            "data": data,
        }

    await produce(kafka_bootstrap, topics.monitoring, [("core-net", alert("firing"))])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.monitoring, key=b"core-net", value=None)
        await producer.send_and_wait(topics.monitoring, key=b"core-net", value=b"{not json")
    finally:
        await producer.stop()
    ends = starts + timedelta(minutes=2)
    await produce(kafka_bootstrap, topics.monitoring, [("core-net", alert("resolved", ends))])
    db = create_engine(database_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            async with db.connect() as conn:
                rows = (await conn.execute(select(store.outages))).mappings().all()
                letters = (
                    await conn.execute(
                        select(store.dead_letters.c.topic, store.dead_letters.c.reason)
                    )
                ).all()
            if rows and rows[0]["ends_at"] is not None and len(letters) == 2:
                break
            assert time.monotonic() < deadline, (rows, letters)
            await asyncio.sleep(0.2)
    finally:
        await db.dispose()
    assert [(r["service"], r["fingerprint"], r["ends_at"]) for r in rows] == [
        ("core-net", "fp-1", ends)
    ]
    assert sorted(letters) == [(topics.monitoring, "invalid")] * 2
