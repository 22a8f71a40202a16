"""Rate windows, digests, fallbacks and deferred warnings in the database, on SQLite and
PostgreSQL; and two claimers folding at once never send beyond the limit."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import CONFIG, ESCALATING, NOW, sla_event
from notifier.harness import Scenario, on_sqlite_and_postgresql
from slawatch_common.events import Channel
from slawatch_notifier import escalation_store as es
from slawatch_notifier import fallback, folding, store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.channels.port import Delivered, Outcome, Permanent
from slawatch_notifier.config import NotifierConfig, parse_config
from slawatch_notifier.folding import Admission
from slawatch_notifier.planner import Planner
from slawatch_notifier.rate_limits import digest_id, limit_for
from slawatch_notifier.retry import NextStep, Status
from slawatch_notifier.routing import route
from slawatch_notifier.templates import render

MINUTE = timedelta(minutes=1)
DIGEST = digest_id("oncall", Channel.SMS, NOW)


def _config(sms_max: int = 5, via: Any = "sms") -> NotifierConfig:
    section = copy.deepcopy(CONFIG)
    section["rate_limits"] = {"sms": {"max": sms_max, "per": "1m"}}
    section["escalations"]["standard"][1]["notify"] = [{"to": "oncall", "via": via}]
    return parse_config(section)


async def _insert(engine: AsyncEngine, config: NotifierConfig, *tickets: int) -> None:
    drafts = [
        store.Draft(p, render(p))
        for n in tickets
        for p in route(sla_event("breach", ticket_id=f"OPS-{n}"), config, NOW).notifications
    ]
    async with engine.begin() as conn:
        await store.insert_new(conn, drafts, NOW)


async def _claim(
    engine: AsyncEngine, config: NotifierConfig, at: timedelta = timedelta(0), free: int = 10
) -> Admission:
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW + at, {Channel.SMS: free, Channel.EMAIL: free})
        return await folding.admit(conn, claimed, partial(limit_for, config), NOW + at)


async def _rows(engine: AsyncEngine) -> dict[str, tuple[str, str | None]]:
    table = store.notifications
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(table.c.id, table.c.status, table.c.digest_id))
        return {row.id: (row.status, row.digest_id) for row in rows}


async def _row(engine: AsyncEngine, notification_id: str) -> sa.RowMapping:
    table = store.notifications
    async with engine.connect() as conn:
        query = sa.select(table).where(table.c.id == notification_id)
        return (await conn.execute(query)).mappings().one()


async def _finish(
    engine: AsyncEngine, claimed: store.Claimed, outcome: Outcome, status: Status
) -> fallback.Settled:
    step = NextStep(status, error=None if status is Status.SENT else "HTTP 400 unknown number")
    async with engine.begin() as conn:
        attempt = store.Attempt(NOW, 5, outcome)
        assert await store.finish_attempts(conn, [(claimed, attempt, step)], NOW)
        return await fallback.settle(conn, claimed, step, NOW)


def _sms(n: int) -> str:
    return f"jira:OPS-{n}:response:breach:1:oncall:sms"


async def what_is_over_the_limit_folds_into_one_digest(engine: AsyncEngine) -> None:
    config = _config()
    await _insert(engine, config, *range(8))
    admitted = await _claim(engine, config)
    assert sorted(c.id for c in admitted.send) == [_sms(n) for n in range(5)]
    assert sorted(f.claimed.id for f in admitted.folded) == [_sms(n) for n in range(5, 8)]
    assert admitted.digests_opened == [("oncall", Channel.SMS)]
    rows = await _rows(engine)
    assert [rows[_sms(n)] for n in range(8)] == [("sending", None)] * 5 + [("folded", DIGEST)] * 3
    digest = await _row(engine, DIGEST)
    assert (digest["status"], digest["next_attempt_at"], digest["stage"]) == (
        "pending",
        NOW + MINUTE,
        "digest",
    )
    text = digest["content"]["text"]
    assert text.startswith("[slawatch] 3 SLA notifications held back (limit 5 per 1m on sms):")
    assert [f"jira:OPS-{n} " in text for n in range(8)] == [False] * 5 + [True] * 3
    folded = await _row(engine, _sms(7))
    assert (folded["attempts"], folded["note"]) == (
        0,
        f"folded into {DIGEST}: limit of 5 per 60s on sms",
    )

    assert (await _claim(engine, config, MINUTE - timedelta(seconds=1))).send == []
    (sending,) = (await _claim(engine, config, MINUTE)).send  # the digest, when the window ends
    assert (sending.id, sending.digest, sending.recipient) == (DIGEST, True, "oncall")
    # the next window opened with the digest in it: one more fits before it is full again
    await _insert(engine, config, 8, 9, 10, 11, 12)
    later = await _claim(engine, config, MINUTE + timedelta(seconds=1))
    assert (len(later.send), len(later.folded)) == (4, 1)
    assert {c.id for c in later.send} | {later.folded[0].claimed.id} == {
        _sms(n) for n in range(8, 13)
    }
    assert later.folded[0].digest_id == digest_id("oncall", Channel.SMS, NOW + MINUTE)


async def a_digest_speaks_the_language_of_what_it_holds(engine: AsyncEngine) -> None:
    section = copy.deepcopy(CONFIG)
    section["locale"] = "zh-CN"  # the on-call person has none of their own
    section["rate_limits"] = {"sms": {"max": 1, "per": "1m"}}
    section["escalations"]["standard"][1]["notify"] = [{"to": "oncall", "via": "sms"}]
    config = parse_config(section)
    await _insert(engine, config, 0, 1, 2)
    admitted = await _claim(engine, config)
    assert admitted.send[0].outbound.content.text.startswith("[slawatch] 已超时 P1 jira:OPS-")
    digest = await _row(engine, DIGEST)
    assert digest["locale"] == "zh-CN"
    assert digest["content"]["text"].startswith(
        "[slawatch] 2 条 SLA 通知因超出 sms 频率限制（每 1分钟 1 条）被暂缓："
    )


async def claimers_at_once_never_send_beyond_the_limit(engine: AsyncEngine) -> None:
    config = _config()
    await _insert(engine, config, *range(8))
    gate = asyncio.Event()
    decided = asyncio.Event()

    async def claimer(first: bool) -> Admission:
        async with engine.begin() as conn:
            claimed = await store.claim_due(conn, NOW, {Channel.SMS: 4})
            admission = await folding.admit(conn, claimed, partial(limit_for, config), NOW)
            if first:
                decided.set()
                await gate.wait()  # hold the window (and the claimed rows) until the other ran
            return admission

    holding = asyncio.create_task(claimer(True))
    await decided.wait()
    racing = asyncio.create_task(claimer(False))
    await asyncio.sleep(0.5)
    assert not racing.done()  # it waits for the window the first one holds
    gate.set()
    a, b = await asyncio.gather(holding, racing)
    drained = await _claim(engine, config)  # SQLite: the second claimer found nothing left
    sent = [c.id for c in a.send + b.send + drained.send]
    folded = [f.claimed.id for f in a.folded + b.folded + drained.folded]
    assert len(sent) == 5
    assert len(folded) == 3
    assert sorted(sent + folded) == sorted(_sms(n) for n in range(8))
    rows = await _rows(engine)
    assert rows[DIGEST] == ("pending", None)
    assert sorted(i for i, (status, _) in rows.items() if status == "folded") == sorted(folded)


async def a_failed_notification_hands_over_to_its_fallback(engine: AsyncEngine) -> None:
    config = _config(via=["sms", "email"])
    await _insert(engine, config, 1, 2)
    mail = [f"jira:OPS-{n}:response:breach:1:oncall:email" for n in (1, 2)]
    assert [(await _rows(engine))[m][0] for m in mail] == ["standby", "standby"]
    admitted = await _claim(engine, config)
    sms = {c.id: c for c in admitted.send if c.channel is Channel.SMS}
    assert sorted(sms) == [_sms(1), _sms(2)]  # the standbys are not due
    failed = await _finish(
        engine, sms[_sms(1)], Permanent("HTTP 400 unknown number"), Status.FAILED
    )
    assert failed.promoted == (store.NotificationRef(mail[0], Channel.EMAIL),)
    delivered = await _finish(engine, sms[_sms(2)], Delivered("sms-1"), Status.SENT)
    assert delivered.cancelled == (store.NotificationRef(mail[1], Channel.EMAIL),)
    promoted, stood_down = await _row(engine, mail[0]), await _row(engine, mail[1])
    assert (promoted["status"], promoted["fallback_of"]) == ("pending", _sms(1))
    assert promoted["note"] == (f"fallback: {_sms(1)} failed on sms: HTTP 400 unknown number")
    assert (stood_down["status"], stood_down["note"]) == (
        "cancelled",
        f"not needed: {_sms(2)} was delivered on sms",
    )
    (fallback,) = [c.id for c in (await _claim(engine, config)).send]
    assert fallback == mail[0]


async def a_failed_digest_hands_its_notifications_over_to_their_fallbacks(
    engine: AsyncEngine,
) -> None:
    config = _config(sms_max=1, via=["sms", "email"])
    await _insert(engine, config, 1, 2)
    await _claim(engine, config)  # OPS-1 sent, OPS-2 folded
    (digest,) = (await _claim(engine, config, MINUTE)).send
    settled = await _finish(engine, digest, Permanent("HTTP 400"), Status.FAILED)
    mail = "jira:OPS-{}:response:breach:1:oncall:email"
    assert settled.promoted == (store.NotificationRef(mail.format(2), Channel.EMAIL),)
    rows = await _rows(engine)
    assert rows[mail.format(1)] == ("standby", None)  # OPS-1's SMS is still under way


def _quiet_planner() -> Planner:
    """li.wei (the assignee, who gets the warnings) is in quiet hours at NOW (04:15 UTC)."""
    section = copy.deepcopy(ESCALATING)
    quiet = {"from": "04:00", "to": "05:00", "time_zone": "UTC"}
    section["people"]["li.wei"]["quiet_hours"] = quiet
    return Planner(parse_config(section), AckLinks(b"k", "http://n", timedelta(hours=1)))


async def a_breach_supersedes_a_warning_still_deferred(engine: AsyncEngine) -> None:
    planner = _quiet_planner()
    warning = sla_event("warning:50", escalation="tiered")
    breach = sla_event("breach", escalation="tiered")
    events = [warning, breach, breach]  # the breach redelivered: nothing more happens
    record = partial(es.record_events, events=events, planner=planner, now=NOW)
    recorded = await es.in_transaction(engine, record)
    deferred = "jira:OPS-42:response:warning:50:0:li.wei:email"
    assert deferred in recorded.inserted
    assert [n.id for n in recorded.superseded_notifications] == [deferred]
    row = await _row(engine, deferred)
    assert (row["status"], row["last_error"]) == (
        "cancelled",
        "cancelled: superseded by the breach",
    )


async def an_ack_cancels_a_warning_deferred_by_quiet_hours(engine: AsyncEngine) -> None:
    planner = _quiet_planner()
    warning = sla_event("warning:50", escalation="tiered")
    record = partial(es.record_events, events=[warning], planner=planner, now=NOW)
    recorded = await es.in_transaction(engine, record)
    (deferred,) = recorded.inserted
    row = await _row(engine, deferred)
    assert (row["status"], row["next_attempt_at"]) == ("pending", NOW.replace(hour=5, minute=0))
    assert (
        row["note"]
        == f"deferred to {NOW.replace(hour=5, minute=0).isoformat()}: quiet hours of li.wei"
    )
    assert (await _claim(engine, planner.config)).send == []  # not due before 05:00
    ack = partial(es.acknowledge, key=("jira:OPS-42:response", 1), by="li.wei", now=NOW)
    acked = await es.in_transaction(engine, ack)
    assert acked is not None
    assert [n.id for n in acked.cancelled_notifications] == [deferred]


SCENARIOS: list[Scenario] = [
    what_is_over_the_limit_folds_into_one_digest,
    a_digest_speaks_the_language_of_what_it_holds,
    claimers_at_once_never_send_beyond_the_limit,
    a_failed_notification_hands_over_to_its_fallback,
    a_failed_digest_hands_its_notifications_over_to_their_fallbacks,
    an_ack_cancels_a_warning_deferred_by_quiet_hours,
    a_breach_supersedes_a_warning_still_deferred,
]


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(SCENARIOS)
