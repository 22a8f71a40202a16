"""Templates: every message carries the facts a recipient needs, in their language (pure)."""

from __future__ import annotations

import copy
import dataclasses
import unicodedata
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header

from notifier.factories import CONFIG, ESCALATING, NOW, sla_event
from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.channels.email import build_message
from slawatch_notifier.channels.port import Outbound
from slawatch_notifier.config import parse_config
from slawatch_notifier.digest import Held, Limit, render_digest
from slawatch_notifier.escalation import ChainSnapshot, Firing
from slawatch_notifier.messages import CHINESE
from slawatch_notifier.planner import Planner
from slawatch_notifier.routing import route
from slawatch_notifier.templates import (
    SMS_MAX_CHARS,
    duration,
    render,
    render_email,
    render_sms,
    stage_label,
)

LINK = "https://slawatch.example.com/v1/acks/" + "x" * 150


def _titled(event: SlaEvent, title: str) -> SlaEvent:
    ticket = event.data.ticket.model_copy(update={"title": title})
    return event.model_copy(update={"data": event.data.model_copy(update={"ticket": ticket})})


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
    html = render_email(_titled(sla_event("breach"), "<b>&"), "breach", None).html
    assert html is not None
    assert "&lt;b&gt;&amp;" in html
    assert "<b>&" not in html


def _with_ticket(event: SlaEvent, **fields: str) -> SlaEvent:
    ticket = event.data.ticket.model_copy(update=fields)
    return event.model_copy(update={"data": event.data.model_copy(update={"ticket": ticket})})


def test_every_event_value_is_shown_as_one_line() -> None:
    event = _with_ticket(
        sla_event("breach"),
        id="OPS-42\r\nBcc: x@evil.example",
        title="Core switch\r\nReply-To : attacker@evil.example\u2028\x00down",
        customer="ACME\nPriority: P5",
        service="network\u2029Stage: none",
        group="NOC\x0b\x0cL2",
    )
    mail = render_email(event, "breach", "Li Wei\r\nBcc: y@evil.example")
    assert mail.subject == (
        "[slawatch] SLA breach: response deadline passed for jira:OPS-42 Bcc: x@evil.example (P1)"
        ": Core switch Reply-To : attacker@evil.example down"
    )
    assert mail.text.startswith("Hello Li Wei Bcc: y@evil.example,\n\n")
    rows = mail.text.split("\n\n")[2].splitlines()
    assert [row.split(":", 1)[0] for row in rows] == [
        "Ticket",
        "Title",
        "Priority",
        "Metric",
        "Stage",
        "Deadline (UTC)",
        "Deadline",
        "Time used",
        "Policy",
        "Customer",
        "Service",
        "Group",
    ]
    assert rows[0].endswith(" jira:OPS-42 Bcc: x@evil.example")
    assert rows[1].endswith(" Core switch Reply-To : attacker@evil.example down")
    assert rows[-3:] == [
        "Customer:         ACME Priority: P5",
        "Service:          network Stage: none",
        "Group:            NOC L2",
    ]
    assert mail.html is not None
    assert "\r" not in mail.html
    assert "<td>Core switch Reply-To : attacker@evil.example down</td>" in mail.html
    for text in (mail.subject, mail.html):
        assert not [char for char in text if char in "\r\x00\x0b\x0c\u2028\u2029"]
    sms = render_sms(event, "breach").text
    assert "\n" not in sms
    assert sms.endswith("(100%). Core switch Reply-To : attacker@evil.example down")
    assert " jira:OPS-42 Bcc: x@evil.example " in sms


