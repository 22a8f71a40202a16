"""Which provider stands behind each channel: the ``notifier.channels`` section.

    notifier:
      channels:
        sms:
          providers: [aliyun, tencent]    # tried in this order: the second takes
                                          # over whenever the first fails
          aliyun: {access_key_id: LTAI5t…, sign_name: 运维中心, template_code: SMS_1234}
          tencent: {secret_id: AKID…, sms_sdk_app_id: "1400…", sign_name: 运维中心,
                    template_id: "1234"}
        dingtalk:                         # robots by name; a group or person names one
          l2-robot: {}
        feishu:
          l3-bot: {}
        wecom: {}
        slack: {}
        webhook:
          itsm: {url: "https://itsm.example.com/hooks/slawatch"}

Secrets stay out of the file. Every field of a provider or robot can be set
(or overridden) by the environment variable
``SLAWATCH_<KIND>_<NAME>_<FIELD>``, upper-cased with ``-`` as ``_``:
``SLAWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET``, ``SLAWATCH_DINGTALK_L2_ROBOT_ACCESS_TOKEN``,
``SLAWATCH_DINGTALK_L2_ROBOT_SECRET``. Start-up fails, naming the dotted path and
the variable, when a required field is missing.

Without an ``sms`` entry, SMS goes to the generic HTTP provider of the
settings (``SLAWATCH_SMS_URL``, ``SLAWATCH_SMS_TOKEN``; the development sink).
Kinds: SMS providers ``aliyun`` (``AliyunSmsSettings``), ``tencent``
(``TencentSmsSettings``), ``twilio`` (``TwilioSmsSettings``), ``http``
(the generic one: ``url``, ``token``); chat ``dingtalk`` (``DingTalkRobot``),
``wecom`` (``WeComRobot``), ``feishu`` (``FeishuBot``), ``slack``
(``SlackWebhook``), ``webhook`` (``WebhookTarget``). Their fields are those of
the named settings classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from slawatch_common.events import Channel
from slawatch_common.runtime import ConfigError, describe_errors
from slawatch_notifier.channels.aliyun_sms import AliyunSmsChannel, AliyunSmsSettings
from slawatch_notifier.channels.dingtalk import DingTalkChannel, DingTalkRobot
from slawatch_notifier.channels.failover import FailoverChannel
from slawatch_notifier.channels.feishu import FeishuBot, FeishuChannel
from slawatch_notifier.channels.port import ChannelPort
from slawatch_notifier.channels.slack import SlackChannel, SlackWebhook
from slawatch_notifier.channels.sms import SmsChannel
from slawatch_notifier.channels.tencent_sms import TencentSmsChannel, TencentSmsSettings
from slawatch_notifier.channels.twilio_sms import TwilioSmsChannel, TwilioSmsSettings
from slawatch_notifier.channels.webhook import WebhookChannel, WebhookTarget
from slawatch_notifier.channels.wecom import WeComChannel, WeComRobot
from slawatch_notifier.clock import Clock

PREFIX = "notifier.channels"


@dataclasses.dataclass(frozen=True)
class HttpSmsSettings:
    """The generic JSON SMS provider (``channels/sms.py``)."""

    url: str
    token: str = dataclasses.field(repr=False)


SMS_PROVIDERS: dict[str, type[Any]] = {
    "aliyun": AliyunSmsSettings,
    "tencent": TencentSmsSettings,
    "twilio": TwilioSmsSettings,
    "http": HttpSmsSettings,
}
ROBOTS: dict[Channel, type[Any]] = {
    Channel.DINGTALK: DingTalkRobot,
    Channel.WECOM: WeComRobot,
    Channel.FEISHU: FeishuBot,
    Channel.SLACK: SlackWebhook,
    Channel.WEBHOOK: WebhookTarget,
}


@dataclasses.dataclass(frozen=True)
class ChannelSettings:
    """The validated section: SMS providers in failover order, robots by channel and name."""

    sms: tuple[tuple[str, Any], ...] = ()
    robots: Mapping[Channel, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def names(self, channel: Channel) -> frozenset[str]:
        """The robot names ``channel`` knows (chat channels only)."""
        return frozenset(self.robots.get(channel, {}))

    def plain_http(self) -> list[str]:
        """``"SLAWATCH_<KIND>_<NAME>_<FIELD>: not https"`` for each provider or robot address
        (``url``, ``base_url``, ``endpoint``) that is not https: refused in production."""
        entries = [("sms", name, value) for name, value in self.sms]
        entries += [
            (str(ch), name, v) for ch, named in self.robots.items() for name, v in named.items()
        ]
        found = []
        for kind, name, value in entries:
            for field in ("url", "base_url", "endpoint"):
                address = getattr(value, field, None)
                if isinstance(address, str) and not address.startswith("https://"):
                    found.append(f"{env_name(kind, name, field)}: not https")
        return found


def env_name(kind: str, name: str, field: str) -> str:
    return "_".join(("SLAWATCH", kind, name, field)).upper().replace("-", "_")


def parse_channels(section: Any, env: Mapping[str, str]) -> ChannelSettings:
    """Validate ``notifier.channels`` with values from ``env``; ``ConfigError`` lists problems."""
    section = section or {}
    problems: list[str] = []
    if not isinstance(section, Mapping):
        raise ConfigError(f"{PREFIX}: must be a mapping")
    unknown = set(section) - {"sms", *(str(channel) for channel in ROBOTS)}
    problems += [f"{PREFIX}.{key}: unknown channel" for key in sorted(unknown)]
    sms = _sms(section.get("sms"), env, problems)
    robots: dict[Channel, dict[str, Any]] = {}
    for channel, cls in ROBOTS.items():
        entries = section.get(str(channel)) or {}
        if not isinstance(entries, Mapping):
            problems.append(f"{PREFIX}.{channel}: must map robot names to settings")
            continue
        robots[channel] = {}
        for name, values in entries.items():
            built = _build(cls, str(channel), str(name), values, env, problems)
            if built is not None:
                robots[channel][str(name)] = built
    if problems:
        raise ConfigError("\n".join(problems))
    return ChannelSettings(tuple(sms), robots)


def _sms(section: Any, env: Mapping[str, str], problems: list[str]) -> list[tuple[str, Any]]:
    if section is None:
        return []
    path = f"{PREFIX}.sms"
    if not isinstance(section, Mapping):
        problems.append(f"{path}: must be a mapping")
        return []
    order = section.get("providers")
    if not isinstance(order, list) or not 1 <= len(order) <= 2:
        problems.append(f"{path}.providers: one or two of {', '.join(SMS_PROVIDERS)}, in order")
        return []
    unknown = set(section) - {"providers", *SMS_PROVIDERS}
    problems += [f"{path}.{key}: unknown SMS provider" for key in sorted(unknown)]
    chosen: list[tuple[str, Any]] = []
    for index, provider in enumerate(order):
        cls = SMS_PROVIDERS.get(provider)
        if cls is None:
            known = ", ".join(SMS_PROVIDERS)
            problems.append(f"{path}.providers.{index}: unknown provider {provider!r} ({known})")
            continue
        built = _build(cls, "sms", provider, section.get(provider) or {}, env, problems)
        if built is not None:
            chosen.append((provider, built))
    return chosen


def _build(
    cls: type[Any], kind: str, name: str, values: Any, env: Mapping[str, str], problems: list[str]
) -> Any:
    path = f"{PREFIX}.{kind}.{name}"
    if not isinstance(values, Mapping):
        problems.append(f"{path}: must be a mapping of settings")
        return None
    merged = dict(values)
    for field in dataclasses.fields(cls):
        variable = env_name(kind, name, field.name)
        if variable in env:
            merged[field.name] = env[variable]
    try:
        return TypeAdapter(cls).validate_python(merged)
    except ValidationError as exc:
        lines = describe_errors(exc, path).splitlines()
        problems += [_hint(line, kind, name) for line in lines]
        return None


def _hint(line: str, kind: str, name: str) -> str:
    """A missing field's error, naming the variable that can supply it."""
    path, _, message = line.partition(": ")
    if message != "Field required":
        return line
    field = path.rsplit(".", 1)[-1]
    return f"{path}: missing (set it here or in {env_name(kind, name, field)})"


