"""A real SMTP server (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import email
import threading
import time
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from support.net import free_port


class _Keeper:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content)
        with self._sink.lock:
            self._sink.messages.append((time.time(), list(envelope.rcpt_tos), message))
        return "250 OK"


class SmtpSink:
    """Start, read ``messages`` (arrival time, recipients, message), stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[tuple[float, list[str], Message]] = []
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def snapshot(self) -> list[tuple[float, list[str], Message]]:
        with self.lock:
            return list(self.messages)
