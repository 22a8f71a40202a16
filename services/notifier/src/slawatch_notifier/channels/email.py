"""Email over SMTP (aiosmtplib): a plain-text body with an HTML alternative.

Headers make repeats and threads recognisable:

- ``Message-ID`` is derived from the notification id alone, so a message sent
  again after a crash carries the same id and mail clients show it once;
- ``In-Reply-To`` and ``References`` point at one root id per ticket, so every
  notification about one ticket lands in one thread.

No event text can add or change a header: every header value built from the
notification (the subject, the recipient's display name, the notification id)
is made one line without control characters (``sanitize.header_value``), the
subject clipped to ``SUBJECT_MAX_CHARS`` and a name to ``NAME_MAX_CHARS``, and
non-ASCII text is RFC 2047-encoded. The envelope names the one recipient
explicitly; an address that is not one plain address (a control character,
whitespace, or text that reads as more than one address) is refused before
anything is sent: a permanent failure of that notification.

Classification: 4xx replies, dropped or refused connections and timeouts are
retryable; 5xx replies and missing server features (STARTTLS, AUTH) are permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import lru_cache
from typing import Any

import aiosmtplib

from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.sanitize import SUBJECT_MAX_CHARS, header_value
from slawatch_notifier.settings import NotifierSettings

NAME_MAX_CHARS = 100
"""The most characters of a display name in ``To`` (or ``From``)."""

_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


class UnusableAddressError(ValueError):
    """An email address that would not be exactly one recipient in a header or envelope."""


def usable_address(address: str) -> bool:
    """Whether ``address`` is one plain address: no control character or whitespace (which
    could end a header or an SMTP command), and parsed back as itself alone."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return True
    if not address.isprintable() or " " in address:
        return False
    return getaddresses([address]) == [("", address)]


def message_id(notification_id: str, domain: str) -> str:
    """The Message-ID of every send of ``notification_id``: deterministic, header-safe."""
    return f"<{_digest(notification_id)}.notification@{domain}>"


def thread_id(ticket_source: str, ticket_id: str, domain: str) -> str:
    """The per-ticket root id all of one ticket's mails refer to."""
    return f"<{_digest(f'{ticket_source}:{ticket_id}')}.ticket@{domain}>"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def sender_domain(sender: str) -> str:
    """``slawatch <slawatch@example.com>`` → ``example.com`` (``localhost`` if none)."""
    return parse_sender(sender).domain


@dataclass(frozen=True, slots=True)
class Sender:
    header: str
    address: str
    domain: str


@lru_cache(maxsize=16)
def parse_sender(sender: str) -> Sender:
    """The configured sender, parsed once: its From header, envelope address and domain."""
    name, address = parseaddr(sender)
    return Sender(address_header(name, address), address, address.rpartition("@")[2] or "localhost")


def build_message(outbound: Outbound, *, sender: str, now: datetime) -> Message:
    """The MIME message for ``outbound``: text/plain with a text/html alternative.

    Built with the ``email.mime`` classes, which write headers as given
    (non-ASCII names and subjects RFC 2047-encoded here) instead of parsing
    each one back, as ``EmailMessage`` does: a fifteenth of the cost. Header
    values from the notification are sanitised (see the module docstring);
    ``UnusableAddressError`` if ``outbound.address`` is not one plain address. The
    multipart boundary comes from the notification id (the parts are base64,
    whose alphabet has no ``_``, so it cannot occur inside them): a resend
    has the same bytes but for ``Date``, and the generator need not search
    the parts for a boundary of its own.
    """
    if not usable_address(outbound.address):
        raise UnusableAddressError(f"not a usable email address: {outbound.address!r}")
    origin = parse_sender(sender)
    domain = origin.domain
    root = thread_id(outbound.ticket_source, outbound.ticket_id, domain)
    content = outbound.content
    text = MIMEText(content.text, "plain", "utf-8")
    message: Message = text
    if content.html is not None:
        boundary = f"=_slawatch_{_digest(outbound.notification_id)[:32]}"
        message = MIMEMultipart("alternative", boundary=boundary)
        message.attach(text)
        message.attach(MIMEText(content.html, "html", "utf-8"))
    message["From"] = origin.header
    message["To"] = address_header(outbound.recipient_name or "", outbound.address)
    message["Subject"] = mail_header(content.subject, "Subject", SUBJECT_MAX_CHARS)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(outbound.notification_id, domain)
    message["In-Reply-To"] = root
    message["References"] = root
    message["X-Slawatch-Notification-Id"] = mail_header(
        outbound.notification_id, "X-Slawatch-Notification-Id"
    )
    return message


def address_header(name: str, address: str) -> str:
    """``Name <address>`` (the name quoted or RFC 2047-encoded as needed), or the address."""
    name = header_value(name, NAME_MAX_CHARS)
    return formataddr((name, address), charset="utf-8") if name else address


