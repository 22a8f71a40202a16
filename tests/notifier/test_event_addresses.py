"""Event data never chooses where a message goes: configured addresses win, an address only
the event carries is used within ``notifier.event_addresses``, SMS to such a number are
capped, and records show the address only as its keyed hash.

Pure routing, configuration, cap and record tests, then the refused rows and the cap in
the database on SQLite and PostgreSQL (``test_event_addresses_service.py``: the whole
notifier).
"""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.factories import HASHER, NOW, sla_event
from notifier.harness import on_sqlite_and_postgresql
from slawatch_common.events import Channel, SlaEvent
from slawatch_common.runtime import ConfigError
from slawatch_notifier import folding, outbox, rate_limits, store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.addresses import AddressHasher, mask
from slawatch_notifier.config import (
    DEFAULT_SMS_PER_NUMBER,
    NotifierConfig,
    RateLimit,
    load_config,
    parse_config,
)
from slawatch_notifier.escalation import ChainSnapshot, Firing
from slawatch_notifier.planner import Planner
from slawatch_notifier.retry import Status
from slawatch_notifier.routing import Route, SkipReason, assignee_of, plan, route

REPO = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)

EVENT_PHONE = "+8613800000099"
"""A number only events carry."""

SECTION: dict[str, Any] = {
    "people": {
        "li.wei": {
            "name": "Li Wei",
            "email": "li.wei@example.com",
            "phone": "+8613800000011",
            "supervisor": "wang.fang",
        },
        "zhao.lei": {"name": "Zhao Lei", "email": "zhao.lei@example.com"},  # no phone
        "wang.fang": {"name": "Wang Fang", "email": "wang.fang@example.com"},
    },
    "escalations": {
        "standard": [
            {"on": "breach", "notify": [{"to": "assignee", "via": ["sms", "email"]}]},
        ],
    },
}
"""No ``event_addresses``: no source may give an address."""

TRUSTING: dict[str, Any] = {
    "sources": ["zammad"],
    "mail_domains": ["example.com", " Corp.Example.CN. "],
    "phone_prefixes": ["+86"],
}
"""Zammad's events may give addresses within example.com, corp.example.cn and +86."""


def _config(event_addresses: dict[str, Any] | None = None) -> NotifierConfig:
    section = copy.deepcopy(SECTION)
    if event_addresses is not None:
        section["event_addresses"] = event_addresses
    return parse_config(section)


def _event(assignee: dict[str, str], source: str = "jira", ticket_id: str = "OPS-42") -> SlaEvent:
    """A breach of a ticket of ``source`` assigned to ``assignee`` as the event names them."""
    document = sla_event("breach", assignee=assignee, ticket_id=ticket_id).model_dump(mode="json")
    document["data"]["ticket"]["source"] = source
    return SlaEvent.model_validate(document)


def _who(result: Route) -> list[tuple[str, str, str, str | None]]:
    return [(p.recipient, p.channel, p.address, p.fallback_of) for p in result.notifications]


def _refused(result: Route) -> list[tuple[str, str, str, str | None]]:
    return [
        (p.recipient, p.channel, p.address, p.refused.reason if p.refused else None)
        for p in result.refused
    ]


# --- routing ---------------------------------------------------------------------


