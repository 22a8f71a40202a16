"""Routing: which notifications an SLA event asks for (pure)."""

from __future__ import annotations

import copy

import pytest

from notifier.factories import CONFIG, sla_event
from slawatch_common.events import Channel
from slawatch_notifier.config import NotifierConfig, parse_config
from slawatch_notifier.routing import SkipReason, UnroutableEventError, route


@pytest.fixture
def config() -> NotifierConfig:
    return parse_config(CONFIG)


def _targets(config: NotifierConfig, stage: str) -> list[tuple[str, str, str]]:
    planned = route(sla_event(stage), config).notifications
    return [(p.recipient, p.channel, p.address) for p in planned]


def test_every_warning_stage_tells_the_assignee_by_email(config: NotifierConfig) -> None:
    for stage in ("warning:50", "warning:75", "warning:90"):
        assert _targets(config, stage) == [("li.wei", Channel.EMAIL, "li.wei@example.com")]


def test_breach_tells_oncall_by_sms_and_supervisor_by_email(config: NotifierConfig) -> None:
    assert _targets(config, "breach") == [
        ("oncall", Channel.SMS, "+8613800000002"),
        ("supervisor", Channel.EMAIL, "supervisor@example.com"),
    ]


def test_notification_id_is_clock_stage_recipient_channel(config: NotifierConfig) -> None:
    (planned,) = route(sla_event("warning:75"), config).notifications
    assert planned.notification_id == "jira:OPS-42:response:warning:75:li.wei:email"


def test_a_rule_for_one_stage_matches_only_that_stage() -> None:
    chain = copy.deepcopy(CONFIG)
    chain["escalations"]["standard"][0]["on"] = "warning:90"
    config = parse_config(chain)
    assert _targets(config, "warning:75") == []
    assert [t[0] for t in _targets(config, "warning:90")] == ["li.wei"]


def test_overlapping_rules_plan_one_notification() -> None:
    chain = copy.deepcopy(CONFIG)
    chain["escalations"]["standard"].append(
        {"on": "warning:90", "notify": [{"to": "assignee", "via": "email"}]}
    )
    assert len(_targets(parse_config(chain), "warning:90")) == 1


def test_missing_assignee_is_skipped_with_a_reason(config: NotifierConfig) -> None:
    result = route(sla_event("warning:50", assignee=None), config)
    assert result.notifications == ()
    assert [s.reason for s in result.skipped] == [SkipReason.NO_ASSIGNEE]


def test_assignee_without_the_address_is_skipped(config: NotifierConfig) -> None:
    result = route(sla_event("warning:50", assignee={"id": "zhang", "phone": "+861"}), config)
    assert [s.reason for s in result.skipped] == [SkipReason.NO_ADDRESS]


def test_no_chain_and_unknown_chain_plan_nothing(config: NotifierConfig) -> None:
    assert route(sla_event("breach", escalation=None), config).skipped[0].reason == "no_chain"
    unknown = route(sla_event("breach", escalation="vip"), config)
    assert (unknown.notifications, unknown.skipped[0].reason) == ((), "unknown_chain")


@pytest.mark.parametrize(
    ("event_type", "stage"),
    [("sla.warning", "breach"), ("sla.breach", "warning:75"), ("sla.warning", "warning:x")],
)
def test_a_stage_that_contradicts_the_type_is_unroutable(
    config: NotifierConfig, event_type: str, stage: str
) -> None:
    with pytest.raises(UnroutableEventError):
        route(sla_event(stage, event_type=event_type), config)


def test_a_later_cycle_of_a_clock_is_told_again(config: NotifierConfig) -> None:
    event = sla_event("warning:75")
    restarted = event.model_copy(
        update={
            "data": event.data.model_copy(
                update={"clock": event.data.clock.model_copy(update={"cycle": 3})}
            )
        }
    )
    (first,) = route(event, config).notifications
    (again,) = route(restarted, config).notifications
    assert first.notification_id == "jira:OPS-42:response:warning:75:li.wei:email"
    assert again.notification_id == "jira:OPS-42:response#3:warning:75:li.wei:email"
