"""Strict local emulators of the chat robot providers, one small Starlette app each.

Each emulator checks a request the way its provider documents it, with code of
its own (nothing here imports the notifier's adapters): the credential in the
URL, the signature and its timestamp window, the body's shape. It answers
every failure with the provider's own status and error code, and keeps each
message it accepts in ``accepted``.

- ``DingTalkRobots``   POST /robot/send?access_token=…&timestamp=…&sign=…
  加签 checked; a timestamp more than an hour off → 310000 "invalid timestamp",
  a wrong sign → 310000 "sign not match", unknown token → 300001, malformed
  body → 300001 "param error", unknown msgtype → 400105.
- ``WeComRobots``      POST /cgi-bin/webhook/send?key=…
  unknown key → 93000, unknown msgtype → 40008, missing or over-4096-byte
  markdown content / not JSON → 40058.
- ``FeishuBots``       POST /open-apis/bot/v2/hook/<token>
  signature checked (key = "<ts>\\n<secret>", empty message); more than an hour
  off or wrong → 19021, unknown token → 19001, malformed → HTTP 400 + 9499.
- ``SlackHooks``       POST /services/<T>/<B>/<secret>
  unknown hook → 404 no_service, not JSON → 400 invalid_payload, no text →
  400 no_text, bad blocks (header over 150, section over 3000) → 400
  invalid_blocks; success is the body ``ok``.
- ``WebhookReceiver``  POST /slawatch — the generic webhook contract
  (``X-Slawatch-Signature``), replays (timestamp more than 5 minutes off) and
  bad signatures → 401, a malformed body → 422; a repeated ``Idempotency-Key``
  is answered 200 but kept once.

DingTalk, WeCom and Feishu answer business errors with HTTP 200, as they do.
Where a provider's documentation names no code for a malformed request, the
code used is the one those providers are seen answering (noted above).

``fail_next(n, mode)`` makes the next ``n`` requests fail, before any check:
``SERVER_ERROR`` (HTTP 503), ``TOO_MANY_REQUESTS`` (HTTP 429, ``Retry-After:
1``), ``TIMEOUT`` (no answer until the client gives up, or ``hang_s``),
``BUSINESS_ERROR`` (HTTP 200 with the provider's rate-limit code, or ``code``;
Slack: 410 channel_is_archived; the generic receiver: 422) and
``BAD_CREDENTIALS`` (what a wrong token or signature gets).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

Clock = Callable[[], float]


class Mode(StrEnum):
    SERVER_ERROR = "5xx"
    TOO_MANY_REQUESTS = "429"
    TIMEOUT = "timeout"
    BUSINESS_ERROR = "business error"
    BAD_CREDENTIALS = "bad credentials"


@dataclass(frozen=True, slots=True)
class Accepted:
    """One message a provider took: which robot, the parsed body, the request headers."""

    robot: str
    message: dict[str, Any]
    headers: dict[str, str]


class RejectedError(Exception):
    """A request the provider refuses; ``response`` is its answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Emulator:
    """The common part: routing, the failure queue, the hang, the records."""

    path = "/"

    def __init__(self, *, clock: Clock = time.time, hang_s: float = 5.0) -> None:
        self.accepted: list[Accepted] = []
        self.requests = 0
        self.clock = clock
        self.hang_s = hang_s
        self._failures: deque[tuple[Mode, int | None]] = deque()
        self.app = Starlette(routes=[Route(self.path, self._endpoint, methods=["POST"])])

    def fail_next(self, count: int, mode: Mode, *, code: int | None = None) -> None:
        """Fail the next ``count`` requests with ``mode`` (``code``: a business error's code)."""
        self._failures.extend([(mode, code)] * count)

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.requests += 1
        if self._failures:
            mode, code = self._failures.popleft()
            if mode is Mode.TIMEOUT:
                if await _client_gave_up(request, self.hang_s):
                    return Response(status_code=499)
            else:
                return self.failure(mode, code)
        try:
            return self.answer(request, body)
        except RejectedError as rejected:
            return rejected.response

    def failure(self, mode: Mode, code: int | None) -> Response:
        if mode is Mode.SERVER_ERROR:
            return PlainTextResponse("503 Service Temporarily Unavailable", status_code=503)
        if mode is Mode.TOO_MANY_REQUESTS:
            return PlainTextResponse("Too Many Requests", 429, headers={"Retry-After": "1"})
        if mode is Mode.BUSINESS_ERROR:
            return self.business_error(code)
        return self.bad_credentials()

    def answer(self, request: Request, body: bytes) -> Response:
        raise NotImplementedError

    def business_error(self, code: int | None) -> Response:
        raise NotImplementedError

    def bad_credentials(self) -> Response:
        raise NotImplementedError

    def keep(self, robot: str, message: dict[str, Any], request: Request) -> None:
        self.accepted.append(Accepted(robot, message, dict(request.headers)))


