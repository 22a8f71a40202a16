"""Templates: the words of every notification. Pure functions of the planned notification.

Email gets a subject, a plain-text body and an HTML alternative built from the
same facts; SMS (and chat) one short line. The words come from the
recipient's language (``messages.py``): the notification's ``locale``, which
routing resolved from the person, the group or ``notifier.locale``. Every time
is shown in UTC next to the deadline exactly as the SLA engine sent it; a
language with a local time zone (zh-CN: Beijing time) shows that wall-clock
time as well. Every message ends with its acknowledgement link, when there is
one (``acklink.py``); an SMS is shortened before the link, never the link
itself, and is counted in characters (a Chinese character is one).

Every value taken from the event (the ticket's key, title, customer, service
and group, the policy, the stage, the recipient's name) is shown as one line
(``sanitize.one_line``): a line break or other control character in it could
make the subject two headers, an SMS or chat line read as a second message, or
a plain-text fact look like more facts. The HTML alternative escapes every value.
"""

from __future__ import annotations

import html
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier import messages
from slawatch_notifier.messages import ENGLISH, Language
from slawatch_notifier.routing import PlannedNotification
from slawatch_notifier.sanitize import one_line

SMS_MAX_CHARS = 320
_LABEL_COLUMN = 18
"""Where the values of an email's plain-text facts start, at least (in display columns)."""


@dataclass(frozen=True, slots=True)
class Content:
    """What a channel sends: ``html`` only for email."""

    subject: str
    text: str
    html: str | None = None


def render(notification: PlannedNotification, ack_url: str | None = None) -> Content:
    """The content for ``notification`` on its channel in its recipient's language,
    ending with ``ack_url`` if given."""
    event, stage = notification.event, notification.stage
    words = messages.language(notification.locale)
    if notification.channel is Channel.EMAIL:
        return render_email(event, stage, notification.recipient_name, ack_url, language=words)
    content = render_sms(event, stage, ack_url, language=words)
    if notification.channel is Channel.WEBHOOK:  # its contract has a subject (webhook.py)
        return replace(content, subject=_subject(event, stage, words))
    return content


def render_email(
    event: SlaEvent,
    stage: str,
    recipient_name: str | None,
    ack_url: str | None = None,
    *,
    language: Language = ENGLISH,
) -> Content:
    words = language
    rows = facts(event, stage, words)
    greeting = _greeting(recipient_name, words)
    headline = words.text("sentence", text=_headline(event, stage, words))
    ack_label = words.text("ack.label")
    ack = f"\n\n{words.text('label', label=ack_label)}\n{ack_url}" if ack_url else ""
    footer = words.text("footer")
    text = f"{greeting}\n\n{headline}\n\n{_text_rows(rows, words)}{ack}\n\n-- \n{footer}\n"
    html_body = _html(words, greeting, headline, rows, ack_url)
    return Content(subject=_subject(event, stage, words), text=text, html=html_body)


def render_sms(
    event: SlaEvent, stage: str, ack_url: str | None = None, *, language: Language = ENGLISH
) -> Content:
    words = language
    ticket, clock = event.data.ticket, event.data.clock
    text = words.text(
        "sms",
        stage=stage_label(stage, words),
        priority=ticket.priority,
        ticket=_key(event),
        metric=metric_name(clock.metric, words),
        deadline=_sms_deadline(clock.deadline, words),
        used=_used(event, words),
    )
    title = _title(event)
    if title:
        text = words.text("sms.titled", line=text, title=title)
    if not ack_url:
        return Content(subject="", text=_clip(text, SMS_MAX_CHARS))
    ack = " " + words.text("ack.short", url=ack_url)
    return Content(subject="", text=_clip(text, max(SMS_MAX_CHARS - len(ack), 40)) + ack)


def facts(event: SlaEvent, stage: str, language: Language = ENGLISH) -> list[tuple[str, str]]:
    """The labelled facts every email shows, in display order."""
    words = language
    ticket, clock = event.data.ticket, event.data.clock
    rows = [
        ("fact.ticket", _key(event)),
        ("fact.title", _title(event) or words.text("no_title")),
        ("fact.priority", str(ticket.priority)),
        ("fact.metric", metric_name(clock.metric, words)),
        ("fact.stage", one_line(stage)),  # the identifier, as a chain's ``on:`` names it
        ("fact.deadline_utc", _utc(clock.deadline, words)),
        *_local_row(clock.deadline, words),
        ("fact.deadline", clock.deadline.isoformat() if clock.deadline else _utc(None, words)),
        ("fact.used", _used(event, words)),
        ("fact.policy", one_line(clock.policy)),
    ]
    optional = [
        ("fact.customer", one_line(ticket.customer or "")),
        ("fact.service", one_line(ticket.service or "")),
        ("fact.group", one_line(ticket.group or "")),
    ]
    rows += [(key, value) for key, value in optional if value]
    return [(words.text(key), value) for key, value in rows]


