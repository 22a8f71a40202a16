"""Templates: the words of every notification. Pure functions of the planned notification.

Email gets a subject, a plain-text body and an HTML alternative built from the
same facts; SMS (and chat) one short line. Everything is English and every time
is shown in UTC next to the deadline exactly as the SLA engine sent it. Every
message ends with its acknowledgement link, when there is one (``acklink.py``);
an SMS is shortened before the link, never the link itself.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier.routing import PlannedNotification

SMS_MAX_CHARS = 320
ACK_LABEL = "Acknowledge (stops the escalation)"


@dataclass(frozen=True, slots=True)
class Content:
    """What a channel sends: ``html`` only for email."""

    subject: str
    text: str
    html: str | None = None


def render(notification: PlannedNotification, ack_url: str | None = None) -> Content:
    """The content for ``notification`` on its channel, ending with ``ack_url`` if given."""
    event, stage = notification.event, notification.stage
    if notification.channel is Channel.EMAIL:
        return render_email(event, stage, notification.recipient_name, ack_url)
    return render_sms(event, stage, ack_url)


def render_email(
    event: SlaEvent, stage: str, recipient_name: str | None, ack_url: str | None = None
) -> Content:
    rows = facts(event, stage)
    greeting = f"Hello {recipient_name}," if recipient_name else "Hello,"
    headline = _headline(event, stage)
    text_rows = "\n".join(f"{label + ':':<18}{value}" for label, value in rows)
    ack = f"\n\n{ACK_LABEL}:\n{ack_url}" if ack_url else ""
    text = f"{greeting}\n\n{headline}.\n\n{text_rows}{ack}\n\n-- \nslawatch SLA monitoring\n"
    html_body = _html(greeting, headline, rows, ack_url)
    return Content(subject=_subject(event, stage), text=text, html=html_body)


def render_sms(event: SlaEvent, stage: str, ack_url: str | None = None) -> Content:
    ticket, clock = event.data.ticket, event.data.clock
    title = f" {ticket.title}" if ticket.title else ""
    text = (
        f"[slawatch] {_stage_label(stage)} {ticket.priority} {ticket.source}:{ticket.id}"
        f" {clock.metric} deadline {_utc(clock.deadline)}, used {_used(event)}.{title}"
    )
    if not ack_url:
        return Content(subject="", text=_clip(text, SMS_MAX_CHARS))
    ack = f" Ack: {ack_url}"
    return Content(subject="", text=_clip(text, max(SMS_MAX_CHARS - len(ack), 40)) + ack)


def facts(event: SlaEvent, stage: str) -> list[tuple[str, str]]:
    """The labelled facts every email shows, in display order."""
    ticket, clock = event.data.ticket, event.data.clock
    rows = [
        ("Ticket", f"{ticket.source}:{ticket.id}"),
        ("Title", ticket.title or "(no title)"),
        ("Priority", str(ticket.priority)),
        ("Metric", str(clock.metric)),
        ("Stage", stage),
        ("Deadline (UTC)", _utc(clock.deadline)),
        ("Deadline", clock.deadline.isoformat() if clock.deadline else "none (clock paused)"),
        ("Time used", _used(event)),
        ("Policy", clock.policy),
    ]
    optional = [("Customer", ticket.customer), ("Service", ticket.service), ("Group", ticket.group)]
    return rows + [(label, value) for label, value in optional if value]


def duration(seconds: int) -> str:
    """``5400`` → ``1h 30m``; ``0`` → ``0s``. Business time, so days are not used."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return " ".join(parts) or "0s"


def _subject(event: SlaEvent, stage: str) -> str:
    ticket = event.data.ticket
    title = f": {ticket.title}" if ticket.title else ""
    return f"[slawatch] {_headline(event, stage)}{title}"


def _headline(event: SlaEvent, stage: str) -> str:
    ticket, clock = event.data.ticket, event.data.clock
    what = f"{ticket.source}:{ticket.id} ({ticket.priority})"
    if stage == "breach":
        return f"SLA breach: {clock.metric} deadline passed for {what}"
    lead = _lead(stage)
    if lead is not None:
        return f"SLA warning: {duration(lead)} left of the {clock.metric} time for {what}"
    return f"SLA warning: {_percent(stage)}% of the {clock.metric} time used for {what}"


def _stage_label(stage: str) -> str:
    if stage == "breach":
        return "BREACH"
    lead = _lead(stage)
    return f"WARNING {duration(lead)} left" if lead is not None else f"WARNING {_percent(stage)}%"


def _percent(stage: str) -> str:
    return stage.partition(":")[2]


def _lead(stage: str) -> int | None:
    """The seconds before the deadline of a ``warning:<seconds>s-before`` stage."""
    rest = stage.partition(":")[2]
    return int(rest.removesuffix("s-before")) if rest.endswith("s-before") else None


def _used(event: SlaEvent) -> str:
    clock = event.data.clock
    used = f"{duration(clock.business_seconds_used)} of {duration(clock.target_seconds)}"
    if clock.target_seconds == 0:
        return used
    return f"{used} ({clock.business_seconds_used * 100 // clock.target_seconds}%)"


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "none (clock paused)"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _html(greeting: str, headline: str, rows: list[tuple[str, str]], ack_url: str | None) -> str:
    cells = "\n".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>'
        for label, value in rows
    )
    ack = (
        f'<p><a href="{html.escape(ack_url)}">{html.escape(ACK_LABEL)}</a></p>\n' if ack_url else ""
    )
    return (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{html.escape(greeting)}</p>\n<p><strong>{html.escape(headline)}.</strong></p>\n"
        f"<table>\n{cells}\n</table>\n{ack}<p>slawatch SLA monitoring</p>\n</body></html>\n"
    )
