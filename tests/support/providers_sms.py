"""Strict local emulators of three SMS providers' send APIs, as Starlette apps.

- ``AliyunSmsEmulator``: Alibaba Cloud ``dysmsapi`` ``SendSms`` (2017-05-25), RPC
  signature V2 (HMAC-SHA1);
- ``TencentSmsEmulator``: Tencent Cloud ``SendSms`` (2021-01-11), TC3-HMAC-SHA256;
- ``TwilioSmsEmulator``: Twilio "Create a Message", HTTP Basic authentication.

Each one checks what the real provider checks, in the provider's own words
and status codes: it recomputes the signature (or checks the credentials)
with the secret it was given, rejects missing parameters, unknown signs,
templates or senders and malformed phone numbers, and keeps what it accepts
(``accepted``; ``verified`` counts requests whose signature or credentials
checked out). The signature checks are written here from the providers'
documentation, independently of the adapters in ``slawatch_notifier.channels``;
``aliyun_rpc_signature`` and ``tc3_signature`` are public so tests can prove
them against the providers' published worked examples.

``fail_next(count, mode, code)`` makes the next ``count`` requests fail:

- ``SERVER_ERROR``: the gateway answers 5xx (Aliyun 503 ``ServiceUnavailable``,
  Tencent 502, Twilio 500 / 20500);
- ``TOO_MANY_REQUESTS``: HTTP 429 with the provider's throttling code
  (``Throttling.User``, ``RequestLimitExceeded``, 20429). Tencent's own API
  answers throttling with HTTP 200 and ``RequestLimitExceeded``; use
  ``BUSINESS_ERROR`` for that;
- ``TIMEOUT``: no answer for ``hang_s`` seconds (or until the client hangs up);
- ``BUSINESS_ERROR``: a verified request refused for a business reason with
  ``code`` (Aliyun HTTP 200 + ``Code``; Tencent HTTP 200 + ``Response.Error``,
  or the number's ``SendStatusSet`` entry for per-number codes; Twilio 400 + ``code``);
- ``BAD_CREDENTIALS``: the provider's unknown-key answer (Aliyun 404
  ``InvalidAccessKeyId.NotFound``, Tencent ``AuthFailure.SecretIdNotFound``,
  Twilio 401 / 20003).

The emulators run in the test's event loop (``support.serving``); nothing here
is thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class FailMode(StrEnum):
    SERVER_ERROR = "5xx"
    TOO_MANY_REQUESTS = "429"
    TIMEOUT = "timeout"
    BUSINESS_ERROR = "business"
    BAD_CREDENTIALS = "bad-credentials"


_GATEWAY_MODES = frozenset({FailMode.SERVER_ERROR, FailMode.TOO_MANY_REQUESTS, FailMode.TIMEOUT})


@dataclass(frozen=True, slots=True)
class Failure:
    mode: FailMode
    code: str | None = None


class _Emulator:
    """Failure injection, hanging and bookkeeping shared by the three emulators."""

    def __init__(self, *, hang_s: float, clock: Callable[[], float]) -> None:
        self.hang_s = hang_s
        self.clock = clock
        self.verified = 0
        self.requests = 0
        self._failures: list[Failure] = []
        self._serials = itertools.count(1)

    def fail_next(self, count: int, mode: FailMode, code: str | None = None) -> None:
        """Make the next ``count`` requests fail with ``mode`` (``code`` for business errors)."""
        self._failures.extend([Failure(mode, code)] * count)

    def _take_failure(self) -> Failure | None:
        return self._failures.pop(0) if self._failures else None

    async def _hang(self, request: Request) -> Response:
        """Answer nothing for ``hang_s`` seconds, returning early once the client has gone."""
        deadline = time.monotonic() + self.hang_s
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.02)
        return PlainTextResponse("too late", status_code=504)

    def _serial(self) -> int:
        return next(self._serials)


# --- Alibaba Cloud -------------------------------------------------------------------------

_POP_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_ALIYUN_COMMON = (
    "AccessKeyId",
    "Action",
    "Version",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
)
_ALIYUN_MAX_SKEW_S = 15 * 60
_MAINLAND_MOBILE = re.compile(r"1\d{10}")
_INTERNATIONAL_DIGITS = re.compile(r"[1-9]\d{6,14}")


def _pop_encode(text: str) -> str:
    """RFC 3986: unreserved bytes as they are, every other UTF-8 byte as ``%XY``."""
    return "".join(chr(b) if b in _POP_UNRESERVED else f"%{b:02X}" for b in text.encode())


def aliyun_rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """The RPC signature V2 of ``params``, as the docs ("signature method V2") define it."""
    names = sorted(name for name in params if name != "Signature")
    query = "&".join(_pop_encode(name) + "=" + _pop_encode(params[name]) for name in names)
    to_sign = method.upper() + "&" + _pop_encode("/") + "&" + _pop_encode(query)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True, slots=True)
class AliyunSms:
    biz_id: str
    phone_numbers: str
    sign_name: str
    template_code: str
    template_param: dict[str, str]
    out_id: str | None


class AliyunSmsEmulator(_Emulator):
    """``POST``/``GET /`` with the RPC parameters in the query or a form body."""

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        template_params: tuple[str, ...],
        param_max_chars: int = 35,
        hang_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(hang_s=hang_s, clock=clock)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.template_params = template_params
        self.param_max_chars = param_max_chars
        self.accepted: list[AliyunSms] = []
        self._nonces: set[str] = set()
        self.app = Starlette(routes=[Route("/", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        failure = self._take_failure()
        if failure is not None and failure.mode in _GATEWAY_MODES:
            return await self._gateway_failure(request, failure.mode)
        if failure is not None and failure.mode is FailMode.BAD_CREDENTIALS:
            return _aliyun(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        params, problem = await self._params(request)
        if problem is not None:
            return problem
        problem = self._check_common(request.method, params)
        if problem is not None:
            return problem
        self.verified += 1
        if failure is not None:  # BUSINESS_ERROR
            code = failure.code or "isv.BUSINESS_LIMIT_CONTROL"
            return _aliyun(200, code, "injected business error")
        return self._send_sms(params)

    async def _gateway_failure(self, request: Request, mode: FailMode) -> Response:
        if mode is FailMode.TIMEOUT:
            return await self._hang(request)
        if mode is FailMode.TOO_MANY_REQUESTS:
            return _aliyun(429, "Throttling.User", "Request was denied due to user flow control.")
        return _aliyun(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )

    async def _params(self, request: Request) -> tuple[dict[str, str], Response | None]:
        pairs = parse_qsl(request.url.query, keep_blank_values=True)
        if request.method == "POST":
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                return {}, _aliyun(400, "InvalidParameter", f"unsupported body {content_type!r}")
            pairs += parse_qsl((await request.body()).decode(), keep_blank_values=True)
        params = dict(pairs)
        if len(params) != len(pairs):
            return {}, _aliyun(400, "InvalidParameter", "a parameter is given twice")
        return params, None

    def _check_common(self, method: str, params: dict[str, str]) -> Response | None:
        """Parameters, timestamp, key and signature, in the order the gateway checks them."""
        for name in _ALIYUN_COMMON:
            if not params.get(name):
                return _aliyun(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] != "SendSms":
            return _aliyun(404, "InvalidAction.NotFound", "Specified api is not found.")
        if params["Version"] != "2017-05-25" or params.get("Format", "XML") != "JSON":
            return _aliyun(400, "InvalidParameter", "only Version 2017-05-25, Format JSON")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return _aliyun(400, "InvalidParameter", "only HMAC-SHA1 signature version 1.0")
        problem = self._check_timestamp(params["Timestamp"])
        if problem is not None:
            return problem
        if params["AccessKeyId"] != self.access_key_id:
            return _aliyun(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        expected = aliyun_rpc_signature(method, params, self.access_key_secret)
        if not hmac.compare_digest(expected, params["Signature"]):
            return _aliyun(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        if params["SignatureNonce"] in self._nonces:
            return _aliyun(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(params["SignatureNonce"])
        return None

    def _check_timestamp(self, stamp: str) -> Response | None:
        try:
            moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return _aliyun(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
        if abs(moment.timestamp() - self.clock()) > _ALIYUN_MAX_SKEW_S:
            return _aliyun(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date header is expired."
            )
        return None

    def _send_sms(self, params: dict[str, str]) -> Response:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return _aliyun(400, f"Missing{name}", f"{name} is mandatory for this action.")
        numbers = params["PhoneNumbers"]
        if not all(_aliyun_number_ok(n) for n in numbers.split(",")):
            return _aliyun(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if params["SignName"] != self.sign_name:
            return _aliyun(200, "isv.SMS_SIGNATURE_ILLEGAL", "签名不合法(不存在或被拉黑)")
        if params["TemplateCode"] != self.template_code:
            return _aliyun(200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑)")
        values, problem = self._template_values(params.get("TemplateParam", ""))
        if problem is not None:
            return problem
        biz_id = f"{900000 + self._serial()}^0"
        self.accepted.append(
            AliyunSms(
                biz_id,
                numbers,
                params["SignName"],
                params["TemplateCode"],
                values,
                params.get("OutId"),
            )
        )
        return JSONResponse(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4())}
        )

    def _template_values(self, raw: str) -> tuple[dict[str, str], Response | None]:
        try:
            values = json.loads(raw)
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return {}, _aliyun(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法,只接受字符串值")
        if any(name not in values for name in self.template_params):
            return {}, _aliyun(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(len(v) > self.param_max_chars for v in values.values()):
            return {}, _aliyun(200, "isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        return values, None


def _aliyun_number_ok(number: str) -> bool:
    """Mainland numbers without country code; others as country code + number, no ``+``."""
    if number.startswith("86"):
        return False  # mainland numbers go without the country code
    return bool(_MAINLAND_MOBILE.fullmatch(number) or _INTERNATIONAL_DIGITS.fullmatch(number))


def _aliyun(status: int, code: str, message: str) -> Response:
    body = {
        "Code": code,
        "Message": message,
        "RequestId": str(uuid.uuid4()),
        "HostId": "dysmsapi.aliyuncs.com",
    }
    return JSONResponse(body, status_code=status)


# --- Tencent Cloud -------------------------------------------------------------------------

_TC3_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)"
    r"/tc3_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)
_TENCENT_MAX_SKEW_S = 300
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_E164_MAINLAND = re.compile(r"\+861\d{10}")
_TENCENT_PER_NUMBER_CODES = (
    "LimitExceeded.PhoneNumber",
    "InvalidParameterValue.IncorrectPhoneNumber",
    "FailedOperation.PhoneNumberInBlacklist",
)


def tc3_signature(
    *,
    secret_key: str,
    service: str,
    timestamp: int,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
) -> str:
    """TC3-HMAC-SHA256 over the given (already lower-case named) signed headers ("Signature v3")."""
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    canonical = "\n".join(
        [
            method,
            path,
            query,
            canonical_headers,
            ";".join(names),
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class TencentSms:
    serial_no: str
    phone_number: str
    sign_name: str
    template_id: str
    params: list[str]
    session_context: str


class TencentSmsEmulator(_Emulator):
    """``POST /`` with TC3 headers and a JSON ``SendSms`` body; errors come back as HTTP 200."""

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sms_sdk_app_id: str,
        sign_name: str,
        template_id: str,
        template_param_count: int,
        param_max_chars: int = 35,
        region: str = "ap-guangzhou",
        hang_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(hang_s=hang_s, clock=clock)
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sms_sdk_app_id = sms_sdk_app_id
        self.sign_name = sign_name
        self.template_id = template_id
        self.template_param_count = template_param_count
        self.param_max_chars = param_max_chars
        self.region = region
        self.accepted: list[TencentSms] = []
        self.app = Starlette(routes=[Route("/", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        failure = self._take_failure()
        if failure is not None and failure.mode is FailMode.TIMEOUT:
            return await self._hang(request)
        if failure is not None and failure.mode is FailMode.SERVER_ERROR:
            return PlainTextResponse("502 Bad Gateway", status_code=502)
        if failure is not None and failure.mode is FailMode.TOO_MANY_REQUESTS:
            return _tencent_error(
                "RequestLimitExceeded",
                "Your current request times exceeds the frequency limit for a second. "
                "Please reduce the frequency of calls.",
                429,
            )
        if failure is not None and failure.mode is FailMode.BAD_CREDENTIALS:
            return _tencent_error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        payload = await request.body()
        problem = self._check_auth(request, payload)
        if problem is not None:
            return problem
        self.verified += 1
        return self._send_sms(payload, failure.code if failure is not None else None)

    def _check_auth(self, request: Request, payload: bytes) -> Response | None:
        headers = request.headers
        for name in ("X-TC-Action", "X-TC-Version", "X-TC-Timestamp", "X-TC-Region"):
            if not headers.get(name):
                return _tencent_error("MissingParameter", f"The request is missing `{name}`.")
        if headers["X-TC-Action"] != "SendSms":
            return _tencent_error("InvalidAction", "The action is not found.")
        if headers["X-TC-Version"] != "2021-01-11":
            return _tencent_error("NoSuchVersion", "The API version is not found.")
        if not headers.get("content-type", "").startswith("application/json"):
            return _tencent_error("InvalidParameter", "Content-Type must be application/json.")
        if request.url.path != "/" or request.url.query:
            return _tencent_error("InvalidParameter", "POST / with no query string")
        match = _TC3_AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if match is None:
            return _tencent_error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
        if match["id"] != self.secret_id:
            return _tencent_error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        stamp = headers["X-TC-Timestamp"]
        if not stamp.isdigit() or abs(int(stamp) - self.clock()) > _TENCENT_MAX_SKEW_S:
            return _tencent_error("AuthFailure.SignatureExpire", "The signature expired.")
        signed = match["headers"].split(";")
        if not {"content-type", "host"} <= set(signed) or any(h not in headers for h in signed):
            return _tencent_error("AuthFailure.InvalidAuthorization", "SignedHeaders is invalid.")
        expected = tc3_signature(
            secret_key=self.secret_key,
            service=match["service"],
            timestamp=int(stamp),
            method=request.method,
            path="/",
            query="",
            headers={h: headers[h] for h in signed},
            payload=payload,
        )
        scope_ok = match["service"] == "sms" and match["date"] == time.strftime(
            "%Y-%m-%d", time.gmtime(int(stamp))
        )
        if not scope_ok or not hmac.compare_digest(expected, match["sig"]):
            return _tencent_error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. "
                "Please check your signature is correct.",
            )
        return None

    def _send_sms(self, payload: bytes, injected: str | None) -> Response:
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _tencent_error("FailedOperation.FailResolvePacket", "请求包解析失败")
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if name not in body:
                return _tencent_error("MissingParameter", f"The parameter `{name}` is missing.")
        problem = self._check_body(body)
        if problem is not None:
            return problem
        if injected is not None and not injected.startswith(_TENCENT_PER_NUMBER_CODES):
            return _tencent_error(injected, "injected business error")
        context = str(body.get("SessionContext", ""))
        statuses = [self._send_one(n, body, context, injected) for n in body["PhoneNumberSet"]]
        return JSONResponse(
            {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}
        )

    def _check_body(self, body: dict[str, Any]) -> Response | None:
        numbers, params = body["PhoneNumberSet"], body.get("TemplateParamSet", [])
        if not isinstance(numbers, list) or not numbers or len(numbers) > 200:
            return _tencent_error("LimitExceeded.PhoneNumberCountLimit", "1 to 200 numbers")
        if body["SmsSdkAppId"] != self.sms_sdk_app_id:
            return _tencent_error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在")
        if body.get("SignName") != self.sign_name:
            return _tencent_error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误"
            )
        if body["TemplateId"] != self.template_id:
            return _tencent_error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配"
            )
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return _tencent_error(
                "InvalidParameterValue.TemplateParameterFormatError", "参数格式错误"
            )
        if len(params) != self.template_param_count:
            return _tencent_error(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "请求内容与审核通过的模板内容不匹配",
            )
        if any(len(p) > self.param_max_chars for p in params):
            return _tencent_error(
                "InvalidParameterValue.TemplateParameterLengthLimit", "单个模板变量字符数超过限制"
            )
        return None

    def _send_one(
        self, number: object, body: dict[str, Any], context: str, injected: str | None
    ) -> dict[str, object]:
        status: dict[str, object] = {
            "SerialNo": "",
            "PhoneNumber": number,
            "Fee": 0,
            "SessionContext": context,
            "IsoCode": "",
        }
        if not isinstance(number, str) or not _tencent_number_ok(number):
            return status | {
                "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                "Message": "手机号格式错误",
            }
        if injected is not None:
            return status | {"Code": injected, "Message": "injected business error"}
        serial = f"2640:{self._serial():08d}{int(self.clock())}"
        self.accepted.append(
            TencentSms(
                serial,
                number,
                body["SignName"],
                body["TemplateId"],
                list(body["TemplateParamSet"]),
                context,
            )
        )
        return status | {
            "SerialNo": serial,
            "Fee": 1,
            "Code": "Ok",
            "Message": "send success",
            "IsoCode": "CN" if number.startswith("+86") else "",
        }


def _tencent_number_ok(number: str) -> bool:
    if number.startswith("+86"):
        return bool(_E164_MAINLAND.fullmatch(number))
    return bool(_E164.fullmatch(number))


def _tencent_error(code: str, message: str, status: int = 200) -> Response:
    body = {
        "Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
    }
    return JSONResponse(body, status_code=status)


# --- Twilio -----------------------------------------------------------------------------------

_TWILIO_MAX_BODY = 1600


@dataclass(frozen=True, slots=True)
class TwilioSms:
    sid: str
    to: str
    sender: str
    body: str


class TwilioSmsEmulator(_Emulator):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with Basic auth and a form body."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        senders: frozenset[str],
        unsubscribed: frozenset[str] = frozenset(),
        hang_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(hang_s=hang_s, clock=clock)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.senders = senders
        self.unsubscribed = unsubscribed
        self.accepted: list[TwilioSms] = []
        path = "/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.app = Starlette(routes=[Route(path, self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        failure = self._take_failure()
        if failure is not None and failure.mode is FailMode.TIMEOUT:
            return await self._hang(request)
        if failure is not None and failure.mode is FailMode.SERVER_ERROR:
            return _twilio(500, 20500, "An internal server error has occurred")
        if failure is not None and failure.mode is FailMode.TOO_MANY_REQUESTS:
            return _twilio(429, 20429, "Too Many Requests")
        if failure is not None and failure.mode is FailMode.BAD_CREDENTIALS:
            return _twilio_unauthenticated()
        if self._basic_user(request.headers.get("authorization", "")) is None:
            return _twilio_unauthenticated()
        self.verified += 1
        if request.path_params["account_sid"] != self.account_sid:
            return _twilio(404, 20404, f"The requested resource {request.url.path} was not found")
        if failure is not None:  # BUSINESS_ERROR
            return _twilio(400, int(failure.code or 21610), "injected error")
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _twilio(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        return self._create(form)

    def _basic_user(self, header: str) -> str | None:
        """The account a Basic ``Authorization`` header proves, per RFC 7617, or ``None``."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        ok = user == self.account_sid and hmac.compare_digest(password, self.auth_token)
        return user if ok else None

    def _create(self, form: dict[str, str]) -> Response:
        to, body = form.get("To", ""), form.get("Body", "")
        sender = form.get("From") or form.get("MessagingServiceSid") or ""
        if not to:
            return _twilio(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return _twilio(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _twilio(400, 21602, "Message body is required.")
        if not _E164.fullmatch(to):
            return _twilio(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if sender not in self.senders:
            return _twilio(
                400,
                21606,
                f"The 'From' phone number provided ({sender}) is not a valid "
                "message-capable Twilio phone number for this destination/account",
            )
        if to in self.unsubscribed:
            return _twilio(400, 21610, "Attempt to send to unsubscribed recipient")
        if len(body) > _TWILIO_MAX_BODY:
            return _twilio(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        sid = "SM" + uuid.uuid4().hex
        self.accepted.append(TwilioSms(sid, to, sender, body))
        answer = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued" if "From" in form else "accepted",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        return JSONResponse(answer, status_code=201)


def _twilio(status: int, code: int, message: str) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


def _twilio_unauthenticated() -> Response:
    body = {
        "code": 20003,
        "detail": "Your AccountSid or AuthToken was incorrect.",
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    return JSONResponse(
        body, status_code=401, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
    )
