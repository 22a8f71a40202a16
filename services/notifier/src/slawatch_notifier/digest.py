"""Digests: the words of the one message that stands for notifications folded by a rate limit.

Pure. Every folded notification is one line — its stage, the ticket's
priority and key, its deadline in UTC — most urgent first: breaches before
warnings, then the earliest deadline, then the highest priority. Email lists
every line; SMS and chat say how many there are, as many of the most urgent
lines as fit the channel (``SMS_MAX_CHARS`` for SMS) and "and N more".
A digest ends with its acknowledgement link, when there is one: it
acknowledges every escalation folded into it (``acklink.DigestClaim``); the
lines are shortened before the link, never the link. It is worded in its
recipient's language (``messages.py``), the locale stored with the
notifications folded into it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slawatch_common.events import Channel
from slawatch_notifier.messages import ENGLISH, Language
from slawatch_notifier.templates import SMS_MAX_CHARS, Content, duration, stage_label

__all__ = ["CHAT_MAX_CHARS", "Held", "Limit", "fit", "render_digest", "stage_label"]

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

    def line(self, compact: bool = False, language: Language = ENGLISH) -> str:
        label = stage_label(self.stage, language)
        stage = f"{label} {self.priority}" if self.priority else label
        when = _when(self.deadline, compact, language)
        return language.text("digest.line", stage=stage, ticket=self.ticket, deadline=when)


@dataclass(frozen=True, slots=True)
class Limit:
    """The limit that held them back, for the explanation."""

    max: int
    per_seconds: int

    def describe(self, language: Language = ENGLISH) -> str:
        """``5 per 15m`` (``每 15分钟 5 条``)."""
        per = duration(self.per_seconds, language)
        return language.text("digest.limit", max=self.max, per=per)

    def __str__(self) -> str:
        return self.describe()


def render_digest(
    held: Sequence[Held],
    channel: Channel,
    limit: Limit,
    recipient_name: str | None = None,
    language: Language = ENGLISH,
    ack_url: str | None = None,
) -> Content:
    """The digest's content on ``channel``; ``held`` in any order, at least one; ending
    with ``ack_url`` if given."""
    ordered = sorted(held, key=Held.urgency)
    if channel is Channel.EMAIL:
        return _email(ordered, limit, recipient_name, language, ack_url)
    cap = SMS_MAX_CHARS if channel is Channel.SMS else CHAT_MAX_CHARS
    count, most = _count(ordered, language), limit.describe(language)
    head = language.text("digest.head", count=count, limit=most, channel=channel)
    lines = [h.line(True, language) for h in ordered]
    ack = " " + language.text("ack.short", url=ack_url) if ack_url else ""
    text = fit(head, lines, max(cap - len(ack), 40), language) + ack
    return Content(subject=_subject(ordered, language), text=text)


def fit(head: str, lines: Sequence[str], cap: int, language: Language = ENGLISH) -> str:
    """``head`` and as many ``lines`` as fit in ``cap`` characters, then "and N more"."""
    text = head
    for shown, line in enumerate(lines):
        rest = len(lines) - shown - 1
        candidate = f"{text} {line}{language.text('list.next' if rest else 'list.last')}"
        tail = language.text("list.more", rest=rest) if rest else ""
        if len(candidate) + len(tail) > cap:
            return f"{text}{language.text('list.more', rest=len(lines) - shown)}"[:cap]
        text = candidate
    return text


def _email(
    ordered: Sequence[Held],
    limit: Limit,
    recipient_name: str | None,
    language: Language,
    ack_url: str | None,
) -> Content:
    if recipient_name:
        greeting = language.text("greeting.named", name=recipient_name)
    else:
        greeting = language.text("greeting")
    lead = language.text(
        "digest.lead", count=_count(ordered, language), limit=limit.describe(language)
    )
    lines = "\n".join(f"- {held.line(language=language)}" for held in ordered)
    footer = language.text("footer")
    label = language.text("digest.ack.label")
    ack = f"\n\n{language.text('label', label=label)}\n{ack_url}" if ack_url else ""
    text = f"{greeting}\n\n{lead}\n\n{lines}{ack}\n\n-- \n{footer}\n"
    items = "\n".join(f"<li>{html.escape(held.line(language=language))}</li>" for held in ordered)
    link = f'<p><a href="{html.escape(ack_url)}">{html.escape(label)}</a></p>\n' if ack_url else ""
    body = (
        f'<!DOCTYPE html>\n<html lang="{language.locale}"><body>\n'
        f"<p>{html.escape(greeting)}</p>\n<p>{html.escape(lead)}</p>\n"
        f"<ul>\n{items}\n</ul>\n{link}<p>{html.escape(footer)}</p>\n</body></html>\n"
    )
    return Content(subject=_subject(ordered, language), text=text, html=body)


def _subject(ordered: Sequence[Held], language: Language) -> str:
    count = _count(ordered, language)
    breaches = sum(1 for held in ordered if held.stage == "breach")
    if not breaches:
        return language.text("digest.subject", count=count)
    several = language.text(_plural("digest.breaches", breaches), count=breaches)
    return language.text("digest.subject.breaches", count=count, breaches=several)


def _count(ordered: Sequence[Held], language: Language) -> str:
    return language.text(_plural("digest.count", len(ordered)), count=len(ordered))


def _plural(key: str, count: int) -> str:
    """``<key>.one`` or ``<key>.many``: every table has both (equal without a plural)."""
    return f"{key}.one" if count == 1 else f"{key}.many"


def _when(deadline: datetime | None, compact: bool, language: Language) -> str:
    if deadline is None:
        return language.text("digest.no_deadline")
    pattern = "%m-%d %H:%MZ" if compact else "%Y-%m-%d %H:%M:%S UTC"
    return deadline.astimezone(UTC).strftime(pattern)
