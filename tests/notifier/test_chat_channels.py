"""Chat robot channels: signatures, request shapes, classification, and strict emulators.

The emulators (``support.providers_chat``) check signatures with code of their
own, so a send they accept is a signature the provider's rule accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from markdown_it import MarkdownIt

from notifier.factories import sla_event
from slawatch_common.events import SlaEvent
from slawatch_notifier.channels import dingtalk, feishu, slack, webhook, wecom
from slawatch_notifier.channels.dingtalk import DingTalkChannel, DingTalkRobot
from slawatch_notifier.channels.feishu import FeishuBot, FeishuChannel
from slawatch_notifier.channels.port import (
    ChannelPort,
    Delivered,
    Outbound,
    Outcome,
    Permanent,
    Retryable,
)
from slawatch_notifier.channels.slack import SlackChannel, SlackWebhook
from slawatch_notifier.channels.webhook import WebhookChannel, WebhookTarget
from slawatch_notifier.channels.wecom import WeComChannel, WeComRobot
from slawatch_notifier.clock import Clock, SystemClock
from slawatch_notifier.templates import Content, render_sms
from support.net import free_port
from support.providers_chat import (
    WEBHOOK_FIELDS,
    DingTalkRobots,
    Emulator,
    FeishuBots,
    Mode,
    SlackHooks,
    WebhookReceiver,
    WeComRobots,
)
from support.serving import serving

NOW = datetime(2026, 11, 26, 0, 26, 15, 123000, tzinfo=UTC)
TOKEN = "0123456789abcdef"
SECRET = "SEC0123456789abcdef"
FAST = 0.2  # the client timeout in the timeout case, which waits this long
STEADY = 5.0  # the client timeout in every other send: never reached on loopback

SUBJECT = "[slawatch] Warning: P2 jira:OPS-42 response 75% used"
SUBJECT_MARKDOWN = (
    "\\[slawatch\\] Warning: P2 jira:OPS-42 response 75% used"  # as markdown shows it
)
TEXT = "Hello Li Wei,\n\nTicket:   jira:OPS-42\nTitle:    Payments <down> & out\n\n-- \nslawatch\n"


def _outbound(
    address: str = "ops",
    notification_id: str = "n-1",
    text: str = TEXT,
    content: Content | None = None,
) -> Outbound:
    return Outbound(
        notification_id=notification_id,
        ticket_source="jira",
        ticket_id="OPS-42",
        recipient_name="Li Wei",
        address=address,
        content=content or Content(SUBJECT, text),
    )


def _json(request: httpx.Request) -> Any:
    return json.loads(request.content)


class _ShiftedClock:
    """Real time moved by ``offset``: a sender whose clock is off."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


# --- DingTalk, pure ------------------------------------------------------------


def test_dingtalk_sign_matches_a_third_party_worked_example() -> None:
    # The ``dingding`` crate's test vector (docs.rs), computed with the documented rule.
    assert dingtalk.sign(1700000000000, "secret") == (
        "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
    )


def test_dingtalk_sign_is_the_documented_python_sample() -> None:
    # The documentation's Python sample, step by step, for a fixed timestamp.
    timestamp, secret = "1732580775123", SECRET
    string_to_sign = f"{timestamp}\n{secret}".encode()
    hmac_code = hmac.new(secret.encode(), string_to_sign, digestmod=hashlib.sha256).digest()
    assert dingtalk.sign(int(timestamp), secret) == quote_plus(base64.b64encode(hmac_code))


