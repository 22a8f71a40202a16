"""DingTalk custom robots (钉钉自定义机器人): one markdown message per send, signed with 加签.

    POST <base_url>/robot/send?access_token=<token>&timestamp=<ms>&sign=<sign>
    {"msgtype": "markdown",
     "markdown": {"title": "<subject>", "text": "#### <subject>\\n\\n<text lines>"},
     "at": {"atMobiles": ["138…"], "isAtAll": false}}

Signing (加签), as the documentation states it: ``timestamp + "\\n" + secret`` is
the string to sign; HmacSHA256 keyed with the secret; Base64; then URL-encode
(UTF-8). ``timestamp`` is in milliseconds and must be within one hour of
DingTalk's clock, so it comes from the ``now`` the caller passes in. A robot
configured without a secret (keyword or IP-list security) sends no signature.

A person or group is reached through a named robot: ``outbound.address`` is a
key of the ``robots`` mapping. Mobiles in ``at_mobiles`` are @-mentioned; the
text must carry ``@<mobile>`` for DingTalk to highlight them, so it does.

The content is plain text; every line of it (the subject in the heading too)
is escaped by ``sanitize.markdown_text``, so nothing an event carries can form
a link, an image, a heading, emphasis, HTML or an @-mention: the robot's own
``@<mobile>`` line is the only markdown not escaped. ``title`` (the preview in
the conversation list) is plain text: one line, no control characters, at
most ``SUBJECT_MAX_CHARS``.

Answers. HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` → delivered. A
non-zero errcode is a failure even with HTTP 200:

- retryable: 130101 / 410100 (sending too fast; a robot may send 20 messages a
  minute and is throttled for 10 minutes beyond that) and -1 (system busy);
- permanent: 310000 (keyword, signature, timestamp or IP-list check failed),
  300001 / 300005 / 400101 (no such token), 400013 (group dissolved), 400102
  (robot stopped), 400105 (message type), 400106 (robot not in the group),
  430101-430104 (content refused), and any other code.

HTTP 429, 5xx, timeouts and connection errors are retryable; other HTTP errors
are permanent. DingTalk answers carry no message id.

Sources: DingTalk open platform pages "自定义机器人接入"
(open.dingtalk.com/document/group/custom-robot-access; frequency limit),
"自定义机器人安全设置" (加签 algorithm and its Java/Python samples) and
"自定义机器人发送群消息" (message shapes and the error-code table). The older
codes 130101 "send too fast" and 300001 "token is not exist" are the answers
quoted by widely used SDKs (e.g. DingtalkChatbot); the worked signature the
tests pin comes from the ``dingding`` crate's test suite (docs.rs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from slawatch_notifier.channels.answers import excerpt, exchange, int_or_none, json_object
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.sanitize import (
    SUBJECT_MAX_CHARS,
    header_value,
    markdown_text,
    printable_lines,
)
from slawatch_notifier.templates import Content

DEFAULT_BASE_URL = "https://oapi.dingtalk.com"
RETRYABLE_ERRCODES = frozenset({-1, 130101, 410100})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DingTalkRobot:
    """One configured robot; ``base_url`` is overridable so tests can point at an emulator."""

    access_token: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    at_mobiles: tuple[str, ...] = ()
    timeout_s: float = 5.0
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        if not self.access_token:
            raise ValueError("a DingTalk robot needs an access_token")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if httpx.URL(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")


def timestamp_ms(now: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (now - _EPOCH) // timedelta(milliseconds=1)


def sign(timestamp: int, secret: str) -> str:
    """The documented 加签 value: URL-encoded Base64 of HmacSHA256(secret, "<ts>\\n<secret>")."""
    string_to_sign = f"{timestamp}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def markdown(content: Content, at_mobiles: tuple[str, ...] = ()) -> dict[str, str]:
    """``{"title", "text"}``: the subject as title and heading, each text line a paragraph.

    DingTalk's markdown joins single newlines, so lines become paragraphs. Every
    line of the content is escaped (``markdown_text``); the mentions are not.
    """
    title = header_value(content.subject, SUBJECT_MAX_CHARS) or "slawatch"
    lines = printable_lines(content.text).split("\n")
    shown = [markdown_text(line.rstrip()) for line in lines if line.strip()]
    if at_mobiles:
        shown.append(" ".join(f"@{mobile}" for mobile in at_mobiles))
    return {"title": title, "text": "\n\n".join([f"#### {markdown_text(title)}", *shown])}


def request_body(outbound: Outbound, robot: DingTalkRobot) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": markdown(outbound.content, robot.at_mobiles),
        "at": {"atMobiles": list(robot.at_mobiles), "isAtAll": False},
    }


def build_request(outbound: Outbound, robot: DingTalkRobot, now: datetime) -> httpx.Request:
    """The signed POST for ``outbound``; pure: ``now`` supplies the timestamp."""
    query = f"access_token={quote(robot.access_token, safe='')}"
    if robot.secret:
        stamp = timestamp_ms(now)
        query += f"&timestamp={stamp}&sign={sign(stamp, robot.secret)}"
    return httpx.Request(
        "POST",
        f"{robot.base_url.rstrip('/')}/robot/send?{query}",
        json=request_body(outbound, robot),
        extensions={"timeout": httpx.Timeout(robot.timeout_s).as_dict()},
    )


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from DingTalk stands for; the reason names the code."""
    if status == 429 or status >= 500:
        return Retryable(f"HTTP {status} from DingTalk: {excerpt(body)}")
    answer = json_object(body) or {}
    code = int_or_none(answer.get("errcode"))
    if code is not None and (code != 0 or 200 <= status < 300):
        return classify_errcode(code, str(answer.get("errmsg", "")))
    if 200 <= status < 300:
        return Retryable(f"DingTalk answered HTTP {status} without an errcode: {excerpt(body)}")
    reason = f"HTTP {status} from DingTalk: {excerpt(body)}"
    return Retryable(reason) if status == 408 else Permanent(reason)


def classify_errcode(code: int, errmsg: str) -> Outcome:
    if code == 0:
        return Delivered(None)
    reason = f"DingTalk errcode {code}: {errmsg}".strip()
    return Retryable(reason) if code in RETRYABLE_ERRCODES else Permanent(reason)


class DingTalkChannel:
    """Sends through named robots with a shared client; each robot's timeout bounds its sends."""

    def __init__(
        self, client: httpx.AsyncClient, robots: Mapping[str, DingTalkRobot], clock: Clock
    ) -> None:
        self._client = client
        self._robots = dict(robots)
        self._clock = clock

    async def send(self, outbound: Outbound) -> Outcome:
        robot = self._robots.get(outbound.address)
        if robot is None:
            return Permanent(f"no DingTalk robot named {outbound.address!r} is configured")
        request = build_request(outbound, robot, self._clock.now())
        response = await exchange(self._client, request, robot.timeout_s, "DingTalk")
        if isinstance(response, Retryable):
            return response
        return classify_response(response.status_code, response.content)
