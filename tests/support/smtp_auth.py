"""A real SMTP server (aiosmtpd) that takes mail only after STARTTLS and AUTH, as a relay
with credentials does, and keeps what it accepts; and a certificate for it made by openssl.

The notifier checks the server's certificate against ``cert`` (``SLAWATCH_SMTP_CA_FILE``),
as it would a private CA's.
"""

from __future__ import annotations

import email
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support.net import free_port
from support.smtp import Received


@dataclass(frozen=True, slots=True)
class Login:
    """One AUTH the server was asked for: the user, whether the session was TLS by then,
    whether the credentials were the right ones."""

    user: str
    over_tls: bool
    accepted: bool


class _Handler:
    def __init__(self, sink: AuthSmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        raw = bytes(envelope.content)
        received = Received(
            time.time(), list(envelope.rcpt_tos), email.message_from_bytes(raw), raw
        )
        with self._sink.lock:
            self._sink.received.append(received)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        accepted = (user, password) == (self._sink.username, self._sink.password)
        with self._sink.lock:
            self._sink.logins.append(Login(user, session.ssl is not None, accepted))
        return AuthResult(success=accepted)


class AuthSmtpSink:
    """Start, read ``received_snapshot()`` and ``logins_snapshot()``, stop.

    The server offers STARTTLS with ``cert`` and ``key`` and requires it before
    anything else (AUTH included); a message is accepted only in a session that
    logged in as ``username`` with ``password`` (AUTH PLAIN or LOGIN).
    """

    def __init__(self, cert: Path, key: Path, username: str, password: str) -> None:
        self.port = free_port()
        self.username = username
        self.password = password
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.logins: list[Login] = []
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            return
        handler = _Handler(self)
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self._context,
            require_starttls=True,
            authenticator=handler.authenticate,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received_snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def logins_snapshot(self) -> list[Login]:
        with self.lock:
            return list(self.logins)