def test_dingtalk_timestamp_is_exact_milliseconds() -> None:
    assert dingtalk.timestamp_ms(NOW) == 1795652775123
    assert dingtalk.timestamp_ms(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1000


def test_dingtalk_request_is_signed_markdown_with_mentions() -> None:
    robot = DingTalkRobot(TOKEN, SECRET, at_mobiles=("13800000001",), timeout_s=3)
    request = dingtalk.build_request(_outbound(), robot, NOW)
    params = request.url.params
    assert request.method == "POST"
    assert request.url.host == "oapi.dingtalk.com"
    assert request.url.path == "/robot/send"
    assert params["access_token"] == TOKEN
    assert params["timestamp"] == "1795652775123"
    # The query decodes the URL-encoding once, leaving the Base64 signature.
    expected = hmac.new(SECRET.encode(), f"1795652775123\n{SECRET}".encode(), "sha256").digest()
    assert params["sign"] == base64.b64encode(expected).decode()
    body = _json(request)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == SUBJECT
    assert body["markdown"]["text"].startswith(
        f"#### {SUBJECT_MARKDOWN}\n\nHello Li Wei,\n\nTicket:"
    )
    assert "Title:    Payments ＜down＞ \\& out" in body["markdown"]["text"]
    assert body["markdown"]["text"].endswith("\n\n@13800000001")
    assert body["at"] == {"atMobiles": ["13800000001"], "isAtAll": False}
    assert request.extensions["timeout"]["read"] == 3


def test_dingtalk_robot_without_secret_sends_no_signature() -> None:
    request = dingtalk.build_request(_outbound(), DingTalkRobot(TOKEN), NOW)
    assert set(request.url.params.keys()) == {"access_token"}


def test_dingtalk_build_request_is_pure() -> None:
    robot = DingTalkRobot(TOKEN, SECRET)
    first, again = (dingtalk.build_request(_outbound(), robot, NOW) for _ in range(2))
    assert first.url == again.url
    assert first.content == again.content


def test_dingtalk_secrets_stay_out_of_repr() -> None:
    assert TOKEN not in repr(DingTalkRobot(TOKEN, SECRET))
    assert SECRET not in repr(DingTalkRobot(TOKEN, SECRET))


@pytest.mark.parametrize(
    ("status", "body", "kind", "named"),
    [
        (200, {"errcode": 0, "errmsg": "ok"}, Delivered, None),
        (200, {"errcode": 130101, "errmsg": "send too fast"}, Retryable, "130101"),
        (200, {"errcode": 410100, "errmsg": "发送速度太快而限流"}, Retryable, "410100"),
        (200, {"errcode": -1, "errmsg": "系统繁忙"}, Retryable, "-1"),
        (200, {"errcode": 310000, "errmsg": "sign not match"}, Permanent, "310000"),
        (200, {"errcode": 310000, "errmsg": "keywords not in content"}, Permanent, "310000"),
        (200, {"errcode": 300001, "errmsg": "token is not exist"}, Permanent, "300001"),
        (200, {"errcode": 400101, "errmsg": "access_token不存在"}, Permanent, "400101"),
        (200, {"errcode": 400102, "errmsg": "机器人已停用"}, Permanent, "400102"),
        (200, {"errcode": 400013, "errmsg": "群已被解散"}, Permanent, "400013"),
        (200, {"errcode": 430102, "errmsg": "含有不合适的文本"}, Permanent, "430102"),
        (200, {"errcode": "130101", "errmsg": "as a string"}, Retryable, "130101"),
        (200, "<html>portal</html>", Retryable, "without an errcode"),
        (429, "", Retryable, "HTTP 429"),
        (502, "bad gateway", Retryable, "HTTP 502"),
        (408, "", Retryable, "HTTP 408"),
        (404, "not found", Permanent, "HTTP 404"),
        (400, {"errcode": 0, "errmsg": "odd"}, Permanent, "HTTP 400"),
    ],
)
def test_dingtalk_classification(status: int, body: Any, kind: type, named: str | None) -> None:
    _check_classified(dingtalk.classify_response(status, _bytes(body)), kind, named)


# --- WeCom, pure ---------------------------------------------------------------


def test_wecom_request_is_markdown_with_mentions() -> None:
    robot = WeComRobot("key-1", mention_user_ids=("li.wei",), timeout_s=2)
    request = wecom.build_request(_outbound(), robot)
    assert request.url.host == "qyapi.weixin.qq.com"
    assert request.url.path == "/cgi-bin/webhook/send"
    assert request.url.params["key"] == "key-1"
    content = _json(request)["markdown"]["content"]
    assert _json(request)["msgtype"] == "markdown"
    assert content.startswith(f"**{SUBJECT_MARKDOWN}**\nHello Li Wei,")
    assert content.endswith("\n<@li.wei>")
    assert request.extensions["timeout"]["connect"] == 2


def test_wecom_markdown_is_clipped_to_4096_bytes_at_a_character() -> None:
    content = wecom.markdown(Content("标题", "告警" * 3000), ("li.wei",))
    size = len(content.encode())
    assert 4096 - 3 < size <= 4096
    assert content.endswith("…\n<@li.wei>")
    assert wecom.markdown(Content("s", "short")) == "**s**\nshort"


def test_wecom_clipping_never_leaves_half_an_escape() -> None:
    for text in ("\\" * 3000, "x" + "\\" * 3000):
        content = wecom.markdown(Content("", text))
        assert len(content.encode()) <= 4096
        kept = content.removesuffix("…")
        assert len(kept) < len(content)
        assert (len(kept) - len(kept.rstrip("\\"))) % 2 == 0  # each backslash escaped


@pytest.mark.parametrize(
    ("status", "body", "kind", "named"),
    [
        (200, {"errcode": 0, "errmsg": "ok"}, Delivered, None),
        (200, {"errcode": 45009, "errmsg": "api freq out of limit"}, Retryable, "45009"),
        (200, {"errcode": -1, "errmsg": "system busy"}, Retryable, "-1"),
        (200, {"errcode": 93000, "errmsg": "invalid webhook url"}, Permanent, "93000"),
        (200, {"errcode": 40058, "errmsg": "exceed max length"}, Permanent, "40058"),
        (200, {"errcode": 40008, "errmsg": "invalid message type"}, Permanent, "40008"),
        (200, b"", Retryable, "without an errcode"),
        (503, "", Retryable, "HTTP 503"),
        (429, "", Retryable, "HTTP 429"),
        (403, "forbidden", Permanent, "HTTP 403"),
    ],
)
def test_wecom_classification(status: int, body: Any, kind: type, named: str | None) -> None:
    _check_classified(wecom.classify_response(status, _bytes(body)), kind, named)


# --- Feishu, pure --------------------------------------------------------------


def test_feishu_sign_is_the_documented_python_sample() -> None:
    # Feishu publishes the algorithm, not a fixed example: this value is what the
    # documentation's Python 3 sample prints for these inputs (and what a
    # third-party suite pins for them).
    assert feishu.sign(1756800000, "orbit-test-secret") == (
        "sN+9ZKa5w6BQmKyxCaxNA1DWEgtEnZaOcfEOCqZ26fg="
    )
    key = f"1599360473\n{SECRET}".encode()
    sample = base64.b64encode(hmac.new(key, b"", digestmod=hashlib.sha256).digest()).decode()
    assert feishu.sign(1599360473, SECRET) == sample


def test_feishu_request_is_a_signed_post_message() -> None:
    bot = FeishuBot(TOKEN, SECRET, at_user_ids=("ou_1",), timeout_s=4)
    request = feishu.build_request(_outbound(), bot, NOW)
    assert request.url == httpx.URL(f"https://open.feishu.cn/open-apis/bot/v2/hook/{TOKEN}")
    body = _json(request)
    assert body["timestamp"] == "1795652775"
    assert body["sign"] == feishu.sign(1795652775, SECRET)
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == SUBJECT
    assert post["content"][0] == [{"tag": "text", "text": "Hello Li Wei,"}]
    assert post["content"][2] == [{"tag": "text", "text": "Title:    Payments <down> & out"}]
    assert post["content"][-1] == [{"tag": "at", "user_id": "ou_1"}]
    assert request.extensions["timeout"]["read"] == 4


def test_feishu_bot_without_secret_and_lark_base() -> None:
    bot = FeishuBot(TOKEN, base_url=feishu.LARK_BASE_URL)
    request = feishu.build_request(_outbound(), bot, NOW)
    assert request.url.host == "open.larksuite.com"
    assert "sign" not in _json(request)
    assert "timestamp" not in _json(request)


@pytest.mark.parametrize(
    ("status", "body", "kind", "named"),
    [
        (200, {"code": 0, "msg": "success", "data": {}}, Delivered, None),
        (200, {"StatusCode": 0, "StatusMessage": "success"}, Delivered, None),
        (200, {"code": 11232, "msg": "frequency limited psm[…]"}, Retryable, "11232"),
        (400, {"code": 9499, "msg": "too many request", "data": {}}, Retryable, "9499"),
        (400, {"code": 9499, "msg": "Bad Request", "data": {}}, Permanent, "9499"),
        (200, {"code": 19021, "msg": "sign match fail"}, Permanent, "19021"),
        (200, {"code": 19022, "msg": "Ip Not Allowed"}, Permanent, "19022"),
        (200, {"code": 19024, "msg": "Key Words Not Found"}, Permanent, "19024"),
        (200, {"code": 19007, "msg": "Bot Not Enabled"}, Permanent, "19007"),
        (200, {"StatusCode": 19021, "StatusMessage": "sign match fail"}, Permanent, "19021"),
        (200, "not json", Retryable, "without a code"),
        (500, "", Retryable, "HTTP 500"),
        (429, "", Retryable, "HTTP 429"),
        (404, "page not found", Permanent, "HTTP 404"),
    ],
)
def test_feishu_classification(status: int, body: Any, kind: type, named: str | None) -> None:
    _check_classified(feishu.classify_response(status, _bytes(body)), kind, named)


# --- Slack, pure ---------------------------------------------------------------


def test_slack_message_has_fallback_header_and_escaped_section() -> None:
    request = slack.build_request(
        _outbound(), SlackWebhook("https://hooks.slack.com/services/T/B/x")
    )
    body = _json(request)
    assert body["text"] == SUBJECT
    header, section = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": SUBJECT}}
    assert section["text"]["type"] == "mrkdwn"
    assert "Payments &lt;down&gt; &amp; out" in section["text"]["text"]


def test_slack_clips_to_block_limits_without_breaking_escapes() -> None:
    message = slack.message(Content("S" * 400, "&" * 2000))
    header = message["blocks"][0]["text"]["text"]
    section = message["blocks"][1]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")
    assert len(section) <= 3000
    assert section.endswith("&amp;…")
    assert slack.mrkdwn("a<b", 3000) == "a&lt;b"


def test_slack_message_without_subject_has_no_header() -> None:
    message = slack.message(Content("", "just text"))
    assert [block["type"] for block in message["blocks"]] == ["section"]
    assert message["text"] == "just text"


def test_slack_url_stays_out_of_repr() -> None:
    assert "secret-part" not in repr(
        SlackWebhook("https://hooks.slack.com/services/T/B/secret-part")
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "named"),
    [
        (200, "ok", Delivered, None),
        (200, "something else", Retryable, "something else"),
        (429, "rate_limited", Retryable, "rate_limited"),
        (500, "rollup_error", Retryable, "rollup_error"),
        (503, "", Retryable, "HTTP 503"),
        (400, "invalid_payload", Permanent, "invalid_payload"),
        (400, "no_text", Permanent, "no_text"),
        (403, "action_prohibited", Permanent, "action_prohibited"),
        (403, "invalid_token", Permanent, "invalid_token"),
        (404, "no_service", Permanent, "no_service"),
        (404, "channel_not_found", Permanent, "channel_not_found"),
        (410, "channel_is_archived", Permanent, "channel_is_archived"),
    ],
)
def test_slack_classification(status: int, body: str, kind: type, named: str | None) -> None:
    _check_classified(slack.classify_response(status, body.encode()), kind, named)


