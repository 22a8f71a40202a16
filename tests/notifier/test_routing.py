"""Routing: who a firing step reaches, on which channel, at which address (pure, fake ``now``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from notifier.factories import CONFIG, ESCALATING, NOW, sla_event
from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier.config import NotifierConfig, parse_config
from slawatch_notifier.escalation import ChainSnapshot, Firing, UnroutableEventError
from slawatch_notifier.routing import Route, SkipReason, plan, route


@pytest.fixture
def config() -> NotifierConfig:
    return parse_config(CONFIG)


@pytest.fixture
def lines() -> NotifierConfig:
    return parse_config(ESCALATING)


def _targets(config: NotifierConfig, stage: str) -> list[tuple[str, str, str]]:
    planned = route(sla_event(stage), config, NOW).notifications
    return [(p.recipient, p.channel, p.address) for p in planned]


def _reach(
    config: NotifierConfig,
    notify: list[dict[str, str]],
    *,
    at: datetime = NOW,
    event: SlaEvent | None = None,
) -> Route:
    """Plan one breach step with ``notify`` as its targets."""
    steps: Any = [{"on": "breach", "notify": notify}]
    chain = ChainSnapshot.model_validate({"name": "adhoc", "steps": steps})
    return plan([Firing(0, "breach")], chain, event or sla_event("breach"), config, at)


def _who(result: Route) -> list[tuple[str, str, str]]:
    return [(p.recipient, p.channel, p.address) for p in result.notifications]


def test_every_warning_stage_tells_the_assignee_by_email(config: NotifierConfig) -> None:
    for stage in ("warning:50", "warning:75", "warning:90", "warning:900s-before"):
        assert _targets(config, stage) == [("li.wei", Channel.EMAIL, "li.wei@example.com")]


def test_breach_tells_oncall_by_sms_and_supervisor_by_email(config: NotifierConfig) -> None:
    assert _targets(config, "breach") == [
        ("oncall", Channel.SMS, "+8613800000002"),
        ("supervisor", Channel.EMAIL, "supervisor@example.com"),
    ]


def test_notification_id_is_clock_stage_step_recipient_channel(config: NotifierConfig) -> None:
    (planned,) = route(sla_event("warning:75"), config, NOW).notifications
    assert planned.notification_id == "jira:OPS-42:response:warning:75:0:li.wei:email"
    sms, mail = route(sla_event("breach"), config, NOW).notifications
    assert sms.notification_id == "jira:OPS-42:response:breach:1:oncall:sms"
    assert mail.notification_id == "jira:OPS-42:response:breach:1:supervisor:email"


def test_a_rule_for_one_stage_matches_only_that_stage() -> None:
    chain = copy.deepcopy(CONFIG)
    chain["escalations"]["standard"][0]["on"] = "warning:90"
    config = parse_config(chain)
    assert _targets(config, "warning:75") == []
    assert [t[0] for t in _targets(config, "warning:90")] == ["li.wei"]


def test_one_step_reaches_a_person_once_on_a_channel(config: NotifierConfig) -> None:
    twice = [{"to": "assignee", "via": "email"}, {"to": "li.wei", "via": "email"}]
    both = parse_config({**CONFIG, "people": {**CONFIG["people"], "li.wei": {"email": "x@y.z"}}})
    assert [p.recipient for p in _reach(both, twice).notifications] == ["li.wei"]


def test_missing_assignee_is_skipped_with_a_reason(config: NotifierConfig) -> None:
    result = route(sla_event("warning:50", assignee=None), config, NOW)
    assert result.notifications == ()
    assert [s.reason for s in result.skipped] == [SkipReason.NO_ASSIGNEE]


def test_assignee_without_the_address_is_skipped(config: NotifierConfig) -> None:
    event = sla_event("warning:50", assignee={"id": "zhang", "phone": "+861"})
    assert [s.reason for s in route(event, config, NOW).skipped] == [SkipReason.NO_ADDRESS]


def test_the_configured_person_of_the_assignee_the_source_sent_is_reached(
    lines: NotifierConfig,
) -> None:
    event = sla_event("breach", assignee={"id": "zhao.lei", "email": "zl@corp.example"})
    result = _reach(
        lines, [{"to": "assignee", "via": "email"}, {"to": "assignee", "via": "sms"}], event=event
    )
    assert _who(result) == [
        ("zhao.lei", Channel.EMAIL, "zhao.lei@example.com"),  # the configured address wins
        ("zhao.lei", Channel.SMS, "+8613800000011"),
    ]
    assert {p.locale for p in result.notifications} == {"zh-CN"}


def test_no_chain_and_unknown_chain_plan_nothing(config: NotifierConfig) -> None:
    none = route(sla_event("breach", escalation=None), config, NOW)
    assert none.skipped[0].reason == "no_chain"
    unknown = route(sla_event("breach", escalation="vip"), config, NOW)
    assert (unknown.notifications, unknown.skipped[0].reason) == ((), "unknown_chain")


@pytest.mark.parametrize(
    ("event_type", "stage"),
    [("sla.warning", "breach"), ("sla.breach", "warning:75"), ("sla.warning", "warning:x")],
)
def test_a_stage_that_contradicts_the_type_is_unroutable(
    config: NotifierConfig, event_type: str, stage: str
) -> None:
    with pytest.raises(UnroutableEventError):
        route(sla_event(stage, event_type=event_type), config, NOW)


def test_a_later_cycle_of_a_clock_is_told_again(config: NotifierConfig) -> None:
    (first,) = route(sla_event("warning:75"), config, NOW).notifications
    (again,) = route(sla_event("warning:75", cycle=3), config, NOW).notifications
    assert first.notification_id == "jira:OPS-42:response:warning:75:0:li.wei:email"
    assert again.notification_id == "jira:OPS-42:response#3:warning:75:0:li.wei:email"


def test_a_group_is_its_members_by_mail_and_its_robot_on_chat(lines: NotifierConfig) -> None:
    by_mail = _reach(lines, [{"to": "group:l2", "via": "email"}])
    assert _who(by_mail) == [
        ("zhao.lei", Channel.EMAIL, "zhao.lei@example.com"),
        ("chen.jie", Channel.EMAIL, "chen.jie@example.com"),
    ]
    by_robot = _reach(lines, [{"to": "group:l2", "via": "dingtalk"}])
    assert _who(by_robot) == [("group:l2", Channel.DINGTALK, "l2-robot")]
    assert by_robot.notifications[0].notification_id.endswith(":breach:0:group:l2:dingtalk")


def test_the_assignee_group_is_the_tickets_group(lines: NotifierConfig) -> None:
    notify = [{"to": "assignee_group", "via": "dingtalk"}]
    assert _who(_reach(lines, notify, event=sla_event("breach", group="l2"))) == [
        ("group:l2", Channel.DINGTALK, "l2-robot")
    ]
    no_group = _reach(lines, notify, event=sla_event("breach"))
    unknown = _reach(lines, notify, event=sla_event("breach", group="facilities"))
    assert [s.reason for s in no_group.skipped] == [SkipReason.NO_GROUP]
    assert [s.reason for s in unknown.skipped] == [SkipReason.UNKNOWN_GROUP]


def test_on_call_is_whoever_the_schedule_has_at_the_instant_the_step_fires(
    lines: NotifierConfig,
) -> None:
    notify = [{"to": "oncall:l2", "via": "sms"}]
    day_one = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert _who(_reach(lines, notify, at=day_one)) == [("zhao.lei", Channel.SMS, "+8613800000011")]
    day_two = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert _who(_reach(lines, notify, at=day_two)) == [("chen.jie", Channel.SMS, "+8613800000012")]
    before_it_starts = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    nobody = _reach(lines, notify, at=before_it_starts)
    assert [s.reason for s in nobody.skipped] == [SkipReason.NOBODY_ON_CALL]


def test_supervisor_of_a_target_is_the_supervisor_of_whoever_it_resolves_to(
    lines: NotifierConfig,
) -> None:
    day_two = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    boss = _reach(lines, [{"to": "supervisor:oncall:l2", "via": "sms"}], at=day_two)
    assert _who(boss) == [("wang.fang", Channel.SMS, "+8613800000020")]
    assert boss.notifications[0].locale == "en"
    of_assignee = _reach(lines, [{"to": "supervisor:assignee", "via": "email"}])
    assert _who(of_assignee) == [("wang.fang", Channel.EMAIL, "wang.fang@example.com")]
    stranger = sla_event("breach", assignee={"id": "temp.agent", "email": "t@example.com"})
    none = _reach(lines, [{"to": "supervisor:assignee", "via": "email"}], event=stranger)
    assert [s.reason for s in none.skipped] == [SkipReason.NO_SUPERVISOR]


def test_a_snapshot_naming_someone_no_longer_configured_is_skipped(lines: NotifierConfig) -> None:
    people = {k: v for k, v in lines.people.items() if k != "wang.fang"}
    later = lines.model_copy(update={"people": people})
    gone = _reach(later, [{"to": "wang.fang", "via": "email"}])
    assert [s.reason for s in gone.skipped] == [SkipReason.UNKNOWN_TARGET]


# --- the language of each recipient --------------------------------------------------------

DAY_ONE = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # zhao.lei (zh-CN) on call
DAY_TWO = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # chen.jie (no locale) on call


def _locales(result: Route) -> dict[tuple[str, str], str]:
    return {(p.recipient, p.channel): p.locale for p in result.notifications}


@pytest.mark.parametrize(
    ("default", "robot"), [(None, None), ("zh-CN", None), ("en", "zh-CN"), ("zh-CN", "en")]
)
def test_every_notification_carries_its_recipients_locale_else_the_notifiers(
    default: str | None, robot: str | None
) -> None:
    section = copy.deepcopy(ESCALATING)  # zhao.lei zh-CN, wang.fang en, the others none
    if default is not None:
        section["locale"] = default
    if robot is not None:
        section["groups"]["l2"]["locale"] = robot
    config = parse_config(section)
    fallback = default or "en"
    assert _locales(_reach(config, [{"to": "zhao.lei", "via": "sms"}])) == {
        ("zhao.lei", Channel.SMS): "zh-CN"
    }
    assert _locales(_reach(config, [{"to": "chen.jie", "via": "sms"}])) == {
        ("chen.jie", Channel.SMS): fallback
    }
    assert _locales(_reach(config, [{"to": "assignee", "via": "email"}])) == {
        ("li.wei", Channel.EMAIL): fallback  # sent without one, configured without one
    }
    on_call = [{"to": "oncall:l2", "via": "sms"}]
    assert _locales(_reach(config, on_call, at=DAY_ONE)) == {("zhao.lei", Channel.SMS): "zh-CN"}
    assert _locales(_reach(config, on_call, at=DAY_TWO)) == {("chen.jie", Channel.SMS): fallback}
    boss = [{"to": "supervisor:oncall:l2", "via": "email"}]
    assert _locales(_reach(config, boss, at=DAY_TWO)) == {("wang.fang", Channel.EMAIL): "en"}
    assert _locales(_reach(config, [{"to": "group:l2", "via": "email"}])) == {
        ("zhao.lei", Channel.EMAIL): "zh-CN",  # members: each their own
        ("chen.jie", Channel.EMAIL): fallback,
    }
    assert _locales(_reach(config, [{"to": "group:l2", "via": "dingtalk"}])) == {
        ("group:l2", Channel.DINGTALK): robot or fallback  # the robot: the group's
    }


def test_the_assignees_locale_comes_from_the_configured_person(lines: NotifierConfig) -> None:
    people = dict(lines.people)
    people["li.wei"] = people["li.wei"].model_copy(update={"locale": "zh-CN"})
    config = lines.model_copy(update={"people": people})
    (planned,) = _reach(config, [{"to": "assignee", "via": "email"}]).notifications
    assert (planned.recipient, planned.locale) == ("li.wei", "zh-CN")