# --- DingTalk ----------------------------------------------------------------

DINGTALK_MSGTYPES = frozenset({"text", "link", "markdown", "actionCard", "feedCard"})


def dingtalk_sign(timestamp: str, secret: str) -> str:
    """Base64 of HmacSHA256(secret, timestamp + "\\n" + secret), before URL-encoding."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), "sha256")
    return base64.b64encode(mac.digest()).decode("ascii")


class DingTalkRobots(Emulator):
    """Custom robots by access token; a ``None`` secret means no 加签 on that robot."""

    path = "/robot/send"

    def __init__(self, robots: Mapping[str, str | None], **kwargs: Any) -> None:
        self.robots = dict(robots)
        super().__init__(**kwargs)

    def answer(self, request: Request, body: bytes) -> Response:
        token = request.query_params.get("access_token", "")
        if token not in self.robots:
            raise RejectedError(_errcode(300001, "token is not exist"))
        secret = self.robots[token]
        if secret is not None:
            self._check_sign(request, secret)
        message = _json_object(body)
        if message is None:
            raise RejectedError(_errcode(300001, "param error"))
        if message.get("msgtype") not in DINGTALK_MSGTYPES:
            raise RejectedError(_errcode(400105, "不支持的消息类型"))
        if not _dingtalk_shape_ok(message):
            raise RejectedError(_errcode(300001, "param error"))
        self.keep(token, message, request)
        return _errcode(0, "ok")

    def _check_sign(self, request: Request, secret: str) -> None:
        timestamp = request.query_params.get("timestamp", "")
        if not timestamp.isdigit() or abs(self.clock() * 1000 - int(timestamp)) > 3_600_000:
            raise RejectedError(_errcode(310000, "invalid timestamp"))
        given = request.query_params.get("sign", "")  # query decoding undoes the URL-encoding
        if not hmac.compare_digest(given, dingtalk_sign(timestamp, secret)):
            raise RejectedError(_errcode(310000, "sign not match"))

    def business_error(self, code: int | None) -> Response:
        return _errcode(code or 130101, "send too fast, exceed 20 times per minute")

    def bad_credentials(self) -> Response:
        return _errcode(310000, "sign not match")


def _dingtalk_shape_ok(message: dict[str, Any]) -> bool:
    kind = message["msgtype"]
    part = message.get(kind)
    if not isinstance(part, dict):
        return False
    if kind == "markdown" and not (
        _nonempty_str(part.get("title")) and _nonempty_str(part.get("text"))
    ):
        return False
    if kind == "text" and not _nonempty_str(part.get("content")):
        return False
    at = message.get("at", {})
    mobiles = at.get("atMobiles", []) if isinstance(at, dict) else None
    return isinstance(mobiles, list) and all(isinstance(m, str) for m in mobiles)


# --- WeCom -------------------------------------------------------------------

WECOM_WRONG_JSON = "Warning: wrong json format. invalid Request Parameter"
WECOM_MSGTYPES = frozenset({"text", "markdown", "markdown_v2", "image", "news", "file", "voice"})


class WeComRobots(Emulator):
    """Group robots by webhook key."""

    path = "/cgi-bin/webhook/send"

    def __init__(self, keys: set[str], **kwargs: Any) -> None:
        self.keys = set(keys)
        super().__init__(**kwargs)

    def answer(self, request: Request, body: bytes) -> Response:
        key = request.query_params.get("key", "")
        if key not in self.keys:
            raise RejectedError(_errcode(93000, "invalid webhook url"))
        message = _json_object(body)
        if message is None:
            raise RejectedError(_errcode(40058, WECOM_WRONG_JSON))
        kind = message.get("msgtype")
        if kind not in WECOM_MSGTYPES:
            raise RejectedError(_errcode(40008, "invalid message type"))
        part = message.get(kind)
        content = part.get("content") if isinstance(part, dict) else None
        if kind in ("text", "markdown") and not _nonempty_str(content):
            raise RejectedError(_errcode(40058, f"{kind}.content is empty"))
        if kind == "markdown" and len(str(content).encode("utf-8")) > 4096:
            raise RejectedError(_errcode(40058, "markdown.content exceed max length 4096"))
        self.keep(key, message, request)
        return _errcode(0, "ok")

    def business_error(self, code: int | None) -> Response:
        return _errcode(code or 45009, "api freq out of limit")

    def bad_credentials(self) -> Response:
        return _errcode(93000, "invalid webhook url")


# --- Feishu ------------------------------------------------------------------

FEISHU_MSGTYPES = frozenset({"text", "post", "image", "share_chat", "interactive"})
FEISHU_BAD_TOKEN = "param invalid: incoming webhook access token invalid"
FEISHU_SIGN_FAIL = "sign match fail or timestamp is not within one hour from current time"


def feishu_sign(timestamp: str, secret: str) -> str:
    """The documented Python sample: HMAC-SHA256 keyed by "<ts>\\n<secret>" over b""."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", digestmod=hashlib.sha256).digest()).decode()