def build_channels(
    settings: ChannelSettings,
    *,
    client: httpx.AsyncClient,
    clock: Clock,
    email: ChannelPort,
    default_sms: ChannelPort,
) -> dict[Channel, ChannelPort]:
    """One port per channel over the shared HTTP client."""
    ports: dict[Channel, ChannelPort] = {Channel.EMAIL: email, Channel.SMS: default_sms}
    providers = [_sms_port(kind, values, client, clock) for kind, values in settings.sms]
    if len(providers) == 1:
        ports[Channel.SMS] = providers[0]
    elif len(providers) == 2:
        names = (settings.sms[0][0], settings.sms[1][0])
        ports[Channel.SMS] = FailoverChannel(providers[0], providers[1], names)
    robots = settings.robots
    ports[Channel.DINGTALK] = DingTalkChannel(client, robots.get(Channel.DINGTALK, {}), clock)
    ports[Channel.WECOM] = WeComChannel(client, robots.get(Channel.WECOM, {}))
    ports[Channel.FEISHU] = FeishuChannel(client, robots.get(Channel.FEISHU, {}), clock)
    ports[Channel.SLACK] = SlackChannel(client, robots.get(Channel.SLACK, {}))
    ports[Channel.WEBHOOK] = WebhookChannel(client, robots.get(Channel.WEBHOOK, {}), clock)
    return ports


def _sms_port(kind: str, values: Any, client: httpx.AsyncClient, clock: Clock) -> ChannelPort:
    if kind == "aliyun":
        return AliyunSmsChannel(client, values, clock)
    if kind == "tencent":
        return TencentSmsChannel(client, values, clock)
    if kind == "twilio":
        return TwilioSmsChannel(client, values)
    return SmsChannel(client, values.url, values.token)
