"""The pages of an ack link over a real database: following it (GET) shows what it would
acknowledge and changes nothing, its form (POST) acknowledges; bad links are refused on
both; no log keeps a token; ``by`` of the API is one line.

The escalations are recorded as intake records them (the ``tiered`` chain: a breach
texts L2's on-call, zhao.lei at ``NOW``, and schedules the supervisor's step); the
routes run in an app of their own, talked to in-process, or served by uvicorn as
``main`` serves the notifier (the access-log test).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import ESCALATING, NOW, sla_event, slots
from notifier.harness import migrated, on_sqlite_and_postgresql
from slawatch_common.auth import ApiToken, Scope, TokenBook
from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier import ackpage, folding, store
from slawatch_notifier import escalation_store as es
from slawatch_notifier.acklink import AckClaim, AckLinks, DigestClaim, sign
from slawatch_notifier.acks import BY_MAX_CHARS, acks_router
from slawatch_notifier.config import NotifierConfig, parse_config
from slawatch_notifier.main import RedactAckTokens, server_config
from slawatch_notifier.messages import LANGUAGES, placeholders
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.planner import Planner
from slawatch_notifier.rate_limits import limit_for
from slawatch_notifier.settings import NotifierSettings

ACK_TOKEN = "acks-writer-token"
SECRET = b"link-page-secret"
LINKS = AckLinks(SECRET, "http://notifier", timedelta(hours=24))
CONFIG = parse_config(ESCALATING)
CLOCK = "jira:OPS-42:response"
WAITING_STEP = f"{CLOCK}:breach:2"
FORM = '<form method="post"'


def _path(url: str) -> str:
    return urlsplit(url).path


CONSOLE_TOKEN = "token-of-the-ops-console"
"""A named token (``SLAWATCH_API_TOKENS``): acknowledgements record its name."""
ONCALL_LINK = _path(LINKS.url(CLOCK, 1, "zhao.lei", NOW))  # zhao.lei reads zh-CN
ASSIGNEE_LINK = _path(LINKS.url(CLOCK, 1, "li.wei", NOW))


@dataclass
class Acks:
    """The ack routes over ``engine``, their client and their metrics."""

    client: httpx.AsyncClient
    registry: CollectorRegistry

    def link_acks(self) -> float:
        value = self.registry.get_sample_value("slawatch_notifier_acks_total", {"method": "link"})
        return value or 0.0


def _app(engine: AsyncEngine, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    console = ApiToken(name="ops-console", token=CONSOLE_TOKEN, scopes=(Scope.ACKS_WRITE,))
    writers = TokenBook.of([console], plain={Scope.ACKS_WRITE: [ACK_TOKEN]})
    app.include_router(
        acks_router(lambda: engine, SECRET, NotifierMetrics(registry), lambda: NOW, writers)
    )
    return app


@asynccontextmanager
async def _acks(engine: AsyncEngine) -> AsyncIterator[Acks]:
    registry = CollectorRegistry()
    transport = httpx.ASGITransport(app=_app(engine, registry))
    headers = {"Authorization": f"Bearer {ACK_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://notifier", headers=headers
    ) as client:
        yield Acks(client, registry)


async def _record(engine: AsyncEngine, *events: SlaEvent, config: NotifierConfig = CONFIG) -> None:
    planner = Planner(config, LINKS)
    await es.in_transaction(
        engine, partial(es.record_events, events=list(events), planner=planner, now=NOW)
    )


def _breach(ticket_id: str = "OPS-42", title: str | None = None) -> SlaEvent:
    event = sla_event("breach", escalation="tiered", ticket_id=ticket_id)
    if title is None:
        return event
    data = event.model_dump(mode="json")
    data["data"]["ticket"]["title"] = title
    return SlaEvent.model_validate(data)


async def _snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Every escalation, scheduled step and notification as stored."""
    async with engine.connect() as conn:
        found: dict[str, Any] = {}
        for table in (store.escalations, store.scheduled_steps, store.notifications):
            rows = (await conn.execute(sa.select(table))).mappings()
            found[table.name] = sorted((dict(row) for row in rows), key=repr)
        return found


async def _escalations(engine: AsyncEngine) -> dict[str, tuple[str, str | None]]:
    table = store.escalations
    async with engine.connect() as conn:
        query = sa.select(table.c.clock_id, table.c.status, table.c.acknowledged_by)
        return {
            row.clock_id: (row.status, row.acknowledged_by) for row in await conn.execute(query)
        }


