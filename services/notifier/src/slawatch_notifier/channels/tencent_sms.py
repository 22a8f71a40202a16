"""SMS through Tencent Cloud SMS: ``SendSms``, API version 2021-01-11.

What is sent (Tencent Cloud docs: SMS API "SendSms", "Signature v3", "Common
Params")::

    POST https://sms.tencentcloudapi.com/
    Content-Type: application/json; charset=utf-8
    Host: sms.tencentcloudapi.com
    X-TC-Action: SendSms
    X-TC-Version: 2021-01-11
    X-TC-Timestamp: <unix seconds>
    X-TC-Region: <region>
    Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<UTC date>/sms/tc3_request,
                   SignedHeaders=content-type;host, Signature=<hex>

    {"PhoneNumberSet": ["+86…"], "SmsSdkAppId": "…", "SignName": "…",
     "TemplateId": "…", "TemplateParamSet": ["…", …], "SessionContext": "<notification id>"}

Only approved templates can be sent: ``TemplateParamSet`` fills the template's
``{1}``, ``{2}``, … from ``template_params``. ``SessionContext`` (the
notification id) comes back unchanged in the answer and in delivery receipts.

Signature (TC3-HMAC-SHA256, "Signature v3")::

    CanonicalRequest = "POST\\n/\\n\\n" + "content-type:<ct>\\nhost:<host>\\n" + "\\n"
                       + "content-type;host\\n" + hex(sha256(payload))
    StringToSign     = "TC3-HMAC-SHA256\\n<timestamp>\\n<date>/sms/tc3_request\\n"
                       + hex(sha256(CanonicalRequest))
    key = HMAC(HMAC(HMAC("TC3" + SecretKey, date), "sms"), "tc3_request")
    Signature = hex(HMAC-SHA256(key, StringToSign))

Classification (docs: SMS "Error Codes" and the common error codes):

- failures come back as HTTP 200 with ``Response.Error.Code``:
  ``RequestLimitExceeded*`` and ``InternalError*`` (except
  ``InternalError.RestApiInterfaceNotExist``), and clock skew
  (``AuthFailure.SignatureExpire``, ``InternalError.RequestTimeException``)
  → retryable; ``AuthFailure.*``, ``InvalidParameter*``, ``MissingParameter``,
  ``UnauthorizedOperation.*``, ``UnsupportedOperation.*``, ``FailedOperation.*``
  (unapproved sign or template, blacklisted number, no balance) and
  ``LimitExceeded.*`` quotas → permanent;
- otherwise the number's own ``SendStatusSet[0].Code`` decides: ``Ok`` →
  delivered with its ``SerialNo``; the 30-second per-number limit and the
  frequency policy (``LimitExceeded.DeliveryFrequencyLimit``) → retryable;
  hour and day limits (``LimitExceeded.PhoneNumberOneHourLimit``,
  ``…DailyLimit``) → permanent: they outlast a retry schedule of minutes and
  an SLA alert sent tomorrow is no alert (a failover channel still tries
  another provider); a wrong number (``InvalidParameterValue.IncorrectPhoneNumber``)
  → permanent;
- unknown codes are permanent; HTTP 408, 429 and 5xx, an unreadable 200,
  connection errors and timeouts → retryable.

Every reason names the code and the provider's message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from slawatch_notifier.channels.answers import excerpt
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.sanitize import one_line

API_VERSION = "2021-01-11"
SERVICE = "sms"
ACTION = "SendSms"
ALGORITHM = "TC3-HMAC-SHA256"
DEFAULT_ENDPOINT = "https://sms.tencentcloudapi.com"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS = "content-type;host"
_RETRYABLE_STATUSES = frozenset({408, 429})
TEMPLATE_FACTS = ("ticket", "detail")  # what template_facts offers

_CODE_IS_RETRYABLE: dict[str, bool] = {
    "InternalError.RestApiInterfaceNotExist": False,
    "InternalError.RequestTimeException": True,  # clock skew; the clock may be corrected
    "AuthFailure.SignatureExpire": True,  # clock skew, as above
    "LimitExceeded.PhoneNumberThirtySecondLimit": True,
    "LimitExceeded.DeliveryFrequencyLimit": True,
}
_RETRYABLE_PREFIXES = ("RequestLimitExceeded", "InternalError")


@dataclass(frozen=True, slots=True)
class TencentSmsSettings:
    """One Tencent Cloud SMS application, sign and approved template.

    ``param_order`` names the facts that fill the template's ``{1}``, ``{2}``, …
    (``ticket`` and ``detail``, see ``template_params``); each value is clipped
    to ``param_max_chars``. ``endpoint`` is overridable so tests can aim at an
    emulator.
    """

    secret_id: str
    secret_key: str = field(repr=False)
    sms_sdk_app_id: str
    sign_name: str
    template_id: str
    param_order: tuple[str, ...] = ("ticket", "detail")
    param_max_chars: int = 35
    region: str = "ap-guangzhou"
    endpoint: str = DEFAULT_ENDPOINT
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        unknown = set(self.param_order) - set(TEMPLATE_FACTS)
        if unknown:
            raise ValueError(f"param_order names unknown facts {sorted(unknown)}")


# --- signing (pure) ------------------------------------------------------------


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical_request(*, content_type: str, host: str, payload: bytes) -> str:
    """The canonical POST to ``/`` with no query, signing content-type and host."""
    headers = f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n"
    return f"POST\n/\n\n{headers}\n{SIGNED_HEADERS}\n{_sha256_hex(payload)}"


def credential_date(timestamp: int) -> str:
    """The UTC date of ``timestamp``, as the credential scope wants it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def string_to_sign(timestamp: int, service: str, request: str) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{_sha256_hex(request.encode())}"


