"""Mail over TLS: STARTTLS with AUTH, implicit TLS, and credentials never sent in clear.

A real SMTP server (aiosmtpd) with a certificate made for the test by
openssl; the notifier checks it against that certificate
(``SLAWATCH_SMTP_CA_FILE``), as it would a private CA's.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from slawatch_notifier.channels.email import EmailChannel
from slawatch_notifier.channels.port import Delivered, Outbound, Permanent
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.settings import NotifierSettings
from slawatch_notifier.templates import Content
from support.certs import self_signed
from support.net import free_port

pytestmark = pytest.mark.smtp


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    return self_signed(tmp_path_factory.mktemp("tls"))


class Mailbox:
    """Keeps each message, and every login tried."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(bytes(envelope.content))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        self.logins.append((user, session.ssl is not None))
        return AuthResult(success=(user, password) == ("slawatch", "right"))


@pytest.fixture
def served(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Start a server: ``served(mode)`` with mode ``starttls``, ``implicit`` or ``plain``;
    its port and mailbox."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controllers: list[Controller] = []

    def start(mode: str) -> tuple[int, Mailbox]:
        box, port = Mailbox(), free_port()
        options: dict[str, Any] = {"authenticator": box.authenticate}
        if mode == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        elif mode == "implicit":  # aiosmtpd only counts STARTTLS as TLS for its AUTH rule
            options |= {"ssl_context": context, "auth_require_tls": False}
        else:
            options |= {"auth_require_tls": False}
        controller = Controller(box, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port, box

    yield start
    for controller in controllers:
        controller.stop()


def settings(
    port: int, cert: Path, password: str | None = "right", **extra: Any
) -> NotifierSettings:
    credentials: dict[str, Any] = {}
    if password is not None:
        credentials = {"smtp_username": "slawatch", "smtp_password": SecretStr(password)}
    return NotifierSettings(
        smtp_port=port, smtp_ca_file=cert, send_timeout_s=5, **credentials, **extra
    )


def outbound() -> Outbound:
    return Outbound(
        notification_id="n-1",
        ticket_source="jira",
        ticket_id="OPS-1",
        recipient_name="Li Wei",
        address="li.wei@example.com",
        content=Content("subject", "plain text", "<p>html</p>"),
    )


async def test_starttls_and_auth_deliver_the_mail(
    served: Any, certificate: tuple[Path, Path]
) -> None:
    port, box = served("starttls")
    channel = EmailChannel(settings(port, certificate[0]), SystemClock())
    outcome = await channel.send(outbound())
    await channel.aclose()
    assert isinstance(outcome, Delivered)
    assert len(box.messages) == 1
    assert box.logins == [("slawatch", True)]  # over TLS


async def test_implicit_tls_delivers_the_mail(served: Any, certificate: tuple[Path, Path]) -> None:
    port, box = served("implicit")
    channel = EmailChannel(settings(port, certificate[0], smtp_tls="implicit"), SystemClock())
    outcome = await channel.send(outbound())
    await channel.aclose()
    assert isinstance(outcome, Delivered)
    assert [user for user, _ in box.logins] == ["slawatch"]  # the connection is TLS throughout


async def test_credentials_are_never_sent_to_a_server_without_tls(
    served: Any, certificate: tuple[Path, Path]
) -> None:
    """Opportunistic TLS (the default) turns required once there are credentials: the
    notifier refuses to log in or send in clear and says why."""
    port, box = served("plain")
    channel = EmailChannel(settings(port, certificate[0]), SystemClock())
    outcome = await channel.send(outbound())
    assert isinstance(outcome, Permanent)
    assert "STARTTLS" in outcome.reason
    assert box.logins == []
    assert box.messages == []
    # without credentials, the same server takes the mail in clear (a local relay)
    plain = EmailChannel(settings(port, certificate[0], password=None), SystemClock())
    assert isinstance(await plain.send(outbound()), Delivered)
    await plain.aclose()


async def test_an_unknown_certificate_is_not_trusted(served: Any) -> None:
    port, box = served("starttls")
    channel = EmailChannel(NotifierSettings(smtp_port=port, smtp_tls="starttls"), SystemClock())
    outcome = await channel.send(outbound())
    assert not isinstance(outcome, Delivered)
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.reason or "certificate" in outcome.reason
    assert box.messages == []


async def test_a_relay_with_a_self_signed_certificate_takes_mail_without_credentials(
    served: Any,
) -> None:
    """Opportunistic TLS (the default, no credentials): encrypted, the certificate not
    checked, as relays do; the same server refuses nothing."""
    port, box = served("starttls")
    channel = EmailChannel(NotifierSettings(smtp_port=port), SystemClock())
    outcome = await channel.send(outbound())
    await channel.aclose()
    assert isinstance(outcome, Delivered)
    assert len(box.messages) == 1


async def test_the_older_starttls_setting_still_requires_tls(
    served: Any, certificate: tuple[Path, Path]
) -> None:
    port, box = served("plain")
    older = NotifierSettings(smtp_port=port, smtp_starttls=True, smtp_ca_file=certificate[0])
    outcome = await EmailChannel(older, SystemClock()).send(outbound())
    assert isinstance(outcome, Permanent)
    assert "STARTTLS" in outcome.reason
    assert box.messages == []