@pytest.mark.parametrize("event_addresses", [None, TRUSTING], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("source", ["jira", "zammad"])
def test_a_configured_persons_addresses_win_over_the_events(
    event_addresses: dict[str, Any] | None, source: str
) -> None:
    config = _config(event_addresses)
    other = {"id": "li.wei", "email": "mallory@example.com", "phone": "+8613900000666"}
    result = route(_event(other, source), config, NOW)
    sms, _ = result.notifications
    assert _who(result) == [
        ("li.wei", Channel.SMS, "+8613800000011", None),
        ("li.wei", Channel.EMAIL, "li.wei@example.com", sms.notification_id),
    ]
    assert (result.skipped, result.refused) == ((), ())
    assigned = assignee_of(_event(other, source).data.ticket, config)
    assert assigned is not None
    assert assigned.person == config.people["li.wei"]  # name, supervisor: the configured ones


def test_an_address_a_configured_person_lacks_comes_only_from_a_trusted_source() -> None:
    event = _event({"id": "zhao.lei", "phone": EVENT_PHONE}, "jira")
    untrusted = route(event, _config(TRUSTING), NOW)
    # the SMS is refused and recorded; the email is not a standby for it: it goes at once
    assert _who(untrusted) == [("zhao.lei", Channel.EMAIL, "zhao.lei@example.com", None)]
    assert _refused(untrusted) == [("zhao.lei", Channel.SMS, "+86…99", SkipReason.UNTRUSTED_SOURCE)]
    assert [skip.reason for skip in untrusted.skipped] == [SkipReason.UNTRUSTED_SOURCE]

    trusted = route(
        _event({"id": "zhao.lei", "phone": EVENT_PHONE}, "zammad"), _config(TRUSTING), NOW
    )
    sms, _ = trusted.notifications
    assert _who(trusted) == [
        ("zhao.lei", Channel.SMS, EVENT_PHONE, None),
        ("zhao.lei", Channel.EMAIL, "zhao.lei@example.com", sms.notification_id),
    ]
    assert (trusted.skipped, trusted.refused) == ((), ())


def test_without_the_section_no_event_address_is_ever_used() -> None:
    stranger = {"id": "stranger", "email": "s@example.com", "phone": EVENT_PHONE}
    for source in ("jira", "zammad", "slawatch-engine"):
        result = route(_event(stranger, source), _config(), NOW)
        assert result.notifications == ()
        assert [skip.reason for skip in result.skipped] == [SkipReason.UNTRUSTED_SOURCE] * 2
        assert _refused(result) == [
            ("stranger", Channel.SMS, "+86…99", SkipReason.UNTRUSTED_SOURCE),
            ("stranger", Channel.EMAIL, "…@example.com", SkipReason.UNTRUSTED_SOURCE),
        ]


@pytest.mark.parametrize(
    ("email", "phone", "used"),
    [
        ("s@example.com", EVENT_PHONE, {Channel.SMS, Channel.EMAIL}),
        ("S.Tranger@EXAMPLE.com", "+86 (138) 0000-0099", {Channel.SMS, Channel.EMAIL}),
        ("s@corp.example.cn", EVENT_PHONE, {Channel.SMS, Channel.EMAIL}),
        ("s@evil.example", "+442079460000", set()),
        ("s@mail.example.com", "13800000099", set()),  # a subdomain; a national number
        ("s@example.com.evil.example", "+1 86 555 0100", set()),
    ],
)
def test_an_unconfigured_assignee_is_reached_only_within_the_allow_lists(
    email: str, phone: str, used: set[Channel]
) -> None:
    event = _event({"id": "stranger", "email": email, "phone": phone}, "zammad")
    result = route(event, _config(TRUSTING), NOW)
    assert {p.channel for p in result.notifications} == used
    assert {p.address for p in result.notifications} <= {email, phone}
    refused = {Channel.SMS, Channel.EMAIL} - used
    assert {p.channel for p in result.refused} == refused
    assert [s.reason for s in result.skipped] == [SkipReason.ADDRESS_NOT_ALLOWED] * len(refused)


def test_a_refusal_names_source_and_field_but_never_the_address() -> None:
    email, phone = "mallory.secret@evil.example", "+447700900123"
    event = _event({"id": "mallory", "email": email, "phone": phone}, "zammad")
    sms, mail = route(event, _config(TRUSTING), NOW).skipped
    assert "zammad:OPS-42" in sms.detail
    assert "phone" in sms.detail
    assert "phone_prefixes" in sms.detail
    assert "+44…23" in sms.detail
    assert "email" in mail.detail
    assert "mail_domains" in mail.detail
    assert "…@evil.example" in mail.detail
    for skip in (sms, mail):
        assert skip.refusal
        assert phone not in skip.detail
        assert "7700900" not in skip.detail
        assert "mallory.secret" not in skip.detail
    untrusted = route(_event({"id": "mallory", "phone": phone}, "jira"), _config(), NOW)
    skip, missing = untrusted.skipped  # the SMS refused; no email to fall back on
    assert (skip.reason, missing.reason) == (SkipReason.UNTRUSTED_SOURCE, SkipReason.NO_ADDRESS)
    assert "source 'jira'" in skip.detail
    assert phone not in skip.detail


def test_the_supervisor_of_an_assignee_comes_from_the_configuration_only() -> None:
    steps: Any = [{"on": "breach", "notify": [{"to": "supervisor:assignee", "via": "email"}]}]
    chain = ChainSnapshot.model_validate({"name": "adhoc", "steps": steps})
    config = _config(TRUSTING)
    event = _event({"id": "li.wei", "email": "mallory@example.com"}, "zammad")
    result = plan([Firing(0, "breach")], chain, event, config, NOW)
    assert _who(result) == [("wang.fang", Channel.EMAIL, "wang.fang@example.com", None)]
    stranger = _event({"id": "stranger", "email": "s@example.com"}, "zammad")
    nobody = plan([Firing(0, "breach")], chain, stranger, config, NOW)
    assert [s.reason for s in nobody.skipped] == [SkipReason.NO_SUPERVISOR]


def test_the_planner_keeps_a_refused_notification_with_nothing_worded_for_it() -> None:
    links = AckLinks(b"k" * 32, "https://slawatch.example", HOUR)
    event = _event({"id": "zhao.lei", "phone": EVENT_PHONE}, "jira")
    drafts = Planner(_config(TRUSTING), links).drafts([Firing(0, "breach")], _chain(), event, NOW)
    mail, sms = drafts.drafts
    assert (mail.planned.channel, mail.planned.refused) == (Channel.EMAIL, None)
    assert mail.content.text
    assert sms.planned.refused is not None
    assert (sms.content.subject, sms.content.text, sms.content.html) == ("", "", None)


def _chain() -> ChainSnapshot:
    return ChainSnapshot.model_validate(
        {"name": "standard", "steps": SECTION["escalations"]["standard"]}
    )


# --- configuration ---------------------------------------------------------------


def test_the_section_is_normalised_and_has_a_cap_by_default() -> None:
    allowed = _config(TRUSTING).event_addresses
    assert allowed.sources == ("zammad",)
    assert allowed.mail_domains == ("example.com", "corp.example.cn")
    assert allowed.phone_prefixes == ("+86",)
    assert allowed.sms_per_number == DEFAULT_SMS_PER_NUMBER == RateLimit(max=10, per=3600)
    assert _config().event_addresses.sources == ()
    capped = _config({**TRUSTING, "sms_per_number": {"max": 3, "per": "15m"}})
    assert capped.event_addresses.sms_per_number == RateLimit(max=3, per=900)


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"phone_prefixes": [86]}, "event_addresses.phone_prefixes.0: Value error, YAML read 86"),
        ({"phone_prefixes": ["0086"]}, "'0086' is not a phone prefix"),
        ({"phone_prefixes": ["+86 138"]}, "is not a phone prefix"),
        ({"mail_domains": ["@example.com"]}, "'@example.com' is not a mail domain"),
        ({"mail_domains": ["*.example.com"]}, "is not a mail domain"),
        ({"sms_per_number": {"max": 0, "per": "1h"}}, "sms_per_number.max"),
        ({"sms_per_recipient": {"max": 1, "per": "1h"}}, "event_addresses.sms_per_recipient"),
        ({"sources": "jira"}, "event_addresses.sources"),
    ],
)
def test_a_wrong_section_is_refused_with_its_path(section: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        _config(section)


def test_the_example_configuration_documents_the_section() -> None:
    config = load_config(REPO / "deploy/config/slawatch.yaml")
    assert config.event_addresses.sources == ("demo",)  # the demo of `make run` only


# --- the cap, pure ------------------------------------------------------------------


def test_only_a_number_an_event_gave_is_capped() -> None:
    config = _config({**TRUSTING, "sms_per_number": {"max": 2, "per": "1h"}})
    cap = RateLimit(max=2, per=3600)
    assert rate_limits.cap_for(config, "li.wei", Channel.SMS, "+86 138 0000 0011") is None
    assert rate_limits.cap_for(config, "li.wei", Channel.SMS, EVENT_PHONE) == cap
    assert rate_limits.cap_for(config, "stranger", Channel.SMS, EVENT_PHONE) == cap
    assert rate_limits.cap_for(config, "stranger", Channel.EMAIL, "s@example.com") is None
    assert rate_limits.cap_window("+86 (138) 0000-0099") == (EVENT_PHONE, "sms-number")


def test_a_cap_counts_fixed_windows_per_number() -> None:
    cap = RateLimit(max=2, per=3600)
    first = rate_limits.within_cap(None, cap, NOW)
    assert first is not None
    second = rate_limits.within_cap(first, cap, NOW + timedelta(minutes=10))
    assert second is not None
    assert rate_limits.within_cap(second, cap, NOW + timedelta(minutes=59)) is None
    fresh = rate_limits.within_cap(second, cap, NOW + HOUR)
    assert fresh is not None
    assert (fresh.started_at, fresh.sent) == (NOW + HOUR, 1)


# --- hashes and records -------------------------------------------------------------


def test_an_address_hash_is_keyed_and_ignores_spelling() -> None:
    hashed = HASHER(Channel.EMAIL, "Li.Wei@Example.com ")
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{16}", hashed)
    assert hashed == HASHER(Channel.EMAIL, "li.wei@example.com")
    assert HASHER(Channel.SMS, "+86 138-0000-0011") == HASHER(Channel.SMS, "+8613800000011")
    assert HASHER(Channel.SMS, "+8613800000011") != HASHER(Channel.SMS, "+8613800000012")
    assert AddressHasher(b"another ack secret")(Channel.EMAIL, "li.wei@example.com") != hashed
    assert (mask(Channel.SMS, "+8613800000011"), mask(Channel.SLACK, "ops-hook")) == (
        "+86…11",
        "…",
    )


def test_a_record_carries_the_recipient_and_the_hash_never_the_address() -> None:
    finished = store.Finished(
        id="jira:OPS-42:response:breach:1:oncall:sms",
        sla_event_id="jira:OPS-42:response:sla.breach:breach:1",
        clock_id="jira:OPS-42:response",
        stage="breach",
        ticket_source="jira",
        ticket_id="OPS-42",
        recipient="oncall",
        channel=Channel.SMS,
        address="+86 138 0000 0002",
        status=Status.FAILED,
        attempts=1,
        last_error="HTTP 400: +86 138 0000 0002 and +8613800000002 are not a mobile number",
        updated_at=NOW,
        digest_id=None,
        redrives=0,
    )
    record = outbox.record_for(finished, HASHER)
    hashed = HASHER(Channel.SMS, "+8613800000002")
    assert (record.data.recipient, record.data.address) == ("oncall", hashed)
    assert record.data.error == f"HTTP 400: {hashed} and {hashed} are not a mobile number"
    text = record.model_dump_json()
    assert "13800000002" not in text.replace(" ", "")
    assert "138 0000" not in text


# --- in the database ------------------------------------------------------------------


LINKS = AckLinks(b"k" * 32, "https://slawatch.example", HOUR)
CAPPED: dict[str, Any] = {**TRUSTING, "sms_per_number": {"max": 2, "per": "1h"}}


async def _store(engine: AsyncEngine, config: NotifierConfig, *events: SlaEvent) -> set[str]:
    planner = Planner(config, LINKS)
    drafts = [
        draft
        for event in events
        for draft in planner.drafts([Firing(0, "breach")], _chain(), event, NOW).drafts
    ]
    async with engine.begin() as conn:
        return await store.insert_new(conn, drafts, NOW)


async def _rows(engine: AsyncEngine) -> dict[str, sa.RowMapping]:
    table = store.notifications
    async with engine.connect() as conn:
        return {row["id"]: row for row in (await conn.execute(sa.select(table))).mappings()}


async def refused_address_is_kept_masked_and_never_claimed(engine: AsyncEngine) -> None:
    config = _config(TRUSTING)
    event = _event({"id": "zhao.lei", "phone": EVENT_PHONE}, "jira")
    inserted = await _store(engine, config, event)
    assert await _store(engine, config, event) == set()  # a repeat inserts nothing
    rows = await _rows(engine)
    assert set(rows) == inserted
    (sms,) = [row for row in rows.values() if row["channel"] == "sms"]
    (mail,) = [row for row in rows.values() if row["channel"] == "email"]
    assert (sms["status"], sms["address"], sms["attempts"]) == (Status.REFUSED, "+86…99", 0)
    assert sms["last_error"].startswith("jira:OPS-42: the phone of zhao.lei")
    assert "untrusted_source" in sms["note"]
    assert EVENT_PHONE not in f"{sms['last_error']} {sms['note']} {sms['content']}"
    assert (mail["status"], mail["fallback_of"]) == (Status.PENDING, None)
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW, {Channel.SMS: 10, Channel.EMAIL: 10})
        assert [item.channel for item in claimed] == [Channel.EMAIL]
        assert await store.unpublished(conn, 10) == []


