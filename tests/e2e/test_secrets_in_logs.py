"""No configured secret in any log: the three services as processes with every channel
configured, a scenario through all of them, then every line they wrote scanned.

Every credential the services are given is a distinctive value
(``sEcReT-<name>-<random>``, some with characters a URL escapes): the ingest,
admin, API, report and metrics tokens (also the notifier's token for the
engine's reports), the ack-link key, the webhook sources' credentials (Jira
and GLPI sign with HMAC, Alertmanager sends a bearer token), the SMTP password
(the mail server requires STARTTLS and AUTH), both SMS providers' keys
(Alibaba Cloud first, Tencent Cloud when it fails; the generic provider's token
is set too, unused while they are configured), and each chat robot's token and
secret (DingTalk, WeCom, Feishu, Slack's hook URL, the generic webhook's
signing key). Each channel's provider is a strict local emulator that checks
those credentials.

The scenario: a P1 ticket through a signed Jira webhook and one through
``POST /v1/events`` get their warning mail, then the breach SMS and mail and a
post by every robot; each robot's first send fails (HTTP 503), so a retry is
logged for each. The Jira ticket's ack link from its DingTalk post is opened
(``GET``) and used (``POST``), the other ticket is acknowledged through the
API; the engine's report, contracts, preview and ticket status, the dead
letters and the metrics are read with their tokens. Requests with wrong
credentials (tokens, basic auth, signatures, a forged ack link) are refused;
what they presented must stay out of the logs too.

Then each service's output (stdout and stderr, up to its exit) must hold none
of the values, raw, URL-encoded or in base64 (also as the SMTP AUTH PLAIN and
HTTP basic forms that carry them), and no ack-link token: a link's path shows
``/v1/acks/<token>``. Run at the default log level (INFO) and at DEBUG.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml
from deploy.dev.sms_sink import SmsSink

from e2e.system import created, services, services_env, wait_until
from slawatch_common.topics import Topics
from support.certs import self_signed
from support.processes import ServiceProcess, started
from support.providers_chat import (
    DingTalkRobots,
    FeishuBots,
    Mode,
    SlackHooks,
    WebhookReceiver,
    WeComRobots,
)
from support.providers_sms import AliyunSmsEmulator, FailMode, TencentSmsEmulator
from support.smtp_auth import AuthSmtpSink
from support.threaded import serving_in_thread

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

SMTP_USER = "slawatch-relay"
SLACK_HOOK = "T0SLAWATCH/B0SLAWATCH"
"""The team and bot parts of the Slack hook's path; the secret part follows."""
ACK_LINK = re.compile(r"/v1/acks/([A-Za-z0-9._~%-]+)")
UNREDACTED_LINK = re.compile(r"/v1/acks/(?!<token>)", re.IGNORECASE)
ROBOTS = {
    "dingtalk": "ops-ding",
    "wecom": "ops-wecom",
    "feishu": "ops-feishu",
    "slack": "ops-slack",
    "webhook": "itsm",
}
"""Group ``ops``'s robot on each chat channel (and the generic webhook's target), by name."""


URL_ESCAPED = frozenset({"dingtalk_token", "wecom_key", "smtp_password"})
"""Credentials given characters a URL (or the query the robots' tokens travel in) escapes,
so that their URL-encoded form differs from them."""


def secret(name: str, size: int = 12) -> str:
    return f"sEcReT-{name}-{secrets.token_hex(size)}"


