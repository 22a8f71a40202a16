"""SMS through Alibaba Cloud Short Message Service: ``SendSms``, API version 2017-05-25.

What is sent (Alibaba Cloud docs: "SendSms", "Request syntax and signature method
V2 for RPC APIs")::

    POST https://dysmsapi.aliyuncs.com/
    Content-Type: application/x-www-form-urlencoded

    Action=SendSms&Version=2017-05-25&Format=JSON&RegionId=…&AccessKeyId=…
    &SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=<fresh>
    &Timestamp=<UTC, yyyy-MM-ddTHH:mm:ssZ>&PhoneNumbers=<number>&SignName=<approved sign>
    &TemplateCode=<approved template>&TemplateParam=<JSON object>&OutId=<notification id>
    &Signature=<see below>

Only approved templates can be sent, so the text is not sent as is: the
template's variables are filled by ``template_param`` (ticket and detail line).
``OutId`` carries the notification id back in delivery receipts, which ties a
receipt to its notification; Alibaba Cloud does not deduplicate on it.

Signature (RPC, signature method V2): every parameter except ``Signature`` is
percent-encoded the "POP" way (RFC 3986 unreserved characters kept, everything
else ``%XY`` of its UTF-8 bytes, so a space is ``%20`` and ``*`` is ``%2A``),
sorted by name and joined as ``k=v&…``; the string to sign is
``POST&%2F&`` + percent_encode(that string); the signature is
base64(HMAC-SHA1(key = AccessKeySecret + "&", string to sign)).

Classification of an answer (docs: "API error codes" of Short Message Service,
and the common RPC error codes):

- HTTP 200 and ``Code == "OK"`` → delivered, with ``BizId`` as the provider id;
- any other ``Code`` is a failure, HTTP 200 included (business errors come
  back with 200): throttling (``Throttling.*``, ``isv.BUSINESS_LIMIT_CONTROL``
  at minute level), ``ServiceUnavailable``, ``InternalError``, ``isp.SYSTEM_ERROR``,
  a reused nonce and an expired timestamp (clock skew) → retryable; wrong
  numbers, templates or signs, bad credentials and signatures, missing
  parameters, exhausted balance, daily/monthly quotas and hour- or day-level
  flow control (none of which clears within a retry schedule of minutes)
  → permanent; an unknown code is permanent unless the HTTP status is 408, 429
  or 5xx;
- no ``Code`` at all: 408, 429 and 5xx → retryable, other statuses → permanent,
  an unreadable 200 → retryable (a proxy mangled the answer);
- connection errors and timeouts → retryable.

Every reason names the code and the provider's message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from slawatch_notifier.channels.answers import json_object
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.sanitize import one_line

API_VERSION = "2017-05-25"
DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"
_METHOD = "POST"
_BODY_IN_REASON = 200

_RETRYABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalError",
        "isp.SYSTEM_ERROR",
        "SignatureNonceUsed",  # the next attempt carries a fresh nonce
        "InvalidTimeStamp.Expired",  # clock skew; the clock may be corrected
        "isv.BUSINESS_LIMIT_CONTROL",  # minute-level flow control; see _limit_kind
    }
)
_RETRYABLE_PREFIXES = ("Throttling",)
_RETRYABLE_STATUSES = frozenset({408, 429})
# isv.BUSINESS_LIMIT_CONTROL says which window was hit in its message, e.g.
# "触发分钟级流控Permits:1" (minute), "触发小时级流控Permits:5" (hour),
# "触发天级流控Permits:10" (day). Hour and day windows outlast any retry schedule.
_LONG_WINDOW_MARKERS = ("小时级", "天级")


@dataclass(frozen=True, slots=True)
class AliyunSmsSettings:
    """One Alibaba Cloud SMS account, sign and approved notification template.

    The template's variables are named by ``ticket_param`` and ``detail_param``;
    each value is clipped to ``param_max_chars`` (35 for notification
    templates). ``endpoint`` is overridable so tests can aim at an emulator.
    """

    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_name: str
    template_code: str
    ticket_param: str = "ticket"
    detail_param: str = "detail"
    param_max_chars: int = 35
    region_id: str = "cn-hangzhou"
    endpoint: str = DEFAULT_ENDPOINT
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.ticket_param == self.detail_param:
            raise ValueError("ticket_param and detail_param must differ")


# --- signing (pure) ------------------------------------------------------------


def percent_encode(value: str) -> str:
    """POP encoding: RFC 3986 unreserved characters stay, the rest is ``%XY`` of UTF-8."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """The sorted, encoded ``k=v&…`` of every parameter but ``Signature``."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """base64(HMAC-SHA1(secret + "&", string to sign))."""
    key = f"{access_key_secret}&".encode()
    digest = hmac.new(key, string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --- the request (pure) ----------------------------------------------------------


def phone_number(address: str) -> str:
    """The ``PhoneNumbers`` form of an E.164 address.

    Mainland numbers go without country code (``+8613800000000`` →
    ``13800000000``); others as country code and number without ``+``.
    """
    digits = address.strip().removeprefix("+")
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits


def template_param(outbound: Outbound, settings: AliyunSmsSettings) -> dict[str, str]:
    """The template's variables: the ticket (``jira:OPS-42``) and a detail line.

    The detail line is the subject, or for SMS content (which has none) the
    text without its ``[slawatch]`` tag; it starts with the stage
    (``BREACH …`` / ``WARNING 75% …``). Both are one line without control
    characters, clipped to the template's limit.
    """
    ticket = one_line(f"{outbound.ticket_source}:{outbound.ticket_id}")
    return {
        settings.ticket_param: _clip(ticket, settings),
        settings.detail_param: _clip(_detail(outbound), settings),
    }


def _detail(outbound: Outbound) -> str:
    text = one_line(outbound.content.subject or outbound.content.text)
    return text.removeprefix("[slawatch]").strip()


def _clip(text: str, settings: AliyunSmsSettings) -> str:
    limit = settings.param_max_chars
    return text if len(text) <= limit else text[: limit - 1] + "…"


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_params(
    outbound: Outbound, settings: AliyunSmsSettings, *, now: datetime, nonce: str
) -> dict[str, str]:
    """Every parameter of the ``SendSms`` call, ``Signature`` included."""
    params = {
        "Action": "SendSms",
        "Version": API_VERSION,
        "Format": "JSON",
        "RegionId": settings.region_id,
        "AccessKeyId": settings.access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce,
        "Timestamp": timestamp(now),
        "PhoneNumbers": phone_number(outbound.address),
        "SignName": settings.sign_name,
        "TemplateCode": settings.template_code,
        "TemplateParam": json.dumps(template_param(outbound, settings), ensure_ascii=False),
        "OutId": outbound.notification_id,
    }
    params["Signature"] = signature(_METHOD, params, settings.access_key_secret)
    return params


def build_request(
    outbound: Outbound, settings: AliyunSmsSettings, *, now: datetime, nonce: str
) -> httpx.Request:
    """The signed POST for one attempt, its timeout included."""
    params = request_params(outbound, settings, now=now, nonce=nonce)
    body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
    return httpx.Request(
        _METHOD,
        settings.endpoint.rstrip("/") + "/",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        content=body.encode(),
        extensions={"timeout": httpx.Timeout(settings.timeout_s).as_dict()},
    )


# --- the answer (pure) -------------------------------------------------------------


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from ``SendSms`` stands for (see the module docstring)."""
    answer = json_object(body) or {}
    code = answer.get("Code")
    if not isinstance(code, str):
        return _classify_status(status, body)
    if code == "OK" and status == 200:
        biz_id = answer.get("BizId")
        return Delivered(str(biz_id) if biz_id is not None else None)
    message = str(answer.get("Message", ""))
    reason = f"Aliyun SMS HTTP {status} {code}: {message}".strip()
    return Retryable(reason) if _is_retryable(code, message, status) else Permanent(reason)