async def _steps(engine: AsyncEngine) -> dict[str, tuple[str, str | None]]:
    table = store.scheduled_steps
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(table.c.id, table.c.status, table.c.reason))
        return {row.id: (row.status, row.reason) for row in rows}


def _clock_of(notification_id: str) -> str:
    return notification_id.partition(":breach:")[0]


def _assert_page(answer: httpx.Response, status_code: int) -> str:
    assert answer.status_code == status_code, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-robots-tag"].startswith("noindex")
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "<script" not in answer.text.lower()
    return answer.text


# --- scenarios, each on SQLite and on PostgreSQL ---------------------------------------


async def following_a_link_shows_the_escalation_and_changes_nothing(engine: AsyncEngine) -> None:
    await _record(engine, sla_event("warning:50", escalation="tiered"), _breach())
    before = await _snapshot(engine)
    async with _acks(engine) as acks:
        pages = [await acks.client.get(ONCALL_LINK) for _ in range(3)]
        english = await acks.client.get(ASSIGNEE_LINK)
        acked = acks.link_acks()

    assert await _snapshot(engine) == before
    assert await _escalations(engine) == {CLOCK: ("active", None)}
    assert await _steps(engine) == {WAITING_STEP: ("pending", None)}
    assert acked == 0
    page = _assert_page(pages[0], 200)
    assert all(p.text == page for p in pages)
    for shown in ("jira:OPS-42", "Core switch down in building B", "Zhao Lei（zhao.lei）"):
        assert shown in page
    # zhao.lei's notifications are in Chinese: so is the page
    for word in ("确认收到此升级？", "已超时", "响应", "尚未确认", "打开此页面不会改变任何状态"):
        assert word in page
    assert page.count(FORM) == 1
    assert "<button" in page
    text = _assert_page(english, 200)
    for shown in ("Acknowledge this escalation?", "This link was sent to Li Wei (li.wei).", FORM):
        assert shown in text


async def posting_the_form_acknowledges_once(engine: AsyncEngine) -> None:
    await _record(engine, _breach())
    async with _acks(engine) as acks:
        for _ in range(3):
            _assert_page(await acks.client.get(ONCALL_LINK), 200)
        done = await acks.client.post(ONCALL_LINK)
        after_ack = await _snapshot(engine)
        again = await acks.client.post(ONCALL_LINK)
        shown = await acks.client.get(ONCALL_LINK)
        acked = acks.link_acks()

    assert acked == 1
    assert await _snapshot(engine) == after_ack  # the second POST changed nothing
    assert await _escalations(engine) == {CLOCK: ("acknowledged", "zhao.lei")}
    assert await _steps(engine) == {WAITING_STEP: ("cancelled", "acknowledged")}
    assert "已确认收到" in _assert_page(done, 200)
    assert "已代表 Zhao Lei（zhao.lei） 确认收到" in done.text
    assert "此前已确认收到" in _assert_page(again, 200)
    page = _assert_page(shown, 200)
    assert FORM not in page
    assert "已由 zhao.lei 于 2026-11-26 04:15:00 UTC（北京时间 2026-11-26 12:15:00） 确认" in page


async def event_text_is_escaped_in_the_page(engine: AsyncEngine) -> None:
    title = '<script>alert("ack")</script> & <img src=x onerror=alert(1)>'
    await _record(engine, _breach(title=title))
    async with _acks(engine) as acks:
        shown = await acks.client.get(ONCALL_LINK)
        done = await acks.client.post(ONCALL_LINK)

    for answer in (shown, done):
        page = _assert_page(answer, 200)
        assert "<img" not in page
        escaped = "&lt;script&gt;alert(&quot;ack&quot;)&lt;/script&gt; &amp; &lt;img src=x"
        assert escaped in page