@dataclass(frozen=True)
class Secrets:
    """The credentials the services are configured with, and wrong ones a client presents."""

    ingest_token: str
    admin_token: str
    api_token: str
    report_token: str
    engine_report_token: str
    metrics_token: str
    ack_secret: str
    jira_secret: str
    glpi_secret: str
    alertmanager_token: str
    smtp_password: str
    sms_token: str
    aliyun_secret: str
    tencent_secret: str
    dingtalk_token: str
    dingtalk_secret: str
    wecom_key: str
    feishu_token: str
    feishu_secret: str
    slack_secret: str
    webhook_secret: str
    wrong_ingest_token: str
    wrong_api_token: str
    wrong_report_token: str
    wrong_metrics_token: str
    wrong_source_secret: str
    wrong_source_token: str
    wrong_basic_password: str

    @classmethod
    def fresh(cls) -> Secrets:
        values = {name: secret(name.replace("_", "-")) for name in cls.__dataclass_fields__}
        values["ack_secret"] = secret("ack-secret", 32)  # at least 32 bytes
        for name in URL_ESCAPED:
            values[name] += "+/="
        return cls(**values)

    def named(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


ChatRobots = DingTalkRobots | WeComRobots | FeishuBots | SlackHooks


@dataclass
class Sinks:
    """The local providers of every channel, each checking its credentials; ``mail_ca``
    is the mail server's certificate, ``urls`` the emulators' base URLs by name."""

    mail: AuthSmtpSink
    mail_ca: Path
    sms: SmsSink
    aliyun: AliyunSmsEmulator
    tencent: TencentSmsEmulator
    dingtalk: DingTalkRobots
    wecom: WeComRobots
    feishu: FeishuBots
    slack: SlackHooks
    webhook: WebhookReceiver
    urls: dict[str, str]

    def robots(self) -> dict[str, ChatRobots]:
        """The chat robots' emulators (the generic webhook's receiver is ``webhook``)."""
        return {
            "dingtalk": self.dingtalk,
            "wecom": self.wecom,
            "feishu": self.feishu,
            "slack": self.slack,
        }

    def sms_count(self) -> int:
        return len(self.aliyun.accepted) + len(self.tencent.accepted)


@pytest.fixture
def creds() -> Secrets:
    return Secrets.fresh()


@pytest.fixture
def sinks(tmp_path: Path, creds: Secrets) -> Iterator[Sinks]:
    cert, key = self_signed(tmp_path, "smtp")
    aliyun = AliyunSmsEmulator(
        access_key_id="LTAI-slawatch",
        access_key_secret=creds.aliyun_secret,
        sign_name="运维中心",
        template_code="SMS_1001",
        template_params=("ticket", "detail"),
    )
    tencent = TencentSmsEmulator(
        secret_id="AKID-slawatch",
        secret_key=creds.tencent_secret,
        sms_sdk_app_id="1400000001",
        sign_name="运维中心",
        template_id="1001",
        template_param_count=2,
    )
    dingtalk = DingTalkRobots({creds.dingtalk_token: creds.dingtalk_secret})
    wecom = WeComRobots({creds.wecom_key})
    feishu = FeishuBots({creds.feishu_token: creds.feishu_secret})
    slack = SlackHooks({f"{SLACK_HOOK}/{creds.slack_secret}"})
    webhook = WebhookReceiver(creds.webhook_secret)
    apps = {
        "aliyun": aliyun.app,
        "tencent": tencent.app,
        "dingtalk": dingtalk.app,
        "wecom": wecom.app,
        "feishu": feishu.app,
        "slack": slack.app,
        "webhook": webhook.app,
    }
    with ExitStack() as stack:
        mail = stack.enter_context(started(AuthSmtpSink(cert, key, SMTP_USER, creds.smtp_password)))
        sms = stack.enter_context(started(SmsSink(token=creds.sms_token)))
        urls = {name: stack.enter_context(serving_in_thread(app)) for name, app in apps.items()}
        yield Sinks(mail, cert, sms, aliyun, tencent, dingtalk, wecom, feishu, slack, webhook, urls)


def config(sinks: Sinks) -> dict[str, Any]:
    """Policy ``e2e`` (P1 answered within 4 s, warned at 50 %), contract ``acme``, and a
    notifier whose breach step reaches every channel; no secret in the file."""
    urls = sinks.urls
    return {
        "calendars": {"always": {"timezone": "UTC", "always_open": True}},
        "policies": [
            {
                "name": "e2e",
                "calendar": "always",
                "escalation": "standard",
                "warn_at": [50],
                "targets": {"P1": {"response": "4s", "resolution": "1h"}},
            }
        ],
        "contracts": {
            "acme": {"customer": "Acme Co", "provider": "Example Ops Co", "policies": ["e2e"]}
        },
        "notifier": {
            "people": {
                "oncall": {
                    "name": "On-call",
                    "email": "oncall@example.com",
                    "phone": "+8613800000002",
                },
                "supervisor": {
                    "name": "Supervisor",
                    "email": "supervisor@example.com",
                    "phone": "+8613800000003",
                },
            },
            "groups": {
                "ops": {"name": "Ops", "members": ["oncall", "supervisor"], "robots": ROBOTS}
            },
            "event_addresses": {"sources": ["jira", "e2e"], "mail_domains": ["example.com"]},
            "channels": {
                "sms": {
                    "providers": ["aliyun", "tencent"],
                    "aliyun": {
                        "access_key_id": "LTAI-slawatch",
                        "sign_name": "运维中心",
                        "template_code": "SMS_1001",
                        "endpoint": urls["aliyun"],
                    },
                    "tencent": {
                        "secret_id": "AKID-slawatch",
                        "sms_sdk_app_id": "1400000001",
                        "sign_name": "运维中心",
                        "template_id": "1001",
                        "endpoint": urls["tencent"],
                    },
                },
                "dingtalk": {"ops-ding": {"base_url": urls["dingtalk"]}},
                "wecom": {"ops-wecom": {"base_url": urls["wecom"]}},
                "feishu": {"ops-feishu": {"base_url": urls["feishu"]}},
                "slack": {"ops-slack": {}},
                "webhook": {"itsm": {"url": f"{urls['webhook']}/slawatch"}},
            },
            "escalations": {
                "standard": [
                    {"on": "warning", "notify": [{"to": "assignee", "via": "email"}]},
                    {
                        "on": "breach",
                        "notify": [
                            {"to": "oncall", "via": "sms"},
                            {"to": "supervisor", "via": "email"},
                            *({"to": "group:ops", "via": robot} for robot in ROBOTS),
                        ],
                    },
                ]
            },
        },
    }


def secret_env(creds: Secrets, sinks: Sinks, log_level: str) -> dict[str, str]:
    """Every secret, where the services read it: the environment."""
    api_tokens = [
        {
            "name": "ops-console",
            "token": creds.api_token,
            "scopes": ["events:write", "sla:read", "acks:write", "oncall:read"],
            "sources": ["e2e"],
        }
    ]
    return {
        "SLAWATCH_LOG_LEVEL": log_level,
        "SLAWATCH_INGEST_TOKENS": creds.ingest_token,
        "SLAWATCH_ADMIN_TOKENS": json.dumps([creds.admin_token]),
        "SLAWATCH_API_TOKENS": json.dumps(api_tokens),
        "SLAWATCH_REPORT_TOKENS": json.dumps([creds.report_token, creds.engine_report_token]),
        "SLAWATCH_ENGINE_REPORT_TOKEN": creds.engine_report_token,
        "SLAWATCH_METRICS_TOKEN": creds.metrics_token,
        "SLAWATCH_ACK_SECRET": creds.ack_secret,
        "SLAWATCH_SOURCE_JIRA_SECRET": creds.jira_secret,
        "SLAWATCH_SOURCE_GLPI_SECRET": creds.glpi_secret,
        "SLAWATCH_SOURCE_ALERTMANAGER_TOKENS": creds.alertmanager_token,
        "SLAWATCH_SMTP_USERNAME": SMTP_USER,
        "SLAWATCH_SMTP_PASSWORD": creds.smtp_password,
        "SLAWATCH_SMTP_CA_FILE": str(sinks.mail_ca),
        "SLAWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET": creds.aliyun_secret,
        "SLAWATCH_SMS_TENCENT_SECRET_KEY": creds.tencent_secret,
        "SLAWATCH_DINGTALK_OPS_DING_ACCESS_TOKEN": creds.dingtalk_token,
        "SLAWATCH_DINGTALK_OPS_DING_SECRET": creds.dingtalk_secret,
        "SLAWATCH_WECOM_OPS_WECOM_KEY": creds.wecom_key,
        "SLAWATCH_FEISHU_OPS_FEISHU_TOKEN": creds.feishu_token,
        "SLAWATCH_FEISHU_OPS_FEISHU_SECRET": creds.feishu_secret,
        "SLAWATCH_SLACK_OPS_SLACK_URL": slack_url(creds, sinks),
        "SLAWATCH_WEBHOOK_ITSM_SECRET": creds.webhook_secret,
        "SLAWATCH_RETRY_BASE_S": "0.2",
    }


def slack_url(creds: Secrets, sinks: Sinks) -> str:
    return f"{sinks.urls['slack']}/services/{SLACK_HOOK}/{creds.slack_secret}"


# --- what clients send -------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hub_signature(secret_value: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret_value.encode(), body, hashlib.sha256).hexdigest()


def glpi_signature(secret_value: str, body: bytes, timestamp: int) -> str:
    return hmac.new(
        secret_value.encode(), body + str(timestamp).encode(), hashlib.sha256
    ).hexdigest()


def jira_created(key: str, at: datetime) -> bytes:
    """A Jira ``jira:issue_created`` delivery of a Highest (P1) issue created at ``at``."""
    created = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
    body = {
        "timestamp": int(at.timestamp() * 1000),
        "webhookEvent": "jira:issue_created",
        "issue": {
            "id": "10042",
            "key": key,
            "fields": {
                "summary": f"Core switch down ({key})",
                "created": created,
                "priority": {"name": "Highest"},
                "status": {"name": "Open"},
                "issuetype": {"name": "Incident"},
                "assignee": {
                    "accountId": "agent-jira",
                    "displayName": "Agent Jira",
                    "emailAddress": "agent-jira@example.com",
                },
            },
        },
    }
    return json.dumps(body).encode()


def glpi_new(ticket: int, at: datetime) -> bytes:
    """A GLPI ``new`` delivery of a low-priority (P4) ticket."""
    body = {
        "event": "new",
        "item": {
            "id": ticket,
            "name": "Printer out of toner",
            "status": {"id": 1, "name": "New"},
            "priority": 2,
            "urgency": 2,
            "impact": 2,
            "type": 2,
            "entity": {"name": "Root"},
            "category": {"name": "office"},
            "date_creation": at.isoformat(),
            "date_mod": at.isoformat(),
        },
    }
    return json.dumps(body).encode()


def alertmanager_firing(at: datetime) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "ApiDown", "service": "billing", "severity": "critical"},
        "annotations": {"summary": "the billing API does not answer"},
        "startsAt": at.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": secrets.token_hex(8),
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="ApiDown"}',
        "status": "firing",
        "receiver": "slawatch",
        "groupLabels": {"alertname": "ApiDown"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.example.com",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def answered(response: httpx.Response, expected: int) -> httpx.Response:
    assert response.status_code == expected, (response.request.url.path, response.text[:500])
    return response


# --- what the sinks got ----------------------------------------------------------


def mail_text(message: Message) -> str:
    """Every decoded text part of a mail, and its subject."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts.append(payload.decode(part.get_content_charset() or "utf-8", errors="replace"))
    return "\n".join(parts)


def delivered_texts(sinks: Sinks) -> list[str]:
    """What every channel delivered, as text: mails, SMS, each robot's posts."""
    texts = [mail_text(received.message) for received in sinks.mail.received_snapshot()]
    texts += [json.dumps(sms.template_param, ensure_ascii=False) for sms in sinks.aliyun.accepted]
    texts += [json.dumps(sms.params, ensure_ascii=False) for sms in sinks.tencent.accepted]
    for emulator in (*sinks.robots().values(), sinks.webhook):
        texts += [json.dumps(post.message, ensure_ascii=False) for post in emulator.accepted]
    return texts


def ack_tokens(texts: list[str]) -> set[str]:
    return {match for text in texts for match in ACK_LINK.findall(text)}


def all_delivered(sinks: Sinks) -> bool:
    mails = sinks.mail.received_snapshot()
    return (
        len(mails) == 4
        and sinks.sms_count() == 2
        and all(len(emulator.accepted) == 2 for emulator in sinks.robots().values())
        and len(sinks.webhook.accepted) == 2
    )


# --- reading the logs --------------------------------------------------------------


def encoded_forms(value: str) -> dict[str, bool]:
    """``value`` as it could appear in a line, each form with whether case is ignored when
    looking for it: raw and URL-encoded (case ignored: ``%2b`` is ``%2B``), and base64,
    standard and URL-safe, with and without padding (exact)."""
    raw = value.encode()
    forms = dict.fromkeys((value, quote(value, safe=""), quote_plus(value)), True)
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= dict.fromkeys((encoded, encoded.rstrip("=")), False)
    return forms


def carried_forms(creds: Secrets) -> dict[str, str]:
    """Credentials that travel combined with something else: SMTP AUTH PLAIN and HTTP basic."""
    plain = f"\0{SMTP_USER}\0{creds.smtp_password}".encode()
    wrong_basic = f"alertmanager:{creds.wrong_basic_password}".encode()
    return {
        "smtp AUTH PLAIN": base64.b64encode(plain).decode(),
        "wrong basic credentials": base64.b64encode(wrong_basic).decode(),
    }


def leaks(logs: dict[str, str], values: dict[str, str]) -> list[str]:
    """``"<service>: <name> (<form>) in: <line>"`` for each value found in a log, in any of
    its forms."""
    found = []
    for service, text in logs.items():
        lines = text.splitlines()
        folded = [line.lower() for line in lines]
        for name, value in values.items():
            for form, caseless in encoded_forms(value).items():
                needle = form.lower() if caseless else form
                for line, searched in zip(lines, folded if caseless else lines, strict=True):
                    if needle in searched:
                        found.append(f"{service}: {name} ({form}) in: {line[:300]}")
    return found


def read_logs(procs: list[ServiceProcess]) -> dict[str, str]:
    return {proc.script: proc.log_text() for proc in procs}


# --- the test ---------------------------------------------------------------------


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_no_configured_secret_and_no_ack_token_reaches_any_log(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    creds: Secrets,
    sinks: Sinks,
    log_level: str,
) -> None:
    config_file = tmp_path / "slawatch.yaml"
    config_file.write_text(yaml.safe_dump(config(sinks), allow_unicode=True), encoding="utf-8")
    env = services_env(
        config_file,
        kafka_bootstrap,
        topics,
        pg_url,
        sinks.mail.port,
        sinks.sms,
        secret_env(creds, sinks, log_level),
    )
    # one failure first on every robot (retried) and at the first SMS provider (failed over)
    for emulator in (sinks.dingtalk, sinks.wecom, sinks.feishu, sinks.slack, sinks.webhook):
        emulator.fail_next(1, Mode.SERVER_ERROR)
    sinks.aliyun.fail_next(1, FailMode.SERVER_ERROR)
    presented: dict[str, str] = {}

    with services(env, tmp_path) as procs:
        ingest, engine, notifier = procs
        presented |= drive(creds, ingest, engine, notifier, sinks)

    logs = read_logs(procs)

    # the channels really ran, each with its credentials
    delivered = sinks.mail.received_snapshot()
    assert sorted(r.recipients[0] for r in delivered) == [
        "agent-e-1@example.com",
        "agent-jira@example.com",
        "supervisor@example.com",
        "supervisor@example.com",
    ]
    logins = sinks.mail.logins_snapshot()
    assert logins, "the notifier never logged in to the mail server"
    assert all(login.over_tls and login.accepted for login in logins), logins
    assert len(sinks.aliyun.accepted) == 1  # its first request failed: Tencent took that SMS
    assert len(sinks.tencent.accepted) == 1
    for name, emulator in sinks.robots().items():
        assert len(emulator.accepted) == 2, name
        assert emulator.requests == 3, name  # the failed one, then both posts
    assert len(sinks.webhook.accepted) == 2  # verified by its signature, subject and all
    assert sinks.webhook.requests == 3
    links = ack_tokens(delivered_texts(sinks))
    assert links, "no ack link in any message"

    # the scan reads real lines: each service logged, the notifier its link requests
    # (redacted) and the retried robot sends
    for service, text in logs.items():
        assert len(text.splitlines()) >= 5, f"{service} logged almost nothing:\n{text}"
    notifier_log = logs["slawatch-notifier"]
    if log_level == "DEBUG":
        assert " DEBUG " in notifier_log, "the notifier did not run at DEBUG"
    assert '"GET /v1/acks/<token> HTTP/1.1" 200' in notifier_log
    assert '"POST /v1/acks/<token> HTTP/1.1" 200' in notifier_log
    assert '"GET /v1/acks/<token> HTTP/1.1" 403' in notifier_log
    assert '"POST /v1/acks HTTP/1.1" 401' in notifier_log
    assert "escalation jira:OPS-7:response#1 acknowledged by group:ops (link)" in notifier_log
    assert "escalation e2e:E-1:response#1 acknowledged by ops console via ops-console" in (
        notifier_log
    )
    assert "retrying" in notifier_log

    values = {**creds.named(), **presented, "slack hook url": slack_url(creds, sinks)}
    for token in links:
        values[f"ack token {token[:12]}…"] = token
        values[f"ack signature {token[:12]}…"] = token.rpartition(".")[2]
    found = leaks(logs, values)
    for service, text in logs.items():
        for label, form in carried_forms(creds).items():
            found += [
                f"{service}: {label} in: {line}" for line in text.splitlines() if form in line
            ]
        found += [
            f"{service}: an ack link's path in: {line[:300]}"
            for line in text.splitlines()
            if UNREDACTED_LINK.search(line)
        ]
    assert found == [], "\n".join(found)


def drive(
    creds: Secrets,
    ingest: ServiceProcess,
    engine: ServiceProcess,
    notifier: ServiceProcess,
    sinks: Sinks,
) -> dict[str, str]:
    """The scenario (see the module docstring); the wrong values it presented, by name."""
    presented: dict[str, str] = {}
    t0 = datetime.now(UTC)
    with httpx.Client(timeout=10) as client:
        # a P1 ticket through the signed Jira webhook, another through POST /v1/events
        jira = jira_created("OPS-7", t0)
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/jira",
                content=jira,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature": hub_signature(creds.jira_secret, jira),
                    "X-Atlassian-Webhook-Identifier": "delivery-ops-7",
                },
            ),
            202,
        )
        # the API token (events:write bound to e2e, which it protects) for the e2e ticket;
        # the older ingest token for a source nothing protects; GLPI signed, Alertmanager
        # by its token
        events = [created("E-1", t0, "P1")]
        answered(
            client.post(f"{ingest.url}/v1/events", json=events, headers=bearer(creds.api_token)),
            202,
        )
        quiet = [{**created("E-2", t0, "P4"), "source": "desk"}]
        answered(
            client.post(f"{ingest.url}/v1/events", json=quiet, headers=bearer(creds.ingest_token)),
            202,
        )
        stamp = int(time.time())
        glpi = glpi_new(4711, t0)
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/glpi",
                content=glpi,
                headers={
                    "Content-Type": "application/json",
                    "X-GLPI-signature": glpi_signature(creds.glpi_secret, glpi, stamp),
                    "X-GLPI-timestamp": str(stamp),
                },
            ),
            202,
        )
        alerts = alertmanager_firing(t0)
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/alertmanager",
                content=alerts,
                headers={"Content-Type": "application/json", **bearer(creds.alertmanager_token)},
            ),
            202,
        )

        # wrong credentials, each refused
        answered(
            client.post(
                f"{ingest.url}/v1/events", json=events, headers=bearer(creds.wrong_ingest_token)
            ),
            401,
        )
        forged = hub_signature(creds.wrong_source_secret, jira)
        presented["forged jira signature"] = forged.partition("=")[2]
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/jira",
                content=jira,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature": forged,
                    "X-Atlassian-Webhook-Identifier": "delivery-forged",
                },
            ),
            401,
        )
        forged_glpi = glpi_signature(creds.wrong_source_secret, glpi, stamp)
        presented["forged glpi signature"] = forged_glpi
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/glpi",
                content=glpi,
                headers={"X-GLPI-signature": forged_glpi, "X-GLPI-timestamp": str(stamp)},
            ),
            401,
        )
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/alertmanager",
                content=alerts,
                headers=bearer(creds.wrong_source_token),
            ),
            401,
        )
        answered(
            client.post(
                f"{ingest.url}/v1/webhooks/alertmanager",
                content=alerts,
                headers={"Authorization": basic("alertmanager", creds.wrong_basic_password)},
            ),
            401,
        )

        # warning mails, then the breach on every channel (each robot retried once)
        wait_until(lambda: all_delivered(sinks), 60, "every channel's messages")
        posts = [json.dumps(p.message, ensure_ascii=False) for p in sinks.dingtalk.accepted]
        link = min(ack_tokens([post for post in posts if "OPS-7" in post]))

        # the Jira ticket's ack link from its DingTalk post: its page, its button; a forged one
        page = answered(client.get(f"{notifier.url}/v1/acks/{link}"), 200)
        assert "<form" in page.text
        answered(client.post(f"{notifier.url}/v1/acks/{link}"), 200)
        body, _, signature = link.rpartition(".")
        forged_link = f"{body}.{signature[::-1]}"
        presented["forged ack link"] = forged_link
        answered(client.get(f"{notifier.url}/v1/acks/{forged_link}"), 403)

        # the API: the other ticket acknowledged with the API token, and with a wrong one
        ack = {"ticket_source": "e2e", "ticket_id": "E-1", "by": "ops console"}
        acked = answered(
            client.post(f"{notifier.url}/v1/acks", json=ack, headers=bearer(creds.api_token)), 200
        )
        assert [e["changed"] for e in acked.json()["escalations"]] == [True]
        answered(
            client.post(f"{notifier.url}/v1/acks", json=ack, headers=bearer(creds.wrong_api_token)),
            401,
        )
        answered(client.get(f"{notifier.url}/v1/oncall", headers=bearer(creds.api_token)), 200)

        # the engine: status, preview, contracts and a report, each with its token
        api = bearer(creds.api_token)
        answered(client.get(f"{engine.url}/v1/tickets/jira/OPS-7/sla", headers=api), 200)
        preview = {"calendar": {"name": "always"}, "start": t0.isoformat(), "target_seconds": 3600}
        answered(client.post(f"{engine.url}/v1/preview", json=preview, headers=api), 200)
        reports = bearer(creds.report_token)
        answered(client.get(f"{engine.url}/v1/contracts", headers=reports), 200)
        month = {"period": t0.strftime("%Y-%m")}
        report = f"{engine.url}/v1/reports/acme"
        answered(client.get(report, params=month, headers=reports), 200)
        answered(client.get(report, params=month, headers=bearer(creds.wrong_report_token)), 401)

        # operations: dead letters with the admin token, metrics with theirs
        for proc in (engine, notifier):
            answered(
                client.get(f"{proc.url}/v1/dead-letters", headers=bearer(creds.admin_token)), 200
            )
        for proc in (ingest, engine, notifier):
            answered(client.get(f"{proc.url}/metrics", headers=bearer(creds.metrics_token)), 200)
            answered(
                client.get(f"{proc.url}/metrics", headers=bearer(creds.wrong_metrics_token)), 401
            )
    return presented
