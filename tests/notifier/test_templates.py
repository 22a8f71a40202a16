"""Templates: every message carries the facts a recipient needs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from notifier.factories import sla_event
from slawatch_notifier.templates import SMS_MAX_CHARS, duration, render_email, render_sms


def test_warning_email_has_every_fact_in_text_and_html() -> None:
    content = render_email(sla_event("warning:75"), "warning:75", "Li Wei")
    assert content.subject == (
        "[slawatch] SLA warning: 75% of the response time used for jira:OPS-42 (P1)"
        ": Core switch down in building B"
    )
    assert content.html is not None
    for body in (content.text, content.html):
        for fact in (
            "jira:OPS-42",
            "Core switch down in building B",
            "P1",
            "response",
            "warning:75",
            "2026-11-26 00:30:00 UTC",
            "2026-11-26T00:30:00+00:00",
            "11m 15s of 15m (75%)",
            "Li Wei",
        ):
            assert fact in body, (fact, body)


def test_breach_email_says_the_deadline_passed() -> None:
    content = render_email(sla_event("breach", metric="resolution"), "breach", None)
    assert content.subject.startswith("[slawatch] SLA breach: resolution deadline passed")
    assert content.text.startswith("Hello,\n")


def test_html_escapes_ticket_text() -> None:
    event = sla_event("breach")
    event = event.model_copy(
        update={
            "data": event.data.model_copy(
                update={"ticket": event.data.ticket.model_copy(update={"title": "<b>&"})}
            )
        }
    )
    html = render_email(event, "breach", None).html
    assert html is not None
    assert "&lt;b&gt;&amp;" in html
    assert "<b>&" not in html


def test_deadline_is_shown_in_utc_and_as_given() -> None:
    event = sla_event("breach")
    local = datetime.fromisoformat("2026-11-26T08:30:00+08:00")
    clock = event.data.clock.model_copy(update={"deadline": local})
    event = event.model_copy(update={"data": event.data.model_copy(update={"clock": clock})})
    text = render_email(event, "breach", None).text
    assert "2026-11-26 00:30:00 UTC" in text
    assert "2026-11-26T08:30:00+08:00" in text
    assert local.astimezone(UTC).hour == 0


def test_sms_is_one_short_line_with_the_essentials() -> None:
    text = render_sms(sla_event("breach"), "breach").text
    assert text.startswith(
        "[slawatch] BREACH P1 jira:OPS-42 response deadline 2026-11-26 00:30:00 UTC"
    )
    assert "\n" not in text
    assert len(text) <= SMS_MAX_CHARS


def test_durations() -> None:
    assert [duration(s) for s in (0, 45, 900, 5400, 90061)] == [
        "0s",
        "45s",
        "15m",
        "1h 30m",
        "25h 1m 1s",
    ]


def test_a_lead_time_warning_says_how_long_is_left() -> None:
    stage = "warning:900s-before"
    mail = render_email(sla_event(stage), stage, None)
    assert "SLA warning: 15m left of the response time" in mail.subject
    assert "WARNING 15m left" in render_sms(sla_event(stage), stage).text


def test_every_message_ends_with_its_ack_link_and_an_sms_keeps_it_whole() -> None:
    link = "https://slawatch.example.com/v1/acks/" + "x" * 150
    event = sla_event("breach")
    event = event.model_copy(
        update={
            "data": event.data.model_copy(
                update={"ticket": event.data.ticket.model_copy(update={"title": "y" * 400})}
            )
        }
    )
    mail = render_email(event, "breach", "Li Wei", link)
    assert mail.html is not None
    assert link in mail.text
    assert f'href="{link}"' in mail.html
    sms = render_sms(event, "breach", link)
    assert sms.text.endswith(f" Ack: {link}")
    assert len(sms.text) <= SMS_MAX_CHARS
    assert "Ack:" not in render_sms(event, "breach").text
