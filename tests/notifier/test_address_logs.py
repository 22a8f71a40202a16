"""No log line of a send shows the address: a provider's words that quote it show its hash.

A real SMTP relay refuses each recipient first with a 450 and then with a 550,
quoting the address (``<li.wei@example.com>``, once in capitals); another mail
goes to a text that is not one plain address (``UnusableAddressError`` quotes
it); an SMS port raises with the number in its message, with and without its
``+``. The log lines of the retries, the failures and the traceback carry the
address's keyed hash, and no line of the log, at any level, the address.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import CONFIG, HASHER, NOW, sla_event
from notifier.harness import migrated
from slawatch_common.events import Channel
from slawatch_notifier import store
from slawatch_notifier.addresses import AddressHasher, mask, redacted
from slawatch_notifier.channels.email import EmailChannel
from slawatch_notifier.channels.port import Outbound, Outcome
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import parse_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.retry import RetryPolicy
from slawatch_notifier.routing import route
from slawatch_notifier.settings import NotifierSettings
from slawatch_notifier.templates import render
from support.processes import started
from support.smtp import RefusingRelay

MAIL = "li.wei@example.com"
UNUSABLE = "Li Wei <Li.Wei@example.com>"
PHONE = "+8613800000002"
"""The on-call engineer's number in ``CONFIG``."""

REPLIES = (
    "450 4.2.1 <{address}>: Recipient address rejected: mailbox busy",
    "550 5.1.1 <{upper}>: Recipient address rejected: User unknown in virtual mailbox table",
)


class Raising:
    """An SMS port whose every send raises, quoting the number as some providers take it."""

    async def send(self, outbound: Outbound) -> Outcome:
        number = outbound.address
        raise ValueError(f"no route to {number.removeprefix('+')} (asked for {number})")


async def _insert(engine: AsyncEngine) -> dict[str, str]:
    """A warning mail to li.wei (OPS-1) and one to the unusable address (OPS-2), a breach
    (OPS-3: an SMS to on-call and a mail to the supervisor); their ids by ticket and channel."""
    config = parse_config(CONFIG)
    events = [
        sla_event("warning:75", ticket_id="OPS-1"),
        sla_event("warning:75", ticket_id="OPS-2"),
        sla_event("breach", ticket_id="OPS-3"),
    ]
    drafts = [
        store.Draft(p, render(p)) for e in events for p in route(e, config, NOW).notifications
    ]
    async with engine.begin() as conn:
        await store.insert_new(conn, drafts, NOW)
        table = store.notifications
        await conn.execute(
            sa.update(table).where(table.c.ticket_id == "OPS-2").values(address=UNUSABLE)
        )
    return {
        f"{d.planned.event.data.ticket.id}:{d.planned.channel}": d.planned.notification_id
        for d in drafts
    }


async def _statuses(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        table = store.notifications
        rows = await conn.execute(sa.select(table.c.id, table.c.status))
        return {row.id: row.status for row in rows}


@pytest.mark.smtp
async def test_a_refusal_that_quotes_the_address_is_logged_with_its_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with started(RefusingRelay(*REPLIES)) as relay:
        settings = NotifierSettings(smtp_port=relay.port, send_timeout_s=5)
        async with migrated(f"sqlite+aiosqlite:///{tmp_path}/notifier.db") as engine:
            ids = await _insert(engine)
            email = EmailChannel(settings, SystemClock())
            dispatcher = Dispatcher(
                engine,
                {Channel.EMAIL: email, Channel.SMS: Raising()},
                RetryPolicy(base_s=0.05, cap_s=0.1),
                metrics=NotifierMetrics(CollectorRegistry()),
                clock=SystemClock(),
                rand=random.Random(1),
                doorbell=asyncio.Event(),
                outbox_bell=asyncio.Event(),
                concurrency={Channel.EMAIL: 2, Channel.SMS: 1},
                hasher=HASHER,
            )
            running = asyncio.create_task(dispatcher.run())
            try:
                watched = [ids["OPS-1:email"], ids["OPS-2:email"], ids["OPS-3:sms"]]
                async with asyncio.timeout(30):
                    while True:
                        statuses = await _statuses(engine)
                        if all(statuses[i] == "failed" for i in watched):
                            break
                        await asyncio.sleep(0.05)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await email.aclose()
    assert relay.asked[MAIL] == 2  # a 450, retried, then a 550

    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("slawatch")]

    def about(notification_id: str) -> list[tuple[int, str]]:
        return [(level, line) for level, line in lines if notification_id in line]

    mail_hash = HASHER(Channel.EMAIL, MAIL)
    retried = [line for level, line in about(ids["OPS-1:email"]) if line.startswith("retrying")]
    assert len(retried) == 1
    assert f"450, '4.2.1 <{mail_hash}>: Recipient address rejected: mailbox busy'" in retried[0]
    failed = [line for level, line in about(ids["OPS-1:email"]) if level == logging.WARNING]
    assert len(failed) == 1
    assert f"failed after 2 attempt(s): SMTP 550 5.1.1 <{mail_hash}>:" in failed[0]

    (unusable,) = [line for level, line in about(ids["OPS-2:email"]) if level == logging.WARNING]
    assert f"not a usable email address: '{HASHER(Channel.EMAIL, UNUSABLE)}'" in unusable

    phone_hash = HASHER(Channel.SMS, PHONE)
    (traceback,) = [line for level, line in about(ids["OPS-3:sms"]) if level == logging.ERROR]
    assert "Traceback (most recent call last)" in traceback
    assert f"ValueError: no route to {phone_hash} (asked for {phone_hash})" in traceback

    everything = "\n".join(line for _, line in lines).lower()
    for address in (MAIL, UNUSABLE, PHONE, PHONE.removeprefix("+")):
        assert address.lower() not in everything, address


def test_every_spelling_of_an_address_gives_way_to_its_hash() -> None:
    hasher = AddressHasher(b"a key of the test")
    mail = hasher(Channel.EMAIL, "Li.Wei@Example.com")
    words = "550 <li.wei@example.com> and <LI.WEI@EXAMPLE.COM>: 'Li.Wei@Example.com' unknown"
    assert hasher.redact(Channel.EMAIL, "Li.Wei@Example.com", words) == (
        f"550 <{mail}> and <{mail}>: '{mail}' unknown"
    )
    phone = hasher(Channel.SMS, "+86 138-0000-0099")
    words = "invalid: +8613800000099, 8613800000099, +86 138-0000-0099"
    assert hasher.redact(Channel.SMS, "+86 138-0000-0099", words) == (
        f"invalid: {phone}, {phone}, {phone}"
    )
    # as an exception's repr quotes it, control characters escaped
    odd = "li.wei@example.com\r\nBcc: x@y.z"
    assert hasher.redact(Channel.EMAIL, odd, f"not usable: {odd!r}") == (
        f"not usable: '{hasher(Channel.EMAIL, odd)}'"
    )
    # a blank address leaves the words alone; without a hasher the masked form stands in
    assert hasher.redact(Channel.EMAIL, " ", "SMTP 550 < >") == "SMTP 550 < >"
    masked = mask(Channel.EMAIL, "li.wei@example.com")
    assert redacted("<li.wei@example.com>", Channel.EMAIL, "li.wei@example.com", None) == (
        f"<{masked}>"
    )
