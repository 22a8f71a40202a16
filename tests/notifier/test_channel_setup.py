"""The ``notifier.channels`` section: validation, secrets from the environment, wiring."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from notifier.factories import ESCALATING, write_config
from slawatch_common.events import Channel
from slawatch_common.runtime import ConfigError
from slawatch_notifier.channels.aliyun_sms import AliyunSmsSettings
from slawatch_notifier.channels.dingtalk import DingTalkRobot
from slawatch_notifier.channels.failover import FailoverChannel
from slawatch_notifier.channels.port import Delivered, Outbound, Permanent
from slawatch_notifier.channels.setup import (
    build_channels,
    env_name,
    parse_channels,
)
from slawatch_notifier.clock import SystemClock
from slawatch_notifier.config import parse_config
from slawatch_notifier.main import check_config
from slawatch_notifier.templates import Content
from support.providers_chat import DingTalkRobots
from support.providers_sms import AliyunSmsEmulator, FailMode, TencentSmsEmulator
from support.serving import serving

ALIYUN = {"access_key_id": "LTAI-test", "sign_name": "运维中心", "template_code": "SMS_1"}
TENCENT = {
    "secret_id": "AKID-test",
    "sms_sdk_app_id": "1400000001",
    "sign_name": "运维中心",
    "template_id": "1001",
}
SECRETS = {
    "SLAWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET": "aliyun-secret",
    "SLAWATCH_SMS_TENCENT_SECRET_KEY": "tencent-secret",
    "SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN": "l2-token",
    "SLAWATCH_DINGTALK_L2_ROBOT_SECRET": "SEC-l2",
}


class _Port:
    async def send(self, outbound: Outbound) -> Delivered:
        return Delivered("x")


def test_env_names_are_upper_case_with_underscores() -> None:
    assert env_name("dingtalk", "l2-robot", "secret") == "SLAWATCH_DINGTALK_L2_ROBOT_SECRET"


def test_secrets_come_from_the_environment_and_stay_out_of_repr() -> None:
    settings = parse_channels(
        {"sms": {"providers": ["aliyun"], "aliyun": ALIYUN}, "dingtalk": {"l2-robot": {}}},
        SECRETS,
    )
    ((name, aliyun),) = settings.sms
    assert name == "aliyun"
    assert isinstance(aliyun, AliyunSmsSettings)
    assert aliyun.access_key_secret == "aliyun-secret"
    assert "aliyun-secret" not in repr(aliyun)
    robot = settings.robots[Channel.DINGTALK]["l2-robot"]
    assert robot == DingTalkRobot("l2-token", "SEC-l2")
    assert settings.names(Channel.DINGTALK) == {"l2-robot"}
    assert settings.names(Channel.FEISHU) == frozenset()


def test_every_problem_is_named_by_path_and_a_missing_secret_by_its_variable() -> None:
    section = {
        "sms": {"providers": ["aliyun", "nexmo"], "aliyun": {"sign_name": "x"}},
        "dingtalk": {"l2-robot": {}},
        "pager": {},
    }
    with pytest.raises(ConfigError) as caught:
        parse_channels(section, {})
    lines = str(caught.value).splitlines()
    assert "notifier.channels.pager: unknown channel" in lines
    assert any(
        line.startswith("notifier.channels.sms.providers.1: unknown provider") for line in lines
    )
    assert (
        "notifier.channels.sms.aliyun.access_key_secret: missing "
        "(set it here or in SLAWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET)"
    ) in lines
    assert (
        "notifier.channels.dingtalk.l2-robot.access_token: missing "
        "(set it here or in SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN)"
    ) in lines


def test_more_than_two_sms_providers_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"sms\.providers: one or two"):
        parse_channels({"sms": {"providers": ["aliyun", "tencent", "twilio"]}}, {})


def test_no_section_keeps_the_default_sms_and_empty_robots() -> None:
    default = _Port()
    ports = build_channels(
        parse_channels(None, {}),
        client=httpx.AsyncClient(),
        clock=SystemClock(),
        email=_Port(),
        default_sms=default,
    )
    assert ports[Channel.SMS] is default
    assert set(ports) == set(Channel)


def test_two_providers_make_a_failover_channel() -> None:
    settings = parse_channels(
        {"sms": {"providers": ["aliyun", "tencent"], "aliyun": ALIYUN, "tencent": TENCENT}},
        SECRETS,
    )
    ports = build_channels(
        settings,
        client=httpx.AsyncClient(),
        clock=SystemClock(),
        email=_Port(),
        default_sms=_Port(),
    )
    assert isinstance(ports[Channel.SMS], FailoverChannel)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def _outbound(address: str) -> Outbound:
    return Outbound(
        notification_id="jira:OPS-1:response:breach:0:oncall:sms",
        ticket_source="jira",
        ticket_id="OPS-1",
        recipient_name="On-call engineer",
        address=address,
        content=Content(subject="Breach OPS-1", text="[slawatch] BREACH P1 jira:OPS-1"),
    )


async def test_configured_ports_reach_the_emulated_providers(client: httpx.AsyncClient) -> None:
    aliyun = AliyunSmsEmulator(
        access_key_id=ALIYUN["access_key_id"],
        access_key_secret="aliyun-secret",
        sign_name=ALIYUN["sign_name"],
        template_code=ALIYUN["template_code"],
        template_params=("ticket", "detail"),
    )
    tencent = TencentSmsEmulator(
        secret_id=TENCENT["secret_id"],
        secret_key="tencent-secret",
        sms_sdk_app_id=TENCENT["sms_sdk_app_id"],
        sign_name=TENCENT["sign_name"],
        template_id=TENCENT["template_id"],
        template_param_count=2,
    )
    robots = DingTalkRobots({"l2-token": "SEC-l2"})
    async with (
        serving(aliyun.app) as aliyun_url,
        serving(tencent.app) as tencent_url,
        serving(robots.app) as robots_url,
    ):
        section = {
            "sms": {
                "providers": ["aliyun", "tencent"],
                "aliyun": {**ALIYUN, "endpoint": aliyun_url},
                "tencent": {**TENCENT, "endpoint": tencent_url},
            },
            "dingtalk": {"l2-robot": {"base_url": robots_url}},
        }
        ports = build_channels(
            parse_channels(section, SECRETS),
            client=client,
            clock=SystemClock(),
            email=_Port(),
            default_sms=_Port(),
        )
        aliyun.fail_next(1, FailMode.SERVER_ERROR)
        sms = await ports[Channel.SMS].send(_outbound("+8613800000002"))
        posted = await ports[Channel.DINGTALK].send(_outbound("l2-robot"))
        unknown = await ports[Channel.DINGTALK].send(_outbound("l3-robot"))
    assert isinstance(sms, Delivered)
    assert (aliyun.requests, len(aliyun.accepted), len(tencent.accepted)) == (1, 0, 1)
    assert isinstance(posted, Delivered)
    assert len(robots.accepted) == 1
    assert isinstance(unknown, Permanent)
    assert "l3-robot" in unknown.reason


def test_robots_named_by_groups_and_people_must_be_defined() -> None:
    section = copy.deepcopy(ESCALATING)
    del section["channels"]
    section["people"]["li.wei"]["feishu"] = "li-bot"
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    lines = str(caught.value).splitlines()
    assert (
        "notifier.groups.l2.robots.dingtalk: no dingtalk robot 'l2-robot' in "
        "notifier.channels.dingtalk"
    ) in lines
    assert (
        "notifier.people.li.wei.feishu: no feishu robot 'li-bot' in notifier.channels.feishu"
        in lines
    )
    section["channels"] = {"dingtalk": {"l2-robot": {}}, "feishu": {"li-bot": {}}}
    assert parse_config(section).channels["dingtalk"] == {"l2-robot": {}}


def test_check_config_reports_a_missing_channel_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    section = copy.deepcopy(ESCALATING)
    section["channels"] = {"dingtalk": {"l2-robot": {}}}
    path = write_config(tmp_path, section)
    monkeypatch.delenv("SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN", raising=False)
    assert check_config(path) == 1
    assert "SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN", "token")
    assert check_config(path) == 0