def duration(seconds: int, language: Language = ENGLISH) -> str:
    """``5400`` → ``1h 30m`` (``1小时30分钟``); ``0`` → ``0s``. Business time: no days."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    units = ((hours, "duration.hours"), (minutes, "duration.minutes"), (secs, "duration.seconds"))
    parts = [language.text(key, n=n) for n, key in units if n]
    return language.text("duration.separator").join(parts) or language.text("duration.seconds", n=0)


def stage_label(stage: str, language: Language = ENGLISH) -> str:
    """``BREACH``, ``WARNING 75%``, ``WARNING 15m left`` (``已超时``, ``警告 75%``, …)."""
    if stage == "breach":
        return language.text("stage.breach")
    lead = _lead(stage)
    if lead is not None:
        return language.text("stage.left", left=duration(lead, language))
    return language.text("stage.used", percent=_percent(stage))


def metric_name(metric: str, language: Language = ENGLISH) -> str:
    """``response`` / ``响应``, …"""
    return language.text(f"metric.{metric}")


def _greeting(recipient_name: str | None, words: Language) -> str:
    name = one_line(recipient_name or "")
    if name:
        return words.text("greeting.named", name=name)
    return words.text("greeting")


def _key(event: SlaEvent) -> str:
    """``jira:OPS-42``: the ticket's source and id, as one line."""
    ticket = event.data.ticket
    return one_line(f"{ticket.source}:{ticket.id}")


def _title(event: SlaEvent) -> str:
    """The ticket's title as one line; empty if it has none (or nothing printable)."""
    return one_line(event.data.ticket.title or "")


def _subject(event: SlaEvent, stage: str, words: Language) -> str:
    headline, title = _headline(event, stage, words), _title(event)
    if title:
        return words.text("subject.titled", headline=headline, title=title)
    return words.text("subject", headline=headline)


def _headline(event: SlaEvent, stage: str, words: Language) -> str:
    ticket, clock = event.data.ticket, event.data.clock
    what = words.text("ticket", key=_key(event), priority=ticket.priority)
    metric = metric_name(clock.metric, words)
    if stage == "breach":
        return words.text("headline.breach", metric=metric, ticket=what)
    lead = _lead(stage)
    if lead is not None:
        left = duration(lead, words)
        return words.text("headline.left", left=left, metric=metric, ticket=what)
    return words.text("headline.used", percent=_percent(stage), metric=metric, ticket=what)


def _percent(stage: str) -> str:
    return stage.partition(":")[2]


def _lead(stage: str) -> int | None:
    """The seconds before the deadline of a ``warning:<seconds>s-before`` stage."""
    rest = stage.partition(":")[2]
    return int(rest.removesuffix("s-before")) if rest.endswith("s-before") else None


def _used(event: SlaEvent, words: Language) -> str:
    clock = event.data.clock
    used = duration(clock.business_seconds_used, words)
    target = duration(clock.target_seconds, words)
    if clock.target_seconds == 0:
        return words.text("used", used=used, target=target)
    percent = clock.business_seconds_used * 100 // clock.target_seconds
    return words.text("used.share", used=used, target=target, percent=percent)


def _utc(moment: datetime | None, words: Language) -> str:
    if moment is None:
        return words.text("no_deadline")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _local_row(moment: datetime | None, words: Language) -> list[tuple[str, str]]:
    """The deadline's wall-clock time where the language's readers live, if it has a zone."""
    if moment is None or words.local_zone is None:
        return []
    local = moment.astimezone(ZoneInfo(words.local_zone))
    return [("fact.deadline_local", local.strftime("%Y-%m-%d %H:%M:%S"))]


def _sms_deadline(moment: datetime | None, words: Language) -> str:
    utc = _utc(moment, words)
    if moment is None or words.local_zone is None:
        return utc
    local = moment.astimezone(ZoneInfo(words.local_zone)).strftime("%m-%d %H:%M")
    return words.text("sms.local", utc=utc, local=local)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_rows(rows: list[tuple[str, str]], words: Language) -> str:
    """``Label:`` padded so the values line up, counting a CJK character two columns wide."""
    labels = [words.text("label", label=label) for label, _ in rows]
    column = max([_LABEL_COLUMN, *(_width(label) + 1 for label in labels)])
    return "\n".join(
        f"{label}{' ' * (column - _width(label))}{value}"
        for label, (_, value) in zip(labels, rows, strict=True)
    )


def _width(text: str) -> int:
    """Display columns of ``text`` in a monospaced font: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _html(
    words: Language,
    greeting: str,
    headline: str,
    rows: list[tuple[str, str]],
    ack_url: str | None,
) -> str:
    cells = "\n".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>'
        for label, value in rows
    )
    ack = ""
    if ack_url:
        label = html.escape(words.text("ack.label"))
        ack = f'<p><a href="{html.escape(ack_url)}">{label}</a></p>\n'
    return (
        f'<!DOCTYPE html>\n<html lang="{words.locale}"><body>\n'
        f"<p>{html.escape(greeting)}</p>\n<p><strong>{html.escape(headline)}</strong></p>\n"
        f"<table>\n{cells}\n</table>\n{ack}<p>{html.escape(words.text('footer'))}</p>\n"
        "</body></html>\n"
    )