def test_a_title_of_nothing_printable_is_no_title() -> None:
    event = _titled(sla_event("breach"), "\r\n\x00\u2028 ")
    mail = render_email(event, "breach", "\x00")
    assert mail.subject == "[slawatch] SLA breach: response deadline passed for jira:OPS-42 (P1)"
    assert "(no title)" in mail.text
    assert mail.text.startswith("Hello,\n")
    assert render_sms(event, "breach").text.endswith("(100%).")


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
    assert text == (
        "[slawatch] BREACH P1 jira:OPS-42 response deadline 2026-11-26 00:30:00 UTC,"
        " used 15m of 15m (100%). Core switch down in building B"
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
    link = LINK
    event = _titled(sla_event("breach"), "y" * 400)
    mail = render_email(event, "breach", "Li Wei", link)
    assert mail.html is not None
    assert link in mail.text
    assert f'href="{link}"' in mail.html
    sms = render_sms(event, "breach", link)
    assert sms.text.endswith(f" Ack: {link}")
    assert len(sms.text) <= SMS_MAX_CHARS
    assert "Ack:" not in render_sms(event, "breach").text


def test_the_generic_webhook_gets_the_mails_subject_and_an_sms_none() -> None:
    """The webhook contract (``channels/webhook.py``) carries a subject: a receiver may
    refuse a delivery without one. SMS providers send the text alone."""
    planned = route(sla_event("breach"), parse_config(CONFIG), NOW).notifications
    sms = next(p for p in planned if p.channel is Channel.SMS)
    hook = dataclasses.replace(sms, channel=Channel.WEBHOOK, address="itsm")
    mail = render_email(sla_event("breach"), "breach", None, LINK)
    assert render(hook, LINK).subject == mail.subject
    assert render(hook, LINK).text == render(sms, LINK).text
    assert render(sms, LINK).subject == ""


# --- zh-CN ----------------------------------------------------------------------------


def test_a_zh_cn_warning_email_is_chinese_with_utc_and_beijing_time() -> None:
    content = render_email(sla_event("warning:75"), "warning:75", "李伟", LINK, language=CHINESE)
    assert content.subject == (
        "[slawatch] SLA 预警：jira:OPS-42（P1）的响应时限已用 75%：Core switch down in building B"
    )
    assert content.text.startswith(
        "李伟，您好：\n\nSLA 预警：jira:OPS-42（P1）的响应时限已用 75%。\n"
    )
    assert content.text.endswith(f"确认收到（停止升级）：\n{LINK}\n\n-- \nslawatch SLA 监控\n")
    assert content.html is not None
    assert content.html.startswith('<!DOCTYPE html>\n<html lang="zh-CN">')
    for body in (content.text, content.html):
        for fact in (
            "工单",
            "jira:OPS-42",
            "优先级",
            "指标",
            "响应",
            "warning:75",  # the stage's identifier, as the chain names it
            "2026-11-26 00:30:00 UTC",  # the UTC instant, exactly as in English
            "截止时间（北京时间）",
            "2026-11-26 08:30:00",  # and the wall-clock time the reader lives by
            "2026-11-26T00:30:00+00:00",
            "11分钟15秒 / 15分钟（75%）",
            "network-critical",
        ):
            assert fact in body, (fact, body)
    assert "Hello" not in content.text
    assert "deadline" not in content.text


def test_zh_cn_plain_text_facts_line_up_counting_wide_characters_twice() -> None:
    text = render_email(sla_event("breach"), "breach", None, language=CHINESE).text
    rows = text.split("\n\n")[2].splitlines()
    assert rows[0].startswith("工单：")
    assert rows[-1].startswith("服务：")
    starts = set()
    for row in rows:
        label, _, rest = row.partition("：")
        value_at = len(label) + 1 + len(rest) - len(rest.lstrip(" "))
        starts.add(_columns(row[:value_at]))
    assert len(starts) == 1


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def test_a_zh_cn_breach_sms_fits_320_characters_and_keeps_the_link_whole() -> None:
    event = _titled(sla_event("breach"), "核心交换机宕机" * 60)
    text = render_sms(event, "breach", LINK, language=CHINESE).text
    assert text.startswith(
        "[slawatch] 已超时 P1 jira:OPS-42 响应截止 2026-11-26 00:30:00 UTC"
        "（北京时间 11-26 08:30），已用 15分钟 / 15分钟（100%）。核心交换机宕机"
    )
    assert text.endswith(f"… 确认：{LINK}")
    assert len(text) == SMS_MAX_CHARS  # characters, not the 3 bytes each of these take
    assert "\n" not in text
    assert "确认" not in render_sms(event, "breach", language=CHINESE).text


def test_zh_cn_stage_names_durations_and_metrics() -> None:
    assert [stage_label(s, CHINESE) for s in ("breach", "warning:75", "warning:5400s-before")] == [
        "已超时",
        "警告 75%",
        "警告 剩余 1小时30分钟",
    ]
    assert [duration(s, CHINESE) for s in (0, 45, 5400, 90061)] == [
        "0秒",
        "45秒",
        "1小时30分钟",
        "25小时1分钟1秒",
    ]
    resolution = sla_event("breach", metric="resolution")
    assert "解决时限已过" in render_email(resolution, "breach", None, language=CHINESE).subject
    update = sla_event("warning:900s-before", metric="update")
    mail = render_email(update, "warning:900s-before", None, language=CHINESE)
    assert "jira:OPS-42（P1）的更新时限仅剩 15分钟" in mail.subject


def test_a_paused_clock_has_no_local_time_either() -> None:
    event = sla_event("warning:75")
    clock = event.data.clock.model_copy(update={"deadline": None})
    event = event.model_copy(update={"data": event.data.model_copy(update={"clock": clock})})
    text = render_email(event, "warning:75", None, language=CHINESE).text
    assert "无（计时已暂停）" in text
    assert "北京时间" not in text
    assert "北京时间" not in render_sms(event, "warning:75", language=CHINESE).text


def test_a_zh_cn_digest_is_chinese_and_an_sms_one_fits() -> None:
    base = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    held = [
        Held(f"jira:OPS-{n}", "breach" if n % 3 else "warning:75", base + timedelta(minutes=n))
        for n in range(40)
    ]
    sms = render_digest(held, Channel.SMS, Limit(5, 900), language=CHINESE)
    assert sms.text.startswith(
        "[slawatch] 40 条 SLA 通知因超出 sms 频率限制（每 15分钟 5 条）被暂缓："
    )
    assert " 已超时 jira:OPS-1 截止 11-26 04:01Z；" in sms.text
    assert sms.text.endswith(" 条。")
    assert "另有" in sms.text
    assert len(sms.text) <= SMS_MAX_CHARS
    assert sms.subject == "[slawatch] 40 条 SLA 通知被暂缓（26 条已超时）"
    mail = render_digest(held[:2], Channel.EMAIL, Limit(30, 900), "李伟", CHINESE)
    assert mail.text.startswith(
        "李伟，您好：\n\n超出您的邮件频率限制（每 15分钟 30 条）的 2 条 SLA 通知"
    )
    assert "- 警告 75% jira:OPS-0 截止 2026-11-26 04:00:00 UTC" in mail.text


# --- per recipient ----------------------------------------------------------------------


def test_one_breach_to_two_people_is_worded_in_each_ones_language() -> None:
    section = copy.deepcopy(ESCALATING)  # zhao.lei reads zh-CN, wang.fang en
    planner = Planner(parse_config(section), AckLinks(b"k", "http://n", timedelta(hours=1)))
    steps = [
        {
            "on": "breach",
            "notify": [
                {"to": "zhao.lei", "via": ["sms", "email"]},
                {"to": "wang.fang", "via": ["sms", "email"]},
            ],
        }
    ]
    chain = ChainSnapshot.model_validate({"name": "adhoc", "steps": steps})
    drafts = planner.drafts([Firing(0, "breach")], chain, sla_event("breach"), NOW).drafts
    worded = {(d.planned.recipient, d.planned.channel): d.content for d in drafts}
    assert worded[("zhao.lei", Channel.SMS)].text.startswith("[slawatch] 已超时 P1 jira:OPS-42")
    assert worded[("zhao.lei", Channel.EMAIL)].subject.startswith("[slawatch] SLA 已超时")
    assert worded[("wang.fang", Channel.SMS)].text.startswith("[slawatch] BREACH P1 jira:OPS-42")
    assert worded[("wang.fang", Channel.EMAIL)].subject.startswith("[slawatch] SLA breach")
    assert "确认：http://n/v1/acks/" in worded[("zhao.lei", Channel.SMS)].text
    assert " Ack: http://n/v1/acks/" in worded[("wang.fang", Channel.SMS)].text


def test_a_chinese_subject_is_rfc_2047_encoded_and_decodes_back() -> None:
    content = render_email(sla_event("breach"), "breach", "赵磊", LINK, language=CHINESE)
    outbound = Outbound("n-1", "jira", "OPS-42", "赵磊", "zhao.lei@example.com", content)
    message = build_message(outbound, sender="slawatch <slawatch@example.com>", now=NOW)
    raw = message.as_bytes()
    assert raw.isascii()  # headers encoded, bodies base64
    assert str(message["Subject"]).startswith("=?utf-8?")
    assert str(make_header(decode_header(str(message["Subject"])))) == content.subject
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == content.subject
    assert parsed["To"] == "赵磊 <zhao.lei@example.com>"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content() == content.text