class FeishuBots(Emulator):
    """Custom bots by hook token; a ``None`` secret means no signature verification."""

    path = "/open-apis/bot/v2/hook/{token}"

    def __init__(self, bots: Mapping[str, str | None], **kwargs: Any) -> None:
        self.bots = dict(bots)
        super().__init__(**kwargs)

    def answer(self, request: Request, body: bytes) -> Response:
        token = request.path_params["token"]
        message = _json_object(body)
        if message is None:
            raise RejectedError(_feishu(9499, "Bad Request", status=400))
        if token not in self.bots:
            raise RejectedError(_feishu(19001, FEISHU_BAD_TOKEN))
        secret = self.bots[token]
        if secret is not None:
            self._check_sign(message, secret)
        if message.get("msg_type") not in FEISHU_MSGTYPES or not _feishu_shape_ok(message):
            raise RejectedError(_feishu(9499, "Bad Request", status=400))
        self.keep(token, message, request)
        return _feishu(0, "success")

    def _check_sign(self, message: dict[str, Any], secret: str) -> None:
        timestamp = str(message.get("timestamp", ""))
        given = message.get("sign")
        if (
            not timestamp.isdigit()
            or abs(self.clock() - int(timestamp)) > 3600
            or not isinstance(given, str)
            or not hmac.compare_digest(given, feishu_sign(timestamp, secret))
        ):
            raise RejectedError(_feishu(19021, FEISHU_SIGN_FAIL))

    def business_error(self, code: int | None) -> Response:
        message = "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]"
        return _feishu(code or 11232, message)

    def bad_credentials(self) -> Response:
        return _feishu(19021, FEISHU_SIGN_FAIL)


def _feishu_shape_ok(message: dict[str, Any]) -> bool:
    content = message.get("content")
    if not isinstance(content, dict):
        return False
    if message["msg_type"] == "text":
        return _nonempty_str(content.get("text"))
    if message["msg_type"] != "post":
        return True
    locales = content.get("post")
    if not isinstance(locales, dict) or not locales:
        return False
    return all(_feishu_post_ok(post) for post in locales.values())


def _feishu_post_ok(post: Any) -> bool:
    if not isinstance(post, dict) or not isinstance(post.get("title", ""), str):
        return False
    rows = post.get("content")
    return isinstance(rows, list) and all(
        isinstance(row, list) and all(isinstance(el, dict) and "tag" in el for el in row)
        for row in rows
    )


def _feishu(code: int, msg: str, *, status: int = 200) -> JSONResponse:
    answer = {"code": code, "msg": msg, "data": {}}
    if code == 0:  # success answers still carry the legacy fields
        answer |= {"StatusCode": 0, "StatusMessage": "success", "Extra": None}
    return JSONResponse(answer, status_code=status)


# --- Slack -------------------------------------------------------------------


