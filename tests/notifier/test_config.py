"""The notifier section of the configuration file: what is accepted, and errors by path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from notifier.factories import CONFIG, ESCALATING, write_config
from slawatch_common.events import Channel
from slawatch_common.runtime import ConfigError
from slawatch_notifier.config import load_config, parse_config
from slawatch_notifier.main import main

REPO = Path(__file__).resolve().parents[2]


def _config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config.update(changes)
    return config


def _lines(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(ESCALATING)
    config.update(changes)
    return config


def _errors(section: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    return str(caught.value)


def test_the_shipped_example_is_valid_and_its_bare_on_keys_are_read() -> None:
    config = load_config(REPO / "deploy/config/slawatch.yaml")
    steps = config.escalations["standard"]
    assert [step.on for step in steps] == ["warning", "breach", "breach"]
    assert [(t.to, t.via) for t in steps[1].notify] == [
        ("oncall", (Channel.SMS, Channel.EMAIL)),
        ("supervisor", (Channel.EMAIL,)),
    ]
    assert config.rate_limits[Channel.SMS].max == 5
    assert config.rate_limits[Channel.SMS].per == 15 * 60
    quiet = config.people["zhang.min"].quiet_hours
    assert quiet is not None
    assert (str(quiet.starts), str(quiet.ends)) == ("22:00:00", "07:00:00")
    assert steps[2].after == 30 * 60
    assert config.people["oncall"].id == "oncall"
    assert set(config.groups) == {"l1", "l2", "l3"}


def test_the_escalating_example_is_valid() -> None:
    config = parse_config(ESCALATING)
    assert config.escalations["chasing"][1].after == 1800
    assert config.groups["l2"].robots == {Channel.DINGTALK: "l2-robot"}


def test_unknown_group_and_schedule_are_named_by_path() -> None:
    config = _lines()
    config["escalations"]["tiered"][1]["notify"] = [
        {"to": "group:l9", "via": "email"},
        {"to": "oncall:nights", "via": "sms"},
        {"to": "supervisor:oncall:nights", "via": "sms"},
    ]
    message = _errors(config)
    assert "notifier.escalations.tiered.1.notify.0.to: unknown group 'l9' (known: l2)" in message
    assert "notifier.escalations.tiered.1.notify.1.to: unknown schedule 'nights'" in message
    assert "notifier.escalations.tiered.1.notify.2.to: unknown schedule 'nights'" in message


def test_a_bad_target_kind_is_named_by_path() -> None:
    config = _lines()
    config["escalations"]["tiered"][1]["notify"][0]["to"] = "team:l2"
    config["escalations"]["tiered"][0]["notify"][0]["to"] = "supervisor:group:l2"
    message = _errors(config)
    assert "notifier.escalations.tiered.1.notify.0.to:" in message
    assert "unknown target kind 'team'" in message
    assert "notifier.escalations.tiered.0.notify.0.to:" in message
    assert "a group has no supervisor" in message


def test_a_group_without_the_chat_robot_or_members_without_the_address() -> None:
    config = _lines()
    config["escalations"]["tiered"][1]["notify"] = [
        {"to": "group:l2", "via": "wecom"},
        {"to": "group:l2", "via": "sms"},
    ]
    del config["people"]["chen.jie"]["phone"]
    message = _errors(config)
    assert "notifier.escalations.tiered.1.notify.0.via: group 'l2' has no wecom robot" in message
    assert "notifier.escalations.tiered.1.notify.1.via: 'chen.jie' has no phone" in message


def test_everyone_a_schedule_can_put_on_call_needs_the_address() -> None:
    config = _lines()
    del config["people"]["chen.jie"]["phone"]
    message = _errors(config)
    assert "notifier.escalations.tiered.1.notify.0.via: 'chen.jie' has no phone" in message


def test_supervisor_problems_are_named_by_path() -> None:
    config = _lines()
    config["people"]["wang.fang"]["supervisor"] = "zhao.lei"  # zhao.lei → wang.fang → zhao.lei
    config["people"]["li.wei"]["supervisor"] = "nobody"
    message = _errors(config)
    assert "notifier.people.li.wei.supervisor: unknown person 'nobody'" in message
    assert "supervisors form a cycle: zhao.lei → wang.fang → zhao.lei" in message
    config = _lines()
    config["escalations"]["tiered"][2]["notify"][0]["to"] = "supervisor:wang.fang"
    assert "notify.0.to: 'wang.fang' has no supervisor" in _errors(config)


def test_unknown_members_and_schedule_people_are_named_by_path() -> None:
    config = _lines()
    config["groups"]["l2"]["members"].append("ghost")
    config["schedules"]["l2"]["rotations"][0]["people"].append("phantom")
    message = _errors(config)
    assert "notifier.groups.l2.members.2: unknown person 'ghost'" in message
    assert "notifier.schedules.l2.rotations.0.people.2: unknown person 'phantom'" in message


def test_only_breach_steps_wait_or_repeat() -> None:
    config = _lines()
    config["escalations"]["tiered"][0]["after"] = "5m"
    config["escalations"]["tiered"][0]["repeat"] = {"every": "5m", "times": 2}
    message = _errors(config)
    assert "notifier.escalations.tiered.0.after: only an 'on: breach' step" in message
    assert "notifier.escalations.tiered.0.repeat: only an 'on: breach' step" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("after", "soon"), ("after", -1), ("repeat", {"every": "0s", "times": 2})],
)
def test_bad_durations_are_named_by_path(field: str, value: Any) -> None:
    config = _lines()
    config["escalations"]["tiered"][2][field] = value
    assert f"notifier.escalations.tiered.2.{field}" in _errors(config)


def test_locale_is_zh_cn_or_en() -> None:
    config = _lines()
    config["people"]["li.wei"]["locale"] = "fr"
    assert "notifier.people.li.wei.locale:" in _errors(config)


def test_unknown_person_is_named_by_path() -> None:
    config = _config()
    config["escalations"]["standard"][1]["notify"][0]["to"] = "nobody"
    message = _errors(config)
    assert "notifier.escalations.standard.1.notify.0.to: unknown person 'nobody'" in message


def test_unknown_channel_is_named_by_path() -> None:
    config = _config()
    config["escalations"]["standard"][0]["notify"][0]["via"] = "pager"
    assert "notifier.escalations.standard.0.notify.0.via:" in _errors(config)


def test_person_without_the_channels_address_is_named_by_path() -> None:
    config = _config()
    config["escalations"]["standard"][1]["notify"].append({"to": "supervisor", "via": "sms"})
    message = _errors(config)
    assert "notifier.escalations.standard.1.notify.2.via: 'supervisor' has no phone" in message


@pytest.mark.parametrize("stage", ["warn", "warning:0", "warning:101", "breached", ""])
def test_bad_stage_is_named_by_path(stage: str) -> None:
    config = _config()
    config["escalations"]["standard"][0]["on"] = stage
    assert "notifier.escalations.standard.0.on:" in _errors(config)


def test_bad_person_fields_are_named_by_path() -> None:
    config = _config()
    config["people"]["oncall"]["phone"] = "call me"
    config["people"]["oncall"]["pager"] = "x"
    message = _errors(config)
    assert "notifier.people.oncall.phone:" in message
    assert "notifier.people.oncall.pager:" in message


def test_assignee_and_target_kinds_are_reserved() -> None:
    config = _config()
    config["people"]["assignee"] = {"email": "a@example.com"}
    config["people"]["group:x"] = {"email": "a@example.com"}
    message = _errors(config)
    assert "notifier.people.assignee: reserved" in message
    assert "notifier.people.group:x: ':' is reserved" in message


def test_missing_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "slawatch.yaml"
    path.write_text("calendars: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="notifier: missing"):
        load_config(path)


def test_specific_warning_stages_are_accepted() -> None:
    config = _config()
    config["escalations"]["standard"][0]["on"] = "warning:90"
    assert parse_config(config).escalations["standard"][0].on == "warning:90"


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write_config(tmp_path))]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    broken = _config()
    broken["escalations"]["standard"][0]["notify"][0]["to"] = "ghost"
    assert main(["check-config", str(write_config(tmp_path, broken))]) == 1
    assert "notifier.escalations.standard.0.notify.0.to" in capsys.readouterr().err
