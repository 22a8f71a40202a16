"""Rate limits: how many messages one recipient gets on one channel, and what is folded. Pure.

    notifier:
      rate_limits:                          # per channel, for every recipient
        sms: {max: 5, per: 15m}
        dingtalk: {max: 20, per: 1m}
      people:
        li.wei: {..., rate_limits: {sms: {max: 10, per: 15m}}}   # hers replace the channel's

A notification over the limit is never dropped: it is *folded* into the one
digest of its recipient, channel and window, which lists every notification
folded into it and goes out when the window ends (``digest.py``, ``folding.py``).

Window semantics — fixed windows, anchored at the traffic:

- A window opens with the first message admitted to that recipient on that
  channel while no window is open, and lasts ``per``: ``[opened, opened + per)``.
  Its ``max`` and length are fixed when it opens (a changed configuration
  applies from the next window).
- In a window, the first ``max`` notifications are sent on their own; every
  later one is folded into the window's digest
  (id ``digest:<recipient>:<channel>:<window start>``), due at the window's end.
- A window that ended with a digest is followed at once by the next one,
  opened at its end with the digest as its first message: the digest counts
  in the window it is sent in, so no window holds more than ``max`` messages.
  A window without a digest is followed by a fresh one at the next message.
- Only a notification's first attempt is admitted or folded; its retries and
  a digest's own sends already hold their place.

Fixed windows are cheap to keep (one row per recipient and channel, locked
by whoever decides) and make the digest's key deterministic; the price is the
edge of two windows, where up to twice ``max`` may arrive within ``per``
(``max`` at the end of one window, ``max`` at the start of the next).

A phone number only an event gave (``notifier.event_addresses``: not the
configured phone of the recipient) has a cap besides: at most
``sms_per_number.max`` SMS per ``per`` to that number, whoever the recipient
(``cap_for``). It is counted in fixed windows as above, one per number
(``cap_window``), before the recipient's rate limit is applied; a first
attempt over it is *refused*, never folded or sent (``folding.py``).
Configured people are trusted: their numbers have no cap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from slawatch_common.events import Channel
from slawatch_notifier.addresses import phone_number
from slawatch_notifier.config import NotifierConfig, RateLimit

DIGEST = "digest"
"""The ``stage`` of a digest notification, and the prefix of its id."""

CAP_CHANNEL = "sms-number"
"""The ``channel`` of a cap window's row in ``notifier_rate_windows``; its ``recipient`` is
the number (``cap_window``). No channel is spelt so, so it shares no row with a limit."""


@dataclass(frozen=True, slots=True)
class Window:
    """One recipient's window on one channel: ``sent`` admitted, ``held`` folded so far."""

    started_at: datetime
    ends_at: datetime
    max: int
    sent: int = 0
    held: int = 0
    digest_id: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Send it on its own; ``window`` counts it."""

    window: Window


@dataclass(frozen=True, slots=True)
class Fold:
    """Fold it into ``window``'s digest, due at ``window.ends_at``; ``opened``: a new digest."""

    window: Window
    digest_id: str
    opened: bool


def limit_for(config: NotifierConfig, recipient: str, channel: Channel) -> RateLimit | None:
    """The limit of ``recipient`` on ``channel``: their own, else the channel's; None = none."""
    person = config.people.get(recipient)
    if person is not None and channel in person.rate_limits:
        return person.rate_limits[channel]
    return config.rate_limits.get(channel)


def digest_id(recipient: str, channel: Channel | str, window_start: datetime) -> str:
    """``digest:<recipient>:<channel>:<window start, UTC, to the microsecond>``."""
    start = window_start.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{DIGEST}:{recipient}:{channel}:{start}"


def window_at(previous: Window | None, limit: RateLimit, now: datetime) -> Window:
    """The window ``now`` falls in, given the latest one (``previous``) of that recipient."""
    length = timedelta(seconds=limit.per)
    if previous is not None and now < previous.ends_at:
        return previous
    if previous is not None and previous.digest_id and now < previous.ends_at + length:
        # the digest goes out at the previous window's end: it opens this one
        return Window(previous.ends_at, previous.ends_at + length, limit.max, sent=1)
    return Window(now, now + length, limit.max)


def admit(
    previous: Window | None, limit: RateLimit, recipient: str, channel: Channel, now: datetime
) -> Send | Fold:
    """Send a notification's first attempt at ``now``, or fold it into the window's digest."""
    window = window_at(previous, limit, now)
    if window.sent < window.max:
        return Send(replace(window, sent=window.sent + 1))
    digest = window.digest_id or digest_id(recipient, channel, window.started_at)
    folded = replace(window, held=window.held + 1, digest_id=digest)
    return Fold(folded, digest, opened=window.digest_id is None)


def closed(window: Window, now: datetime) -> Window:
    """``window`` ended at ``now``: its digest left already (another claimer took it)."""
    return replace(window, ends_at=min(window.ends_at, now))


def cap_for(
    config: NotifierConfig, recipient: str, channel: Channel, address: str
) -> RateLimit | None:
    """The cap of an SMS to ``address``: ``notifier.event_addresses.sms_per_number`` unless it
    is the configured phone of ``recipient``; None on other channels."""
    if channel is not Channel.SMS:
        return None
    person = config.people.get(recipient)
    phone = person.phone if person is not None else None
    if phone is not None and phone_number(phone) == phone_number(address):
        return None
    return config.event_addresses.sms_per_number


def cap_window(address: str) -> tuple[str, str]:
    """The ``notifier_rate_windows`` key that counts the SMS to one number."""
    return phone_number(address), CAP_CHANNEL


def within_cap(previous: Window | None, cap: RateLimit, now: datetime) -> Window | None:
    """The window counting one more message at ``now``; None when the cap is reached."""
    window = window_at(previous, cap, now)
    if window.sent >= window.max:
        return None
    return replace(window, sent=window.sent + 1)
