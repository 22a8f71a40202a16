"""Policy files: validation with exact error places, and first-match selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from slawatch_common.events import Metric, Priority, Ticket
from slawatch_common.runtime import ConfigError
from slawatch_engine.main import main
from slawatch_engine.policy import load_policies, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"

VALID = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: vip
    match: {customer: [acme]}
    calendar: always
    targets: {P1: {response: 5m, resolution: 1h}}
  - name: default
    calendar: always
    warn_at: [80]
    targets: {P1: {response: 15m}, P3: {response: 2h, resolution: 1d}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("4h", 14400), ("1h30m", 5400), ("2d", 172800), (42, 42)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "15", "m15", "1.5h", -1, True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_the_example_configuration_is_valid() -> None:
    book = load_policies(EXAMPLE)
    assert set(book.calendars) == {"always", "cn-office"}


def test_first_matching_policy_wins(tmp_path: Path) -> None:
    book = load_policies(write(tmp_path, VALID))
    vip = book.select(Ticket(id="1", customer="acme"), Priority.P1)
    other = book.select(Ticket(id="2", customer="globex"), Priority.P1)
    assert (vip and vip.name, other and other.name) == ("vip", "default")
    assert other is not None
    assert other.target(Priority.P3, Metric.RESOLUTION) == 86400
    assert other.target(Priority.P1, Metric.RESOLUTION) is None
    assert other.thresholds == (80,)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (VALID.replace("calendar: always\n    warn", "calendar: nowhere\n    warn"), "calendar"),
        (VALID.replace("response: 5m", "response: soon"), "policies.0.targets.P1.response"),
        (VALID.replace("P3:", "P9:"), "policies.1.targets.P9"),
        (VALID.replace("timezone: UTC", "timezone: Mars/Olympus"), "calendars.always"),
        (VALID.replace("warn_at: [80]", "warn_at: [120]"), "policies.1.warn_at.0"),
        ("policies: []\ncalendars: {}", "policies"),
    ],
)
def test_errors_name_their_place(tmp_path: Path, text: str, place: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policies(write(tmp_path, text))
    assert place in str(caught.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    bad = write(tmp_path, VALID.replace("response: 5m", "response: soon"))
    assert main(["check-config", str(bad)]) == 1
    assert "policies.0.targets.P1.response" in capsys.readouterr().err
