"""A real SMTP server (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from support.net import free_port


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted message: when, the envelope's recipients, the parsed message and the
    bytes as they came (the header block exactly as the client wrote it)."""

    at: float
    recipients: list[str]
    message: Message
    raw: bytes


class _Keeper:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._sink.lock:
            self._sink.rcpt_commands.append(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self._sink.delay_s > 0:
            with self._sink.lock:
                self._sink.accepting += 1
            try:
                await asyncio.sleep(self._sink.delay_s)
            finally:
                with self._sink.lock:
                    self._sink.accepting -= 1
        raw = bytes(envelope.content)
        message = email.message_from_bytes(raw)
        received = Received(time.time(), list(envelope.rcpt_tos), message, raw)
        with self._sink.lock:
            self._sink.messages.append((received.at, received.recipients, message))
            self._sink.received.append(received)
        return "250 OK"


class SmtpSink:
    """Start, read ``messages`` (arrival time, recipients, message), stop.

    ``port`` is fixed for the sink's life (a free one unless given): after
    ``stop`` the port is closed (connections are refused, open sessions are
    cut) until ``start`` listens on it again; ``messages`` spans every run.

    ``delay_s`` makes the server take that long over each message before it
    answers the end of its DATA (and keeps it): a slow relay, so that a client
    has sends in flight for a while (``accepting`` counts those waiting).
    ``received`` keeps each message with its raw bytes, ``rcpt_commands``
    every ``RCPT TO`` address in order, whether or not its message followed.
    """

    def __init__(self, port: int | None = None, *, delay_s: float = 0.0) -> None:
        self.port = port or free_port()
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.messages: list[tuple[float, list[str], Message]] = []
        self.received: list[Received] = []
        self.rcpt_commands: list[str] = []
        self.accepting = 0
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        # a stopped controller has closed its event loop: each run gets a new one
        controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def snapshot(self) -> list[tuple[float, list[str], Message]]:
        with self.lock:
            return list(self.messages)

    def received_snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def in_progress(self) -> int:
        """Messages whose DATA the server is still taking (only with a ``delay_s``)."""
        with self.lock:
            return self.accepting


class _Refuser:
    def __init__(self, relay: RefusingRelay) -> None:
        self._relay = relay

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        return self._relay.reply_to(address)


class RefusingRelay:
    """A real SMTP server that refuses every recipient, quoting its address as relays do.

    The n-th ``RCPT TO`` of an address is answered ``replies[n]`` (the last one again
    once they run out); ``{address}`` in a reply is the address as the client gave it,
    ``{upper}`` the same in capitals. ``asked`` counts the RCPT commands per address.
    """

    def __init__(self, *replies: str) -> None:
        self.replies = replies or ("550 5.1.1 <{address}>: Recipient address rejected",)
        self.port = free_port()
        self.lock = threading.Lock()
        self.asked: dict[str, int] = {}
        self._controller: Controller | None = None

    def reply_to(self, address: str) -> str:
        with self.lock:
            count = self.asked.get(address, 0)
            self.asked[address] = count + 1
        reply = self.replies[min(count, len(self.replies) - 1)]
        return reply.format(address=address, upper=address.upper())

    def start(self) -> None:
        controller = Controller(_Refuser(self), hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
