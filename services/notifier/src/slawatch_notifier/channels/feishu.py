"""Feishu / Lark custom bots (自定义机器人): one rich-text ("post") message per send.

    POST <base_url>/open-apis/bot/v2/hook/<token>
    {"timestamp": "1599360473", "sign": "<sign>",
     "msg_type": "post",
     "content": {"post": {"zh_cn": {"title": "<subject>",
                                    "content": [[{"tag": "text", "text": "<line>"}], …]}}}}

Message type: ``post`` (rich text), chosen over ``text`` because it carries the
subject as a real title and keeps every text line as its own paragraph, and
over an interactive card because it needs no card schema. The locale key is
``zh_cn`` as in the documentation's example (a client shows the one locale a
post has). Members in ``at_user_ids`` (open_id / user_id) are @-mentioned on a
last line.

A ``text`` element is plain text (no markdown, no ``<at>``; HTML entities stay
as they are without ``un_escape``): links and mentions exist only as ``a`` and
``at`` elements, and the only ones sent are the configured ``at_user_ids``, so
event text needs no escaping here. The title (one line, at most
``SUBJECT_MAX_CHARS``) and each line lose their control characters, so a line
of the content stays one paragraph.

Signing (签名校验): ``timestamp + "\\n" + secret`` is the HmacSHA256 *key* and the
message is empty; the digest is Base64-encoded (no URL-encoding: it travels in
the JSON body). ``timestamp`` is in seconds and must be within one hour of
Feishu's clock, so it comes from the ``now`` the caller passes in. A bot
configured without a secret sends neither field. ``base_url`` also selects
Lark (``https://open.larksuite.com``).

A person or group is reached through a named bot: ``outbound.address`` is a
key of the ``bots`` mapping.

Answers. ``code`` 0 → delivered; older answers carry ``StatusCode`` /
``StatusMessage`` instead (or as well, ``code`` winning). Non-zero is a failure
even with HTTP 200:

- retryable: 11232 (frequency limited: 100 a minute, 5 a second per bot) and
  9499 when its message says "too many request";
- permanent: 9499 "Bad Request" (malformed body; Feishu uses 9499 for both),
  19001 (param invalid, e.g. unknown hook token), 19007 (bot not enabled),
  19021 (sign match fail or timestamp not within one hour), 19022 (IP not
  allowed), 19024 (key words not found), and any other code.

HTTP 429, 5xx, timeouts and connection errors are retryable; other HTTP errors
without a code are permanent.

Sources: Feishu open platform "自定义机器人使用指南" (custom bot guide,
open.feishu.cn/document/ukTMukTMukTM/ucTM5YjL3ETO24yNxkjN: message shapes,
signature verification with its Python/Go/Java samples, answers and error
codes, frequency limit) and the Feishu Help Center article on custom bots
(feishu.cn/hc/en-US/articles/360024984973: webhook address format). Feishu publishes no fixed-input
signature, so the tests pin one computed with the documented Python sample.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from slawatch_notifier.channels.answers import excerpt, exchange, int_or_none, json_object
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.sanitize import SUBJECT_MAX_CHARS, header_value, printable_lines
from slawatch_notifier.templates import Content

DEFAULT_BASE_URL = "https://open.feishu.cn"
LARK_BASE_URL = "https://open.larksuite.com"
RATE_LIMITED = 11232
OVERLOADED_OR_BAD_REQUEST = 9499
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeishuBot:
    """One configured bot; ``base_url`` is overridable (Lark, or an emulator in tests)."""

    token: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    at_user_ids: tuple[str, ...] = ()
    timeout_s: float = 5.0
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("a Feishu bot needs its hook token")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if httpx.URL(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")


def timestamp_s(now: datetime) -> int:
    """Whole seconds since the epoch."""
    return (now - _EPOCH) // timedelta(seconds=1)


def sign(timestamp: int, secret: str) -> str:
    """The documented signature: Base64 of HmacSHA256(key="<ts>\\n<secret>", message="")."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def post(content: Content, at_user_ids: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``post`` content: subject as title, one paragraph per non-blank text line."""
    rows: list[list[dict[str, str]]] = [
        [{"tag": "text", "text": line.rstrip()}]
        for line in printable_lines(content.text).split("\n")
        if line.strip()
    ]
    if at_user_ids:
        rows.append([{"tag": "at", "user_id": user_id} for user_id in at_user_ids])
    title = header_value(content.subject, SUBJECT_MAX_CHARS) or "slawatch"
    return {"post": {"zh_cn": {"title": title, "content": rows}}}


def request_body(outbound: Outbound, bot: FeishuBot, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if bot.secret:
        stamp = timestamp_s(now)
        body |= {"timestamp": str(stamp), "sign": sign(stamp, bot.secret)}
    return body | {"msg_type": "post", "content": post(outbound.content, bot.at_user_ids)}


def build_request(outbound: Outbound, bot: FeishuBot, now: datetime) -> httpx.Request:
    """The signed POST for ``outbound``; pure: ``now`` supplies the timestamp."""
    return httpx.Request(
        "POST",
        f"{bot.base_url.rstrip('/')}/open-apis/bot/v2/hook/{quote(bot.token, safe='')}",
        json=request_body(outbound, bot, now),
        extensions={"timeout": httpx.Timeout(bot.timeout_s).as_dict()},
    )


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from Feishu stands for; the reason names the code."""
    if status == 429 or status >= 500:
        return Retryable(f"HTTP {status} from Feishu: {excerpt(body)}")
    answer = json_object(body) or {}
    code, message = _code_and_message(answer)
    if code is not None and (code != 0 or 200 <= status < 300):
        return classify_code(code, message)
    if 200 <= status < 300:
        return Retryable(f"Feishu answered HTTP {status} without a code: {excerpt(body)}")
    reason = f"HTTP {status} from Feishu: {excerpt(body)}"
    return Retryable(reason) if status == 408 else Permanent(reason)


def classify_code(code: int, message: str) -> Outcome:
    if code == 0:
        return Delivered(None)
    reason = f"Feishu code {code}: {message}".strip()
    if code == RATE_LIMITED:
        return Retryable(reason)
    if code == OVERLOADED_OR_BAD_REQUEST and "too many request" in message.lower():
        return Retryable(reason)
    return Permanent(reason)


def _code_and_message(answer: Mapping[str, Any]) -> tuple[int | None, str]:
    """``code``/``msg``, or the older ``StatusCode``/``StatusMessage``."""
    code = int_or_none(answer.get("code"))
    if code is not None:
        return code, str(answer.get("msg", ""))
    return int_or_none(answer.get("StatusCode")), str(answer.get("StatusMessage", ""))


class FeishuChannel:
    """Sends through named bots with a shared client; each bot's timeout bounds its sends."""

    def __init__(
        self, client: httpx.AsyncClient, bots: Mapping[str, FeishuBot], clock: Clock
    ) -> None:
        self._client = client
        self._bots = dict(bots)
        self._clock = clock

    async def send(self, outbound: Outbound) -> Outcome:
        bot = self._bots.get(outbound.address)
        if bot is None:
            return Permanent(f"no Feishu bot named {outbound.address!r} is configured")
        request = build_request(outbound, bot, self._clock.now())
        response = await exchange(self._client, request, bot.timeout_s, "Feishu")
        if isinstance(response, Retryable):
            return response
        return classify_response(response.status_code, response.content)
