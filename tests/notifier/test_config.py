"""The notifier section of the configuration file: what is accepted, and errors by path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from notifier.factories import CONFIG, write_config
from slawatch_common.events import Channel
from slawatch_common.runtime import ConfigError
from slawatch_notifier.config import load_config, parse_config
from slawatch_notifier.main import main

REPO = Path(__file__).resolve().parents[2]


def _config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config.update(changes)
    return config


def _errors(section: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    return str(caught.value)


def test_the_shipped_example_is_valid_and_its_bare_on_keys_are_read() -> None:
    config = load_config(REPO / "deploy/config/slawatch.yaml")
    rules = config.escalations["standard"]
    assert [rule.on for rule in rules] == ["warning", "breach"]
    assert [(t.to, t.via) for t in rules[1].notify] == [
        ("oncall", Channel.SMS),
        ("supervisor", Channel.EMAIL),
    ]
    assert config.people["oncall"].id == "oncall"


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


def test_assignee_is_reserved() -> None:
    config = _config()
    config["people"]["assignee"] = {"email": "a@example.com"}
    assert "notifier.people.assignee: reserved" in _errors(config)


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