def test_slack_rate_limit_reason_quotes_retry_after() -> None:
    outcome = slack.classify_response(429, b"rate_limited", retry_after="30")
    assert outcome == Retryable("HTTP 429 from Slack: rate_limited (Retry-After: 30 s)")


# --- generic webhook, pure -----------------------------------------------------


def test_webhook_request_follows_the_documented_contract() -> None:
    target = WebhookTarget("https://receiver.example/hooks", "whsec", timeout_s=1.5)
    request = webhook.build_request(_outbound(notification_id="jira:OPS-42:x"), target, NOW)
    body = request.content
    assert json.loads(body) == {
        "notification_id": "jira:OPS-42:x",
        "ticket_source": "jira",
        "ticket_id": "OPS-42",
        "recipient_name": "Li Wei",
        "subject": SUBJECT,
        "text": TEXT,
    }
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "jira:OPS-42:x"
    assert headers["X-Slawatch-Timestamp"] == "1795652775"
    # What a receiver computes, from the raw body and the timestamp header.
    expected = hmac.new(b"whsec", b"1795652775." + body, hashlib.sha256).hexdigest()
    assert headers["X-Slawatch-Signature"] == f"sha256={expected}"
    assert request.extensions["timeout"]["read"] == 1.5


def test_webhook_idempotency_key_stays_ascii() -> None:
    assert webhook.idempotency_key("jira:OPS-1:warning:75:li.wei:webhook") == (
        "jira:OPS-1:warning:75:li.wei:webhook"
    )
    assert webhook.idempotency_key("jira:OPS-1:张伟") == "jira:OPS-1:%E5%BC%A0%E4%BC%9F"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Delivered),
        (202, Delivered),
        (204, Delivered),
        (408, Retryable),
        (429, Retryable),
        (500, Retryable),
        (503, Retryable),
        (400, Permanent),
        (401, Permanent),
        (404, Permanent),
        (410, Permanent),
        (422, Permanent),
    ],
)
def test_webhook_classification(status: int, kind: type) -> None:
    outcome = webhook.classify_response(status, b"")
    assert isinstance(outcome, kind)
    if kind is not Delivered:
        assert str(status) in str(outcome)


