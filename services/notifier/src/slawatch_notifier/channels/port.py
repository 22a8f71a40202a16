"""The channel port: what every delivery adapter promises.

``send`` makes one attempt and answers with an ``Outcome``; it never raises for
anything the provider or the network does:

- ``Delivered(provider_message_id)``: the provider accepted the message;
- ``Retryable(reason)``: a transient fault (timeouts, refused connections,
  "try later" replies); the same message may be sent again later;
- ``Permanent(reason)``: the provider will never accept it (bad address,
  rejected request); retrying is pointless.

Anything else it raises is a bug and ends the process. ``send`` returns within
the adapter's timeout. Resending the same ``notification_id`` reuses the same
Message-ID / idempotency key, so a provider or reader can recognise a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slawatch_notifier.templates import Content


@dataclass(frozen=True, slots=True)
class Delivered:
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Retryable:
    reason: str


@dataclass(frozen=True, slots=True)
class Permanent:
    reason: str


Outcome = Delivered | Retryable | Permanent


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message ready to go."""

    notification_id: str
    ticket_source: str
    ticket_id: str
    recipient_name: str | None
    address: str
    content: Content


class ChannelPort(Protocol):
    async def send(self, outbound: Outbound) -> Outcome:
        """One delivery attempt; see the module docstring for the contract."""
        ...
