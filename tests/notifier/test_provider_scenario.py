"""The escalation scenario through strictly emulated providers.

The notifier runs in-process on a real Kafka topic, a real SMTP sink and a
database; SMS goes to an emulated Alibaba Cloud (primary) and Tencent Cloud
(secondary) endpoint, chat to an emulated DingTalk robot — each checks the
request's signature and shape exactly as the provider does.

warning → the assignee's mail; breach → the on-call engineer's SMS and one
post to L2's DingTalk robot; no acknowledgement within the delay → the
supervisor's SMS and mail. Following the ack link of the DingTalk post stops
the waiting step. Every event arrives twice; every recipient hears once.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.factories import ESCALATING, sla_event, write_config
from notifier.harness import eventually, produce, running_notifier
from slawatch_common.events import SlaEvent
from slawatch_common.topics import Topics
from slawatch_notifier.settings import NotifierSettings
from support.providers_chat import DingTalkRobots
from support.providers_sms import AliyunSmsEmulator, FailMode, TencentSmsEmulator
from support.serving import serving
from support.smtp import SmtpSink

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]

ONCALL_PHONE, SUPERVISOR_PHONE = "13800000011", "13800000020"  # mainland numbers
LINK = re.compile(r"http://notifier(/v1/acks/[A-Za-z0-9._~%-]+)")
SECRETS = {
    "SLAWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET": "aliyun-secret",
    "SLAWATCH_SMS_TENCENT_SECRET_KEY": "tencent-secret",
    "SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN": "l2-token",
    "SLAWATCH_DINGTALK_L2_ROBOT_SECRET": "SEC-l2-robot",
}


@dataclass
class Providers:
    aliyun: AliyunSmsEmulator
    tencent: TencentSmsEmulator
    dingtalk: DingTalkRobots
    channels: dict[str, Any]


@pytest.fixture
async def providers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Providers]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    aliyun = AliyunSmsEmulator(
        access_key_id="LTAI-scenario",
        access_key_secret="aliyun-secret",
        sign_name="运维中心",
        template_code="SMS_1001",
        template_params=("ticket", "detail"),
    )
    tencent = TencentSmsEmulator(
        secret_id="AKID-scenario",
        secret_key="tencent-secret",
        sms_sdk_app_id="1400000001",
        sign_name="运维中心",
        template_id="1001",
        template_param_count=2,
    )
    dingtalk = DingTalkRobots({"l2-token": "SEC-l2-robot"})
    async with (
        serving(aliyun.app) as aliyun_url,
        serving(tencent.app) as tencent_url,
        serving(dingtalk.app) as dingtalk_url,
    ):
        channels = {
            "sms": {
                "providers": ["aliyun", "tencent"],
                "aliyun": {
                    "access_key_id": "LTAI-scenario",
                    "sign_name": "运维中心",
                    "template_code": "SMS_1001",
                    "endpoint": aliyun_url,
                },
                "tencent": {
                    "secret_id": "AKID-scenario",
                    "sms_sdk_app_id": "1400000001",
                    "sign_name": "运维中心",
                    "template_id": "1001",
                    "endpoint": tencent_url,
                },
            },
            "dingtalk": {"l2-robot": {"base_url": dingtalk_url}},
        }
        yield Providers(aliyun, tencent, dingtalk, channels)


def _settings(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    smtp_sink: SmtpSink,
    providers: Providers,
    after: str,
) -> NotifierSettings:
    config = copy.deepcopy(ESCALATING)
    config["schedules"]["l2"]["rotations"][0]["people"] = ["zhao.lei"]
    chain = config["escalations"]["tiered"]
    chain[1]["notify"] = [
        {"to": "oncall:l2", "via": "sms"},
        {"to": "group:l2", "via": "dingtalk"},
    ]
    chain[2]["after"] = after
    config["channels"] = providers.channels
    return NotifierSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        kafka_partitions=2,
        config_file=write_config(tmp_path, config),
        database_url=f"sqlite+aiosqlite:///{tmp_path}/notifier.db",
        smtp_port=smtp_sink.port,
        send_timeout_s=5,
        retry_base_s=0.2,
        ack_secret="scenario-secret",
        public_url="http://notifier",
    )


def _events() -> tuple[SlaEvent, SlaEvent]:
    breach_at = datetime.now(UTC)
    warning = sla_event(
        "warning:75", escalation="tiered", occurred_at=breach_at - timedelta(minutes=3)
    )
    return warning, sla_event("breach", escalation="tiered", occurred_at=breach_at)


def _sms_to(providers: Providers) -> list[str]:
    """The mainland numbers texted by either provider (Tencent keeps the +86)."""
    return sorted(
        [sms.phone_numbers for sms in providers.aliyun.accepted]
        + [sms.phone_number.removeprefix("+86") for sms in providers.tencent.accepted]
    )


async def test_breach_reaches_on_call_sms_l2_dingtalk_then_the_supervisor_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    smtp_sink: SmtpSink,
    providers: Providers,
) -> None:
    settings = _settings(tmp_path, kafka_bootstrap, topics, smtp_sink, providers, "1s")
    warning, breach = _events()
    providers.aliyun.fail_next(1, FailMode.SERVER_ERROR)  # the first SMS fails over to Tencent
    async with running_notifier(settings):
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await eventually(lambda: len(_sms_to(providers)) >= 2 and len(smtp_sink.snapshot()) >= 2)
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await asyncio.sleep(1.5)

    mails = sorted((at, to[0], message["Subject"]) for at, to, message in smtp_sink.snapshot())
    assert [to for _, to, _ in mails] == ["li.wei@example.com", "wang.fang@example.com"]
    assert "warning" in str(mails[0][2]).lower()
    assert _sms_to(providers) == [ONCALL_PHONE, SUPERVISOR_PHONE]
    (oncall,) = providers.tencent.accepted  # the primary failed once: the secondary took it
    assert oncall.session_context.endswith(":zhao.lei:sms")
    (boss,) = providers.aliyun.accepted
    assert str(boss.out_id).endswith(":wang.fang:sms")
    assert boss.template_param["ticket"] == "jira:OPS-42"
    (post,) = providers.dingtalk.accepted
    assert post.robot == "l2-token"
    assert "OPS-42" in post.message["markdown"]["text"]
    breach_at = breach.occurred_at.timestamp()
    assert mails[1][0] - breach_at >= 1.0  # the supervisor only after the delay


async def test_the_ack_link_in_the_dingtalk_post_stops_the_waiting_step(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    smtp_sink: SmtpSink,
    providers: Providers,
) -> None:
    settings = _settings(tmp_path, kafka_bootstrap, topics, smtp_sink, providers, "6s")
    warning, breach = _events()
    async with running_notifier(settings) as client:
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await eventually(lambda: len(providers.dingtalk.accepted) == 1)
        text = providers.dingtalk.accepted[0].message["markdown"]["text"]
        link = LINK.search(text)
        assert link is not None, text
        page = await client.get(link[1])  # shows what the link acknowledges, changes nothing
        assert '<form method="post"' in page.text, page.text
        answer = await client.post(link[1])  # the page's button
        assert answer.status_code == 200, answer.text
        assert time.time() - breach.occurred_at.timestamp() < 6.0
        await produce(settings.kafka_bootstrap, settings.topics.sla, [warning, breach])
        await asyncio.sleep(max(0.0, breach.occurred_at.timestamp() + 7.0 - time.time()))

    assert [to[0] for _, to, _ in smtp_sink.snapshot()] == ["li.wei@example.com"]
    assert _sms_to(providers) == [ONCALL_PHONE]
    assert len(providers.dingtalk.accepted) == 1