def mail_header(text: str, name: str, limit: int | None = None) -> str:
    """A header value from untrusted ``text``: one line, clipped, encoded if not ASCII."""
    value = header_value(text, limit)
    if value.isascii():
        return value
    # Knowing the header's name, the first encoded word leaves room for it: otherwise
    # the generator folds before it and a reader sees the subject start with a space.
    return Header(value, "utf-8", header_name=name).encode()


def classify_smtp_reply(code: int, message: str) -> Retryable | Permanent:
    """5xx is permanent; 4xx (and anything malformed) may succeed later."""
    reason = f"SMTP {code} {message}".strip()
    return Permanent(reason) if 500 <= code < 600 else Retryable(reason)


def classify_smtp_error(exc: aiosmtplib.SMTPException) -> Retryable | Permanent:
    """The outcome an aiosmtplib failure stands for."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = [classify_smtp_reply(r.code, r.message) for r in exc.recipients]
        permanent = [reply for reply in replies if isinstance(reply, Permanent)]
        if replies and len(permanent) == len(replies):
            return permanent[0]
        return Retryable(f"SMTP recipients refused: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_smtp_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or "not supported" in str(exc):
        # STARTTLS or AUTH missing: never sent in clear; an operator has to act
        return Permanent(f"SMTP server lacks a required feature: {exc}")
    return Retryable(f"SMTP {type(exc).__name__}: {exc}")


IDLE_REUSE_S = 30.0
"""An open connection idle longer than this is closed rather than reused: servers
drop idle clients (RFC 5321 asks them to wait five minutes; many wait less)."""


class EmailChannel:
    """Sends over reused SMTP connections to the configured server.

    A connection is taken from the idle ones (or opened), carries one message,
    and goes back; at most as many are open as sends run at once. One that the
    server closed while idle fails before its message was accepted, so the
    message goes out at once on a fresh connection. A connection whose send
    failed in any other way, or was cut short by the timeout, is closed.
    """

    def __init__(self, settings: NotifierSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []

    async def send(self, outbound: Outbound) -> Outcome:
        try:
            message = build_message(
                outbound, sender=self._settings.smtp_sender, now=self._clock.now()
            )
        except UnusableAddressError as exc:
            return Permanent(str(exc))
        try:
            async with asyncio.timeout(self._settings.send_timeout_s):
                await self._submit(message, outbound.address)
        except aiosmtplib.SMTPException as exc:
            return classify_smtp_error(exc)
        except OSError as exc:  # refused connection, reset, overall timeout
            return Retryable(f"SMTP connection: {type(exc).__name__}: {exc}")
        return Delivered(message["Message-ID"])

    async def aclose(self) -> None:
        """Close every idle connection (at shutdown)."""
        idle, self._idle = self._idle, []
        for _, smtp in idle:
            await _quit(smtp)

    async def _submit(self, message: Message, recipient: str) -> None:
        reused = self._take()
        if reused is not None:
            try:
                await self._send_on(reused, message, recipient)
                return
            except aiosmtplib.SMTPServerDisconnected:
                pass  # closed while idle: nothing of this message was accepted
        await self._send_on(await self._connect(), message, recipient)

    def _take(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            since, smtp = self._idle.pop()
            if smtp.is_connected and time.monotonic() - since < IDLE_REUSE_S:
                return smtp
            smtp.close()
        return None

    async def _send_on(self, smtp: aiosmtplib.SMTP, message: Message, recipient: str) -> None:
        """Send with the envelope given, not read back from the headers."""
        envelope = parse_sender(self._settings.smtp_sender).address
        try:
            await smtp.send_message(message, sender=envelope, recipients=[recipient])
        except BaseException:
            smtp.close()
            raise
        self._idle.append((time.monotonic(), smtp))

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(**smtp_options(self._settings))
        try:
            await smtp.connect()
        except BaseException:
            smtp.close()
            raise
        return smtp


_START_TLS: dict[str, bool | None] = {
    "starttls": True,
    "implicit": False,
    "opportunistic": None,
    "none": False,
}


def smtp_options(settings: NotifierSettings) -> dict[str, Any]:
    """How to reach the SMTP server (``aiosmtplib.SMTP``'s arguments): its TLS mode
    (``SLAWATCH_SMTP_TLS``), certificates checked (against ``SLAWATCH_SMTP_CA_FILE`` if
    set; not in opportunistic mode), AUTH with the credentials, if any — and then never
    without verified TLS: with credentials, a server that offers no STARTTLS is refused
    before anything is sent."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    mode = settings.smtp_tls
    if settings.smtp_starttls or (settings.smtp_username or password):
        mode = "starttls" if mode in ("opportunistic", "none") else mode
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "username": settings.smtp_username,
        "password": password,
        "use_tls": mode == "implicit",
        "start_tls": _START_TLS[mode],
        # opportunistic TLS without credentials only keeps listeners out (a relay's
        # self-signed certificate is no reason to send nothing); with them, checked
        "validate_certs": mode != "opportunistic",
        "cert_bundle": str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
        "timeout": settings.send_timeout_s,
    }


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
