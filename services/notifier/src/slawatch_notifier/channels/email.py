"""Email over SMTP (aiosmtplib): a plain-text body with an HTML alternative.

Headers make repeats and threads recognisable:

- ``Message-ID`` is derived from the notification id alone, so a message sent
  again after a crash carries the same id and mail clients show it once;
- ``In-Reply-To`` and ``References`` point at one root id per ticket, so every
  notification about one ticket lands in one thread.

Classification: 4xx replies, dropped or refused connections and timeouts are
retryable; 5xx replies and missing server features (STARTTLS, AUTH) are permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.settings import NotifierSettings


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
    _, address = parseaddr(sender)
    return address.rpartition("@")[2] or "localhost"


def build_message(outbound: Outbound, *, sender: str, now: datetime) -> EmailMessage:
    """The MIME message for ``outbound``: text/plain with a text/html alternative."""
    domain = sender_domain(sender)
    root = thread_id(outbound.ticket_source, outbound.ticket_id, domain)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = _recipient(outbound)
    message["Subject"] = outbound.content.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(outbound.notification_id, domain)
    message["In-Reply-To"] = root
    message["References"] = root
    message["X-Slawatch-Notification-Id"] = outbound.notification_id
    message.set_content(outbound.content.text)
    if outbound.content.html is not None:
        message.add_alternative(outbound.content.html, subtype="html")
    return message


def _recipient(outbound: Outbound) -> str | Address:
    if not outbound.recipient_name:
        return outbound.address
    user, _, domain = outbound.address.rpartition("@")
    return Address(outbound.recipient_name, user, domain)


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
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Permanent(f"SMTP server lacks a required feature: {exc}")
    return Retryable(f"SMTP {type(exc).__name__}: {exc}")


class EmailChannel:
    """Sends each message on its own SMTP connection to the configured server."""

    def __init__(self, settings: NotifierSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def send(self, outbound: Outbound) -> Outcome:
        message = build_message(outbound, sender=self._settings.smtp_sender, now=self._clock.now())
        try:
            async with asyncio.timeout(self._settings.send_timeout_s):
                await self._submit(message)
        except aiosmtplib.SMTPException as exc:
            return classify_smtp_error(exc)
        except OSError as exc:  # refused connection, reset, overall timeout
            return Retryable(f"SMTP connection: {type(exc).__name__}: {exc}")
        return Delivered(message["Message-ID"])

    async def _submit(self, message: EmailMessage) -> None:
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_starttls,
            timeout=settings.send_timeout_s,
        )
