"""SMS provider adapters (Alibaba Cloud, Tencent Cloud, Twilio) and the failover channel.

Signatures are checked against the providers' published worked examples:

- Alibaba Cloud SMS "HTTP protocol and signature" example for ``SendSms``
  (help.aliyun.com/document_detail/56189.html: AccessKeyId ``testId``, secret
  ``testSecret``, signature ``zJDF+Lrzhj/ThnlvIToysFRq6t4=``) and the RPC
  signature method V2 example for ``DescribeRegions``
  (help.aliyun.com/en/sdk/product-overview/rpc-mechanism and the ECS "Request
  signatures" page: ``testid`` / ``testsecret`` → ``OLeaidS1JvxuMvnyHOwuJ+uX5qY=``);
- Tencent Cloud "Signature v3" example (e.g. SMS API docs,
  www.tencentcloud.com/document/product/382/40467: ``DescribeInstances``, timestamp
  1551113065, SecretKey ``Gu5t9xGARNpq86cd98joQYCN3EXAMPLE`` → signature
  ``72e494ea…25168``);
- RFC 7617 section 2 for HTTP Basic (``Aladdin`` / ``open sesame``), which is
  all Twilio's authentication is.

The emulators in ``support.providers_sms`` verify signatures with code of
their own; the same published examples prove that code too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from slawatch_notifier.channels import aliyun_sms, tencent_sms, twilio_sms
from slawatch_notifier.channels.aliyun_sms import AliyunSmsChannel, AliyunSmsSettings
from slawatch_notifier.channels.failover import FailoverChannel, combine
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.channels.tencent_sms import TencentSmsChannel, TencentSmsSettings
from slawatch_notifier.channels.twilio_sms import TwilioSmsChannel, TwilioSmsSettings
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.templates import Content
from support.net import free_port
from support.providers_sms import (
    AliyunSmsEmulator,
    FailMode,
    TencentSmsEmulator,
    TwilioSmsEmulator,
    aliyun_rpc_signature,
    tc3_signature,
)
from support.serving import serving

NOW = datetime(2026, 11, 26, 0, 26, 15, tzinfo=UTC)
SMS_TEXT = "[slawatch] BREACH P1 jira:OPS-42 response deadline 2026-11-26 00:26:15 UTC, used 4h."
FAST = 0.2  # client timeout (s) in the timeout cases; the emulators hang longer


def _outbound(address: str = "+8613800000002", notification_id: str = "n-1") -> Outbound:
    return Outbound(
        notification_id=notification_id,
        ticket_source="jira",
        ticket_id="OPS-42",
        recipient_name="On-call engineer",
        address=address,
        content=Content(subject="", text=SMS_TEXT),
    )


# --- published worked examples --------------------------------------------------------

ALIYUN_SMS_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
ALIYUN_SMS_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
    "%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF"
    "%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce"
    "%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode"
    "%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D"
    "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)
ALIYUN_SMS_DOC_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="
ALIYUN_RPC_DOC_PARAMS = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
ALIYUN_RPC_DOC_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="

TC3_DOC_SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
TC3_DOC_SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
TC3_DOC_TIMESTAMP = 1551113065
TC3_DOC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TC3_DOC_CANONICAL_REQUEST = (
    "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
    "content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
)
TC3_DOC_STRING_TO_SIGN = (
    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
    "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
)
TC3_DOC_AUTHORIZATION = (
    "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
    "tc3_request, SignedHeaders=content-type;host, "
    "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
)


def test_aliyun_signature_reproduces_the_sms_documentation_example() -> None:
    assert aliyun_sms.string_to_sign("GET", ALIYUN_SMS_DOC_PARAMS) == ALIYUN_SMS_DOC_STRING_TO_SIGN
    assert aliyun_sms.signature("GET", ALIYUN_SMS_DOC_PARAMS, "testSecret") == (
        ALIYUN_SMS_DOC_SIGNATURE
    )


def test_aliyun_signature_reproduces_the_rpc_documentation_example() -> None:
    assert aliyun_sms.signature("GET", ALIYUN_RPC_DOC_PARAMS, "testsecret") == (
        ALIYUN_RPC_DOC_SIGNATURE
    )


def test_aliyun_signature_ignores_a_signature_parameter() -> None:
    signed = {**ALIYUN_SMS_DOC_PARAMS, "Signature": "anything"}
    assert aliyun_sms.signature("GET", signed, "testSecret") == ALIYUN_SMS_DOC_SIGNATURE


def test_aliyun_percent_encoding_is_rfc3986() -> None:
    assert aliyun_sms.percent_encode("a b*c~d-_.") == "a%20b%2Ac~d-_."
    assert aliyun_sms.percent_encode("/=&+:") == "%2F%3D%26%2B%3A"
    assert aliyun_sms.percent_encode("阿") == "%E9%98%BF"


def test_tc3_signature_reproduces_the_documentation_example() -> None:
    request = tencent_sms.canonical_request(
        content_type="application/json; charset=utf-8",
        host="cvm.tencentcloudapi.com",
        payload=TC3_DOC_PAYLOAD,
    )
    assert request == TC3_DOC_CANONICAL_REQUEST
    assert tencent_sms.string_to_sign(TC3_DOC_TIMESTAMP, "cvm", request) == TC3_DOC_STRING_TO_SIGN
    authorization = tencent_sms.authorization(
        secret_id=TC3_DOC_SECRET_ID,
        secret_key=TC3_DOC_SECRET_KEY,
        service="cvm",
        timestamp=TC3_DOC_TIMESTAMP,
        content_type="application/json; charset=utf-8",
        host="cvm.tencentcloudapi.com",
        payload=TC3_DOC_PAYLOAD,
    )
    assert authorization == TC3_DOC_AUTHORIZATION


def test_tc3_credential_date_is_the_utc_date() -> None:
    # 1551113065 is 2019-02-26 00:44:25 in UTC+8, but the scope uses the UTC date.
    assert tencent_sms.credential_date(TC3_DOC_TIMESTAMP) == "2019-02-25"


def test_basic_authorization_reproduces_rfc7617() -> None:
    assert twilio_sms.basic_authorization("Aladdin", "open sesame") == (
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    )


def test_the_emulators_verify_with_the_published_examples_too() -> None:
    assert aliyun_rpc_signature("GET", ALIYUN_SMS_DOC_PARAMS, "testSecret") == (
        ALIYUN_SMS_DOC_SIGNATURE
    )
    assert aliyun_rpc_signature("GET", ALIYUN_RPC_DOC_PARAMS, "testsecret") == (
        ALIYUN_RPC_DOC_SIGNATURE
    )
    signature = tc3_signature(
        secret_key=TC3_DOC_SECRET_KEY,
        service="cvm",
        timestamp=TC3_DOC_TIMESTAMP,
        method="POST",
        path="/",
        query="",
        headers={
            "content-type": "application/json; charset=utf-8",
            "host": "cvm.tencentcloudapi.com",
        },
        payload=TC3_DOC_PAYLOAD,
    )
    assert TC3_DOC_AUTHORIZATION.endswith(f"Signature={signature}")


# --- request building, pure -------------------------------------------------------------

ALIYUN = AliyunSmsSettings(
    access_key_id="LTAI-test",
    access_key_secret="aliyun-secret",
    sign_name="慧眼监控",
    template_code="SMS_900001",
)
TENCENT = TencentSmsSettings(
    secret_id="AKID-test",
    secret_key="tencent-secret",
    sms_sdk_app_id="1400000001",
    sign_name="慧眼监控",
    template_id="2000001",
)
TWILIO = TwilioSmsSettings(
    account_sid="AC" + "0" * 32, auth_token="twilio-token", from_number="+15005550006"
)


def test_aliyun_request_is_a_signed_form_post() -> None:
    request = aliyun_sms.build_request(_outbound(), ALIYUN, now=NOW, nonce="nonce-1")
    assert request.method == "POST"
    assert str(request.url) == "https://dysmsapi.aliyuncs.com/"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.extensions["timeout"]["read"] == ALIYUN.timeout_s
    params = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    assert params["Action"] == "SendSms"
    assert params["Version"] == "2017-05-25"
    assert params["Timestamp"] == "2026-11-26T00:26:15Z"
    assert params["SignatureNonce"] == "nonce-1"
    assert params["PhoneNumbers"] == "13800000002"
    assert params["SignName"] == "慧眼监控"
    assert params["TemplateCode"] == "SMS_900001"
    assert params["OutId"] == "n-1"
    assert json.loads(params["TemplateParam"]) == {
        "ticket": "jira:OPS-42",
        "detail": "BREACH P1 jira:OPS-42 response dea…",
    }
    assert params["Signature"] == aliyun_rpc_signature("POST", params, "aliyun-secret")


def test_aliyun_request_is_deterministic_in_now_and_nonce() -> None:
    one = aliyun_sms.build_request(_outbound(), ALIYUN, now=NOW, nonce="a")
    assert one.content == aliyun_sms.build_request(_outbound(), ALIYUN, now=NOW, nonce="a").content
    assert one.content != aliyun_sms.build_request(_outbound(), ALIYUN, now=NOW, nonce="b").content


@pytest.mark.parametrize(
    ("address", "number"),
    [
        ("+8613800000002", "13800000002"),
        ("13800000002", "13800000002"),
        ("+85291234567", "85291234567"),
        ("+14155550100", "14155550100"),
    ],
)
def test_aliyun_phone_numbers(address: str, number: str) -> None:
    assert aliyun_sms.phone_number(address) == number


def test_template_parameters_use_the_configured_names_and_limits() -> None:
    settings = AliyunSmsSettings(
        access_key_id="k",
        access_key_secret="s",
        sign_name="x",
        template_code="t",
        ticket_param="no",
        detail_param="what",
        param_max_chars=10,
    )
    assert aliyun_sms.template_param(_outbound(), settings) == {
        "no": "jira:OPS-…",
        "what": "BREACH P1…",
    }


def test_tencent_request_is_a_signed_json_post() -> None:
    request = tencent_sms.build_request(_outbound(), TENCENT, now=NOW)
    assert request.method == "POST"
    assert str(request.url) == "https://sms.tencentcloudapi.com/"
    headers = request.headers
    assert headers["X-TC-Action"] == "SendSms"
    assert headers["X-TC-Version"] == "2021-01-11"
    assert headers["X-TC-Timestamp"] == str(int(NOW.timestamp()))
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["Host"] == "sms.tencentcloudapi.com"
    assert json.loads(request.content) == {
        "PhoneNumberSet": ["+8613800000002"],
        "SmsSdkAppId": "1400000001",
        "SignName": "慧眼监控",
        "TemplateId": "2000001",
        "TemplateParamSet": ["jira:OPS-42", "BREACH P1 jira:OPS-42 response dea…"],
        "SessionContext": "n-1",
    }
    signature = tc3_signature(
        secret_key="tencent-secret",
        service="sms",
        timestamp=int(NOW.timestamp()),
        method="POST",
        path="/",
        query="",
        headers={"content-type": headers["Content-Type"], "host": headers["Host"]},
        payload=request.content,
    )
    assert headers["Authorization"] == (
        "TC3-HMAC-SHA256 Credential=AKID-test/2026-11-26/sms/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def test_tencent_template_parameters_follow_the_configured_order() -> None:
    settings = TencentSmsSettings(
        secret_id="i",
        secret_key="k",
        sms_sdk_app_id="a",
        sign_name="s",
        template_id="t",
        param_order=("detail", "ticket"),
    )
    assert tencent_sms.template_params(_outbound(), settings)[1] == "jira:OPS-42"


def test_template_settings_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="unknown facts"):
        replace(TENCENT, param_order=("ticket", "assignee"))
    with pytest.raises(ValueError, match="must differ"):
        replace(ALIYUN, detail_param="ticket")


def test_twilio_request_is_an_authenticated_form_post() -> None:
    request = twilio_sms.build_request(_outbound("+14155550100"), TWILIO)
    assert str(request.url) == (
        f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO.account_sid}/Messages.json"
    )
    assert request.headers["Authorization"] == twilio_sms.basic_authorization(
        TWILIO.account_sid, "twilio-token"
    )
    assert dict(parse_qsl(request.content.decode())) == {
        "To": "+14155550100",
        "From": "+15005550006",
        "Body": SMS_TEXT,
    }


def test_every_provider_gets_one_line_whatever_the_content() -> None:
    # content as an earlier release stored it: a title's line breaks and controls in it
    text = "[slawatch] BREACH P1 jira:OPS-42 Core switch\r\n\r\nURGENT: call\u2028+1 555\x000100"
    outbound = replace(
        _outbound("+14155550100"), ticket_id="OPS-42\r\nX", content=Content("", text)
    )
    one_line = "[slawatch] BREACH P1 jira:OPS-42 Core switch URGENT: call +1 5550100"
    assert twilio_sms.request_form(outbound, TWILIO)["Body"] == one_line
    wide = replace(ALIYUN, param_max_chars=200)
    assert aliyun_sms.template_param(outbound, wide) == {
        "ticket": "jira:OPS-42 X",
        "detail": one_line.removeprefix("[slawatch] "),
    }
    assert tencent_sms.template_params(outbound, replace(TENCENT, param_max_chars=200)) == [
        "jira:OPS-42 X",
        one_line.removeprefix("[slawatch] "),
    ]


def test_twilio_messaging_service_replaces_from() -> None:
    settings = TwilioSmsSettings(
        account_sid="AC1", auth_token="t", messaging_service_sid="MG" + "1" * 32
    )
    form = twilio_sms.request_form(_outbound("+14155550100"), settings)
    assert form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in form


def test_twilio_settings_need_exactly_one_sender() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsSettings(account_sid="AC1", auth_token="t")
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsSettings(
            account_sid="AC1", auth_token="t", from_number="+1", messaging_service_sid="MG1"
        )


def test_secrets_stay_out_of_settings_reprs() -> None:
    assert "aliyun-secret" not in repr(ALIYUN)
    assert "tencent-secret" not in repr(TENCENT)
    assert "twilio-token" not in repr(TWILIO)


# --- classification tables, pure -------------------------------------------------------


def _aliyun_answer(code: str, message: str = "m", **extra: str) -> bytes:
    return json.dumps({"Code": code, "Message": message, "RequestId": "r", **extra}).encode()


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", Retryable),
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5", Permanent),
        (200, "isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10", Permanent),
        (400, "Throttling.User", "Request was denied due to user flow control.", Retryable),
        (503, "Throttling", "throttled", Retryable),
        (503, "ServiceUnavailable", "temporary failure", Retryable),
        (500, "InternalError", "internal", Retryable),
        (200, "isp.SYSTEM_ERROR", "系统错误", Retryable),
        (400, "SignatureNonceUsed", "nonce used", Retryable),
        (400, "InvalidTimeStamp.Expired", "expired", Retryable),
        (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号", Permanent),
        (200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法", Permanent),
        (200, "isv.SMS_SIGNATURE_ILLEGAL", "签名不合法", Permanent),
        (200, "isv.DAY_LIMIT_CONTROL", "触发日发送限额", Permanent),
        (200, "isv.OUT_OF_SERVICE", "业务停机", Permanent),
        (200, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足", Permanent),
        (404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.", Permanent),
        (400, "SignatureDoesNotMatch", "not matched", Permanent),
        (400, "MissingPhoneNumbers", "PhoneNumbers is mandatory", Permanent),
        (400, "SomethingNew", "unknown", Permanent),
        (502, "SomethingNew", "unknown", Retryable),
    ],
)
def test_aliyun_classification(status: int, code: str, message: str, kind: type) -> None:
    outcome = aliyun_sms.classify_response(status, _aliyun_answer(code, message))
    assert isinstance(outcome, kind)
    assert code in str(outcome)
    assert message in str(outcome)


def test_aliyun_ok_is_delivered_with_the_biz_id() -> None:
    answer = _aliyun_answer("OK", "OK", BizId="900619746936498440^0")
    assert aliyun_sms.classify_response(200, answer) == Delivered("900619746936498440^0")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(200, b"<html>proxy</html>", Retryable), (502, b"", Retryable), (403, b"no", Permanent)],
)
def test_aliyun_answers_without_a_code(status: int, body: bytes, kind: type) -> None:
    assert isinstance(aliyun_sms.classify_response(status, body), kind)


def _tencent_error(code: str) -> bytes:
    error = {"Error": {"Code": code, "Message": f"about {code}"}, "RequestId": "r"}
    return json.dumps({"Response": error}).encode()


def _tencent_status(code: str, serial: str = "") -> bytes:
    status = {"SerialNo": serial, "PhoneNumber": "+8613800000002", "Code": code, "Message": "m"}
    return json.dumps({"Response": {"SendStatusSet": [status], "RequestId": "r"}}).encode()


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RequestLimitExceeded", Retryable),
        ("RequestLimitExceeded.GlobalRegionUinLimitExceeded", Retryable),
        ("InternalError", Retryable),
        ("InternalError.Timeout", Retryable),
        ("InternalError.SendAndRecvFail", Retryable),
        ("InternalError.RequestTimeException", Retryable),
        ("AuthFailure.SignatureExpire", Retryable),
        ("InternalError.RestApiInterfaceNotExist", Permanent),
        ("AuthFailure.SignatureFailure", Permanent),
        ("AuthFailure.SecretIdNotFound", Permanent),
        ("InvalidParameter", Permanent),
        ("InvalidParameterValue.SdkAppIdNotExist", Permanent),
        ("MissingParameter", Permanent),
        ("UnauthorizedOperation.RequestIpNotInWhitelist", Permanent),
        ("FailedOperation.TemplateIncorrectOrUnapproved", Permanent),
        ("FailedOperation.InsufficientBalanceInSmsPackage", Permanent),
        ("LimitExceeded.AppDailyLimit", Permanent),
        ("SomethingNew", Permanent),
    ],
)
def test_tencent_error_classification(code: str, kind: type) -> None:
    outcome = tencent_sms.classify_response(200, _tencent_error(code))
    assert isinstance(outcome, kind)
    assert code in str(outcome)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LimitExceeded.PhoneNumberThirtySecondLimit", Retryable),
        ("LimitExceeded.DeliveryFrequencyLimit", Retryable),
        ("LimitExceeded.PhoneNumberOneHourLimit", Permanent),
        ("LimitExceeded.PhoneNumberDailyLimit", Permanent),
        ("LimitExceeded.PhoneNumberSameContentDailyLimit", Permanent),
        ("InvalidParameterValue.IncorrectPhoneNumber", Permanent),
        ("FailedOperation.PhoneNumberInBlacklist", Permanent),
    ],
)
def test_tencent_send_status_classification(code: str, kind: type) -> None:
    outcome = tencent_sms.classify_response(200, _tencent_status(code))
    assert isinstance(outcome, kind)
    assert code in str(outcome)


def test_tencent_ok_is_delivered_with_the_serial_number() -> None:
    answer = _tencent_status("Ok", "5000:1045710669157053657849499619")
    assert tencent_sms.classify_response(200, answer) == Delivered(
        "5000:1045710669157053657849499619"
    )


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, b"not json", Retryable),
        (200, b'{"Response": {"RequestId": "r"}}', Retryable),
        (429, b"", Retryable),
        (503, b"", Retryable),
        (404, b"", Permanent),
    ],
)
def test_tencent_unusual_answers(status: int, body: bytes, kind: type) -> None:
    assert isinstance(tencent_sms.classify_response(status, body), kind)


def _twilio_error(status: int, code: int) -> bytes:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return json.dumps({"code": code, "message": "m", "more_info": more, "status": status}).encode()


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, Retryable),
        (500, 20500, Retryable),
        (503, 20503, Retryable),
        (400, 21611, Retryable),
        (400, 14107, Retryable),
        (400, 21211, Permanent),
        (400, 21610, Permanent),
        (400, 21614, Permanent),
        (400, 21606, Permanent),
        (401, 20003, Permanent),
        (404, 20404, Permanent),
    ],
)
def test_twilio_classification(status: int, code: int, kind: type) -> None:
    outcome = twilio_sms.classify_response(status, _twilio_error(status, code))
    assert isinstance(outcome, kind)
    assert f"error {code}" in str(outcome)
    assert f"HTTP {status}" in str(outcome)


def test_twilio_created_is_delivered_with_the_sid() -> None:
    answer = json.dumps({"sid": "SM" + "a" * 32, "status": "queued"}).encode()
    assert twilio_sms.classify_response(201, answer) == Delivered("SM" + "a" * 32)


def test_twilio_answers_without_json() -> None:
    assert isinstance(twilio_sms.classify_response(502, b"Bad Gateway"), Retryable)
    assert isinstance(twilio_sms.classify_response(403, b"Forbidden"), Permanent)


# --- failover, pure and with fakes ------------------------------------------------------


class _Fake:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.sent: list[str] = []

    async def send(self, outbound: Outbound) -> Outcome:
        self.sent.append(outbound.notification_id)
        return self.outcome


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (Retryable("a"), Delivered("2"), Delivered("2")),
        (Permanent("a"), Delivered("2"), Delivered("2")),
        (Retryable("a"), Retryable("b"), Retryable("p: a; s: b")),
        (Retryable("a"), Permanent("b"), Retryable("p: a; s: b")),
        (Permanent("a"), Retryable("b"), Retryable("p: a; s: b")),
        (Permanent("a"), Permanent("b"), Permanent("p: a; s: b")),
    ],
)
def test_failover_combination(
    first: Retryable | Permanent, second: Outcome, expected: Outcome
) -> None:
    assert combine(first, second, ("p", "s")) == expected


async def test_failover_leaves_the_secondary_alone_when_the_primary_delivers() -> None:
    primary, secondary = _Fake(Delivered("1")), _Fake(Delivered("2"))
    assert await FailoverChannel(primary, secondary).send(_outbound()) == Delivered("1")
    assert secondary.sent == []


async def test_failover_asks_the_secondary_once_when_the_primary_fails() -> None:
    primary, secondary = _Fake(Permanent("rejected")), _Fake(Retryable("down"))
    outcome = await FailoverChannel(primary, secondary, ("aliyun", "tencent")).send(_outbound())
    assert outcome == Retryable("aliyun: rejected; tencent: down")
    assert (primary.sent, secondary.sent) == (["n-1"], ["n-1"])


# --- against the emulators ----------------------------------------------------------------


def _aliyun_emulator() -> AliyunSmsEmulator:
    return AliyunSmsEmulator(
        access_key_id=ALIYUN.access_key_id,
        access_key_secret=ALIYUN.access_key_secret,
        sign_name=ALIYUN.sign_name,
        template_code=ALIYUN.template_code,
        template_params=("ticket", "detail"),
    )


def _tencent_emulator() -> TencentSmsEmulator:
    return TencentSmsEmulator(
        secret_id=TENCENT.secret_id,
        secret_key=TENCENT.secret_key,
        sms_sdk_app_id=TENCENT.sms_sdk_app_id,
        sign_name=TENCENT.sign_name,
        template_id=TENCENT.template_id,
        template_param_count=2,
    )


def _twilio_emulator() -> TwilioSmsEmulator:
    return TwilioSmsEmulator(
        account_sid=TWILIO.account_sid,
        auth_token=TWILIO.auth_token,
        senders=frozenset({"+15005550006"}),
        unsubscribed=frozenset({"+14155550199"}),
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


@pytest.fixture
async def aliyun() -> AsyncIterator[tuple[AliyunSmsEmulator, str]]:
    emulator = _aliyun_emulator()
    async with serving(emulator.app) as url:
        yield emulator, url


@pytest.fixture
async def tencent() -> AsyncIterator[tuple[TencentSmsEmulator, str]]:
    emulator = _tencent_emulator()
    async with serving(emulator.app) as url:
        yield emulator, url


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioSmsEmulator, str]]:
    emulator = _twilio_emulator()
    async with serving(emulator.app) as url:
        yield emulator, url


def _aliyun_channel(
    client: httpx.AsyncClient, url: str, nonce: Callable[[], str] | None = None, **change: Any
) -> AliyunSmsChannel:
    settings = replace(ALIYUN, endpoint=url, **change)
    if nonce is None:
        return AliyunSmsChannel(client, settings, SystemClock())
    return AliyunSmsChannel(client, settings, SystemClock(), nonce)


def _tencent_channel(client: httpx.AsyncClient, url: str, **change: Any) -> TencentSmsChannel:
    return TencentSmsChannel(client, replace(TENCENT, endpoint=url, **change), SystemClock())


def _twilio_channel(client: httpx.AsyncClient, url: str, **change: Any) -> TwilioSmsChannel:
    return TwilioSmsChannel(client, replace(TWILIO, endpoint=url, **change))


async def test_aliyun_send_is_accepted_with_a_verified_signature(
    client: httpx.AsyncClient, aliyun: tuple[AliyunSmsEmulator, str]
) -> None:
    emulator, url = aliyun
    outcome = await _aliyun_channel(client, url).send(_outbound())
    (sms,) = emulator.accepted
    assert outcome == Delivered(sms.biz_id)
    assert emulator.verified == 1
    assert (sms.phone_numbers, sms.sign_name, sms.template_code) == (
        "13800000002",
        "慧眼监控",
        "SMS_900001",
    )
    assert sms.template_param["ticket"] == "jira:OPS-42"
    assert sms.out_id == "n-1"


@pytest.mark.parametrize(
    ("mode", "code", "kind", "named"),
    [
        (FailMode.SERVER_ERROR, None, Retryable, "ServiceUnavailable"),
        (FailMode.TOO_MANY_REQUESTS, None, Retryable, "Throttling.User"),
        (FailMode.TIMEOUT, None, Retryable, "Timeout"),
        (FailMode.BUSINESS_ERROR, None, Retryable, "isv.BUSINESS_LIMIT_CONTROL"),
        (FailMode.BUSINESS_ERROR, "isv.DAY_LIMIT_CONTROL", Permanent, "isv.DAY_LIMIT_CONTROL"),
        (FailMode.BAD_CREDENTIALS, None, Permanent, "InvalidAccessKeyId.NotFound"),
    ],
)
async def test_aliyun_failure_matrix(
    client: httpx.AsyncClient,
    aliyun: tuple[AliyunSmsEmulator, str],
    mode: FailMode,
    code: str | None,
    kind: type,
    named: str,
) -> None:
    emulator, url = aliyun
    emulator.fail_next(1, mode, code)
    outcome = await _aliyun_channel(client, url, timeout_s=FAST).send(_outbound())
    assert isinstance(outcome, kind)
    assert named in str(outcome)
    assert emulator.accepted == []


async def test_aliyun_rejections_by_the_strict_emulator(
    client: httpx.AsyncClient, aliyun: tuple[AliyunSmsEmulator, str]
) -> None:
    emulator, url = aliyun
    wrong_secret = await _aliyun_channel(client, url, access_key_secret="nope").send(_outbound())
    assert isinstance(wrong_secret, Permanent)
    assert "SignatureDoesNotMatch" in wrong_secret.reason
    bad_number = await _aliyun_channel(client, url).send(_outbound("+86123"))
    assert isinstance(bad_number, Permanent)
    assert "isv.MOBILE_NUMBER_ILLEGAL" in bad_number.reason
    wrong_template = await _aliyun_channel(client, url, template_code="SMS_0").send(_outbound())
    assert isinstance(wrong_template, Permanent)
    assert "isv.SMS_TEMPLATE_ILLEGAL" in wrong_template.reason
    same_nonce = _aliyun_channel(client, url, nonce=lambda: "always-the-same")
    assert isinstance(await same_nonce.send(_outbound()), Delivered)
    again = await same_nonce.send(_outbound())
    assert isinstance(again, Retryable)
    assert "SignatureNonceUsed" in again.reason
    assert len(emulator.accepted) == 1


async def test_tencent_send_is_accepted_with_a_verified_signature(
    client: httpx.AsyncClient, tencent: tuple[TencentSmsEmulator, str]
) -> None:
    emulator, url = tencent
    outcome = await _tencent_channel(client, url).send(_outbound())
    (sms,) = emulator.accepted
    assert outcome == Delivered(sms.serial_no)
    assert emulator.verified == 1
    assert (sms.phone_number, sms.template_id, sms.session_context) == (
        "+8613800000002",
        "2000001",
        "n-1",
    )
    assert sms.params[0] == "jira:OPS-42"


@pytest.mark.parametrize(
    ("mode", "code", "kind", "named"),
    [
        (FailMode.SERVER_ERROR, None, Retryable, "HTTP 502"),
        (FailMode.TOO_MANY_REQUESTS, None, Retryable, "HTTP 429"),
        (FailMode.TIMEOUT, None, Retryable, "Timeout"),
        (FailMode.BUSINESS_ERROR, "RequestLimitExceeded", Retryable, "RequestLimitExceeded"),
        (
            FailMode.BUSINESS_ERROR,
            "LimitExceeded.PhoneNumberDailyLimit",
            Permanent,
            "LimitExceeded.PhoneNumberDailyLimit",
        ),
        (
            FailMode.BUSINESS_ERROR,
            "FailedOperation.InsufficientBalanceInSmsPackage",
            Permanent,
            "FailedOperation.InsufficientBalanceInSmsPackage",
        ),
        (FailMode.BAD_CREDENTIALS, None, Permanent, "AuthFailure.SecretIdNotFound"),
    ],
)
async def test_tencent_failure_matrix(
    client: httpx.AsyncClient,
    tencent: tuple[TencentSmsEmulator, str],
    mode: FailMode,
    code: str | None,
    kind: type,
    named: str,
) -> None:
    emulator, url = tencent
    emulator.fail_next(1, mode, code)
    outcome = await _tencent_channel(client, url, timeout_s=FAST).send(_outbound())
    assert isinstance(outcome, kind)
    assert named in str(outcome)
    assert emulator.accepted == []


async def test_tencent_rejections_by_the_strict_emulator(
    client: httpx.AsyncClient, tencent: tuple[TencentSmsEmulator, str]
) -> None:
    emulator, url = tencent
    wrong_secret = await _tencent_channel(client, url, secret_key="nope").send(_outbound())
    assert isinstance(wrong_secret, Permanent)
    assert "AuthFailure.SignatureFailure" in wrong_secret.reason
    bad_number = await _tencent_channel(client, url).send(_outbound("+86123"))
    assert isinstance(bad_number, Permanent)
    assert "InvalidParameterValue.IncorrectPhoneNumber" in bad_number.reason
    wrong_sign = await _tencent_channel(client, url, sign_name="别的").send(_outbound())
    assert isinstance(wrong_sign, Permanent)
    assert "FailedOperation.SignatureIncorrectOrUnapproved" in wrong_sign.reason
    one_param = await _tencent_channel(client, url, param_order=("ticket",)).send(_outbound())
    assert isinstance(one_param, Permanent)
    assert "TemplateParamSetNotMatchApprovedTemplate" in one_param.reason
    assert emulator.accepted == []


async def test_twilio_send_is_accepted_with_verified_credentials(
    client: httpx.AsyncClient, twilio: tuple[TwilioSmsEmulator, str]
) -> None:
    emulator, url = twilio
    outcome = await _twilio_channel(client, url).send(_outbound("+14155550100"))
    (sms,) = emulator.accepted
    assert outcome == Delivered(sms.sid)
    assert emulator.verified == 1
    assert (sms.to, sms.sender, sms.body) == ("+14155550100", "+15005550006", SMS_TEXT)


@pytest.mark.parametrize(
    ("mode", "code", "kind", "named"),
    [
        (FailMode.SERVER_ERROR, None, Retryable, "error 20500"),
        (FailMode.TOO_MANY_REQUESTS, None, Retryable, "error 20429"),
        (FailMode.TIMEOUT, None, Retryable, "Timeout"),
        (FailMode.BUSINESS_ERROR, "21611", Retryable, "error 21611"),
        (FailMode.BUSINESS_ERROR, "21610", Permanent, "error 21610"),
        (FailMode.BAD_CREDENTIALS, None, Permanent, "error 20003"),
    ],
)
async def test_twilio_failure_matrix(
    client: httpx.AsyncClient,
    twilio: tuple[TwilioSmsEmulator, str],
    mode: FailMode,
    code: str | None,
    kind: type,
    named: str,
) -> None:
    emulator, url = twilio
    emulator.fail_next(1, mode, code)
    outcome = await _twilio_channel(client, url, timeout_s=FAST).send(_outbound("+14155550100"))
    assert isinstance(outcome, kind)
    assert named in str(outcome)
    assert emulator.accepted == []


async def test_twilio_rejections_by_the_strict_emulator(
    client: httpx.AsyncClient, twilio: tuple[TwilioSmsEmulator, str]
) -> None:
    emulator, url = twilio
    wrong_token = await _twilio_channel(client, url, auth_token="nope").send(
        _outbound("+14155550100")
    )
    assert isinstance(wrong_token, Permanent)
    assert "HTTP 401 error 20003" in wrong_token.reason
    bad_number = await _twilio_channel(client, url).send(_outbound("0415"))
    assert isinstance(bad_number, Permanent)
    assert "error 21211" in bad_number.reason
    unsubscribed = await _twilio_channel(client, url).send(_outbound("+14155550199"))
    assert isinstance(unsubscribed, Permanent)
    assert "error 21610" in unsubscribed.reason
    assert emulator.accepted == []


async def test_unreachable_providers_are_retryable(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for channel in (
        _aliyun_channel(client, url),
        _tencent_channel(client, url),
        _twilio_channel(client, url),
    ):
        outcome = await channel.send(_outbound())
        assert isinstance(outcome, Retryable)
        assert "unreachable" in outcome.reason


async def test_failover_from_a_failing_aliyun_to_tencent_delivers(
    client: httpx.AsyncClient,
    aliyun: tuple[AliyunSmsEmulator, str],
    tencent: tuple[TencentSmsEmulator, str],
) -> None:
    (primary, primary_url), (secondary, secondary_url) = aliyun, tencent
    channel = FailoverChannel(
        _aliyun_channel(client, primary_url),
        _tencent_channel(client, secondary_url),
        ("aliyun", "tencent"),
    )
    primary.fail_next(1, FailMode.SERVER_ERROR)
    outcome = await channel.send(_outbound())
    (sms,) = secondary.accepted
    assert outcome == Delivered(sms.serial_no)
    assert (primary.accepted, primary.requests) == ([], 1)
    assert await channel.send(_outbound(notification_id="n-2")) == Delivered(
        primary.accepted[0].biz_id
    )
    assert len(secondary.accepted) == 1


async def test_failover_names_both_failures_when_both_fail(
    client: httpx.AsyncClient,
    aliyun: tuple[AliyunSmsEmulator, str],
    tencent: tuple[TencentSmsEmulator, str],
) -> None:
    (primary, primary_url), (secondary, secondary_url) = aliyun, tencent
    channel = FailoverChannel(
        _aliyun_channel(client, primary_url),
        _tencent_channel(client, secondary_url),
        ("aliyun", "tencent"),
    )
    primary.fail_next(1, FailMode.BUSINESS_ERROR, "isv.OUT_OF_SERVICE")
    secondary.fail_next(1, FailMode.SERVER_ERROR)
    outcome = await channel.send(_outbound())
    assert isinstance(outcome, Retryable)
    assert outcome.reason.startswith("aliyun: Aliyun SMS HTTP 200 isv.OUT_OF_SERVICE")
    assert "; tencent: Tencent SMS HTTP 502" in outcome.reason
