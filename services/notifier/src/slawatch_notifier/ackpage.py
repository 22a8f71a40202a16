"""The HTML pages of an acknowledgement link. Pure: what to show comes in, a page goes out.

Following a link (``GET /v1/acks/<token>``) shows ``confirm_page``: what the
link acknowledges, for whom, whether it is acknowledged already, and one
button that posts to the same URL; that ``POST`` shows ``acknowledged_page``.
A token that cannot be honoured gets ``refusal_page`` (403 / 404 / 410 / 422).

The pages speak the recipient's language (``messages.py``: the locale stored
with the notifications the link came in; English otherwise); a refusal, which
may not know its recipient, speaks every language. Every piece of event text
is escaped. There is no script and no style, so the pages work under a
``default-src 'none'`` policy (``HEADERS``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from slawatch_notifier import messages
from slawatch_notifier.messages import Language
from slawatch_notifier.templates import metric_name, stage_label

HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex, nofollow",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": (
            "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }
)
"""Every link page: never cached or indexed, the token never leaves in a Referer, no
script runs, no other site frames it."""

_EN = {
    "title.confirm.one": "Acknowledge this escalation?",
    "title.confirm.many": "Acknowledge these {count} escalations?",
    "title.done": "Acknowledged",
    "title.already": "Already acknowledged",
    "title.ended": "Nothing to acknowledge",
    "title.refused": "This link cannot be used",
    "for": "This link was sent to {recipient}.",
    "recipient.named": "{name} ({id})",
    "explain.one": "Acknowledging stops this escalation: its pending steps (reminders, "
    "the next people in the chain) are cancelled. What was already sent stays sent.",
    "explain.many": "This link came with a digest; acknowledging stops every escalation "
    "folded into it: their pending steps are cancelled. What was already sent stays sent.",
    "safe": "Opening this page changed nothing: only the button acknowledges.",
    "button.one": "Acknowledge",
    "button.many": "Acknowledge all {count}",
    "done": "Acknowledged on behalf of {recipient}: the pending steps are cancelled.",
    "already": "Nothing changed: this was acknowledged before.",
    "ended": "Nothing changed: this no longer escalates.",
    "column.ticket": "Ticket",
    "column.title": "Title",
    "column.metric": "Metric",
    "column.stage": "Stage",
    "column.status": "Status",
    "status.active": "not acknowledged",
    "status.acknowledged": "acknowledged by {by} at {at}",
    "status.stopped": "no longer escalating ({reason})",
    "time.local": "{utc} ({local} local time)",
    "no_title": "(no title)",
    "refused.403": "The link is not genuine: its signature does not match. "
    "Use the link exactly as the message gave it.",
    "refused.404": "There is no escalation for this link.",
    "refused.410": "The link has expired. Use the link of a newer message, "
    "or acknowledge through the notifier's API (POST /v1/acks).",
    "refused.422": "The link is damaged or incomplete. "
    "Use the link exactly as the message gave it.",
    "detail": "Detail: {detail}",
    "footer": "slawatch SLA monitoring",
}

_ZH_CN = {
    "title.confirm.one": "确认收到此升级？",
    "title.confirm.many": "确认收到这 {count} 个升级？",
    "title.done": "已确认收到",
    "title.already": "此前已确认收到",
    "title.ended": "无需确认",
    "title.refused": "此链接无法使用",
    "for": "此链接发给 {recipient}。",
    "recipient.named": "{name}（{id}）",
    "explain.one": "确认收到后，此升级停止：尚未执行的步骤（提醒、链上的下一位）将被取消。"
    "已经发出的通知不受影响。",
    "explain.many": "此链接来自一条汇总通知；确认收到后，汇总中的每个升级都停止："
    "尚未执行的步骤将被取消。已经发出的通知不受影响。",
    "safe": "打开此页面不会改变任何状态：只有点击按钮才会确认收到。",
    "button.one": "确认收到",
    "button.many": "全部确认收到（{count} 个）",
    "done": "已代表 {recipient} 确认收到：尚未执行的步骤已取消。",
    "already": "未做任何改变：此前已确认收到。",
    "ended": "未做任何改变：已不再升级。",
    "column.ticket": "工单",
    "column.title": "标题",
    "column.metric": "指标",
    "column.stage": "阶段",
    "column.status": "状态",
    "status.active": "尚未确认",
    "status.acknowledged": "已由 {by} 于 {at} 确认",
    "status.stopped": "已不再升级（{reason}）",
    "time.local": "{utc}（北京时间 {local}）",
    "no_title": "（无标题）",
    "refused.403": "链接无效：签名不匹配。请使用通知中的原始链接。",
    "refused.404": "找不到此链接对应的升级。",
    "refused.410": "链接已过期。请使用更新的通知中的链接，"
    "或通过通知服务的 API（POST /v1/acks）确认。",
    "refused.422": "链接已损坏或不完整。请使用通知中的原始链接。",
    "detail": "详情：{detail}",
    "footer": "slawatch SLA 监控",
}

WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"en": MappingProxyType(_EN), "zh-CN": MappingProxyType(_ZH_CN)}
)
"""The pages' words by locale: the same locales as ``messages.LANGUAGES``, the same keys
and placeholders in each (a test checks)."""

ACTIVE, ACKNOWLEDGED = "active", "acknowledged"


@dataclass(frozen=True, slots=True)
class Subject:
    """One escalation a link acknowledges, as its page shows it."""

    ticket_source: str
    ticket_id: str
    title: str | None
    metric: str
    stage: str | None
    status: str
    reason: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    changed: bool = False
    """This request acknowledged it."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who the link was made for: the recipient id it is signed for, their name if known."""

    id: str
    name: str | None = None


