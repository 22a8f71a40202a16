"""Messages: the words of every notification, one table per language. Pure.

A ``Language`` is a locale tag (what ``locale:`` of a person or group and
``notifier.locale`` name), a table of ``str.format`` templates by key, and
optionally the time zone its readers live in: ``templates.py`` then shows
that wall-clock time next to each UTC instant. Chinese readers get Beijing
time (``Asia/Shanghai``) beside the UTC deadline, because the contracts and
the on-call staff count in GMT+8 and a UTC time alone asks them to convert.

Every table has the same keys with the same placeholders (a test checks), so
adding a language is adding one table and one ``Language`` to ``LANGUAGES``.
Identifiers stay as they are in every language: ticket keys, priorities
(P1–P5), policies, customers, services, groups and the raw stage
(``warning:75``, as the chain's ``on:`` says it).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

DEFAULT_LOCALE = "en"

_EN = {
    "greeting": "Hello,",
    "greeting.named": "Hello {name},",
    "sentence": "{text}.",
    "label": "{label}:",
    "footer": "slawatch SLA monitoring",
    "ticket": "{key} ({priority})",
    "subject": "[slawatch] {headline}",
    "subject.titled": "[slawatch] {headline}: {title}",
    "headline.breach": "SLA breach: {metric} deadline passed for {ticket}",
    "headline.left": "SLA warning: {left} left of the {metric} time for {ticket}",
    "headline.used": "SLA warning: {percent}% of the {metric} time used for {ticket}",
    "stage.breach": "BREACH",
    "stage.left": "WARNING {left} left",
    "stage.used": "WARNING {percent}%",
    "metric.response": "response",
    "metric.resolution": "resolution",
    "metric.update": "update",
    "metric.availability": "availability error budget",
    "duration.hours": "{n}h",
    "duration.minutes": "{n}m",
    "duration.seconds": "{n}s",
    "duration.separator": " ",
    "fact.ticket": "Ticket",
    "fact.title": "Title",
    "fact.priority": "Priority",
    "fact.metric": "Metric",
    "fact.stage": "Stage",
    "fact.deadline_utc": "Deadline (UTC)",
    "fact.deadline_local": "Deadline (local time)",
    "fact.deadline": "Deadline",
    "fact.used": "Time used",
    "fact.policy": "Policy",
    "fact.customer": "Customer",
    "fact.service": "Service",
    "fact.group": "Group",
    "no_title": "(no title)",
    "no_deadline": "none (clock paused)",
    "used": "{used} of {target}",
    "used.share": "{used} of {target} ({percent}%)",
    "ack.label": "Acknowledge (stops the escalation)",
    "ack.short": "Ack: {url}",
    "sms": "[slawatch] {stage} {priority} {ticket} {metric} deadline {deadline}, used {used}.",
    "sms.titled": "{line} {title}",
    "sms.local": "{utc} ({local} local time)",
    "digest.count.one": "{count} SLA notification",
    "digest.count.many": "{count} SLA notifications",
    "digest.breaches.one": "{count} breach",
    "digest.breaches.many": "{count} breaches",
    "digest.subject": "[slawatch] {count} held back",
    "digest.subject.breaches": "[slawatch] {count} held back ({breaches})",
    "digest.head": "[slawatch] {count} held back (limit {limit} on {channel}):",
    "digest.lead": "{count} beyond your limit of {limit} on email were held back; "
    "here they are, most urgent first:",
    "digest.limit": "{max} per {per}",
    "digest.ack.label": "Acknowledge them all (stops their escalations)",
    "digest.line": "{stage} {ticket} deadline {deadline}",
    "digest.no_deadline": "none (paused)",
    "list.next": ";",
    "list.last": ".",
    "list.more": " and {rest} more.",
}

_ZH_CN = {
    "greeting": "您好：",
    "greeting.named": "{name}，您好：",
    "sentence": "{text}。",
    "label": "{label}：",
    "footer": "slawatch SLA 监控",
    "ticket": "{key}（{priority}）",
    "subject": "[slawatch] {headline}",
    "subject.titled": "[slawatch] {headline}：{title}",
    "headline.breach": "SLA 已超时：{ticket}的{metric}时限已过",
    "headline.left": "SLA 预警：{ticket}的{metric}时限仅剩 {left}",
    "headline.used": "SLA 预警：{ticket}的{metric}时限已用 {percent}%",
    "stage.breach": "已超时",
    "stage.left": "警告 剩余 {left}",
    "stage.used": "警告 {percent}%",
    "metric.response": "响应",
    "metric.resolution": "解决",
    "metric.update": "更新",
    "metric.availability": "可用性误差预算",
    "duration.hours": "{n}小时",
    "duration.minutes": "{n}分钟",
    "duration.seconds": "{n}秒",
    "duration.separator": "",
    "fact.ticket": "工单",
    "fact.title": "标题",
    "fact.priority": "优先级",
    "fact.metric": "指标",
    "fact.stage": "阶段",
    "fact.deadline_utc": "截止时间（UTC）",
    "fact.deadline_local": "截止时间（北京时间）",
    "fact.deadline": "截止时间（原值）",
    "fact.used": "已用时间",
    "fact.policy": "策略",
    "fact.customer": "客户",
    "fact.service": "服务",
    "fact.group": "支持组",
    "no_title": "（无标题）",
    "no_deadline": "无（计时已暂停）",
    "used": "{used} / {target}",
    "used.share": "{used} / {target}（{percent}%）",
    "ack.label": "确认收到（停止升级）",
    "ack.short": "确认：{url}",
    "sms": "[slawatch] {stage} {priority} {ticket} {metric}截止 {deadline}，已用 {used}。",
    "sms.titled": "{line}{title}",
    "sms.local": "{utc}（北京时间 {local}）",
    "digest.count.one": "{count} 条 SLA 通知",
    "digest.count.many": "{count} 条 SLA 通知",
    "digest.breaches.one": "{count} 条已超时",
    "digest.breaches.many": "{count} 条已超时",
    "digest.subject": "[slawatch] {count}被暂缓",
    "digest.subject.breaches": "[slawatch] {count}被暂缓（{breaches}）",
    "digest.head": "[slawatch] {count}因超出 {channel} 频率限制（{limit}）被暂缓：",
    "digest.lead": "超出您的邮件频率限制（{limit}）的 {count}被暂缓，现按紧急程度依次列出：",
    "digest.limit": "每 {per} {max} 条",
    "digest.ack.label": "全部确认收到（停止这些升级）",
    "digest.line": "{stage} {ticket} 截止 {deadline}",
    "digest.no_deadline": "无（已暂停）",
    "list.next": "；",
    "list.last": "。",
    "list.more": " 另有 {rest} 条。",
}


@dataclass(frozen=True, slots=True)
class Language:
    """One language's message table; ``local_zone``: show local times in this IANA zone too."""

    locale: str
    messages: Mapping[str, str]
    local_zone: str | None = None

    def text(self, key: str, /, **values: object) -> str:
        """The message ``key`` with ``values`` filled in; ``KeyError`` for an unknown key."""
        return self.messages[key].format(**values)


ENGLISH = Language("en", MappingProxyType(_EN))
CHINESE = Language("zh-CN", MappingProxyType(_ZH_CN), local_zone="Asia/Shanghai")

LANGUAGES: Mapping[str, Language] = MappingProxyType(
    {language.locale: language for language in (ENGLISH, CHINESE)}
)
"""Every language by its locale tag; the configuration accepts exactly these tags."""


def language(locale: str | None) -> Language:
    """The language of ``locale``; English for none or one this release does not know
    (a row written by a newer release, or before locales were stored)."""
    return LANGUAGES.get(locale or DEFAULT_LOCALE, ENGLISH)


def known_locale(locale: str) -> str:
    """``locale`` if it has a table, else ``ValueError`` naming the ones that do (config)."""
    if locale not in LANGUAGES:
        raise ValueError(f"unknown locale {locale!r} (locales: {', '.join(sorted(LANGUAGES))})")
    return locale


def placeholders(template: str) -> frozenset[str]:
    """The names ``template`` fills in: ``"{a} of {b}"`` → ``{a, b}``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)