def test_webhook_answer_id_becomes_the_provider_id() -> None:
    assert webhook.classify_response(200, b'{"id": "r-7"}') == Delivered("r-7")


# --- every channel: unknown robot names ----------------------------------------


async def test_an_unknown_robot_name_is_permanent_without_a_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request may be made: {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        clock = SystemClock()
        channels: list[ChannelPort] = [
            DingTalkChannel(client, {"ops": DingTalkRobot(TOKEN)}, clock),
            WeComChannel(client, {"ops": WeComRobot("k")}),
            FeishuChannel(client, {"ops": FeishuBot(TOKEN)}, clock),
            SlackChannel(client, {"ops": SlackWebhook("https://hooks.slack.com/services/a")}),
            WebhookChannel(client, {"ops": WebhookTarget("https://r.example", "s")}, clock),
        ]
        for channel in channels:
            outcome = await channel.send(_outbound(address="nobody"))
            assert isinstance(outcome, Permanent)
            assert "'nobody'" in outcome.reason


# --- against the emulators -----------------------------------------------------


@dataclass(frozen=True)
class Rig:
    """One provider: its emulator, a channel aimed at it, and what each failure means."""

    name: str
    emulator: Callable[[], Emulator]
    channel: Callable[[httpx.AsyncClient, str, Clock, str, float], ChannelPort]
    expected: dict[Mode, tuple[type, str]]
    wrong_secret: str  # what a send with a wrong secret is refused with
    subject: str = SUBJECT  # the subject as the provider receives it


def _dingtalk(
    client: httpx.AsyncClient, url: str, clock: Clock, secret: str, timeout_s: float = STEADY
) -> ChannelPort:
    robot = DingTalkRobot(
        TOKEN, secret, at_mobiles=("13800000001",), timeout_s=timeout_s, base_url=url
    )
    return DingTalkChannel(client, {"ops": robot}, clock)


def _wecom(
    client: httpx.AsyncClient, url: str, clock: Clock, secret: str, timeout_s: float = STEADY
) -> ChannelPort:
    return WeComChannel(client, {"ops": WeComRobot(secret, timeout_s=timeout_s, base_url=url)})


def _feishu(
    client: httpx.AsyncClient, url: str, clock: Clock, secret: str, timeout_s: float = STEADY
) -> ChannelPort:
    return FeishuChannel(
        client, {"ops": FeishuBot(TOKEN, secret, timeout_s=timeout_s, base_url=url)}, clock
    )


def _slack(
    client: httpx.AsyncClient, url: str, clock: Clock, secret: str, timeout_s: float = STEADY
) -> ChannelPort:
    hook = SlackWebhook(f"{url}/services/T01/B02/{secret}", timeout_s=timeout_s)
    return SlackChannel(client, {"ops": hook})


def _webhook(
    client: httpx.AsyncClient, url: str, clock: Clock, secret: str, timeout_s: float = STEADY
) -> ChannelPort:
    target = WebhookTarget(f"{url}/slawatch", secret, timeout_s=timeout_s)
    return WebhookChannel(client, {"ops": target}, clock)


_TIMEOUT = (Retryable, "no answer from")
RIGS = [
    Rig(
        "dingtalk",
        lambda: DingTalkRobots({TOKEN: SECRET}),
        _dingtalk,
        {
            Mode.SERVER_ERROR: (Retryable, "HTTP 503"),
            Mode.TOO_MANY_REQUESTS: (Retryable, "HTTP 429"),
            Mode.TIMEOUT: _TIMEOUT,
            Mode.BUSINESS_ERROR: (Retryable, "errcode 130101"),
            Mode.BAD_CREDENTIALS: (Permanent, "errcode 310000"),
        },
        "errcode 310000: sign not match",
    ),
    Rig(
        "wecom",
        lambda: WeComRobots({SECRET}),
        _wecom,
        {
            Mode.SERVER_ERROR: (Retryable, "HTTP 503"),
            Mode.TOO_MANY_REQUESTS: (Retryable, "HTTP 429"),
            Mode.TIMEOUT: _TIMEOUT,
            Mode.BUSINESS_ERROR: (Retryable, "errcode 45009"),
            Mode.BAD_CREDENTIALS: (Permanent, "errcode 93000"),
        },
        "errcode 93000: invalid webhook url",
        SUBJECT_MARKDOWN,
    ),
    Rig(
        "feishu",
        lambda: FeishuBots({TOKEN: SECRET}),
        _feishu,
        {
            Mode.SERVER_ERROR: (Retryable, "HTTP 503"),
            Mode.TOO_MANY_REQUESTS: (Retryable, "HTTP 429"),
            Mode.TIMEOUT: _TIMEOUT,
            Mode.BUSINESS_ERROR: (Retryable, "code 11232"),
            Mode.BAD_CREDENTIALS: (Permanent, "code 19021"),
        },
        "code 19021: sign match fail",
    ),
    Rig(
        "slack",
        lambda: SlackHooks({f"T01/B02/{SECRET}"}),
        _slack,
        {
            Mode.SERVER_ERROR: (Retryable, "HTTP 503"),
            Mode.TOO_MANY_REQUESTS: (Retryable, "HTTP 429 from Slack: rate_limited (Retry-After"),
            Mode.TIMEOUT: _TIMEOUT,
            Mode.BUSINESS_ERROR: (Permanent, "HTTP 410 from Slack: channel_is_archived"),
            Mode.BAD_CREDENTIALS: (Permanent, "HTTP 403 from Slack: invalid_token"),
        },
        "HTTP 404 from Slack: no_service",
    ),
    Rig(
        "webhook",
        lambda: WebhookReceiver(SECRET),
        _webhook,
        {
            Mode.SERVER_ERROR: (Retryable, "HTTP 503"),
            Mode.TOO_MANY_REQUESTS: (Retryable, "HTTP 429"),
            Mode.TIMEOUT: _TIMEOUT,
            Mode.BUSINESS_ERROR: (Permanent, "HTTP 422"),
            Mode.BAD_CREDENTIALS: (Permanent, "HTTP 401"),
        },
        'HTTP 401 from webhook: {"error":"bad signature"}',
    ),
]
_RIG_IDS = [rig.name for rig in RIGS]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as shared:
        yield shared


@pytest.mark.parametrize("rig", RIGS, ids=_RIG_IDS)
async def test_a_real_send_is_accepted_and_verified(rig: Rig, client: httpx.AsyncClient) -> None:
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        outcome = await rig.channel(client, url, SystemClock(), SECRET, STEADY).send(_outbound())
    assert isinstance(outcome, Delivered)
    (accepted,) = emulator.accepted
    assert any(rig.subject in text for text in _strings(accepted.message))
    assert "Payments" in json.dumps(accepted.message, ensure_ascii=False)


@pytest.mark.parametrize("mode", list(Mode), ids=[mode.value for mode in Mode])
@pytest.mark.parametrize("rig", RIGS, ids=_RIG_IDS)
async def test_failure_matrix(rig: Rig, mode: Mode, client: httpx.AsyncClient) -> None:
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        timeout_s = FAST if mode is Mode.TIMEOUT else STEADY
        emulator.fail_next(1, mode)
        outcome = await rig.channel(client, url, SystemClock(), SECRET, timeout_s).send(_outbound())
        recovered = await rig.channel(client, url, SystemClock(), SECRET, STEADY).send(_outbound())
    kind, named = rig.expected[mode]
    assert isinstance(outcome, kind), outcome
    assert named in str(outcome)
    assert isinstance(recovered, Delivered)
    assert len(emulator.accepted) == 1


@pytest.mark.parametrize("rig", RIGS, ids=_RIG_IDS)
async def test_a_wrong_secret_is_refused_permanently(rig: Rig, client: httpx.AsyncClient) -> None:
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        outcome = await rig.channel(client, url, SystemClock(), "SECwrong", STEADY).send(
            _outbound()
        )
    assert isinstance(outcome, Permanent)
    assert rig.wrong_secret in outcome.reason
    assert emulator.accepted == []


@pytest.mark.parametrize(
    ("rig", "named"),
    [
        (RIGS[0], "errcode 310000: invalid timestamp"),
        (RIGS[2], "code 19021: sign match fail or timestamp is not within one hour"),
        (RIGS[4], 'HTTP 401 from webhook: {"error":"stale or missing timestamp"}'),
    ],
    ids=["dingtalk", "feishu", "webhook"],
)
async def test_a_sender_clock_off_by_two_hours_is_refused(
    rig: Rig, named: str, client: httpx.AsyncClient
) -> None:
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        late = _ShiftedClock(timedelta(hours=-2))
        outcome = await rig.channel(client, url, late, SECRET, STEADY).send(_outbound())
        nearly = _ShiftedClock(timedelta(seconds=-50))
        within = await rig.channel(client, url, nearly, SECRET, STEADY).send(_outbound())
    assert isinstance(outcome, Permanent)
    assert named in outcome.reason
    assert isinstance(within, Delivered)


@pytest.mark.parametrize("rig", RIGS, ids=_RIG_IDS)
async def test_an_unreachable_provider_is_retryable(rig: Rig, client: httpx.AsyncClient) -> None:
    channel = rig.channel(client, f"http://127.0.0.1:{free_port()}", SystemClock(), SECRET, STEADY)
    outcome = await channel.send(_outbound())
    assert isinstance(outcome, Retryable)
    assert outcome.reason.startswith("no answer from")
    assert "ConnectError" in outcome.reason


async def test_the_webhook_receiver_keeps_a_resent_notification_once(
    client: httpx.AsyncClient,
) -> None:
    receiver = WebhookReceiver(SECRET)
    async with serving(receiver.app) as url:
        channel = _webhook(client, url, SystemClock(), SECRET)
        first = await channel.send(_outbound(notification_id="n-7"))
        again = await channel.send(_outbound(notification_id="n-7"))
    assert first == again == Delivered("wh-1")
    assert receiver.duplicates == 1
    assert [a.headers["idempotency-key"] for a in receiver.accepted] == ["n-7"]


async def test_dingtalk_emulator_refuses_an_unknown_token_and_a_bad_body(
    client: httpx.AsyncClient,
) -> None:
    robots = DingTalkRobots({TOKEN: None})
    async with serving(robots.app) as url:
        robot = DingTalkRobot("other-token", base_url=url)
        unknown = await DingTalkChannel(client, {"x": robot}, SystemClock()).send(_outbound("x"))
        bad = await client.post(f"{url}/robot/send?access_token={TOKEN}", content=b"[1]")
    assert unknown == Permanent("DingTalk errcode 300001: token is not exist")
    assert dingtalk.classify_response(bad.status_code, bad.content) == Permanent(
        "DingTalk errcode 300001: param error"
    )


async def test_wecom_emulator_refuses_oversized_markdown(client: httpx.AsyncClient) -> None:
    robots = WeComRobots({SECRET})
    oversized = {"msgtype": "markdown", "markdown": {"content": "x" * 4097}}
    async with serving(robots.app) as url:
        answer = await client.post(f"{url}/cgi-bin/webhook/send?key={SECRET}", json=oversized)
        clipped = await _wecom(client, url, SystemClock(), SECRET).send(_outbound(text="y" * 9000))
    assert wecom.classify_response(answer.status_code, answer.content) == Permanent(
        "WeCom errcode 40058: markdown.content exceed max length 4096"
    )
    assert isinstance(clipped, Delivered)


async def test_feishu_and_slack_emulators_refuse_malformed_bodies(
    client: httpx.AsyncClient,
) -> None:
    bots, hooks = FeishuBots({TOKEN: None}), SlackHooks({"T/B/s"})
    async with serving(bots.app) as feishu_url, serving(hooks.app) as slack_url:
        feishu_answer = await client.post(
            f"{feishu_url}/open-apis/bot/v2/hook/{TOKEN}", json={"msg_type": "post"}
        )
        slack_answer = await client.post(f"{slack_url}/services/T/B/s", content=b"text=hi")
        slack_blocks = await client.post(
            f"{slack_url}/services/T/B/s",
            json={
                "text": "t",
                "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}],
            },
        )
    assert feishu.classify_response(feishu_answer.status_code, feishu_answer.content) == Permanent(
        "Feishu code 9499: Bad Request"
    )
    assert slack.classify_response(slack_answer.status_code, slack_answer.content) == Permanent(
        "HTTP 400 from Slack: invalid_payload"
    )
    assert slack_blocks.text == "invalid_blocks"


# --- event text stays text --------------------------------------------------------

TITLE_WITH_MARKUP = (
    "[click](http://evil.example) <@all> @13800000000 # heading\r\n# second heading"
    ' ![img](http://evil.example/i.png) **bold** <font color="warning">red</font>'
)
MARKUP_GALORE = (
    "[click](http://evil.example) <@all> @13800000000 # heading"
    "\n# second heading\r\n- item ![img](http://evil.example/i.png) **bold** _it_ ~~gone~~"
    ' `code` <font color="warning">red</font> <a href="http://evil.example">a</a>'
    " &#91;x&#93;&#40;http://evil.example&#41;\u2028> quote\x00"
)
ACK_LINK = "https://slawatch.example.com/v1/acks/eyJjIjoiamlyYTpPUFMtNDIiLCJyIjoibGkud2VpIn0.c2ln"
_COMMONMARK = MarkdownIt("commonmark").enable(["strikethrough", "table"])
_ACTIVE = (
    *("<a ", "<img", "<em>", "<strong>", "<s>", "<code>", "<ul>", "<ol>", "<li>", "<font"),
    *("<h1>", "<h2>", "<h3>", "<h5>", "<h6>", "<blockquote>", "<table>", "<hr", "<pre>"),
)
"""What CommonMark would make of markup that took effect; a robot's own heading is an h4."""


def _titled(title: str) -> SlaEvent:
    event = sla_event("breach")
    ticket = event.data.ticket.model_copy(update={"title": title})
    return event.model_copy(update={"data": event.data.model_copy(update={"ticket": ticket})})


def _markdown_received(rig: Rig, message: dict[str, Any]) -> str:
    part = message["markdown"]
    return str(part["text"] if rig.name == "dingtalk" else part["content"])


def _check_inert(rig: Rig, received: str, subject: bool) -> str:
    """Nothing in ``received`` takes effect as markup, rendered or not, but the robot's own
    heading (DingTalk) or bold subject (WeCom, if ``subject``) and mentions; the HTML
    CommonMark makes of it."""
    lines = received.split("\n")
    own = "####" if rig.name == "dingtalk" else "**" if subject else None
    inner = lines[0].removeprefix("#### ").removeprefix("**").removesuffix("**") if own else ""
    if own:
        assert lines[0].startswith(own)
    # nothing even a renderer without backslash escapes would take for syntax
    for text in (inner, *lines[1 if own else 0 :]):
        assert "](" not in text
        assert "![" not in text
        assert "<" not in text
        assert "**" not in text
        assert not text.lstrip().startswith(("#", "-", "+", "＞", "1.", "|", "="))
    mentions = [word for word in received.split() if "@" in word]
    assert mentions == (["@13800000001"] if rig.name == "dingtalk" else [])  # the robot's own
    # and a CommonMark renderer shows plain text
    rendered: str = _COMMONMARK.render(received)
    owned = {"<strong>"} if own == "**" else set()
    assert not [tag for tag in _ACTIVE if tag in rendered and tag not in owned]
    assert rendered.count("<h4>") == (1 if own == "####" else 0)
    assert rendered.count("<strong>") == (1 if own == "**" else 0)
    return rendered


@pytest.mark.parametrize("rig", RIGS[:2], ids=_RIG_IDS[:2])
async def test_a_title_reaches_a_markdown_robot_with_no_markup_active(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    content = render_sms(_titled(TITLE_WITH_MARKUP), "breach")
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        channel = rig.channel(client, url, SystemClock(), SECRET, STEADY)
        outcome = await channel.send(_outbound(content=content))
    assert isinstance(outcome, Delivered)
    (accepted,) = emulator.accepted
    received = _markdown_received(rig, accepted.message)
    # shown as written: markdown's characters escaped, @ < > in their full-width forms
    assert (
        "\\[click\\]\\(http://evil.example\\) ＜＠all＞ ＠13800000000 # heading # second heading"
        " !\\[img\\]\\(http://evil.example/i.png\\) \\*\\*bold\\*\\*"
        ' ＜font color="warning"＞red＜/font＞'
    ) in received
    rendered = _check_inert(rig, received, subject=False)
    assert (
        "[click](http://evil.example) ＜＠all＞ ＠13800000000 # heading # second heading"
        " ![img](http://evil.example/i.png) **bold** ＜font color=&quot;warning&quot;＞red＜/font＞"
    ) in rendered


@pytest.mark.parametrize("rig", RIGS[:2], ids=_RIG_IDS[:2])
async def test_stored_content_with_line_breaks_reaches_a_markdown_robot_inert(
    rig: Rig, client: httpx.AsyncClient
) -> None:
    # content as an earlier release stored it, the title's line breaks still in it
    text = (
        f"[slawatch] BREACH {MARKUP_GALORE}\n1. one\n---\n| a | b |\n|---|---|\n===\n"
        f"Ack: {ACK_LINK}"
    )
    content = Content("[slawatch] <@all>\r\n# held back", text)
    emulator = rig.emulator()
    async with serving(emulator.app) as url:
        channel = rig.channel(client, url, SystemClock(), SECRET, STEADY)
        outcome = await channel.send(_outbound(content=content))
    assert isinstance(outcome, Delivered)
    (accepted,) = emulator.accepted
    received = _markdown_received(rig, accepted.message)
    assert "\x00" not in received
    assert "\u2028" not in received
    assert "\r" not in received
    assert received.rstrip("@0123456789\n").endswith(f"Ack: {ACK_LINK}")  # the link stays whole
    rendered = _check_inert(rig, received, subject=True)
    assert "&amp;#91;x&amp;#93;" in rendered  # a character reference stays as written
    if rig.name == "dingtalk":
        assert accepted.message["markdown"]["title"] == "[slawatch] <@all> # held back"
        assert received.startswith("#### \\[slawatch\\] ＜＠all＞ # held back\n\n")
        # a paragraph a line (and the mention's): none became a block of another kind
        assert rendered.count("<p>") == len(text.split("\n")) + 1
    else:
        assert received.startswith("**\\[slawatch\\] ＜＠all＞ # held back**\n")
        assert rendered.startswith("<p><strong>[slawatch] ＜＠all＞ # held back</strong>")


async def test_a_title_reaches_slack_escaped_as_mrkdwn_requires(client: httpx.AsyncClient) -> None:
    title = "<!here> <@U024BE7LH> <http://evil.example|click> &amp; *bold*\r\n> quote"
    content = render_sms(_titled(title), "breach", ACK_LINK)
    emulator = RIGS[3].emulator()
    async with serving(emulator.app) as url:
        outcome = await _slack(client, url, SystemClock(), SECRET).send(_outbound(content=content))
    assert isinstance(outcome, Delivered)
    (accepted,) = emulator.accepted
    section = accepted.message["blocks"][-1]["text"]["text"]
    for text in (section, accepted.message["text"]):
        assert "<" not in text
        assert ">" not in text
        assert "\n" not in text
        assert (
            "&lt;!here&gt; &lt;@U024BE7LH&gt; &lt;http://evil.example|click&gt; &amp;amp; *bold*"
            " &gt; quote"
        ) in text
        assert text.endswith(f"Ack: {ACK_LINK}")


def test_slack_header_and_fallback_are_one_line_and_the_section_keeps_its_lines() -> None:
    message = slack.message(Content("[slawatch] 2\r\nheld\x00 back\u2028", "one\x07\r\ntwo\u2029"))
    header, section = message["blocks"]
    assert header["text"]["text"] == "[slawatch] 2 held back"
    assert message["text"] == "[slawatch] 2 held back"
    assert section["text"]["text"] == "one \ntwo"


async def test_a_title_reaches_feishu_as_plain_text_with_no_mention(
    client: httpx.AsyncClient,
) -> None:
    title = '<at user_id="all">所有人</at> [x](http://evil.example)\r\n**b**\u2028\x00'
    content = render_sms(_titled(title), "breach")
    stored = Content(f"[slawatch] {title}", f"first {title}\nsecond")
    emulator = FeishuBots({TOKEN: SECRET})
    async with serving(emulator.app) as url:
        for outbound in (_outbound(content=content), _outbound(content=stored)):
            outcome = await _feishu(client, url, SystemClock(), SECRET).send(outbound)
            assert isinstance(outcome, Delivered)
    shown = '<at user_id="all">所有人</at> [x](http://evil.example) **b**'
    rendered, again = (
        accepted.message["content"]["post"]["zh_cn"] for accepted in emulator.accepted
    )
    # a text element is plain text: the title as it is, on one line; no at element at all
    assert rendered["content"] == [[{"tag": "text", "text": content.text}]]
    assert content.text.endswith(shown)
    assert again["title"] == f"[slawatch] {shown}"
    # stored with its line break, the title spans two paragraphs, each of plain text
    assert again["content"] == [
        [{"tag": "text", "text": 'first <at user_id="all">所有人</at> [x](http://evil.example)'}],
        [{"tag": "text", "text": "**b**"}],
        [{"tag": "text", "text": "second"}],
    ]


async def test_the_webhook_carries_a_title_as_exact_json(client: httpx.AsyncClient) -> None:
    title = '"},"subject":"forged","x":{"\r\n</script>\u2028\\'
    # the subject as stored by an earlier release, line breaks and all; the text as rendered
    content = Content(f"[slawatch] {title}\x00", render_sms(_titled(title), "breach").text)
    receiver = WebhookReceiver(SECRET)
    async with serving(receiver.app) as url:
        outcome = await _webhook(client, url, SystemClock(), SECRET).send(
            _outbound(content=content)
        )
    assert isinstance(outcome, Delivered)
    (accepted,) = receiver.accepted
    assert set(accepted.message) == {*WEBHOOK_FIELDS, "recipient_name"}
    assert accepted.message["text"] == content.text  # JSON carries each string exactly
    assert accepted.message["subject"] == content.subject
    assert accepted.message["recipient_name"] == "Li Wei"
    assert content.text.endswith('"},"subject":"forged","x":{" </script> \\')


# --- helpers ---------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    """Every string in a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _check_classified(outcome: Outcome, kind: type, named: str | None) -> None:
    assert isinstance(outcome, kind), outcome
    if named is not None:
        assert named in str(outcome)