def signature(secret_key: str, timestamp: int, service: str, request: str) -> str:
    """hex(HMAC-SHA256) of the string to sign under the derived TC3 key."""
    key = _hmac(f"TC3{secret_key}".encode(), credential_date(timestamp))
    key = _hmac(_hmac(key, service), "tc3_request")
    return hmac.new(
        key, string_to_sign(timestamp, service, request).encode(), hashlib.sha256
    ).hexdigest()


def authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    timestamp: int,
    content_type: str,
    host: str,
    payload: bytes,
) -> str:
    """The ``Authorization`` header of a TC3-signed POST."""
    request = canonical_request(content_type=content_type, host=host, payload=payload)
    sig = signature(secret_key, timestamp, service, request)
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}"
    )


# --- the request (pure) ----------------------------------------------------------


def template_facts(outbound: Outbound) -> dict[str, str]:
    """The facts a template may show: ``ticket`` (``jira:OPS-42``) and ``detail``.

    ``detail`` is the subject, or for SMS content (which has none) the text
    without its ``[slawatch]`` tag; it starts with the stage (``BREACH …`` /
    ``WARNING 75% …``). Both are one line without control characters.
    """
    text = one_line(outbound.content.subject or outbound.content.text)
    return {
        "ticket": one_line(f"{outbound.ticket_source}:{outbound.ticket_id}"),
        "detail": text.removeprefix("[slawatch]").strip(),
    }


def template_params(outbound: Outbound, settings: TencentSmsSettings) -> list[str]:
    """``TemplateParamSet``: the facts in ``settings.param_order``, clipped."""
    facts = template_facts(outbound)
    limit = settings.param_max_chars
    values = (facts[name] for name in settings.param_order)
    return [v if len(v) <= limit else v[: limit - 1] + "…" for v in values]


def request_body(outbound: Outbound, settings: TencentSmsSettings) -> dict[str, object]:
    return {
        "PhoneNumberSet": [outbound.address.strip()],
        "SmsSdkAppId": settings.sms_sdk_app_id,
        "SignName": settings.sign_name,
        "TemplateId": settings.template_id,
        "TemplateParamSet": template_params(outbound, settings),
        "SessionContext": outbound.notification_id,
    }