def _is_retryable(code: str, message: str, status: int) -> bool:
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        return not any(marker in message for marker in _LONG_WINDOW_MARKERS)
    if code in _RETRYABLE_CODES or code.startswith(_RETRYABLE_PREFIXES):
        return True
    if _is_known_permanent(code):
        return False
    return status in _RETRYABLE_STATUSES or status >= 500


def _is_known_permanent(code: str) -> bool:
    """Codes whose meaning is documented: ``isv.*`` business rules, credentials, parameters."""
    return code.startswith(
        ("isv.", "isp.", "InvalidAccessKeyId", "Signature", "Missing", "Invalid", "Forbidden")
    )


def _classify_status(status: int, body: bytes) -> Outcome:
    text = body[:_BODY_IN_REASON].decode(errors="replace").strip()
    reason = f"Aliyun SMS HTTP {status} without a Code: {text}"
    if status == 200 or status in _RETRYABLE_STATUSES or status >= 500:
        return Retryable(reason)
    return Permanent(reason)


# --- the adapter -----------------------------------------------------------------------


class AliyunSmsChannel:
    """Sends each ``Outbound`` as one ``SendSms`` call over a shared ``httpx.AsyncClient``.

    ``nonce`` makes the ``SignatureNonce`` of each attempt (a fresh UUID by
    default). ``send`` never raises for network or provider faults and returns
    within ``settings.timeout_s`` per network phase.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: AliyunSmsSettings,
        clock: Clock,
        nonce: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._nonce = nonce

    async def send(self, outbound: Outbound) -> Outcome:
        request = build_request(
            outbound, self._settings, now=self._clock.now(), nonce=self._nonce()
        )
        try:
            response = await self._client.send(request)
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            return Retryable(f"Aliyun SMS unreachable: {type(exc).__name__}: {exc}")
        return classify_response(response.status_code, response.content)