def confirm_page(
    subjects: Sequence[Subject], recipient: Recipient, *, digest: bool, locale: str | None
) -> str:
    """What ``subjects`` are and a button that acknowledges them, unless none is active."""
    language = messages.language(locale)
    words = _words(language)
    active = sum(subject.status == ACTIVE for subject in subjects)
    if active == 0:
        title = words.text("title.already" if _all_acknowledged(subjects) else "title.ended")
    elif active > 1:
        title = words.text("title.confirm.many", count=active)
    else:
        title = words.text("title.confirm.one")
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(words.text('for', recipient=_recipient(recipient, words)))}</p>",
        _table(subjects, language),
    ]
    if active:
        explain = words.text("explain.many" if digest else "explain.one")
        button = words.text("button.many", count=active) if active > 1 else words.text("button.one")
        parts += [
            f"<p>{_e(explain)}</p>",
            f'<form method="post">\n<button type="submit">{_e(button)}</button>\n</form>',
            f"<p>{_e(words.text('safe'))}</p>",
        ]
    return _page(language.locale, title, parts, words)


def acknowledged_page(subjects: Sequence[Subject], recipient: Recipient, locale: str | None) -> str:
    """What a ``POST`` of the link did to ``subjects``."""
    language = messages.language(locale)
    words = _words(language)
    if any(subject.changed for subject in subjects):
        title = words.text("title.done")
        lead = words.text("done", recipient=_recipient(recipient, words))
    elif _all_acknowledged(subjects):
        title, lead = words.text("title.already"), words.text("already")
    else:
        title, lead = words.text("title.ended"), words.text("ended")
    parts = [f"<h1>{_e(title)}</h1>", f"<p>{_e(lead)}</p>", _table(subjects, language)]
    return _page(language.locale, title, parts, words)


def refusal_page(status_code: int, detail: str) -> str:
    """Why the link cannot be used (its HTTP status), in every language."""
    parts = []
    for locale in WORDS:
        words = _Words(WORDS[locale])
        parts.append(
            f'<div lang="{locale}">\n<h1>{_e(words.text("title.refused"))}</h1>\n'
            f"<p>{_e(words.text(f'refused.{status_code}'))}</p>\n"
            f"<p>{_e(words.text('detail', detail=detail))}</p>\n</div>"
        )
    english = _Words(WORDS[messages.DEFAULT_LOCALE])
    return _page(messages.DEFAULT_LOCALE, english.text("title.refused"), parts, english)


@dataclass(frozen=True, slots=True)
class _Words:
    table: Mapping[str, str]

    def text(self, key: str, /, **values: object) -> str:
        return self.table[key].format(**values)


def _words(language: Language) -> _Words:
    return _Words(WORDS.get(language.locale, WORDS[messages.DEFAULT_LOCALE]))


def _all_acknowledged(subjects: Sequence[Subject]) -> bool:
    return bool(subjects) and all(subject.status == ACKNOWLEDGED for subject in subjects)


def _recipient(recipient: Recipient, words: _Words) -> str:
    if recipient.name and recipient.name != recipient.id:
        return words.text("recipient.named", name=recipient.name, id=recipient.id)
    return recipient.id


def _table(subjects: Sequence[Subject], language: Language) -> str:
    words = _words(language)
    columns = ("ticket", "title", "metric", "stage", "status")
    head = "".join(f'<th align="left">{_e(words.text(f"column.{c}"))}</th>' for c in columns)
    rows = [
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in _cells(subject, language)) + "</tr>"
        for subject in subjects
    ]
    return "<table>\n<tr>" + head + "</tr>\n" + "\n".join(rows) + "\n</table>"


def _cells(subject: Subject, language: Language) -> tuple[str, ...]:
    words = _words(language)
    return (
        f"{subject.ticket_source}:{subject.ticket_id}",
        subject.title or words.text("no_title"),
        metric_name(subject.metric, language),
        stage_label(subject.stage, language) if subject.stage else "-",
        _status(subject, language),
    )


def _status(subject: Subject, language: Language) -> str:
    words = _words(language)
    if subject.status == ACKNOWLEDGED:
        at = _when(subject.acknowledged_at, language)
        return words.text("status.acknowledged", by=subject.acknowledged_by or "?", at=at)
    if subject.status == ACTIVE:
        return words.text("status.active")
    return words.text("status.stopped", reason=subject.reason or subject.status)


def _when(moment: datetime | None, language: Language) -> str:
    if moment is None:
        return "?"
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if language.local_zone is None:
        return utc
    local = moment.astimezone(ZoneInfo(language.local_zone)).strftime("%Y-%m-%d %H:%M:%S")
    return _words(language).text("time.local", utc=utc, local=local)


def _page(locale: str, title: str, parts: Sequence[str], words: _Words) -> str:
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="{_e(locale)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)} - slawatch</title>\n</head>\n<body>\n{body}\n"
        f"<p><small>{_e(words.text('footer'))}</small></p>\n</body>\n</html>\n"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