async def bad_links_are_refused_on_get_and_post(engine: AsyncEngine) -> None:
    await _record(engine, _breach())
    before = await _snapshot(engine)
    genuine = sign(AckClaim(CLOCK, 1, "zhao.lei", NOW + timedelta(hours=1)), SECRET)
    other = sign(AckClaim("jira:OPS-43:response", 1, "zhao.lei", NOW + timedelta(hours=1)), SECRET)
    later = NOW + timedelta(hours=1)
    tokens = {
        "expired": (sign(AckClaim(CLOCK, 1, "zhao.lei", NOW - timedelta(seconds=1)), SECRET), 410),
        "spliced": (f"{other.split('.')[0]}.{genuine.split('.')[1]}", 403),
        "forged": (sign(AckClaim(CLOCK, 1, "zhao.lei", later), b"a guess"), 403),
        "malformed": ("nodot", 422),
        "unknown clock": (sign(AckClaim("jira:OPS-1:response", 1, "x", later), SECRET), 404),
        "empty digest": (sign(DigestClaim("digest:x:sms:1", "x", later), SECRET), 404),
    }
    answers: dict[tuple[str, str], httpx.Response] = {}
    async with _acks(engine) as acks:
        for name, (token, _) in tokens.items():
            answers[name, "GET"] = await acks.client.get(f"/v1/acks/{token}")
            answers[name, "POST"] = await acks.client.post(f"/v1/acks/{token}")
        acked = acks.link_acks()

    assert {key: answer.status_code for key, answer in answers.items()} == {
        (name, method): expected
        for name, (_, expected) in tokens.items()
        for method in ("GET", "POST")
    }
    for (name, _), answer in answers.items():
        page = _assert_page(answer, tokens[name][1])
        assert "This link cannot be used" in page
        assert "此链接无法使用" in page
        assert FORM not in page
    assert "The link has expired" in answers["expired", "GET"].text
    assert "signature does not match" in answers["spliced", "POST"].text
    assert await _snapshot(engine) == before
    assert acked == 0


async def a_digest_link_lists_and_acknowledges_what_was_folded(engine: AsyncEngine) -> None:
    section = copy.deepcopy(ESCALATING)
    section["rate_limits"] = {"sms": {"max": 1, "per": "1m"}}
    config = parse_config(section)
    await _record(engine, *(_breach(f"OPS-{n}") for n in (1, 2, 3)), config=config)
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW, slots(10))
        admitted = await folding.admit(conn, claimed, partial(limit_for, config), NOW)
    (alone,) = [_clock_of(c.id) for c in admitted.send if c.channel is Channel.SMS]
    folded = sorted(_clock_of(f.claimed.id) for f in admitted.folded)
    assert len(folded) == 2
    (digest,) = {f.digest_id for f in admitted.folded}
    link = _path(LINKS.digest_url(digest, "zhao.lei", NOW))

    async with _acks(engine) as acks:
        shown = await acks.client.get(link)
        untouched = await _escalations(engine)
        done = await acks.client.post(link)

    page = _assert_page(shown, 200)
    for clock_id in folded:
        assert f"{clock_id.removesuffix(':response')}<" in page
    assert f"{alone.removesuffix(':response')}<" not in page
    assert "确认收到这 2 个升级？" in page
    assert "全部确认收到（2 个）" in page
    assert page.count(FORM) == 1
    assert set(untouched.values()) == {("active", None)}
    _assert_page(done, 200)
    assert await _escalations(engine) == {
        alone: ("active", None),
        **dict.fromkeys(folded, ("acknowledged", "zhao.lei")),
    }
    steps = await _steps(engine)
    assert steps[f"{alone}:breach:2"] == ("pending", None)
    assert [steps[f"{clock_id}:breach:2"] for clock_id in folded] == [
        ("cancelled", "acknowledged")
    ] * 2


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(
    [
        following_a_link_shows_the_escalation_and_changes_nothing,
        posting_the_form_acknowledges_once,
        event_text_is_escaped_in_the_page,
        bad_links_are_refused_on_get_and_post,
        a_digest_link_lists_and_acknowledges_what_was_folded,
    ]
)


# --- logs ---------------------------------------------------------------------------


async def test_the_access_log_shows_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _record(engine, _breach())
        caplog.clear()  # from here on: what serving the link logs
        token = ONCALL_LINK.rsplit("/", 1)[1]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        app = _app(engine, CollectorRegistry())
        server = uvicorn.Server(server_config(app, NotifierSettings()))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not serving.done(), "the server did not start"
                await asyncio.sleep(0.02)
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            async with httpx.AsyncClient(base_url=base) as client:
                shown = await client.get(f"{ONCALL_LINK}?utm_source=mail")
                done = await client.post(ONCALL_LINK)
        finally:
            server.should_exit = True
            await serving
            sock.close()

    assert (shown.status_code, done.status_code) == (200, 200)
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any('"GET /v1/acks/<token> HTTP/1.1" 200' in line for line in access), access
    assert any('"POST /v1/acks/<token> HTTP/1.1" 200' in line for line in access), access
    # what the service logged (the test's own HTTP client logs the URL it requests)
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in served)
    assert "acknowledged by zhao.lei (link)" in logged
    for part in token.split("."):
        assert part not in logged


