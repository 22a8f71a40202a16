"""Channels: message building, outcome classification, and real SMTP/HTTP servers."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiosmtpd.controller import Controller
from deploy.dev.sms_sink import SmsSink

from notifier.factories import sla_event
from slawatch_common.events import SlaEvent
from slawatch_notifier.channels.email import (
    EmailChannel,
    UnusableAddressError,
    build_message,
    classify_smtp_error,
    classify_smtp_reply,
    message_id,
    thread_id,
    usable_address,
)
from slawatch_notifier.channels.port import Delivered, Outbound, Permanent, Retryable
from slawatch_notifier.channels.sms import SmsChannel, classify_response, request_body
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.messages import CHINESE, ENGLISH, Language
from slawatch_notifier.sanitize import SUBJECT_MAX_CHARS
from slawatch_notifier.settings import NotifierSettings
from slawatch_notifier.templates import Content, render_email
from support.net import free_port
from support.smtp import SmtpSink

NOW = datetime(2026, 11, 26, 0, 26, 15, tzinfo=UTC)


def _outbound(notification_id: str = "jira:OPS-42:response:warning:75:li.wei:email") -> Outbound:
    return Outbound(
        notification_id=notification_id,
        ticket_source="jira",
        ticket_id="OPS-42",
        recipient_name="Li Wei",
        address="li.wei@example.com",
        content=Content("subject", "plain text", "<p>html</p>"),
    )


# --- email, pure -------------------------------------------------------------


def test_message_has_text_and_html_alternatives_and_stable_ids() -> None:
    outbound = _outbound()
    message = build_message(outbound, sender="slawatch <slawatch@example.com>", now=NOW)
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.walk() if not part.is_multipart()]
    assert types == ["text/plain", "text/html"]
    assert message["Message-ID"] == message_id(outbound.notification_id, "example.com")
    assert message["In-Reply-To"] == thread_id("jira", "OPS-42", "example.com")
    assert message["References"] == message["In-Reply-To"]
    assert message["To"] == "Li Wei <li.wei@example.com>"
    again = build_message(outbound, sender="slawatch <slawatch@example.com>", now=NOW)
    assert again["Message-ID"] == message["Message-ID"]


def test_a_resend_has_the_same_bytes_but_for_the_date() -> None:
    outbound = _outbound()
    first = build_message(outbound, sender="slawatch <slawatch@example.com>", now=NOW)
    later = NOW + timedelta(minutes=5)
    resend = build_message(outbound, sender="slawatch <slawatch@example.com>", now=later)

    def lines(message: Message) -> list[bytes]:
        return [line for line in message.as_bytes().splitlines() if not line.startswith(b"Date:")]

    assert lines(first) == lines(resend)
    boundary = first.get_boundary()
    assert boundary is not None
    parts = [part.get_payload() for part in first.walk() if not part.is_multipart()]
    assert all(boundary not in part for part in parts)
    # parsed back, the parts are what was rendered
    parsed = message_from_bytes(first.as_bytes())
    texts = [p.get_payload(decode=True) for p in parsed.walk() if not p.is_multipart()]
    assert texts == [b"plain text", b"<p>html</p>"]


def test_ids_differ_per_notification_and_threads_per_ticket() -> None:
    assert message_id("a:warning:50:x:email", "d") != message_id("a:warning:75:x:email", "d")
    assert thread_id("jira", "OPS-1", "d") != thread_id("jira", "OPS-2", "d")
    assert message_id("a:b", "d").startswith("<")
    assert message_id("a:b", "d").endswith("@d>")


@pytest.mark.parametrize(
    ("code", "kind"), [(421, Retryable), (451, Retryable), (550, Permanent), (554, Permanent)]
)
def test_smtp_reply_classification(code: int, kind: type) -> None:
    assert isinstance(classify_smtp_reply(code, "text"), kind)


def test_smtp_error_classification() -> None:
    assert isinstance(classify_smtp_error(aiosmtplib.SMTPServerDisconnected("gone")), Retryable)
    assert isinstance(classify_smtp_error(aiosmtplib.SMTPConnectError("refused")), Retryable)
    assert isinstance(classify_smtp_error(aiosmtplib.SMTPReadTimeoutError("slow")), Retryable)
    assert isinstance(classify_smtp_error(aiosmtplib.SMTPNotSupported("no tls")), Permanent)
    assert isinstance(classify_smtp_error(aiosmtplib.SMTPDataError(552, "big")), Permanent)
    refused = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "busy", "x")])
    assert isinstance(classify_smtp_error(refused), Retryable)


# --- SMS, pure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Delivered),
        (202, Delivered),
        (408, Retryable),
        (429, Retryable),
        (500, Retryable),
        (503, Retryable),
        (400, Permanent),
        (401, Permanent),
        (404, Permanent),
        (422, Permanent),
    ],
)
def test_http_status_classification(status: int, kind: type) -> None:
    assert isinstance(classify_response(status, b"{}"), kind)


def test_provider_id_comes_from_the_json_answer() -> None:
    assert classify_response(200, b'{"id": "abc"}') == Delivered("abc")
    assert classify_response(200, b"not json") == Delivered(None)


def test_request_body_carries_the_idempotency_key() -> None:
    outbound = _outbound("n1")
    assert request_body(outbound) == {
        "to": "li.wei@example.com",
        "message": "plain text",
        "idempotency_key": "n1",
    }


# --- SMS against the development provider ------------------------------------


@pytest.fixture
def sms_sink() -> Iterator[SmsSink]:
    sink = SmsSink(token="t0ken")
    sink.start()
    yield sink
    sink.stop()


async def test_sms_channel_against_the_sink(sms_sink: SmsSink) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        channel = SmsChannel(client, sms_sink.url, "t0ken")
        assert await channel.send(_outbound("n1")) == Delivered("sms-1")
        sms_sink.fail_next(1, 503)
        assert isinstance(await channel.send(_outbound("n2")), Retryable)
        sms_sink.fail_next(1, 400)
        assert isinstance(await channel.send(_outbound("n3")), Permanent)
        wrong_token = SmsChannel(client, sms_sink.url, "wrong")
        assert isinstance(await wrong_token.send(_outbound("n4")), Permanent)
        unreachable = SmsChannel(client, f"http://127.0.0.1:{free_port()}/sms", "t0ken")
        assert isinstance(await unreachable.send(_outbound("n5")), Retryable)
    assert [(s.to, s.idempotency_key) for s in sms_sink.received()] == [
        ("li.wei@example.com", "n1")
    ]


# --- email against real SMTP servers -----------------------------------------


class _Refuser:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        return self.reply


def _settings(port: int) -> NotifierSettings:
    return NotifierSettings(smtp_port=port, send_timeout_s=5)


@pytest.mark.smtp
async def test_email_channel_delivers_to_a_real_server(smtp_sink: SmtpSink) -> None:
    outcome = await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(_outbound())
    (_, recipients, message) = smtp_sink.snapshot()[0]
    assert recipients == ["li.wei@example.com"]
    assert outcome == Delivered(message["Message-ID"])


class _Peers:
    """Accepts every message and notes the client port it came over."""

    def __init__(self) -> None:
        self.ports: list[int] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.ports.append(session.peer[1])
        return "250 OK"


@pytest.mark.smtp
async def test_email_channel_reuses_its_connection_and_survives_a_server_restart() -> None:
    port = free_port()
    peers = _Peers()
    channel = EmailChannel(_settings(port), SystemClock())
    controller = Controller(peers, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = [await channel.send(_outbound(f"n-{n}")) for n in range(3)]
        controller.stop()  # the server goes away: the idle connection is dead
        controller = Controller(peers, hostname="127.0.0.1", port=port)
        controller.start()
        after = await channel.send(_outbound("n-3"))
        await channel.aclose()
    finally:
        controller.stop()
    assert all(isinstance(outcome, Delivered) for outcome in [*first, after])
    assert len(set(peers.ports[:3])) == 1  # one connection carried the first three
    assert peers.ports[3] != peers.ports[0]  # a fresh one after the restart
    assert len(peers.ports) == 4


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("reply", "kind"),
    [("550 5.1.1 No such user", Permanent), ("451 4.3.0 Try again later", Retryable)],
)
async def test_email_channel_classifies_real_refusals(reply: str, kind: type) -> None:
    port = free_port()
    controller = Controller(_Refuser(reply), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        outcome = await EmailChannel(_settings(port), SystemClock()).send(_outbound())
    finally:
        controller.stop()
    assert isinstance(outcome, kind)
    assert reply.split()[0] in str(outcome)


async def test_email_channel_unreachable_server_is_retryable() -> None:
    outcome = await EmailChannel(_settings(free_port()), SystemClock()).send(_outbound())
    assert isinstance(outcome, Retryable)


# --- email failure matrix against real servers ----------------------------------


class _Answers:
    """Accepts the envelope, then answers MAIL or DATA as told."""

    def __init__(self, mail: str | None = None, data: str = "250 OK") -> None:
        self.mail, self.data = mail, data

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail is not None:
            return self.mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.data


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("case", "kind", "named"),
    [
        ("5xx", Permanent, "554"),
        ("throttled", Retryable, "421"),
        ("timeout", Retryable, "Timeout"),
    ],
)
async def test_email_failure_matrix(case: str, kind: type, named: str) -> None:
    port = free_port()
    settings = NotifierSettings(smtp_port=port, send_timeout_s=0.5)
    if case == "timeout":  # accepts the connection and never greets
        server = await asyncio.start_server(
            lambda reader, writer: asyncio.sleep(5), "127.0.0.1", port
        )
        async with server:
            outcome = await EmailChannel(settings, SystemClock()).send(_outbound())
    else:
        handler = _Answers(
            mail="421 4.7.0 Too many messages, try later" if case == "throttled" else None,
            data="554 5.7.1 Message rejected" if case == "5xx" else "250 OK",
        )
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            outcome = await EmailChannel(settings, SystemClock()).send(_outbound())
        finally:
            controller.stop()
    assert isinstance(outcome, kind), outcome
    assert named in str(outcome)


# --- email: no event text adds or changes a header ------------------------------

SENT_HEADERS = [
    "Content-Type",
    "MIME-Version",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "X-Slawatch-Notification-Id",
]
"""Every header a notification mail has, in order: nothing else may appear."""
BREACH_SUBJECT = "[slawatch] SLA breach: response deadline passed for jira:OPS-42 (P1): "
BREACH_SUBJECT_ZH = "[slawatch] SLA 已超时：jira:OPS-42（P1）的响应时限已过："


def _titled(title: str) -> SlaEvent:
    event = sla_event("breach")
    ticket = event.data.ticket.model_copy(update={"title": title})
    return event.model_copy(update={"data": event.data.model_copy(update={"ticket": ticket})})


def _mail(
    title: str,
    name: str = "Li Wei",
    language: Language = ENGLISH,
    address: str = "li.wei@example.com",
) -> Outbound:
    content = render_email(_titled(title), "breach", name, language=language)
    return Outbound("jira:OPS-42:n-1", "jira", "OPS-42", name, address, content)


def _delivered(sink: SmtpSink) -> tuple[list[str], EmailMessage, bytes]:
    """The one mail the sink received: its envelope recipients, parsed, and its raw head."""
    ((_, recipients, received),) = sink.snapshot()
    raw = received.as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return recipients, parsed, raw.split(b"\n\n", 1)[0]


def _header_names(head: bytes) -> list[bytes]:
    """The name of every header line of a raw head (folded lines start with a space)."""
    return [line.split(b":")[0] for line in head.splitlines() if not line[:1].isspace()]


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("title", "language", "subject"),
    [
        ("x\nBcc: y@evil.example", ENGLISH, BREACH_SUBJECT + "x Bcc: y@evil.example"),
        (
            "x\r\nReply-To : attacker@evil.example",
            ENGLISH,
            BREACH_SUBJECT + "x Reply-To : attacker@evil.example",
        ),
        (
            "Core\x00switch\r\n\r\nBody: injected",
            ENGLISH,
            BREACH_SUBJECT + "Coreswitch Body: injected",
        ),
        (
            "Core switch\u2028Bcc: y@evil.example",
            ENGLISH,
            BREACH_SUBJECT + "Core switch Bcc: y@evil.example",
        ),
        (
            "核心交换机宕机\r\nBcc: y@evil.example\u2029抄送",
            CHINESE,
            BREACH_SUBJECT_ZH + "核心交换机宕机 Bcc: y@evil.example 抄送",
        ),
    ],
    ids=["lf-bcc", "crlf-reply-to-space-colon", "nul-and-blank-line", "u2028", "chinese"],
)
@pytest.mark.parametrize("stored", [False, True], ids=["rendered", "stored"])
async def test_a_title_cannot_add_a_header(
    smtp_sink: SmtpSink, title: str, language: Language, subject: str, stored: bool
) -> None:
    outbound = _mail(title, language=language)
    if stored:  # content as an earlier release stored it: the subject holds the raw title
        lead = BREACH_SUBJECT_ZH if language is CHINESE else BREACH_SUBJECT
        raw = Content(lead + title, f"Title: {title}\n", f"<p>{html.escape(title)}</p>")
        outbound = replace(outbound, content=raw)
    outcome = await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(outbound)
    recipients, mail, head = _delivered(smtp_sink)
    assert isinstance(outcome, Delivered)
    assert recipients == ["li.wei@example.com"]
    assert list(mail.keys()) == SENT_HEADERS
    assert mail["Subject"] == subject
    # decoded word by word, exactly: no line break or control character is encoded in it
    ((_, _, as_written),) = smtp_sink.snapshot()
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", as_written["Subject"])
    assert str(make_header(decode_header(unfolded))) == subject
    assert mail["To"].addresses == (Address("Li Wei", addr_spec="li.wei@example.com"),)
    assert _header_names(head) == [name.encode() for name in SENT_HEADERS]
    assert head.isascii()
    text = mail.get_body(("plain",))
    assert text is not None
    shown = subject.removeprefix(BREACH_SUBJECT).removeprefix(BREACH_SUBJECT_ZH)
    # rendered now, the body shows the title as one line; as stored, as it was
    assert (title if stored else shown) in text.get_content()


@pytest.mark.smtp
async def test_a_ten_thousand_character_title_is_a_clipped_subject(smtp_sink: SmtpSink) -> None:
    title = "Core switch down " + "y" * 10_000
    outcome = await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(_mail(title))
    recipients, mail, head = _delivered(smtp_sink)
    assert isinstance(outcome, Delivered)
    assert recipients == ["li.wei@example.com"]
    assert list(mail.keys()) == SENT_HEADERS
    subject = mail["Subject"]
    assert len(subject) == SUBJECT_MAX_CHARS
    assert subject == (BREACH_SUBJECT + title)[: SUBJECT_MAX_CHARS - 1] + "…"
    assert all(len(line) <= 998 for line in head.splitlines())
    body = mail.get_body(("plain",))
    assert body is not None
    assert title in body.get_content()  # the body keeps the whole title


@pytest.mark.smtp
async def test_the_html_part_escapes_a_title_with_markup_and_line_breaks(
    smtp_sink: SmtpSink,
) -> None:
    title = '<script>alert(1)</script>\r\n<a href="http://evil.example">x</a>'
    await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(_mail(title))
    _, mail, _ = _delivered(smtp_sink)
    part = mail.get_body(("html",))
    assert part is not None
    shown = part.get_content()
    assert "<script" not in shown
    assert "<a href" not in shown
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; &lt;a href=&quot;http://evil.example&quot;&gt;x&lt;/a&gt;"
        in shown
    )


@pytest.mark.smtp
@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Li Wei\r\nBcc: boss@evil.example", "Li Wei Bcc: boss@evil.example"),
        ("Li Wei\nReply-To : attacker@evil.example", "Li Wei Reply-To : attacker@evil.example"),
        ("李伟\r\nBcc: boss@evil.example", "李伟 Bcc: boss@evil.example"),
        (
            'Li "Wei" <boss@evil.example>, \x00x@evil.example',
            'Li "Wei" <boss@evil.example>, x@evil.example',
        ),
        ("L" * 300, "L" * 99 + "…"),
    ],
    ids=["crlf-bcc", "lf-reply-to", "chinese", "quotes-and-brackets", "long"],
)
async def test_a_display_name_stays_one_name_of_one_recipient(
    smtp_sink: SmtpSink, name: str, shown: str
) -> None:
    outcome = await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(
        _mail("Core switch down", name=name)
    )
    recipients, mail, head = _delivered(smtp_sink)
    assert isinstance(outcome, Delivered)
    assert recipients == ["li.wei@example.com"]
    assert list(mail.keys()) == SENT_HEADERS
    assert mail["To"].addresses == (Address(shown, addr_spec="li.wei@example.com"),)
    assert _header_names(head) == [name.encode() for name in SENT_HEADERS]


@pytest.mark.smtp
@pytest.mark.parametrize(
    "address",
    [
        "li.wei@example.com\r\nBcc: boss@evil.example",
        "li.wei@example.com\nRCPT TO:<boss@evil.example>",
        "li.wei@example.com\r",
        "li.wei@example.com\u2028",
        "li.wei@example.com\x00",
        "li.wei@example.com, boss@evil.example",
        "Boss <boss@evil.example>",
        "li wei@example.com",
    ],
)
async def test_an_unusable_address_is_refused_for_good_without_a_connection(
    smtp_sink: SmtpSink, address: str
) -> None:
    outbound = _mail("Core switch down", address=address)
    outcome = await EmailChannel(_settings(smtp_sink.port), SystemClock()).send(outbound)
    assert isinstance(outcome, Permanent)
    assert outcome.reason == f"not a usable email address: {address!r}"
    assert "\n" not in outcome.reason
    assert smtp_sink.snapshot() == []
    with pytest.raises(UnusableAddressError):
        build_message(outbound, sender="slawatch <slawatch@example.com>", now=NOW)


@pytest.mark.parametrize(
    "address",
    ["li.wei@example.com", "li.wei+sla@example.com", "o'brien@example.com", "赵磊@例子.中国"],
)
def test_plain_addresses_are_usable(address: str) -> None:
    assert usable_address(address)


def test_the_notification_id_header_is_one_line() -> None:
    outbound = _mail("Core switch down")
    hostile = Outbound(
        "jira:OPS-42\r\nBcc: boss@evil.example:n-1",
        outbound.ticket_source,
        outbound.ticket_id,
        outbound.recipient_name,
        outbound.address,
        outbound.content,
    )
    message = build_message(hostile, sender="slawatch <slawatch@example.com>", now=NOW)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert list(parsed.keys()) == SENT_HEADERS
    assert parsed["X-Slawatch-Notification-Id"] == "jira:OPS-42 Bcc: boss@evil.example:n-1"
    # the ids derived from it are digests: the same with or without the sanitising
    assert parsed["Message-ID"].strip() == message_id(hostile.notification_id, "example.com")


# --- SMS: one line -------------------------------------------------------------------


async def test_an_sms_is_one_line_whatever_the_title(sms_sink: SmsSink) -> None:
    text = (
        "[slawatch] BREACH P1 jira:OPS-42 Core switch\r\n\r\nURGENT: call +1 555 0100\u2028\x00now"
    )
    outbound = Outbound("n-1", "jira", "OPS-42", "Li Wei", "+8613800000002", Content("", text))
    async with httpx.AsyncClient(timeout=5) as client:
        outcome = await SmsChannel(client, sms_sink.url, "t0ken").send(outbound)
    assert outcome == Delivered("sms-1")
    (sms,) = sms_sink.received()
    assert sms.message == (
        "[slawatch] BREACH P1 jira:OPS-42 Core switch URGENT: call +1 555 0100 now"
    )