async def sms_over_the_cap_of_an_event_number_is_refused(engine: AsyncEngine) -> None:
    config = _config(CAPPED)
    stranger = {"id": "stranger", "email": "s@example.com", "phone": EVENT_PHONE}
    events = [_event(stranger, "zammad", f"OPS-{n}") for n in range(1, 4)]
    # li.wei's own number is never capped, however many
    events += [_event({"id": "li.wei"}, "zammad", f"OPS-{n}") for n in range(4, 8)]
    await _store(engine, config, *events)
    caps = partial(rate_limits.cap_for, config)
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW, {Channel.SMS: 10})
        admission = await folding.admit(conn, claimed, folding.unlimited, NOW, caps=caps)
    sent = sorted((item.recipient, item.outbound.address) for item in admission.send)
    assert sent == [("li.wei", "+8613800000011")] * 4 + [("stranger", EVENT_PHONE)] * 2
    (refused,) = admission.refused
    assert refused.claimed.recipient == "stranger"
    assert "2 SMS per 3600s" in refused.reason
    assert "sms_per_number" in refused.reason
    assert EVENT_PHONE not in refused.reason
    (promoted,) = refused.promoted
    assert promoted.channel == Channel.EMAIL
    rows = await _rows(engine)
    row = rows[refused.claimed.id]
    assert (row["status"], row["attempts"], row["last_error"]) == (
        Status.REFUSED,
        0,
        refused.reason,
    )
    assert rows[promoted.id]["status"] == Status.PENDING
    assert rows[promoted.id]["fallback_of"] == refused.claimed.id
    window = rate_limits.cap_window(EVENT_PHONE)
    async with engine.connect() as conn:
        query = sa.select(store.rate_windows).where(
            store.rate_windows.c.recipient == window[0],
            store.rate_windows.c.channel == window[1],
        )
        counted = (await conn.execute(query)).mappings().one()
    assert (counted["max"], counted["sent"], counted["ends_at"]) == (2, 2, NOW + HOUR)

    # the next hour, the number may have its SMS again
    await _store(engine, config, _event(stranger, "zammad", "OPS-9"))
    async with engine.begin() as conn:
        claimed = await store.claim_due(conn, NOW + HOUR, {Channel.SMS: 10})
        later = await folding.admit(conn, claimed, folding.unlimited, NOW + HOUR, caps=caps)
    assert [(item.recipient, item.channel) for item in later.send] == [("stranger", Channel.SMS)]
    assert later.refused == []


test_on_sqlite, test_on_postgresql = on_sqlite_and_postgresql(
    [
        refused_address_is_kept_masked_and_never_claimed,
        sms_over_the_cap_of_an_event_number_is_refused,
    ]
)