def test_a_token_in_any_part_of_a_log_record_is_taken_out() -> None:
    token = ONCALL_LINK.rsplit("/", 1)[1]
    records = [
        logging.LogRecord("a", logging.INFO, __file__, 1, f"GET {ONCALL_LINK}", None, None),
        logging.LogRecord("b", logging.INFO, __file__, 1, "%s %s", ("GET", ONCALL_LINK), None),
        # an argument that is no string, whose text carries a link (a driver's statement)
        logging.LogRecord(
            "c", logging.DEBUG, __file__, 1, "run %s", ({"text": ONCALL_LINK},), None
        ),
        logging.LogRecord("d", logging.INFO, __file__, 1, "POST /v1/acks 200", None, None),
    ]
    lines = [r.getMessage() for r in records if RedactAckTokens().filter(r)]
    assert lines == [
        "GET /v1/acks/<token>",
        "GET /v1/acks/<token>",
        "run {'text': '/v1/acks/<token>'}",
        "POST /v1/acks 200",
    ]
    assert not any(token in line for line in lines)


async def test_by_of_the_api_is_one_line_of_bounded_length(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slawatch_notifier.acks")
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _record(engine, *(_breach(f"OPS-{n}") for n in (1, 2)))
        async with _acks(engine) as acks:
            forged = "Li Wei\r\n2026-11-26 04:15:00 INFO fake: all clear\x1b[2J\u202e"
            first = await acks.client.post(
                "/v1/acks", json={"clock_id": "jira:OPS-1:response", "by": forged}
            )
            second = await acks.client.post(
                "/v1/acks", json={"clock_id": "jira:OPS-2:response", "by": "x" * 450}
            )
            blank = await acks.client.post(
                "/v1/acks", json={"clock_id": "jira:OPS-2:response", "by": "\r\n\t\u2028"}
            )
        stored = await _escalations(engine)

    assert (first.status_code, second.status_code) == (200, 200)
    one_line = "Li Wei 2026-11-26 04:15:00 INFO fake: all clear [2J"
    assert first.json()["escalations"][0]["acknowledged_by"] == one_line
    assert stored["jira:OPS-1:response"] == ("acknowledged", one_line)
    assert stored["jira:OPS-2:response"] == ("acknowledged", "x" * BY_MAX_CHARS)
    assert blank.status_code == 422
    assert blank.json()["detail"][0]["loc"] == ["body", "by"]
    lines = [r.getMessage() for r in caplog.records if r.name == "slawatch_notifier.acks"]
    assert f"escalation jira:OPS-1:response#1 acknowledged by {one_line} (api)" in lines
    assert not any(char in line for line in lines for char in "\r\n\x1b\u202e")


# --- words ------------------------------------------------------------------------


def test_the_pages_have_every_word_in_every_language() -> None:
    assert set(ackpage.WORDS) == set(LANGUAGES)
    english = ackpage.WORDS["en"]
    for locale, words in ackpage.WORDS.items():
        assert set(words) == set(english), locale
        for key, template in words.items():
            assert placeholders(template) == placeholders(english[key]), (locale, key)


async def test_an_api_ack_records_the_credential_it_came_with(tmp_path: Path) -> None:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
        await _record(engine, *(_breach(f"OPS-{n}") for n in (1, 2, 3)))
        async with _acks(engine) as acks:
            console = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
            named = await acks.client.post(
                "/v1/acks",
                json={"clock_id": "jira:OPS-1:response", "by": "Li Wei (phone)"},
                headers=console,
            )
            long = await acks.client.post(
                "/v1/acks",
                json={"clock_id": "jira:OPS-2:response", "by": "y" * 400},
                headers=console,
            )
            unnamed = await acks.client.post(
                "/v1/acks", json={"clock_id": "jira:OPS-3:response", "by": "li.wei"}
            )
        stored = await _escalations(engine)

    assert (named.status_code, long.status_code, unnamed.status_code) == (200, 200, 200)
    assert stored["jira:OPS-1:response"] == ("acknowledged", "Li Wei (phone) via ops-console")
    kept = stored["jira:OPS-2:response"][1]
    assert kept is not None
    assert kept.endswith(" via ops-console")
    assert len(kept) <= BY_MAX_CHARS
    assert stored["jira:OPS-3:response"] == ("acknowledged", "li.wei")
