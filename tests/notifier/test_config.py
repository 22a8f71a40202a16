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


# --- report recipients: each contract's report_to in the engine's contracts section -------


def _contract(report_to: Any) -> dict[str, Any]:
    """A contract of the engine's section: keys the notifier ignores, and ``report_to``."""
    return {
        "customer": "ACME Ltd",
        "time_zone": "Asia/Shanghai",
        "policies": ["network-critical"],
        "targets": {"mean_response_time": "30m", "unheard_of": True},
        "report_to": report_to,
    }


def _report_errors(report_to: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(_lines(), contracts={"acme": _contract(report_to)})
    return str(caught.value)


def test_report_recipients_come_from_each_contracts_report_to(tmp_path: Path) -> None:
    contracts = {
        "acme": _contract(["li.wei", "group:l2"]),
        "quiet": {"customer": "Quiet Ltd", "policies": ["default"]},
    }
    config = load_config(write_config(tmp_path, _lines(), contracts))
    assert config.reports == {"acme": ("li.wei", "group:l2"), "quiet": ()}


def test_a_file_without_contracts_has_no_report_recipients(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, _lines())).reports == {}
    assert parse_config(_lines(), contracts=None).reports == {}
    assert parse_config(_lines(), contracts={}).reports == {}


def test_the_shipped_examples_contract_reports_to_its_supervisor() -> None:
    config = load_config(REPO / "deploy/config/slawatch.yaml")
    assert config.reports == {"acme": ("supervisor",)}


def test_an_unknown_person_in_report_to_is_named_by_path() -> None:
    message = _report_errors(["li.wei", "nobody"])
    assert "contracts.acme.report_to.1: unknown person 'nobody'" in message


def test_an_unknown_group_in_report_to_is_named_by_path() -> None:
    message = _report_errors(["group:l9", "li.wei"])
    assert "contracts.acme.report_to.0: unknown group 'l9' (known: l2)" in message


@pytest.mark.parametrize(
    ("report_to", "path"),
    [
        ("li.wei", "contracts.acme.report_to:"),
        ({"li.wei": True}, "contracts.acme.report_to:"),
        (None, "contracts.acme.report_to:"),
        (["li.wei", 7], "contracts.acme.report_to.1:"),
        (["li.wei", ["group:l2"]], "contracts.acme.report_to.1:"),
    ],
)
def test_a_report_to_that_is_not_a_list_of_text_is_named_by_path(report_to: Any, path: str) -> None:
    assert path in _report_errors(report_to)


def test_contracts_that_cannot_be_read_are_named_by_path() -> None:
    with pytest.raises(ConfigError, match=r"contracts: must be a mapping"):
        parse_config(_lines(), contracts=["acme"])
    with pytest.raises(ConfigError, match=r"contracts\.acme: must be a mapping"):
        parse_config(_lines(), contracts={"acme": "ACME Ltd"})


def test_report_recipients_are_not_taken_from_the_notifier_section() -> None:
    message = _errors(_lines(reports={"acme": ["li.wei"]}))
    assert "notifier.reports: not a key of this section" in message


def test_check_config_reports_report_to_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contracts = {"acme": _contract(["li.wei"]), "beta": _contract(["ghost", "group:l9"])}
    assert main(["check-config", str(write_config(tmp_path, _lines(), contracts))]) == 1
    err = capsys.readouterr().err
    assert "contracts.beta.report_to.0: unknown person 'ghost'" in err
    assert "contracts.beta.report_to.1: unknown group 'l9'" in err
    assert "contracts.acme" not in err
    contracts["beta"] = _contract(["group:l2"])
    assert main(["check-config", str(write_config(tmp_path, _lines(), contracts))]) == 0
    assert capsys.readouterr().out.strip() == "ok"
