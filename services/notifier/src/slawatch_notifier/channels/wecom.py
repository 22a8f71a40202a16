"""WeCom group robots (企业微信群机器人): one markdown message per send.

    POST <base_url>/cgi-bin/webhook/send?key=<key>
    {"msgtype": "markdown", "markdown": {"content": "**<subject>**\\n<text>\\n<@userid>"}}

The robot's key in the URL is its only credential (WeCom group robots have no
signature). ``markdown.content`` may hold at most 4096 UTF-8 bytes, so longer
text is clipped at a character boundary and ends with "…". Members listed in
``mention_user_ids`` are @-mentioned with the ``<@userid>`` syntax markdown
messages support.

The content is plain text; the subject and every line of the text are escaped
by ``sanitize.markdown_text`` (clipping never leaves half an escape), so
nothing an event carries can form a link, a heading, emphasis, a ``<font>`` or
a ``<@userid>`` mention: the robot's own mentions are the only markdown not escaped.

A person or group is reached through a named robot: ``outbound.address`` is a
key of the ``robots`` mapping.

Answers. ``errcode`` 0 → delivered (WeCom answers carry no message id). A
non-zero errcode is a failure even with HTTP 200:

- retryable: 45009 (api freq out of limit: a robot may send 20 messages a
  minute) and -1 (system busy, "retry later" in the global code table);
- permanent: 93000 (invalid webhook url: wrong or deleted key), 40008 (message
  type), 40058 (invalid parameter, e.g. content over 4096 bytes), and any
  other code.

HTTP 429, 5xx, timeouts and connection errors are retryable; other HTTP errors
are permanent.

Sources: WeCom developer documentation "群机器人配置说明"
(developer.work.weixin.qq.com/document/path/91770: webhook, markdown shape and
limits, frequency limit) and "全局错误码" (the errcode table: -1, 40008, 40058,
45009, 93000).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from slawatch_notifier.channels.answers import excerpt, exchange, int_or_none, json_object
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.sanitize import (
    SUBJECT_MAX_CHARS,
    header_value,
    markdown_text,
    printable_lines,
    trim_escape,
)
from slawatch_notifier.templates import Content

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
MARKDOWN_MAX_BYTES = 4096
RETRYABLE_ERRCODES = frozenset({-1, 45009})
_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class WeComRobot:
    """One configured robot; ``base_url`` is overridable so tests can point at an emulator."""

    key: str = field(repr=False)
    mention_user_ids: tuple[str, ...] = ()
    timeout_s: float = 5.0
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a WeCom robot needs its webhook key")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if httpx.URL(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")


def markdown(content: Content, mention_user_ids: tuple[str, ...] = ()) -> str:
    """The markdown content: bold subject, the text, then the mentions; at most 4096 bytes.

    The subject and the text are escaped (``markdown_text``); the mentions are not.
    """
    mentions = "".join(f"<@{user_id}>" for user_id in mention_user_ids)
    subject = markdown_text(header_value(content.subject, SUBJECT_MAX_CHARS))
    head = f"**{subject}**\n" if subject else ""
    tail = f"\n{mentions}" if mentions else ""
    room = MARKDOWN_MAX_BYTES - len(head.encode()) - len(tail.encode())
    lines = printable_lines(content.text.rstrip()).split("\n")
    text = "\n".join(markdown_text(line) for line in lines)
    return head + clip_utf8(text, room) + tail


def clip_utf8(text: str, max_bytes: int) -> str:
    """``text`` if it fits in ``max_bytes`` UTF-8 bytes, else a prefix ending in "…" that does.

    A cut between a backslash and the character it escapes drops the backslash.
    """
    if len(text.encode()) <= max_bytes:
        return text
    room = max(max_bytes - len(_ELLIPSIS.encode()), 0)
    return trim_escape(text.encode()[:room].decode(errors="ignore")) + _ELLIPSIS


def request_body(outbound: Outbound, robot: WeComRobot) -> dict[str, Any]:
    content = markdown(outbound.content, robot.mention_user_ids)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def build_request(outbound: Outbound, robot: WeComRobot) -> httpx.Request:
    """The POST for ``outbound``; pure (WeCom signs nothing, so no time is needed)."""
    return httpx.Request(
        "POST",
        f"{robot.base_url.rstrip('/')}/cgi-bin/webhook/send?key={quote(robot.key, safe='')}",
        json=request_body(outbound, robot),
        extensions={"timeout": httpx.Timeout(robot.timeout_s).as_dict()},
    )


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from WeCom stands for; the reason names the code."""
    if status == 429 or status >= 500:
        return Retryable(f"HTTP {status} from WeCom: {excerpt(body)}")
    answer = json_object(body) or {}
    code = int_or_none(answer.get("errcode"))
    if code is not None and (code != 0 or 200 <= status < 300):
        return classify_errcode(code, str(answer.get("errmsg", "")))
    if 200 <= status < 300:
        return Retryable(f"WeCom answered HTTP {status} without an errcode: {excerpt(body)}")
    reason = f"HTTP {status} from WeCom: {excerpt(body)}"
    return Retryable(reason) if status == 408 else Permanent(reason)


def classify_errcode(code: int, errmsg: str) -> Outcome:
    if code == 0:
        return Delivered(None)
    reason = f"WeCom errcode {code}: {errmsg}".strip()
    return Retryable(reason) if code in RETRYABLE_ERRCODES else Permanent(reason)


class WeComChannel:
    """Sends through named robots with a shared client; each robot's timeout bounds its sends."""

    def __init__(self, client: httpx.AsyncClient, robots: Mapping[str, WeComRobot]) -> None:
        self._client = client
        self._robots = dict(robots)

    async def send(self, outbound: Outbound) -> Outcome:
        robot = self._robots.get(outbound.address)
        if robot is None:
            return Permanent(f"no WeCom robot named {outbound.address!r} is configured")
        request = build_request(outbound, robot)
        response = await exchange(self._client, request, robot.timeout_s, "WeCom")
        if isinstance(response, Retryable):
            return response
        return classify_response(response.status_code, response.content)