class SlackHooks(Emulator):
    """Incoming webhooks by their ``T…/B…/secret`` path."""

    path = "/services/{team}/{bot}/{secret}"

    def __init__(self, hooks: set[str], **kwargs: Any) -> None:
        self.hooks = set(hooks)
        super().__init__(**kwargs)

    def answer(self, request: Request, body: bytes) -> Response:
        params = request.path_params
        hook = f"{params['team']}/{params['bot']}/{params['secret']}"
        if hook not in self.hooks:
            raise RejectedError(PlainTextResponse("no_service", status_code=404))
        message = _json_object(body)
        if message is None:
            raise RejectedError(PlainTextResponse("invalid_payload", status_code=400))
        blocks = message.get("blocks")
        if not _nonempty_str(message.get("text")) and not blocks:
            raise RejectedError(PlainTextResponse("no_text", status_code=400))
        if blocks is not None and not _slack_blocks_ok(blocks):
            raise RejectedError(PlainTextResponse("invalid_blocks", status_code=400))
        self.keep(hook, message, request)
        return PlainTextResponse("ok")

    def failure(self, mode: Mode, code: int | None) -> Response:
        if mode is Mode.TOO_MANY_REQUESTS:
            return PlainTextResponse("rate_limited", 429, headers={"Retry-After": "1"})
        return super().failure(mode, code)

    def business_error(self, code: int | None) -> Response:
        return PlainTextResponse("channel_is_archived", status_code=code or 410)

    def bad_credentials(self) -> Response:
        return PlainTextResponse("invalid_token", status_code=403)


_SLACK_TEXT_LIMITS = {"header": 150, "section": 3000}


def _slack_blocks_ok(blocks: Any) -> bool:
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return False
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return False
        limit = _SLACK_TEXT_LIMITS.get(block["type"])
        if limit is not None and not _slack_text_ok(block, limit):
            return False
    return True


def _slack_text_ok(block: dict[str, Any], limit: int) -> bool:
    """A header needs plain_text; both need non-empty text within ``limit`` characters."""
    text = block.get("text")
    if not isinstance(text, dict) or not _nonempty_str(text.get("text")):
        return False
    if len(text["text"]) > limit:
        return False
    return block["type"] != "header" or text.get("type") == "plain_text"


# --- the generic webhook -----------------------------------------------------

WEBHOOK_FIELDS = ("notification_id", "ticket_source", "ticket_id", "subject", "text")


class WebhookReceiver(Emulator):
    """A receiver that verifies the contract in ``channels/webhook.py``'s docstring."""

    path = "/slawatch"

    def __init__(self, secret: str, *, tolerance_s: float = 300, **kwargs: Any) -> None:
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.duplicates = 0
        self._seen: dict[str, str] = {}
        super().__init__(**kwargs)

    def answer(self, request: Request, body: bytes) -> Response:
        timestamp = request.headers.get("x-slawatch-timestamp", "")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.tolerance_s:
            raise RejectedError(JSONResponse({"error": "stale or missing timestamp"}, 401))
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, "sha256")
        given = request.headers.get("x-slawatch-signature", "")
        if not hmac.compare_digest(given, "sha256=" + expected.hexdigest()):
            raise RejectedError(JSONResponse({"error": "bad signature"}, 401))
        key = request.headers.get("idempotency-key")
        message = _json_object(body)
        if (
            not key
            or message is None
            or not all(_nonempty_str(message.get(f)) for f in WEBHOOK_FIELDS)
        ):
            raise RejectedError(JSONResponse({"error": "malformed notification"}, 422))
        if key in self._seen:
            self.duplicates += 1
        else:
            self._seen[key] = f"wh-{len(self._seen) + 1}"
            self.keep(key, message, request)
        return JSONResponse({"id": self._seen[key]})

    def business_error(self, code: int | None) -> Response:
        return JSONResponse({"error": "rejected by receiver"}, status_code=code or 422)

    def bad_credentials(self) -> Response:
        return JSONResponse({"error": "bad signature"}, status_code=401)


# --- helpers -------------------------------------------------------------------


async def _client_gave_up(request: Request, hang_s: float) -> bool:
    """Wait until the client disconnects (True) or ``hang_s`` passes (False)."""
    deadline = time.monotonic() + hang_s
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.01)
    return False


def _errcode(code: int, message: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message})


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