def build_request(
    outbound: Outbound, settings: TencentSmsSettings, *, now: datetime
) -> httpx.Request:
    """The signed POST for one attempt at ``now``, its timeout included."""
    url = httpx.URL(settings.endpoint.rstrip("/") + "/")
    host = url.netloc.decode()
    payload = json.dumps(request_body(outbound, settings)).encode()
    timestamp = int(now.timestamp())
    auth = authorization(
        secret_id=settings.secret_id,
        secret_key=settings.secret_key,
        service=SERVICE,
        timestamp=timestamp,
        content_type=CONTENT_TYPE,
        host=host,
        payload=payload,
    )
    headers = {
        "Authorization": auth,
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": ACTION,
        "X-TC-Version": API_VERSION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": settings.region,
    }
    timeout = httpx.Timeout(settings.timeout_s).as_dict()
    return httpx.Request(
        "POST", url, headers=headers, content=payload, extensions={"timeout": timeout}
    )


# --- the answer (pure) -------------------------------------------------------------


def is_retryable_code(code: str) -> bool:
    """Whether a documented error or per-number code is worth another attempt."""
    if code in _CODE_IS_RETRYABLE:
        return _CODE_IS_RETRYABLE[code]
    # AuthFailure, InvalidParameter*, MissingParameter, UnauthorizedOperation,
    # UnsupportedOperation, FailedOperation, LimitExceeded quotas and unknown codes
    # are permanent.
    return code.startswith(_RETRYABLE_PREFIXES)


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from ``SendSms`` stands for (see the module docstring)."""
    response = _response_object(body)
    if status != 200 or response is None:
        return _classify_status(status, body)
    error = response.get("Error")
    if isinstance(error, dict):
        return _failure("error", str(error.get("Code")), str(error.get("Message", "")))
    statuses = response.get("SendStatusSet")
    if not isinstance(statuses, list) or not statuses or not isinstance(statuses[0], dict):
        return Retryable(f"Tencent SMS answered without a send status: {excerpt(body)}")
    return classify_send_status(statuses[0])


def classify_send_status(send_status: dict[str, object]) -> Outcome:
    """The outcome of one number's entry in ``SendStatusSet``."""
    code = str(send_status.get("Code"))
    if code == "Ok":
        serial = send_status.get("SerialNo")
        return Delivered(str(serial) if serial else None)
    return _failure("send status", code, str(send_status.get("Message", "")))


def _failure(where: str, code: str, message: str) -> Outcome:
    reason = f"Tencent SMS {where} {code}: {message}".strip()
    return Retryable(reason) if is_retryable_code(code) else Permanent(reason)


def _classify_status(status: int, body: bytes) -> Outcome:
    reason = f"Tencent SMS HTTP {status}: {excerpt(body)}"
    if status == 200 or status in _RETRYABLE_STATUSES or status >= 500:
        return Retryable(reason)
    return Permanent(reason)


def _response_object(body: bytes) -> dict[str, object] | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    response = answer.get("Response") if isinstance(answer, dict) else None
    return response if isinstance(response, dict) else None


# --- the adapter -----------------------------------------------------------------------


class TencentSmsChannel:
    """Sends each ``Outbound`` as one ``SendSms`` call over a shared ``httpx.AsyncClient``.

    ``send`` never raises for network or provider faults and returns within
    ``settings.timeout_s`` per network phase.
    """

    def __init__(
        self, client: httpx.AsyncClient, settings: TencentSmsSettings, clock: Clock
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock

    async def send(self, outbound: Outbound) -> Outcome:
        request = build_request(outbound, self._settings, now=self._clock.now())
        try:
            response = await self._client.send(request)
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            return Retryable(f"Tencent SMS unreachable: {type(exc).__name__}: {exc}")
        return classify_response(response.status_code, response.content)
