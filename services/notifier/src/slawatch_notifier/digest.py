"""Digests: the words of the one message that stands for notifications folded by a rate limit.

Pure. Every folded notification is one line — its stage, the ticket's
priority and key, its deadline in UTC — most urgent first: breaches before
warnings, then the earliest deadline, then the highest priority. Email lists
every line; SMS and chat say how many there are, as many of the most urgent
lines as fit the channel (``SMS_MAX_CHARS`` for SMS) and "and N more".
A digest carries no acknowledgement link: it speaks for several escalations.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slawatch_common.events import Channel
from slawatch_notifier.templates import SMS_MAX_CHARS, Content, duration

CHAT_MAX_CHARS = 2000
_NO_DEADLINE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Held:
    """One notification folded into a digest."""

    ticket: str
    stage: str
    deadline: datetime | None
    priority: str | None = None

    def urgency(self) -> tuple[int, datetime, str, str]:
        """Sorts the most urgent first."""
        breach = 0 if self.stage == "breach" else 1
        return (breach, self.deadline or _NO_DEADLINE, self.priority or "~", self.ticket)

    def line(self, compact: bool = False) -> str:
        priority = f" {self.priority}" if self.priority else ""
        when = _when(self.deadline, compact)
        return f"{stage_label(self.stage)}{priority} {self.ticket} deadline {when}"


@dataclass(frozen=True, slots=True)
class Limit:
    """The limit that held them back, for the explanation."""

    max: int
    per_seconds: int

    def __str__(self) -> str:
        return f"{self.max} per {duration(self.per_seconds)}"


def render_digest(
    held: Sequence[Held], channel: Channel, limit: Limit, recipient_name: str | None = None
) -> Content:
    """The digest's content on ``channel``; ``held`` in any order, at least one."""
    ordered = sorted(held, key=Held.urgency)
    if channel is Channel.EMAIL:
        return _email(ordered, limit, recipient_name)
    cap = SMS_MAX_CHARS if channel is Channel.SMS else CHAT_MAX_CHARS
    head = f"[slawatch] {_count(ordered)} held back (limit {limit} on {channel}):"
    return Content(subject=_subject(ordered), text=fit(head, [h.line(True) for h in ordered], cap))


def fit(head: str, lines: Sequence[str], cap: int) -> str:
    """``head`` and as many ``lines`` as fit in ``cap`` characters, then "and N more"."""
    text = head
    for shown, line in enumerate(lines):
        rest = len(lines) - shown - 1
        candidate = f"{text} {line}{';' if rest else '.'}"
        tail = f" and {rest} more." if rest else ""
        if len(candidate) + len(tail) > cap:
            return f"{text} and {len(lines) - shown} more."[:cap]
        text = candidate
    return text


def stage_label(stage: str) -> str:
    """``BREACH``, ``WARNING 75%``, ``WARNING 15m left``."""
    if stage == "breach":
        return "BREACH"
    rest = stage.partition(":")[2]
    if rest.endswith("s-before"):
        return f"WARNING {duration(int(rest.removesuffix('s-before')))} left"
    return f"WARNING {rest}%"


def _email(ordered: Sequence[Held], limit: Limit, recipient_name: str | None) -> Content:
    greeting = f"Hello {recipient_name}," if recipient_name else "Hello,"
    lead = (
        f"{_count(ordered)} beyond your limit of {limit} on email were held back; "
        "here they are, most urgent first"
    )
    lines = "\n".join(f"- {held.line()}" for held in ordered)
    text = f"{greeting}\n\n{lead}:\n\n{lines}\n\n-- \nslawatch SLA monitoring\n"
    items = "\n".join(f"<li>{html.escape(held.line())}</li>" for held in ordered)
    body = (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{html.escape(greeting)}</p>\n<p>{html.escape(lead)}:</p>\n"
        f"<ul>\n{items}\n</ul>\n<p>slawatch SLA monitoring</p>\n</body></html>\n"
    )
    return Content(subject=_subject(ordered), text=text, html=body)


def _subject(ordered: Sequence[Held]) -> str:
    breaches = sum(1 for held in ordered if held.stage == "breach")
    detail = f" ({breaches} breach{'es' if breaches != 1 else ''})" if breaches else ""
    return f"[slawatch] {_count(ordered)} held back{detail}"


def _count(ordered: Sequence[Held]) -> str:
    return f"{len(ordered)} SLA notification{'s' if len(ordered) != 1 else ''}"


def _when(deadline: datetime | None, compact: bool) -> str:
    if deadline is None:
        return "none (paused)"
    pattern = "%m-%d %H:%MZ" if compact else "%Y-%m-%d %H:%M:%S UTC"
    return deadline.astimezone(UTC).strftime(pattern)
